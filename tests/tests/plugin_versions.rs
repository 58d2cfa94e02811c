//! Plugin versions through the real command line, with the reference
//! plugins, on SQLite and PostgreSQL: a version added beside the running
//! one decides nothing until a canary; a canary for chosen accounts takes
//! exactly their mail; a canary for a share of the mail takes about that
//! share, and the same message always goes the same way (replayed with the
//! canary, nothing changes); promote switches all mail, rollback restores;
//! every recorded decision names the version that decided. Then a running
//! `intake serve` (a real process against a real Dovecot) picks up a
//! promote with no restart.
//!
//! The versioned plugin is the unknown-sender policy: version 1 makes a
//! lead of every stranger (its default), version 2 quarantines strangers'
//! mail, so each stored message's status says which version decided, and
//! its decision record must say the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use intake::cli::{Cli, run};
use intake::service::{Scope, Service};
use intake::store::{MessageQuery, MessageStatus, TenantId};
use intake_tests::databases::Db;
use intake_tests::servers::{Dovecot, USER};
use intake_tests::{on_both_databases, plugin, plugin_dir, root};
use serde_json::Value;

on_both_databases!(
    canary_promote_and_rollback_decide_as_configured,
    a_running_serve_picks_up_a_promote_without_restart,
);

const KEY: &str = "nZ8y6b1Ttxv3Lkz1yE6P6k2m8D3mQ0b5Xw7cJ4hR2aU=";

/// The command line, in-process, on `db` for tenant `default`.
struct Intake<'a> {
    db: &'a Db,
    key: PathBuf,
}

impl Intake<'_> {
    async fn run(&self, args: &[&str]) -> (bool, String) {
        let key = self.key.display().to_string();
        let mut full = vec![
            "intake",
            "--database-url",
            &self.db.url,
            "--key-file",
            &key,
            "--tenant",
            "default",
        ];
        full.extend_from_slice(args);
        let cli = Cli::try_parse_from(full).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let mut out = Vec::new();
        let result = run(cli, &mut out).await;
        let mut text = String::from_utf8(out).unwrap();
        let ok = match result {
            Ok(code) => code == std::process::ExitCode::SUCCESS,
            Err(e) => {
                text.push_str(&format!("error: {e:#}"));
                false
            }
        };
        (ok, text)
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.run(args).await;
        assert!(ok, "{args:?}: {out}");
        out
    }

    async fn fails(&self, args: &[&str]) -> String {
        let (ok, out) = self.run(args).await;
        assert!(!ok, "{args:?} should fail: {out}");
        out
    }

    async fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Mail from `n` strangers (each of their own company, with a Message-ID of
/// its own), written as a Maildir under `dir/tag`.
fn strangers(dir: &Path, tag: &str, n: usize) -> PathBuf {
    let maildir = dir.join(tag);
    let cur = maildir.join("cur");
    std::fs::create_dir_all(&cur).unwrap();
    std::fs::create_dir_all(maildir.join("new")).unwrap();
    std::fs::create_dir_all(maildir.join("tmp")).unwrap();
    for i in 0..n {
        std::fs::write(cur.join(format!("{i:04}.eml")), stranger(tag, i)).unwrap();
    }
    maildir
}

fn stranger(tag: &str, i: usize) -> String {
    format!(
        "From: Pat {tag} {i} <pat.{i}@{tag}-{i}.example>\r\nTo: sales@ourco.example\r\n\
Subject: {tag} {i}\r\nMessage-ID: <{tag}-{i}@strangers.example>\r\n\
Date: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\nHello from {tag} {i}.\r\n"
    )
}

/// Each stored message of `account` from the strangers of batch `tag`: its
/// status and, from its recorded decision, the deciding plugin's version and
/// whether it decided as a canary.
async fn decided(
    db: &Db,
    tenant: TenantId,
    account: &str,
    tag: &str,
) -> BTreeMap<String, (MessageStatus, Option<u32>, bool)> {
    let account_id = db.store.account_id(tenant, account).await.unwrap();
    let service = Service::admin(db.store.clone());
    let scope = Scope::local(tenant, "default");
    let mut out = BTreeMap::new();
    for m in db
        .store
        .messages(
            tenant,
            &MessageQuery {
                account: Some(account_id),
                limit: 10_000,
                ..MessageQuery::default()
            },
        )
        .await
        .unwrap()
    {
        let from = m.from.clone().unwrap_or_default();
        if !from.contains(&format!("@{tag}-")) {
            continue;
        }
        let e = service.explain(&scope, m.id.0).await.unwrap();
        assert_eq!(e.decided_by.as_deref(), Some("unknown_sender"), "{e:?}");
        out.insert(from, (m.status, e.decided_version, e.decided_by_candidate));
    }
    out
}

/// A key file and tenant `default` with three accounts, the sample contacts
/// and the chain exact_match → unknown_sender (version 1: leads).
async fn setup<'a>(db: &'a Db, dir: &Path) -> (Intake<'a>, TenantId) {
    let key = dir.join("intake.key");
    std::fs::write(&key, KEY).unwrap();
    let cli = Intake { db, key };
    unsafe { std::env::set_var("INTAKE_VERSIONS_TEST_SECRET", "s3cret") };
    cli.ok(&[
        "credential",
        "add",
        "box",
        "--user",
        "u",
        "--secret-env",
        "INTAKE_VERSIONS_TEST_SECRET",
    ])
    .await;
    for account in ["sales", "vip", "bulk"] {
        cli.ok(&[
            "account",
            "add",
            account,
            "--protocol",
            "imap",
            "--host",
            "localhost",
            "--credential",
            "box",
        ])
        .await;
    }
    let contacts = path(&root().join("samples/contacts.csv"));
    cli.ok(&["contact", "import", &contacts]).await;
    let exact = path(&plugin("exact_match"));
    let policy = path(&plugin("unknown_sender"));
    // A generous deadline: these tests are about versions, on a machine
    // that may be busy building.
    cli.ok(&[
        "plugin",
        "add",
        &exact,
        "--role",
        "matcher",
        "--deadline-ms",
        "5000",
    ])
    .await;
    cli.ok(&[
        "plugin",
        "add",
        &policy,
        "--role",
        "unknown-sender",
        "--deadline-ms",
        "5000",
    ])
    .await;
    let tenant = db.store.ensure_tenant("default").await.unwrap();
    (cli, tenant)
}

