//! Webhooks end to end, on SQLite and PostgreSQL: `intake serve` as a real
//! process ingests from a real Dovecot and delivers to real HTTP receivers
//! (axum on 127.0.0.1 inside the test) that verify every signature
//! themselves — written here from the Standard Webhooks spec, not with the
//! engine's signer — and count events by id.
//!
//! - ingestion reports `message.stored` with parties, `lead.created` and
//!   `message.quarantined`;
//! - `intake serve` killed with SIGKILL mid-ingest and restarted: every
//!   stored message has exactly one distinct `message.stored` event id;
//! - a receiver that fails for a while gets everything; one that always
//!   fails is marked failing and dead-letters while a healthy endpoint of
//!   the same tenant gets its events; a dead delivery redelivered with the
//!   CLI arrives;
//! - `account.disabled` (wrong password) and `account.recovered` (fixed);
//! - loopback destinations refused when private networks are not allowed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use intake::fetch::{Protocol, Secret, Security};
use intake::service::Service;
use intake::service::webhooks::{WebhookInput, WebhookPolicy};
use intake::store::{
    AccountConfig, DeliveryQuery, DeliveryState, EndpointState, MasterKey, MessageQuery, NewParty,
    Store, TenantId, WebhookEndpointId,
};
use intake_tests::api::ApiServe;
use intake_tests::databases::Db;
use intake_tests::on_both_databases;
use intake_tests::servers::{Dovecot, PASSWORD, USER};
use serde_json::Value;

/// What a receiver got.
#[derive(Debug, Default)]
struct Received {
    /// Per event id: its type, body and how many times it was accepted.
    events: HashMap<String, (String, Value, usize)>,
    /// Requests whose signature did not verify.
    bad_signatures: usize,
    /// Requests, accepted or not.
    requests: usize,
}

/// A webhook receiver on 127.0.0.1 that verifies signatures with the
/// secret it is given and answers 500 while `failing` is set.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Received>>,
    secret: Arc<Mutex<Option<Vec<u8>>>>,
    failing: Arc<AtomicBool>,
    /// Answer 500 to this many more requests, then recover.
    fail_next: Arc<AtomicUsize>,
}

