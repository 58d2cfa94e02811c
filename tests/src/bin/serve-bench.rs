//! The service benchmark (issue 10): one Dovecot with 1,000 users and 5
//! messages each, then, in one run, printed side by side:
//! - today's sequential `intake fetch` over every account (SQLite);
//! - `intake serve` on SQLite: the first full sweep (wall time, peak RSS),
//!   then the steady state with an IDLE connection per account (RSS, CPU);
//! - the same sweep with 2 `intake serve` workers on PostgreSQL.
//!
//! The engine measured is a release `intake` (`INTAKE_BENCH_BINARY`, default
//! `release/intake` beside this program's target directory; `./dev
//! bench-serve` builds it). Figures are printed; nothing is asserted.
//!
//! `INTAKE_BENCH_USERS` (default 1000) and `INTAKE_BENCH_EACH` (default 5)
//! scale it down for a quick look.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use intake::fetch::{Protocol, Secret, Security};
use intake::store::{AccountConfig, MasterKey, MessageQuery, Store, TenantId};
use intake_tests::servers::{Dovecot, DovecotOptions, EXTRA_PASSWORD};
use intake_tests::{bench_binary, env_usize};

fn mail(user: &str, n: usize) -> Vec<u8> {
    let body = "A few words for the body of this message. ".repeat(20);
    format!(
        "From: Customer {n} <customer{n}@acme.example>\r\nTo: {user}@ourco.example\r\n\
Subject: Bench {n}\r\nMessage-ID: <bench-{user}-{n}@test.example>\r\n\
Date: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// A store with one account per user (credentials, accounts); returns the
/// tenant.
async fn fill(store: &Store, key: &MasterKey, port: Option<u16>, users: usize) -> TenantId {
    let tenant = store.ensure_tenant("default").await.unwrap();
    for n in 0..users {
        let user = format!("user{n}");
        store
            .add_credential(tenant, &user, &user, &Secret::new(EXTRA_PASSWORD), key)
            .await
            .unwrap();
        let mut config =
            AccountConfig::new(&user, Protocol::Imap, "localhost", Security::None, &user);
        config.port = port;
        store.add_account(tenant, &config).await.unwrap();
    }
    tenant
}

async fn stored(store: &Store, tenant: TenantId) -> usize {
    store
        .messages(
            tenant,
            &MessageQuery {
                limit: 1_000_000,
                ..MessageQuery::default()
            },
        )
        .await
        .unwrap()
        .len()
}

/// A command for the release binary on `url`, with a file-descriptor limit
/// high enough for one IDLE connection per account.
fn intake(url: &str, key_file: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bench_binary());
    cmd.args(args)
        .env("INTAKE_DATABASE_URL", url)
        .env("INTAKE_KEY_FILE", key_file)
        .env("INTAKE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 16_384,
                rlim_max: 16_384,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
    cmd
}

/// Peak RSS (VmHWM) and current RSS (VmRSS) of a live process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15; `after` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs to the end, returning wall time and peak RSS (MiB) from wait4
/// (which also reaps the child, unseen by clippy).
#[allow(clippy::zombie_processes)]
fn run_to_end(mut cmd: Command) -> (Duration, f64) {
    let started = Instant::now();
    let child = cmd.spawn().expect("start intake");
    let mut status = 0;
    // SAFETY: plain wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    (started.elapsed(), usage.ru_maxrss as f64 / 1024.0)
}

fn terminate(child: &mut Child) -> Duration {
    let started = Instant::now();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    started.elapsed()
}

async fn metrics_line(addr: &str, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::main]
async fn main() {
    let users = env_usize("INTAKE_BENCH_USERS", 1000);
    let each = env_usize("INTAKE_BENCH_EACH", 5);
    let total = users * each;
    assert!(
        bench_binary().exists(),
        "no release intake at {} (build it: ./dev plugins && cargo build --release -p intake-engine, \
         or set INTAKE_BENCH_BINARY)",
        bench_binary().display()
    );
    eprintln!("starting Dovecot with {users} users, {each} messages each");
    let server = Dovecot::start_with(DovecotOptions {
        extra_users: users,
        process_limit: (users as u32 + 200).max(100),
        ..DovecotOptions::default()
    });
    for n in 0..users {
        let user = format!("user{n}");
        for m in 0..each {
            server.deliver(&user, "INBOX", &mail(&user, m), false);
        }
    }
    let port = server.account(Protocol::Imap, Security::None).port;
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let key_file = dir.path().join("intake.key");
    std::fs::write(&key_file, key.to_base64()).unwrap();

    // 1. Today's sequential `intake fetch`.
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("fetch.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    let tenant = fill(&store, &key, port, users).await;
    let (fetch_wall, fetch_rss) = run_to_end(intake(&url, &key_file, &["fetch"]));
    let fetch_stored = stored(&store, tenant).await;

    // 2. `intake serve` on SQLite: first sweep, then steady state.
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("serve.db").display()
    );
    let store = Store::connect(&url).await.unwrap();
    let tenant = fill(&store, &key, port, users).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut serve = intake(&url, &key_file, &["serve", "--listen", &listen])
        .spawn()
        .unwrap();
    let pid = serve.id();
    let mut sweep_peak: f64 = 0.0;
    while stored(&store, tenant).await < total {
        sweep_peak = sweep_peak.max(memory(pid).0);
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "first sweep did not end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sweep_wall = started.elapsed();
    let sweep_peak = sweep_peak.max(memory(pid).0);
    let sweep_cpu = cpu_seconds(pid);
    // Steady state: wait for the watches, then ten quiet seconds.
    let watching = Instant::now();
    let mut idle = 0.0;
    while watching.elapsed() < Duration::from_secs(300) {
        idle = metrics_line(&listen, "intake_idle_connections ")
            .await
            .unwrap_or(0.0);
        if idle as usize >= users {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle_after = watching.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu_before = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let steady_cpu = (cpu_seconds(pid) - cpu_before) / 10.0 * 100.0;
    let (steady_peak, steady_rss) = memory(pid);
    let stop = terminate(&mut serve);

    // 3. Two workers on PostgreSQL.
    let pg = pg_database().await;
    let pg_line = match pg {
        Some(url) => {
            let store = Store::connect(&url).await.unwrap();
            let tenant = fill(&store, &key, port, users).await;
            let started = Instant::now();
            let mut workers: Vec<Child> = (0..2)
                .map(|_| {
                    intake(
                        &url,
                        &key_file,
                        &["serve", "--listen", "none", "--idle", "false"],
                    )
                    .spawn()
                    .unwrap()
                })
                .collect();
            let mut peaks = [0.0f64; 2];
            while stored(&store, tenant).await < total {
                for (i, w) in workers.iter().enumerate() {
                    peaks[i] = peaks[i].max(memory(w.id()).0);
                }
                assert!(
                    started.elapsed() < Duration::from_secs(600),
                    "PG sweep did not end"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let wall = started.elapsed();
            for w in &mut workers {
                terminate(w);
            }
            format!(
                "{:<44} {:>8.1} s   peak RSS {:>6.1} + {:.1} MiB",
                "serve, 2 workers on PostgreSQL: first sweep",
                wall.as_secs_f64(),
                peaks[0],
                peaks[1]
            )
        }
        None => "serve, 2 workers on PostgreSQL: skipped (no PostgreSQL at 127.0.0.1:5432)".into(),
    };

    println!();
    println!(
        "{users} accounts × {each} messages on one Dovecot ({total} messages), release intake"
    );
    println!(
        "{:<44} {:>8.1} s   peak RSS {:>6.1} MiB   ({fetch_stored} stored)",
        "intake fetch, sequential (SQLite)",
        fetch_wall.as_secs_f64(),
        fetch_rss
    );
    println!(
        "{:<44} {:>8.1} s   peak RSS {:>6.1} MiB   CPU {:.1} s",
        "intake serve (SQLite): first sweep",
        sweep_wall.as_secs_f64(),
        sweep_peak,
        sweep_cpu
    );
    println!(
        "{:<44} {:>8.0}     RSS {:>6.1} MiB (peak {:.1})   CPU {:.2} %   (all watching after {:.1} s)",
        "intake serve: steady, IDLE connections",
        idle,
        steady_rss,
        steady_peak,
        steady_cpu,
        idle_after.as_secs_f64()
    );
    println!(
        "{:<44} {:>8.2} s",
        "intake serve: SIGTERM to exit",
        stop.as_secs_f64()
    );
    println!("{pg_line}");
}

/// A fresh PostgreSQL database for the run, if PostgreSQL answers.
async fn pg_database() -> Option<String> {
    let base = intake_tests::databases::postgres_base();
    let admin = sea_orm::Database::connect(format!("{base}/postgres"))
        .await
        .ok()?;
    let name = format!("intake_serve_bench_{}", std::process::id());
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .ok()?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .ok()?;
    Some(format!("{base}/{name}"))
}
