//! The store against real databases: every test runs on SQLite (a temporary
//! file) and on PostgreSQL (a fresh database per test, dropped afterwards).
//!
//! PostgreSQL is found at `$INTAKE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432`, trust auth). It is required: an
//! unreachable server fails the PostgreSQL tests with a hint, unless
//! `INTAKE_TEST_POSTGRES=skip` says to skip them.

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use intake::directory::{Directory, MemoryDirectory, Party, PartyKind, PartyRef};
use intake::domain::{
    Acknowledge, Auth, CursorAdvance, DecisionRecord, DecisionStep, FetchMode, MessageKey, Outcome,
    Protocol, Secret, Security,
};
use intake::plugin::{FailurePolicy, Limits, WasmSource};
use intake::store::{
    AccountConfig, AccountId, BatchCommit, BindingRole, Error, FirstSync, IncomingMessage,
    KeyError, MasterKey, MessageMeta, MessageQuery, MessageResult, MessageStatus, NewBinding,
    NewParty, NewVersion, PartyFilter, ProxyConfig, ReplayUpdate, RolledBack, Store,
    StoredMessageId, TenantId, Upserted,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

use intake_tests::databases::Db;
use intake_tests::on_both_databases;

on_both_databases!(
    migrations_are_idempotent,
    credentials_are_sealed_at_rest,
    accounts_round_trip_to_settings,
    tenants_never_see_each_other,
    directory_look_ups_match_the_memory_directory,
    commit_batch_stores_every_outcome,
    recommitting_a_batch_stores_nothing_twice,
    message_id_backstop_survives_a_uidvalidity_change,
    content_key_backstop_covers_mail_without_message_id,
    a_batch_in_many_statements_keeps_each_result_in_place,
    a_lead_is_created_once,
    concurrent_commits_create_one_lead,
    cursors_only_move_forward,
    pending_actions_lifecycle,
    many_actions_complete_at_once,
    quarantine_release_and_drop,
    inbox_filters_and_pages,
    bindings_keep_their_order,
    binding_versions_canary_promote_and_roll_back,
    parties_upsert_and_import,
    replay_pages_records_and_applies_decisions,
);

// ---------------------------------------------------------------------------
// Helpers

fn key() -> MasterKey {
    MasterKey::from_bytes([42; 32])
}

async fn raw_connection(db: &Db) -> DatabaseConnection {
    Database::connect(&db.url).await.unwrap()
}

async fn count(conn: &DatabaseConnection, sql: &str) -> i64 {
    let row = conn
        .query_one(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// A tenant with a credential `login` and an IMAP account `name`.
async fn imap_account(db: &Db, tenant: &str, name: &str) -> (TenantId, AccountId) {
    let t = db.store.ensure_tenant(tenant).await.unwrap();
    if db.store.credential(t, "login", &key()).await.is_err() {
        db.store
            .add_credential(t, "login", "user", &Secret::new("pw"), &key())
            .await
            .unwrap();
    }
    let config = AccountConfig::new(name, Protocol::Imap, "imap.example", Security::Tls, "login");
    let a = db.store.add_account(t, &config).await.unwrap();
    (t, a)
}

async fn contact(db: &Db, tenant: TenantId, email: &str) -> Party {
    party(db, tenant, PartyKind::Contact, email).await
}

async fn party(db: &Db, tenant: TenantId, kind: PartyKind, email: &str) -> Party {
    let id = db
        .store
        .upsert_party(
            tenant,
            &NewParty {
                kind,
                email: email.into(),
                name: Some(format!("Name of {email}")),
                company: None,
                external_id: None,
            },
        )
        .await
        .unwrap()
        .id();
    db.store.party(tenant, id).await.unwrap().unwrap()
}

/// A message from an imported file: no server key.
fn file() -> MessageKey {
    MessageKey::File {
        path: "a.eml".into(),
        offset: 0,
    }
}

fn imap(folder: &str, uid_validity: u32, uid: u32) -> MessageKey {
    MessageKey::Imap {
        folder: folder.into(),
        uid_validity,
        uid,
    }
}

fn raw(message_id: Option<&str>, from: &str, subject: &str) -> bytes::Bytes {
    let id = message_id.map_or(String::new(), |id| format!("Message-ID: <{id}>\r\n"));
    let mut bytes =
        format!("From: {from}\r\nTo: sales@ourco.example\r\nSubject: {subject}\r\n{id}\r\nCaf")
            .into_bytes();
    // Latin-1 and a stray NUL: the store keeps bytes, not text.
    bytes.extend_from_slice(b"\xe9 \x00\xff\r\n");
    bytes::Bytes::from(bytes)
}

fn incoming(
    key: MessageKey,
    message_id: Option<&str>,
    from: &str,
    outcome: Outcome,
) -> IncomingMessage {
    let subject = format!("about {from}");
    IncomingMessage {
        key,
        raw: raw(message_id, from, &subject),
        meta: MessageMeta {
            message_id: message_id.map(|id| format!("<{id}>")),
            subject: Some(subject),
            from: Some(from.into()),
            date: Some(Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()),
        },
        outcome,
        action: None,
        decided_by: None,
        decision: None,
    }
}

fn batch(messages: Vec<IncomingMessage>) -> BatchCommit {
    BatchCommit {
        messages,
        ..BatchCommit::default()
    }
}

fn attach(parties: &[&Party]) -> Outcome {
    Outcome::Attach(parties.iter().map(|p| p.to_ref()).collect())
}

fn lead(email: &str) -> Outcome {
    Outcome::CreateLead {
        email: email.into(),
        name: Some("New Person".into()),
        company: Some("New Co".into()),
    }
}

fn emails(parties: &[Party]) -> Vec<String> {
    let mut e: Vec<String> = parties.iter().map(|p| p.email.clone()).collect();
    e.sort();
    e
}

fn all() -> MessageQuery {
    MessageQuery {
        limit: 1000,
        ..MessageQuery::default()
    }
}

// ---------------------------------------------------------------------------
// Tests

async fn migrations_are_idempotent(db: Db) {
    let tenant = db.store.ensure_tenant("acme").await.unwrap();
    // Two more connects on the same database: migrations already applied
    // are not applied again, and nothing is lost.
    for _ in 0..2 {
        let again = Store::connect(&db.url).await.unwrap();
        assert_eq!(again.ensure_tenant("acme").await.unwrap(), tenant);
        again.close().await.unwrap();
    }
    let conn = raw_connection(&db).await;
    // One row per migration: the initial schema, the content key, account
    // health, lz4 for raw bytes, webhooks, API tokens, message dates,
    // certificate pins, OAuth2, check progress, decision records,
    // quarantine retry (deferred messages), plugin secrets and plugin
    // versions.
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM seaql_migrations").await,
        14
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM tenants").await, 1);
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        // This server has lz4 (Debian's PostgreSQL 15 does).
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM pg_attribute WHERE attrelid = 'messages'::regclass \
                 AND attname = 'raw' AND attcompression = 'l'"
            )
            .await,
            1
        );
    }
    if conn.get_database_backend() == sea_orm::DbBackend::Sqlite {
        let journal = conn
            .query_one(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "PRAGMA journal_mode",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<String>(0)
            .unwrap();
        // WAL is a property of the file, so any connection reports it.
        assert_eq!(journal, "wal");

        // Workers starting together on a fresh file take turns migrating.
        let dir = tempfile::tempdir().unwrap();
        let fresh = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("fresh.db").display()
        );
        let opens = (0..4).map(|_| {
            let url = fresh.clone();
            tokio::spawn(async move { Store::connect(&url).await })
        });
        for opened in futures::future::join_all(opens).await {
            let store = opened.unwrap().expect("concurrent first open");
            store.ensure_tenant("t").await.unwrap();
        }

        // An in-memory database is migrated on its single connection.
        let memory = Store::connect("sqlite::memory:").await.unwrap();
        let t = memory.ensure_tenant("t").await.unwrap();
        assert!(!memory.has_bindings(t).await.unwrap());
    } else {
        // Workers starting together on a migrated database: nothing to do,
        // and none of them fails.
        let opens = (0..4).map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { Store::connect(&url).await })
        });
        for opened in futures::future::join_all(opens).await {
            opened
                .unwrap()
                .expect("concurrent open")
                .close()
                .await
                .unwrap();
        }
    }
    // One row per migration: the initial schema, the content key, account
    // health, lz4 for raw bytes, webhooks, API tokens, message dates,
    // certificate pins, OAuth2, check progress, decision records,
    // quarantine retry (deferred messages), plugin secrets and plugin
    // versions.
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM seaql_migrations").await,
        14
    );
}

async fn credentials_are_sealed_at_rest(db: Db) {
    let s = &db.store;
    let t = s.ensure_tenant("acme").await.unwrap();
    let other = s.ensure_tenant("globex").await.unwrap();
    let secret = "correct horse battery staple";
    s.add_credential(t, "mailbox", "ann", &Secret::new(secret), &key())
        .await
        .unwrap();

    let listed = s.credentials(t).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].username.as_str()),
        ("mailbox", "ann")
    );
    assert!(s.credentials(other).await.unwrap().is_empty());

    let opened = s.credential(t, "mailbox", &key()).await.unwrap();
    assert_eq!(opened.secret.expose(), secret);
    assert_eq!(opened.username, "ann");
    assert!(
        !format!("{opened:?}").contains(secret),
        "Debug shows the secret"
    );
    assert!(!format!("{listed:?}").contains(secret));

    // The wrong key is a typed error naming the credential.
    let wrong = MasterKey::from_bytes([1; 32]);
    match s.credential(t, "mailbox", &wrong).await {
        Err(Error::WrongKey { credential }) => assert_eq!(credential, "mailbox"),
        other => panic!("expected WrongKey, got {other:?}"),
    }
    // Another tenant cannot read it, even with the right key.
    assert!(matches!(
        s.credential(other, "mailbox", &key()).await,
        Err(Error::NotFound { .. })
    ));

    // The database holds only ciphertext.
    let conn = raw_connection(&db).await;
    let row = conn
        .query_one(Statement::from_string(
            conn.get_database_backend(),
            "SELECT secret FROM credentials",
        ))
        .await
        .unwrap()
        .unwrap();
    let sealed: Vec<u8> = row.try_get_by_index(0).unwrap();
    assert!(sealed.len() >= 12 + secret.len() + 16);
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));

    assert!(matches!(
        s.add_credential(t, "mailbox", "x", &Secret::new("y"), &key())
            .await,
        Err(Error::AlreadyExists { .. })
    ));

    // Rotation re-seals; in use it cannot be removed, unused it can.
    s.update_credential(t, "mailbox", "ann2", &Secret::new("new"), &key())
        .await
        .unwrap();
    assert_eq!(
        s.credential(t, "mailbox", &key())
            .await
            .unwrap()
            .secret
            .expose(),
        "new"
    );
    let config = AccountConfig::new("inbox", Protocol::Imap, "h", Security::Tls, "mailbox");
    s.add_account(t, &config).await.unwrap();
    assert!(matches!(
        s.remove_credential(t, "mailbox").await,
        Err(Error::InUse { .. })
    ));
    s.remove_account(t, "inbox").await.unwrap();
    s.remove_credential(t, "mailbox").await.unwrap();
    assert!(s.credentials(t).await.unwrap().is_empty());

    // Key sources: a file with base64 or raw bytes; clear errors otherwise.
    let dir = tempfile::tempdir().unwrap();
    let b64 = dir.path().join("key.b64");
    std::fs::write(&b64, format!("{}\n", key().to_base64())).unwrap();
    let from_file = MasterKey::from_env_or_file(Some(&b64)).unwrap();
    s.add_credential(t, "k", "u", &Secret::new("p"), &from_file)
        .await
        .unwrap();
    let raw_file = dir.path().join("key.bin");
    std::fs::write(&raw_file, [42u8; 32]).unwrap();
    let from_raw = MasterKey::from_env_or_file(Some(&raw_file)).unwrap();
    assert_eq!(
        s.credential(t, "k", &from_raw)
            .await
            .unwrap()
            .secret
            .expose(),
        "p"
    );
    let short = dir.path().join("short");
    std::fs::write(&short, "c2hvcnQ=").unwrap();
    let err = MasterKey::from_env_or_file(Some(&short)).unwrap_err();
    assert!(matches!(err, KeyError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("5 bytes, not 32"), "{err}");
    let missing = MasterKey::from_env_or_file(Some(&dir.path().join("nope"))).unwrap_err();
    assert!(matches!(missing, KeyError::Read { .. }), "{missing}");
    if std::env::var_os(intake::store::MASTER_KEY_ENV).is_none() {
        let none = MasterKey::from_env_or_file(None).unwrap_err();
        assert!(none.to_string().contains("INTAKE_MASTER_KEY"), "{none}");
    }
    assert_eq!(format!("{from_file:?}"), "MasterKey(***)");
}

