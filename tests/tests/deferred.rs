//! Contract 0.2.0's temporary errors end to end: real Dovecot (IMAP and
//! POP3), a real store (SQLite and PostgreSQL) and the `crm-outage` test
//! plugin built from source, which fails temporarily (or permanently, as
//! configured) for senders the directory does not know yet.
//!
//! A temporary failure keeps the message, stored and deferred, and leaves
//! it on the server as it was (an account that keeps copies); the account's
//! next runs decide it again, and it is stored and linked once the plugin
//! succeeds, or held in quarantine after the last attempt. A permanent
//! error quarantines at once, as before; a 0.1.0 plugin runs unchanged
//! beside a 0.2.0 one.

use std::sync::Arc;
use std::time::Duration;

use intake::directory::PartyKind;
use intake::fetch::{Protocol, Secret, Security};
use intake::pipeline::{Options, Pipeline, Quiet, RetryPolicy, Summary};
use intake::plugin::ContractVersion;
use intake::store::{
    AccountConfig, BindingRole, MasterKey, MessageQuery, MessageStatus, NewParty, Store, TenantId,
};
use intake_tests::databases::Db;
use intake_tests::on_both_databases;
use intake_tests::servers::{Dovecot, PASSWORD, USER};
use intake_tests::{add_plugins, runtime};

const TENANT: &str = "acme";

/// A mail account "sales" on `server`; `keep` keeps copies on the server.
async fn account(
    store: &Store,
    key: &MasterKey,
    server: &Dovecot,
    protocol: Protocol,
    keep: bool,
) -> TenantId {
    let tenant = store.ensure_tenant(TENANT).await.unwrap();
    store
        .add_credential(tenant, "mailbox", USER, &Secret::new(PASSWORD), key)
        .await
        .unwrap();
    let settings = server.account(protocol, Security::Tls);
    let mut config = AccountConfig::new("sales", protocol, "localhost", Security::Tls, "mailbox");
    config.port = settings.port;
    config.ca_file = settings.ca_file.clone();
    config.keep_on_server = keep;
    store.add_account(tenant, &config).await.unwrap();
    tenant
}

async fn add_contact(store: &Store, tenant: TenantId, email: &str) {
    store
        .import_parties(
            tenant,
            &[NewParty {
                kind: PartyKind::Contact,
                email: email.into(),
                name: None,
                company: None,
                external_id: None,
            }],
        )
        .await
        .unwrap();
}

fn mail(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: sales@ourco.example\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x.example>\r\n\r\nbody\r\n"
    )
    .into_bytes()
}

/// A pipeline that retries deferred messages at every run (no backoff
/// wait), with at most `max_attempts` decisions.
fn pipeline(store: &Store, max_attempts: u32) -> Pipeline {
    Pipeline::new(
        store.clone(),
        Arc::new(runtime()),
        Options {
            retry: RetryPolicy {
                first_delay: Duration::ZERO,
                max_attempts,
                ..RetryPolicy::default()
            },
            ..Options::default()
        },
    )
}

async fn run(pipeline: &Pipeline, key: &MasterKey) -> Summary {
    pipeline
        .run_account(TENANT, "sales", key, &Quiet)
        .await
        .unwrap()
}

