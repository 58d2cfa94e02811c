//! The HTTP API over real HTTP against a real `intake serve` (with a real
//! Dovecot behind its accounts), on SQLite and PostgreSQL: every route
//! against every kind of wrong caller, round trips of every resource, a
//! refused field named in a problem document, limits, the OpenAPI document,
//! TLS, and concurrent directory upserts during ingestion.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use intake::fetch::{Protocol, Security};
use intake::store::MasterKey;
use intake_tests::api::{ApiServe, Client, OPERATOR, Response};
use intake_tests::databases::Db;
use intake_tests::servers::{Dovecot, PASSWORD, TestCertificates, USER};
use intake_tests::{on_both_databases, plugin};
use serde_json::{Value, json};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_intake-under-test"))
}

fn key_file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("intake.key");
    std::fs::write(&path, MasterKey::generate().unwrap().to_base64()).unwrap();
    path
}

fn mail(from: &str, tag: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: sales@ourco.example\r\nSubject: {tag}\r\n\
Message-ID: <{tag}@test.example>\r\nDate: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}

#[track_caller]
fn expect(r: &Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// A refused field: 422 (or 400), problem+json, the field named.
#[track_caller]
fn refused(r: &Response, status: u16, field: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{r:?}"
    );
    let p = r.json();
    assert!(
        p["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:intake:problem:"),
        "{p}"
    );
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(fields.contains(&field), "expected field {field}: {p}");
}

fn operator(serve: &ApiServe) -> Client {
    serve.client(Some(OPERATOR))
}

async fn create_tenant(serve: &ApiServe, name: &str) {
    let r = operator(serve)
        .json("POST", "/v1/tenants", &json!({ "name": name }))
        .await;
    expect(&r, 201);
}

async fn issue(serve: &ApiServe, tenant: &str, name: &str, scope: &str) -> (i64, String) {
    let r = operator(serve)
        .json(
            "POST",
            &format!("/v1/tenants/{tenant}/tokens"),
            &json!({ "name": name, "scope": scope }),
        )
        .await;
    let v = expect(&r, 201);
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("itk_"), "{v}");
    assert!(token.starts_with(v["prefix"].as_str().unwrap()), "{v}");
    (v["id"].as_i64().unwrap(), token)
}

/// Polls until `check` holds.
async fn until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sets up tenant `acme` through the API: a credential and an account on
/// the test Dovecot, the directory, a hostile plugin first in the chain,
/// mail checked into quarantine, one message released by re-running the
/// chain and one by attaching by hand.
struct Acme {
    admin: Client,
    read: Client,
    quarantined: i64,
    stored: i64,
    party: i64,
    token_id: i64,
    webhook: i64,
    delivery: i64,
}

