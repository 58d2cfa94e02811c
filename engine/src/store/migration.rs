//! The schema, as migrations: one set for SQLite and PostgreSQL.
//!
//! Tables are built with sea-query so column types come out right for each
//! database (`bytea`/`blob`, `bigserial`/`integer primary key`, …). The
//! partial unique indexes that carry idempotency are raw SQL because
//! sea-query 0.32 cannot express `WHERE` on an index; the statement is the
//! same in both databases.
//!
//! A released migration is frozen: a schema change is a new migration added
//! to [`Migrator::migrations`], never an edit here. Column names are spelled
//! out as strings for that reason — renaming a field in [`super::entity`]
//! must not silently change what an old migration creates.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use sea_orm_migration::prelude::*;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(ContentHash),
            Box::new(AccountHealth),
            Box::new(RawLz4),
            Box::new(Webhooks),
            Box::new(ApiTokens),
            Box::new(MessageDates),
            Box::new(CertificatePins),
            Box::new(OAuth),
            Box::new(CheckProgress),
            Box::new(DecisionRecords),
            Box::new(QuarantineRetry),
            Box::new(PluginSecrets),
            Box::new(PluginVersions),
        ]
    }
}

/// Brings `db` up to date, in one transaction.
///
/// SQLite and PostgreSQL both roll back DDL, so a failed migration leaves the
/// database as it was. Processes that start together take turns: PostgreSQL
/// through an advisory lock, SQLite through `BEGIN IMMEDIATE` (a deferred
/// transaction that read the schema first could not upgrade to a writer and
/// would fail with "database is locked" instead of waiting).
///
/// On SQLite `db` must be a pool of one connection, so that every statement
/// between `BEGIN` and `COMMIT` runs on it.
pub(crate) async fn run(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("BEGIN IMMEDIATE").await?;
        match Migrator::up(db, None).await {
            Ok(()) => db.execute_unprepared("COMMIT").await.map(drop),
            Err(e) => {
                // The error that matters is the migration's.
                let _ = db.execute_unprepared("ROLLBACK").await;
                Err(e)
            }
        }
    } else {
        let txn = db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // 0x696e74616b65, "intake" in ASCII: an arbitrary, stable key.
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(115923119860581)")
                .await?;
        }
        Migrator::up(&txn, None).await?;
        txn.commit().await
    }
}

/// The first schema.
struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "m20260501_000001_initial"
    }
}

fn a(name: &str) -> Alias {
    Alias::new(name)
}

/// A table with an auto-increment `id` primary key.
fn table(name: &str) -> TableCreateStatement {
    Table::create()
        .table(a(name))
        .if_not_exists()
        .col(
            ColumnDef::new(a("id"))
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        )
        .to_owned()
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(a(name))
}

/// `tenant_id`, removed with its tenant.
fn tenant_col(t: &mut TableCreateStatement, name: &str) {
    t.col(col("tenant_id").big_integer().not_null());
    fk(t, name, "tenant_id", "tenants", ForeignKeyAction::Cascade);
}

fn fk(
    t: &mut TableCreateStatement,
    table: &str,
    column: &str,
    to: &str,
    on_delete: ForeignKeyAction,
) {
    t.foreign_key(
        ForeignKey::create()
            .name(format!("fk_{table}_{column}"))
            .from(a(table), a(column))
            .to(a(to), a("id"))
            .on_delete(on_delete),
    );
}

fn created_at(t: &mut TableCreateStatement) {
    t.col(col("created_at").timestamp_with_time_zone().not_null());
}

fn index(name: &str, table: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.if_not_exists().name(name).table(a(table));
    for c in columns {
        i.col(a(c));
    }
    i
}