async fn accounts_round_trip_to_settings(db: Db) {
    let s = &db.store;
    let t = s.ensure_tenant("acme").await.unwrap();
    s.add_credential(
        t,
        "login",
        "ann@acme.example",
        &Secret::new("imap-pw"),
        &key(),
    )
    .await
    .unwrap();
    s.add_credential(t, "proxy", "socks-user", &Secret::new("socks-pw"), &key())
        .await
        .unwrap();

    let mut config = AccountConfig::new(
        "sales",
        Protocol::Imap,
        "imap.acme.example",
        Security::Starttls,
        "login",
    );
    config.port = Some(1143);
    config.auth = Auth::Plain;
    config.verify_certificate = false;
    config.ca_file = Some("/etc/intake/ca.pem".into());
    config.keep_on_server = false;
    config.auto_check = false;
    config.check_interval_secs = 900;
    config.enabled = false;
    config.proxy = Some(ProxyConfig {
        host: "proxy.example".into(),
        port: 1080,
        credential: Some("proxy".into()),
    });
    config.folders = vec!["INBOX".into(), "Sales/Leads".into()];
    config.mode = FetchMode::Unseen;
    config.max_message_bytes = 10 << 20;
    config.first_sync = FirstSync {
        since: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        max_messages: Some(500),
    };
    config.batch_size = 25;
    let id = s.add_account(t, &config).await.unwrap();

    let stored = s.account(t, "sales").await.unwrap();
    assert_eq!(stored.id, id);
    assert_eq!(stored.config, config);
    assert_eq!(stored.last_commit_at, None);
    assert_eq!(s.accounts(t).await.unwrap().len(), 1);
    assert_eq!(s.account_id(t, "sales").await.unwrap(), id);

    let settings = s.settings(t, "sales", &key()).await.unwrap();
    assert_eq!(settings.name, "sales");
    assert_eq!(settings.protocol, Protocol::Imap);
    assert_eq!(settings.host, "imap.acme.example");
    assert_eq!(settings.effective_port(), 1143);
    assert_eq!(settings.security, Security::Starttls);
    assert_eq!(settings.username, "ann@acme.example");
    assert_eq!(settings.password.expose(), "imap-pw");
    assert_eq!(settings.auth, Auth::Plain);
    assert!(!settings.verify_certificate);
    assert_eq!(
        settings.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/intake/ca.pem"))
    );
    assert!(!settings.keep_on_server);
    let proxy = settings.proxy.as_ref().unwrap();
    assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.example", 1080));
    assert_eq!(proxy.username.as_deref(), Some("socks-user"));
    assert_eq!(proxy.password.as_ref().unwrap().expose(), "socks-pw");
    assert_eq!(settings.folders, vec!["INBOX", "Sales/Leads"]);
    assert_eq!(settings.mode, FetchMode::Unseen);
    assert_eq!(settings.max_message_bytes, 10 << 20);
    assert_eq!(settings.batch_size, 25);
    assert!(!format!("{settings:?}").contains("imap-pw"));

    // Update by full replace, with a rename.
    let mut changed = config.clone();
    changed.name = "sales-eu".into();
    changed.protocol = Protocol::Pop3;
    changed.security = Security::Tls;
    changed.port = None;
    changed.proxy = None;
    s.update_account(t, "sales", &changed).await.unwrap();
    assert!(matches!(
        s.account(t, "sales").await,
        Err(Error::NotFound { .. })
    ));
    let settings = s.settings(t, "sales-eu", &key()).await.unwrap();
    assert_eq!(settings.protocol, Protocol::Pop3);
    assert_eq!(settings.effective_port(), 995);
    assert_eq!(settings.folders, vec!["INBOX"], "POP3 reads only the inbox");
    assert!(settings.proxy.is_none());

    // Names are unique per tenant, not across tenants.
    let mut dup = AccountConfig::new("sales-eu", Protocol::Imap, "h", Security::Tls, "login");
    assert!(matches!(
        s.add_account(t, &dup).await,
        Err(Error::AlreadyExists { .. })
    ));
    dup.credential = "nope".into();
    assert!(matches!(
        s.add_account(t, &dup).await,
        Err(Error::NotFound {
            what: "credential",
            ..
        })
    ));
    let other = s.ensure_tenant("globex").await.unwrap();
    assert!(s.accounts(other).await.unwrap().is_empty());
    assert!(matches!(
        s.account(other, "sales-eu").await,
        Err(Error::NotFound { .. })
    ));
    // Another tenant's credential names do not resolve here.
    let foreign = AccountConfig::new("x", Protocol::Imap, "h", Security::Tls, "login");
    assert!(matches!(
        s.add_account(other, &foreign).await,
        Err(Error::NotFound { .. })
    ));
    let mut bad = AccountConfig::new("", Protocol::Imap, "h", Security::Tls, "login");
    assert!(matches!(
        s.add_account(t, &bad).await,
        Err(Error::Invalid { .. })
    ));
    bad.name = "no-folders".into();
    bad.folders.clear();
    assert!(matches!(
        s.add_account(t, &bad).await,
        Err(Error::Invalid { .. })
    ));

    // Removing an account keeps its messages, no longer tied to it.
    s.commit_batch(
        t,
        id,
        &batch(vec![incoming(
            MessageKey::Pop3 { uidl: "u1".into() },
            Some("kept@x"),
            "a@b.example",
            Outcome::KeepUnlinked,
        )]),
    )
    .await
    .unwrap();
    assert!(
        s.account(t, "sales-eu")
            .await
            .unwrap()
            .last_commit_at
            .is_some()
    );
    s.remove_account(t, "sales-eu").await.unwrap();
    assert!(matches!(
        s.remove_account(t, "sales-eu").await,
        Err(Error::NotFound { .. })
    ));
    let left = s.messages(t, &all()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].account, None);
}