async fn import(cli: &Intake<'_>, maildir: &Path, account: &str) {
    cli.ok(&["import", "--maildir", &path(maildir), "--account", account])
        .await;
}

async fn canary_promote_and_rollback_decide_as_configured(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (cli, tenant) = setup(&db, dir.path()).await;
    let lead = MessageStatus::Stored;
    let held = MessageStatus::Quarantined;

    // A version is checked before it is kept: the component must have the
    // binding's role and accept its configuration.
    let matcher_only = path(&plugin("exact_match"));
    let refused = cli
        .fails(&["plugin", "version", "add", "unknown_sender", &matcher_only])
        .await;
    assert!(refused.contains("unknown-sender"), "{refused}");
    let refused = cli
        .fails(&[
            "plugin",
            "version",
            "add",
            "unknown_sender",
            "--config",
            r#"{"action": "explode"}"#,
        ])
        .await;
    assert!(
        refused.contains("explode") || refused.contains("action"),
        "{refused}"
    );
    cli.fails(&["plugin", "version", "add", "nobody", "--config", "{}"])
        .await;
    // Another component as a new version of a matcher is fine.
    let domain = path(&plugin("domain_match"));
    let added = cli
        .json(&["plugin", "version", "add", "exact_match", &domain, "--json"])
        .await;
    assert_eq!(added["version"], 2, "{added}");
    assert_eq!(added["state"], "new", "{added}");

    // Version 2 of the policy quarantines strangers; it decides nothing yet.
    let out = cli
        .ok(&[
            "plugin",
            "version",
            "add",
            "unknown_sender",
            "--config",
            r#"{"action": "quarantine"}"#,
        ])
        .await;
    assert!(out.contains("added unknown_sender version 2"), "{out}");
    let versions = cli
        .json(&["plugin", "versions", "unknown_sender", "--json"])
        .await;
    assert_eq!(versions["active"], 1, "{versions}");
    assert!(versions["canary"].is_null(), "{versions}");
    let states: Vec<&str> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "new"]);
    let v1 = &versions["versions"][0];
    let v2 = &versions["versions"][1];
    assert_eq!(v1["sha256"], v2["sha256"], "the same component");
    assert_ne!(v1["config_version"], v2["config_version"]);
    let early = strangers(dir.path(), "early", 5);
    import(&cli, &early, "sales").await;
    let got = decided(&db, tenant, "sales", "early").await;
    assert_eq!(got.len(), 5);
    assert!(
        got.values().all(|d| *d == (lead, Some(1), false)),
        "{got:?}"
    );

    // A canary for the vip account: all of its mail, none of sales's.
    cli.fails(&[
        "plugin",
        "canary",
        "unknown_sender",
        "--version",
        "2",
        "--accounts",
        "nobody",
    ])
    .await;
    cli.fails(&[
        "plugin",
        "canary",
        "unknown_sender",
        "--version",
        "1",
        "--share",
        "5",
    ])
    .await;
    // A canary needs a share or accounts: refused before anything runs.
    let bare = Cli::try_parse_from([
        "intake",
        "plugin",
        "canary",
        "unknown_sender",
        "--version",
        "2",
    ]);
    assert!(bare.is_err_and(|e| e.to_string().contains("--share")));
    cli.ok(&[
        "plugin",
        "canary",
        "unknown_sender",
        "--version",
        "2",
        "--accounts",
        "vip",
    ])
    .await;
    import(&cli, &strangers(dir.path(), "forvip", 20), "vip").await;
    import(&cli, &strangers(dir.path(), "forsales", 20), "sales").await;
    let vip = decided(&db, tenant, "vip", "forvip").await;
    assert_eq!(vip.len(), 20);
    assert!(vip.values().all(|d| *d == (held, Some(2), true)), "{vip:?}");
    let sales = decided(&db, tenant, "sales", "forsales").await;
    assert_eq!(sales.len(), 20);
    assert!(
        sales.values().all(|d| *d == (lead, Some(1), false)),
        "{sales:?}"
    );
    // `message explain` says so too, in JSON and in text.
    let held_id = db
        .store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.status == held)
        .unwrap()
        .id
        .0
        .to_string();
    let e = cli.json(&["message", "explain", &held_id, "--json"]).await;
    assert_eq!(e["decided_by"], "unknown_sender", "{e}");
    assert_eq!(e["decided_version"], 2, "{e}");
    assert_eq!(e["decided_by_candidate"], true, "{e}");
    let steps = e["steps"].as_array().unwrap();
    assert_eq!(steps[0]["plugin"], "exact_match");
    assert_eq!(steps[0]["version"], 1, "{e}");
    assert_eq!(steps[0]["candidate"], false, "{e}");
    assert_eq!(steps[1]["version"], 2, "{e}");
    assert_eq!(steps[1]["config_version"], v2["config_version"], "{e}");
    let text = cli.ok(&["message", "explain", &held_id]).await;
    assert!(
        text.contains("decided by:  unknown_sender version 2 (canary)"),
        "{text}"
    );

    // A canary for half the mail: about half of 300 messages, each the way
    // its hash says, and the same way again when decided again.
    cli.ok(&[
        "plugin",
        "canary",
        "unknown_sender",
        "--version",
        "2",
        "--share",
        "50",
    ])
    .await;
    let versions = cli
        .json(&["plugin", "versions", "unknown_sender", "--json"])
        .await;
    assert_eq!(versions["canary"]["share_percent"], 50.0, "{versions}");
    assert_eq!(versions["canary"]["accounts"], serde_json::json!([]));
    import(&cli, &strangers(dir.path(), "bulk", 300), "bulk").await;
    let bulk = decided(&db, tenant, "bulk", "bulk").await;
    assert_eq!(bulk.len(), 300);
    let canary = bulk.values().filter(|d| d.1 == Some(2)).count();
    // 300 fair coins: 150 ± 4 standard deviations (8.7 each).
    assert!(
        (115..=185).contains(&canary),
        "{canary} of 300 to the canary"
    );
    for d in bulk.values() {
        let expected = if d.1 == Some(2) {
            (held, Some(2), true)
        } else {
            (lead, Some(1), false)
        };
        assert_eq!(*d, expected);
    }
    let again = cli
        .json(&[
            "replay",
            "--account",
            "bulk",
            "--with-canary",
            "--dry-run",
            "--json",
        ])
        .await;
    assert_eq!(again["messages"], 300, "{again}");
    assert_eq!(
        again["changed"], 0,
        "each message goes the same way: {again}"
    );
    // Without the canary (replay's default), exactly the canary's share
    // would change.
    let active = cli
        .json(&["replay", "--account", "bulk", "--dry-run", "--json"])
        .await;
    assert_eq!(active["changed"], canary as u64, "{active}");

    // Promote: version 2 for all mail, the canary ends.
    let out = cli.ok(&["plugin", "promote", "unknown_sender"]).await;
    assert!(out.contains("version 2 is active"), "{out}");
    let versions = cli
        .json(&["plugin", "versions", "unknown_sender", "--json"])
        .await;
    assert_eq!(versions["active"], 2, "{versions}");
    assert!(versions["canary"].is_null(), "{versions}");
    import(&cli, &strangers(dir.path(), "promoted", 20), "sales").await;
    let promoted = decided(&db, tenant, "sales", "promoted").await;
    assert_eq!(promoted.len(), 20);
    assert!(
        promoted.values().all(|d| *d == (held, Some(2), false)),
        "{promoted:?}"
    );

    // Rollback (no canary): version 1 again, version 2 marked rolled back.
    let out = cli.ok(&["plugin", "rollback", "unknown_sender"]).await;
    assert!(
        out.contains("rolled back from version 2 to version 1"),
        "{out}"
    );
    import(&cli, &strangers(dir.path(), "rolledback", 20), "sales").await;
    let restored = decided(&db, tenant, "sales", "rolledback").await;
    assert_eq!(restored.len(), 20);
    assert!(
        restored.values().all(|d| *d == (lead, Some(1), false)),
        "{restored:?}"
    );
    let listed = cli.ok(&["plugin", "versions", "unknown_sender"]).await;
    assert!(listed.contains("rolled-back"), "{listed}");
    assert!(listed.contains("active: version 1; no canary"), "{listed}");
    // Nothing left to roll back to: refused, with the way forward.
    let refused = cli.fails(&["plugin", "rollback", "unknown_sender"]).await;
    assert!(refused.contains("plugin promote"), "{refused}");

    // A canary stopped by rollback takes effect at once, too.
    cli.ok(&[
        "plugin",
        "canary",
        "unknown_sender",
        "--version",
        "2",
        "--share",
        "100",
    ])
    .await;
    let out = cli.ok(&["plugin", "rollback", "unknown_sender"]).await;
    assert!(out.contains("canary of version 2 stopped"), "{out}");
    import(&cli, &strangers(dir.path(), "late", 10), "sales").await;
    let late = decided(&db, tenant, "sales", "late").await;
    assert!(
        late.values().all(|d| *d == (lead, Some(1), false)),
        "{late:?}"
    );

    // `plugin list` names each binding's version, and the sample mail
    // still goes through the chain as before.
    let list = cli.ok(&["plugin", "list"]).await;
    assert!(
        list.lines()
            .any(|l| l.contains("unknown_sender") && l.split_whitespace().nth(9) == Some("1")),
        "{list}"
    );
}