async fn set_up_acme(serve: &ApiServe, dovecot: &Dovecot) -> Acme {
    create_tenant(serve, "acme").await;
    let (_, admin_token) = issue(serve, "acme", "crm", "admin").await;
    let (token_id, read_token) = issue(serve, "acme", "reader", "read").await;
    let admin = serve.client(Some(&admin_token));
    let read = serve.client(Some(&read_token));

    expect(
        &admin
            .json(
                "POST",
                "/v1/credentials",
                &json!({ "name": "alice", "username": USER, "secret": PASSWORD }),
            )
            .await,
        204,
    );
    let r = admin
        .json(
            "POST",
            "/v1/parties/bulk",
            &json!({ "parties": [
                { "kind": "contact", "email": "ann.lee@acme.example", "name": "Ann Lee", "company": "Acme", "external_id": "crm-1" },
                { "kind": "contact", "email": "raj.patel@acme.example", "name": "Raj Patel", "external_id": "crm-2" }
            ]}),
        )
        .await;
    assert_eq!(expect(&r, 200)["created"], 2);

    // The hostile plugin first: it panics on every message, so mail is
    // held in quarantine with the plugin's name.
    hostile_first(&admin).await;

    // A webhook endpoint nothing listens on (loopback's discard port):
    // its deliveries fail and wait for their next attempt.
    let v = expect(
        &admin
            .json(
                "POST",
                "/v1/webhooks",
                &json!({ "url": "http://127.0.0.1:9/acme-hook", "event_types": ["message.quarantined", "message.stored"] }),
            )
            .await,
        201,
    );
    assert!(v["secret"].as_str().unwrap().starts_with("whsec_"), "{v}");
    let webhook = v["endpoint"]["id"].as_i64().unwrap();

    // The account last, once the chain is in place: its first scheduled
    // check runs at once, and one that loaded the chain before the hostile
    // plugin went first would store the mail instead of holding it.
    let port = dovecot.account(Protocol::Imap, Security::None).port;
    let r = admin
        .json(
            "POST",
            "/v1/accounts",
            &json!({
                "name": "sales", "protocol": "imap", "host": "localhost", "port": port,
                "security": "none", "credential": "alice", "check_interval_secs": 3600
            }),
        )
        .await;
    let v = expect(&r, 201);
    assert!(
        v["warnings"][0].as_str().unwrap().contains("without TLS"),
        "{v}"
    );

    dovecot.deliver(
        USER,
        "INBOX",
        &mail("Ann Lee <ann.lee@acme.example>", "first"),
        false,
    );
    dovecot.deliver(
        USER,
        "INBOX",
        &mail("Tom <tom@elsewhere.example>", "second"),
        false,
    );
    let r = admin
        .send("POST", "/v1/accounts/sales/check?wait_secs=60", None)
        .await;
    let v = expect(&r, 200);
    assert_eq!(v["account"]["state"], "ok", "{v}");
    // (A scheduled check may have come first and ingested them.)
    until(Duration::from_secs(30), "two held messages", || async {
        held_count(&admin).await == 2
    })
    .await;
    let held = expect(&admin.get("/v1/quarantine").await, 200)["items"].clone();
    assert!(held.to_string().contains("panicked on purpose"), "{held}");
    let id_of = |subject: &str| {
        held.as_array()
            .unwrap()
            .iter()
            .find(|q| q["message"]["subject"] == subject)
            .unwrap()["message"]["id"]
            .as_i64()
            .unwrap()
    };
    let (first, second) = (id_of("first"), id_of("second"));

    // Fix the chain; release one by re-running it, one by hand.
    expect(&admin.delete("/v1/plugins/hostile").await, 204);
    let r = admin
        .json(
            "POST",
            &format!("/v1/quarantine/{first}/release"),
            &json!({ "action": "rerun" }),
        )
        .await;
    let v = expect(&r, 200);
    assert_eq!(v["decided_by"], "exact_match", "{v}");
    assert_eq!(v["message"]["parties"][0]["email"], "ann.lee@acme.example");
    let party = v["message"]["parties"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let parties = expect(
        &admin.get("/v1/parties?email=raj.patel@acme.example").await,
        200,
    );
    let raj = parties["items"][0]["id"].as_str().unwrap().to_owned();
    let r = admin
        .json(
            "POST",
            &format!("/v1/quarantine/{second}/release"),
            &json!({ "action": "attach", "party_ids": [raj.parse::<i64>().unwrap()] }),
        )
        .await;
    expect(&r, 200);

    // A third message stays in quarantine (re-held by a hostile plugin).
    hostile_first(&admin).await;
    dovecot.deliver(
        USER,
        "INBOX",
        &mail("Ann Lee <ann.lee@acme.example>", "third"),
        false,
    );
    expect(
        &admin
            .send("POST", "/v1/accounts/sales/check?wait_secs=60", None)
            .await,
        200,
    );
    until(
        Duration::from_secs(90),
        "the third message held",
        || async { held_count(&admin).await == 1 },
    )
    .await;
    let held = expect(&admin.get("/v1/quarantine").await, 200)["items"].clone();
    let quarantined = held[0]["message"]["id"].as_i64().unwrap();
    let deliveries = expect(&admin.get("/v1/webhook-deliveries?limit=200").await, 200);
    let delivery = deliveries["items"][0]["id"].as_i64().unwrap();
    // Three held, two released: the releases are stored messages too.
    let types: Vec<&str> = deliveries["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "message.quarantined")
            .count(),
        3,
        "{deliveries}"
    );
    assert_eq!(
        types.iter().filter(|t| **t == "message.stored").count(),
        2,
        "{deliveries}"
    );
    Acme {
        webhook,
        delivery,
        admin,
        read,
        quarantined,
        stored: first,
        party,
        token_id,
    }
}

/// Uploads the hostile plugin (it panics on every message) and puts it
/// first in the chain.
async fn hostile_first(admin: &Client) {
    let wasm = std::fs::read(plugin("hostile")).unwrap();
    let r = admin
        .send(
            "POST",
            "/v1/plugins?name=hostile&role=matcher&config=%7B%22mode%22%3A%22panic%22%7D",
            Some(("application/wasm", wasm)),
        )
        .await;
    expect(&r, 201);
    let chain = expect(&admin.get("/v1/plugins").await, 200);
    let mut names: Vec<String> = chain
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.rotate_right(1);
    assert_eq!(names[0], "hostile");
    expect(
        &admin
            .json("PUT", "/v1/chain/order", &json!({ "names": names }))
            .await,
        200,
    );
}

/// How many messages are held in quarantine (one page).
async fn held_count(admin: &Client) -> usize {
    admin.get("/v1/quarantine").await.json()["items"]
        .as_array()
        .map_or(0, Vec::len)
}

/// One route of the matrix: method, path, body, the scope it needs.
struct Route {
    method: &'static str,
    /// The path with acme's ids filled in.
    path: String,
    /// The path as the OpenAPI document spells it.
    template: &'static str,
    body: Option<(&'static str, Vec<u8>)>,
    /// `None`: the operator's route.
    scope: Option<&'static str>,
}

fn routes(acme: &Acme) -> Vec<Route> {
    let j = |v: Value| Some(("application/json", serde_json::to_vec(&v).unwrap()));
    let (m, q, p, t) = (acme.stored, acme.quarantined, acme.party, acme.token_id);
    let (w, d) = (acme.webhook, acme.delivery);
    let r = |method, template: &'static str, path: String, body, scope| Route {
        method,
        path,
        template,
        body,
        scope,
    };
    vec![
        r("GET", "/v1/tenants", "/v1/tenants".into(), None, None),
        r(
            "POST",
            "/v1/tenants",
            "/v1/tenants".into(),
            j(json!({"name": "x1"})),
            None,
        ),
        r(
            "POST",
            "/v1/tenants/{tenant}/tokens",
            "/v1/tenants/acme/tokens".into(),
            j(json!({"name": "x", "scope": "read"})),
            None,
        ),
        r(
            "GET",
            "/v1/tokens",
            "/v1/tokens".into(),
            None,
            Some("admin"),
        ),
        r(
            "POST",
            "/v1/tokens",
            "/v1/tokens".into(),
            j(json!({"name": "x", "scope": "read"})),
            Some("admin"),
        ),
        r(
            "DELETE",
            "/v1/tokens/{id}",
            format!("/v1/tokens/{t}"),
            None,
            Some("admin"),
        ),
        r(
            "GET",
            "/v1/accounts",
            "/v1/accounts".into(),
            None,
            Some("read"),
        ),
        r(
            "POST",
            "/v1/accounts",
            "/v1/accounts".into(),
            j(
                json!({"name": "n2", "protocol": "imap", "host": "localhost", "credential": "alice", "auto_check": false}),
            ),
            Some("write"),
        ),
        r(
            "GET",
            "/v1/accounts/{name}",
            "/v1/accounts/sales".into(),
            None,
            Some("read"),
        ),
        r(
            "PATCH",
            "/v1/accounts/{name}",
            "/v1/accounts/sales".into(),
            j(json!({"batch_size": 50})),
            Some("write"),
        ),
        r(
            "DELETE",
            "/v1/accounts/{name}",
            "/v1/accounts/sales".into(),
            None,
            Some("write"),
        ),
        r(
            "POST",
            "/v1/accounts/{name}/test",
            "/v1/accounts/sales/test".into(),
            None,
            Some("write"),
        ),
        r(
            "POST",
            "/v1/accounts/{name}/check",
            "/v1/accounts/sales/check".into(),
            None,
            Some("write"),
        ),
        r(
            "POST",
            "/v1/accounts/{name}/enable",
            "/v1/accounts/sales/enable".into(),
            None,
            Some("write"),
        ),
        // Recording a replay needs write (a dry run, read).
        r(
            "POST",
            "/v1/accounts/{name}/replay",
            "/v1/accounts/sales/replay".into(),
            j(json!({"dry_run": false})),
            Some("write"),
        ),
        r(
            "GET",
            "/v1/credentials",
            "/v1/credentials".into(),
            None,
            Some("read"),
        ),
        r(
            "POST",
            "/v1/credentials",
            "/v1/credentials".into(),
            j(json!({"name": "c2", "username": "u", "secret": "s"})),
            Some("write"),
        ),
        r(
            "PUT",
            "/v1/credentials/{name}",
            "/v1/credentials/alice".into(),
            j(json!({"username": USER, "secret": PASSWORD})),
            Some("write"),
        ),
        r(
            "DELETE",
            "/v1/credentials/{name}",
            "/v1/credentials/alice".into(),
            None,
            Some("write"),
        ),
        r(
            "POST",
            "/v1/parties/bulk",
            "/v1/parties/bulk".into(),
            j(json!({"parties": [{"kind": "lead", "email": "z@z.example"}]})),
            Some("write"),
        ),
        r(
            "GET",
            "/v1/parties",
            "/v1/parties".into(),
            None,
            Some("read"),
        ),
        r(
            "GET",
            "/v1/parties/{id}",
            format!("/v1/parties/{p}"),
            None,
            Some("read"),
        ),
        r(
            "DELETE",
            "/v1/parties/{id}",
            format!("/v1/parties/{p}"),
            None,
            Some("write"),
        ),
        r(
            "DELETE",
            "/v1/parties/external/{external_id}",
            "/v1/parties/external/crm-1".into(),
            None,
            Some("write"),
        ),
        r(
            "GET",
            "/v1/plugins",
            "/v1/plugins".into(),
            None,
            Some("read"),
        ),
        r(
            "POST",
            "/v1/plugins",
            "/v1/plugins?name=x&role=matcher".into(),
            Some(("application/wasm", b"\0asm".to_vec())),
            Some("admin"),
        ),
        r(
            "GET",
            "/v1/plugins/{name}",
            "/v1/plugins/hostile".into(),
            None,
            Some("read"),
        ),
        r(
            "PATCH",
            "/v1/plugins/{name}",
            "/v1/plugins/hostile".into(),
            j(json!({"deadline_ms": 150})),
            Some("admin"),
        ),
        r(
            "DELETE",
            "/v1/plugins/{name}",
            "/v1/plugins/hostile".into(),
            None,
            Some("admin"),
        ),
        r(
            "GET",
            "/v1/plugins/{name}/versions",
            "/v1/plugins/hostile/versions".into(),
            None,
            Some("read"),
        ),
        r(
            "POST",
            "/v1/plugins/{name}/versions",
            "/v1/plugins/hostile/versions?config=%7B%7D".into(),
            Some(("application/wasm", b"\0asm".to_vec())),
            Some("admin"),
        ),
        r(
            "POST",
            "/v1/plugins/{name}/canary",
            "/v1/plugins/hostile/canary".into(),
            j(json!({"version": 2, "share_percent": 10})),
            Some("admin"),
        ),
        r(
            "POST",
            "/v1/plugins/{name}/promote",
            "/v1/plugins/hostile/promote?version=2".into(),
            None,
            Some("admin"),
        ),
        r(
            "POST",
            "/v1/plugins/{name}/rollback",
            "/v1/plugins/hostile/rollback".into(),
            None,
            Some("admin"),
        ),
        r(
            "PUT",
            "/v1/chain/order",
            "/v1/chain/order".into(),
            j(json!({"names": []})),
            Some("admin"),
        ),
        r(
            "GET",
            "/v1/messages",
            "/v1/messages".into(),
            None,
            Some("read"),
        ),
        r(
            "GET",
            "/v1/messages/{id}",
            format!("/v1/messages/{m}"),
            None,
            Some("read"),
        ),
        r(
            "GET",
            "/v1/messages/{id}/raw",
            format!("/v1/messages/{m}/raw"),
            None,
            Some("read"),
        ),
        r(
            "GET",
            "/v1/messages/{id}/explain",
            format!("/v1/messages/{m}/explain"),
            None,
            Some("read"),
        ),
        r(
            "GET",
            "/v1/quarantine",
            "/v1/quarantine".into(),
            None,
            Some("read"),
        ),
        r(
            "POST",
            "/v1/quarantine/{id}/release",
            format!("/v1/quarantine/{q}/release"),
            j(json!({"action": "unlinked"})),
            Some("write"),
        ),
        r(
            "DELETE",
            "/v1/quarantine/{id}",
            format!("/v1/quarantine/{q}"),
            None,
            Some("write"),
        ),
        r(
            "GET",
            "/v1/webhooks",
            "/v1/webhooks".into(),
            None,
            Some("read"),
        ),
        r(
            "POST",
            "/v1/webhooks",
            "/v1/webhooks".into(),
            j(json!({"url": "http://127.0.0.1:9/other"})),
            Some("admin"),
        ),
        r(
            "GET",
            "/v1/webhooks/{id}",
            format!("/v1/webhooks/{w}"),
            None,
            Some("read"),
        ),
        r(
            "PATCH",
            "/v1/webhooks/{id}",
            format!("/v1/webhooks/{w}"),
            j(json!({"description": "x"})),
            Some("admin"),
        ),
        r(
            "DELETE",
            "/v1/webhooks/{id}",
            format!("/v1/webhooks/{w}"),
            None,
            Some("admin"),
        ),
        r(
            "POST",
            "/v1/webhooks/{id}/rotate-secret",
            format!("/v1/webhooks/{w}/rotate-secret"),
            None,
            Some("admin"),
        ),
        r(
            "POST",
            "/v1/webhooks/{id}/redeliver-dead",
            format!("/v1/webhooks/{w}/redeliver-dead"),
            None,
            Some("write"),
        ),
        r(
            "GET",
            "/v1/webhook-deliveries",
            "/v1/webhook-deliveries".into(),
            None,
            Some("read"),
        ),
        r(
            "POST",
            "/v1/webhook-deliveries/{id}/redeliver",
            format!("/v1/webhook-deliveries/{d}/redeliver"),
            None,
            Some("write"),
        ),
        r(
            "GET",
            "/v1/providers",
            "/v1/providers".into(),
            None,
            Some("read"),
        ),
        // A provider in the bundled table: no outbound request.
        r(
            "GET",
            "/v1/discover",
            "/v1/discover?email=someone%40gmail.com".into(),
            None,
            Some("write"),
        ),
    ]
}

/// Whether the route names one of acme's things (an id or a name in the
/// path), as opposed to a collection of the caller's own tenant.
fn names_a_thing(route: &Route) -> bool {
    route.template.contains('{') && route.scope.is_some()
}

/// What of acme's must never appear in another tenant's answers.
const ACME_SECRETS: [&str; 7] = [
    "acme-hook",
    "ann.lee@acme.example",
    "raj.patel@acme.example",
    "crm-1",
    "\"sales\"",
    "panicked on purpose",
    "tom@elsewhere.example",
];

/// Every route × (no token, a revoked token, another tenant's token, a
/// read-only token on a write route, a tenant token on the operator's
/// routes) gets the right status, and no answer carries acme's data. The
/// matrix covers exactly the routes of the OpenAPI document.
async fn every_route_refuses_the_wrong_caller(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let dovecot = Dovecot::start();
    let serve = ApiServe::start(
        &binary(),
        &db.url,
        &key_file(dir.path()),
        &["--webhook-allow-private-networks"],
    );
    let acme = set_up_acme(&serve, &dovecot).await;
    create_tenant(&serve, "globex").await;
    let (_, globex_token) = issue(&serve, "globex", "crm", "admin").await;
    let globex = serve.client(Some(&globex_token));
    let (revoked_id, revoked_token) = issue(&serve, "acme", "old", "admin").await;
    expect(
        &acme.admin.delete(&format!("/v1/tokens/{revoked_id}")).await,
        200,
    );
    let revoked = serve.client(Some(&revoked_token));
    let anonymous = serve.client(None);
    let garbage = serve.client(Some("itk_AAAAAAAAAAAA_nothing"));
    let operator_no_tenant = operator(&serve);
    let mut operator_elsewhere = operator(&serve);
    operator_elsewhere.tenant = Some("globex".into());

    let routes = routes(&acme);
    // The matrix is the document: every route is in both.
    let doc = serve.client(None).get("/v1/openapi.json").await.json();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let tested: BTreeSet<(String, String)> = routes
        .iter()
        .map(|r| (r.method.to_owned(), r.template.to_owned()))
        .collect();
    assert_eq!(documented, tested, "the matrix and the document differ");

    for route in &routes {
        let call = |c: &Client| {
            let c = c.clone();
            let (method, path, body) = (route.method, route.path.clone(), route.body.clone());
            async move { c.send(method, &path, body).await }
        };
        let what = format!("{} {}", route.method, route.path);
        for (who, client) in [
            ("no token", &anonymous),
            ("revoked", &revoked),
            ("unknown", &garbage),
        ] {
            let r = call(client).await;
            assert_eq!(r.status, 401, "{what} with {who}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
            assert!(r.header("www-authenticate").is_some(), "{what}");
        }
        match route.scope {
            None => {
                // The operator's routes: no tenant token reaches them.
                for client in [&acme.admin, &globex] {
                    let r = call(client).await;
                    assert_eq!(r.status, 403, "{what}: {}", r.text());
                }
            }
            Some(scope) => {
                if scope != "read" {
                    let r = call(&acme.read).await;
                    assert_eq!(r.status, 403, "{what} with a read token: {}", r.text());
                }
                if names_a_thing(route) {
                    for (who, client) in [
                        ("globex", &globex),
                        ("operator in globex", &operator_elsewhere),
                    ] {
                        let r = call(client).await;
                        assert_eq!(r.status, 404, "{what} as {who}: {}", r.text());
                        // The answer may repeat the caller's own path, nothing more.
                        for secret in ACME_SECRETS
                            .iter()
                            .filter(|s| !route.path.contains(s.trim_matches('"')))
                        {
                            assert!(!r.text().contains(secret), "{what} as {who} leaks {secret}");
                        }
                    }
                } else if route.method == "GET" {
                    let r = call(&globex).await;
                    assert_eq!(r.status, 200, "{what} as globex: {}", r.text());
                    for secret in ACME_SECRETS {
                        assert!(
                            !r.text().contains(secret),
                            "{what} as globex leaks {secret}"
                        );
                    }
                }
                // The operator must name a tenant to act in one.
                let r = call(&operator_no_tenant).await;
                assert_eq!(r.status, 422, "{what} as the operator: {}", r.text());
            }
        }
    }
    // None of the refused calls changed acme.
    let v = expect(&acme.read.get("/v1/accounts/sales").await, 200);
    assert_eq!(v["batch_size"], 100, "{v}");
    assert_eq!(
        expect(&acme.read.get("/v1/quarantine").await, 200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        expect(
            &acme.read.get(&format!("/v1/parties/{}", acme.party)).await,
            200
        )["external_id"],
        "crm-1"
    );
    // The revoked token is listed as revoked; secrets never are.
    let tokens = expect(&acme.admin.get("/v1/tokens").await, 200);
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == revoked_id && !t["revoked_at"].is_null())
    );
    assert!(
        !tokens.to_string().contains(&revoked_token[16..]),
        "{tokens}"
    );
}

/// Every resource round-trips, and a bad value is refused with its field
/// named.
async fn resources_round_trip_and_bad_fields_are_named(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let dovecot = Dovecot::start();
    let serve = ApiServe::start(
        &binary(),
        &db.url,
        &key_file(dir.path()),
        &["--api-body-kib", "64", "--webhook-allow-private-networks"],
    );
    let acme = set_up_acme(&serve, &dovecot).await;
    let c = &acme.admin;

    // Accounts.
    let v = expect(&c.get("/v1/accounts/sales").await, 200);
    assert_eq!(v["protocol"], "imap");
    assert_eq!(v["credential"], "alice");
    assert!(!v.to_string().contains(PASSWORD), "{v}");
    assert_eq!(v["state"], "ok", "{v}");
    let v = expect(&c.send("POST", "/v1/accounts/sales/test", None).await, 200);
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"login") && steps.contains(&"folder"), "{v}");
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["ok"] == true),
        "{v}"
    );
    let v = expect(
        &c.json(
            "PATCH",
            "/v1/accounts/sales",
            &json!({ "batch_size": 20, "folders": ["INBOX", "Archive"] }),
        )
        .await,
        200,
    );
    assert_eq!(v["changed"], true);
    assert_eq!(v["account"]["batch_size"], 20);
    let v = expect(
        &c.json("PATCH", "/v1/accounts/sales", &json!({ "batch_size": 20 }))
            .await,
        200,
    );
    assert_eq!(v["changed"], false);
    let v = expect(
        &c.json(
            "PATCH",
            "/v1/accounts/sales",
            &json!({ "proxy": { "host": "127.0.0.1", "port": 1080, "credential": null } }),
        )
        .await,
        200,
    );
    assert_eq!(v["account"]["proxy"]["port"], 1080);
    let v = expect(
        &c.json(
            "PATCH",
            "/v1/accounts/sales",
            &json!({ "proxy": null, "port": null }),
        )
        .await,
        200,
    );
    assert!(
        v["account"]["proxy"].is_null() && v["account"]["port"].is_null(),
        "{v}"
    );
    expect(
        &c.send("POST", "/v1/accounts/sales/enable", None).await,
        200,
    );
    let v = expect(&c.send("POST", "/v1/accounts/sales/check", None).await, 202);
    assert!(v["requested_at"].is_string(), "{v}");

    // Refused fields, each named.
    let pop3 = json!({ "name": "p", "protocol": "pop3", "host": "h", "credential": "alice", "folders": ["X"] });
    refused(&c.json("POST", "/v1/accounts", &pop3).await, 422, "folders");
    for (body, field) in [
        (
            json!({ "name": "b", "protocol": "smtp", "host": "h", "credential": "alice" }),
            "protocol",
        ),
        (
            json!({ "name": "b", "protocol": "imap", "host": "h", "credential": "alice", "port": "x" }),
            "port",
        ),
        (
            json!({ "name": "b", "protocol": "imap", "host": "h", "credential": "alice", "port": 0 }),
            "port",
        ),
        (
            json!({ "name": "b", "protocol": "imap", "host": "", "credential": "alice" }),
            "host",
        ),
        (
            json!({ "name": "b", "protocol": "imap", "host": "h", "credential": "nobody" }),
            "credential",
        ),
        (
            json!({ "name": "b", "protocol": "imap", "host": "h", "credential": "alice", "batch_size": 0 }),
            "batch_size",
        ),
        (
            json!({ "name": "b", "protocol": "imap", "host": "h", "credential": "alice", "colour": "red" }),
            "colour",
        ),
        (
            json!({ "protocol": "imap", "host": "h", "credential": "alice" }),
            "name",
        ),
        (
            json!({ "name": "b", "host": "h", "credential": "alice" }),
            "protocol",
        ),
    ] {
        refused(&c.json("POST", "/v1/accounts", &body).await, 422, field);
    }
    refused(
        &c.json(
            "PATCH",
            "/v1/accounts/sales",
            &json!({ "check_interval_secs": -5 }),
        )
        .await,
        422,
        "check_interval_secs",
    );
    let r = c
        .send(
            "POST",
            "/v1/accounts",
            Some(("application/json", b"{\"name\":".to_vec())),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = c
        .send("POST", "/v1/accounts", Some(("text/plain", b"{}".to_vec())))
        .await;
    assert_eq!(r.status, 415, "{}", r.text());
    let big = json!({ "parties": (0..2000).map(|i| json!({ "kind": "lead", "email": format!("lead{i}@big.example"), "name": "x".repeat(20) })).collect::<Vec<_>>() });
    let r = c.json("POST", "/v1/parties/bulk", &big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    expect(
        &c.json(
            "POST",
            "/v1/accounts",
            &json!({ "name": "sales", "protocol": "imap", "host": "h", "credential": "alice" }),
        )
        .await,
        409,
    );

    // Credentials: write-only secrets.
    expect(
        &c.json(
            "POST",
            "/v1/credentials",
            &json!({ "name": "bob", "username": "bob", "secret": "hunter2-secret" }),
        )
        .await,
        204,
    );
    let v = expect(&c.get("/v1/credentials").await, 200);
    assert!(
        v.to_string().contains("bob") && !v.to_string().contains("hunter2"),
        "{v}"
    );
    expect(
        &c.json(
            "PUT",
            "/v1/credentials/bob",
            &json!({ "username": "bob2", "secret": "x" }),
        )
        .await,
        204,
    );
    refused(
        &c.json(
            "PUT",
            "/v1/credentials/bob",
            &json!({ "username": "", "secret": "x" }),
        )
        .await,
        422,
        "username",
    );
    let r = c.delete("/v1/credentials/alice").await;
    assert_eq!(r.status, 409, "in use: {}", r.text());
    expect(&c.delete("/v1/credentials/bob").await, 204);
    expect(&c.delete("/v1/credentials/bob").await, 404);

    // Directory: upsert by external id, filters, paging, deletes.
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({ "kind": "contact", "email": format!("p{i}@page.example"), "name": format!("Page {i}"), "external_id": format!("page-{i}") }))
        .collect();
    let v = expect(
        &c.json("POST", "/v1/parties/bulk", &json!({ "parties": batch }))
            .await,
        200,
    );
    assert_eq!(v["created"], 25);
    // The same external id with a new address updates, never duplicates.
    let v = expect(
        &c.json("POST", "/v1/parties/bulk", &json!({ "parties": [{ "kind": "contact", "email": "new0@page.example", "external_id": "page-0" }] }))
            .await,
        200,
    );
    assert_eq!(v["updated"], 1, "{v}");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/parties?domain=page.example&limit=10&cursor={c}"),
            None => "/v1/parties?domain=page.example&limit=10".into(),
        };
        let page = expect(&c.get(&path).await, 200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["external_id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25, "{seen:?}");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 25);
    let v = expect(&c.get("/v1/parties?q=PAGE%2012").await, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    let v = expect(
        &c.get("/v1/parties?external_id=page-3&kind=contact").await,
        200,
    );
    let id3 = v["items"][0]["id"].as_str().unwrap().to_owned();
    expect(&c.get(&format!("/v1/parties/{id3}")).await, 200);
    expect(&c.delete(&format!("/v1/parties/{id3}")).await, 204);
    expect(&c.get(&format!("/v1/parties/{id3}")).await, 404);
    expect(&c.delete("/v1/parties/external/page-4").await, 204);
    expect(&c.delete("/v1/parties/external/page-4").await, 404);
    refused(
        &c.json("POST", "/v1/parties/bulk", &json!({ "parties": [{ "kind": "lead", "email": "ok@x.example" }, { "kind": "lead", "email": "not-an-address" }] }))
            .await,
        422,
        "parties[1].email",
    );
    refused(
        &c.json(
            "POST",
            "/v1/parties/bulk",
            &json!({ "parties": [{ "kind": "friend", "email": "a@b.example" }] }),
        )
        .await,
        422,
        "parties[0].kind",
    );
    refused(&c.get("/v1/parties?cursor=abc").await, 422, "cursor");
    refused(&c.get("/v1/parties?kind=enemy").await, 422, "kind");

    // Plugins: upload, configure, order, remove; bad uploads refused.
    let wasm = std::fs::read(plugin("domain_match")).unwrap();
    let v = expect(
        &c.send(
            "POST",
            "/v1/plugins?name=domains2&role=matcher&deadline_ms=200",
            Some(("application/wasm", wasm.clone())),
        )
        .await,
        201,
    );
    assert_eq!(v["deadline_ms"], 200);
    assert_eq!(v["size"], wasm.len());
    refused(
        &c.send(
            "POST",
            "/v1/plugins?name=junk&role=matcher",
            Some(("application/wasm", b"not wasm at all".to_vec())),
        )
        .await,
        422,
        "wasm",
    );
    refused(
        &c.send(
            "POST",
            "/v1/plugins?name=wrongrole&role=unknown-sender",
            Some(("application/wasm", wasm.clone())),
        )
        .await,
        422,
        "role",
    );
    refused(
        &c.send(
            "POST",
            "/v1/plugins?name=x&role=boss",
            Some(("application/wasm", wasm.clone())),
        )
        .await,
        422,
        "role",
    );
    let hostile = std::fs::read(plugin("hostile")).unwrap();
    refused(
        &c.send(
            "POST",
            "/v1/plugins?name=picky&role=matcher&config=%7B%22mode%22%3A%22reject%22%2C%22phase%22%3A%22init%22%7D",
            Some(("application/wasm", hostile)),
        )
        .await,
        422,
        "config",
    );
    // A setting the component declares (its configuration schema), of the
    // wrong type: named before the plugin runs.
    let r = c
        .send(
            "POST",
            "/v1/plugins?name=domains3&role=matcher&config=%7B%22ignore_domains%22%3A%22ourco.example%22%7D",
            Some(("application/wasm", wasm.clone())),
        )
        .await;
    refused(&r, 422, "config.ignore_domains");
    assert!(
        r.text().contains("`ignore_domains` must be an array"),
        "{}",
        r.text()
    );
    refused(
        &c.json("PATCH", "/v1/plugins/domains2", &json!({ "memory_mb": 0 }))
            .await,
        422,
        "memory_mb",
    );
    let v = expect(
        &c.json(
            "PATCH",
            "/v1/plugins/domains2",
            &json!({ "enabled": false, "on_error": "skip" }),
        )
        .await,
        200,
    );
    assert_eq!(v["enabled"], false);
    assert_eq!(v["on_error"], "skip");
    refused(
        &c.json("PUT", "/v1/chain/order", &json!({ "names": ["domains2"] }))
            .await,
        422,
        "names",
    );
    // Versions: one beside the running one (the same component, another
    // configuration), a canary, promote, rollback.
    let v = expect(
        &c.send(
            "POST",
            "/v1/plugins/domains2/versions?config=%7B%22ignore_domains%22%3A%5B%22ourco.example%22%5D%7D",
            Some(("application/wasm", Vec::new())),
        )
        .await,
        201,
    );
    assert_eq!(
        (v["version"].clone(), v["state"].clone()),
        (json!(2), json!("new")),
        "{v}"
    );
    assert_eq!(v["config"]["ignore_domains"][0], "ourco.example", "{v}");
    refused(
        &c.send(
            "POST",
            "/v1/plugins/domains2/versions",
            Some(("application/wasm", b"not wasm at all".to_vec())),
        )
        .await,
        422,
        "wasm",
    );
    for (body, field) in [
        (
            json!({ "version": 2, "accounts": ["nobody"] }),
            "accounts[0]",
        ),
        (json!({ "version": 1, "share_percent": 5 }), "version"),
        (json!({ "version": 7, "share_percent": 5 }), "version"),
        (
            json!({ "version": 2, "share_percent": 150 }),
            "share_percent",
        ),
        (json!({ "version": 2 }), "share_percent"),
    ] {
        refused(
            &c.json("POST", "/v1/plugins/domains2/canary", &body).await,
            422,
            field,
        );
    }
    let v = expect(
        &c.json(
            "POST",
            "/v1/plugins/domains2/canary",
            &json!({ "version": 2, "share_percent": 12.5, "accounts": ["sales"] }),
        )
        .await,
        200,
    );
    assert_eq!(v["active"], 1, "{v}");
    assert_eq!(
        v["canary"],
        json!({ "version": 2, "share_percent": 12.5, "accounts": ["sales"] })
    );
    let v = expect(&c.get("/v1/plugins/domains2").await, 200);
    assert_eq!(
        (v["version"].clone(), v["canary"]["version"].clone()),
        (json!(1), json!(2))
    );
    let v = expect(
        &c.send("POST", "/v1/plugins/domains2/promote", None).await,
        200,
    );
    assert_eq!(v["active"], 2, "{v}");
    assert!(v["canary"].is_null(), "{v}");
    refused(
        &c.send("POST", "/v1/plugins/domains2/promote?version=9", None)
            .await,
        422,
        "version",
    );
    let v = expect(
        &c.send("POST", "/v1/plugins/domains2/rollback", None).await,
        200,
    );
    assert_eq!(
        (v["undid"].clone(), v["from"].clone(), v["to"].clone()),
        (json!("active"), json!(2), json!(1)),
        "{v}"
    );
    let v = expect(&c.get("/v1/plugins/domains2/versions").await, 200);
    let states: Vec<&str> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "rolled-back"], "{v}");
    refused(
        &c.send("POST", "/v1/plugins/domains2/rollback", None).await,
        422,
        "version",
    );
    expect(&c.get("/v1/plugins/nothing/versions").await, 404);

    expect(&c.delete("/v1/plugins/domains2").await, 204);
    expect(&c.get("/v1/plugins/domains2").await, 404);

    // Messages: filters, cursor, detail, raw.
    let v = expect(&c.get("/v1/messages?status=stored").await, 200);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{v}");
    assert!(items.iter().all(|m| m["account_name"] == "sales"));
    let v = expect(
        &c.get(&format!("/v1/messages?party={}", acme.party)).await,
        200,
    );
    assert_eq!(v["items"][0]["subject"], "first", "{v}");
    assert_eq!(v["items"][0]["decided_by"], "exact_match");
    let v = expect(&c.get("/v1/messages?limit=1").await, 200);
    let next = v["next"].as_str().unwrap().to_owned();
    let v2 = expect(
        &c.get(&format!("/v1/messages?limit=1&cursor={next}")).await,
        200,
    );
    assert_ne!(v["items"][0]["id"], v2["items"][0]["id"]);
    let v = expect(&c.get("/v1/messages?since=2026-11-03T00:00:00Z").await, 200);
    assert!(v["items"].as_array().unwrap().is_empty(), "{v}");
    refused(&c.get("/v1/messages?status=lost").await, 422, "status");
    refused(&c.get("/v1/quarantine?cursor=x").await, 422, "cursor");
    refused(&c.get("/v1/quarantine?account=nope").await, 422, "account");
    refused(&c.get("/v1/messages?since=yesterday").await, 422, "since");
    refused(&c.get("/v1/messages?account=nope").await, 422, "account");
    let v = expect(&c.get(&format!("/v1/messages/{}", acme.stored)).await, 200);
    assert_eq!(v["parties"][0]["email"], "ann.lee@acme.example");
    let raw = c.get(&format!("/v1/messages/{}/raw", acme.stored)).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("message/rfc822"));
    assert_eq!(raw.body, mail("Ann Lee <ann.lee@acme.example>", "first"));
    // How it was decided, and a replay of the account with today's chain:
    // the same chain changes nothing.
    let v = expect(
        &c.get(&format!("/v1/messages/{}/explain", acme.stored))
            .await,
        200,
    );
    assert_eq!(v["decided_by"], "exact_match", "{v}");
    assert_eq!(v["recorded"], true, "{v}");
    let last = v["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["plugin"], &last["decided"]),
        (&json!("exact_match"), &json!(true)),
        "{v}"
    );
    assert_eq!(last["component_sha256"].as_str().unwrap().len(), 64, "{v}");
    expect(&c.get("/v1/messages/999999/explain").await, 404);
    let v = expect(
        &c.json("POST", "/v1/accounts/sales/replay", &json!({}))
            .await,
        200,
    );
    assert_eq!(
        (&v["applied"], &v["changed"], &v["links_removed"]),
        (&json!(false), &json!(2), &json!(2)),
        "{v}"
    );
    assert!(
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["now"] == "quarantined" && c["decided_by"] == "hostile"),
        "{v}"
    );
    let still = expect(&c.get(&format!("/v1/messages/{}", acme.stored)).await, 200);
    assert_eq!(
        still["status"], "stored",
        "a dry run changes nothing: {still}"
    );
    refused(
        &c.json(
            "POST",
            "/v1/accounts/sales/replay",
            &json!({"dry_run": "no"}),
        )
        .await,
        422,
        "dry_run",
    );
    expect(&c.get("/v1/messages/999999").await, 404);
    expect(&c.get("/v1/messages/abc").await, 404);

    // Quarantine: drop; a dropped message is gone from every view.
    expect(
        &c.delete(&format!("/v1/quarantine/{}", acme.quarantined))
            .await,
        204,
    );
    expect(
        &c.delete(&format!("/v1/quarantine/{}", acme.quarantined))
            .await,
        404,
    );
    expect(
        &c.get(&format!("/v1/messages/{}", acme.quarantined)).await,
        404,
    );
    refused(
        &c.json(
            "POST",
            &format!("/v1/quarantine/{}/release", acme.stored),
            &json!({ "action": "explode" }),
        )
        .await,
        422,
        "action",
    );

    // Tokens: a tenant admin issues and revokes; a read token cannot
    // issue, and no token issues one stronger than itself.
    let v = expect(
        &c.json(
            "POST",
            "/v1/tokens",
            &json!({ "name": "ci", "scope": "write" }),
        )
        .await,
        201,
    );
    let write = serve.client(v["token"].as_str());
    expect(&write.get("/v1/accounts").await, 200);
    expect(&c.delete(&format!("/v1/tokens/{}", v["id"])).await, 200);
    expect(&write.get("/v1/accounts").await, 401);
    refused(
        &c.json(
            "POST",
            "/v1/tokens",
            &json!({ "name": "x", "scope": "root" }),
        )
        .await,
        422,
        "scope",
    );
    refused(
        &c.json(
            "POST",
            "/v1/tokens",
            &json!({ "name": "", "scope": "read" }),
        )
        .await,
        422,
        "name",
    );
    refused(
        &operator(&serve)
            .json("POST", "/v1/tenants", &json!({ "name": "bad name!" }))
            .await,
        422,
        "name",
    );
    expect(
        &operator(&serve)
            .json("POST", "/v1/tenants", &json!({ "name": "acme" }))
            .await,
        409,
    );
    let v = expect(&operator(&serve).get("/v1/tenants").await, 200);
    assert!(v.to_string().contains("acme"), "{v}");

    // Webhooks: register, change, rotate, see deliveries, remove.
    let v = expect(
        &c.json(
            "POST",
            "/v1/webhooks",
            &json!({ "url": "http://127.0.0.1:9/second", "description": "CRM" }),
        )
        .await,
        201,
    );
    let hook = v["endpoint"]["id"].as_i64().unwrap();
    let first_secret = v["secret"].as_str().unwrap().to_owned();
    let list = expect(&c.get("/v1/webhooks").await, 200);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert!(!list.to_string().contains(&first_secret[6..]), "{list}");
    let v = expect(
        &c.json(
            "PATCH",
            &format!("/v1/webhooks/{hook}"),
            &json!({ "event_types": ["lead.created"], "description": null }),
        )
        .await,
        200,
    );
    assert_eq!(v["event_types"], json!(["lead.created"]), "{v}");
    assert!(v["description"].is_null(), "{v}");
    let v = expect(
        &c.send("POST", &format!("/v1/webhooks/{hook}/rotate-secret"), None)
            .await,
        200,
    );
    assert!(
        v["secret"].as_str().unwrap().starts_with("whsec_") && v["secret"] != first_secret.as_str()
    );
    refused(
        &c.json(
            "POST",
            "/v1/webhooks",
            &json!({ "url": "ftp://127.0.0.1/x" }),
        )
        .await,
        422,
        "url",
    );
    refused(
        &c.json(
            "POST",
            "/v1/webhooks",
            &json!({ "url": "http://127.0.0.1:9/x", "event_types": ["message.eaten"] }),
        )
        .await,
        422,
        "event_types",
    );
    refused(
        &c.get("/v1/webhook-deliveries?state=lost").await,
        422,
        "state",
    );
    let deliveries = expect(&c.get("/v1/webhook-deliveries?state=pending").await, 200);
    assert!(
        deliveries["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "pending"),
        "{deliveries}"
    );
    expect(&c.delete(&format!("/v1/webhooks/{hook}")).await, 204);
    expect(&c.get(&format!("/v1/webhooks/{hook}")).await, 404);

    // Removing the account keeps its messages.
    expect(&c.delete("/v1/accounts/sales").await, 204);
    expect(&c.get("/v1/accounts/sales").await, 404);
    let v = expect(&c.get("/v1/messages").await, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["items"][0]["account_name"].is_null(), "{v}");
}

