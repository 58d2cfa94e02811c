//! The persistent store: tenants, credentials, accounts, the CRM directory,
//! ingested messages and everything that makes ingestion exactly-once.
//!
//! Built on sea-orm; SQLite by default (one file, WAL, `synchronous=FULL`,
//! because a durable commit is what lets the engine touch the mail server
//! afterwards) and PostgreSQL for hosted use, with one set of migrations run
//! on every [`Store::connect`].
//!
//! Every row that belongs to a tenant carries `tenant_id`, and every method
//! takes the tenant and filters by it: nothing one tenant does reads or
//! touches another's rows.
//!
//! - [`location`]: where the store is, created owner-only, never by a
//!   command that only reads;
//! - [`key`]: the master key that seals credentials at rest;
//! - [`credentials`], [`accounts`]: mailbox settings →
//!   [`AccountSettings`](crate::domain::AccountSettings);
//! - [`parties`] and [`StoreDirectory`]: contacts and leads, as the CLI
//!   imports them and as plugins query them;
//! - [`batch`]: [`Store::commit_batch`], the one transaction per batch that
//!   stores messages with their outcome, advances cursors and queues server
//!   actions, skipping anything already ingested;
//! - [`actions`]: server actions waiting for the server;
//! - [`deferred`]: messages a plugin could not decide for now, decided
//!   again by the account's next runs;
//! - [`health`]: each account's state for `intake serve` (ok, backing off,
//!   disabled), its checks, its lease, and the running workers;
//! - [`inbox`]: what was stored, quarantined or discarded;
//! - [`plugins`]: the tenant's plugin chain, components included;
//! - [`tokens`]: the tenant's HTTP API tokens, kept as hashes;
//! - [`webhooks`]: webhook endpoints, the outbox of events (written in the
//!   transactions they report) and their deliveries.

pub mod accounts;
pub mod actions;
pub mod batch;
pub mod credentials;
pub mod deferred;
mod directory;
mod entity;
pub mod health;
pub mod inbox;
pub mod key;
pub mod location;
mod migration;
pub mod oauth;
pub mod parties;
pub mod plugin_secrets;
pub mod plugins;
pub mod replay;
pub mod tokens;
pub mod webhooks;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, QuerySelect, Set, SqlErr,
};
use serde::Serialize;

pub use accounts::{Account, AccountConfig, FirstSync, ProxyConfig};
pub use actions::PendingAction;
pub use batch::{
    BatchCommit, CommitSummary, IncomingMessage, MessageMeta, MessageResult, QueuedAction,
};
pub use credentials::{Credential, CredentialInfo};
pub use deferred::{DueDeferred, Settlement};
pub use directory::StoreDirectory;
pub use health::{AccountHealth, CheckProgress, DueAccount, HealthState, WorkerInfo};
pub use inbox::{
    DiscardEntry, MessageFilter, MessageQuery, MessageStatus, MessageSummary, QuarantineEntry,
    StoredMessage,
};
pub use key::{KeyError, MASTER_KEY_ENV, MasterKey};
pub use location::{OpenMode, StoreLocation};
pub use oauth::{OAuthGrant, OAuthProvider, OAuthProviderInfo, ProviderKind};
pub use parties::{ImportSummary, NewParty, PartyFilter, Upserted};
pub use plugins::{
    BindingRole, BindingVersions, Canary, NewBinding, NewVersion, RolledBack, StoredBinding,
    StoredVersion,
};
pub use replay::{ReplayApplied, ReplayRow, ReplayUpdate};
pub use tokens::{TOKEN_PREFIX, TokenInfo, TokenMatch, TokenScope};
pub use webhooks::{
    DeliveryQuery, DeliveryState, EndpointChanges, EndpointState, NewEndpoint, WebhookDelivery,
    WebhookEndpoint, WebhookEventType,
};

use crate::directory::normalise;
use entity::{accounts as account_rows, tenants};

