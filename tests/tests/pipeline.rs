//! The ingest pipeline end to end: real Dovecot (IMAP and POP3), the real
//! reference plugins, and a real store (SQLite and PostgreSQL). The bundled
//! sample mail goes in; contacts are attached, unknown senders become leads,
//! auto-replies are discarded, broken mail is quarantined raw; the server is
//! acknowledged only after the commit; re-runs ingest nothing twice.

use std::sync::Arc;

use intake::directory::PartyKind;
use intake::domain::{Acknowledge, FolderCursor, Outcome};
use intake::fetch::{Protocol, Secret, Security, open};
use intake::pipeline::{Options, Pipeline, Quiet};
use intake::store::{
    AccountConfig, BatchCommit, BindingRole, IncomingMessage, MasterKey, MessageMeta, MessageQuery,
    MessageStatus, NewParty, Store,
};
use intake_tests::databases::Db;
use intake_tests::on_both_databases;
use intake_tests::servers::{Dovecot, PASSWORD, USER};
use intake_tests::{add_plugins, root, runtime};

const TENANT: &str = "acme";

async fn setup(store: &Store, key: &MasterKey, server: &Dovecot, protocol: Protocol, keep: bool) {
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

    let csv = std::fs::read_to_string(root().join("samples/contacts.csv")).unwrap();
    let parties: Vec<NewParty> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            NewParty {
                kind: if f[3] == "lead" {
                    PartyKind::Lead
                } else {
                    PartyKind::Contact
                },
                email: f[0].into(),
                name: Some(f[1].into()),
                company: Some(f[2].into()),
                external_id: Some(f[4].into()),
            }
        })
        .collect();
    store.import_parties(tenant, &parties).await.unwrap();

    add_plugins(
        store,
        tenant,
        &[
            ("auto_reply_guard", BindingRole::Matcher, "{}"),
            ("thread_match", BindingRole::Matcher, "{}"),
            (
                "exact_match",
                BindingRole::Matcher,
                r#"{"fold_plus": true, "ignore": ["sales@ourco.example"]}"#,
            ),
            (
                "domain_match",
                BindingRole::Matcher,
                r#"{"ignore_domains": ["ourco.example"]}"#,
            ),
            ("unknown_sender", BindingRole::UnknownSender, "{}"),
        ],
    )
    .await;
    let mut files: Vec<_> = std::fs::read_dir(root().join("samples/maildir/cur"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        server.deliver(USER, "INBOX", &std::fs::read(f).unwrap(), false);
    }
}

async fn imap_keep_copy(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key, &server, Protocol::Imap, true).await;
    let pipeline = Pipeline::new(
        db.store.clone(),
        Arc::new(runtime()),
        Options {
            batch_messages: 4,
            ..Options::default()
        },
    );

    let s = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!(s.fetched, 13, "{s:?}");
    // Tom Baker (two contacts at his domain) becomes a lead of his own;
    // domain-match attaches only to a domain's one contact.
    assert_eq!(
        (s.attached, s.new_leads, s.discarded, s.quarantined),
        (6, 3, 3, 1),
        "{s:?}"
    );
    assert_eq!(s.duplicates, 0);
    assert_eq!(
        s.actions_done, 13,
        "every message is marked seen after its commit"
    );
    let files = server.files(USER, "INBOX");
    assert_eq!(files.len(), 13, "keep a copy: nothing deleted");
    assert!(files.iter().all(|(_, seen)| *seen), "{files:?}");

    // The view inbox: linked parties and statuses.
    let tenant = db.store.ensure_tenant(TENANT).await.unwrap();
    let inbox = db
        .store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap();
    let ann = inbox
        .iter()
        .find(|m| m.subject.as_deref() == Some("Quote for 40 licences"))
        .unwrap();
    assert_eq!(
        ann.parties
            .iter()
            .map(|p| p.email.as_str())
            .collect::<Vec<_>>(),
        ["ann.lee@acme.example"]
    );
    let reply = inbox
        .iter()
        .find(|m| m.subject.as_deref() == Some("Re: Quote for 40 licences"))
        .unwrap();
    assert_eq!(
        reply.parties[0].email, "ann.lee@acme.example",
        "threaded through the stored links"
    );
    let follow_up = inbox
        .iter()
        .find(|m| m.subject.as_deref() == Some("Re: Pricing for 200 seats?"))
        .unwrap();
    assert_eq!(
        follow_up.parties[0].email, "jane.roe@northwind-traders.example",
        "the lead created earlier in the run"
    );
    assert!(inbox.iter().any(|m| m.status == MessageStatus::Quarantined));

    // A second run finds nothing new and stores nothing twice.
    let again = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!((again.fetched, again.duplicates), (0, 0), "{again:?}");
    let total = db
        .store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap()
        .len();
    assert_eq!(total, inbox.len());
}