/// The provider presets and discovery: the table answers, nothing found is
/// a 404 problem listing what was tried, a bad address names the field,
/// and the operator's `--discovery` switch is obeyed (`table`: no outbound
/// request; `off`: refused, presets still listed).
async fn providers_and_discovery(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let serve = ApiServe::start(&binary(), &db.url, &key, &["--discovery", "table"]);
    create_tenant(&serve, "acme").await;
    let (_, write) = issue(&serve, "acme", "crm", "write").await;
    let (_, read) = issue(&serve, "acme", "reader", "read").await;
    let (write, read) = (serve.client(Some(&write)), serve.client(Some(&read)));

    let providers = expect(&read.get("/v1/providers").await, 200);
    let by_id = |id: &str| {
        providers
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {providers}"))
            .clone()
    };
    let gmail = by_id("gmail");
    assert_eq!(gmail["servers"][0]["host"], "imap.gmail.com");
    assert_eq!(gmail["servers"][0]["port"], 993);
    assert_eq!(gmail["servers"][0]["security"], "tls");
    assert_eq!(gmail["servers"][1]["host"], "pop.gmail.com");
    assert_eq!(gmail["oauth2"], "google");
    let proton = by_id("proton-bridge");
    assert_eq!(proton["servers"].as_array().unwrap().len(), 1, "{proton}");
    assert_eq!(proton["servers"][0]["port"], 1143);
    assert_eq!(proton["servers"][0]["security"], "starttls");
    assert_eq!(proton["self_signed_certificate"], true);
    for id in [
        "microsoft",
        "yahoo",
        "icloud",
        "fastmail",
        "zoho",
        "gmx",
        "aol",
        "yandex",
    ] {
        by_id(id);
    }

    let v = expect(
        &write.get("/v1/discover?email=Ann.Lee%40Hotmail.com").await,
        200,
    );
    assert_eq!(v["method"], "table", "{v}");
    assert_eq!(v["provider"], "microsoft", "{v}");
    assert_eq!(v["oauth2"], "microsoft", "{v}");
    assert_eq!(v["servers"][0]["host"], "outlook.office365.com", "{v}");
    assert_eq!(v["servers"][0]["username"], "Ann.Lee@hotmail.com", "{v}");
    assert_eq!(v["tried"][0]["method"], "table", "{v}");
    // Outbound requests on the tenant's behalf need the write scope.
    let r = read.get("/v1/discover?email=ann%40gmail.com").await;
    assert_eq!(r.status, 403, "{}", r.text());

    let r = write.get("/v1/discover?email=x%40nowhere.example").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = r.json();
    assert_eq!(p["type"], "urn:intake:problem:not-found");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("nowhere.example"), "{detail}");
    assert!(detail.contains("network discovery is off"), "{detail}");
    refused(
        &write.get("/v1/discover?email=not-an-address").await,
        422,
        "email",
    );
    refused(&write.get("/v1/discover").await, 422, "email");
    drop(serve);

    let serve = ApiServe::start(&binary(), &db.url, &key, &["--discovery", "off"]);
    let (_, write) = issue(&serve, "acme", "crm2", "write").await;
    let write = serve.client(Some(&write));
    let r = write.get("/v1/discover?email=ann%40gmail.com").await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:intake:problem:refused");
    assert!(r.text().contains("switched off"), "{}", r.text());
    expect(&write.get("/v1/providers").await, 200);
}

