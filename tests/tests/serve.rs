//! `intake serve` as a real process against a real Dovecot, on SQLite and
//! PostgreSQL: new mail through IDLE and through polling, a wrong password
//! disabling only its own account, a refused connection only backing off,
//! SIGTERM during a first sync, "check now", `/metrics` against the store,
//! and several workers sharing one PostgreSQL with one of them killed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use intake::fetch::{Protocol, Secret, Security};
use intake::store::{
    AccountConfig, AccountId, BindingRole, HealthState, MasterKey, MessageQuery, Store, TenantId,
};
use intake_tests::databases::Db;
use intake_tests::servers::{Dovecot, DovecotOptions, EXTRA_PASSWORD, PASSWORD, USER};
use intake_tests::{add_plugins, on_both_databases, plugin_dir};

/// A running `intake serve`.
struct Serve {
    child: Child,
    /// Its HTTP address.
    addr: String,
    /// Everything it wrote to stderr so far.
    log: Arc<Mutex<String>>,
}

impl Serve {
    fn start(db_url: &str, key_file: &std::path::Path, extra: &[&str]) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_intake-under-test"));
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tick-ms",
            "200",
            "--lease-secs",
            "3",
            "--backoff-secs",
            "1",
            "--backoff-max-secs",
            "2",
        ])
        .args(extra)
        .env("INTAKE_DATABASE_URL", db_url)
        .env("INTAKE_KEY_FILE", key_file)
        .env("INTAKE_PLUGIN_DIR", plugin_dir())
        .env("INTAKE_LOG", "warn,intake=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start intake serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("intake serve: http://") {
                        let addr = rest.split('/').next().unwrap_or_default().to_string();
                        let _ = tx.send(addr);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("intake serve did not start: {}", log.lock().unwrap()));
        Serve { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `GET path` on the service's HTTP address.
    async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn terminate(&self) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Waits for the process to exit; returns how long it took.
    fn wait(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "intake serve failed: {}", self.log());
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "intake serve did not exit within {limit:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mail(tag: &str, n: usize) -> Vec<u8> {
    format!(
        "From: Ann Lee <ann.lee@acme.example>\r\nTo: sales@ourco.example\r\n\
Subject: {tag} {n}\r\nMessage-ID: <{tag}-{n}@test.example>\r\n\
Date: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\nHello {n}.\r\n"
    )
    .into_bytes()
}

/// A key file, the default tenant with a small chain, and a credential for
/// alice.
async fn prepare(db: &Db, dir: &std::path::Path) -> (TenantId, MasterKey, std::path::PathBuf) {
    let key = MasterKey::generate().unwrap();
    let key_file = dir.join("intake.key");
    std::fs::write(&key_file, key.to_base64()).unwrap();
    let tenant = db.store.ensure_tenant("default").await.unwrap();
    db.store
        .add_credential(tenant, "alice", USER, &Secret::new(PASSWORD), &key)
        .await
        .unwrap();
    add_plugins(
        &db.store,
        tenant,
        &[
            ("exact_match", BindingRole::Matcher, "{}"),
            ("unknown_sender", BindingRole::UnknownSender, "{}"),
        ],
    )
    .await;
    (tenant, key, key_file)
}

fn account(
    name: &str,
    protocol: Protocol,
    port: Option<u16>,
    credential: &str,
    interval: u32,
) -> AccountConfig {
    let mut config = AccountConfig::new(name, protocol, "localhost", Security::None, credential);
    config.port = port;
    config.check_interval_secs = interval;
    config
}

async fn stored(store: &Store, tenant: TenantId) -> usize {
    store
        .messages(
            tenant,
            &MessageQuery {
                limit: 100_000,
                ..MessageQuery::default()
            },
        )
        .await
        .unwrap()
        .len()
}

/// Polls `check` every 100 ms until it holds or `limit` passes; returns the
/// time it took.
async fn until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

async fn state(store: &Store, account: AccountId) -> HealthState {
    store.health(account).await.unwrap().state
}