/// The first runs fail temporarily (the CRM has not synced the sender):
/// the message is stored, deferred, not quarantined as failed, and left
/// unseen on the server; each run decides it again; once the contact is
/// there it is stored and linked, once, with nothing done on the server.
async fn a_temporary_failure_is_retried_by_later_runs_then_linked(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let store = &db.store;
    let tenant = account(store, &key, &server, Protocol::Imap, true).await;
    add_plugins(
        store,
        tenant,
        &[(
            "crm_outage",
            BindingRole::Matcher,
            r#"{"unknown": "temporary"}"#,
        )],
    )
    .await;
    server.deliver(USER, "INBOX", &mail("bob@new.example", "first"), false);
    let pipeline = pipeline(store, 10);

    let first = run(&pipeline, &key).await;
    assert_eq!(
        (
            first.fetched,
            first.deferred,
            first.quarantined,
            first.retried
        ),
        (1, 1, 0, 0),
        "{first:?}"
    );
    assert_eq!(first.actions_done, 0, "nothing done on the server");
    let held = store.quarantined(tenant, None).await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].kind, "temporary");
    assert_eq!(held[0].attempts, 1);
    assert!(held[0].next_attempt_at.is_some());
    assert_eq!(held[0].plugin.as_deref(), Some("crm_outage"));
    assert!(
        held[0].reason.contains("has not synced bob@new.example"),
        "{}",
        held[0].reason
    );
    let id = held[0].message.id;
    assert_eq!(held[0].message.status, MessageStatus::Quarantined);
    let files = server.files(USER, "INBOX");
    assert_eq!(files.len(), 1);
    assert!(!files[0].1, "left unseen on the server: {files:?}");

    // Still down: decided again, deferred again.
    let second = run(&pipeline, &key).await;
    assert_eq!(
        (
            second.fetched,
            second.retried,
            second.retried_stored,
            second.deferred
        ),
        (0, 1, 0, 0),
        "{second:?}"
    );
    let held = store.quarantined(tenant, None).await.unwrap();
    assert_eq!((held.len(), held[0].attempts), (1, 2), "{held:?}");

    // The CRM catches up: the next run stores and links it.
    add_contact(store, tenant, "bob@new.example").await;
    let third = run(&pipeline, &key).await;
    assert_eq!(
        (
            third.fetched,
            third.retried,
            third.retried_stored,
            third.duplicates
        ),
        (0, 1, 1, 0),
        "{third:?}"
    );
    assert!(store.quarantined(tenant, None).await.unwrap().is_empty());
    let inbox = store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(inbox.len(), 1, "stored once: {inbox:?}");
    assert_eq!(inbox[0].id, id);
    assert_eq!(inbox[0].status, MessageStatus::Stored);
    assert_eq!(inbox[0].decided_by.as_deref(), Some("crm_outage"));
    assert_eq!(
        inbox[0]
            .parties
            .iter()
            .map(|p| p.email.as_str())
            .collect::<Vec<_>>(),
        ["bob@new.example"]
    );
    let record = store.decision_record(tenant, id).await.unwrap().unwrap();
    assert_eq!(record.disposition, "attach", "{record:?}");
    let raw = store
        .message(tenant, id)
        .await
        .unwrap()
        .unwrap()
        .raw
        .unwrap();
    assert_eq!(raw, mail("bob@new.example", "first"), "the exact bytes");

    // Nothing more to do, and the server's copy is as it was.
    let fourth = run(&pipeline, &key).await;
    assert_eq!((fourth.fetched, fourth.retried), (0, 0), "{fourth:?}");
    let files = server.files(USER, "INBOX");
    assert_eq!(files.len(), 1);
    assert!(!files[0].1, "{files:?}");
}

/// A permanent error quarantines as before: held at once, not retried,
/// and the account's server action runs after the commit.
async fn a_permanent_failure_quarantines_as_before(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let store = &db.store;
    let tenant = account(store, &key, &server, Protocol::Imap, true).await;
    add_plugins(
        store,
        tenant,
        &[(
            "crm_outage",
            BindingRole::Matcher,
            r#"{"unknown": "permanent"}"#,
        )],
    )
    .await;
    server.deliver(USER, "INBOX", &mail("bob@new.example", "perm"), false);
    let pipeline = pipeline(store, 10);
    let first = run(&pipeline, &key).await;
    assert_eq!(
        (
            first.fetched,
            first.quarantined,
            first.deferred,
            first.actions_done
        ),
        (1, 1, 0, 1),
        "{first:?}"
    );
    let held = store.quarantined(tenant, None).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].kind.as_str(), held[0].attempts), ("held", 0));
    assert_eq!(held[0].next_attempt_at, None);
    assert!(
        held[0].reason.contains("bob@new.example is not in the CRM"),
        "{}",
        held[0].reason
    );
    assert!(
        server.files(USER, "INBOX")[0].1,
        "marked seen, as any quarantined message of a keep-a-copy account"
    );
    // Even with the contact there now, a held message is the admin's.
    add_contact(store, tenant, "bob@new.example").await;
    let again = run(&pipeline, &key).await;
    assert_eq!((again.fetched, again.retried), (0, 0), "{again:?}");
    assert_eq!(store.quarantined(tenant, None).await.unwrap().len(), 1);
}

