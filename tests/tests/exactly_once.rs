//! The pipeline's exactly-once rules with faults injected through an
//! in-memory mailbox (`fetch::memory`), driven by the public
//! `Pipeline::run_source`: a short batch, a refused acknowledgement, a crash
//! between commit and acknowledgement, a UIDVALIDITY reset. After each, the
//! next clean run leaves every message stored exactly once and acknowledged
//! on the server. (The real-server tests in `pipeline.rs` and `crash.rs`
//! check the same rules over IMAP and POP3.)

use std::sync::Arc;

use intake::fetch::files::{FileSet, FileSource};
use intake::fetch::memory::{Faults, MemoryMailbox};
use intake::fetch::{Protocol, Secret, Security};
use intake::pipeline::{Options, Pipeline, PipelineError, Quiet, Summary};
use intake::store::{AccountConfig, BindingRole, MasterKey, MessageQuery, Store};
use intake_tests::databases::Db;
use intake_tests::on_both_databases;
use intake_tests::{add_plugins, runtime};

const TENANT: &str = "acme";

async fn setup(store: &Store, key: &MasterKey) {
    let tenant = store.ensure_tenant(TENANT).await.unwrap();
    store
        .add_credential(tenant, "login", "user", &Secret::new("pw"), key)
        .await
        .unwrap();
    let mut config = AccountConfig::new(
        "sales",
        Protocol::Imap,
        "memory.invalid",
        Security::None,
        "login",
    );
    config.keep_on_server = true;
    store.add_account(tenant, &config).await.unwrap();
    add_plugins(
        store,
        tenant,
        &[
            ("exact_match", BindingRole::Matcher, "{}"),
            ("unknown_sender", BindingRole::UnknownSender, "{}"),
        ],
    )
    .await;
}

/// Ten messages; every third has no Message-ID.
fn mailbox() -> MemoryMailbox {
    let mailbox = MemoryMailbox::new(7);
    for n in 0..10 {
        let id = if n % 3 == 0 {
            String::new()
        } else {
            format!("Message-ID: <m{n}@x.example>\r\n")
        };
        mailbox.deliver(format!(
            "From: person{n}@prospect.example\r\nTo: sales@ourco.example\r\n{id}Subject: m{n}\r\n\r\nbody {n}\r\n"
        ));
    }
    mailbox
}

fn pipeline(store: &Store) -> Pipeline {
    Pipeline::new(
        store.clone(),
        Arc::new(runtime()),
        Options {
            batch_messages: 3,
            ..Options::default()
        },
    )
}

async fn run(
    pipeline: &Pipeline,
    key: &MasterKey,
    mailbox: &MemoryMailbox,
) -> Result<Summary, PipelineError> {
    pipeline
        .run_source(TENANT, "sales", key, mailbox.source(), &Quiet)
        .await
}

/// Every delivered message stored once, every one of them seen.
async fn all_stored_once_and_seen(store: &Store, mailbox: &MemoryMailbox) {
    let tenant = store.ensure_tenant(TENANT).await.unwrap();
    let stored = store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap();
    let mut subjects: Vec<String> = stored.iter().filter_map(|m| m.subject.clone()).collect();
    subjects.sort();
    let mut expected: Vec<String> = (0..10).map(|n| format!("m{n}")).collect();
    expected.sort();
    assert_eq!(subjects, expected);
    assert!(
        mailbox.messages().iter().all(|(_, seen)| *seen),
        "{:?}",
        mailbox.messages()
    );
}

async fn a_clean_run_stores_each_once(db: Db) {
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key).await;
    let (p, mailbox) = (pipeline(&db.store), mailbox());
    let s = run(&p, &key, &mailbox).await.unwrap();
    assert_eq!((s.fetched, s.new_leads, s.duplicates), (10, 10, 0), "{s:?}");
    all_stored_once_and_seen(&db.store, &mailbox).await;
    // Each stored message says which plugin decided it.
    let tenant = db.store.ensure_tenant(TENANT).await.unwrap();
    for m in db
        .store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap()
    {
        assert_eq!(m.decided_by.as_deref(), Some("unknown_sender"), "{m:?}");
    }
    let again = run(&p, &key, &mailbox).await.unwrap();
    assert_eq!(again.fetched, 0, "{again:?}");
}