/// How long a SQLite writer waits for another (process or connection) to
/// finish before giving up with "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// The page size of a new SQLite file.
const SQLITE_PAGE_SIZE: u32 = 16 * 1024;
/// Pooled SQLite connections: readers (directory look-ups from plugins) go
/// on while a batch commits, thanks to WAL.
const SQLITE_POOL: u32 = 4;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A tenant's key in the store.
    TenantId
);
id_type!(
    /// An account's key in the store.
    AccountId
);
id_type!(
    /// A party's key; as text, it is the party id plugins see.
    PartyId
);
id_type!(
    /// A stored message's key (not its `Message-ID` header).
    StoredMessageId
);
id_type!(
    /// A pending server action's key.
    PendingActionId
);
id_type!(
    /// A webhook endpoint's key.
    WebhookEndpointId
);
id_type!(
    /// A webhook delivery's key (one event for one endpoint).
    WebhookDeliveryId
);

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened.
    #[error("cannot open the database {url}: {source}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: DbErr,
    },
    /// A command that only reads found no store: it never creates one.
    #[error(
        "no store at {}: nothing has been stored here yet (a command that changes data, \
         such as `intake credential add`, creates it), or give the right one with \
         --database-url or INTAKE_HOME",
        path.display()
    )]
    NoStore {
        /// Where it was looked for.
        path: std::path::PathBuf,
    },
    /// The store's file or directory could not be created.
    #[error("cannot create the store {}: {source}", path.display())]
    CreateFile {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(#[source] DbErr),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// The named thing does not exist in this tenant.
    #[error("{what} {name:?} not found")]
    NotFound {
        /// What kind of thing (`account`, `credential`, …).
        what: &'static str,
        /// Its name or id.
        name: String,
    },
    /// The name is taken in this tenant.
    #[error("{what} {name:?} already exists")]
    AlreadyExists {
        /// What kind of thing.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// It cannot be removed while something uses it.
    #[error("{what} {name:?} is in use by {by}; change or remove that first")]
    InUse {
        /// What kind of thing.
        what: &'static str,
        /// Its name.
        name: String,
        /// Who uses it.
        by: String,
    },
    /// The master key could not be had.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A credential does not open with the master key given.
    #[error(
        "credential {credential:?} cannot be decrypted with this master key \
         (wrong {MASTER_KEY_ENV}, or the stored secret was altered)"
    )]
    WrongKey {
        /// The credential's name.
        credential: String,
    },
    /// An argument was refused.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A stored value cannot be read back (written by a newer version, or
    /// edited by hand).
    #[error("stored {what} cannot be read: {reason}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection pool to the store's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The pool (SQLite or PostgreSQL).
    db: DatabaseConnection,
    /// SQLite has one writer at a time. Writers of this process take turns
    /// here instead of in SQLite's busy handler, which sleeps in steps of up
    /// to 100 ms: with many accounts checked at once that sleeping, not the
    /// disk, was what a check waited for. `None` on PostgreSQL.
    writes: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// SQLite: one connection with `synchronous=NORMAL` for the service's
    /// bookkeeping (leases, check progress, an account's state after a
    /// check), which a power cut may roll back without harm: a lost lease
    /// runs out, a lost state is found again by the next check. Every
    /// commit of mail and cursors stays on the `FULL` pool, and a `FULL`
    /// commit syncs the shared write-ahead log, earlier bookkeeping
    /// included. This is one disk sync per check instead of three. `None`
    /// on PostgreSQL and for an in-memory database.
    bookkeeping: Option<DatabaseConnection>,
    /// Wakes this process's webhook delivery loop when a commit wrote
    /// events (other processes poll).
    webhook_wake: std::sync::Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.db.get_database_backend())
            .finish()
    }
}

