//! The HTTP API benchmark (issue 11), on SQLite and PostgreSQL:
//! - inbox listing latency (p50 / p99) with 100,000 stored messages: the
//!   first page, filtered by account, by party, by status and by date, and
//!   a walk through pages by cursor;
//! - directory bulk upsert of 100,000 contacts through the API, new and
//!   then unchanged.
//!
//! The engine measured is a release `intake` (`INTAKE_BENCH_BINARY`,
//! default `release/intake` beside this program's target directory; `./dev
//! bench-api` builds it). Messages are seeded straight into the store;
//! everything measured goes over HTTP. Figures are printed; nothing is
//! asserted. `INTAKE_BENCH_MESSAGES` and `INTAKE_BENCH_PARTIES` scale it.

use std::time::{Duration, Instant};

use intake::directory::{PartyKind, PartyRef};
use intake::domain::{MessageKey, Outcome};
use intake::fetch::{Protocol, Secret, Security};
use intake::store::{
    AccountConfig, BatchCommit, IncomingMessage, MasterKey, MessageMeta, NewParty, Store,
};
use intake_tests::api::{ApiServe, Client, OPERATOR};
use intake_tests::databases::{Backend, with_database};
use intake_tests::{bench_binary, env_usize};
use serde_json::json;

const ACCOUNTS: usize = 10;
const CONTACTS: usize = 2_000;

