//! Fresh, migrated databases for tests: a SQLite file in a temporary
//! directory, or a new PostgreSQL database (created on the server at
//! `INTAKE_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432`,
//! and dropped afterwards, even when the test fails). `INTAKE_TEST_POSTGRES=skip`
//! skips the PostgreSQL variants on a machine without a server.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};

use futures::FutureExt;
use intake::store::Store;
use sea_orm::{ConnectionTrait, Database};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// The hosted choice.
    Postgres,
}

/// A store under test and the URL it was opened with (for subprocesses).
#[derive(Debug, Clone)]
pub struct Db {
    /// The store.
    pub store: Store,
    /// Its URL.
    pub url: String,
}

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The PostgreSQL server's URL without a database name.
pub fn postgres_base() -> String {
    std::env::var("INTAKE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_owned()
}

/// Runs `test` on a fresh, migrated database of `backend`.
pub async fn with_database<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("intake.db").display()
            );
            let store = Store::connect(&url).await.expect("open SQLite");
            test(Db { store, url }).await;
        }
        Backend::Postgres => {
            if std::env::var("INTAKE_TEST_POSTGRES").as_deref() == Ok("skip") {
                eprintln!("INTAKE_TEST_POSTGRES=skip: not running the PostgreSQL variant");
                return;
            }
            let base = postgres_base();
            let admin = Database::connect(format!("{base}/postgres")).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {base} is needed ({e}); start it (pg_ctlcluster <version> main start) \
                     or point INTAKE_TEST_POSTGRES_URL at one"
                )
            });
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let name = format!(
                "intake_test_{}_{}_{nanos}",
                std::process::id(),
                NEXT_DB.fetch_add(1, Ordering::Relaxed)
            );
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap();
            let url = format!("{base}/{name}");
            let outcome = AssertUnwindSafe(async {
                let store = Store::connect(&url).await.expect("open PostgreSQL");
                test(Db {
                    store: store.clone(),
                    url: url.clone(),
                })
                .await;
                store.close().await.ok();
            })
            .catch_unwind()
            .await;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
                .unwrap();
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// Declares one `#[tokio::test]` per database for each named async test
/// function taking a [`Db`]: `on_both_databases!(a, b);` makes
/// `sqlite::a`, `postgres::a`, `sqlite::b`, `postgres::b`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::databases::with_database($crate::databases::Backend::Sqlite, super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::databases::with_database($crate::databases::Backend::Postgres, super::$name).await
                }
            )*
        }
    };
}