async fn a_short_batch_is_never_committed(db: Db) {
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key).await;
    let (p, mailbox) = (pipeline(&db.store), mailbox());
    mailbox.set_faults(Faults {
        short_fetches: 1,
        ..Faults::default()
    });
    let err = run(&p, &key, &mailbox).await.unwrap_err();
    assert!(err.to_string().contains("received 2 of 3"), "{err}");
    // Nothing of that batch was stored or acknowledged.
    let tenant = db.store.ensure_tenant(TENANT).await.unwrap();
    assert!(
        db.store
            .messages(tenant, &MessageQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(mailbox.messages().iter().all(|(_, seen)| !seen));
    assert!(!mailbox.commands().iter().any(|c| c.starts_with("STORE")));
    // The next run picks up everything.
    run(&p, &key, &mailbox).await.unwrap();
    all_stored_once_and_seen(&db.store, &mailbox).await;
}

async fn a_refused_acknowledgement_is_retried_not_reingested(db: Db) {
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key).await;
    let (p, mailbox) = (pipeline(&db.store), mailbox());
    mailbox.set_faults(Faults {
        failed_acknowledgements: 1,
        ..Faults::default()
    });
    let first = run(&p, &key, &mailbox).await;
    // Stored, but the first batch is not marked seen yet.
    let unseen = mailbox.messages().iter().filter(|(_, s)| !s).count();
    assert!(unseen > 0, "{first:?}");
    let second = run(&p, &key, &mailbox).await.unwrap();
    assert_eq!(second.fetched, 0, "the cursor moved past stored mail");
    all_stored_once_and_seen(&db.store, &mailbox).await;
}

async fn a_crash_between_commit_and_acknowledge_loses_nothing(db: Db) {
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key).await;
    let mailbox = mailbox();
    mailbox.set_faults(Faults {
        crashes_before_acknowledge: 1,
        ..Faults::default()
    });
    // The run dies on its task, as a process would.
    let crashed = {
        let (store, key, mailbox) = (db.store.clone(), key.clone(), mailbox.clone());
        tokio::spawn(async move {
            let p = pipeline(&store);
            run(&p, &key, &mailbox).await
        })
        .await
    };
    assert!(crashed.is_err_and(|e| e.is_panic()));
    assert!(mailbox.messages().iter().all(|(_, seen)| !seen));
    let p = pipeline(&db.store);
    let s = run(&p, &key, &mailbox).await.unwrap();
    // The committed batch is not fetched again; its queued actions are
    // carried out first.
    assert!(s.fetched < 10, "{s:?}");
    all_stored_once_and_seen(&db.store, &mailbox).await;
}

async fn a_uidvalidity_reset_stores_nothing_twice(db: Db) {
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key).await;
    let (p, mailbox) = (pipeline(&db.store), mailbox());
    run(&p, &key, &mailbox).await.unwrap();
    for validity in [8, 9, 10] {
        mailbox.reset_uid_validity(validity);
        let s = run(&p, &key, &mailbox).await.unwrap();
        // Every message is fetched again and recognised: by Message-ID,
        // and by its bytes when it has none.
        assert_eq!((s.fetched, s.duplicates), (10, 10), "{s:?}");
    }
    all_stored_once_and_seen(&db.store, &mailbox).await;
}