async fn pop3_delete_after_commit(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key, &server, Protocol::Pop3, false).await;
    let pipeline = Pipeline::new(db.store.clone(), Arc::new(runtime()), Options::default());
    let s = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!(s.fetched, 13, "{s:?}");
    assert_eq!(s.actions_done, 13);
    assert!(
        server.files(USER, "INBOX").is_empty(),
        "deleted at QUIT, after the commit"
    );
    let again = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!(again.fetched, 0);
}

/// A deletion queued by an earlier run (committed, then the run ended
/// before `DELE`) names the message by its UIDL only: the next session's
/// source finds its number there and deletes it at `QUIT`.
async fn pop3_deletion_queued_by_an_earlier_run_is_done_in_a_later_session(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key, &server, Protocol::Pop3, false).await;
    // The fifth message's UIDL, from a session of our own.
    let mut session = open(&server.account(Protocol::Pop3, Security::Tls))
        .await
        .unwrap();
    let listing = session
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap();
    assert_eq!(listing.new.len(), 13);
    let earlier = listing.new[4].message.clone();
    session.close().await.unwrap();
    let raw = server.files(USER, "INBOX").len();
    assert_eq!(raw, 13);

    // What an earlier run committed for it: the message and its deletion.
    let tenant = db.store.ensure_tenant(TENANT).await.unwrap();
    let account = db.store.account_id(tenant, "sales").await.unwrap();
    let committed = db
        .store
        .commit_batch(
            tenant,
            account,
            &BatchCommit {
                messages: vec![IncomingMessage {
                    key: earlier.clone(),
                    raw: bytes::Bytes::from_static(b"Subject: earlier\r\n\r\nbody\r\n"),
                    meta: MessageMeta::default(),
                    outcome: Outcome::KeepUnlinked,
                    action: Some(Acknowledge::Delete),
                    decided_by: None,
                    decision: None,
                }],
                ..BatchCommit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(committed.actions_queued, 1);

    let pipeline = Pipeline::new(db.store.clone(), Arc::new(runtime()), Options::default());
    let s = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (s.fetched, s.actions_done, s.actions_failed),
        (12, 13, 0),
        "the twelve others fetched, all thirteen deleted: {s:?}"
    );
    assert!(server.files(USER, "INBOX").is_empty(), "deleted at QUIT");
    assert!(
        db.store
            .pending_actions(tenant, account)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A first sync limited to the newest two: the IMAP listing keeps those and
/// moves the cursor past the rest, which the pipeline commits, so the next
/// run finds nothing new and later mail is fetched whatever the count.
async fn first_sync_count_ingests_the_newest_and_moves_past_the_rest(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let store = &db.store;
    let tenant = plain_imap_account(store, &key, &server).await;
    let mut config = store.account(tenant, "sales").await.unwrap().config;
    config.first_sync.max_messages = Some(2);
    store
        .update_account(tenant, "sales", &config)
        .await
        .unwrap();
    add_plugins(
        store,
        tenant,
        &[("unknown_sender", BindingRole::UnknownSender, "{}")],
    )
    .await;
    let deliver = |n: u32| {
        let raw = format!("From: p{n}@prospect.example\r\nSubject: m{n}\r\n\r\nbody {n}\r\n");
        server.deliver(USER, "INBOX", raw.as_bytes(), false);
    };
    for n in 1..=5 {
        deliver(n);
    }
    let pipeline = Pipeline::new(store.clone(), Arc::new(runtime()), Options::default());
    let first = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!(first.fetched, 2, "{first:?}");
    let account = store.account_id(tenant, "sales").await.unwrap();
    let cursor = store.cursor(tenant, account, "INBOX").await.unwrap();
    assert_eq!(cursor.last_uid, 5);
    let again = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!(again.fetched, 0, "{again:?}");
    deliver(6);
    let later = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!(later.fetched, 1, "{later:?}");
    let mut subjects: Vec<String> = store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.subject)
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["m4", "m5", "m6"]);
}

/// Tenant `TENANT` with an IMAP account "sales" on `server` (no TLS, keeps
/// copies), its password sealed with `key`.
async fn plain_imap_account(
    store: &Store,
    key: &MasterKey,
    server: &Dovecot,
) -> intake::store::TenantId {
    let tenant = store.ensure_tenant(TENANT).await.unwrap();
    store
        .add_credential(tenant, "mailbox", USER, &Secret::new(PASSWORD), key)
        .await
        .unwrap();
    let settings = server.account(Protocol::Imap, Security::None);
    let mut config = AccountConfig::new(
        "sales",
        Protocol::Imap,
        "localhost",
        Security::None,
        "mailbox",
    );
    config.port = settings.port;
    config.keep_on_server = true;
    store.add_account(tenant, &config).await.unwrap();
    tenant
}