/// A 0.1.0 plugin and a 0.2.0 plugin in one chain: each runs as its
/// contract says; the 0.1.0 one decides mail from a known contact exactly
/// as before, the 0.2.0 one defers mail from a stranger; a 0.2.0 `init`
/// that fails temporarily defers too.
async fn a_v0_1_plugin_runs_beside_a_v0_2_plugin(db: Db) {
    let rt = runtime();
    let v1 = intake_tests::load(&rt, "exact_match", "{}").await;
    let v2 = intake_tests::load(&rt, "crm_outage", "{}").await;
    assert_eq!(v1.contract(), ContractVersion::V0_1);
    assert_eq!(v2.contract(), ContractVersion::V0_2);
    for (name, version) in [("exact_match", "0.1.0"), ("crm_outage", "0.2.0")] {
        let wasm = std::fs::read(intake_tests::plugin(name)).unwrap();
        assert_eq!(
            ContractVersion::of_component(&wasm).map(|v| v.as_str()),
            Some(version)
        );
    }

    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let store = &db.store;
    let tenant = account(store, &key, &server, Protocol::Imap, true).await;
    add_contact(store, tenant, "ann@acme.example").await;
    add_plugins(
        store,
        tenant,
        &[
            ("exact_match", BindingRole::Matcher, "{}"),
            (
                "crm_outage",
                BindingRole::Matcher,
                r#"{"unknown": "temporary"}"#,
            ),
        ],
    )
    .await;
    server.deliver(USER, "INBOX", &mail("ann@acme.example", "known"), false);
    server.deliver(USER, "INBOX", &mail("bob@new.example", "stranger"), false);
    let pipeline = pipeline(store, 10);
    let first = run(&pipeline, &key).await;
    assert_eq!(
        (
            first.fetched,
            first.attached,
            first.deferred,
            first.quarantined
        ),
        (2, 1, 1, 0),
        "{first:?}"
    );
    assert_eq!(
        first.actions_done, 1,
        "only the decided message is marked seen"
    );
    let inbox = store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap();
    let known = inbox
        .iter()
        .find(|m| m.subject.as_deref() == Some("known"))
        .unwrap();
    assert_eq!(known.decided_by.as_deref(), Some("exact_match"));
    let record = store
        .decision_record(tenant, known.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.steps.len(), 1, "{record:?}");
    let stranger = inbox
        .iter()
        .find(|m| m.subject.as_deref() == Some("stranger"))
        .unwrap();
    let record = store
        .decision_record(tenant, stranger.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.disposition, "defer", "{record:?}");
    assert_eq!(
        record
            .steps
            .iter()
            .map(|s| (s.plugin.as_str(), s.result.as_str()))
            .collect::<Vec<_>>(),
        [("exact_match", "no-opinion"), ("crm_outage", "deferred")]
    );
    assert_eq!(record.steps[1].error_kind.as_deref(), Some("temporary"));

    // A 0.2.0 init that fails temporarily defers, for a known sender too.
    store.remove_binding(tenant, "exact_match").await.unwrap();
    store
        .configure_binding(
            tenant,
            "crm_outage",
            r#"{"init": "temporary"}"#,
            &intake::plugin::Limits::default(),
            intake::plugin::FailurePolicy::Quarantine,
        )
        .await
        .unwrap();
    server.deliver(USER, "INBOX", &mail("ann@acme.example", "init"), false);
    let second = run(&pipeline, &key).await;
    assert_eq!(
        (
            second.fetched,
            second.deferred,
            second.retried,
            second.retried_stored
        ),
        (1, 1, 1, 0),
        "the new one deferred, the stranger retried and deferred again: {second:?}"
    );
    let held = store.quarantined(tenant, None).await.unwrap();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|q| q.kind == "temporary"));
    assert!(
        held.iter()
            .any(|q| q.reason.contains("failed temporarily in init")
                && q.reason.contains("token service is down")),
        "{held:?}"
    );
}

