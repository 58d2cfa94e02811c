//! Exactly once, whatever crashes: `intake fetch` is killed with SIGKILL at
//! random points, many times, then run to completion. Every message must be
//! stored exactly once, and the server must agree (with delete-after-ingest,
//! the mailbox ends empty; nothing was deleted before its commit).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use intake::directory::PartyKind;
use intake::fetch::{Protocol, Secret, Security};
use intake::store::{AccountConfig, BindingRole, MasterKey, MessageQuery, NewParty};
use intake_tests::databases::Db;
use intake_tests::on_both_databases;
use intake_tests::servers::{Dovecot, PASSWORD, USER};
use intake_tests::{add_plugins, plugin_dir};

const MESSAGES: usize = 1000;
/// Kills that must land while `intake fetch` is still running.
const KILLS: usize = 8;

/// A small deterministic generator; the seed is printed for reproduction.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn mail(n: usize) -> Vec<u8> {
    let sender = match n % 4 {
        0 => "ann.lee@acme.example".to_string(),
        1 => format!("stranger{n}@company{}.example", n % 7),
        2 => format!("person{n}@gmail.com"),
        _ => "raj.patel@acme.example".to_string(),
    };
    let body = "Some words for the body of this message. ".repeat(40 + n % 50);
    format!(
        "From: Sender {n} <{sender}>\r\nTo: sales@ourco.example\r\nSubject: Crash test {n}\r\n\
Message-ID: <crash-{n}@test.example>\r\nDate: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

async fn setup(db: &Db, server: &Dovecot, protocol: Protocol, key: &MasterKey) {
    let store = &db.store;
    let tenant = store.ensure_tenant("default").await.unwrap();
    store
        .add_credential(tenant, "mailbox", USER, &Secret::new(PASSWORD), key)
        .await
        .unwrap();
    let settings = server.account(protocol, Security::None);
    let mut config = AccountConfig::new("sales", protocol, "localhost", Security::None, "mailbox");
    config.port = settings.port;
    config.keep_on_server = false;
    store.add_account(tenant, &config).await.unwrap();
    for email in ["ann.lee@acme.example", "raj.patel@acme.example"] {
        store
            .upsert_party(
                tenant,
                &NewParty {
                    kind: PartyKind::Contact,
                    email: email.into(),
                    name: None,
                    company: None,
                    external_id: None,
                },
            )
            .await
            .unwrap();
    }
    add_plugins(
        store,
        tenant,
        &[
            ("auto_reply_guard", BindingRole::Matcher, "{}"),
            ("exact_match", BindingRole::Matcher, "{}"),
            ("unknown_sender", BindingRole::UnknownSender, "{}"),
        ],
    )
    .await;
    for n in 0..MESSAGES {
        server.deliver(USER, "INBOX", &mail(n), false);
    }
}

fn fetch_command(db: &Db, key_file: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_intake-under-test"));
    cmd.args(["fetch", "--account", "sales", "--batch", "7"])
        .env("INTAKE_DATABASE_URL", &db.url)
        .env("INTAKE_KEY_FILE", key_file)
        .env("INTAKE_PLUGIN_DIR", plugin_dir())
        .env("INTAKE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// How many messages the tenant has stored.
async fn stored_count(db: &Db, tenant: intake::store::TenantId) -> usize {
    db.store
        .messages(
            tenant,
            &MessageQuery {
                limit: 10_000,
                ..MessageQuery::default()
            },
        )
        .await
        .unwrap()
        .len()
}

async fn killed_again_and_again(db: Db, protocol: Protocol) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("intake.key");
    std::fs::write(&key_file, key.to_base64()).unwrap();
    setup(&db, &server, protocol, &key).await;

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = Lcg(seed);
    let tenant = db.store.ensure_tenant("default").await.unwrap();
    let stored = || stored_count(&db, tenant);
    let mut interrupted = 0;
    for round in 0..40 {
        if interrupted >= KILLS {
            break;
        }
        let before = stored().await;
        if before >= MESSAGES {
            break;
        }
        let mut child = fetch_command(&db, &key_file).spawn().unwrap();
        let started = Instant::now();
        // Half the rounds kill as soon as some batches were committed (the
        // window between commit and acknowledgement); half at a random time.
        let target = before + 1 + rng.next(25) as usize;
        let deadline = Duration::from_millis(100 + rng.next(400));
        let by_progress = round % 2 == 0;
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if by_progress && stored().await >= target {
                break;
            }
            if !by_progress && started.elapsed() >= deadline {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let running = child.try_wait().unwrap().is_none();
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        interrupted += usize::from(running);
        println!(
            "round {round}: {} after {:?}, {} stored before, {} after",
            if running { "killed" } else { "had exited" },
            started.elapsed(),
            before,
            stored().await
        );
    }
    assert!(
        interrupted >= KILLS,
        "only {interrupted} kills landed mid-run"
    );

    // A clean run to completion.
    let output = fetch_command(&db, &key_file).output().unwrap();
    assert!(
        output.status.success(),
        "clean run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let stored = db
        .store
        .messages(
            tenant,
            &MessageQuery {
                limit: 10_000,
                ..MessageQuery::default()
            },
        )
        .await
        .unwrap();
    let mut ids: Vec<String> = stored.iter().filter_map(|m| m.message_id.clone()).collect();
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!(total, ids.len(), "a message was stored twice");
    assert_eq!(stored.len(), MESSAGES, "every message stored exactly once");
    assert!(
        server.files(USER, "INBOX").is_empty(),
        "every committed message was deleted on the server"
    );
    let account = db.store.account_id(tenant, "sales").await.unwrap();
    let pending = db.store.pending_actions(tenant, account).await.unwrap();
    assert!(
        pending.is_empty(),
        "no server action left pending: {pending:?}; clean run said {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

async fn imap(db: Db) {
    killed_again_and_again(db, Protocol::Imap).await
}

async fn pop3(db: Db) {
    killed_again_and_again(db, Protocol::Pop3).await
}

/// SIGTERM mid-run (issue 8, "shutdown is a parameter"): `intake fetch`
/// stops fetching, finishes the commit in flight, deletes what it committed
/// (POP3 `DELE`, made true by its `QUIT`), and exits cleanly with a
/// summary. The next run continues from there.
async fn sigterm_finishes_the_commit_and_quits(db: Db) {
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("intake.key");
    std::fs::write(&key_file, key.to_base64()).unwrap();
    setup(&db, &server, Protocol::Pop3, &key).await;
    let tenant = db.store.ensure_tenant("default").await.unwrap();
    let stored = || stored_count(&db, tenant);

    let mut child = fetch_command(&db, &key_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while stored().await < 50 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be stopped"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let signalled = Instant::now();
    let output = child.wait_with_output().unwrap();
    println!("exited {:?} after SIGTERM", signalled.elapsed());
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("stopped early"), "{summary}");

    // Everything committed was deleted on the server, nothing else was,
    // and no action is left pending.
    let committed = stored().await;
    assert!(committed < MESSAGES, "it stopped early: {committed}");
    assert_eq!(server.files(USER, "INBOX").len(), MESSAGES - committed);
    let account = db.store.account_id(tenant, "sales").await.unwrap();
    assert!(
        db.store
            .pending_actions(tenant, account)
            .await
            .unwrap()
            .is_empty()
    );

    // The next run picks up exactly the rest.
    let output = fetch_command(&db, &key_file).output().unwrap();
    assert!(output.status.success());
    assert_eq!(stored().await, MESSAGES);
    assert!(server.files(USER, "INBOX").is_empty());
}

on_both_databases!(imap, pop3, sigterm_finishes_the_commit_and_quits);