/// Adds `columns` to `table`, one statement each (SQLite alters one column
/// at a time).
async fn add_columns(
    manager: &SchemaManager<'_>,
    table: &str,
    columns: impl IntoIterator<Item = ColumnDef>,
) -> Result<(), DbErr> {
    for mut column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(a(table))
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Drops `columns` from `table`, one statement each.
async fn drop_columns(
    manager: &SchemaManager<'_>,
    table: &str,
    columns: &[&str],
) -> Result<(), DbErr> {
    for column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(a(table))
                    .drop_column(a(column))
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Unique indexes with a `WHERE`: the idempotency keys. Both databases treat
/// NULLs as distinct, so the predicates only make intent explicit and keep
/// the indexes small; what matters is that `ON CONFLICT DO NOTHING` (without
/// a target) honours them in both.
const PARTIAL_UNIQUE_INDEXES: &[&str] = &[
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_imap \
     ON messages (account_id, folder, uid_validity, uid) WHERE uid IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_pop3 \
     ON messages (account_id, pop3_uidl) WHERE pop3_uidl IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_message_id \
     ON messages (account_id, message_id) WHERE message_id IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_parties_external_id \
     ON parties (tenant_id, external_id) WHERE external_id IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_pending_actions_imap \
     ON pending_actions (account_id, folder, uid_validity, uid) WHERE uid IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS ux_pending_actions_pop3 \
     ON pending_actions (account_id, pop3_uidl) WHERE pop3_uidl IS NOT NULL",
];

// The trait is declared with an elided `SchemaManager` lifetime; the impl
// must spell it the same way for async-trait to expand it alike.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut tables = Vec::new();

        let mut t = table("tenants");
        t.col(col("name").text().not_null().unique_key());
        created_at(&mut t);
        tables.push(t);

        let mut t = table("credentials");
        tenant_col(&mut t, "credentials");
        t.col(col("name").text().not_null())
            .col(col("username").text().not_null())
            .col(col("secret").blob().not_null());
        created_at(&mut t);
        tables.push(t);

        let mut t = table("accounts");
        tenant_col(&mut t, "accounts");
        t.col(col("name").text().not_null())
            .col(col("protocol").text().not_null())
            .col(col("host").text().not_null())
            .col(col("port").integer().null())
            .col(col("security").text().not_null())
            .col(col("credential_id").big_integer().not_null())
            .col(col("auth").text().not_null())
            .col(col("verify_certificate").boolean().not_null())
            .col(col("ca_file").text().null())
            .col(col("keep_on_server").boolean().not_null())
            .col(col("auto_check").boolean().not_null())
            .col(col("check_interval_secs").integer().not_null())
            .col(col("enabled").boolean().not_null())
            .col(col("proxy_host").text().null())
            .col(col("proxy_port").integer().null())
            .col(col("proxy_credential_id").big_integer().null())
            .col(col("folders").text().not_null())
            .col(col("mode").text().not_null())
            .col(col("max_message_bytes").big_integer().not_null())
            .col(col("first_sync_since").timestamp_with_time_zone().null())
            .col(col("first_sync_max_messages").integer().null())
            .col(col("batch_size").integer().not_null());
        created_at(&mut t);
        t.col(col("updated_at").timestamp_with_time_zone().not_null())
            .col(col("last_commit_at").timestamp_with_time_zone().null());
        // A credential in use cannot be removed out from under an account.
        fk(
            &mut t,
            "accounts",
            "credential_id",
            "credentials",
            ForeignKeyAction::Restrict,
        );
        fk(
            &mut t,
            "accounts",
            "proxy_credential_id",
            "credentials",
            ForeignKeyAction::Restrict,
        );
        tables.push(t);

        let mut t = table("folder_cursors");
        tenant_col(&mut t, "folder_cursors");
        t.col(col("account_id").big_integer().not_null())
            .col(col("folder").text().not_null())
            .col(col("uid_validity").big_integer().not_null())
            .col(col("last_uid").big_integer().not_null())
            .col(col("updated_at").timestamp_with_time_zone().not_null());
        fk(
            &mut t,
            "folder_cursors",
            "account_id",
            "accounts",
            ForeignKeyAction::Cascade,
        );
        tables.push(t);

        let mut t = table("pop3_seen");
        tenant_col(&mut t, "pop3_seen");
        t.col(col("account_id").big_integer().not_null())
            .col(col("uidl").text().not_null());
        created_at(&mut t);
        fk(
            &mut t,
            "pop3_seen",
            "account_id",
            "accounts",
            ForeignKeyAction::Cascade,
        );
        tables.push(t);

        let mut t = table("parties");
        tenant_col(&mut t, "parties");
        t.col(col("kind").text().not_null())
            .col(col("email").text().not_null())
            .col(col("domain").text().not_null())
            .col(col("name").text().null())
            .col(col("company").text().null())
            .col(col("external_id").text().null());
        created_at(&mut t);
        t.col(col("updated_at").timestamp_with_time_zone().not_null());
        tables.push(t);

        // Messages outlive their account (SET NULL): removing a mailbox
        // from the settings must not delete what the CRM already holds.
        let mut t = table("messages");
        tenant_col(&mut t, "messages");
        t.col(col("account_id").big_integer().null())
            .col(col("folder").text().null())
            .col(col("uid_validity").big_integer().null())
            .col(col("uid").big_integer().null())
            .col(col("pop3_uidl").text().null())
            .col(col("message_id").text().null())
            .col(col("subject").text().null())
            .col(col("from_address").text().null())
            .col(col("date").timestamp_with_time_zone().null())
            .col(col("size").big_integer().not_null())
            .col(col("raw").blob().null())
            .col(col("status").text().not_null());
        created_at(&mut t);
        fk(
            &mut t,
            "messages",
            "account_id",
            "accounts",
            ForeignKeyAction::SetNull,
        );
        tables.push(t);

        let mut t = table("message_links");
        tenant_col(&mut t, "message_links");
        t.col(col("stored_message_id").big_integer().not_null())
            .col(col("party_id").big_integer().not_null());
        created_at(&mut t);
        fk(
            &mut t,
            "message_links",
            "stored_message_id",
            "messages",
            ForeignKeyAction::Cascade,
        );
        fk(
            &mut t,
            "message_links",
            "party_id",
            "parties",
            ForeignKeyAction::Cascade,
        );
        tables.push(t);

        let mut t = table("quarantine");
        tenant_col(&mut t, "quarantine");
        t.col(col("account_id").big_integer().null())
            .col(col("stored_message_id").big_integer().not_null())
            .col(col("reason").text().not_null())
            .col(col("plugin").text().null());
        created_at(&mut t);
        t.col(col("released_at").timestamp_with_time_zone().null());
        fk(
            &mut t,
            "quarantine",
            "account_id",
            "accounts",
            ForeignKeyAction::SetNull,
        );
        fk(
            &mut t,
            "quarantine",
            "stored_message_id",
            "messages",
            ForeignKeyAction::Cascade,
        );
        tables.push(t);

        let mut t = table("discard_log");
        tenant_col(&mut t, "discard_log");
        t.col(col("account_id").big_integer().null())
            .col(col("stored_message_id").big_integer().null())
            .col(col("message_id").text().null())
            .col(col("sender").text().null())
            .col(col("reason").text().not_null())
            .col(col("plugin").text().null());
        created_at(&mut t);
        fk(
            &mut t,
            "discard_log",
            "account_id",
            "accounts",
            ForeignKeyAction::SetNull,
        );
        fk(
            &mut t,
            "discard_log",
            "stored_message_id",
            "messages",
            ForeignKeyAction::SetNull,
        );
        tables.push(t);

        let mut t = table("plugin_bindings");
        tenant_col(&mut t, "plugin_bindings");
        t.col(col("position").integer().not_null())
            .col(col("name").text().not_null())
            .col(col("role").text().not_null())
            .col(col("wasm").blob().not_null())
            .col(col("config").text().not_null())
            .col(col("limits").text().not_null())
            .col(col("failure_policy").text().not_null())
            .col(col("enabled").boolean().not_null());
        created_at(&mut t);
        tables.push(t);

        let mut t = table("pending_actions");
        tenant_col(&mut t, "pending_actions");
        t.col(col("account_id").big_integer().not_null())
            .col(col("folder").text().null())
            .col(col("uid_validity").big_integer().null())
            .col(col("uid").big_integer().null())
            .col(col("pop3_uidl").text().null())
            .col(col("action").text().not_null());
        created_at(&mut t);
        t.col(col("attempts").integer().not_null())
            .col(col("last_error").text().null());
        fk(
            &mut t,
            "pending_actions",
            "account_id",
            "accounts",
            ForeignKeyAction::Cascade,
        );
        tables.push(t);

        for t in tables {
            manager.create_table(t).await?;
        }

        let unique = [
            index("ux_credentials_name", "credentials", &["tenant_id", "name"]),
            index("ux_accounts_name", "accounts", &["tenant_id", "name"]),
            index(
                "ux_folder_cursors",
                "folder_cursors",
                &["account_id", "folder"],
            ),
            index("ux_pop3_seen", "pop3_seen", &["account_id", "uidl"]),
            index(
                "ux_message_links",
                "message_links",
                &["stored_message_id", "party_id"],
            ),
            index(
                "ux_quarantine_message",
                "quarantine",
                &["stored_message_id"],
            ),
            index(
                "ux_plugin_bindings_name",
                "plugin_bindings",
                &["tenant_id", "name"],
            ),
        ];
        for mut i in unique {
            manager.create_index(i.unique().to_owned()).await?;
        }
        let plain = [
            // Directory look-ups: by address, by domain.
            index("ix_parties_email", "parties", &["tenant_id", "email"]),
            index("ix_parties_domain", "parties", &["tenant_id", "domain"]),
            // Threading (parties_for_message_id) and the inbox views.
            index(
                "ix_messages_message_id",
                "messages",
                &["tenant_id", "message_id"],
            ),
            index("ix_messages_account", "messages", &["account_id", "id"]),
            index("ix_messages_tenant", "messages", &["tenant_id", "id"]),
            index("ix_message_links_party", "message_links", &["party_id"]),
            index("ix_quarantine_tenant", "quarantine", &["tenant_id", "id"]),
            index("ix_discard_log_tenant", "discard_log", &["tenant_id", "id"]),
            index(
                "ix_plugin_bindings_position",
                "plugin_bindings",
                &["tenant_id", "position"],
            ),
            index(
                "ix_pending_actions_account",
                "pending_actions",
                &["account_id", "id"],
            ),
        ];
        for i in plain {
            manager.create_index(i).await?;
        }
        let db = manager.get_connection();
        for sql in PARTIAL_UNIQUE_INDEXES {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children first, so foreign keys never point at a dropped table.
        for name in [
            "pending_actions",
            "plugin_bindings",
            "discard_log",
            "quarantine",
            "message_links",
            "messages",
            "parties",
            "pop3_seen",
            "folder_cursors",
            "accounts",
            "credentials",
            "tenants",
        ] {
            manager
                .drop_table(Table::drop().table(a(name)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Every message gets a content key: the SHA-256 of its exact bytes, unique
/// per account. It is the backstop when no other key can recognise a
/// message again — a file imported twice, a mailbox whose UIDVALIDITY was
/// reset or whose POP3 UIDLs all changed — for mail without a Message-ID
/// and for mail that does not parse. The deciding plugin is kept beside the
/// message too, so every view can say who decided.
struct ContentHash;

impl MigrationName for ContentHash {
    fn name(&self) -> &str {
        "m20261201_000001_content_hash"
    }
}

/// Rows hashed per round trip while back-filling.
const BACKFILL_CHUNK: u64 = 200;

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for ContentHash {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            "messages",
            ["content_sha256", "decided_by"].map(|c| col(c).text().null().to_owned()),
        )
        .await?;
        backfill_content_hashes(manager.get_connection()).await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_messages_content \
                 ON messages (account_id, content_sha256) WHERE content_sha256 IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ux_messages_content")
            .await?;
        drop_columns(manager, "messages", &["content_sha256", "decided_by"]).await
    }
}

/// What `intake serve` keeps per account — state (ok, backing off,
/// disabled), the last check and its error, the next one, a check asked for
/// by a person, and the lease that lets one worker at a time work the
/// account — and the workers that are running, with their heartbeat.
struct AccountHealth;

impl MigrationName for AccountHealth {
    fn name(&self) -> &str {
        "m20261202_000001_account_health"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for AccountHealth {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut t = Table::create();
        t.table(a("account_health"))
            .if_not_exists()
            .col(col("account_id").big_integer().not_null().primary_key());
        tenant_col(&mut t, "account_health");
        fk(
            &mut t,
            "account_health",
            "account_id",
            "accounts",
            ForeignKeyAction::Cascade,
        );
        t.col(col("state").text().not_null())
            .col(col("consecutive_failures").integer().not_null())
            .col(col("retry_at").timestamp_with_time_zone().null())
            .col(col("disabled_reason").text().null())
            .col(col("disabled_at").timestamp_with_time_zone().null())
            .col(col("last_check_at").timestamp_with_time_zone().null())
            .col(col("last_success_at").timestamp_with_time_zone().null())
            .col(col("last_error_class").text().null())
            .col(col("last_error").text().null())
            .col(col("last_ingested").big_integer().null())
            .col(col("next_check_at").timestamp_with_time_zone().null())
            .col(col("check_requested_at").timestamp_with_time_zone().null())
            .col(col("lease_owner").text().null())
            .col(col("lease_until").timestamp_with_time_zone().null());
        manager.create_table(t.to_owned()).await?;
        manager
            .create_index(
                index(
                    "ix_account_health_next",
                    "account_health",
                    &["next_check_at"],
                )
                .to_owned(),
            )
            .await?;

        let mut t = Table::create();
        t.table(a("workers"))
            .if_not_exists()
            .col(col("id").text().not_null().primary_key())
            .col(col("host").text().not_null())
            .col(col("pid").big_integer().not_null())
            .col(col("started_at").timestamp_with_time_zone().not_null())
            .col(col("heartbeat_at").timestamp_with_time_zone().not_null())
            .col(col("stopped_at").timestamp_with_time_zone().null());
        manager.create_table(t.to_owned()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["workers", "account_health"] {
            manager
                .drop_table(Table::drop().table(a(name)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Hashes the raw bytes already stored, a chunk at a time so memory stays
/// flat. Rows without bytes (discarded) keep no hash. Where an account
/// already holds the same bytes twice — the duplicates this key exists to
/// stop — only the first copy is hashed, so the unique index can be built;
/// the copies stay as they are.
async fn backfill_content_hashes<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    use sha2::Digest;
    use std::collections::HashSet;

    let backend = db.get_database_backend();
    let mut seen: HashSet<(i64, [u8; 32])> = HashSet::new();
    let mut after: i64 = 0;
    loop {
        let select = Query::select()
            .columns([a("id"), a("account_id"), a("raw")])
            .from(a("messages"))
            .and_where(Expr::col(a("id")).gt(after))
            .and_where(Expr::col(a("raw")).is_not_null())
            .order_by(a("id"), Order::Asc)
            .limit(BACKFILL_CHUNK)
            .to_owned();
        let rows = db.query_all(backend.build(&select)).await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get::<i64>("", "id")?;
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            let Some(account) = row.try_get::<Option<i64>>("", "account_id")? else {
                continue;
            };
            let raw: Vec<u8> = row.try_get("", "raw")?;
            let digest: [u8; 32] = sha2::Sha256::digest(&raw).into();
            if !seen.insert((account, digest)) {
                continue;
            }
            let update = Query::update()
                .table(a("messages"))
                .value(a("content_sha256"), hex::encode(digest))
                .and_where(Expr::col(a("id")).eq(id))
                .to_owned();
            db.execute(backend.build(&update)).await?;
        }
    }
    Ok(())
}

/// PostgreSQL compresses a message's raw bytes with lz4 instead of pglz:
/// about ten times less server CPU per stored message for a similar size,
/// which was most of what a batch commit cost the server. Values already
/// stored keep their compression; SQLite has none. A server built without
/// lz4 keeps pglz.
struct RawLz4;

impl MigrationName for RawLz4 {
    fn name(&self) -> &str {
        "m20261202_000002_raw_lz4"
    }
}

/// Whether this PostgreSQL can compress with lz4.
async fn has_lz4(db: &SchemaManagerConnection<'_>) -> Result<bool, DbErr> {
    let row = db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 AS lz4 FROM pg_settings \
             WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)",
        ))
        .await?;
    Ok(row.is_some())
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for RawLz4 {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres && has_lz4(db).await? {
            db.execute_unprepared("ALTER TABLE messages ALTER COLUMN raw SET COMPRESSION lz4")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("ALTER TABLE messages ALTER COLUMN raw SET COMPRESSION default")
                .await?;
        }
        Ok(())
    }
}

/// Webhooks: each tenant's endpoints (URL, sealed signing secret, event
/// types, failing state), the outbox of events written in the same
/// transaction as what they report, and one delivery per (event,
/// endpoint) with its attempts, next attempt, lease and dead letter.
struct Webhooks;

impl MigrationName for Webhooks {
    fn name(&self) -> &str {
        "m20261203_000001_webhooks"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Webhooks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut t = table("webhook_endpoints");
        tenant_col(&mut t, "webhook_endpoints");
        t.col(col("url").text().not_null())
            .col(col("secret").blob().not_null())
            .col(col("event_types").text().not_null())
            .col(col("enabled").boolean().not_null())
            .col(col("description").text().null())
            .col(col("state").text().not_null())
            .col(col("consecutive_failures").integer().not_null())
            .col(col("failing_since").timestamp_with_time_zone().null());
        created_at(&mut t);
        t.col(col("updated_at").timestamp_with_time_zone().not_null());
        manager.create_table(t.to_owned()).await?;

        let mut t = table("webhook_events");
        tenant_col(&mut t, "webhook_events");
        t.col(col("event_id").text().not_null().unique_key())
            .col(col("event_type").text().not_null())
            .col(col("payload").text().not_null());
        created_at(&mut t);
        manager.create_table(t.to_owned()).await?;

        let mut t = table("webhook_deliveries");
        tenant_col(&mut t, "webhook_deliveries");
        t.col(col("event_id").big_integer().not_null())
            .col(col("endpoint_id").big_integer().not_null())
            .col(col("state").text().not_null())
            .col(col("attempts").integer().not_null())
            .col(col("next_attempt_at").timestamp_with_time_zone().null())
            .col(col("retry_from").timestamp_with_time_zone().not_null())
            .col(col("lease_owner").text().null())
            .col(col("lease_until").timestamp_with_time_zone().null())
            .col(col("last_attempt_at").timestamp_with_time_zone().null())
            .col(col("last_status").integer().null())
            .col(col("last_error").text().null())
            .col(col("delivered_at").timestamp_with_time_zone().null());
        created_at(&mut t);
        fk(
            &mut t,
            "webhook_deliveries",
            "event_id",
            "webhook_events",
            ForeignKeyAction::Cascade,
        );
        fk(
            &mut t,
            "webhook_deliveries",
            "endpoint_id",
            "webhook_endpoints",
            ForeignKeyAction::Cascade,
        );
        manager.create_table(t.to_owned()).await?;
        for i in [
            index(
                "ux_webhook_deliveries_event_endpoint",
                "webhook_deliveries",
                &["event_id", "endpoint_id"],
            )
            .unique()
            .to_owned(),
            index(
                "ix_webhook_deliveries_endpoint",
                "webhook_deliveries",
                &["tenant_id", "endpoint_id", "state"],
            )
            .to_owned(),
            index(
                "ix_webhook_endpoints_tenant",
                "webhook_endpoints",
                &["tenant_id"],
            )
            .to_owned(),
        ] {
            manager.create_index(i).await?;
        }
        // What the delivery loop scans: only pending rows, by endpoint and
        // due time; delivered and dead ones stay out of the index.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS ix_webhook_deliveries_due \
                 ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE state = 'pending'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["webhook_deliveries", "webhook_events", "webhook_endpoints"] {
            manager
                .drop_table(Table::drop().table(a(name)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// API tokens: a tenant's keys to the HTTP API. Only a SHA-256 of the
/// secret is kept; the public part (`lookup`) finds the row, so a leaked
/// token can be told apart from the others by its visible prefix.
struct ApiTokens;

impl MigrationName for ApiTokens {
    fn name(&self) -> &str {
        "m20261203_000002_api_tokens"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for ApiTokens {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut t = table("api_tokens");
        tenant_col(&mut t, "api_tokens");
        t.col(col("lookup").text().not_null())
            .col(col("secret_sha256").text().not_null())
            .col(col("name").text().not_null())
            .col(col("scope").text().not_null())
            .col(col("created_at").timestamp_with_time_zone().not_null())
            .col(col("last_used_at").timestamp_with_time_zone().null())
            .col(col("revoked_at").timestamp_with_time_zone().null());
        manager.create_table(t.to_owned()).await?;
        manager
            .create_index(
                index("ux_api_tokens_lookup", "api_tokens", &["lookup"])
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index("ix_api_tokens_tenant", "api_tokens", &["tenant_id", "id"]).to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(a("api_tokens")).if_exists().to_owned())
            .await
    }
}

/// The inbox filtered by date (the API's `since`/`until`): an index on the
/// message's `Date` beside when it was stored, so a day's window is a range
/// read instead of a walk through the tenant's messages.
struct MessageDates;

impl MigrationName for MessageDates {
    fn name(&self) -> &str {
        "m20261203_000003_message_dates"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for MessageDates {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                index(
                    "ix_messages_date",
                    "messages",
                    &["tenant_id", "date", "created_at"],
                )
                .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_messages_date")
                    .table(a("messages"))
                    .to_owned(),
            )
            .await
    }
}

/// An account can pin the one server certificate it accepts.
struct CertificatePins;

impl MigrationName for CertificatePins {
    fn name(&self) -> &str {
        "m20261204_000001_certificate_pins"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CertificatePins {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            "accounts",
            [col("pinned_certificate").text().null().to_owned()],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(manager, "accounts", &["pinned_certificate"]).await
    }
}

/// OAuth2 sign-in: the operator's providers (client id and sealed secret,
/// endpoints, scopes), and on a credential the provider it was authorized
/// with and the current access token (sealed) with its expiry. The
/// credential's sealed secret is then the refresh token.
struct OAuth;

impl MigrationName for OAuth {
    fn name(&self) -> &str {
        "m20261204_000002_oauth"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for OAuth {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut t = table("oauth_providers");
        t.col(col("name").text().not_null().unique_key())
            .col(col("kind").text().not_null())
            .col(col("client_id").text().not_null())
            .col(col("client_secret").blob().null())
            .col(col("auth_url").text().not_null())
            .col(col("token_url").text().not_null())
            .col(col("scopes").text().not_null())
            .col(col("created_at").timestamp_with_time_zone().not_null());
        manager.create_table(t.to_owned()).await?;
        add_columns(
            manager,
            "credentials",
            [
                col("oauth_provider").text().null().to_owned(),
                col("access_token").blob().null().to_owned(),
                col("access_expires_at")
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(
            manager,
            "credentials",
            &["oauth_provider", "access_token", "access_expires_at"],
        )
        .await?;
        manager
            .drop_table(Table::drop().table(a("oauth_providers")).to_owned())
            .await
    }
}

/// How far a running check has got (messages committed of those listed),
/// written every few seconds by the worker, for a progress display while
/// a long first sync runs.
struct CheckProgress;

impl MigrationName for CheckProgress {
    fn name(&self) -> &str {
        "m20261205_000001_check_progress"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CheckProgress {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            "account_health",
            [
                col("progress_done").big_integer().null().to_owned(),
                col("progress_total").big_integer().null().to_owned(),
                col("progress_at")
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(
            manager,
            "account_health",
            &["progress_done", "progress_total", "progress_at"],
        )
        .await
    }
}

/// Explainable decisions: how the chain decided each message (every
/// plugin's answer and time, its component hash and configuration version,
/// who decided), as compact JSON in the message's own row, written by the
/// same insert.
struct DecisionRecords;

impl MigrationName for DecisionRecords {
    fn name(&self) -> &str {
        "m20261210_000001_decision_records"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for DecisionRecords {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            "messages",
            [col("decision").text().null().to_owned()],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_columns(manager, "messages", &["decision"]).await
    }
}

/// Deferred messages: a quarantine entry of kind `temporary` is a message a
/// plugin could not decide for now (contract 0.2.0's temporary error). It
/// counts its attempts and says when the next one is due; the account's
/// next run decides it again. Existing entries are kind `held`.
struct QuarantineRetry;

impl MigrationName for QuarantineRetry {
    fn name(&self) -> &str {
        "m20261220_000001_quarantine_retry"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for QuarantineRetry {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_columns(
            manager,
            "quarantine",
            [
                col("kind").string().not_null().default("held").to_owned(),
                col("attempts").integer().not_null().default(0).to_owned(),
                col("next_attempt_at")
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
            ],
        )
        .await?;
        // The due deferrals of an account, found at the start of each run.
        manager
            .create_index(
                index(
                    "ix_quarantine_due",
                    "quarantine",
                    &["account_id", "kind", "next_attempt_at"],
                )
                .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_quarantine_due")
                    .table(a("quarantine"))
                    .to_owned(),
            )
            .await?;
        drop_columns(
            manager,
            "quarantine",
            &["kind", "attempts", "next_attempt_at"],
        )
        .await
    }
}

/// Secrets of a plugin binding (a CRM's API token), sealed with the master
/// key, handed to that binding's instances only. Keyed by the binding's
/// name, so a new component under the same name keeps them; removed with
/// the binding (by the store) or the tenant (by the foreign key).
struct PluginSecrets;

impl MigrationName for PluginSecrets {
    fn name(&self) -> &str {
        "m20261221_000001_plugin_secrets"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for PluginSecrets {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut t = table("plugin_secrets");
        tenant_col(&mut t, "plugin_secrets");
        t.col(col("binding").text().not_null())
            .col(col("name").text().not_null())
            .col(col("secret").blob().not_null());
        created_at(&mut t);
        manager.create_table(t.to_owned()).await?;
        manager
            .create_index(
                index(
                    "ux_plugin_secrets_name",
                    "plugin_secrets",
                    &["tenant_id", "binding", "name"],
                )
                .unique()
                .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(a("plugin_secrets")).to_owned())
            .await
    }
}

/// Plugin versions: a binding keeps numbered versions (component,
/// configuration, limits), one active and at most one candidate rolled out
/// to a share of the mail or to chosen accounts (a canary). Components are
/// kept once per tenant by SHA-256 in `plugin_components`, so a version
/// that only changes the configuration costs no bytes; the binding's own
/// `wasm` column is left empty from here on. Every existing binding becomes
/// its version 1, active.
struct PluginVersions;

impl MigrationName for PluginVersions {
    fn name(&self) -> &str {
        "m20261222_000001_plugin_versions"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for PluginVersions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut t = table("plugin_components");
        tenant_col(&mut t, "plugin_components");
        t.col(col("sha256").text().not_null())
            .col(col("wasm").blob().not_null());
        created_at(&mut t);
        manager.create_table(t.to_owned()).await?;

        let mut t = table("plugin_versions");
        tenant_col(&mut t, "plugin_versions");
        t.col(col("binding_id").big_integer().not_null())
            .col(col("version").integer().not_null())
            .col(col("component_sha256").text().not_null())
            .col(col("config").text().not_null())
            .col(col("limits").text().not_null());
        created_at(&mut t);
        t.col(col("activated_at").timestamp_with_time_zone().null())
            .col(col("rolled_back_at").timestamp_with_time_zone().null());
        fk(
            &mut t,
            "plugin_versions",
            "binding_id",
            "plugin_bindings",
            ForeignKeyAction::Cascade,
        );
        manager.create_table(t.to_owned()).await?;
        for i in [
            index(
                "ux_plugin_components_sha256",
                "plugin_components",
                &["tenant_id", "sha256"],
            )
            .unique()
            .to_owned(),
            index(
                "ux_plugin_versions_number",
                "plugin_versions",
                &["binding_id", "version"],
            )
            .unique()
            .to_owned(),
            index(
                "ix_plugin_versions_component",
                "plugin_versions",
                &["tenant_id", "component_sha256"],
            )
            .to_owned(),
        ] {
            manager.create_index(i).await?;
        }
        add_columns(
            manager,
            "plugin_bindings",
            [
                col("active_version")
                    .integer()
                    .not_null()
                    .default(1)
                    .to_owned(),
                col("candidate_version").integer().null().to_owned(),
                col("canary_share_bp").integer().null().to_owned(),
                col("canary_accounts").text().null().to_owned(),
            ],
        )
        .await?;
        backfill_versions(manager.get_connection()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The bytes go back to the bindings: each its active component.
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE plugin_bindings SET wasm = (SELECT c.wasm FROM plugin_versions v \
             JOIN plugin_components c ON c.tenant_id = v.tenant_id AND c.sha256 = v.component_sha256 \
             WHERE v.binding_id = plugin_bindings.id AND v.version = plugin_bindings.active_version)",
        )
        .await?;
        drop_columns(
            manager,
            "plugin_bindings",
            &[
                "active_version",
                "candidate_version",
                "canary_share_bp",
                "canary_accounts",
            ],
        )
        .await?;
        for name in ["plugin_versions", "plugin_components"] {
            manager
                .drop_table(Table::drop().table(a(name)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Makes every binding its own version 1: its component into
/// `plugin_components` (once per tenant and hash), its configuration and
/// limits into `plugin_versions`, then empties its `wasm`. One binding at a
/// time, so memory holds one component.
async fn backfill_versions<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    use sha2::Digest;
    let backend = db.get_database_backend();
    let ids = db
        .query_all(
            backend.build(
                Query::select()
                    .column(a("id"))
                    .from(a("plugin_bindings"))
                    .order_by(a("id"), Order::Asc),
            ),
        )
        .await?;
    for row in ids {
        let id: i64 = row.try_get("", "id")?;
        let Some(binding) = db
            .query_one(
                backend.build(
                    Query::select()
                        .columns([
                            a("tenant_id"),
                            a("wasm"),
                            a("config"),
                            a("limits"),
                            a("created_at"),
                        ])
                        .from(a("plugin_bindings"))
                        .and_where(Expr::col(a("id")).eq(id)),
                ),
            )
            .await?
        else {
            continue;
        };
        let tenant: i64 = binding.try_get("", "tenant_id")?;
        let wasm: Vec<u8> = binding.try_get("", "wasm")?;
        let config: String = binding.try_get("", "config")?;
        let limits: String = binding.try_get("", "limits")?;
        let created: chrono::DateTime<chrono::Utc> = binding.try_get("", "created_at")?;
        let sha256 = hex::encode(sha2::Sha256::digest(&wasm));
        let known = db
            .query_one(
                backend.build(
                    Query::select()
                        .column(a("id"))
                        .from(a("plugin_components"))
                        .and_where(Expr::col(a("tenant_id")).eq(tenant))
                        .and_where(Expr::col(a("sha256")).eq(sha256.clone())),
                ),
            )
            .await?
            .is_some();
        if !known {
            db.execute(
                backend.build(
                    Query::insert()
                        .into_table(a("plugin_components"))
                        .columns([a("tenant_id"), a("sha256"), a("wasm"), a("created_at")])
                        .values_panic([
                            tenant.into(),
                            sha256.clone().into(),
                            wasm.into(),
                            created.into(),
                        ]),
                ),
            )
            .await?;
        }
        db.execute(
            backend.build(
                Query::insert()
                    .into_table(a("plugin_versions"))
                    .columns([
                        a("tenant_id"),
                        a("binding_id"),
                        a("version"),
                        a("component_sha256"),
                        a("config"),
                        a("limits"),
                        a("created_at"),
                        a("activated_at"),
                    ])
                    .values_panic([
                        tenant.into(),
                        id.into(),
                        1.into(),
                        sha256.into(),
                        config.into(),
                        limits.into(),
                        created.into(),
                        created.into(),
                    ]),
            ),
        )
        .await?;
        db.execute(
            backend.build(
                Query::update()
                    .table(a("plugin_bindings"))
                    .value(a("wasm"), Vec::<u8>::new())
                    .and_where(Expr::col(a("id")).eq(id)),
            ),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectOptions, Database, Statement};

    async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
        let row = db
            .query_one(Statement::from_string(DbBackend::Sqlite, sql))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// A store from before plugin versions: every binding becomes its own
    /// version 1, active, its bytes moved once per tenant and hash into
    /// `plugin_components`, and the store reads the same chain as before.
    #[tokio::test]
    async fn bindings_become_their_version_one() {
        use sha2::Digest;
        let mut options = ConnectOptions::new("sqlite::memory:");
        options.max_connections(1).min_connections(1);
        let db = Database::connect(options).await.unwrap();
        Migrator::up(&db, Some(11)).await.unwrap();
        db.execute_unprepared(
            "INSERT INTO tenants (name, created_at) VALUES ('acme', '2026-01-01T00:00:00Z')",
        )
        .await
        .unwrap();
        // Two bindings with the same component, one with another.
        for (position, name, wasm, config) in [
            (0, "exact", "X'616161'", r#"{"a":1}"#),
            (1, "exact2", "X'616161'", r#"{"a":2}"#),
            (2, "policy", "X'626262'", "{}"),
        ] {
            db.execute_unprepared(&format!(
                "INSERT INTO plugin_bindings (tenant_id, position, name, role, wasm, config, limits, \
                 failure_policy, enabled, created_at) VALUES (1, {position}, '{name}', 'matcher', \
                 {wasm}, '{config}', '{limits}', 'quarantine', true, '2026-01-01T00:00:00Z')",
                limits = serde_json::to_string(&crate::plugin::Limits::default()).unwrap(),
            ))
            .await
            .unwrap();
        }
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM plugin_components").await,
            2
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM plugin_versions WHERE version = 1 AND activated_at IS NOT NULL"
            )
            .await,
            3
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM plugin_bindings WHERE length(wasm) > 0"
            )
            .await,
            0
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM plugin_bindings WHERE active_version = 1"
            )
            .await,
            3
        );
        let store = crate::store::Store::sqlite(db);
        let tenant = store.ensure_tenant("acme").await.unwrap();
        let bindings = store.bindings(tenant).await.unwrap();
        let seen: Vec<(&str, &[u8], u32, &str)> = bindings
            .iter()
            .map(|b| {
                (
                    b.name.as_str(),
                    b.wasm.as_ref(),
                    b.version,
                    b.config.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("exact", b"aaa".as_slice(), 1, r#"{"a":1}"#),
                ("exact2", b"aaa".as_slice(), 1, r#"{"a":2}"#),
                ("policy", b"bbb".as_slice(), 1, "{}"),
            ]
        );
        let listed = store.binding_versions(tenant, "policy").await.unwrap();
        assert_eq!(
            listed.versions[0].component_sha256,
            hex::encode(sha2::Sha256::digest(b"bbb"))
        );
    }

    /// A store from before the content key: its rows get hashes, a
    /// duplicate already there keeps none (so the unique index builds), and
    /// from then on the same bytes are refused.
    #[tokio::test]
    async fn content_keys_are_back_filled_once_per_account() {
        let mut options = ConnectOptions::new("sqlite::memory:");
        options.max_connections(1).min_connections(1);
        let db = Database::connect(options).await.unwrap();
        Migrator::up(&db, Some(1)).await.unwrap();
        // Rows only: the accounts they point at do not matter here.
        db.execute_unprepared("PRAGMA foreign_keys = OFF")
            .await
            .unwrap();
        for (account, raw) in [
            (1, "X'6f6e65'"), // "one"
            (1, "X'6f6e65'"), // "one" again: an old duplicate
            (1, "X'74776f'"), // "two"
            (2, "X'6f6e65'"), // "one" in another account
            (1, "NULL"),      // discarded: no bytes
        ] {
            db.execute_unprepared(&format!(
                "INSERT INTO messages (tenant_id, account_id, size, raw, status, created_at) \
                 VALUES (1, {account}, 3, {raw}, 'stored', '2026-01-01T00:00:00Z')"
            ))
            .await
            .unwrap();
        }
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM messages WHERE content_sha256 IS NOT NULL"
            )
            .await,
            3
        );
        let one = crate::store::batch::content_key(b"one");
        assert_eq!(
            count(
                &db,
                &format!("SELECT COUNT(*) FROM messages WHERE content_sha256 = '{one}'")
            )
            .await,
            2
        );
        let again = db
            .execute_unprepared(&format!(
                "INSERT INTO messages (tenant_id, account_id, size, raw, status, created_at, content_sha256) \
                 VALUES (1, 1, 3, X'6f6e65', 'stored', '2026-01-01T00:00:00Z', '{one}') ON CONFLICT DO NOTHING"
            ))
            .await
            .unwrap();
        assert_eq!(again.rows_affected(), 0);
    }
}
