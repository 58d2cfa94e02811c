//! The webhook benchmark: what the outbox costs a batch commit, and how
//! fast the delivery loop empties it to local receivers.
//!
//! Per store (SQLite in a temporary directory, then a fresh PostgreSQL
//! database at `INTAKE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432`; `INTAKE_TEST_POSTGRES=skip` skips
//! it):
//! - `INTAKE_BENCH_EVENTS` (default 10,000) messages committed through
//!   `Store::commit_batch` in batches of 100 for a tenant without endpoints
//!   (no events written), then for tenants with 1 and with 4 endpoints
//!   (one `message.stored` event and a delivery per endpoint each);
//! - the delivery loop (`serve::webhooks::Deliverer`, default limits: 32
//!   requests in flight, 4 per endpoint) sending them to axum receivers on
//!   127.0.0.1 that answer 204: events/s and deliveries/s until every
//!   receiver has every event.
//!
//! `./dev bench-webhooks` runs it in release. Figures are printed; nothing
//! is asserted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use intake::domain::{MessageKey, Outcome};
use intake::fetch::{Protocol, Secret, Security};
use intake::serve::webhooks::{Deliverer, WebhookConfig};
use intake::service::Service;
use intake::service::webhooks::{WebhookInput, WebhookPolicy};
use intake::store::{
    AccountConfig, BatchCommit, IncomingMessage, MasterKey, MessageMeta, Store, TenantId,
};
use intake_tests::env_usize;
use sea_orm::{ConnectionTrait, Database};
use tokio_util::sync::CancellationToken;

const BATCH: usize = 100;

/// A receiver that counts what it accepts.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let counter = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, count)
}

/// A tenant with one account and `endpoints` receivers; returns the
/// tenant, the account and the receivers' counters.
async fn tenant(
    store: &Store,
    key: &MasterKey,
    name: &str,
    endpoints: usize,
) -> (TenantId, intake::store::AccountId, Vec<Arc<AtomicUsize>>) {
    let tenant = store.ensure_tenant(name).await.unwrap();
    store
        .add_credential(tenant, "c", "u", &Secret::new("p"), key)
        .await
        .unwrap();
    let account = store
        .add_account(
            tenant,
            &AccountConfig::new("a", Protocol::Imap, "localhost", Security::None, "c"),
        )
        .await
        .unwrap();
    let service = Service::admin(store.clone())
        .with_master_key(key.clone())
        .with_webhook_policy(WebhookPolicy {
            allow_private_networks: true,
        });
    let mut counters = Vec::new();
    for _ in 0..endpoints {
        let (url, count) = receiver().await;
        service
            .create_webhook(
                &intake::service::Scope::local(tenant, name),
                &WebhookInput {
                    url,
                    event_types: vec!["message.stored".into()],
                    description: None,
                    enabled: true,
                },
            )
            .await
            .unwrap();
        counters.push(count);
    }
    (tenant, account, counters)
}

/// Commits `n` small messages in batches; returns messages/s.
async fn commit(
    store: &Store,
    tenant: TenantId,
    account: intake::store::AccountId,
    n: usize,
) -> f64 {
    let started = Instant::now();
    let mut uid = 0u32;
    while (uid as usize) < n {
        let messages: Vec<IncomingMessage> = (0..BATCH.min(n - uid as usize))
            .map(|_| {
                uid += 1;
                IncomingMessage {
                    key: MessageKey::Imap {
                        folder: "INBOX".into(),
                        uid_validity: 1,
                        uid,
                    },
                    raw: format!(
                        "From: a{uid}@acme.example\r\nSubject: bench {uid}\r\n\
                         Message-ID: <bench-{tenant}-{uid}@x>\r\n\r\nhello\r\n"
                    )
                    .into_bytes()
                    .into(),
                    meta: MessageMeta {
                        message_id: Some(format!("bench-{tenant}-{uid}@x")),
                        subject: Some(format!("bench {uid}")),
                        from: Some(format!("a{uid}@acme.example")),
                        date: None,
                    },
                    outcome: Outcome::KeepUnlinked,
                    action: None,
                    decided_by: Some("bench".into()),
                    decision: None,
                }
            })
            .collect();
        store
            .commit_batch(
                tenant,
                account,
                &BatchCommit {
                    messages,
                    ..BatchCommit::default()
                },
            )
            .await
            .unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Runs the delivery loop until every counter reaches `n`; returns the
/// wall time.
async fn deliver(
    store: &Store,
    key: &MasterKey,
    counters: &[Arc<AtomicUsize>],
    n: usize,
) -> Duration {
    let stop = CancellationToken::new();
    let config = WebhookConfig {
        allow_private_networks: true,
        ..WebhookConfig::default()
    };
    let deliverer =
        Deliverer::new(store.clone(), Some(key.clone()), config, "bench".into()).unwrap();
    let started = Instant::now();
    let task = tokio::spawn(deliverer.run(stop.clone()));
    while counters.iter().any(|c| c.load(Ordering::Relaxed) < n) {
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "gave up waiting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    stop.cancel();
    task.await.unwrap();
    took
}

async fn bench(label: &str, url: &str, n: usize) {
    let store = Store::connect(url).await.unwrap();
    let key = MasterKey::generate().unwrap();
    let (t0, a0, _) = tenant(&store, &key, "none", 0).await;
    let plain = commit(&store, t0, a0, n).await;
    println!("{label:<10} commit_batch, tenant without endpoints: {plain:>8.0} msg/s");
    for endpoints in [1usize, 4] {
        let (t, a, counters) = tenant(&store, &key, &format!("e{endpoints}"), endpoints).await;
        let rate = commit(&store, t, a, n).await;
        println!(
            "{label:<10} commit_batch, tenant with {endpoints} endpoint(s): {rate:>8.0} msg/s ({:+.0}%)",
            (rate / plain - 1.0) * 100.0
        );
        let took = deliver(&store, &key, &counters, n).await;
        let secs = took.as_secs_f64();
        println!(
            "{label:<10} delivered {n} events to {endpoints} endpoint(s) in {secs:.2} s: \
             {:.0} events/s, {:.0} deliveries/s",
            n as f64 / secs,
            (n * endpoints) as f64 / secs
        );
    }
    store.close().await.ok();
}

#[tokio::main]
async fn main() {
    let n = env_usize("INTAKE_BENCH_EVENTS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    bench("sqlite", &sqlite, n).await;
    if std::env::var("INTAKE_TEST_POSTGRES").as_deref() == Ok("skip") {
        return;
    }
    let base = intake_tests::databases::postgres_base();
    let admin = Database::connect(format!("{base}/postgres")).await.unwrap();
    let name = format!("intake_webhook_bench_{}", std::process::id());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    bench("postgres", &format!("{base}/{name}"), n).await;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
}
