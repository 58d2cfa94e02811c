//! Plugins call a CRM over HTTP (`wasi:http/outgoing-handler`), only where
//! their binding's allow-list lets them, with their own secrets. The CRM is
//! a real HTTP server on 127.0.0.1 started by each test, and the plugin is
//! `plugins/crm-lookup`, built from source: it asks the CRM who the sender
//! is, with the bearer token of its secret `CRM_TOKEN`, and attaches the
//! contact the CRM names.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use intake::directory::{MemoryDirectory, Party, PartyKind};
use intake::domain::Secret;
use intake::plugin::{
    Binding, CallError, Chain, Decision, Disposition, FailurePolicy, LoadedPlugin, PluginRuntime,
    parse_allow_list,
};
use intake::service::Scope;
use intake::service::plugins::{OutboundSettings, PluginSettings};
use intake::store::{BindingRole, MasterKey, NewBinding};
use intake_tests::databases::{Backend, with_database};
use intake_tests::{load, load_binding, plugin, runtime, simple_message};

/// One request the CRM saw.
#[derive(Debug, Clone)]
struct Seen {
    /// Which endpoint.
    path: String,
    /// The `Authorization` header, if any.
    authorization: Option<String>,
}

/// A CRM on 127.0.0.1: `/contacts?email=` names the contact behind an
/// address; `/redirect` sends the client elsewhere; `/slow` answers after
/// ten seconds; `/big` and `/big-chunked` answer with 4 KiB.
struct Crm {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct CrmState {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Where `/redirect` points.
    redirect_to: Arc<Mutex<String>>,
}

impl Crm {
    async fn start() -> Crm {
        Crm::start_redirecting_to(String::new()).await
    }