async fn tenants_never_see_each_other(db: Db) {
    let s = &db.store;
    let (a, acc_a) = imap_account(&db, "acme", "inbox").await;
    let (b, acc_b) = imap_account(&db, "globex", "inbox").await;
    let ann_a = contact(&db, a, "ann@shared.example").await;
    let ann_b = contact(&db, b, "ann@shared.example").await;
    assert_ne!(ann_a.id, ann_b.id);

    let dir = s.directory();
    let found = dir
        .find_by_address("acme", "ann@shared.example", 10)
        .await
        .unwrap();
    assert_eq!(found.parties, vec![ann_a.clone()]);
    let found = dir
        .find_by_domain("globex", "shared.example", 10)
        .await
        .unwrap();
    assert_eq!(found.parties, vec![ann_b.clone()]);
    assert_eq!(dir.get("globex", &ann_a.to_ref()).await.unwrap(), None);
    assert_eq!(
        dir.get("acme", &ann_a.to_ref()).await.unwrap(),
        Some(ann_a.clone())
    );
    assert!(
        dir.find_by_domain("initech", "shared.example", 10)
            .await
            .unwrap()
            .parties
            .is_empty()
    );

    // The same Message-ID in both tenants, linked to each tenant's party.
    s.commit_batch(
        a,
        acc_a,
        &batch(vec![incoming(
            imap("INBOX", 1, 1),
            Some("same@x"),
            "ann@shared.example",
            attach(&[&ann_a]),
        )]),
    )
    .await
    .unwrap();
    s.commit_batch(
        b,
        acc_b,
        &batch(vec![incoming(
            imap("INBOX", 1, 1),
            Some("same@x"),
            "ann@shared.example",
            attach(&[&ann_b]),
        )]),
    )
    .await
    .unwrap();
    let thread = dir
        .parties_for_message_id("acme", "same@x", 10)
        .await
        .unwrap();
    assert_eq!(thread.parties, vec![ann_a.clone()]);
    let thread = dir
        .parties_for_message_id("globex", "<same@x>", 10)
        .await
        .unwrap();
    assert_eq!(thread.parties, vec![ann_b.clone()]);

    // Inbox views and single-message reads stay in their tenant.
    let in_a = s.messages(a, &all()).await.unwrap();
    let in_b = s.messages(b, &all()).await.unwrap();
    assert_eq!((in_a.len(), in_b.len()), (1, 1));
    assert_eq!(in_a[0].parties, vec![ann_a.clone()]);
    assert!(s.message(b, in_a[0].id).await.unwrap().is_none());
    assert!(
        s.messages(
            b,
            &MessageQuery {
                account: Some(acc_a),
                ..all()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert!(
        s.party(b, intake::store::PartyId(ann_a.id.parse().unwrap()))
            .await
            .unwrap()
            .is_none()
    );

    // A commit cannot use another tenant's account or link its parties.
    assert!(matches!(
        s.commit_batch(b, acc_a, &batch(vec![])).await,
        Err(Error::NotFound { .. })
    ));
    let summary = s
        .commit_batch(
            a,
            acc_a,
            &batch(vec![incoming(
                imap("INBOX", 1, 2),
                Some("cross@x"),
                "x@y.example",
                attach(&[&ann_b]),
            )]),
        )
        .await
        .unwrap();
    assert_eq!(
        (summary.inserted, summary.linked, summary.missing_parties),
        (1, 0, 1)
    );
    let thread = dir
        .parties_for_message_id("acme", "cross@x", 10)
        .await
        .unwrap();
    assert!(thread.parties.is_empty());
    // Leads are per tenant too.
    s.commit_batch(
        a,
        acc_a,
        &batch(vec![incoming(
            imap("INBOX", 1, 3),
            Some("l@x"),
            "new@lead.example",
            lead("new@lead.example"),
        )]),
    )
    .await
    .unwrap();
    assert!(
        dir.find_by_address("globex", "new@lead.example", 10)
            .await
            .unwrap()
            .parties
            .is_empty()
    );
    assert!(s.quarantined(b, None).await.unwrap().is_empty());
    assert!(s.pending_actions(b, acc_a).await.unwrap().is_empty());
    assert!(s.cursors(b, acc_a).await.unwrap().is_empty());
    assert!(!s.cursors(a, acc_a).await.unwrap().is_empty());
}

async fn directory_look_ups_match_the_memory_directory(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let memory = MemoryDirectory::new();
    let people = [
        (PartyKind::Contact, "Ann@Acme.example"),
        (PartyKind::Lead, "bob@acme.example"),
        (PartyKind::Contact, "carol@acme.example"),
        (PartyKind::Contact, "dave@acme.example"),
        (PartyKind::Lead, "eve@acme.example"),
        (PartyKind::Contact, "ann@other.example"),
        (PartyKind::Contact, "zed@mail.acme.example"),
        (PartyKind::Lead, "ann@acme.example"),
        (PartyKind::Contact, "Björn@Åre.example"),
    ];
    let mut stored = Vec::new();
    for (kind, email) in people {
        stored.push(party(&db, t, kind, email).await);
        memory.insert(
            "acme",
            Party {
                kind,
                id: String::new(),
                email: email.into(),
                name: Some(format!("Name of {email}")),
                company: None,
                external_id: None,
            },
        );
    }
    let dir = s.directory();
    let shape = |parties: &[Party]| -> Vec<(PartyKind, String)> {
        parties.iter().map(|p| (p.kind, p.email.clone())).collect()
    };

    for (address, domain) in [
        ("ANN@acme.EXAMPLE", "ACME.example"),
        ("bob@acme.example", "other.example"),
        ("nobody@acme.example", "example"),
        (" ann@other.example ", "mail.acme.example"),
        // One normalisation for every directory: a leading `@`, a root dot,
        // non-ASCII case.
        ("björn@åre.EXAMPLE", "@acme.example"),
        ("BJÖRN@Åre.example", "åre.example."),
        ("Ann@Acme.Example", "@ÅRE.example"),
    ] {
        for limit in [0, 1, 2, 5, 100] {
            let db_page = dir.find_by_address("acme", address, limit).await.unwrap();
            let mem_page = memory
                .find_by_address("acme", address, limit)
                .await
                .unwrap();
            assert_eq!(
                shape(&db_page.parties),
                shape(&mem_page.parties),
                "{address} limit {limit}"
            );
            assert_eq!(
                db_page.truncated, mem_page.truncated,
                "{address} limit {limit}"
            );
            let db_page = dir.find_by_domain("acme", domain, limit).await.unwrap();
            let mem_page = memory.find_by_domain("acme", domain, limit).await.unwrap();
            assert_eq!(
                shape(&db_page.parties),
                shape(&mem_page.parties),
                "{domain} limit {limit}"
            );
            assert_eq!(
                db_page.truncated, mem_page.truncated,
                "{domain} limit {limit}"
            );
        }
    }
    // Spot checks, so the comparison cannot pass by both being empty.
    let acme = dir
        .find_by_domain("acme", "acme.example", 100)
        .await
        .unwrap();
    assert_eq!(acme.parties.len(), 6);
    assert!(!acme.truncated);
    let capped = dir.find_by_domain("acme", "acme.example", 3).await.unwrap();
    assert_eq!(capped.parties.len(), 3);
    assert!(capped.truncated);
    let exact = dir.find_by_domain("acme", "acme.example", 6).await.unwrap();
    assert!(!exact.truncated, "exactly limit results is not truncated");
    let ann = dir
        .find_by_address("acme", "ANN@ACME.EXAMPLE", 10)
        .await
        .unwrap();
    assert_eq!(ann.parties.len(), 2, "contact and lead with one address");

    // get: by kind and id; the wrong kind or a foreign id finds nothing.
    let bob = &stored[1];
    assert_eq!(
        dir.get("acme", &bob.to_ref()).await.unwrap().as_ref(),
        Some(bob)
    );
    let wrong_kind = PartyRef {
        kind: PartyKind::Contact,
        id: bob.id.clone(),
    };
    assert_eq!(dir.get("acme", &wrong_kind).await.unwrap(), None);
    let junk = PartyRef {
        kind: PartyKind::Lead,
        id: "l2".into(),
    };
    assert_eq!(dir.get("acme", &junk).await.unwrap(), None);

    // Threads: parties linked to earlier messages with the Message-ID, from
    // any account of the tenant, each party once.
    let (_, second) = imap_account(&db, "acme", "second").await;
    let (ann_c, carol, dave) = (&stored[0], &stored[2], &stored[3]);
    s.commit_batch(
        t,
        account,
        &batch(vec![incoming(
            imap("INBOX", 1, 1),
            Some("thread-1@acme.example"),
            "ann@acme.example",
            attach(&[ann_c, carol]),
        )]),
    )
    .await
    .unwrap();
    s.commit_batch(
        t,
        second,
        &batch(vec![incoming(
            imap("INBOX", 1, 1),
            Some("thread-1@acme.example"),
            "ann@acme.example",
            attach(&[carol, dave]),
        )]),
    )
    .await
    .unwrap();
    // The memory directory keys links the same way, brackets or not.
    memory.link_message(
        "acme",
        "<thread-1@acme.example>",
        &[PartyRef {
            kind: PartyKind::Contact,
            id: "c1".into(),
        }],
    );
    for id in [
        "thread-1@acme.example",
        "<thread-1@acme.example>",
        " <thread-1@acme.example> ",
    ] {
        let linked = memory.parties_for_message_id("acme", id, 10).await.unwrap();
        assert_eq!(linked.parties.len(), 1, "{id}");
        let thread = dir.parties_for_message_id("acme", id, 10).await.unwrap();
        assert_eq!(
            emails(&thread.parties),
            [
                "ann@acme.example",
                "carol@acme.example",
                "dave@acme.example"
            ]
        );
        assert!(!thread.truncated);
    }
    let capped = dir
        .parties_for_message_id("acme", "thread-1@acme.example", 2)
        .await
        .unwrap();
    assert_eq!(capped.parties.len(), 2);
    assert!(capped.truncated);
    assert!(
        dir.parties_for_message_id("acme", "unknown@x", 10)
            .await
            .unwrap()
            .parties
            .is_empty()
    );
}

async fn commit_batch_stores_every_outcome(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let ann = contact(&db, t, "ann@acme.example").await;
    let bob = contact(&db, t, "bob@acme.example").await;

    let mut messages = vec![
        incoming(
            imap("INBOX", 7, 10),
            Some("attach@x"),
            "Ann@Acme.example",
            attach(&[&ann, &bob]),
        ),
        incoming(
            imap("INBOX", 7, 11),
            Some("lead@x"),
            "new@lead.example",
            lead("New@Lead.example"),
        ),
        incoming(
            imap("INBOX", 7, 12),
            Some("quarantine@x"),
            "odd@x.example",
            Outcome::Quarantine {
                reason: "plugin exact-match failed: timeout".into(),
                plugin: Some("exact-match".into()),
            },
        ),
        incoming(
            imap("INBOX", 7, 13),
            Some("discard@x"),
            "noreply@spam.example",
            Outcome::Discard {
                reason: "auto-reply".into(),
                plugin: Some("auto-reply-guard".into()),
            },
        ),
        incoming(
            imap("Sales", 3, 4),
            None,
            "someone@else.example",
            Outcome::KeepUnlinked,
        ),
    ];
    messages[0].action = Some(Acknowledge::MarkSeen);
    messages[1].action = Some(Acknowledge::MoveTo("Archive/2026".into()));
    messages[2].action = Some(Acknowledge::Leave);
    messages[3].action = Some(Acknowledge::Delete);
    let raws: Vec<bytes::Bytes> = messages.iter().map(|m| m.raw.clone()).collect();
    let summary = s.commit_batch(t, account, &batch(messages)).await.unwrap();
    assert_eq!(summary.inserted, 5);
    assert_eq!(summary.duplicates, 0);
    assert_eq!(summary.linked, 3, "ann, bob, and the new lead");
    assert_eq!(summary.leads_created, 1);
    assert_eq!(summary.quarantined, 1);
    assert_eq!(summary.discarded, 1);
    assert_eq!(summary.missing_parties, 0);
    assert_eq!(summary.actions_queued, 3, "leave and none queue nothing");
    let ids: Vec<_> = summary
        .results
        .iter()
        .map(|r| match r {
            MessageResult::Inserted(id) => *id,
            MessageResult::Duplicate => panic!("nothing is a duplicate yet"),
        })
        .collect();

    // The inbox: newest first, discarded left out, parties attached.
    let inbox = s.messages(t, &all()).await.unwrap();
    let order: Vec<_> = inbox.iter().map(|m| m.id).collect();
    assert_eq!(order, vec![ids[4], ids[2], ids[1], ids[0]]);
    let first = inbox.iter().find(|m| m.id == ids[0]).unwrap();
    assert_eq!(
        emails(&first.parties),
        ["ann@acme.example", "bob@acme.example"]
    );
    assert_eq!(first.status, MessageStatus::Stored);
    assert_eq!(
        first.message_id.as_deref(),
        Some("attach@x"),
        "stored without brackets"
    );
    assert_eq!(first.from.as_deref(), Some("ann@acme.example"));
    assert_eq!(first.folder.as_deref(), Some("INBOX"));
    assert_eq!(first.size, raws[0].len() as u64);
    assert_eq!(
        first.date,
        Some(Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap())
    );
    assert_eq!(first.account, Some(account));

    // Exact raw bytes come back.
    for (id, raw) in ids.iter().zip(&raws) {
        let m = s.message(t, *id).await.unwrap().unwrap();
        if m.summary.status == MessageStatus::Discarded {
            assert_eq!(m.raw, None, "no body is kept for a discarded message");
            assert_eq!(m.summary.subject, None);
            assert_eq!(m.summary.message_id.as_deref(), Some("discard@x"));
        } else {
            assert_eq!(m.raw.as_deref(), Some(raw.as_ref()));
        }
    }

    // The lead: created lower-case, with name and company, and linked.
    let leads = s
        .parties(t, Some(PartyKind::Lead), None, 100)
        .await
        .unwrap();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0].email, "new@lead.example");
    assert_eq!(leads[0].name.as_deref(), Some("New Person"));
    assert_eq!(leads[0].company.as_deref(), Some("New Co"));
    let second = inbox.iter().find(|m| m.id == ids[1]).unwrap();
    assert_eq!(second.parties, leads);

    // Quarantine keeps reason, plugin and bytes.
    let held = s.quarantined(t, Some(account)).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].message.id, ids[2]);
    assert_eq!(held[0].message.status, MessageStatus::Quarantined);
    assert_eq!(held[0].reason, "plugin exact-match failed: timeout");
    assert_eq!(held[0].plugin.as_deref(), Some("exact-match"));

    // The discard log: who, why, which plugin; no body anywhere.
    let log = s.discard_log(t, None, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].message_id.as_deref(), Some("discard@x"));
    assert_eq!(log[0].sender.as_deref(), Some("noreply@spam.example"));
    assert_eq!(log[0].reason, "auto-reply");
    assert_eq!(log[0].plugin.as_deref(), Some("auto-reply-guard"));
    assert_eq!(log[0].account, Some(account));
    let conn = raw_connection(&db).await;
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM messages WHERE status = 'discarded' AND raw IS NULL"
        )
        .await,
        1
    );

    // Server actions wait for the server.
    let pending = s.pending_actions(t, account).await.unwrap();
    let got: Vec<_> = pending
        .iter()
        .map(|p| (p.key.clone(), p.action.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (imap("INBOX", 7, 10), Acknowledge::MarkSeen),
            (
                imap("INBOX", 7, 11),
                Acknowledge::MoveTo("Archive/2026".into())
            ),
            (imap("INBOX", 7, 13), Acknowledge::Delete),
        ]
    );

    // Cursors: per folder, UIDVALIDITY and the highest UID.
    let cursors = s.cursors(t, account).await.unwrap();
    assert_eq!(cursors["INBOX"].uid_validity, Some(7));
    assert_eq!(cursors["INBOX"].last_uid, 13);
    assert_eq!(cursors["Sales"].uid_validity, Some(3));
    assert_eq!(cursors["Sales"].last_uid, 4);
}