/// Mail delivered while the service runs arrives through IDLE, long before
/// the account's (hour-long) interval; with IDLE not offered, by polling.
async fn new_mail_arrives_through_idle_or_polling(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let idle_server = Dovecot::start();
    let polled_server = Dovecot::start_with(DovecotOptions {
        idle: false,
        ..DovecotOptions::default()
    });
    let (tenant, _key, key_file) = prepare(&db, dir.path()).await;
    let idle_port = idle_server.account(Protocol::Imap, Security::None).port;
    let polled_port = polled_server.account(Protocol::Imap, Security::None).port;
    db.store
        .add_account(
            tenant,
            &account("pushed", Protocol::Imap, idle_port, "alice", 3600),
        )
        .await
        .unwrap();
    db.store
        .add_account(
            tenant,
            &account("polled", Protocol::Imap, polled_port, "alice", 2),
        )
        .await
        .unwrap();
    idle_server.deliver(USER, "INBOX", &mail("before", 0), false);
    let serve = Serve::start(&db.url, &key_file, &[]);
    until(Duration::from_secs(30), "the first sweep", || async {
        stored(&db.store, tenant).await == 1
    })
    .await;
    // Let the watch settle into IDLE, then deliver.
    until(Duration::from_secs(30), "an IDLE connection", || async {
        let (_, metrics) = serve.get("/metrics").await;
        metrics.contains("intake_idle_connections 1")
    })
    .await;
    idle_server.deliver(USER, "INBOX", &mail("pushed", 1), false);
    let took = until(Duration::from_secs(15), "mail through IDLE", || async {
        stored(&db.store, tenant).await == 2
    })
    .await;
    eprintln!("IDLE: stored {} ms after delivery", took.as_millis());
    polled_server.deliver(USER, "INBOX", &mail("polled", 2), false);
    until(Duration::from_secs(20), "mail by polling", || async {
        stored(&db.store, tenant).await == 3
    })
    .await;
    assert!(
        serve.log().contains("does not offer IDLE"),
        "{}",
        serve.log()
    );
}

/// A wrong password disables its account after three tries, with the
/// reason; the other account on the same server goes on being ingested; a
/// refused connection only backs off. Enabling clears the disablement.
async fn failures_back_off_or_disable_one_account_only(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start();
    let (tenant, key, key_file) = prepare(&db, dir.path()).await;
    db.store
        .add_credential(
            tenant,
            "wrong",
            USER,
            &Secret::new("not the password"),
            &key,
        )
        .await
        .unwrap();
    let port = server.account(Protocol::Imap, Security::None).port;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let good = db
        .store
        .add_account(tenant, &account("good", Protocol::Imap, port, "alice", 1))
        .await
        .unwrap();
    let bad = db
        .store
        .add_account(tenant, &account("bad", Protocol::Imap, port, "wrong", 1))
        .await
        .unwrap();
    let down = db
        .store
        .add_account(
            tenant,
            &account("down", Protocol::Imap, Some(closed), "alice", 1),
        )
        .await
        .unwrap();
    let _serve = Serve::start(&db.url, &key_file, &["--idle", "false"]);
    until(
        Duration::from_secs(40),
        "the bad account disabled",
        || async { state(&db.store, bad).await == HealthState::Disabled },
    )
    .await;
    let health = db.store.health(bad).await.unwrap();
    let reason = health.disabled_reason.unwrap();
    assert!(reason.starts_with("auth (3 failures in a row)"), "{reason}");
    assert!(health.disabled_at.is_some());
    for n in 0..3 {
        server.deliver(USER, "INBOX", &mail("good", n), false);
    }
    until(
        Duration::from_secs(20),
        "the good account's mail",
        || async { stored(&db.store, tenant).await == 3 },
    )
    .await;
    assert_eq!(state(&db.store, good).await, HealthState::Ok);
    // Many refused connections later, still only backing off.
    until(
        Duration::from_secs(30),
        "five failures of the closed port",
        || async { db.store.health(down).await.unwrap().consecutive_failures >= 5 },
    )
    .await;
    let h = db.store.health(down).await.unwrap();
    assert_eq!(h.state, HealthState::BackingOff);
    assert_eq!(h.last_error_class.as_deref(), Some("network"));

    // The views say so; enabling clears it.
    let list = intake_cli(&db, &key_file, &["account", "list"]);
    let line = list.lines().find(|l| l.starts_with("bad ")).unwrap();
    assert!(line.contains("disabled: auth"), "{list}");
    let line = list.lines().find(|l| l.starts_with("down ")).unwrap();
    assert!(line.contains("backing off (until"), "{list}");
    let out = intake_cli(&db, &key_file, &["account", "enable", "bad"]);
    assert!(out.contains("enabled, state ok"), "{out}");
}