/// A message over the size limit in the middle of the listing, and a run
/// that fails after its first batch was committed: the cursor must not have
/// jumped past the smaller messages listed beside the large one, which the
/// next run then fetches. (Before, the skip was committed with the first
/// batch, and those messages were never fetched.)
async fn a_skipped_large_message_never_moves_the_cursor_past_unstored_mail(db: Db) {
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key).await;
    let mailbox = MemoryMailbox::new(7);
    for n in 0..10 {
        let padding = if n == 5 {
            "x".repeat(10_000)
        } else {
            String::new()
        };
        mailbox.deliver(format!(
            "From: person{n}@prospect.example\r\nSubject: m{n}\r\n\r\nbody {n}{padding}\r\n"
        ));
    }
    mailbox.set_size_limit(5_000);
    // Batches of three: [m0 m1 m2] is committed, [m3 m4 m6] comes back
    // short and the run fails; m5 is the large one.
    mailbox.set_faults(Faults {
        fetches_before_short: 1,
        short_fetches: 1,
        ..Faults::default()
    });
    assert!(run(&pipeline(&db.store), &key, &mailbox).await.is_err());
    let s = run(&pipeline(&db.store), &key, &mailbox).await.unwrap();
    assert_eq!(s.skipped_too_large, 1, "{s:?}");
    let tenant = db.store.ensure_tenant(TENANT).await.unwrap();
    let mut subjects: Vec<String> = db
        .store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.subject)
        .collect();
    subjects.sort();
    let expected: Vec<String> = [0, 1, 2, 3, 4, 6, 7, 8, 9]
        .iter()
        .map(|n| format!("m{n}"))
        .collect();
    assert_eq!(subjects, expected);
    // And once everything is stored, the cursor is past the large one.
    let again = run(&pipeline(&db.store), &key, &mailbox).await.unwrap();
    assert_eq!(
        (again.fetched, again.skipped_too_large),
        (0, 0),
        "{again:?}"
    );
}

/// Server actions queued for the mailbox wait for a session on it: an
/// import into the same account (a file source, folder `INBOX` too) can
/// carry none of them out, so it must leave them queued, not count them
/// done.
async fn an_import_leaves_the_mailbox_s_queued_actions_queued(db: Db) {
    let key = MasterKey::generate().unwrap();
    setup(&db.store, &key).await;
    let (p, mailbox) = (pipeline(&db.store), mailbox());
    mailbox.set_faults(Faults {
        failed_acknowledgements: 1,
        ..Faults::default()
    });
    run(&p, &key, &mailbox).await.unwrap();
    let tenant = db.store.ensure_tenant(TENANT).await.unwrap();
    let account = db.store.account_id(tenant, "sales").await.unwrap();
    let queued = db.store.pending_actions(tenant, account).await.unwrap();
    assert_eq!(queued.len(), 3, "the first batch's acknowledgement failed");

    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("one.eml");
    std::fs::write(
        &eml,
        "From: someone@else.example\r\nSubject: imported\r\n\r\nhello\r\n",
    )
    .unwrap();
    let files = FileSource::new(FileSet::Eml(eml), 1 << 20).unwrap();
    let imported = p
        .import(TENANT, "sales", &key, files, &Quiet)
        .await
        .unwrap();
    assert_eq!(
        (
            imported.fetched,
            imported.actions_done,
            imported.actions_failed
        ),
        (1, 0, 0),
        "{imported:?}"
    );
    assert_eq!(
        db.store.pending_actions(tenant, account).await.unwrap(),
        queued,
        "untouched by the import"
    );

    // The next session on the mailbox carries them out.
    let again = run(&p, &key, &mailbox).await.unwrap();
    assert_eq!((again.fetched, again.actions_done), (0, 3), "{again:?}");
    assert!(
        db.store
            .pending_actions(tenant, account)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(mailbox.messages().iter().all(|(_, seen)| *seen));
}

on_both_databases!(
    an_import_leaves_the_mailbox_s_queued_actions_queued,
    a_skipped_large_message_never_moves_the_cursor_past_unstored_mail,
    a_clean_run_stores_each_once,
    a_short_batch_is_never_committed,
    a_refused_acknowledgement_is_retried_not_reingested,
    a_crash_between_commit_and_acknowledge_loses_nothing,
    a_uidvalidity_reset_stores_nothing_twice
);