async fn recommitting_a_batch_stores_nothing_twice(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let ann = contact(&db, t, "ann@acme.example").await;
    let mut messages = vec![
        incoming(
            imap("INBOX", 1, 1),
            Some("a@x"),
            "ann@acme.example",
            attach(&[&ann]),
        ),
        incoming(
            imap("INBOX", 1, 2),
            Some("b@x"),
            "new@lead.example",
            lead("new@lead.example"),
        ),
        incoming(
            imap("INBOX", 1, 3),
            Some("c@x"),
            "q@x.example",
            Outcome::Quarantine {
                reason: "r".into(),
                plugin: None,
            },
        ),
        incoming(
            imap("INBOX", 1, 4),
            Some("d@x"),
            "d@x.example",
            Outcome::Discard {
                reason: "r".into(),
                plugin: None,
            },
        ),
        incoming(
            imap("INBOX", 1, 5),
            None,
            "e@x.example",
            Outcome::KeepUnlinked,
        ),
    ];
    for m in &mut messages {
        m.action = Some(Acknowledge::MarkSeen);
    }
    let pop3 = batch(vec![
        incoming(
            MessageKey::Pop3 { uidl: "u-1".into() },
            Some("p1@x"),
            "p@x.example",
            Outcome::KeepUnlinked,
        ),
        incoming(
            MessageKey::Pop3 { uidl: "u-2".into() },
            None,
            "p@x.example",
            Outcome::Discard {
                reason: "r".into(),
                plugin: None,
            },
        ),
    ]);
    let imap_batch = batch(messages);

    let first = s.commit_batch(t, account, &imap_batch).await.unwrap();
    assert_eq!(
        (first.inserted, first.duplicates, first.actions_queued),
        (5, 0, 5)
    );
    let first_pop = s.commit_batch(t, account, &pop3).await.unwrap();
    assert_eq!((first_pop.inserted, first_pop.duplicates), (2, 0));

    let conn = raw_connection(&db).await;
    let tables = [
        "messages",
        "message_links",
        "parties",
        "quarantine",
        "discard_log",
        "pending_actions",
        "pop3_seen",
        "folder_cursors",
    ];
    let mut before = Vec::new();
    for table in tables {
        before.push(count(&conn, &format!("SELECT COUNT(*) FROM {table}")).await);
    }

    // A crash between commit and acknowledge: the same batches again.
    let again = s.commit_batch(t, account, &imap_batch).await.unwrap();
    assert_eq!(again.inserted, 0);
    assert_eq!(again.duplicates, 5);
    assert_eq!(
        (
            again.linked,
            again.leads_created,
            again.quarantined,
            again.discarded,
            again.actions_queued
        ),
        (0, 0, 0, 0, 0)
    );
    assert!(again.results.iter().all(|r| *r == MessageResult::Duplicate));
    let again_pop = s.commit_batch(t, account, &pop3).await.unwrap();
    assert_eq!((again_pop.inserted, again_pop.duplicates), (0, 2));

    let mut after = Vec::new();
    for table in tables {
        after.push(count(&conn, &format!("SELECT COUNT(*) FROM {table}")).await);
    }
    assert_eq!(before, after, "rows per table ({tables:?})");
    // The discarded POP3 message, without a Message-ID, is known by its UIDL.
    let seen = &s.cursors(t, account).await.unwrap()["INBOX"].seen_uidls;
    assert_eq!(
        seen,
        &BTreeSet::from(["u-1".to_string(), "u-2".to_string()])
    );

    // Each message's queued action comes back with its index; committed
    // again, the batch hands back the same queued actions to carry out.
    let ids = |summary: &intake::store::CommitSummary| {
        summary
            .queued
            .iter()
            .map(|q| (q.message, q.id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        first.queued.iter().map(|q| q.message).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(ids(&again), ids(&first), "already queued: the same rows");
    assert_eq!(first_pop.queued.len(), 0, "the POP3 batch asked for none");

    // Confirmed actions go with the next commit, and only the account's.
    let (other_tenant, other_account) = imap_account(&db, "globex", "inbox").await;
    let mut elsewhere = incoming(
        imap("INBOX", 1, 1),
        Some("g@x"),
        "g@x.example",
        Outcome::KeepUnlinked,
    );
    elsewhere.action = Some(Acknowledge::MarkSeen);
    let foreign = s
        .commit_batch(other_tenant, other_account, &batch(vec![elsewhere]))
        .await
        .unwrap();
    let pending = count(&conn, "SELECT COUNT(*) FROM pending_actions").await;
    let confirm = BatchCommit {
        completed_actions: vec![first.queued[0].id, first.queued[1].id, foreign.queued[0].id],
        ..BatchCommit::default()
    };
    s.commit_batch(t, account, &confirm).await.unwrap();
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM pending_actions").await,
        pending - 2,
        "two of this account's rows went; the other tenant's stayed"
    );
    let left: Vec<_> = s
        .pending_actions(t, account)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(
        left,
        first.queued[2..].iter().map(|q| q.id).collect::<Vec<_>>()
    );
}

/// Mail without a Message-ID, and mail that does not parse, is recognised
/// by its bytes: after a UIDVALIDITY reset, after POP3 UIDLs changed, and
/// when the same file is imported again. Issue 8/9: before, every reset or
/// re-import stored another copy.
async fn content_key_backstop_covers_mail_without_message_id(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let (_, other_account) = imap_account(&db, "acme", "other").await;
    let no_id = |key| incoming(key, None, "x@y.example", Outcome::KeepUnlinked);
    let garbage = |key| IncomingMessage {
        key,
        raw: bytes::Bytes::from_static(b"\x00\x01 not a message at all"),
        meta: MessageMeta::default(),
        outcome: Outcome::Quarantine {
            reason: "unparseable".into(),
            plugin: None,
        },
        action: None,
        decided_by: None,
        decision: None,
    };
    let first = s
        .commit_batch(
            t,
            account,
            &batch(vec![
                no_id(imap("INBOX", 100, 1)),
                garbage(imap("INBOX", 100, 2)),
            ]),
        )
        .await
        .unwrap();
    assert_eq!((first.inserted, first.quarantined), (2, 1));

    // Three resets and a re-import later: nothing new.
    for key in [
        (imap("INBOX", 200, 7), imap("INBOX", 200, 8)),
        (imap("INBOX", 300, 1), imap("INBOX", 300, 2)),
        (
            MessageKey::Pop3 { uidl: "a".into() },
            MessageKey::Pop3 { uidl: "b".into() },
        ),
        (file(), file()),
    ] {
        let again = s
            .commit_batch(t, account, &batch(vec![no_id(key.0), garbage(key.1)]))
            .await
            .unwrap();
        assert_eq!(
            (again.inserted, again.duplicates, again.quarantined),
            (0, 2, 0),
            "{again:?}"
        );
    }
    let conn = raw_connection(&db).await;
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM messages").await, 2);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM quarantine").await, 1);
    // The cursor still followed the reset.
    let cursor = s.cursor(t, account, "INBOX").await.unwrap();
    assert_eq!((cursor.uid_validity, cursor.last_uid), (Some(300), 2));

    // One byte more is another message; another account keeps its own copy.
    let mut changed = no_id(file());
    changed.raw = [changed.raw.as_ref(), b"\r\n"].concat().into();
    let other = s
        .commit_batch(t, account, &batch(vec![changed]))
        .await
        .unwrap();
    assert_eq!(other.inserted, 1);
    let elsewhere = s
        .commit_batch(t, other_account, &batch(vec![no_id(file())]))
        .await
        .unwrap();
    assert_eq!(elsewhere.inserted, 1);
}