/// A POP3 account that deletes after fetching: the deferred message's
/// stored bytes are the durable copy, so it is deleted after the commit as
/// a quarantined one is. After the last attempt the temporary failure
/// becomes an ordinary quarantine entry, which later runs leave alone.
async fn a_temporary_failure_is_held_after_the_last_attempt(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let store = &db.store;
    let tenant = account(store, &key, &server, Protocol::Pop3, false).await;
    add_plugins(
        store,
        tenant,
        &[(
            "crm_outage",
            BindingRole::Matcher,
            r#"{"unknown": "temporary"}"#,
        )],
    )
    .await;
    server.deliver(USER, "INBOX", &mail("bob@new.example", "pop"), false);
    let pipeline = pipeline(store, 3);

    let first = run(&pipeline, &key).await;
    assert_eq!((first.fetched, first.deferred), (1, 1), "{first:?}");
    assert!(
        server.files(USER, "INBOX").is_empty(),
        "deleted at QUIT, after the commit that stored it"
    );
    let second = run(&pipeline, &key).await;
    assert_eq!((second.retried, second.retried_held), (1, 0), "{second:?}");
    let third = run(&pipeline, &key).await;
    assert_eq!((third.retried, third.retried_held), (1, 1), "{third:?}");
    let held = store.quarantined(tenant, None).await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].kind, "held");
    assert_eq!(held[0].next_attempt_at, None);
    assert!(
        held[0].reason.contains("after 3 attempts"),
        "{}",
        held[0].reason
    );
    assert_eq!(held[0].message.status, MessageStatus::Quarantined);
    let raw = store
        .message(tenant, held[0].message.id)
        .await
        .unwrap()
        .unwrap()
        .raw
        .unwrap();
    assert_eq!(raw, mail("bob@new.example", "pop"), "nothing lost");
    let fourth = run(&pipeline, &key).await;
    assert_eq!((fourth.fetched, fourth.retried), (0, 0), "{fourth:?}");
}

/// A file import goes the same way: a temporary failure defers the
/// message (the file is never touched), and the account's next import
/// decides it again.
async fn an_imported_file_is_deferred_and_retried_by_the_next_import(db: Db) {
    use intake::fetch::files::{FileSet, FileSource};
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let store = &db.store;
    let tenant = account(store, &key, &server, Protocol::Imap, true).await;
    add_plugins(
        store,
        tenant,
        &[(
            "crm_outage",
            BindingRole::Matcher,
            r#"{"unknown": "temporary"}"#,
        )],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let first_file = dir.path().join("first.eml");
    std::fs::write(&first_file, mail("carol@new.example", "imported")).unwrap();
    let pipeline = pipeline(store, 10);
    let import = |path: std::path::PathBuf| {
        let pipeline = &pipeline;
        let key = &key;
        async move {
            let files = FileSource::new(FileSet::Eml(path), 1 << 20).unwrap();
            pipeline
                .import(TENANT, "sales", key, files, &Quiet)
                .await
                .unwrap()
        }
    };
    let first = import(first_file.clone()).await;
    assert_eq!((first.fetched, first.deferred), (1, 1), "{first:?}");
    assert_eq!(
        std::fs::read(&first_file).unwrap(),
        mail("carol@new.example", "imported"),
        "the file is never touched"
    );
    add_contact(store, tenant, "carol@new.example").await;
    let other = dir.path().join("other.eml");
    std::fs::write(&other, mail("carol@new.example", "second")).unwrap();
    let second = import(other).await;
    assert_eq!(
        (
            second.fetched,
            second.attached,
            second.retried,
            second.retried_stored
        ),
        (1, 1, 1, 1),
        "{second:?}"
    );
    assert!(store.quarantined(tenant, None).await.unwrap().is_empty());
    let inbox = store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    assert!(
        inbox
            .iter()
            .all(|m| m.status == MessageStatus::Stored && m.parties.len() == 1),
        "{inbox:?}"
    );
}

on_both_databases!(
    an_imported_file_is_deferred_and_retried_by_the_next_import,
    a_temporary_failure_is_retried_by_later_runs_then_linked,
    a_permanent_failure_quarantines_as_before,
    a_v0_1_plugin_runs_beside_a_v0_2_plugin,
    a_temporary_failure_is_held_after_the_last_attempt,
);