    async fn start_redirecting_to(redirect_to: String) -> Crm {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = CrmState {
            seen: seen.clone(),
            redirect_to: Arc::new(Mutex::new(redirect_to)),
        };
        let app = axum::Router::new()
            .route("/contacts", axum::routing::get(contacts))
            .route("/redirect", axum::routing::get(redirect))
            .route("/slow", axum::routing::get(slow))
            .route("/big", axum::routing::get(big))
            .route("/big-chunked", axum::routing::get(big_chunked))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Crm {
            port,
            seen,
            _server: server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn record(state: &CrmState, path: &str, headers: &HeaderMap) {
    state.seen.lock().unwrap().push(Seen {
        path: path.into(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
}

async fn contacts(
    State(state): State<CrmState>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    record(&state, "/contacts", &headers);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer tok-123") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // The CRM knows Ann under her alias too.
    match q.get("email").map_or("", String::as_str) {
        "ann.lee@acme.example" | "ann@acme.example" => {
            axum::Json(serde_json::json!({"email": "ann@acme.example"})).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redirect(State(state): State<CrmState>, headers: HeaderMap) -> Response {
    record(&state, "/redirect", &headers);
    let to = state.redirect_to.lock().unwrap().clone();
    (StatusCode::FOUND, [("location", to)]).into_response()
}

async fn slow(State(state): State<CrmState>, headers: HeaderMap) -> Response {
    record(&state, "/slow", &headers);
    tokio::time::sleep(Duration::from_secs(10)).await;
    axum::Json(serde_json::json!({"email": "ann@acme.example"})).into_response()
}

async fn big(State(state): State<CrmState>, headers: HeaderMap) -> Response {
    record(&state, "/big", &headers);
    format!(
        r#"{{"email": "ann@acme.example", "pad": "{}"}}"#,
        "x".repeat(4096)
    )
    .into_response()
}

async fn big_chunked(State(state): State<CrmState>, headers: HeaderMap) -> Response {
    record(&state, "/big-chunked", &headers);
    // A streamed body: no Content-Length, so only the running count can
    // stop it.
    let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 1024])));
    axum::body::Body::from_stream(futures::stream::iter(chunks)).into_response()
}

fn ann_directory() -> Arc<MemoryDirectory> {
    let dir = Arc::new(MemoryDirectory::new());
    dir.insert(
        "t",
        Party {
            kind: PartyKind::Contact,
            id: String::new(),
            email: "ann@acme.example".into(),
            name: Some("Ann Lee".into()),
            company: None,
            external_id: None,
        },
    );
    dir
}

/// The crm-lookup plugin asking `url`, allowed to reach `allowed`, with
/// the token `tok-123`.
fn crm_plugin(
    rt: &PluginRuntime,
    url: &str,
    allowed: &[String],
    deadline_ms: u64,
) -> Arc<LoadedPlugin> {
    let mut b = Binding::from_file(plugin("crm_lookup"));
    b.config = serde_json::json!({ "url": url }).to_string();
    b.limits.deadline = Duration::from_millis(deadline_ms);
    b.limits.allowed_outbound_hosts = parse_allow_list(allowed).unwrap();
    b.secrets = vec![("CRM_TOKEN".into(), Secret::new("tok-123"))];
    load_binding(rt, b)
}

async fn decide(p: Arc<LoadedPlugin>, from: &str) -> Decision {
    Chain::new(vec![p], None)
        .unwrap()
        .run(&simple_message(from, "t"), ann_directory())
        .await
}

/// The error a failed step reported.
fn step_error(d: &Decision) -> (&'static str, String) {
    let e = d.steps[0].error.as_ref().expect("the step failed");
    (e.kind, e.message.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_answers_and_sees_the_bearer_token() {
    let crm = Crm::start().await;
    let rt = runtime();
    let p = crm_plugin(&rt, &crm.url("/contacts"), &[crm.origin()], 5_000);
    let d = decide(p, "Ann Lee <ann.lee@acme.example>").await;
    match &d.disposition {
        Disposition::Attach { parties } => {
            assert_eq!(parties.len(), 1, "{d:?}");
            assert_eq!(parties[0].email, "ann@acme.example");
        }
        other => panic!("expected an attach, got {other:?} ({:?})", d.steps),
    }
    let seen = crm.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer tok-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_or_port_off_the_list_is_refused_before_any_connection() {
    let crm = Crm::start().await;
    let rt = runtime();
    for allowed in [
        // Another port of the same address.
        format!("http://127.0.0.1:{}", crm.port.wrapping_add(1).max(1)),
        // The same port over https.
        format!("https://127.0.0.1:{}", crm.port),
        // The same server under another name.
        format!("http://localhost:{}", crm.port),
    ] {
        let p = crm_plugin(
            &rt,
            &crm.url("/contacts"),
            std::slice::from_ref(&allowed),
            5_000,
        );
        let d = decide(p, "ann.lee@acme.example").await;
        let (kind, message) = step_error(&d);
        assert_eq!(kind, "guest-error", "{allowed}: {message}");
        assert!(
            message.contains("HttpRequestDenied"),
            "{allowed}: {message}"
        );
        assert!(
            matches!(d.disposition, Disposition::Quarantine { .. }),
            "{allowed}: the failure policy keeps the message: {d:?}"
        );
    }
    assert!(crm.seen().is_empty(), "the server saw {:?}", crm.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_a_host_off_the_list_is_refused() {
    let elsewhere = Crm::start().await;
    let crm = Crm::start_redirecting_to(elsewhere.url("/contacts?email=ann%40acme.example")).await;
    let rt = runtime();
    let p = crm_plugin(&rt, &crm.url("/redirect"), &[crm.origin()], 5_000);
    let d = decide(p, "ann.lee@acme.example").await;
    let (_, message) = step_error(&d);
    assert!(message.contains("HttpRequestDenied"), "{message}");
    let first: Vec<String> = crm.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        first,
        ["/redirect"],
        "the allowed server answered the first request"
    );
    assert!(
        elsewhere.seen().is_empty(),
        "the host never followed the redirect, and the plugin's follow-up was refused: {:?}",
        elsewhere.seen()
    );

    // Allowed both ways, the same redirect is followed by the plugin.
    let p = crm_plugin(
        &rt,
        &crm.url("/redirect"),
        &[crm.origin(), elsewhere.origin()],
        5_000,
    );
    let d = decide(p, "ann.lee@acme.example").await;
    assert!(matches!(d.disposition, Disposition::Attach { .. }), "{d:?}");
    assert_eq!(elsewhere.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_runs_into_the_deadline_and_the_message_is_kept() {
    let crm = Crm::start().await;
    let rt = runtime();
    let started = Instant::now();
    let p = crm_plugin(&rt, &crm.url("/slow"), &[crm.origin()], 500);
    let m = simple_message("ann.lee@acme.example", "t");
    let call = Arc::new(intake::plugin::CallContext {
        tenant_id: "t".into(),
        account_id: "a".into(),
        directory: ann_directory(),
        raw: m.raw.clone(),
    });
    let result = p.run_matcher(&m.view, &call).await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(CallError::Timeout(d)) if d == Duration::from_millis(500)),
        "{result:?}"
    );
    assert!(took >= Duration::from_millis(450), "ended early: {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "the 10 s answer was waited for: {took:?}"
    );
    assert_eq!(crm.seen().len(), 1);

    // In a chain: quarantined by default (nothing lost), or skipped so the
    // next plugin decides.
    let d = decide(p, "ann.lee@acme.example").await;
    assert_eq!(step_error(&d).0, "timeout");
    assert!(
        matches!(d.disposition, Disposition::Quarantine { .. }),
        "{d:?}"
    );

    let mut b = Binding::from_file(plugin("crm_lookup"));
    b.config = serde_json::json!({ "url": crm.url("/slow") }).to_string();
    b.limits.deadline = Duration::from_millis(300);
    b.limits.allowed_outbound_hosts = parse_allow_list(&[crm.origin()]).unwrap();
    b.on_error = FailurePolicy::Skip;
    let skipped = load_binding(&rt, b);
    let exact = load(&rt, "exact_match", "{}").await;
    let d = Chain::new(vec![skipped, exact], None)
        .unwrap()
        .run(&simple_message("ann@acme.example", "t"), ann_directory())
        .await;
    assert_eq!(d.steps[0].result, "skipped");
    assert_eq!(d.decided_by.as_deref(), Some("exact_match"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_request_timeout_is_the_plugins_to_handle() {
    // A request timeout shorter than the deadline is an error the plugin
    // gets (and here reports); the call is not a deadline failure.
    let crm = Crm::start().await;
    let rt = runtime();
    let mut b = Binding::from_file(plugin("crm_lookup"));
    b.config = serde_json::json!({ "url": crm.url("/slow") }).to_string();
    b.limits.deadline = Duration::from_millis(5_000);
    b.limits.http_timeout = Duration::from_millis(200);
    b.limits.allowed_outbound_hosts = parse_allow_list(&[crm.origin()]).unwrap();
    let started = Instant::now();
    let d = decide(load_binding(&rt, b), "ann.lee@acme.example").await;
    let (kind, message) = step_error(&d);
    assert_eq!(kind, "guest-error", "{message}");
    assert!(message.contains("Timeout"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_is_refused_cleanly() {
    let crm = Crm::start().await;
    let rt = runtime();
    for (path, expected) in [
        // Announced by Content-Length: refused before the body is read.
        ("/big", "HttpResponseBodySize"),
        // Streamed: cut off once the count passes the cap.
        ("/big-chunked", "reading the response failed"),
    ] {
        let mut b = Binding::from_file(plugin("crm_lookup"));
        b.config = serde_json::json!({ "url": crm.url(path) }).to_string();
        b.limits.deadline = Duration::from_millis(5_000);
        b.limits.http_response_bytes = 1024;
        b.limits.allowed_outbound_hosts = parse_allow_list(&[crm.origin()]).unwrap();
        let d = decide(load_binding(&rt, b), "ann.lee@acme.example").await;
        let (kind, message) = step_error(&d);
        assert_eq!(kind, "guest-error", "{path}: {message}");
        assert!(message.contains(expected), "{path}: {message}");
        assert!(matches!(d.disposition, Disposition::Quarantine { .. }));
    }
    // Under a cap that fits, the same answer is read whole.
    let p = crm_plugin(&rt, &crm.url("/big"), &[crm.origin()], 5_000);
    let d = decide(p, "ann.lee@acme.example").await;
    assert!(matches!(d.disposition, Disposition::Attach { .. }), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_without_a_grant_reaches_nothing() {
    let crm = Crm::start().await;
    let rt = runtime();
    let p = crm_plugin(&rt, &crm.url("/contacts"), &[], 5_000);
    let d = decide(p, "ann.lee@acme.example").await;
    let (_, message) = step_error(&d);
    assert!(message.contains("HttpRequestDenied"), "{message}");
    assert!(crm.seen().is_empty(), "{:?}", crm.seen());
}

/// The environment the crm-lookup plugin in `env` mode reports.
fn reported_env(d: &Decision) -> String {
    match &d.disposition {
        Disposition::Quarantine { reason } => reason.clone(),
        other => panic!("expected the env report, got {other:?}: {:?}", d.steps),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_and_each_binding_sees_only_its_own() {
    with_database(Backend::Sqlite, |db| async move {
        let store = db.store.clone();
        let tenant = store.ensure_tenant("t").await.unwrap();
        let wasm = std::fs::read(plugin("crm_lookup")).unwrap();
        let env_mode = |name: &str| NewBinding {
            name: name.into(),
            role: BindingRole::Matcher,
            wasm: wasm.clone(),
            config: r#"{"mode": "env"}"#.into(),
            limits: intake::plugin::Limits::default(),
            on_error: FailurePolicy::Quarantine,
            enabled: true,
        };
        store
            .add_bindings(tenant, &[env_mode("crm_a"), env_mode("crm_b")], false)
            .await
            .unwrap();
        let key = MasterKey::generate().unwrap();
        let service = intake::service::Service::admin(store.clone()).with_master_key(key.clone());
        let scope = Scope::local(tenant, "t");
        const TOKEN: &str = "tok-alpha-7f3e9c1d2b";
        let set = |name: &str, value: &str| OutboundSettings {
            set_secrets: Some([(name.to_owned(), Secret::new(value))].into()),
            ..OutboundSettings::default()
        };
        let view = service
            .configure_plugin(
                &scope,
                "crm_a",
                None,
                &PluginSettings::default(),
                &OutboundSettings {
                    allowed_outbound_hosts: Some(vec!["https://crm.example.com".into()]),
                    ..set("CRM_TOKEN", TOKEN)
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(view.secrets, ["CRM_TOKEN"]);
        assert_eq!(view.allowed_outbound_hosts, ["https://crm.example.com"]);
        service
            .configure_plugin(
                &scope,
                "crm_b",
                None,
                &PluginSettings::default(),
                &set("OTHER_TOKEN", "tok-beta"),
                None,
            )
            .await
            .unwrap();

        // Listed by name, never by value.
        let listed = serde_json::to_string(&service.plugins(&scope).await.unwrap()).unwrap();
        assert!(
            listed.contains("CRM_TOKEN") && listed.contains("OTHER_TOKEN"),
            "{listed}"
        );
        assert!(
            !listed.contains(TOKEN) && !listed.contains("tok-beta"),
            "{listed}"
        );

        // Not in plain text anywhere in the database's files.
        let path = db
            .url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let dir = std::path::Path::new(&path).parent().unwrap();
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            files += 1;
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "the secret is in plain text in the database"
            );
        }
        assert!(files >= 1);

        // Each binding's instances see their own secrets and no other.
        let runtime = Arc::new(runtime());
        let pipeline = intake::pipeline::Pipeline::new(
            store.clone(),
            runtime,
            intake::pipeline::Options::default(),
        );
        let chain = pipeline.chain(tenant, "t", Some(&key)).await.unwrap();
        let m = simple_message("ann@acme.example", "t");
        let mut seen = Vec::new();
        for p in chain.matchers() {
            let d = Chain::new(vec![p.clone()], None)
                .unwrap()
                .run(&m, ann_directory())
                .await;
            seen.push(reported_env(&d));
        }
        assert!(
            seen[0].contains(&format!("CRM_TOKEN={TOKEN}")),
            "{}",
            seen[0]
        );
        assert!(!seen[0].contains("tok-beta"), "{}", seen[0]);
        assert!(seen[1].contains("OTHER_TOKEN=tok-beta"), "{}", seen[1]);
        assert!(
            !seen[1].contains(TOKEN) && !seen[1].contains("CRM_TOKEN"),
            "{}",
            seen[1]
        );

        // Without the key, or with another, the chain does not load (in an
        // engine that has not loaded it before).
        let pipeline = intake::pipeline::Pipeline::new(
            store.clone(),
            pipeline.runtime().clone(),
            intake::pipeline::Options::default(),
        );
        let error = pipeline
            .chain(tenant, "t", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("master key"), "{error}");
        let other = MasterKey::generate().unwrap();
        let error = pipeline
            .chain(tenant, "t", Some(&other))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot be decrypted"), "{error}");

        // A malformed allow-list entry is refused, saying why.
        let error = service
            .configure_plugin(
                &scope,
                "crm_a",
                None,
                &PluginSettings::default(),
                &OutboundSettings {
                    allowed_outbound_hosts: Some(vec!["crm.example.com/api".into()]),
                    ..OutboundSettings::default()
                },
                None,
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("crm.example.com/api") && error.contains("no scheme"),
            "{error}"
        );

        // Rotating the master key re-seals the secrets; removing the
        // binding removes them.
        let rotated = MasterKey::generate().unwrap();
        store.rotate_master_key(&key, &rotated).await.unwrap();
        assert!(pipeline.chain(tenant, "t", Some(&rotated)).await.is_ok());
        store.remove_binding(tenant, "crm_a").await.unwrap();
        let names = store.plugin_secret_names(tenant).await.unwrap();
        assert_eq!(names.keys().collect::<Vec<_>>(), ["crm_b"]);
    })
    .await;
}

/// Runs the CLI in-process on a store; returns success and its output.
async fn intake_store(db: &str, key: &std::path::Path, args: &[&str]) -> (bool, String) {
    use clap::Parser;
    let mut full = vec![
        "intake",
        "--database-url",
        db,
        "--key-file",
        key.to_str().unwrap(),
    ];
    full.extend_from_slice(args);
    let cli = intake::cli::Cli::try_parse_from(full).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let mut out = Vec::new();
    let result = intake::cli::run(cli, &mut out).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_grants_a_plugin_its_crm_and_mail_is_linked_through_it() {
    let crm = Crm::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("intake.db").display()
    );
    let key = dir.path().join("intake.key");
    std::fs::write(&key, MasterKey::generate().unwrap().to_base64()).unwrap();
    let maildir = dir.path().join("mail");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(
        maildir.join("cur/1.eml"),
        "From: Ann Lee <ann.lee@acme.example>\r\nTo: sales@ourco.example\r\nSubject: order\r\n\
         Message-ID: <crm-1@acme.example>\r\nDate: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\nHello\r\n",
    )
    .unwrap();
    let contacts = dir.path().join("contacts.csv");
    std::fs::write(
        &contacts,
        "email,name,company,kind\nann@acme.example,Ann Lee,Acme,contact\n",
    )
    .unwrap();
    let wasm = plugin("crm_lookup").display().to_string();
    let config = serde_json::json!({ "url": crm.url("/contacts") }).to_string();
    let origin = crm.origin();
    unsafe { std::env::set_var("INTAKE_HTTP_TEST_TOKEN", "tok-123") };
    unsafe { std::env::set_var("INTAKE_HTTP_TEST_MAILBOX", "pw") };
    for args in [
        vec![
            "credential",
            "add",
            "box",
            "--user",
            "u",
            "--secret-env",
            "INTAKE_HTTP_TEST_MAILBOX",
        ],
        vec![
            "account",
            "add",
            "sales",
            "--protocol",
            "imap",
            "--host",
            "localhost",
            "--credential",
            "box",
        ],
        vec!["contact", "import", contacts.to_str().unwrap()],
        vec![
            "plugin",
            "add",
            &wasm,
            "--role",
            "matcher",
            "--config",
            &config,
            "--deadline-ms",
            "5000",
            "--allow-outbound",
            &origin,
        ],
        vec![
            "plugin",
            "configure",
            "crm_lookup",
            "--secret-env",
            "CRM_TOKEN=INTAKE_HTTP_TEST_TOKEN",
        ],
    ] {
        let (ok, out) = intake_store(&db, &key, &args).await;
        assert!(ok, "{args:?}: {out}");
    }
    let (ok, list) = intake_store(&db, &key, &["plugin", "list"]).await;
    assert!(ok, "{list}");
    assert!(list.contains(&format!("outbound HTTP: {origin}")), "{list}");
    assert!(list.contains("secrets: CRM_TOKEN"), "{list}");
    assert!(!list.contains("tok-123"), "{list}");

    // Bad settings are refused with the reason, and change nothing.
    for (args, said) in [
        (
            vec![
                "plugin",
                "configure",
                "crm_lookup",
                "--allow-outbound",
                "ftp://crm.example.com",
            ],
            "http or https",
        ),
        (
            vec![
                "plugin",
                "configure",
                "crm_lookup",
                "--secret-env",
                "CRM_TOKEN",
            ],
            "NAME=VAR",
        ),
        (
            vec![
                "plugin",
                "configure",
                "crm_lookup",
                "--secret-env",
                "crm-token=INTAKE_HTTP_TEST_TOKEN",
            ],
            "environment variable name",
        ),
    ] {
        let (ok, out) = intake_store(&db, &key, &args).await;
        assert!(!ok && out.contains(said), "{args:?}: {out}");
    }

    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "import",
            "--maildir",
            maildir.to_str().unwrap(),
            "--account",
            "sales",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let seen = crm.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer tok-123"));
    let (_, why) = intake_store(&db, &key, &["inbox", "sales"]).await;
    assert!(
        why.contains("Ann Lee (contact)"),
        "linked to the contact the CRM named: {why}"
    );
}