/// A batch goes in a few multi-row statements (a few dozen messages each);
/// every result must still be the one of its message, duplicates inside
/// the batch keep the first copy, and leads are made once.
async fn a_batch_in_many_statements_keeps_each_result_in_place(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let ann = contact(&db, t, "ann@client.example").await;
    let mut messages = Vec::new();
    for uid in 1..=100u32 {
        let from = format!("sender{}@prospect{}.example", uid % 7, uid % 3);
        let outcome = match uid % 4 {
            0 => attach(&[&ann]),
            1 => lead(&from),
            2 => Outcome::Quarantine {
                reason: format!("reason {uid}"),
                plugin: Some("guard".into()),
            },
            _ => Outcome::KeepUnlinked,
        };
        let id = format!("m{uid}@x.example");
        messages.push(incoming(imap("INBOX", 9, uid), Some(&id), &from, outcome));
    }
    // Inside the batch: the same bytes again under another UID, and another
    // message with the same Message-ID.
    let mut again = messages[40].clone();
    again.key = imap("INBOX", 9, 101);
    messages.push(again);
    let mut same_id = incoming(
        imap("INBOX", 9, 102),
        Some("m7@x.example"),
        "other@x.example",
        Outcome::KeepUnlinked,
    );
    same_id.raw = [same_id.raw.as_ref(), b"different"].concat().into();
    messages.push(same_id);

    let summary = s.commit_batch(t, account, &batch(messages)).await.unwrap();
    assert_eq!((summary.inserted, summary.duplicates), (100, 2));
    assert_eq!(summary.quarantined, 25);
    assert_eq!(summary.results[100], MessageResult::Duplicate);
    assert_eq!(summary.results[101], MessageResult::Duplicate);
    // Leads: one per address (sender1..6 at prospect0..2 that uid % 4 == 1
    // names), each created by the first message asking for it.
    let mut first_asking = std::collections::BTreeMap::new();
    for uid in (1..=100u32).filter(|u| u % 4 == 1) {
        let from = format!("sender{}@prospect{}.example", uid % 7, uid % 3);
        first_asking.entry(from).or_insert(uid as usize - 1);
    }
    assert_eq!(summary.leads_created, first_asking.len());
    let mut creators = summary.lead_creators.clone();
    creators.sort_unstable();
    let mut expected: Vec<usize> = first_asking.values().copied().collect();
    expected.sort_unstable();
    assert_eq!(creators, expected);

    let conn = raw_connection(&db).await;
    for (index, result) in summary.results.iter().enumerate().take(100) {
        let MessageResult::Inserted(id) = result else {
            panic!("message {index} not stored: {result:?}");
        };
        let uid = index + 1;
        assert_eq!(
            count(
                &conn,
                &format!(
                    "SELECT COUNT(*) FROM messages WHERE id = {id} AND uid = {uid} \
                     AND message_id = 'm{uid}@x.example'"
                )
            )
            .await,
            1,
            "result {index} is another message's id"
        );
    }
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM quarantine q JOIN messages m ON m.id = q.stored_message_id \
                      WHERE q.reason = 'reason ' || CAST(m.uid AS TEXT)"
        )
        .await,
        25
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM message_links").await, 50);
    let cursor = s.cursor(t, account, "INBOX").await.unwrap();
    assert_eq!((cursor.uid_validity, cursor.last_uid), (Some(9), 102));
}

async fn message_id_backstop_survives_a_uidvalidity_change(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let (_, other_account) = imap_account(&db, "acme", "other").await;
    let ann = contact(&db, t, "ann@acme.example").await;
    let mut first = incoming(
        imap("INBOX", 100, 5),
        Some("same@x"),
        "ann@acme.example",
        attach(&[&ann]),
    );
    first.action = Some(Acknowledge::MarkSeen);
    s.commit_batch(t, account, &batch(vec![first]))
        .await
        .unwrap();

    // The server reset UIDVALIDITY: the folder is re-listed with new UIDs.
    let mut relisted = incoming(
        imap("INBOX", 200, 1),
        Some("same@x"),
        "ann@acme.example",
        attach(&[&ann]),
    );
    relisted.action = Some(Acknowledge::MarkSeen);
    let no_id = incoming(
        imap("INBOX", 200, 2),
        None,
        "x@y.example",
        Outcome::KeepUnlinked,
    );
    let summary = s
        .commit_batch(t, account, &batch(vec![relisted, no_id]))
        .await
        .unwrap();
    assert_eq!(summary.results[0], MessageResult::Duplicate);
    assert!(matches!(summary.results[1], MessageResult::Inserted(_)));
    assert_eq!(
        (summary.inserted, summary.duplicates, summary.linked),
        (1, 1, 0)
    );
    // The copy under the new key still gets its action and moves the cursor.
    assert_eq!(summary.actions_queued, 1);
    let cursor = s.cursor(t, account, "INBOX").await.unwrap();
    assert_eq!((cursor.uid_validity, cursor.last_uid), (Some(200), 2));

    // The same message in another folder of the account is a duplicate too.
    let summary = s
        .commit_batch(
            t,
            account,
            &batch(vec![incoming(
                imap("Archive", 9, 1),
                Some("same@x"),
                "ann@acme.example",
                Outcome::KeepUnlinked,
            )]),
        )
        .await
        .unwrap();
    assert_eq!(summary.duplicates, 1);
    // In another account it is a message of its own.
    let summary = s
        .commit_batch(
            t,
            other_account,
            &batch(vec![incoming(
                imap("INBOX", 100, 5),
                Some("same@x"),
                "ann@acme.example",
                Outcome::KeepUnlinked,
            )]),
        )
        .await
        .unwrap();
    assert_eq!(summary.inserted, 1);
    // Two copies in one batch: the second is the duplicate.
    let summary = s
        .commit_batch(
            t,
            account,
            &batch(vec![
                incoming(
                    imap("INBOX", 200, 3),
                    Some("twice@x"),
                    "a@b.example",
                    Outcome::KeepUnlinked,
                ),
                incoming(
                    imap("INBOX", 200, 4),
                    Some("twice@x"),
                    "a@b.example",
                    Outcome::KeepUnlinked,
                ),
            ]),
        )
        .await
        .unwrap();
    assert_eq!((summary.inserted, summary.duplicates), (1, 1));
    assert_eq!(s.cursor(t, account, "INBOX").await.unwrap().last_uid, 4);
}