/// Checks a Standard Webhooks signature, from the spec: the HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` keyed with the secret's bytes, base64, among
/// the space-separated `v1,<sig>` values; the timestamp within 5 minutes.
fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::to_owned);
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    if header("content-type").as_deref() != Some("application/json") {
        return None;
    }
    let sent: i64 = timestamp.parse().ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    if (now - sent).abs() > 300 {
        return None;
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = BASE64.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .filter_map(|s| s.split_once(','))
        .any(|(version, sig)| version == "v1" && sig == expected)
        .then_some(id)
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secret = r.secret.lock().unwrap().clone();
    let mut got = r.got.lock().unwrap();
    got.requests += 1;
    let Some(id) = secret.and_then(|s| verify(&s, &headers, &body)) else {
        got.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    };
    let take_failure = r
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if r.failing.load(Ordering::SeqCst) || take_failure {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let kind = payload["type"].as_str().unwrap_or_default().to_string();
    got.events.entry(id).or_insert((kind, payload, 0)).2 += 1;
    StatusCode::NO_CONTENT
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            url: format!("http://{addr}/hook"),
            got: Arc::default(),
            secret: Arc::default(),
            failing: Arc::default(),
            fail_next: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    fn set_secret(&self, secret: &str) {
        let bytes = BASE64
            .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
            .unwrap();
        *self.secret.lock().unwrap() = Some(bytes);
    }

    /// Accepted events of this type: (event id, body).
    fn events(&self, kind: &str) -> Vec<(String, Value)> {
        let got = self.got.lock().unwrap();
        got.events
            .iter()
            .filter(|(_, (k, _, _))| k == kind)
            .map(|(id, (_, body, _))| (id.clone(), body.clone()))
            .collect()
    }

    fn bad_signatures(&self) -> usize {
        self.got.lock().unwrap().bad_signatures
    }

    fn requests(&self) -> usize {
        self.got.lock().unwrap().requests
    }
}

/// Short retries for tests; receivers are on loopback.
const FAST: &[&str] = &[
    "--webhook-allow-private-networks",
    "--webhook-retry-secs",
    "1",
    "--webhook-retry-max-secs",
    "2",
    "--webhook-failing-after",
    "3",
];

/// `intake serve` on the test's store, IDLE off (the tests deliver and
/// check by polling), with `extra` flags.
struct Serve;

impl Serve {
    fn start(db: &Db, key_file: &Path, extra: &[&str]) -> ApiServe {
        let mut args = vec!["--idle", "false"];
        args.extend_from_slice(extra);
        ApiServe::start(
            Path::new(env!("CARGO_BIN_EXE_intake-under-test")),
            &db.url,
            key_file,
            &args,
        )
    }
}

/// Runs the `intake` binary against the test's store; returns stdout, or
/// panics with stderr.
fn intake_cli(db: &Db, key_file: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = intake_cli_status(db, key_file, args, env);
    assert!(out.0, "{args:?}: {}{}", out.1, out.2);
    out.1
}

fn intake_cli_status(
    db: &Db,
    key_file: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_intake-under-test"));
    cmd.args(args)
        .env("INTAKE_DATABASE_URL", &db.url)
        .env("INTAKE_KEY_FILE", key_file)
        .env("INTAKE_LOG", "error")
        .env_remove("INTAKE_WEBHOOK_ALLOW_PRIVATE_NETWORKS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Polls `check` every 100 ms until it holds, or fails after `limit` (a
/// deadline for a loaded machine, not a speed assertion).
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

/// The key file, the default tenant, alice's credential and one IMAP
/// account on `server` (the bundled chain is installed by `intake serve`).
async fn prepare(
    db: &Db,
    dir: &Path,
    server: &Dovecot,
    batch: u32,
) -> (TenantId, MasterKey, PathBuf) {
    let key = MasterKey::generate().unwrap();
    let key_file = dir.join("intake.key");
    std::fs::write(&key_file, key.to_base64()).unwrap();
    let tenant = db.store.ensure_tenant("default").await.unwrap();
    db.store
        .add_credential(tenant, "alice", USER, &Secret::new(PASSWORD), &key)
        .await
        .unwrap();
    let port = server.account(Protocol::Imap, Security::None).port;
    let mut config = AccountConfig::new(
        "sales",
        Protocol::Imap,
        "localhost",
        Security::None,
        "alice",
    );
    config.port = port;
    config.check_interval_secs = 1;
    config.batch_size = batch;
    db.store.add_account(tenant, &config).await.unwrap();
    (tenant, key, key_file)
}

/// Registers `receiver` as an endpoint of `tenant` through the service
/// layer and gives it the secret; returns the endpoint's id.
async fn register(
    store: &Store,
    key: &MasterKey,
    tenant: TenantId,
    receiver: &Receiver,
    events: &[&str],
) -> WebhookEndpointId {
    let service = Service::admin(store.clone())
        .with_master_key(key.clone())
        .with_webhook_policy(WebhookPolicy {
            allow_private_networks: true,
        });
    let created = service
        .create_webhook(
            &intake::service::Scope::local(tenant, "default"),
            &WebhookInput {
                url: receiver.url.clone(),
                event_types: events.iter().map(|e| e.to_string()).collect(),
                description: Some("test receiver".into()),
                enabled: true,
            },
        )
        .await
        .unwrap();
    receiver.set_secret(created.secret.expose());
    created.endpoint.id
}

fn mail(from: &str, tag: &str, n: usize) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: sales@ourco.example\r\nSubject: {tag} {n}\r\n\
Message-ID: <{tag}-{n}@test.example>\r\nDate: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\nHello {n}.\r\n"
    )
    .into_bytes()
}

async fn stored_ids(store: &Store, tenant: TenantId) -> Vec<i64> {
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
        .into_iter()
        .map(|m| m.id.0)
        .collect()
}

/// A known contact's mail is stored with the contact; an unknown sender's
/// creates a lead (`lead.created`, then `message.stored` with the lead);
/// mail that is not mail is quarantined. The CLI registers the endpoint
/// and shows the deliveries.
async fn ingestion_reports_stored_leads_and_quarantined(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start();
    let (tenant, _key, key_file) = prepare(&db, dir.path(), &server, 100).await;
    db.store
        .upsert_party(
            tenant,
            &NewParty {
                kind: intake::directory::PartyKind::Contact,
                email: "ann.lee@acme.example".into(),
                name: Some("Ann Lee".into()),
                company: Some("Acme".into()),
                external_id: Some("crm-17".into()),
            },
        )
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let added = intake_cli(
        &db,
        &key_file,
        &["webhook", "add", &receiver.url, "--description", "crm"],
        &[("INTAKE_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")],
    );
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no secret in {added}"));
    receiver.set_secret(secret);
    let list = intake_cli(&db, &key_file, &["webhook", "list"], &[]);
    assert!(
        list.contains(&receiver.url) && !list.contains(secret),
        "{list}"
    );

    server.deliver(
        USER,
        "INBOX",
        &mail("Ann Lee <ann.lee@acme.example>", "known", 1),
        false,
    );
    server.deliver(
        USER,
        "INBOX",
        &mail("Bob Stone <bob.stone@prospect.example>", "new", 2),
        false,
    );
    server.deliver(USER, "INBOX", b"\r\nno headers at all, not mail\r\n", false);
    let serve = Serve::start(&db, &key_file, FAST);
    until(
        Duration::from_secs(60),
        "three messages reported",
        || async {
            receiver.events("message.stored").len() == 2
                && receiver.events("message.quarantined").len() == 1
                && receiver.events("lead.created").len() == 1
        },
    )
    .await;
    assert_eq!(receiver.bad_signatures(), 0, "{}", serve.log());

    let stored = receiver.events("message.stored");
    let by_subject = |subject: &str| {
        stored
            .iter()
            .map(|(_, body)| body["data"].clone())
            .find(|d| d["subject"] == subject)
            .unwrap_or_else(|| panic!("no message.stored for {subject}: {stored:?}"))
    };
    let known = by_subject("known 1");
    assert_eq!(known["account"], "sales");
    assert_eq!(known["message_id"], "known-1@test.example");
    assert_eq!(known["disposition"], "attach");
    assert_eq!(known["parties"][0]["email"], "ann.lee@acme.example");
    assert_eq!(known["parties"][0]["kind"], "contact");
    assert_eq!(known["parties"][0]["external_id"], "crm-17");
    assert!(known["decided_by"].is_string(), "{known}");
    let new = by_subject("new 2");
    assert_eq!(new["disposition"], "create-lead");
    assert_eq!(new["parties"][0]["email"], "bob.stone@prospect.example");
    assert_eq!(new["parties"][0]["kind"], "lead");
    let (_, lead) = receiver.events("lead.created").remove(0);
    assert_eq!(lead["data"]["email"], "bob.stone@prospect.example");
    assert_eq!(lead["data"]["id"], new["parties"][0]["id"]);
    assert_eq!(lead["data"]["message"], new["id"]);
    let (_, quarantined) = receiver.events("message.quarantined").remove(0);
    assert_eq!(quarantined["data"]["account"], "sales");
    assert!(quarantined["data"]["reason"].is_string());
    let ids: HashSet<i64> = stored_ids(&db.store, tenant).await.into_iter().collect();
    for d in [&known, &new, &quarantined["data"]] {
        assert!(ids.contains(&d["id"].as_i64().unwrap()), "{d}");
    }

    let deliveries = intake_cli(&db, &key_file, &["webhook", "deliveries"], &[]);
    assert_eq!(deliveries.matches(" delivered ").count(), 4, "{deliveries}");
}

/// SIGKILL during a long first sync in small batches, then a restart:
/// every stored message has exactly one distinct `message.stored` event id
/// at the receiver (an id may arrive more than once; none may be missing).
async fn a_killed_service_loses_no_event(db: Db) {
    const MESSAGES: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start();
    let (tenant, key, key_file) = prepare(&db, dir.path(), &server, 5).await;
    let receiver = Receiver::start().await;
    register(&db.store, &key, tenant, &receiver, &["message.stored"]).await;
    for n in 0..MESSAGES {
        server.deliver(
            USER,
            "INBOX",
            &mail("Ann Lee <ann.lee@acme.example>", "kill", n),
            false,
        );
    }
    for round in 0..2 {
        let mut serve = Serve::start(&db, &key_file, FAST);
        let floor = (round + 1) * MESSAGES / 4;
        until(Duration::from_secs(120), "some commits", || async {
            stored_ids(&db.store, tenant).await.len() >= floor
        })
        .await;
        serve.kill();
    }
    let _serve = Serve::start(&db, &key_file, FAST);
    until(Duration::from_secs(180), "everything stored", || async {
        stored_ids(&db.store, tenant).await.len() == MESSAGES
    })
    .await;
    until(
        Duration::from_secs(120),
        "every message.stored delivered",
        || async { receiver.events("message.stored").len() >= MESSAGES },
    )
    .await;
    let mut ids_per_message: HashMap<i64, HashSet<String>> = HashMap::new();
    for (id, body) in receiver.events("message.stored") {
        let message = body["data"]["id"].as_i64().unwrap();
        ids_per_message.entry(message).or_default().insert(id);
    }
    for message in stored_ids(&db.store, tenant).await {
        let ids = ids_per_message.get(&message).map_or(0, HashSet::len);
        assert_eq!(ids, 1, "message {message} has {ids} distinct event ids");
    }
    assert_eq!(ids_per_message.len(), MESSAGES);
    assert_eq!(receiver.bad_signatures(), 0);
}

/// Three endpoints of one tenant: one fails its first requests then
/// recovers and gets everything; one always fails, is marked failing and
/// dead-letters after the (short) give-up time, while the healthy one has
/// had all its events by then; a dead delivery redelivered through the CLI
/// arrives once the receiver works, and so do the rest with `--endpoint
/// --dead`.
async fn failing_endpoints_retry_dead_letter_and_redeliver(db: Db) {
    const MESSAGES: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start();
    let (tenant, key, key_file) = prepare(&db, dir.path(), &server, 100).await;
    let flaky = Receiver::start().await;
    let broken = Receiver::start().await;
    let healthy = Receiver::start().await;
    flaky.fail_next.store(8, Ordering::SeqCst);
    broken.failing.store(true, Ordering::SeqCst);
    register(&db.store, &key, tenant, &flaky, &["message.stored"]).await;
    let broken_id = register(&db.store, &key, tenant, &broken, &["message.stored"]).await;
    register(&db.store, &key, tenant, &healthy, &[]).await;
    for n in 0..MESSAGES {
        server.deliver(
            USER,
            "INBOX",
            &mail("Ann Lee <ann.lee@acme.example>", "retry", n),
            false,
        );
    }
    let mut args = FAST.to_vec();
    args.extend(["--webhook-give-up-secs", "6"]);
    let serve = Serve::start(&db, &key_file, &args);
    let dead = |store: Store| async move {
        store
            .webhook_deliveries(
                tenant,
                &DeliveryQuery {
                    endpoint: Some(broken_id),
                    state: Some(DeliveryState::Dead),
                    ..DeliveryQuery::default()
                },
            )
            .await
            .unwrap()
    };
    until(
        Duration::from_secs(90),
        "the broken endpoint's deliveries dead",
        || {
            let store = db.store.clone();
            async move { dead(store).await.len() == MESSAGES }
        },
    )
    .await;
    // By the time the broken endpoint gave up, the healthy one had all.
    assert_eq!(
        healthy.events("message.stored").len(),
        MESSAGES,
        "{}",
        serve.log()
    );
    let endpoint = db.store.webhook_endpoint(tenant, broken_id).await.unwrap();
    assert_eq!(endpoint.state, EndpointState::Failing);
    assert!(endpoint.consecutive_failures >= 3 && endpoint.failing_since.is_some());
    assert!(broken.requests() >= MESSAGES);
    assert!(broken.events("message.stored").is_empty());
    until(
        Duration::from_secs(60),
        "the flaky receiver got everything",
        || async { flaky.events("message.stored").len() == MESSAGES },
    )
    .await;

    // The receiver is fixed: one delivery by id, then the rest.
    broken.failing.store(false, Ordering::SeqCst);
    let listed = intake_cli(&db, &key_file, &["webhook", "deliveries", "--dead"], &[]);
    assert_eq!(listed.matches(" dead ").count(), MESSAGES, "{listed}");
    let one = dead(db.store.clone()).await[0].clone();
    intake_cli(
        &db,
        &key_file,
        &["webhook", "redeliver", &one.id.to_string()],
        &[],
    );
    until(Duration::from_secs(30), "the redelivered event", || async {
        broken
            .events("message.stored")
            .iter()
            .any(|(id, _)| *id == one.event_id)
    })
    .await;
    let out = intake_cli(
        &db,
        &key_file,
        &[
            "webhook",
            "redeliver",
            "--endpoint",
            &broken_id.to_string(),
            "--dead",
        ],
        &[],
    );
    assert!(out.starts_with(&format!("{} dead", MESSAGES - 1)), "{out}");
    until(
        Duration::from_secs(30),
        "every redelivered event",
        || async { broken.events("message.stored").len() == MESSAGES },
    )
    .await;
    until(Duration::from_secs(30), "the endpoint ok again", || async {
        db.store
            .webhook_endpoint(tenant, broken_id)
            .await
            .unwrap()
            .state
            == EndpointState::Ok
    })
    .await;
    for r in [&flaky, &broken, &healthy] {
        assert_eq!(r.bad_signatures(), 0);
    }
}

/// A wrong password disables the account (`account.disabled` with the
/// reason and class); the password fixed and the account enabled, the next
/// check succeeds (`account.recovered`).
async fn account_disabled_then_recovered(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start();
    let key = MasterKey::generate().unwrap();
    let key_file = dir.path().join("intake.key");
    std::fs::write(&key_file, key.to_base64()).unwrap();
    let tenant = db.store.ensure_tenant("default").await.unwrap();
    db.store
        .add_credential(
            tenant,
            "alice",
            USER,
            &Secret::new("not the password"),
            &key,
        )
        .await
        .unwrap();
    let port = server.account(Protocol::Imap, Security::None).port;
    let mut config = AccountConfig::new(
        "sales",
        Protocol::Imap,
        "localhost",
        Security::None,
        "alice",
    );
    config.port = port;
    config.check_interval_secs = 1;
    db.store.add_account(tenant, &config).await.unwrap();
    let receiver = Receiver::start().await;
    register(
        &db.store,
        &key,
        tenant,
        &receiver,
        &["account.disabled", "account.recovered"],
    )
    .await;
    let mut args = FAST.to_vec();
    args.extend(["--disable-after", "2"]);
    let _serve = Serve::start(&db, &key_file, &args);
    until(Duration::from_secs(60), "account.disabled", || async {
        !receiver.events("account.disabled").is_empty()
    })
    .await;
    let (_, disabled) = receiver.events("account.disabled").remove(0);
    assert_eq!(disabled["data"]["account"], "sales");
    assert_eq!(disabled["data"]["error_class"], "auth");
    assert!(
        disabled["data"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("auth (2 failures in a row)"),
        "{disabled}"
    );
    assert!(receiver.events("account.recovered").is_empty());

    db.store
        .update_credential(tenant, "alice", USER, &Secret::new(PASSWORD), &key)
        .await
        .unwrap();
    intake_cli(&db, &key_file, &["account", "enable", "sales"], &[]);
    until(Duration::from_secs(60), "account.recovered", || async {
        !receiver.events("account.recovered").is_empty()
    })
    .await;
    let (_, recovered) = receiver.events("account.recovered").remove(0);
    assert_eq!(recovered["data"]["account"], "sales");
    assert_eq!(recovered["data"]["previous_error_class"], "auth");
    assert_eq!(receiver.events("account.disabled").len(), 1);
    assert_eq!(receiver.bad_signatures(), 0);
}

/// Without `--webhook-allow-private-networks`, a loopback URL is refused at
/// registration, and at delivery (an endpoint registered where it was
/// allowed, by address and by name): nothing reaches the receiver.
async fn private_networks_are_refused_unless_allowed(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let server = Dovecot::start();
    let (tenant, key, key_file) = prepare(&db, dir.path(), &server, 100).await;
    let receiver = Receiver::start().await;
    let (ok, _, err) = intake_cli_status(&db, &key_file, &["webhook", "add", &receiver.url], &[]);
    assert!(
        !ok && err.contains("invalid url") && err.contains("private"),
        "{err}"
    );
    let by_name = Receiver::start().await;
    let by_name_url = by_name.url.replace("127.0.0.1", "localhost");
    let (ok, _, err) = intake_cli_status(&db, &key_file, &["webhook", "add", &by_name_url], &[]);
    assert!(!ok && err.contains("private"), "{err}");

    let literal = register(&db.store, &key, tenant, &receiver, &[]).await;
    let named = {
        let mut r = by_name.clone();
        r.url = by_name_url.clone();
        register(&db.store, &key, tenant, &r, &[]).await
    };
    server.deliver(
        USER,
        "INBOX",
        &mail("Ann Lee <ann.lee@acme.example>", "inside", 1),
        false,
    );
    let _serve = Serve::start(
        &db,
        &key_file,
        &["--webhook-retry-secs", "1", "--webhook-retry-max-secs", "2"],
    );
    for endpoint in [literal, named] {
        until(Duration::from_secs(60), "a refused attempt", || async {
            db.store
                .webhook_deliveries(
                    tenant,
                    &DeliveryQuery {
                        endpoint: Some(endpoint),
                        ..DeliveryQuery::default()
                    },
                )
                .await
                .unwrap()
                .iter()
                .any(|d| {
                    d.attempts > 0
                        && d.last_error
                            .as_deref()
                            .is_some_and(|e| e.contains("private"))
                })
        })
        .await;
    }
    assert_eq!(receiver.requests(), 0);
    assert_eq!(by_name.requests(), 0);
}

on_both_databases!(
    ingestion_reports_stored_leads_and_quarantined,
    a_killed_service_loses_no_event,
    failing_endpoints_retry_dead_letter_and_redeliver,
    account_disabled_then_recovered,
    private_networks_are_refused_unless_allowed,
);
