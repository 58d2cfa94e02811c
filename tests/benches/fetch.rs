//! Retrieval throughput: one private Dovecot, one mailbox of N messages
//! (default 10,000 of about 20 KB; `INTAKE_BENCH_MESSAGES` overrides), fetched
//! in the same run by Intake (IMAP plain, IMAP TLS, POP3 plain, POP3 TLS),
//! mbsync (isync; Maildir with FSync, its default) and fetchmail (IMAP and
//! POP3, into a BSMTP file). Prints one line per run: wall time, messages/s,
//! MB/s. Intake's runs are fetch-only (bodies counted, then dropped); the
//! others also write what they fetch, as they always do — see the notes the
//! bench prints.
//!
//! Then the full pipeline: the real `intake fetch` (parse, the default
//! five-plugin chain, a durable commit per batch, mark seen after commit)
//! over plain and TLS IMAP into SQLite, and over plain IMAP into
//! PostgreSQL, with its peak RSS, on a fresh copy of the unseen mailbox
//! each time. Rows marked `w1` decide one message at a time (as before
//! deciding ran on every core), the others use the default.
//!
//! The mailbox is a mix like a sales inbox: 60% from the tenant's 400
//! contacts, 20% from returning strangers at prospect companies (a lead the
//! first time, the same lead after), 10% from free-mail strangers, 10% from
//! robots (kept unlinked); every fifth message carries a PDF attachment.
//!
//! Run with `./dev bench-fetch` (installs isync and fetchmail if missing).
//! `INTAKE_BENCH_ONLY=pipeline` runs only the full-pipeline rows (e.g. to
//! compare peak RSS at 10k and 50k messages).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use intake::fetch::{FetchError, FolderCursor, MessageKey, Protocol, Security, open};
use intake_tests::servers::{Dovecot, PASSWORD, USER};

/// Contacts seeded into the store for the pipeline runs.
const CONTACTS: usize = 400;