async fn a_lead_is_created_once(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let summary = s
        .commit_batch(
            t,
            account,
            &batch(vec![
                incoming(
                    imap("INBOX", 1, 1),
                    Some("1@x"),
                    "unknown@new.example",
                    lead("unknown@new.example"),
                ),
                incoming(
                    imap("INBOX", 1, 2),
                    Some("2@x"),
                    "Unknown@New.Example",
                    lead("Unknown@New.Example"),
                ),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        (summary.inserted, summary.leads_created, summary.linked),
        (2, 1, 2)
    );
    let dir = s.directory();
    let found = dir
        .find_by_address("acme", "unknown@new.example", 10)
        .await
        .unwrap();
    assert_eq!(found.parties.len(), 1);
    let the_lead = found.parties[0].clone();
    assert_eq!(the_lead.kind, PartyKind::Lead);
    for m in s.messages(t, &all()).await.unwrap() {
        assert_eq!(m.parties, vec![the_lead.clone()]);
    }
    // A later batch links to the existing lead.
    let summary = s
        .commit_batch(
            t,
            account,
            &batch(vec![incoming(
                imap("INBOX", 1, 3),
                Some("3@x"),
                "unknown@new.example",
                lead("unknown@new.example"),
            )]),
        )
        .await
        .unwrap();
    assert_eq!((summary.leads_created, summary.linked), (0, 1));
    assert_eq!(
        dir.find_by_address("acme", "unknown@new.example", 10)
            .await
            .unwrap()
            .parties
            .len(),
        1
    );
    // Applying a create-lead outside a batch (quarantine release) links to
    // the same lead and leaves its name and company as they were.
    let same = s
        .lead_for(
            t,
            "UNKNOWN@new.example",
            &Some("Other Name".into()),
            &Some("Other Co".into()),
        )
        .await
        .unwrap();
    assert_eq!(same.to_string(), the_lead.id);
    let kept = s.party(t, same).await.unwrap().unwrap();
    assert_eq!(
        (kept.name.as_deref(), kept.company.as_deref()),
        (Some("New Person"), Some("New Co"))
    );
    // A contact with that address is not a lead: the policy asked for one.
    contact(&db, t, "known@new.example").await;
    let summary = s
        .commit_batch(
            t,
            account,
            &batch(vec![incoming(
                imap("INBOX", 1, 4),
                Some("4@x"),
                "known@new.example",
                lead("known@new.example"),
            )]),
        )
        .await
        .unwrap();
    assert_eq!(summary.leads_created, 1);
    // An invalid address fails the whole batch and stores nothing.
    let before = s.messages(t, &all()).await.unwrap().len();
    let bad = s
        .commit_batch(
            t,
            account,
            &batch(vec![
                incoming(
                    imap("INBOX", 1, 5),
                    Some("5@x"),
                    "a@b.example",
                    Outcome::KeepUnlinked,
                ),
                incoming(
                    imap("INBOX", 1, 6),
                    Some("6@x"),
                    "nobody",
                    lead("not an address"),
                ),
            ]),
        )
        .await;
    assert!(matches!(bad, Err(Error::Invalid { .. })), "{bad:?}");
    assert_eq!(
        s.messages(t, &all()).await.unwrap().len(),
        before,
        "rolled back"
    );
    assert_eq!(s.cursor(t, account, "INBOX").await.unwrap().last_uid, 4);
}

async fn concurrent_commits_create_one_lead(db: Db) {
    let s = &db.store;
    let (t, _) = imap_account(&db, "acme", "inbox").await;
    let mut accounts = Vec::new();
    for n in 0..4 {
        accounts.push(imap_account(&db, "acme", &format!("box{n}")).await.1);
    }
    // Four accounts commit at once, each with mail from the same stranger.
    let commits = accounts.iter().enumerate().map(|(n, account)| {
        let store = s.clone();
        let account = *account;
        tokio::spawn(async move {
            let messages = (0..5)
                .map(|i| {
                    incoming(
                        imap("INBOX", 1, i + 1),
                        Some(&format!("{n}-{i}@x")),
                        "stranger@new.example",
                        lead("stranger@new.example"),
                    )
                })
                .collect();
            store.commit_batch(t, account, &batch(messages)).await
        })
    });
    let results = futures::future::join_all(commits).await;
    let mut created = 0;
    for r in results {
        let summary = r.unwrap().expect("concurrent commit");
        assert_eq!(summary.inserted, 5);
        created += summary.leads_created;
    }
    assert_eq!(created, 1);
    let leads = s
        .parties(t, Some(PartyKind::Lead), None, 100)
        .await
        .unwrap();
    assert_eq!(leads.len(), 1);
    let messages = s.messages(t, &all()).await.unwrap();
    assert_eq!(messages.len(), 20);
    assert!(messages.iter().all(|m| m.parties == leads));
}

async fn cursors_only_move_forward(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    assert!(s.cursors(t, account).await.unwrap().is_empty());
    assert_eq!(
        s.cursor(t, account, "INBOX").await.unwrap(),
        Default::default()
    );
    let keep = |key, id: &str| incoming(key, Some(id), "a@b.example", Outcome::KeepUnlinked);
    s.commit_batch(
        t,
        account,
        &batch(vec![
            keep(imap("INBOX", 5, 3), "3@x"),
            keep(imap("INBOX", 5, 9), "9@x"),
            keep(imap("INBOX", 5, 5), "5@x"),
            keep(imap("Sent", 6, 2), "s2@x"),
        ]),
    )
    .await
    .unwrap();
    let c = s.cursors(t, account).await.unwrap();
    assert_eq!((c["INBOX"].uid_validity, c["INBOX"].last_uid), (Some(5), 9));
    assert_eq!((c["Sent"].uid_validity, c["Sent"].last_uid), (Some(6), 2));

    // An older batch committed again does not rewind.
    s.commit_batch(t, account, &batch(vec![keep(imap("INBOX", 5, 4), "4@x")]))
        .await
        .unwrap();
    assert_eq!(s.cursor(t, account, "INBOX").await.unwrap().last_uid, 9);
    // Past listed-but-skipped messages (too large) without storing them.
    let mut skip = batch(vec![]);
    skip.cursor_advances.push(CursorAdvance {
        folder: "INBOX".into(),
        uid_validity: 5,
        last_uid: 12,
    });
    skip.cursor_advances.push(CursorAdvance {
        folder: "Drafts".into(),
        uid_validity: 8,
        last_uid: 1,
    });
    s.commit_batch(t, account, &skip).await.unwrap();
    let c = s.cursors(t, account).await.unwrap();
    assert_eq!(c["INBOX"].last_uid, 12);
    assert_eq!(
        (c["Drafts"].uid_validity, c["Drafts"].last_uid),
        (Some(8), 1)
    );
    // A new UIDVALIDITY starts over.
    s.commit_batch(
        t,
        account,
        &batch(vec![keep(imap("INBOX", 6, 2), "new-2@x")]),
    )
    .await
    .unwrap();
    let c = s.cursor(t, account, "INBOX").await.unwrap();
    assert_eq!((c.uid_validity, c.last_uid), (Some(6), 2));

    // POP3: the UIDLs seen, under the inbox; no UIDs.
    let (_, pop) = imap_account(&db, "acme", "pop").await;
    s.commit_batch(
        t,
        pop,
        &batch(vec![
            keep(MessageKey::Pop3 { uidl: "b".into() }, "pb@x"),
            keep(MessageKey::Pop3 { uidl: "a".into() }, "pa@x"),
        ]),
    )
    .await
    .unwrap();
    let c = s.cursor(t, pop, "INBOX").await.unwrap();
    assert_eq!(
        c.seen_uidls,
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    assert_eq!((c.uid_validity, c.last_uid), (None, 0));
    // Imports have no server key: nothing to remember but the Message-ID.
    let imported = s
        .commit_batch(
            t,
            pop,
            &batch(vec![keep(file(), "imported@x"), keep(file(), "imported@x")]),
        )
        .await
        .unwrap();
    assert_eq!((imported.inserted, imported.duplicates), (1, 1));
    assert_eq!(s.cursors(t, pop).await.unwrap().len(), 1);
}

/// A POP3 run completes all its actions at the end, in one call; the ids
/// go in several statements (a 50k-message run would pass more than SQLite
/// takes in one `IN (…)` list).
async fn many_actions_complete_at_once(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let messages: Vec<IncomingMessage> = (0..1200)
        .map(|n| {
            let mut m = incoming(
                MessageKey::Pop3 {
                    uidl: format!("u-{n}"),
                },
                Some(&format!("m{n}@x")),
                "p@x.example",
                Outcome::KeepUnlinked,
            );
            m.action = Some(Acknowledge::Delete);
            m
        })
        .collect();
    let committed = s.commit_batch(t, account, &batch(messages)).await.unwrap();
    assert_eq!(committed.queued.len(), 1200);
    let ids: Vec<_> = committed.queued.iter().map(|q| q.id).collect();
    s.record_action_failures(t, &ids, "QUIT failed")
        .await
        .unwrap();
    let pending = s.pending_actions(t, account).await.unwrap();
    assert!(pending.iter().all(|p| p.attempts == 1), "every row marked");
    assert_eq!(s.complete_actions(t, &ids).await.unwrap(), 1200);
    assert!(s.pending_actions(t, account).await.unwrap().is_empty());
}

async fn pending_actions_lifecycle(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let other = s.ensure_tenant("globex").await.unwrap();
    let mut a = incoming(
        imap("INBOX", 1, 1),
        Some("1@x"),
        "a@b.example",
        Outcome::KeepUnlinked,
    );
    a.action = Some(Acknowledge::Delete);
    let mut b = incoming(
        MessageKey::Pop3 { uidl: "U2".into() },
        Some("2@x"),
        "a@b.example",
        Outcome::KeepUnlinked,
    );
    b.action = Some(Acknowledge::MoveTo("Done".into()));
    s.commit_batch(t, account, &batch(vec![a, b]))
        .await
        .unwrap();

    let pending = s.pending_actions(t, account).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].key, imap("INBOX", 1, 1));
    assert_eq!(pending[0].action, Acknowledge::Delete);
    assert_eq!(pending[1].key, MessageKey::Pop3 { uidl: "U2".into() });
    assert_eq!(pending[1].action, Acknowledge::MoveTo("Done".into()));
    assert_eq!(
        (pending[0].attempts, pending[0].last_error.as_deref()),
        (0, None)
    );

    // The server refused one: it stays, with the error, for the next run.
    s.record_action_failure(t, pending[1].id, "NO [TRYCREATE] Mailbox doesn't exist")
        .await
        .unwrap();
    s.record_action_failure(t, pending[1].id, "NO again")
        .await
        .unwrap();
    assert!(matches!(
        s.record_action_failure(other, pending[1].id, "x").await,
        Err(Error::NotFound { .. })
    ));
    // Another tenant cannot complete them.
    assert_eq!(
        s.complete_actions(other, &[pending[0].id]).await.unwrap(),
        0
    );
    assert_eq!(s.complete_actions(t, &[pending[0].id]).await.unwrap(), 1);
    assert_eq!(s.complete_actions(t, &[]).await.unwrap(), 0);

    let left = s.pending_actions(t, account).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, pending[1].id);
    assert_eq!(left[0].attempts, 2);
    assert_eq!(left[0].last_error.as_deref(), Some("NO again"));
    s.complete_actions(t, &[left[0].id]).await.unwrap();
    assert!(s.pending_actions(t, account).await.unwrap().is_empty());
    // Messages are not fetched again for their actions: they are stored.
    assert_eq!(s.messages(t, &all()).await.unwrap().len(), 2);
}

async fn quarantine_release_and_drop(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let other = s.ensure_tenant("globex").await.unwrap();
    let q = |uid, id: &str| {
        incoming(
            imap("INBOX", 1, uid),
            Some(id),
            "odd@x.example",
            Outcome::Quarantine {
                reason: "parse failed".into(),
                plugin: None,
            },
        )
    };
    let held = batch(vec![q(1, "q1@x"), q(2, "q2@x")]);
    let summary = s.commit_batch(t, account, &held).await.unwrap();
    let ids: Vec<_> = summary
        .results
        .iter()
        .map(|r| match r {
            MessageResult::Inserted(id) => *id,
            MessageResult::Duplicate => unreachable!(),
        })
        .collect();
    assert_eq!(s.quarantined(t, None).await.unwrap().len(), 2);
    assert!(matches!(
        s.release_quarantined(other, ids[0]).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.drop_quarantined(other, ids[1]).await,
        Err(Error::NotFound { .. })
    ));

    s.release_quarantined(t, ids[0]).await.unwrap();
    assert!(matches!(
        s.release_quarantined(t, ids[0]).await,
        Err(Error::NotFound { .. })
    ));
    s.drop_quarantined(t, ids[1]).await.unwrap();
    assert!(s.quarantined(t, None).await.unwrap().is_empty());

    let released = s.message(t, ids[0]).await.unwrap().unwrap();
    assert_eq!(released.summary.status, MessageStatus::Stored);
    assert!(released.raw.is_some());
    let dropped = s.message(t, ids[1]).await.unwrap().unwrap();
    assert_eq!(dropped.summary.status, MessageStatus::Dropped);
    assert_eq!(dropped.raw, None);
    let visible: Vec<_> = s
        .messages(t, &all())
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(visible, vec![ids[0]]);
    // Neither comes back when fetched again.
    let again = s.commit_batch(t, account, &held).await.unwrap();
    assert_eq!(again.duplicates, 2);
    assert!(s.quarantined(t, None).await.unwrap().is_empty());
}