impl Store {
    /// Opens `url` (`sqlite://path?mode=rwc` or `postgres://…`) and brings
    /// the schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        let connect = |options: ConnectOptions| async move {
            // Switching a fresh SQLite file to WAL takes an exclusive lock
            // that SQLite refuses at once (no busy handler) when another
            // worker is doing the same: retry that case, briefly.
            let mut delay = Duration::from_millis(20);
            let mut tries = 0;
            loop {
                match Database::connect(options.clone()).await {
                    Ok(db) => return Ok(db),
                    Err(source)
                        if tries < 12 && source.to_string().contains("database is locked") =>
                    {
                        tries += 1;
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_millis(500));
                    }
                    Err(source) => {
                        return Err(Error::Connect {
                            url: redact(url),
                            source,
                        });
                    }
                }
            }
        };
        if !url.starts_with("sqlite:") {
            let mut options = ConnectOptions::new(url);
            options.sqlx_logging(false);
            let db = connect(options).await?;
            migration::run(&db).await.map_err(Error::Migrate)?;
            return Ok(Store {
                db,
                writes: None,
                bookkeeping: None,
                webhook_wake: std::sync::Arc::default(),
            });
        }
        // Each connection to an in-memory database is a database of its own,
        // so such a pool must be one connection, migrated in place.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if in_memory {
            // Recycling the connection would start an empty database.
            let forever = Duration::from_secs(10 * 365 * 24 * 3600);
            let mut options = sqlite_options(url, 1);
            options.idle_timeout(forever).max_lifetime(forever);
            let db = connect(options).await?;
            migration::run(&db).await.map_err(Error::Migrate)?;
            return Ok(Store::sqlite(db));
        }
        // Migrations need every statement on one connection (see
        // `migration::run`): a pool of one, closed before the real pool opens.
        let migrator = connect(sqlite_options(url, 1)).await?;
        let migrated = migration::run(&migrator).await.map_err(Error::Migrate);
        migrator.close().await?;
        migrated?;
        let db = connect(sqlite_options(url, SQLITE_POOL)).await?;
        let bookkeeping = connect(sqlite_options_synced(url, 1, SqliteSynchronous::Normal)).await?;
        let mut store = Store::sqlite(db);
        store.bookkeeping = Some(bookkeeping);
        Ok(store)
    }

    fn sqlite(db: DatabaseConnection) -> Store {
        Store {
            db,
            writes: Some(std::sync::Arc::default()),
            bookkeeping: None,
            webhook_wake: std::sync::Arc::default(),
        }
    }

    /// Where the service's bookkeeping is written (see
    /// [`Store::bookkeeping`]).
    pub(crate) fn books(&self) -> &DatabaseConnection {
        self.bookkeeping.as_ref().unwrap_or(&self.db)
    }

    /// This process's turn to write (SQLite); see [`Store::writes`].
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.writes {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(self) -> Result<()> {
        if let Some(books) = self.bookkeeping {
            books.close().await?;
        }
        Ok(self.db.close().await?)
    }

    /// The tenant named `name`, created if new.
    pub async fn ensure_tenant(&self, name: &str) -> Result<TenantId> {
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid("tenant name", "empty"));
        }
        tenants::Entity::insert(tenants::ActiveModel {
            name: Set(name.to_owned()),
            created_at: Set(now()),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::column(tenants::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(&self.db)
        .await?;
        self.tenant(name)
            .await?
            .ok_or_else(|| not_found("tenant", name))
    }

    /// Every tenant, with its name.
    pub async fn tenants(&self) -> Result<Vec<(TenantId, String)>> {
        Ok(tenants::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| (TenantId(t.id), t.name))
            .collect())
    }

    /// The tenant named `name`, if it exists.
    pub async fn tenant(&self, name: &str) -> Result<Option<TenantId>> {
        Ok(tenants::Entity::find()
            .filter(tenants::Column::Name.eq(name.trim()))
            .one(&self.db)
            .await?
            .map(|t| TenantId(t.id)))
    }

    /// The name of the tenant `id`, if it exists.
    pub async fn tenant_name(&self, id: TenantId) -> Result<Option<String>> {
        Ok(tenants::Entity::find_by_id(id.0)
            .one(&self.db)
            .await?
            .map(|t| t.name))
    }

    /// The id of the account `name` in `tenant`.
    pub async fn account_id(&self, tenant: TenantId, name: &str) -> Result<AccountId> {
        account_rows::Entity::find()
            .select_only()
            .column(account_rows::Column::Id)
            .filter(account_rows::Column::TenantId.eq(tenant.0))
            .filter(account_rows::Column::Name.eq(name))
            .into_tuple::<i64>()
            .one(&self.db)
            .await?
            .map(AccountId)
            .ok_or_else(|| not_found("account", name))
    }
}