/// Mail from a stranger, delivered to Dovecot.
fn mail(tag: &str, n: usize) -> Vec<u8> {
    stranger(tag, n).into_bytes()
}

/// A running `intake serve`.
struct Serve {
    child: Child,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_running_serve_picks_up_a_promote_without_restart(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start();
    let key = dir.path().join("intake.key");
    std::fs::write(&key, KEY).unwrap();
    let cli = Intake { db: &db, key };
    let port = server
        .account(intake::fetch::Protocol::Imap, intake::fetch::Security::None)
        .port
        .unwrap()
        .to_string();
    unsafe {
        std::env::set_var(
            "INTAKE_VERSIONS_SERVE_SECRET",
            intake_tests::servers::PASSWORD,
        )
    };
    cli.ok(&[
        "credential",
        "add",
        "alice",
        "--user",
        USER,
        "--secret-env",
        "INTAKE_VERSIONS_SERVE_SECRET",
    ])
    .await;
    cli.ok(&[
        "account",
        "add",
        "polled",
        "--protocol",
        "imap",
        "--host",
        "localhost",
        "--port",
        &port,
        "--security",
        "none",
        "--credential",
        "alice",
        "--interval-secs",
        "1",
    ])
    .await;
    let exact = path(&plugin("exact_match"));
    let policy = path(&plugin("unknown_sender"));
    // A generous deadline: these tests are about versions, on a machine
    // that may be busy building.
    cli.ok(&[
        "plugin",
        "add",
        &exact,
        "--role",
        "matcher",
        "--deadline-ms",
        "5000",
    ])
    .await;
    cli.ok(&[
        "plugin",
        "add",
        &policy,
        "--role",
        "unknown-sender",
        "--deadline-ms",
        "5000",
    ])
    .await;
    cli.ok(&[
        "plugin",
        "version",
        "add",
        "unknown_sender",
        "--config",
        r#"{"action": "quarantine"}"#,
    ])
    .await;
    let tenant = db.store.ensure_tenant("default").await.unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_intake-under-test"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tick-ms",
            "200",
            "--idle",
            "false",
        ])
        .env("INTAKE_DATABASE_URL", &db.url)
        .env("INTAKE_KEY_FILE", &cli.key)
        .env("INTAKE_PLUGIN_DIR", plugin_dir())
        .env("INTAKE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start intake serve");
    let serve = Serve { child };
    let pid = serve.child.id();

    let statuses = || async {
        db.store
            .messages(tenant, &MessageQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.subject.unwrap_or_default(), m.status))
            .collect::<BTreeMap<_, _>>()
    };
    server.deliver(USER, "INBOX", &mail("before", 0), false);
    until(Duration::from_secs(40), "the first message", || async {
        statuses().await.len() == 1
    })
    .await;
    assert_eq!(
        statuses().await.get("before 0"),
        Some(&MessageStatus::Stored),
        "version 1 makes a lead"
    );

    cli.ok(&["plugin", "promote", "unknown_sender", "--version", "2"])
        .await;
    server.deliver(USER, "INBOX", &mail("after", 1), false);
    until(Duration::from_secs(30), "the second message", || async {
        statuses().await.len() == 2
    })
    .await;
    assert_eq!(
        statuses().await.get("after 1"),
        Some(&MessageStatus::Quarantined),
        "the promoted version 2 quarantines"
    );
    let id = db
        .store
        .messages(tenant, &MessageQuery::default())
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.subject.as_deref() == Some("after 1"))
        .unwrap()
        .id
        .0
        .to_string();
    let e = cli.json(&["message", "explain", &id, "--json"]).await;
    assert_eq!(e["decided_version"], 2, "{e}");

    // And back, still the same process.
    cli.ok(&["plugin", "rollback", "unknown_sender"]).await;
    server.deliver(USER, "INBOX", &mail("back", 2), false);
    until(Duration::from_secs(30), "the third message", || async {
        statuses().await.len() == 3
    })
    .await;
    assert_eq!(
        statuses().await.get("back 2"),
        Some(&MessageStatus::Stored),
        "rolled back to version 1"
    );
    assert_eq!(serve.child.id(), pid);
    let mut serve = serve;
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "intake serve kept running throughout"
    );
}