/// Message `n` of the bench mailbox, about `size` bytes (see the module
/// docs for the mix).
fn message(n: usize, size: usize) -> Vec<u8> {
    let from = match n % 10 {
        0..=5 => {
            let c = n % CONTACTS;
            format!("Contact {c} <contact{c}@client{}.example>", c % 40)
        }
        6 | 7 => {
            let s = n % 300;
            format!("Prospect {s} <buyer{s}@prospect{}.example>", s % 100)
        }
        8 => format!("Someone {n} <someone{n}@gmail.com>"),
        _ => "Notifications <no-reply@notifications.example>".to_string(),
    };
    let mut raw = format!(
        "From: {from}\r\nTo: Alice <alice@ourco.example>\r\nSubject: Re: order {n}\r\n\
Date: Mon, 02 Nov 2026 09:00:00 +0000\r\nMessage-ID: <msg-{n}@mail.example>\r\nMIME-Version: 1.0\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog; a line of body text for size.\r\n";
    let text = |raw: &mut Vec<u8>, until: usize| {
        while raw.len() < until {
            raw.extend_from_slice(line);
        }
        // A dot-stuffing trap for POP3 and a bare '.' line in the middle.
        raw.extend_from_slice(b".leading dot line\r\n.\r\nend\r\n");
    };
    if n.is_multiple_of(5) {
        raw.extend_from_slice(
            b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n",
        );
        text(&mut raw, size / 3);
        raw.extend_from_slice(
            b"\r\n--b1\r\nContent-Type: application/pdf; name=\"quote.pdf\"\r\n\
Content-Disposition: attachment; filename=\"quote.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        );
        let mut i = n;
        while raw.len() < size {
            let chunk: String = (0..76)
                .map(|_| {
                    i = i
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i >> 58]
                        as char
                })
                .collect();
            raw.extend_from_slice(chunk.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n--b1--\r\n");
    } else {
        raw.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n\r\n");
        text(&mut raw, size);
    }
    raw
}

struct Run {
    name: String,
    messages: usize,
    bytes: u64,
    wall: Duration,
    note: String,
}

fn print(run: &Run) {
    let secs = run.wall.as_secs_f64();
    println!(
        "{:<28} {:>6} msgs {:>8.1} MB {:>8.2} s {:>8.0} msg/s {:>7.1} MB/s  {}",
        run.name,
        run.messages,
        run.bytes as f64 / 1e6,
        secs,
        run.messages as f64 / secs,
        run.bytes as f64 / 1e6 / secs,
        run.note
    );
}

async fn intake(
    server: &Dovecot,
    protocol: Protocol,
    security: Security,
) -> Result<Run, FetchError> {
    let account = server.account(protocol, security);
    let started = Instant::now();
    let mut source = open(&account).await?;
    let mut listing = Some(source.list("INBOX", &FolderCursor::default()).await?);
    let mut bytes = 0u64;
    let mut count = 0usize;
    // IMAP lists in windows; each is fetched before the next is asked for.
    while let Some(window) = listing {
        let refs: Vec<MessageKey> = window.new.iter().map(|l| l.message.clone()).collect();
        for batch in refs.chunks(200) {
            for fetched in source.fetch(batch).await? {
                bytes += fetched.raw.len() as u64;
                count += 1;
            }
        }
        listing = source.list_more("INBOX").await?;
    }
    source.close().await?;
    Ok(Run {
        name: format!("intake {protocol:?} {security:?}").to_lowercase(),
        messages: count,
        bytes,
        wall: started.elapsed(),
        note: "fetch only (bodies dropped)".into(),
    })
}

fn count_files(dir: &Path) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for sub in ["cur", "new"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                n += 1;
                bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    (n, bytes)
}

fn mbsync(server: &Dovecot, tls: bool) -> Option<Run> {
    which("mbsync")?;
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let (port, ssl) = if tls {
        (server.imaps_port, "IMAPS")
    } else {
        (server.imap_port, "None")
    };
    let cert = if tls {
        format!("CertificateFile {}\n", server.certs.ca_pem.display())
    } else {
        String::new()
    };
    let config = format!(
        "IMAPAccount bench\nHost localhost\nPort {port}\nUser {USER}\nPass \"{PASSWORD}\"\nSSLType {ssl}\n{cert}AuthMechs LOGIN\n\n\
IMAPStore remote\nAccount bench\n\nMaildirStore local\nPath {m}/\nInbox {m}/INBOX\n\n\
Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX\nSync Pull\nCreate Near\nExpunge None\nSyncState *\n",
        m = maildir.display()
    );
    let rc = dir.path().join("mbsyncrc");
    std::fs::write(&rc, config).unwrap();
    let started = Instant::now();
    let status = Command::new("mbsync")
        .arg("-c")
        .arg(&rc)
        .arg("-q")
        .arg("bench")
        .stdout(Stdio::null())
        .status()
        .ok()?;
    let wall = started.elapsed();
    let (n, bytes) = count_files(&maildir.join("INBOX"));
    Some(Run {
        name: format!("mbsync imap {}", if tls { "tls" } else { "none" }),
        messages: n,
        bytes,
        wall,
        note: format!(
            "to Maildir, FSync on (default){}",
            if status.success() {
                ""
            } else {
                "; exited with an error"
            }
        ),
    })
}

fn fetchmail(server: &Dovecot, protocol: &str) -> Option<Run> {
    which("fetchmail")?;
    let dir = tempfile::tempdir().unwrap();
    let port = if protocol == "imap" {
        server.imap_port
    } else {
        server.pop3_port
    };
    let rc = dir.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!("poll localhost protocol {protocol} port {port} user \"{USER}\" password \"{PASSWORD}\" sslproto '' keep fetchall\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = dir.path().join("out.bsmtp");
    let started = Instant::now();
    let status = Command::new("fetchmail")
        .env("FETCHMAILHOME", dir.path())
        .arg("-f")
        .arg(&rc)
        .arg("--bsmtp")
        .arg(&out)
        .arg("--nosyslog")
        .arg("-s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let wall = started.elapsed();
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let text = std::fs::read(&out).unwrap_or_default();
    let n = text.windows(11).filter(|w| w == b"MAIL FROM:<").count();
    Some(Run {
        name: format!("fetchmail {protocol} none"),
        messages: n,
        bytes,
        wall,
        note: format!("to a BSMTP file (exit {})", status.code().unwrap_or(-1)),
    })
}

/// Runs a child to completion and returns its wall time, peak RSS (KiB) and
/// whether it succeeded.
///
/// The peak is the child's own `VmHWM`, polled from `/proc` while it runs.
/// `wait4`'s `ru_maxrss` is no good here: a child spawned with a shared
/// address space (`posix_spawn`) inherits this process's high-water mark at
/// `exec`, so it would report the bench's own memory. Readings taken before
/// the child has exec'd (while `/proc/PID/exe` is still this binary) are
/// skipped for the same reason.
// The child is reaped by `wait4` below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (Duration, i64, bool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let started = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        let me = std::fs::read_link("/proc/self/exe").ok();
        std::thread::spawn(move || {
            let mut peak = 0i64;
            while !done.load(Ordering::Relaxed) {
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
                if exe.is_some()
                    && exe != me
                    && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
                {
                    peak = peak.max(kib);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let mut status = 0;
    // SAFETY: `usage` is a plain C struct the call fills in; the pid is our
    // child's, reaped exactly once here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid as i32, "wait4");
    done.store(true, Ordering::Relaxed);
    let peak = poller.join().expect("RSS poller");
    (
        started.elapsed(),
        peak,
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    )
}

/// Where a pipeline row stores: a fresh SQLite file, or a fresh database
/// on the machine's PostgreSQL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

/// The full pipeline through the real binary into a fresh store, with the
/// default five-plugin chain; `workers` sets how many messages of a batch
/// are decided at once (`None`: the default, one per core).
async fn intake_pipeline(
    server: &Dovecot,
    tls: bool,
    n: usize,
    db: Db,
    workers: Option<usize>,
) -> Run {
    use intake::directory::PartyKind;
    use intake::store::{AccountConfig, BindingRole, MasterKey, NewParty, Store};
    let dir = tempfile::tempdir().unwrap();
    let url = match db {
        Db::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("intake.db").display()
        ),
        Db::Postgres => {
            use sea_orm::ConnectionTrait;
            let base = intake_tests::databases::postgres_base();
            let admin = sea_orm::Database::connect(format!("{base}/postgres"))
                .await
                .unwrap();
            let name = format!("intake_bench_{}", std::process::id());
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .await
                .unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .unwrap();
            format!("{base}/{name}")
        }
    };
    let store = Store::connect(&url).await.unwrap();
    let tenant = store.ensure_tenant("default").await.unwrap();
    let key = MasterKey::generate().unwrap();
    let key_file = dir.path().join("intake.key");
    std::fs::write(&key_file, key.to_base64()).unwrap();
    store
        .add_credential(
            tenant,
            "mailbox",
            USER,
            &intake::fetch::Secret::new(PASSWORD),
            &key,
        )
        .await
        .unwrap();
    let security = if tls { Security::Tls } else { Security::None };
    let settings = server.account(Protocol::Imap, security);
    let mut config = AccountConfig::new("bench", Protocol::Imap, "localhost", security, "mailbox");
    config.port = settings.port;
    config.ca_file = settings.ca_file.clone();
    config.batch_size = 200;
    store.add_account(tenant, &config).await.unwrap();
    intake_tests::add_plugins(
        &store,
        tenant,
        &[
            ("auto_reply_guard", BindingRole::Matcher, "{}"),
            ("thread_match", BindingRole::Matcher, "{}"),
            ("exact_match", BindingRole::Matcher, "{}"),
            ("domain_match", BindingRole::Matcher, "{}"),
            ("unknown_sender", BindingRole::UnknownSender, "{}"),
        ],
    )
    .await;
    let contacts: Vec<NewParty> = (0..CONTACTS)
        .map(|c| NewParty {
            kind: PartyKind::Contact,
            email: format!("contact{c}@client{}.example", c % 40),
            name: Some(format!("Contact {c}")),
            company: Some(format!("Client {}", c % 40)),
            external_id: Some(format!("crm-{c}")),
        })
        .collect();
    store.import_parties(tenant, &contacts).await.unwrap();
    store.close().await.unwrap();
    // `INTAKE_BENCH_WRAP="perf record -g -o /tmp/perf.data --"` runs the
    // binary under a profiler (the RSS figure is then the wrapper's).
    let wrap: Vec<String> = std::env::var("INTAKE_BENCH_WRAP")
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let binary = env!("CARGO_BIN_EXE_intake-under-test");
    let mut command = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    if let Some(workers) = workers {
        command.env("INTAKE_DECIDE_WORKERS", workers.to_string());
    }
    let (wall, rss_kib, ok) = run_measured(
        command
            .args(["fetch", "--batch", "200"])
            .env("INTAKE_DATABASE_URL", &url)
            .env("INTAKE_KEY_FILE", &key_file)
            // e.g. `INTAKE_BENCH_LOG=intake::pipeline=debug` shows the
            // run's time per stage.
            .env(
                "INTAKE_LOG",
                std::env::var("INTAKE_BENCH_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::null()),
    );
    let db_bytes = std::fs::metadata(dir.path().join("intake.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    Run {
        name: format!(
            "intake fetch imap {}{}{}",
            if tls { "tls" } else { "none" },
            if db == Db::Postgres { " pg" } else { "" },
            workers.map_or(String::new(), |w| format!(" w{w}"))
        ),
        messages: n,
        bytes: db_bytes,
        wall,
        note: format!(
            "full pipeline, 5 plugins, {}, mark seen; peak RSS {} MiB{}",
            if db == Db::Postgres {
                "PostgreSQL"
            } else {
                "SQLite FULL sync"
            },
            rss_kib / 1024,
            if ok { "" } else { "; FAILED" }
        ),
    }
}

/// Marks every message unseen again, so each pipeline run has the same work.
fn reset_seen(server: &Dovecot) {
    let dir = server.maildir(USER, "INBOX").join("cur");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((base, flags)) = name.rsplit_once(":2,")
            && flags.contains('S')
        {
            let kept: String = flags.chars().filter(|&c| c != 'S').collect();
            std::fs::rename(entry.path(), dir.join(format!("{base}:2,{kept}"))).unwrap();
        }
    }
}

fn which(binary: &str) -> Option<()> {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(binary).exists());
    if !found {
        println!("{binary:<28} not installed: skipped (./dev bench-fetch installs it)");
    }
    found.then_some(())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("INTAKE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let server = Dovecot::start();
    let seeding = Instant::now();
    for i in 0..n {
        // ~20 KB each, varied a little.
        server.deliver(USER, "INBOX", &message(i, 16_000 + (i % 9) * 1_000), false);
    }
    println!(
        "seeded {n} messages in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    // Warm Dovecot's index so no tool pays for the first scan.
    let mut warm = open(&server.account(Protocol::Imap, Security::None))
        .await
        .unwrap();
    let mut listed = warm
        .list("INBOX", &FolderCursor::default())
        .await
        .unwrap()
        .new
        .len();
    while let Some(more) = warm.list_more("INBOX").await.unwrap() {
        listed += more.new.len();
    }
    warm.close().await.unwrap();
    assert_eq!(listed, n);

    println!(
        "{:<28} {:>11} {:>11} {:>10} {:>12} {:>12}",
        "run", "messages", "size", "wall", "rate", "throughput"
    );
    let only_pipeline = std::env::var("INTAKE_BENCH_ONLY").as_deref() == Ok("pipeline");
    for (protocol, security) in [
        (Protocol::Imap, Security::None),
        (Protocol::Imap, Security::Tls),
        (Protocol::Pop3, Security::None),
        (Protocol::Pop3, Security::Tls),
    ]
    .into_iter()
    .filter(|_| !only_pipeline)
    {
        match intake(&server, protocol, security).await {
            Ok(run) => print(&run),
            Err(e) => println!("intake {protocol:?} {security:?}: failed: {e}"),
        }
    }
    for tls in [false, true].into_iter().filter(|_| !only_pipeline) {
        if let Some(run) = mbsync(&server, tls) {
            print(&run);
        }
    }
    for protocol in ["imap", "pop3"].into_iter().filter(|_| !only_pipeline) {
        if let Some(run) = fetchmail(&server, protocol) {
            print(&run);
        }
    }
    // Sequential decide (w1, as before decide ran on every core), then the
    // default; TLS; and PostgreSQL.
    for (tls, db, workers) in [
        (false, Db::Sqlite, Some(1)),
        (false, Db::Sqlite, None),
        (true, Db::Sqlite, None),
        (false, Db::Postgres, Some(1)),
        (false, Db::Postgres, None),
    ] {
        reset_seen(&server);
        print(&intake_pipeline(&server, tls, n, db, workers).await);
    }
    println!("(for the intake fetch rows, the size column is the SQLite file it wrote)");
}