/// Options for a SQLite pool of `connections`: WAL, so readers go on while a
/// batch commits; `synchronous=FULL`, so a commit survives a power cut (in
/// WAL mode `NORMAL` may lose the last commits, and the engine acknowledges
/// on the server right after a commit); a busy timeout; foreign keys on.
/// A new file gets 16 KiB pages: a message's raw bytes (tens of KiB) then
/// take a few pages rather than many, which about halves the page writes
/// per commit (an existing file keeps its page size).
fn sqlite_options(url: &str, connections: u32) -> ConnectOptions {
    sqlite_options_synced(url, connections, SqliteSynchronous::Full)
}

/// [`sqlite_options`] with another `synchronous` mode (the bookkeeping
/// connection's, see [`Store::bookkeeping`]).
fn sqlite_options_synced(url: &str, connections: u32, sync: SqliteSynchronous) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .max_connections(connections)
        .map_sqlx_sqlite_opts(move |o| {
            o.page_size(SQLITE_PAGE_SIZE)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(sync)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    options
}

/// Takes the tenant's write lock at the start of a transaction that reads
/// before it writes.
///
/// SQLite: a write as the first statement makes the transaction a writer
/// at once, while the busy timeout still applies; a deferred transaction
/// that read first and then tries to write fails at once with
/// `SQLITE_BUSY` if another connection wrote in between. PostgreSQL: a row
/// lock on the tenant, so two workers never both decide a lead is missing and
/// create it twice.
async fn lock_tenant<C: ConnectionTrait>(txn: &C, tenant: TenantId) -> Result<()> {
    let found = if txn.get_database_backend() == DbBackend::Postgres {
        tenants::Entity::find_by_id(tenant.0)
            .lock_exclusive()
            .one(txn)
            .await?
            .is_some()
    } else {
        tenants::Entity::update_many()
            .col_expr(
                tenants::Column::Name,
                Expr::col(tenants::Column::Name).into(),
            )
            .filter(tenants::Column::Id.eq(tenant.0))
            .exec(txn)
            .await?
            .rows_affected
            == 1
    };
    if found {
        Ok(())
    } else {
        Err(not_found("tenant", &tenant.to_string()))
    }
}

/// The current time at the precision PostgreSQL keeps (microseconds), so a
/// value reads back equal from either database.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn not_found(what: &'static str, name: &str) -> Error {
    Error::NotFound {
        what,
        name: name.to_owned(),
    }
}

fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        reason: reason.into(),
    }
}

fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        what,
        reason: reason.to_string(),
    }
}

/// Maps a unique-index violation to [`Error::AlreadyExists`], anything else
/// to [`Error::Database`].
fn unique_violation(err: DbErr, what: &'static str, name: &str) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => Error::AlreadyExists {
            what,
            name: name.to_owned(),
        },
        _ => Error::Database(err),
    }
}

/// Normalises and checks an address with the directory's one rule.
fn normalise_email(address: &str) -> Result<String> {
    let email = normalise::address(address);
    if normalise::is_valid_address(&email) {
        Ok(email)
    } else {
        Err(invalid("e-mail address", format!("{address:?}")))
    }
}

/// The domain of a normalised address, as the directory keys it.
fn domain_of(email: &str) -> String {
    normalise::domain_of(email).unwrap_or_default()
}

/// A Message-ID as stored: see [`normalise::message_id`].
pub fn normalise_message_id(id: &str) -> Option<String> {
    normalise::message_id(id)
}

/// The URL without its password, for error messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact("postgres://intake:s3cret@db.example:5432/intake"),
            "postgres://intake:***@db.example:5432/intake"
        );
        assert_eq!(
            redact("sqlite://intake.db?mode=rwc"),
            "sqlite://intake.db?mode=rwc"
        );
    }

    #[test]
    fn message_ids_lose_brackets() {
        assert_eq!(normalise_message_id(" <a@b> ").as_deref(), Some("a@b"));
        assert_eq!(normalise_message_id("a@b").as_deref(), Some("a@b"));
        assert_eq!(normalise_message_id("<>"), None);
    }
}