/// Per-token rate limits answer 429 with Retry-After, and another token
/// is not held up; unknown routes and methods answer problem documents;
/// the documentation page is served with a strict policy.
async fn limits_documents_and_the_docs_page(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let serve = ApiServe::start(
        &binary(),
        &db.url,
        &key_file(dir.path()),
        &["--api-rate", "1", "--api-burst", "5"],
    );
    create_tenant(&serve, "acme").await;
    let (_, a) = issue(&serve, "acme", "a", "read").await;
    let (_, b) = issue(&serve, "acme", "b", "read").await;
    let (a, b) = (serve.client(Some(&a)), serve.client(Some(&b)));
    let mut statuses = HashMap::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let r = a.get("/v1/accounts").await;
        if r.status == 429 {
            retry_after = r.header("retry-after").map(str::to_owned);
            assert_eq!(r.json()["type"], "urn:intake:problem:rate-limited");
        }
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    assert!(
        statuses.get(&429).copied().unwrap_or(0) >= 5,
        "{statuses:?}"
    );
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    expect(&b.get("/v1/accounts").await, 200);

    let r = b.get("/v1/nothing/here").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["type"], "urn:intake:problem:not-found");
    let r = b.send("PUT", "/v1/messages", None).await;
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:intake:problem:method-not-allowed");
    // CORS is off: no Access-Control headers, even when asked.
    assert!(
        r.headers
            .iter()
            .all(|(n, _)| !n.starts_with("access-control"))
    );

    // A client that starts a request and never finishes its head is
    // closed, not waited for.
    let closed = tokio::time::timeout(Duration::from_secs(90), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&serve.addr).await.unwrap();
        s.write_all(b"GET /v1/accounts HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    })
    .await;
    let answer = closed.expect("a half-sent request was left open");
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let page = serve.client(None).get("/v1/docs").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/v1/docs/docs.js"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let script = serve.client(None).get("/v1/docs/docs.js").await;
    assert_eq!(script.status, 200);
    assert!(script.text().contains("openapi.json"));
    assert!(!script.text().contains(".innerHTML"));
}