/// Mail from one stranger over several batches, some decided while the
/// batch that creates the lead is still committing: one lead, every message
/// linked to it, and each counted once.
async fn a_lead_created_in_the_run_is_found_by_later_batches(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let store = &db.store;
    let tenant = plain_imap_account(store, &key, &server).await;
    add_plugins(
        store,
        tenant,
        &[
            ("exact_match", BindingRole::Matcher, "{}"),
            ("unknown_sender", BindingRole::UnknownSender, "{}"),
        ],
    )
    .await;
    for n in 0..5 {
        let raw = format!(
            "From: Pat Doe <pat@prospect.example>\r\nTo: sales@ourco.example\r\n\
Subject: Question {n}\r\nMessage-ID: <q{n}@prospect.example>\r\n\
Date: Mon, 02 Nov 2026 09:00:0{n} +0000\r\n\r\nHello {n}\r\n"
        );
        server.deliver(USER, "INBOX", raw.as_bytes(), false);
    }
    let pipeline = Pipeline::new(
        store.clone(),
        Arc::new(runtime()),
        Options {
            batch_messages: 1,
            ..Options::default()
        },
    );
    let s = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!(s.fetched, 5, "{s:?}");
    assert_eq!(s.new_leads, 1, "{s:?}");
    // The first message creates the lead; the second is decided while the
    // first commits (so it asks for a lead again, and is linked to the one
    // just made); the other three find it through the directory.
    assert_eq!(s.attached, 4, "{s:?}");
    assert_eq!(s.unlinked, 0, "{s:?}");
    let inbox = store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(inbox.len(), 5);
    for m in &inbox {
        let emails: Vec<&str> = m.parties.iter().map(|p| p.email.as_str()).collect();
        assert_eq!(emails, ["pat@prospect.example"], "{:?}", m.subject);
    }
    let ids: std::collections::BTreeSet<_> =
        inbox.iter().map(|m| m.parties[0].id.clone()).collect();
    assert_eq!(ids.len(), 1, "one lead for all five");
    let files = server.files(USER, "INBOX");
    assert_eq!(files.len(), 5);
    assert!(files.iter().all(|(_, seen)| *seen), "{files:?}");
}

/// A batch is decided on several workers at once; a reply decided on
/// another worker than its parent, in the same batch, still threads to the
/// parent's contact instead of becoming a lead of its own.
async fn replies_thread_to_parents_decided_in_parallel(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let store = &db.store;
    let tenant = plain_imap_account(store, &key, &server).await;
    store
        .upsert_party(
            tenant,
            &NewParty {
                kind: PartyKind::Contact,
                email: "ann@client.example".into(),
                name: Some("Ann".into()),
                company: None,
                external_id: None,
            },
        )
        .await
        .unwrap();
    add_plugins(
        store,
        tenant,
        &[
            ("thread_match", BindingRole::Matcher, "{}"),
            ("exact_match", BindingRole::Matcher, "{}"),
            ("unknown_sender", BindingRole::UnknownSender, "{}"),
        ],
    )
    .await;
    // Four messages, one batch, two workers: [ann's mail, filler] and
    // [a stranger's reply to ann's mail, filler].
    let mail = [
        "From: ann@client.example\r\nMessage-ID: <root@client.example>\r\nSubject: order\r\n\r\nx\r\n",
        "From: ann@client.example\r\nMessage-ID: <other@client.example>\r\nSubject: more\r\n\r\nx\r\n",
        "From: colleague@elsewhere.example\r\nMessage-ID: <reply@elsewhere.example>\r\n\
In-Reply-To: <root@client.example>\r\nSubject: Re: order\r\n\r\nx\r\n",
        "From: ann@client.example\r\nMessage-ID: <last@client.example>\r\nSubject: last\r\n\r\nx\r\n",
    ];
    for raw in mail {
        server.deliver(USER, "INBOX", raw.as_bytes(), false);
    }
    let pipeline = Pipeline::new(
        store.clone(),
        Arc::new(runtime()),
        Options {
            batch_messages: 4,
            decide_workers: 2,
            ..Options::default()
        },
    );
    let s = pipeline
        .run_account(TENANT, "sales", &key, &Quiet)
        .await
        .unwrap();
    assert_eq!((s.fetched, s.attached, s.new_leads), (4, 4, 0), "{s:?}");
    let inbox = store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap();
    let reply = inbox
        .iter()
        .find(|m| m.subject.as_deref() == Some("Re: order"))
        .unwrap();
    let emails: Vec<&str> = reply.parties.iter().map(|p| p.email.as_str()).collect();
    assert_eq!(emails, ["ann@client.example"]);
}

on_both_databases!(
    imap_keep_copy,
    pop3_delete_after_commit,
    pop3_deletion_queued_by_an_earlier_run_is_done_in_a_later_session,
    first_sync_count_ingests_the_newest_and_moves_past_the_rest,
    a_lead_created_in_the_run_is_found_by_later_batches,
    replies_thread_to_parents_decided_in_parallel
);