/// Runs the `intake` binary against the test's store; returns stdout.
fn intake_cli(db: &Db, key_file: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_intake-under-test"))
        .args(args)
        .env("INTAKE_DATABASE_URL", &db.url)
        .env("INTAKE_KEY_FILE", key_file)
        .env("INTAKE_LOG", "error")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// SIGTERM during a long first sync of a POP3 account that deletes what it
/// ingested: the service exits within its bound, committed messages are
/// deleted on the server (at QUIT), the rest stays; the next start finishes
/// the job with nothing stored twice.
async fn sigterm_during_a_first_sync_loses_nothing(db: Db) {
    // Enough that the sync lasts many progress intervals: 400 took 0.35 s
    // here, short enough for the test's polling to miss every write.
    const MESSAGES: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start();
    let (tenant, _key, key_file) = prepare(&db, dir.path()).await;
    let port = server.account(Protocol::Pop3, Security::None).port;
    let mut config = account("pop", Protocol::Pop3, port, "alice", 3600);
    config.keep_on_server = false;
    config.batch_size = 20;
    db.store.add_account(tenant, &config).await.unwrap();
    for n in 0..MESSAGES {
        server.deliver(USER, "INBOX", &mail("sync", n), false);
    }
    let account_id = db.store.account_id(tenant, "pop").await.unwrap();
    let mut serve = Serve::start(
        &db.url,
        &key_file,
        &["--grace-secs", "20", "--progress-ms", "100"],
    );
    // While it runs, the account says how far the check has got.
    until(
        Duration::from_secs(60),
        "the first commits, shown",
        || async {
            let health = db.store.health(account_id).await.unwrap();
            health.progress.is_some_and(|p| p.done > 0)
        },
    )
    .await;
    let health = db.store.health(account_id).await.unwrap();
    let progress = health.progress.unwrap();
    assert_eq!(progress.total, MESSAGES as u64, "{progress:?}");
    let status = intake::service::AccountStatus {
        name: "pop".into(),
        enabled: true,
        auto_check: true,
        health,
    };
    let activity = status.activity_line().unwrap();
    assert!(
        activity.starts_with("checking: ") && activity.contains(" of 2,000 messages stored"),
        "{activity}"
    );
    serve.terminate();
    let took = serve.wait(Duration::from_secs(25));
    eprintln!("SIGTERM: exited after {} ms", took.as_millis());
    let kept = stored(&db.store, tenant).await;
    let left = server.files(USER, "INBOX").len();
    assert_eq!(
        kept + left,
        MESSAGES,
        "committed ones deleted, the rest left"
    );

    let _serve = Serve::start(&db.url, &key_file, &[]);
    until(
        Duration::from_secs(120),
        "the rest after a restart",
        || async { stored(&db.store, tenant).await == MESSAGES },
    )
    .await;
    until(Duration::from_secs(20), "the server emptied", || async {
        server.files(USER, "INBOX").is_empty()
    })
    .await;
    // Over: no progress is left behind.
    until(
        Duration::from_secs(20),
        "the check recorded as over",
        || async {
            let health = db.store.health(account_id).await.unwrap();
            health.lease_owner.is_none() && health.progress.is_none()
        },
    )
    .await;
}

/// "Check now" through the running service, then `/metrics` against the
/// store, parsed as Prometheus text.
async fn check_now_and_metrics_match_the_store(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start();
    let (tenant, _key, key_file) = prepare(&db, dir.path()).await;
    let port = server.account(Protocol::Imap, Security::None).port;
    let mut config = account("manual", Protocol::Imap, port, "alice", 3600);
    config.auto_check = false;
    db.store.add_account(tenant, &config).await.unwrap();
    for n in 0..4 {
        server.deliver(USER, "INBOX", &mail("manual", n), false);
    }
    // A message no one knows, for a second disposition.
    server.deliver(
        USER,
        "INBOX",
        b"From: Zed <zed@unknown.example>\r\nTo: sales@ourco.example\r\nSubject: hi\r\n\
Message-ID: <zed@test.example>\r\n\r\nhi\r\n",
        false,
    );
    let err = Command::new(env!("CARGO_BIN_EXE_intake-under-test"))
        .args(["account", "check", "manual"])
        .env("INTAKE_DATABASE_URL", &db.url)
        .env("INTAKE_KEY_FILE", &key_file)
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("no `intake serve` is running"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    let serve = Serve::start(&db.url, &key_file, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stored(&db.store, tenant).await, 0, "auto check is off");
    let out = intake_cli(&db, &key_file, &["account", "check", "manual"]);
    assert!(out.contains("ingested    5 message(s)"), "{out}");
    assert!(out.contains("state       ok"), "{out}");
    assert_eq!(stored(&db.store, tenant).await, 5);

    let (status, _) = serve.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, _) = serve.get("/readyz").await;
    assert_eq!(status, 200);
    let (status, text) = serve.get("/metrics").await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let mut by_disposition: HashMap<String, f64> = HashMap::new();
    let mut ok_accounts = None;
    let mut plugin_calls = 0.0;
    for sample in &scrape.samples {
        match (sample.metric.as_str(), &sample.value) {
            ("intake_messages_total", prometheus_parse::Value::Counter(v)) => {
                let d = sample.labels.get("disposition").unwrap().to_string();
                *by_disposition.entry(d).or_default() += v;
            }
            ("intake_accounts", prometheus_parse::Value::Gauge(v))
                if sample.labels.get("state") == Some("ok") =>
            {
                ok_accounts = Some(*v);
            }
            ("intake_plugin_call_seconds", prometheus_parse::Value::Histogram(h)) => {
                plugin_calls += h.last().map_or(0.0, |b| b.count);
            }
            _ => {}
        }
    }
    let total: f64 = by_disposition.values().sum();
    assert_eq!(total as usize, stored(&db.store, tenant).await, "{text}");
    // No contacts: Ann's first message makes her a lead, her other three
    // attach to it; Zed becomes a lead too.
    assert_eq!(by_disposition.get("attached").copied(), Some(3.0), "{text}");
    assert_eq!(
        by_disposition.get("create-lead").copied(),
        Some(2.0),
        "{text}"
    );
    assert_eq!(ok_accounts, Some(1.0), "{text}");
    assert!(plugin_calls >= 5.0, "{text}");
}

on_both_databases!(
    new_mail_arrives_through_idle_or_polling,
    failures_back_off_or_disable_one_account_only,
    sigterm_during_a_first_sync_loses_nothing,
    check_now_and_metrics_match_the_store,
);

/// Two and three workers on one PostgreSQL share 100 accounts: every
/// message is stored exactly once, no account is worked by two at once
/// (Dovecot allows one connection per user here, so a second login would be
/// refused and recorded), and when one worker is killed the others finish
/// its accounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_one_postgres_and_survive_a_kill() {
    intake_tests::databases::with_database(intake_tests::databases::Backend::Postgres, |db| {
        workers(db, 3)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_postgres_and_survive_a_kill() {
    intake_tests::databases::with_database(intake_tests::databases::Backend::Postgres, |db| {
        workers(db, 2)
    })
    .await;
}

async fn workers(db: Db, count: usize) {
    const ACCOUNTS: usize = 100;
    const EACH: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start_with(DovecotOptions {
        extra_users: ACCOUNTS,
        max_userip_connections: 1,
        ..DovecotOptions::default()
    });
    let (tenant, key, key_file) = prepare(&db, dir.path()).await;
    let port = server.account(Protocol::Imap, Security::None).port;
    for n in 0..ACCOUNTS {
        let user = format!("user{n}");
        db.store
            .add_credential(tenant, &user, &user, &Secret::new(EXTRA_PASSWORD), &key)
            .await
            .unwrap();
        db.store
            .add_account(tenant, &account(&user, Protocol::Imap, port, &user, 3600))
            .await
            .unwrap();
        for m in 0..EACH {
            server.deliver(&user, "INBOX", &mail(&user, m), false);
        }
    }
    let options = ["--idle", "false", "--concurrency", "8"];
    let mut workers: Vec<Serve> = (0..count)
        .map(|_| Serve::start(&db.url, &key_file, &options))
        .collect();
    until(Duration::from_secs(120), "a third of the mail", || async {
        stored(&db.store, tenant).await >= ACCOUNTS * EACH / 3
    })
    .await;
    let victim = workers.remove(0);
    let killed_at = Instant::now();
    drop(victim); // SIGKILL
    until(Duration::from_secs(180), "every message", || async {
        stored(&db.store, tenant).await == ACCOUNTS * EACH
    })
    .await;
    eprintln!(
        "{count} workers, one killed: all {} messages stored {} ms after the kill",
        ACCOUNTS * EACH,
        killed_at.elapsed().as_millis()
    );
    // Exactly once: one row per Message-ID, and nothing else.
    let all = db
        .store
        .messages(
            tenant,
            &MessageQuery {
                limit: 100_000,
                ..MessageQuery::default()
            },
        )
        .await
        .unwrap();
    let mut ids: Vec<_> = all.iter().map(|m| m.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), ACCOUNTS * EACH);
    let health = db.store.health_of_tenant(tenant).await.unwrap();
    for (id, h) in &health {
        assert_eq!(h.last_error, None, "account {id}: {h:?}");
    }
    assert!(
        !server.log().contains("Maximum number of connections"),
        "two workers logged in to one mailbox at once"
    );
    let mut workers = workers;
    for w in &workers {
        w.terminate();
    }
    for w in &mut workers {
        w.wait(Duration::from_secs(30));
    }
}