/// The OpenAPI document is valid OpenAPI 3.1 (checked by
/// openapi-spec-validator, which `./dev test` installs) and describes
/// every route with its errors.
async fn the_openapi_document_validates(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let serve = ApiServe::start(&binary(), &db.url, &key_file(dir.path()), &[]);
    let r = serve.client(None).get("/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"]["4XX"]["content"]["application/problem+json"].is_object(),
                "{method} {path} documents no problem answer"
            );
        }
    }
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &r.body).unwrap();
    let python = std::env::var("INTAKE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("run {python}: {e} (run ./dev test, which installs the validator)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named"),
        "openapi-spec-validator is not installed for {python}: run ./dev test ({text})"
    );
    assert!(
        out.status.success(),
        "the document does not validate: {text}"
    );
    assert!(text.contains("OK"), "{text}");
}

/// With a certificate and key, the listener speaks HTTPS only.
async fn the_listener_serves_tls(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate(dir.path());
    let serve = ApiServe::start(
        &binary(),
        &db.url,
        &key_file(dir.path()),
        &[
            "--tls-cert",
            certs.cert_pem.to_str().unwrap(),
            "--tls-key",
            certs.key_pem.to_str().unwrap(),
        ],
    );
    assert!(serve.tls, "{}", serve.log());
    let mut client = operator(&serve);
    client.tls = Some(intake_tests::api::tls_connector(&certs.ca_pem));
    expect(&client.get("/v1/tenants").await, 200);
    let plain = tokio::time::timeout(Duration::from_secs(15), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&serve.addr).await.unwrap();
        s.write_all(b"GET /v1/tenants HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("a plain request is dropped, not left hanging");
    assert!(!plain.starts_with(b"HTTP/1.1 200"), "plain HTTP answered");
}

/// Bulk upserts racing each other and an ingest that creates leads leave
/// one party per external id and per (kind, address).
async fn concurrent_upserts_during_ingestion_make_no_duplicates(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let dovecot = Dovecot::start();
    let serve = ApiServe::start(&binary(), &db.url, &key_file(dir.path()), &[]);
    create_tenant(&serve, "acme").await;
    let (_, token) = issue(&serve, "acme", "crm", "admin").await;
    let c = serve.client(Some(&token));
    expect(
        &c.json(
            "POST",
            "/v1/credentials",
            &json!({ "name": "alice", "username": USER, "secret": PASSWORD }),
        )
        .await,
        204,
    );
    for i in 0..40 {
        dovecot.deliver(
            USER,
            "INBOX",
            &mail(
                &format!("Lead {i} <lead{i}@race.example>"),
                &format!("race-{i}"),
            ),
            false,
        );
    }
    let port = dovecot.account(Protocol::Imap, Security::None).port;
    expect(
        &c.json(
            "POST",
            "/v1/accounts",
            &json!({ "name": "sales", "protocol": "imap", "host": "localhost", "port": port,
                     "security": "none", "credential": "alice", "batch_size": 5 }),
        )
        .await,
        201,
    );
    // The CRM pushes the same people, by external id and by address, from
    // several connections while the account's first sync runs.
    let pushes = (0..6).map(|round| {
        let c = c.clone();
        async move {
            let parties: Vec<Value> = (0..40)
                .map(|i| {
                    if i % 2 == 0 {
                        json!({ "kind": "contact", "email": format!("lead{i}@race.example"), "external_id": format!("crm-{i}"), "name": format!("R{round}") })
                    } else {
                        json!({ "kind": "lead", "email": format!("lead{i}@race.example") })
                    }
                })
                .collect();
            let r = c.json("POST", "/v1/parties/bulk", &json!({ "parties": parties })).await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    });
    futures::future::join_all(pushes).await;
    until(Duration::from_secs(60), "the first sync", || {
        let c = c.clone();
        async move {
            let v = c.get("/v1/messages?limit=200").await.json();
            v["items"].as_array().map_or(0, Vec::len) == 40
        }
    })
    .await;
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(n) => format!("/v1/parties?limit=500&cursor={n}"),
            None => "/v1/parties?limit=500".into(),
        };
        let page = expect(&c.get(&path).await, 200);
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    let mut by_external = HashMap::new();
    let mut by_address = HashMap::new();
    for p in &all {
        if let Some(ext) = p["external_id"].as_str() {
            *by_external.entry(ext.to_owned()).or_insert(0) += 1;
        }
        *by_address
            .entry((
                p["kind"].as_str().unwrap().to_owned(),
                p["email"].as_str().unwrap().to_owned(),
            ))
            .or_insert(0) += 1;
    }
    assert_eq!(by_external.len(), 20, "{all:?}");
    assert!(by_external.values().all(|n| *n == 1), "{by_external:?}");
    assert!(by_address.values().all(|n| *n == 1), "{by_address:?}");
}

on_both_databases!(
    every_route_refuses_the_wrong_caller,
    resources_round_trip_and_bad_fields_are_named,
    limits_documents_and_the_docs_page,
    providers_and_discovery,
    the_openapi_document_validates,
    the_listener_serves_tls,
    concurrent_upserts_during_ingestion_make_no_duplicates,
);