/// 100,000 messages over 10 accounts and a year, 70 % linked to one of
/// 2,000 contacts, 5 % quarantined, the rest unlinked.
async fn seed(store: &Store, key: &MasterKey, messages: usize) {
    let tenant = store.ensure_tenant("acme").await.unwrap();
    store
        .add_credential(tenant, "box", "u", &Secret::new("p"), key)
        .await
        .unwrap();
    let mut accounts = Vec::new();
    for a in 0..ACCOUNTS {
        let mut config = AccountConfig::new(
            &format!("acct{a}"),
            Protocol::Imap,
            "localhost",
            Security::Tls,
            "box",
        );
        config.auto_check = false;
        accounts.push(store.add_account(tenant, &config).await.unwrap());
    }
    let parties: Vec<NewParty> = (0..CONTACTS)
        .map(|i| NewParty {
            kind: PartyKind::Contact,
            email: format!("contact{i}@customers.example"),
            name: Some(format!("Contact {i}")),
            company: None,
            external_id: Some(format!("seed-{i}")),
        })
        .collect();
    store.import_parties(tenant, &parties).await.unwrap();
    let ids: Vec<String> = store
        .find_parties(
            tenant,
            &intake::store::PartyFilter {
                limit: CONTACTS as u64,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    let body = "A few words for the body of this message. ".repeat(20);
    let start = chrono::DateTime::parse_from_rfc3339("2025-11-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let batch_size = 1_000;
    let started = Instant::now();
    for chunk in 0..messages.div_ceil(batch_size) {
        for (a, account) in accounts.iter().enumerate() {
            let lo = chunk * batch_size;
            let hi = ((chunk + 1) * batch_size).min(messages);
            let batch = BatchCommit {
                messages: (lo..hi)
                    .filter(|n| n % ACCOUNTS == a)
                    .map(|n| {
                        let date = start + chrono::TimeDelta::minutes((n * 5) as i64);
                        let raw = format!(
                            "From: x{n}@customers.example\r\nSubject: Bench {n}\r\n\
Message-ID: <api-bench-{n}@test.example>\r\n\r\n{body}\r\n"
                        );
                        let outcome = match n % 20 {
                            0 => Outcome::Quarantine {
                                reason: "bench".into(),
                                plugin: Some("bench".into()),
                            },
                            1..=5 => Outcome::KeepUnlinked,
                            _ => Outcome::Attach(vec![PartyRef {
                                kind: PartyKind::Contact,
                                id: ids[n % ids.len()].clone(),
                            }]),
                        };
                        IncomingMessage {
                            key: MessageKey::File {
                                path: format!("bench/{n}.eml"),
                                offset: 0,
                            },
                            raw: raw.into_bytes().into(),
                            meta: MessageMeta {
                                message_id: Some(format!("api-bench-{n}@test.example")),
                                subject: Some(format!("Bench {n}")),
                                from: Some(format!("x{n}@customers.example")),
                                date: Some(date),
                            },
                            outcome,
                            action: None,
                            decided_by: Some("exact_match".into()),
                            decision: None,
                        }
                    })
                    .collect(),
                ..BatchCommit::default()
            };
            store.commit_batch(tenant, *account, &batch).await.unwrap();
        }
    }
    eprintln!(
        "  seeded {messages} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn latency(client: &Client, label: &str, paths: &[String]) {
    // Warm the connection pool and caches once.
    for path in paths.iter().take(3) {
        let _ = client.get(path).await;
    }
    let mut times = Vec::new();
    for path in paths {
        let t = Instant::now();
        let r = client.get(path).await;
        times.push(t.elapsed());
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    times.sort();
    println!(
        "  {label:<34} p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.len()
    );
}

async fn run(backend: Backend) {
    let messages = env_usize("INTAKE_BENCH_MESSAGES", 100_000);
    let parties = env_usize("INTAKE_BENCH_PARTIES", 100_000);
    let name = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    println!("{name}:");
    with_database(backend, |db| async move {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate().unwrap();
        let key_file = dir.path().join("intake.key");
        std::fs::write(&key_file, key.to_base64()).unwrap();
        seed(&db.store, &key, messages).await;
        if backend == Backend::Postgres {
            // The statistics autovacuum would have gathered by the time
            // anyone reads a 100,000-message inbox.
            use sea_orm::ConnectionTrait;
            let conn = sea_orm::Database::connect(&db.url).await.unwrap();
            conn.execute_unprepared("ANALYZE").await.unwrap();
        }
        let serve = ApiServe::start(
            &bench_binary(),
            &db.url,
            &key_file,
            &["--api-rate", "100000", "--api-burst", "100000"],
        );
        let issued = serve
            .client(Some(OPERATOR))
            .json(
                "POST",
                "/v1/tenants/acme/tokens",
                &json!({ "name": "bench", "scope": "admin" }),
            )
            .await
            .json();
        let client = serve.client(issued["token"].as_str());

        let n = 200;
        latency(&client, "first page (50)", &vec!["/v1/messages".to_string(); n]).await;
        latency(
            &client,
            "by account (50)",
            &(0..n)
                .map(|i| format!("/v1/messages?account=acct{}", i % ACCOUNTS))
                .collect::<Vec<_>>(),
        )
        .await;
        let party_ids: Vec<String> = client
            .get("/v1/parties?limit=500")
            .await
            .json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        latency(
            &client,
            "by party (50)",
            &(0..n)
                .map(|i| format!("/v1/messages?party={}", party_ids[i % party_ids.len()]))
                .collect::<Vec<_>>(),
        )
        .await;
        latency(
            &client,
            "quarantined (50)",
            &vec!["/v1/messages?status=quarantined".to_string(); n],
        )
        .await;
        latency(
            &client,
            "one day (date window, 50)",
            &(0..n)
                .map(|i| {
                    let day = 1 + (i % 27);
                    format!(
                        "/v1/messages?since=2026-02-{day:02}T00:00:00Z&until=2026-02-{:02}T00:00:00Z",
                        day + 1
                    )
                })
                .collect::<Vec<_>>(),
        )
        .await;
        // A walk through the inbox by cursor: 200 pages of 50.
        let mut cursor: Option<String> = None;
        let mut pages = Vec::new();
        for _ in 0..n {
            let path = match &cursor {
                Some(c) => format!("/v1/messages?cursor={c}"),
                None => "/v1/messages".into(),
            };
            pages.push(path.clone());
            let v = client.get(&path).await.json();
            cursor = v["next"].as_str().map(str::to_owned);
        }
        latency(&client, "cursor walk (pages 1-200)", &pages).await;

        // Directory: 100,000 contacts in requests of 5,000.
        let chunk = 5_000;
        let upsert = |round: &'static str| {
            let client = client.clone();
            async move {
                let started = Instant::now();
                let mut summary = (0u64, 0u64, 0u64);
                for c in 0..parties.div_ceil(chunk) {
                    let batch: Vec<_> = (c * chunk..((c + 1) * chunk).min(parties))
                        .map(|i| {
                            json!({ "kind": "contact", "email": format!("bulk{i}@crm.example"),
                                    "name": format!("Bulk {i}"), "company": "Bulk Co",
                                    "external_id": format!("bulk-{i}") })
                        })
                        .collect();
                    let r = client
                        .json("POST", "/v1/parties/bulk", &json!({ "parties": batch }))
                        .await;
                    assert_eq!(r.status, 200, "{}", r.text());
                    let v = r.json();
                    summary.0 += v["created"].as_u64().unwrap();
                    summary.1 += v["updated"].as_u64().unwrap();
                    summary.2 += v["unchanged"].as_u64().unwrap();
                }
                let took = started.elapsed().as_secs_f64();
                println!(
                    "  bulk upsert {parties} contacts, {round:<9} {took:>6.1} s  ({:>6.0}/s; created {}, updated {}, unchanged {})",
                    parties as f64 / took,
                    summary.0,
                    summary.1,
                    summary.2
                );
            }
        };
        upsert("new").await;
        upsert("unchanged").await;
        drop(serve);
    })
    .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backends =
        std::env::var("INTAKE_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    for b in backends.split(',') {
        match b.trim() {
            "sqlite" => run(Backend::Sqlite).await,
            "postgres" => run(Backend::Postgres).await,
            other => panic!("unknown backend {other}"),
        }
    }
}