async fn inbox_filters_and_pages(db: Db) {
    let s = &db.store;
    let (t, a1) = imap_account(&db, "acme", "one").await;
    let (_, a2) = imap_account(&db, "acme", "two").await;
    let ann = contact(&db, t, "ann@acme.example").await;
    let bob = contact(&db, t, "bob@acme.example").await;
    let mut messages = Vec::new();
    for uid in 1..=6u32 {
        let who = if uid % 2 == 0 { &ann } else { &bob };
        messages.push(incoming(
            imap("INBOX", 1, uid),
            Some(&format!("{uid}@x")),
            &who.email,
            attach(&[who]),
        ));
    }
    s.commit_batch(t, a1, &batch(messages)).await.unwrap();
    s.commit_batch(
        t,
        a2,
        &batch(vec![incoming(
            imap("INBOX", 1, 1),
            Some("two@x"),
            "ann@acme.example",
            attach(&[&ann, &bob]),
        )]),
    )
    .await
    .unwrap();

    let anns = s
        .messages(
            t,
            &MessageQuery {
                party_email: Some("ANN@acme.example".into()),
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!(anns.len(), 4);
    assert!(
        anns.iter()
            .all(|m| m.parties.iter().any(|p| p.email == "ann@acme.example"))
    );
    let ann_in_one = s
        .messages(
            t,
            &MessageQuery {
                party_email: Some("ann@acme.example".into()),
                account: Some(a1),
                ..all()
            },
        )
        .await
        .unwrap();
    assert_eq!(ann_in_one.len(), 3);
    assert!(
        s.messages(
            t,
            &MessageQuery {
                party_email: Some("nobody@x".into()),
                ..all()
            }
        )
        .await
        .unwrap()
        .is_empty()
    );

    // Paging newest first.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .messages(
                t,
                &MessageQuery {
                    account: Some(a1),
                    before,
                    limit: 4,
                    ..MessageQuery::default()
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|m| m.id);
        seen.extend(page.into_iter().map(|m| m.message_id.unwrap()));
    }
    assert_eq!(seen, ["6@x", "5@x", "4@x", "3@x", "2@x", "1@x"]);
}

async fn bindings_keep_their_order(db: Db) {
    let s = &db.store;
    let t = s.ensure_tenant("acme").await.unwrap();
    let other = s.ensure_tenant("globex").await.unwrap();
    assert!(!s.has_bindings(t).await.unwrap());
    let limits = Limits {
        deadline: std::time::Duration::from_millis(250),
        max_lookup_results: 7,
        ..Limits::default()
    };
    let binding = |name: &str, role, fill: u8| NewBinding {
        name: name.into(),
        role,
        wasm: vec![fill; 4096],
        config: format!("{{\"name\": \"{name}\"}}"),
        limits: limits.clone(),
        on_error: FailurePolicy::Skip,
        enabled: true,
    };
    s.add_binding(t, &binding("exact", BindingRole::Matcher, 1))
        .await
        .unwrap();
    s.add_binding(t, &binding("domain", BindingRole::Matcher, 2))
        .await
        .unwrap();
    s.add_binding(t, &binding("unknown", BindingRole::UnknownSender, 3))
        .await
        .unwrap();
    s.add_binding(t, &binding("thread", BindingRole::Matcher, 4))
        .await
        .unwrap();
    assert!(s.has_bindings(t).await.unwrap());
    assert!(!s.has_bindings(other).await.unwrap());
    assert!(s.bindings(other).await.unwrap().is_empty());

    let names = |list: &[intake::store::StoredBinding]| {
        list.iter().map(|b| b.name.clone()).collect::<Vec<_>>()
    };
    let list = s.bindings(t).await.unwrap();
    assert_eq!(names(&list), ["exact", "domain", "unknown", "thread"]);
    let unknown = &list[2];
    assert_eq!(unknown.role, BindingRole::UnknownSender);
    assert_eq!(unknown.wasm.as_ref(), vec![3u8; 4096].as_slice());
    assert_eq!(unknown.limits, limits);
    assert_eq!(unknown.on_error, FailurePolicy::Skip);
    assert_eq!(unknown.config, "{\"name\": \"unknown\"}");
    assert!(
        !format!("{unknown:?}").contains("3, 3, 3"),
        "Debug leaves the bytes out"
    );
    let runtime_binding = unknown.to_binding();
    assert_eq!(runtime_binding.name, "unknown");
    assert!(matches!(&runtime_binding.wasm, WasmSource::Bytes(b) if b.len() == 4096));

    // One unknown-sender policy; unique names; JSON config.
    assert!(matches!(
        s.add_binding(t, &binding("policy2", BindingRole::UnknownSender, 5))
            .await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        s.add_binding(t, &binding("exact", BindingRole::Matcher, 5))
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    let mut bad = binding("bad", BindingRole::Matcher, 5);
    bad.config = "{not json".into();
    assert!(matches!(
        s.add_binding(t, &bad).await,
        Err(Error::Invalid { .. })
    ));

    s.order_bindings(t, &["thread", "exact", "domain", "unknown"])
        .await
        .unwrap();
    assert_eq!(
        names(&s.bindings(t).await.unwrap()),
        ["thread", "exact", "domain", "unknown"]
    );
    for wrong in [
        &["thread", "exact", "domain"][..],
        &["thread", "exact", "domain", "unknown", "x"],
        &["thread", "thread", "domain", "unknown"],
    ] {
        assert!(
            matches!(s.order_bindings(t, wrong).await, Err(Error::Invalid { .. })),
            "{wrong:?}"
        );
    }
    assert_eq!(
        names(&s.bindings(t).await.unwrap()),
        ["thread", "exact", "domain", "unknown"]
    );

    s.remove_binding(t, "exact").await.unwrap();
    assert!(matches!(
        s.remove_binding(t, "exact").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.remove_binding(other, "thread").await,
        Err(Error::NotFound { .. })
    ));
    s.add_binding(t, &binding("last", BindingRole::Matcher, 6))
        .await
        .unwrap();
    s.set_binding_enabled(t, "domain", false).await.unwrap();
    let list = s.bindings(t).await.unwrap();
    assert_eq!(
        names(&list),
        ["thread", "domain", "unknown", "last"],
        "added at the end"
    );
    assert!(!list[1].enabled);
}

/// A binding's versions: added beside the active one (bytes kept once per
/// tenant), a canary with its rollout, promote, rollback through the
/// versions that were live, a configuration change as a new version, and
/// the chain signature moving with each, so a running engine reloads.
async fn binding_versions_canary_promote_and_roll_back(db: Db) {
    let s = &db.store;
    let t = s.ensure_tenant("acme").await.unwrap();
    let other = s.ensure_tenant("globex").await.unwrap();
    let v1 = vec![1u8; 2048];
    let v2 = vec![2u8; 2048];
    s.add_binding(
        t,
        &NewBinding {
            name: "exact".into(),
            role: BindingRole::Matcher,
            wasm: v1.clone(),
            config: "{}".into(),
            limits: Limits::default(),
            on_error: FailurePolicy::Quarantine,
            enabled: true,
        },
    )
    .await
    .unwrap();
    let conn = raw_connection(&db).await;
    let components = || async { count(&conn, "SELECT COUNT(*) FROM plugin_components").await };
    assert_eq!(components().await, 1);
    let bound = &s.bindings(t).await.unwrap()[0];
    assert_eq!((bound.version, bound.canary.clone()), (1, None));
    assert_eq!(bound.wasm.as_ref(), v1.as_slice());
    let signature = s.chain_signature(t).await.unwrap();

    // A new component: version 2, not live; the chain is unchanged.
    let added = |wasm: &Vec<u8>, config: &str| NewVersion {
        wasm: wasm.clone(),
        config: config.into(),
        limits: Limits::default(),
    };
    assert_eq!(
        s.add_binding_version(t, "exact", &added(&v2, r#"{"a": 2}"#))
            .await
            .unwrap(),
        2
    );
    // Only the configuration: version 3 shares version 1's bytes.
    assert_eq!(
        s.add_binding_version(t, "exact", &added(&v1, r#"{"a": 3}"#))
            .await
            .unwrap(),
        3
    );
    assert_eq!(components().await, 2, "one row per distinct component");
    assert_eq!(s.chain_signature(t).await.unwrap(), signature);
    assert!(matches!(
        s.add_binding_version(other, "exact", &added(&v2, "{}"))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.add_binding_version(t, "exact", &added(&v2, "{nope"))
            .await,
        Err(Error::Invalid { .. })
    ));

    // A canary of version 2: the binding names it, the signature moves.
    let rollout = intake::domain::Rollout {
        share_bp: 2_500,
        accounts: vec!["vip".into()],
    };
    s.set_canary(t, "exact", 2, &rollout).await.unwrap();
    let bound = &s.bindings(t).await.unwrap()[0];
    assert_eq!(bound.version, 1);
    let canary = bound.canary.clone().unwrap();
    assert_eq!((canary.version, &canary.rollout), (2, &rollout));
    let (version, wasm) = s.binding_version(t, "exact", 2).await.unwrap();
    assert_eq!(
        (version.config.as_str(), wasm.as_ref()),
        (r#"{"a": 2}"#, v2.as_slice())
    );
    let canary_signature = s.chain_signature(t).await.unwrap();
    assert_ne!(canary_signature, signature);
    for (number, why) in [(1, "the active version"), (9, "no such version")] {
        assert!(
            matches!(
                s.set_canary(t, "exact", number, &rollout).await,
                Err(Error::Invalid { .. } | Error::NotFound { .. })
            ),
            "{why}"
        );
    }

    // Rollback with a canary: the canary stops, version 1 stays.
    assert_eq!(
        s.rollback_binding(t, "exact").await.unwrap(),
        RolledBack::Canary { candidate: 2 }
    );
    let bound = &s.bindings(t).await.unwrap()[0];
    assert_eq!((bound.version, bound.canary.is_none()), (1, true));
    assert_eq!(s.chain_signature(t).await.unwrap(), signature);

    // Promote: without a canary a version must be named.
    assert!(matches!(
        s.promote_binding_version(t, "exact", None).await,
        Err(Error::Invalid { .. })
    ));
    s.set_canary(t, "exact", 2, &rollout).await.unwrap();
    assert_eq!(
        s.promote_binding_version(t, "exact", None).await.unwrap(),
        2
    );
    let bound = &s.bindings(t).await.unwrap()[0];
    assert_eq!(bound.version, 2);
    assert!(bound.canary.is_none(), "the candidate is live for all");
    assert_eq!(bound.wasm.as_ref(), v2.as_slice());
    assert_eq!(bound.config, r#"{"a": 2}"#);
    s.promote_binding_version(t, "exact", Some(3))
        .await
        .unwrap();
    assert_eq!(s.bindings(t).await.unwrap()[0].version, 3);

    // Rollbacks walk back through the versions that were live: 3 → 2 → 1,
    // then there is nothing left.
    assert_eq!(
        s.rollback_binding(t, "exact").await.unwrap(),
        RolledBack::Active { from: 3, to: 2 }
    );
    assert_eq!(
        s.rollback_binding(t, "exact").await.unwrap(),
        RolledBack::Active { from: 2, to: 1 }
    );
    assert!(matches!(
        s.rollback_binding(t, "exact").await,
        Err(Error::Invalid { .. })
    ));
    let bound = &s.bindings(t).await.unwrap()[0];
    assert_eq!((bound.version, bound.config.as_str()), (1, "{}"));
    assert_eq!(bound.wasm.as_ref(), v1.as_slice());
    assert_eq!(
        s.chain_signature(t).await.unwrap(),
        signature,
        "as at first"
    );

    // A configuration change is a new version, active at once; only a new
    // failure policy is not.
    let slower = Limits {
        deadline: std::time::Duration::from_millis(300),
        ..Limits::default()
    };
    assert_eq!(
        s.configure_binding(
            t,
            "exact",
            r#"{"b": 1}"#,
            &slower,
            FailurePolicy::Quarantine
        )
        .await
        .unwrap(),
        4
    );
    assert_eq!(
        s.configure_binding(t, "exact", r#"{"b": 1}"#, &slower, FailurePolicy::Skip)
            .await
            .unwrap(),
        4
    );
    let listed = s.binding_versions(t, "exact").await.unwrap();
    assert_eq!(listed.binding.version, 4);
    assert_eq!(listed.binding.limits, slower);
    assert_eq!(listed.binding.on_error, FailurePolicy::Skip);
    let numbers: Vec<u32> = listed.versions.iter().map(|v| v.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert_eq!(
        listed.versions[3].component_sha256,
        listed.versions[0].component_sha256
    );
    assert!(listed.versions[1].rolled_back_at.is_some());
    assert!(listed.versions[0].rolled_back_at.is_none());

    // Removing the binding removes its versions and its unused components.
    s.remove_binding(t, "exact").await.unwrap();
    assert_eq!(components().await, 0);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM plugin_versions").await,
        0
    );
}

async fn parties_upsert_and_import(db: Db) {
    let s = &db.store;
    let t = s.ensure_tenant("acme").await.unwrap();
    let p = |kind, email: &str, name: Option<&str>, ext: Option<&str>| NewParty {
        kind,
        email: email.into(),
        name: name.map(Into::into),
        company: None,
        external_id: ext.map(Into::into),
    };
    let first = s
        .upsert_party(
            t,
            &p(PartyKind::Contact, "Ann@Acme.example", Some("Ann"), None),
        )
        .await
        .unwrap();
    assert!(matches!(first, Upserted::Created(_)));
    // Same kind and address: the same party; a missing name erases nothing.
    let again = s
        .upsert_party(t, &p(PartyKind::Contact, "ann@acme.example", None, None))
        .await
        .unwrap();
    assert_eq!(again, Upserted::Updated(first.id()));
    assert_eq!(
        s.party(t, first.id())
            .await
            .unwrap()
            .unwrap()
            .name
            .as_deref(),
        Some("Ann")
    );
    // Another kind with that address is another party.
    let as_lead = s
        .upsert_party(t, &p(PartyKind::Lead, "ann@acme.example", None, None))
        .await
        .unwrap();
    assert!(matches!(as_lead, Upserted::Created(_)));
    // A CRM sync claims the unclaimed party by address, then follows its id.
    let synced = s
        .upsert_party(
            t,
            &p(
                PartyKind::Contact,
                "ann@acme.example",
                Some("Ann A."),
                Some("crm-1"),
            ),
        )
        .await
        .unwrap();
    assert_eq!(synced, Upserted::Updated(first.id()));
    let moved = s
        .upsert_party(
            t,
            &p(
                PartyKind::Contact,
                "ann@newco.example",
                Some("Ann A."),
                Some("crm-1"),
            ),
        )
        .await
        .unwrap();
    assert_eq!(moved, Upserted::Updated(first.id()));
    let ann = s.party(t, first.id()).await.unwrap().unwrap();
    assert_eq!(
        (ann.email.as_str(), ann.external_id.as_deref()),
        ("ann@newco.example", Some("crm-1"))
    );
    let dir = s.directory();
    assert_eq!(
        dir.find_by_domain("acme", "newco.example", 10)
            .await
            .unwrap()
            .parties,
        vec![ann.clone()]
    );
    assert!(matches!(
        s.upsert_party(t, &p(PartyKind::Contact, "not-an-address", None, None))
            .await,
        Err(Error::Invalid { .. })
    ));

    // Import: all or nothing.
    let rows = vec![
        p(
            PartyKind::Contact,
            "bob@acme.example",
            Some("Bob"),
            Some("crm-2"),
        ),
        p(
            PartyKind::Contact,
            "carol@acme.example",
            Some("Carol"),
            None,
        ),
        p(
            PartyKind::Contact,
            "ann@newco.example",
            Some("Ann B."),
            Some("crm-1"),
        ),
    ];
    let summary = s.import_parties(t, &rows).await.unwrap();
    assert_eq!((summary.created, summary.updated), (2, 1));
    let bad = vec![
        p(PartyKind::Contact, "dave@acme.example", None, None),
        p(PartyKind::Contact, "", None, None),
    ];
    assert!(s.import_parties(t, &bad).await.is_err());
    assert!(
        dir.find_by_address("acme", "dave@acme.example", 10)
            .await
            .unwrap()
            .parties
            .is_empty()
    );

    let contacts = s
        .parties(t, Some(PartyKind::Contact), None, 100)
        .await
        .unwrap();
    assert_eq!(
        emails(&contacts),
        [
            "ann@newco.example",
            "bob@acme.example",
            "carol@acme.example"
        ]
    );
    let all_parties = s.parties(t, None, None, 100).await.unwrap();
    assert_eq!(all_parties.len(), 4);
    let page = s.parties(t, None, None, 2).await.unwrap();
    let rest = s
        .parties(
            t,
            None,
            Some(intake::store::PartyId(page[1].id.parse().unwrap())),
            100,
        )
        .await
        .unwrap();
    assert_eq!(page.len() + rest.len(), 4);
    assert_eq!(
        s.party(t, first.id())
            .await
            .unwrap()
            .unwrap()
            .name
            .as_deref(),
        Some("Ann B.")
    );
}

fn record(by: &str, disposition: &str) -> DecisionRecord {
    DecisionRecord {
        disposition: disposition.into(),
        decided_by: Some(by.into()),
        steps: vec![DecisionStep {
            plugin: by.into(),
            role: "matcher".into(),
            result: "attach".into(),
            micros: 7,
            component_sha256: "c".repeat(64),
            config_version: "0123456789ab".into(),
            version: Some(1),
            candidate: false,
            error_kind: None,
            error: None,
        }],
    }
}

/// Replay's part of the store: the decision record goes in with the batch
/// and comes back; an account's mail comes in pages, in stored order,
/// without discarded rows, `since` by date; a new decision is applied as a
/// commit would apply it, and applying it twice changes nothing more.
async fn replay_pages_records_and_applies_decisions(db: Db) {
    let s = &db.store;
    let (t, account) = imap_account(&db, "acme", "inbox").await;
    let (_, other) = imap_account(&db, "acme", "other").await;
    let ann = contact(&db, t, "ann@acme.example").await;
    let bob = contact(&db, t, "bob@acme.example").await;
    let mut messages: Vec<IncomingMessage> = (0..7)
        .map(|i| {
            incoming(
                imap("INBOX", 1, 10 + i),
                Some(&format!("m{i}@x")),
                &format!("s{i}@x.example"),
                attach(&[&ann]),
            )
        })
        .collect();
    messages[3].outcome = Outcome::Discard {
        reason: "robot".into(),
        plugin: Some("guard".into()),
    };
    messages[5].meta.date = Some(Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap());
    for m in &mut messages {
        m.decision = Some(record("exact_match", "attach"));
    }
    let summary = s.commit_batch(t, account, &batch(messages)).await.unwrap();
    let ids: Vec<StoredMessageId> = summary
        .results
        .iter()
        .map(|r| match r {
            MessageResult::Inserted(id) => *id,
            MessageResult::Duplicate => panic!("{summary:?}"),
        })
        .collect();
    // Another account's mail is not this account's replay.
    s.commit_batch(
        t,
        other,
        &batch(vec![incoming(
            imap("INBOX", 1, 1),
            Some("elsewhere@x"),
            "e@x.example",
            Outcome::KeepUnlinked,
        )]),
    )
    .await
    .unwrap();
    assert_eq!(
        s.decision_record(t, ids[0]).await.unwrap(),
        Some(record("exact_match", "attach"))
    );
    assert_eq!(
        s.decision_record(t, ids[3]).await.unwrap(),
        Some(record("exact_match", "attach")),
        "a discarded message keeps its record"
    );

    // Pages of 2: every stored message once, in order, discarded left out.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.replay_page(t, account, None, after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for row in page {
            assert!(!row.raw.is_empty());
            assert_eq!(
                row.links
                    .iter()
                    .map(|p| p.0.to_string())
                    .collect::<Vec<_>>(),
                std::slice::from_ref(&ann.id)
            );
            assert_eq!(row.decision, Some(record("exact_match", "attach")));
            seen.push(row.id);
        }
    }
    let expected: Vec<StoredMessageId> = ids.iter().copied().filter(|id| *id != ids[3]).collect();
    assert_eq!(seen, expected);
    // Since: by Date (message 5 is dated September, the rest May).
    let since = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let page = s
        .replay_page(t, account, Some(since), None, 100)
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[5]]);

    // A new decision: bob instead of ann; a lead; a quarantine.
    let updates = [
        ReplayUpdate {
            id: ids[0],
            status: MessageStatus::Stored,
            outcome: attach(&[&bob]),
            decided_by: Some("domain_match".into()),
            record: record("domain_match", "attach"),
        },
        ReplayUpdate {
            id: ids[1],
            status: MessageStatus::Stored,
            outcome: lead("New@Lead.example"),
            decided_by: Some("unknown_sender".into()),
            record: record("unknown_sender", "create-lead"),
        },
        ReplayUpdate {
            id: ids[2],
            status: MessageStatus::Stored,
            outcome: Outcome::Quarantine {
                reason: "held".into(),
                plugin: Some("guard".into()),
            },
            decided_by: Some("guard".into()),
            record: record("guard", "quarantine"),
        },
        // Read as quarantined, but it is stored: left alone.
        ReplayUpdate {
            id: ids[4],
            status: MessageStatus::Quarantined,
            outcome: Outcome::KeepUnlinked,
            decided_by: None,
            record: record("x", "keep-unlinked"),
        },
    ];
    let applied = s.apply_replay(t, account, &updates).await.unwrap();
    assert_eq!(applied.updated, 3, "{applied:?}");
    assert_eq!(applied.skipped, 1, "{applied:?}");
    assert_eq!(applied.created_leads, ["new@lead.example"]);
    assert_eq!((applied.linked, applied.unlinked), (2, 3), "{applied:?}");
    let links = |id: StoredMessageId| async move {
        let m = s.message(t, id).await.unwrap().unwrap().summary;
        (m.status, emails(&m.parties), m.decided_by)
    };
    assert_eq!(
        links(ids[0]).await,
        (
            MessageStatus::Stored,
            vec!["bob@acme.example".to_string()],
            Some("domain_match".to_string())
        )
    );
    assert_eq!(links(ids[1]).await.1, ["new@lead.example"]);
    assert_eq!(links(ids[2]).await.0, MessageStatus::Quarantined);
    assert_eq!(
        s.quarantine_reason(t, ids[2]).await.unwrap(),
        Some(("held".to_string(), Some("guard".to_string())))
    );
    assert_eq!(links(ids[4]).await.1, ["ann@acme.example"]);
    assert_eq!(
        s.decision_record(t, ids[1]).await.unwrap(),
        Some(record("unknown_sender", "create-lead"))
    );
    // The lead is the one a commit makes: the same name and company.
    let made = s
        .find_parties(
            t,
            &PartyFilter {
                email: Some("new@lead.example".into()),
                limit: 10,
                ..PartyFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(
        (
            made[0].kind,
            made[0].name.as_deref(),
            made[0].company.as_deref()
        ),
        (PartyKind::Lead, Some("New Person"), Some("New Co"))
    );

    // Again: nothing more is linked, unlinked or created.
    let mut again: Vec<ReplayUpdate> = updates[..2].to_vec();
    // The quarantined one, re-read as quarantined, goes back to stored.
    again.push(ReplayUpdate {
        status: MessageStatus::Quarantined,
        outcome: attach(&[&ann]),
        ..updates[2].clone()
    });
    let applied = s.apply_replay(t, account, &again).await.unwrap();
    assert_eq!((applied.linked, applied.unlinked), (1, 0), "{applied:?}");
    assert!(applied.created_leads.is_empty());
    assert_eq!(links(ids[2]).await.0, MessageStatus::Stored);
    assert_eq!(
        s.quarantine_reason(t, ids[2]).await.unwrap(),
        None,
        "released"
    );
    let applied = s.apply_replay(t, account, &again[..2]).await.unwrap();
    assert_eq!((applied.linked, applied.unlinked), (0, 0), "{applied:?}");
}
