//! The admin console over real HTTP against a real `intake serve` with a
//! real Dovecot behind its account: signing in (cookie flags), the pages a
//! tenant sees, another tenant's session refused on every page and form
//! (also by URL), CSRF and foreign-origin posts refused, field errors named
//! at their field, Test settings step by step, and a message carrying
//! script, event handlers, `javascript:` links and CSS tricks shown inert.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use intake::fetch::{Protocol, Security};
use intake_tests::api::{ApiServe, Client, Response, sqlite_store, tenant_token};
use intake_tests::servers::{Dovecot, PASSWORD, USER};
use serde_json::json;

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_intake-under-test"))
}

/// A browser-like session: the cookie and the page's CSRF token.
struct Browser {
    client: Client,
    cookie: Option<String>,
}

impl Browser {
    fn new(serve: &ApiServe) -> Self {
        Browser {
            client: serve.client(None),
            cookie: None,
        }
    }

    fn headers(&self) -> Vec<(&str, String)> {
        self.cookie
            .as_ref()
            .map(|c| vec![("Cookie", c.clone())])
            .unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Response {
        let headers = self.headers();
        let extra: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.client.send_with("GET", path, &extra, None).await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)], more: &[(&str, &str)]) -> Response {
        let body: String = form_body(fields);
        let headers = self.headers();
        let mut extra: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        extra.extend_from_slice(more);
        self.client
            .send_with(
                "POST",
                path,
                &extra,
                Some(("application/x-www-form-urlencoded", body.into_bytes())),
            )
            .await
    }

    async fn sign_in(&mut self, token: &str) -> Response {
        let r = self.post("/login", &[("token", token)], &[]).await;
        if let Some(set) = r.header("set-cookie") {
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        r
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await.text();
        let marker = "name=\"csrf\" value=\"";
        let start = page
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf in {page}"))
            + marker.len();
        page[start..].split('"').next().unwrap().to_owned()
    }
}

fn form_body(fields: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        out.append_pair(k, v);
    }
    out.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_tenant_its_own_pages_and_nothing_runs_from_mail() {
    let dovecot = Dovecot::start();
    dovecot.deliver(USER, "INBOX", intake_tests::HOSTILE_MAIL.as_bytes(), false);
    let dir = tempfile::tempdir().unwrap();
    let (key, db) = sqlite_store(dir.path());
    let serve = ApiServe::start(&binary(), &db, &key, &[]);
    let acme_token = tenant_token(&serve, "acme").await;
    let globex_token = tenant_token(&serve, "globex").await;
    let acme = serve.client(Some(&acme_token));
    let r = acme
        .json(
            "POST",
            "/v1/credentials",
            &json!({ "name": "alice", "username": USER, "secret": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = acme
        .json(
            "POST",
            "/v1/parties/bulk",
            &json!({ "parties": [{ "kind": "contact", "email": "ann.lee@acme.example", "name": "Ann Lee" }] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Signing in.
    let mut browser = Browser::new(&serve);
    let r = browser.get("/accounts").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    let r = browser.get("/login").await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let r = browser.sign_in("itk_wrong_token").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(browser.cookie.is_none());
    let r = browser.sign_in(&acme_token).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let r = browser.get("/accounts").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("No accounts yet"), "{}", r.text());

    // A new account: a field error is named at its field, then it saves.
    let csrf = browser.csrf("/accounts/new").await;
    let port = dovecot
        .account(Protocol::Imap, Security::None)
        .port
        .unwrap()
        .to_string();
    let mut fields = vec![
        ("csrf", csrf.as_str()),
        ("name", "sales"),
        ("protocol", "imap"),
        ("host", "localhost"),
        ("port", "not-a-port"),
        ("security", "none"),
        ("credential", "alice"),
        ("auth", "login"),
        ("verify_certificate", "on"),
        ("keep_on_server", "on"),
        ("auto_check", "on"),
        ("check_interval_secs", "3600"),
        ("enabled", "on"),
        ("folders", "INBOX"),
        ("mode", "new"),
        ("max_message_mb", "50"),
        ("batch_size", "100"),
    ];
    let r = browser.post("/accounts/new", &fields, &[]).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let page = r.text();
    let at_port = page.find("id=\"port-error\">").unwrap();
    assert!(
        page[at_port..].starts_with("id=\"port-error\">a whole number"),
        "{page}"
    );
    assert!(
        page.contains("value=\"localhost\""),
        "what was typed stays: {page}"
    );
    fields[4].1 = &port;
    let r = browser.post("/accounts/new", &fields, &[]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = browser.get(r.header("location").unwrap()).await;
    assert!(
        r.text().contains("saved sales") && r.text().contains("without TLS"),
        "{}",
        r.text()
    );

    // Test settings: every step, in order.
    let csrf = browser.csrf("/accounts/sales/test").await;
    let r = browser
        .post("/accounts/sales/test", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    let mut at = 0;
    for step in ["resolve", "connect", "capabilities", "login", "folder"] {
        let found = page[at..]
            .find(&format!("data-step=\"{step}\""))
            .unwrap_or_else(|| panic!("no {step} step after byte {at}: {page}"));
        at += found;
    }
    assert!(page.contains("Every step passed"), "{page}");

    // Check now, then the inbox shows the message linked to its contact.
    let csrf = browser.csrf("/accounts").await;
    let r = browser
        .post("/accounts/sales/check", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let started = Instant::now();
    let inbox = loop {
        let page = browser.get("/accounts/sales/inbox").await.text();
        if page.contains("Quarterly numbers") {
            break page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ingested: {page}\n{}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        inbox.contains("ann.lee@acme.example") && inbox.contains(">linked<"),
        "{inbox}"
    );
    // Mail text is escaped, never markup.
    assert!(
        !inbox.contains("<script>alert") && !inbox.contains("<img src=x"),
        "{inbox}"
    );
    assert!(inbox.contains("&#60;img src=x onerror=alert"), "{inbox}");
    let id = inbox
        .split("href=\"/messages/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let r = browser.get(&format!("/messages/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("sandbox=\"\"") && page.contains(&format!("/messages/{id}/body")),
        "{page}"
    );
    // How the chain decided it: each plugin, and an arrow at the one that
    // decided.
    assert!(
        page.contains("How the chain decided") && page.contains("<tr class=\"decided\"><td>→ "),
        "{page}"
    );
    let r = browser.get(&format!("/messages/{id}/body")).await;
    let frame_csp = r.header("content-security-policy").unwrap().to_owned();
    assert!(
        frame_csp.contains("sandbox") && frame_csp.contains("img-src data:"),
        "{frame_csp}"
    );
    let body = r.text();
    assert!(
        body.contains("Visible text") && body.contains("overlay"),
        "{body}"
    );
    for inert in [
        "<script",
        "onload",
        "onerror",
        "javascript:",
        "<style",
        "<iframe",
        "<form",
        "style=",
    ] {
        assert!(!body.contains(inert), "{inert} in {body}");
    }

    // Plugins: the bundled chain (installed at the first check), a refused
    // configuration shown, an order change, an upload and a removal.
    let page = browser.get("/plugins").await.text();
    assert!(page.contains("data-name=\"exact_match\""), "{page}");
    let order = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = order(acme.get("/v1/plugins").await.json());
    let csrf = browser.csrf("/plugins").await;
    let r = browser
        .post(
            "/plugins/exact_match/configure",
            &[("csrf", &csrf), ("config", "{ not json"), ("enabled", "on")],
            &[],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("id=\"plugin-problem\">exact_match:"),
        "{}",
        r.text()
    );
    // Saving the settings as they are (the JSON spaced otherwise) makes no
    // new version; a new configuration does, and the page names it.
    let save = |config: &'static str| {
        let (browser, csrf) = (&browser, csrf.clone());
        async move {
            let form = [
                ("csrf", csrf.as_str()),
                ("config", config),
                ("enabled", "on"),
                ("deadline_ms", "100"),
                ("memory_mb", "64"),
                ("on_error", "quarantine"),
            ];
            let r = browser
                .post("/plugins/exact_match/configure", &form, &[])
                .await;
            assert_eq!(r.status, 303, "{}", r.text());
        }
    };
    save("{ }").await;
    assert_eq!(
        acme.get("/v1/plugins/exact_match").await.json()["version"],
        1
    );
    save(r#"{"fold_plus": true}"#).await;
    assert_eq!(
        acme.get("/v1/plugins/exact_match").await.json()["version"],
        2
    );
    let page = browser.get("/plugins").await.text();
    assert!(page.contains("version 2"), "{page}");
    let second = before[1].clone();
    let r = browser
        .post(
            &format!("/plugins/{second}/move"),
            &[("csrf", &csrf), ("direction", "up")],
            &[],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let after = order(acme.get("/v1/plugins").await.json());
    assert_eq!(after[0], second, "{before:?} → {after:?}");
    let boundary = "intake-test-boundary";
    let mut body = Vec::new();
    for (name, value) in [
        ("csrf", csrf.as_str()),
        ("name", "hostile"),
        ("role", "matcher"),
        ("config", r#"{"mode": "panic"}"#),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"component\"; filename=\"hostile.wasm\"\r\nContent-Type: application/wasm\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(&std::fs::read(intake_tests::plugin("hostile")).unwrap());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let cookie = browser.cookie.clone().unwrap();
    let r = browser
        .client
        .send_with(
            "POST",
            "/plugins",
            &[("Cookie", &cookie)],
            Some((
                &format!("multipart/form-data; boundary={boundary}"),
                body.clone(),
            )),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(order(acme.get("/v1/plugins").await.json()).contains(&"hostile".to_string()));
    // Without the session's token, an upload is refused.
    let forged = String::from_utf8_lossy(&body)
        .replace(&csrf, "forged")
        .into_bytes();
    let r = browser
        .client
        .send_with(
            "POST",
            "/plugins",
            &[("Cookie", &cookie)],
            Some((&format!("multipart/form-data; boundary={boundary}"), forged)),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = browser
        .post("/plugins/hostile/remove", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(!order(acme.get("/v1/plugins").await.json()).contains(&"hostile".to_string()));

    // Contacts and leads: searched by name or address.
    let page = browser.get("/contacts?q=ann").await.text();
    assert!(
        page.contains("ann.lee@acme.example") && page.contains("Ann Lee"),
        "{page}"
    );
    let page = browser.get("/contacts?q=nobody-here").await.text();
    assert!(page.contains("Nobody found"), "{page}");
    // CSV import: every row checked first, a bad one named by its line.
    let csrf = browser.csrf("/contacts").await;
    let upload = |csv: &str| {
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"csv\"; filename=\"c.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(csv.as_bytes());
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        body
    };
    for (csv, status) in [
        (
            "email,name,company,kind\nraj@acme.example,Raj,Acme,lead\nnot-an-address,X,,contact\n",
            422,
        ),
        (
            "email,name,company,kind\nraj@acme.example,Raj,Acme,lead\n",
            303,
        ),
    ] {
        let r = browser
            .client
            .send_with(
                "POST",
                "/contacts/import",
                &[("Cookie", &cookie)],
                Some((
                    &format!("multipart/form-data; boundary={boundary}"),
                    upload(csv),
                )),
            )
            .await;
        assert_eq!(r.status, status, "{}", r.text());
        if status == 422 {
            assert!(r.text().contains("line 3"), "{}", r.text());
        }
    }
    let page = browser.get("/contacts?kind=lead").await.text();
    assert!(page.contains("raj@acme.example"), "{page}");

    // Webhooks: an endpoint the engine may not call is refused in words.
    let page = browser.get("/webhooks").await.text();
    assert!(page.contains("No endpoints yet"), "{page}");
    let csrf = browser.csrf("/webhooks").await;
    let r = browser
        .post(
            "/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "http://127.0.0.1:9/hook"),
                ("events", ""),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 422, "{}\n{}", r.text(), serve.log());
    assert!(r.text().contains("class=\"problem\""), "{}", r.text());

    // CSRF: a missing or wrong token, or another site's origin, is refused.
    let r = browser
        .post("/accounts/sales/check", &[("csrf", "forged")], &[])
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let csrf = browser.csrf("/accounts").await;
    let r = browser
        .post(
            "/accounts/sales/disable",
            &[("csrf", &csrf)],
            &[("Origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());

    // Another tenant's session sees none of it, by page, URL or form.
    let mut other = Browser::new(&serve);
    assert_eq!(other.sign_in(&globex_token).await.status, 303);
    let page = other.get("/accounts").await.text();
    assert!(!page.contains("sales"), "{page}");
    for path in [
        "/accounts/sales/inbox".to_string(),
        "/accounts/sales/edit".to_string(),
        format!("/messages/{id}"),
        format!("/messages/{id}/body"),
    ] {
        let r = other.get(&path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains("Quarterly"), "{path}");
    }
    let other_csrf = other.csrf("/accounts").await;
    for path in [
        "/accounts/sales/disable",
        "/accounts/sales/check",
        "/accounts/sales/test",
    ] {
        let r = other.post(path, &[("csrf", &other_csrf)], &[]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    // acme's session token does not work in globex's session either way.
    let r = other
        .post("/accounts/sales/disable", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = acme.get("/v1/accounts/sales").await;
    assert_eq!(
        r.json()["enabled"],
        true,
        "nothing was switched off: {}",
        r.text()
    );

    // Signing out ends the session.
    let csrf = browser.csrf("/accounts").await;
    let r = browser.post("/logout", &[("csrf", &csrf)], &[]).await;
    assert_eq!(r.status, 303);
    let r = browser.get("/accounts").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
}

/// A new account from a preset, and "Sign in with …" from the console: the
/// provider's redirect comes back to the console without the session cookie
/// and is matched by its state, once; the credential then signs in to a
/// Dovecot that takes OAuth2 bearer tokens only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_fill_the_form_and_oauth2_signs_in_from_the_console() {
    use intake_tests::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthServer};
    use intake_tests::servers::DovecotOptions;
    let oauth = OAuthServer::start().await;
    let dovecot = Dovecot::start_oauth2(DovecotOptions::default(), &oauth.introspection_url());
    dovecot.deliver(
        USER,
        "INBOX",
        b"From: a@b.example\r\nSubject: via oauth\r\nMessage-ID: <o@x>\r\n\r\nhi\r\n",
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let (key, db) = sqlite_store(dir.path());
    let status = std::process::Command::new(binary())
        .args([
            "oauth",
            "add",
            "local",
            "--kind",
            "generic",
            "--client-id",
            CLIENT_ID,
            "--client-secret-env",
            "INTAKE_TEST_CLIENT_SECRET",
            "--auth-url",
            &format!("{}/authorize", oauth.base()),
            "--token-url",
            &format!("{}/token", oauth.base()),
            "--scope",
            "mail",
        ])
        .env("INTAKE_DATABASE_URL", &db)
        .env("INTAKE_KEY_FILE", &key)
        .env("INTAKE_TEST_CLIENT_SECRET", CLIENT_SECRET)
        .status()
        .unwrap();
    assert!(status.success());
    let serve = ApiServe::start(&binary(), &db, &key, &[]);
    let token = tenant_token(&serve, "acme").await;
    let mut browser = Browser::new(&serve);
    assert_eq!(browser.sign_in(&token).await.status, 303);

    // A preset fills protocol, host, port and security.
    let page = browser.get("/accounts/new?provider=gmail").await.text();
    assert!(
        page.contains("value=\"imap.gmail.com\"")
            && page.contains("value=\"993\"")
            && page.contains("Filled from the Gmail preset"),
        "{page}"
    );
    assert!(page.contains("OAuth2"), "{page}");

    // Sign in with the provider.
    let csrf = browser.csrf("/credentials").await;
    let r = browser
        .post(
            "/credentials/authorize",
            &[
                ("csrf", &csrf),
                ("provider", "local"),
                ("name", "alice-oauth"),
                ("username", USER),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to_provider = r.header("location").unwrap().to_owned();
    assert!(
        to_provider.starts_with(&oauth.base()) && to_provider.contains("code_challenge="),
        "{to_provider}"
    );
    // The provider signs in at once and redirects back to the console.
    let provider = Client {
        addr: oauth.base().trim_start_matches("http://").to_owned(),
        token: None,
        tenant: None,
        tls: None,
    };
    let path = &to_provider[oauth.base().len()..];
    let r = provider.get(path).await;
    assert_eq!(r.status, 302, "{}", r.text());
    let back = r.header("location").unwrap().to_owned();
    let back_path = back
        .split_once("/oauth/callback")
        .map(|(_, q)| format!("/oauth/callback{q}"))
        .unwrap();
    // No cookie on the way back (cross-site): the state is enough, once.
    let r = serve.client(None).get(&back_path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("credential alice-oauth is stored"),
        "{}",
        r.text()
    );
    let r = serve.client(None).get(&back_path).await;
    assert_eq!(r.status, 400, "a state is good once: {}", r.text());
    let page = browser.get("/credentials").await.text();
    assert!(page.contains("OAuth2 (local)"), "{page}");

    // An account with it checks mail over XOAUTH2.
    let csrf = browser.csrf("/accounts/new").await;
    let port = dovecot.imaps_port.to_string();
    let fields = vec![
        ("csrf", csrf.as_str()),
        ("name", "sales"),
        ("protocol", "imap"),
        ("host", "localhost"),
        ("port", port.as_str()),
        ("security", "tls"),
        ("credential", "alice-oauth"),
        ("auth", "xoauth2"),
        ("pinned_certificate", ""),
        ("keep_on_server", "on"),
        ("auto_check", "on"),
        ("check_interval_secs", "3600"),
        ("enabled", "on"),
        ("folders", "INBOX"),
        ("mode", "new"),
        ("max_message_mb", "50"),
        ("batch_size", "100"),
    ];
    // Without verification the self-made test CA is not needed; the form
    // says that is a warned choice.
    let r = browser.post("/accounts/new", &fields, &[]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let csrf = browser.csrf("/accounts/sales/test").await;
    let page = browser
        .post("/accounts/sales/test", &[("csrf", &csrf)], &[])
        .await
        .text();
    assert!(
        page.contains("data-step=\"login\"") && page.contains("logged in"),
        "{page}"
    );
}

/// The text of attribute `name` in `page` (the first one).
fn attribute<'a>(page: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("{name}=\"");
    let start = page.find(&marker)? + marker.len();
    page[start..].split('"').next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_settings_shows_each_step_as_it_is_made() {
    // A server that takes the connection and never greets: resolve and
    // connect pass at once, then the check waits on the capabilities step
    // until its 10 s limit, long enough to watch it run.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for stream in silent.incoming().take(2) {
            kept.push(stream);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let dir = tempfile::tempdir().unwrap();
    let (key, db) = sqlite_store(dir.path());
    let serve = ApiServe::start(&binary(), &db, &key, &[]);
    let token = tenant_token(&serve, "acme").await;
    let api = serve.client(Some(&token));
    let r = api
        .json(
            "POST",
            "/v1/credentials",
            &json!({ "name": "alice", "username": USER, "secret": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = api
        .json(
            "POST",
            "/v1/accounts",
            &json!({
                "name": "quiet", "protocol": "imap", "host": "127.0.0.1", "port": port,
                "security": "none", "credential": "alice", "auto_check": false
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mut browser = Browser::new(&serve);
    assert_eq!(browser.sign_in(&token).await.status, 303);

    // As htmx posts it: the answer comes before the check is over, with
    // the steps made so far and the step under way, and polls for more.
    let csrf = browser.csrf("/accounts/quiet/test").await;
    let started = Instant::now();
    let r = browser
        .post(
            "/accounts/quiet/test",
            &[("csrf", &csrf)],
            &[("HX-Request", "true")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the answer waited for the check: {:?}",
        started.elapsed()
    );
    let page = r.text();
    assert!(
        !page.contains("Every step passed") && !page.contains("A step failed"),
        "{page}"
    );
    let poll = attribute(&page, "hx-get")
        .unwrap_or_else(|| panic!("no polling in {page}"))
        .to_owned();
    assert!(poll.starts_with("/accounts/quiet/test/"), "{poll}");

    // Polled: resolve and connect are shown passed while capabilities runs.
    let mut seen_running = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let r = browser.get(&poll).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.text();
        if page.contains("data-running=\"capabilities\"") {
            assert!(
                page.contains("data-step=\"resolve\"") && page.contains("data-step=\"connect\""),
                "{page}"
            );
            assert!(
                attribute(&page, "hx-get").is_some(),
                "still polling: {page}"
            );
            seen_running = true;
        }
        if page.contains("A step failed") || page.contains("Every step passed") {
            break page;
        }
        assert!(Instant::now() < deadline, "the run never ended: {page}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        seen_running,
        "the capabilities step was never shown running"
    );
    // Over: the failed step with its hint, and no more polling.
    let at = last.find("data-step=\"capabilities\"").expect(&last);
    assert!(last[at..].contains("failed"), "{last}");
    assert!(last.contains("What to do:"), "{last}");
    assert!(attribute(&last, "hx-get").is_none(), "{last}");

    // The run is this session's: another session (even of the same
    // tenant) cannot read it, nor can an unsigned visitor.
    let mut other = Browser::new(&serve);
    assert_eq!(other.sign_in(&token).await.status, 303);
    assert_eq!(other.get(&poll).await.status, 404);
    let r = Browser::new(&serve).get(&poll).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounts_page_shows_a_long_first_sync_as_it_goes() {
    const MESSAGES: usize = 1_000;
    let dovecot = Dovecot::start();
    for n in 0..MESSAGES {
        let raw = format!(
            "From: Ann <ann@acme.example>\r\nTo: sales@example.com\r\nSubject: order {n}\r\n\
             Message-ID: <sync-{n}@acme.example>\r\n\r\nbody {n}\r\n"
        );
        dovecot.deliver(USER, "INBOX", raw.as_bytes(), false);
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, db) = sqlite_store(dir.path());
    let serve = ApiServe::start(&binary(), &db, &key, &["--progress-ms", "100"]);
    let token = tenant_token(&serve, "acme").await;
    let api = serve.client(Some(&token));
    let r = api
        .json(
            "POST",
            "/v1/credentials",
            &json!({ "name": "alice", "username": USER, "secret": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let mut browser = Browser::new(&serve);
    assert_eq!(browser.sign_in(&token).await.status, 303);
    let port = dovecot
        .account(Protocol::Imap, Security::None)
        .port
        .unwrap();
    // Due at once: the first sync starts at the next tick.
    let r = api
        .json(
            "POST",
            "/v1/accounts",
            &json!({
                "name": "big", "protocol": "imap", "host": "localhost", "port": port,
                "security": "none", "credential": "alice", "batch_size": 20,
                "check_interval_secs": 3600
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // While it runs: how far it has got, a progress bar, and the table
    // refreshing itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = loop {
        let page = browser.get("/accounts").await.text();
        if page.contains("<progress") {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "no progress shown during the sync: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        running.contains("checking: ") && running.contains(" of 1,000 messages stored"),
        "{running}"
    );
    assert!(running.contains("hx-trigger=\"every 2s\""), "{running}");

    // Over: no progress left, and the page stops refreshing.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = api.get("/v1/accounts/big").await;
        let v = r.json();
        if v["health"]["last_ingested"].as_u64() == Some(MESSAGES as u64) && v["activity"].is_null()
        {
            assert!(v["health"]["progress"].is_null(), "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "the sync never ended: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = browser.get("/accounts").await.text();
    assert!(
        !page.contains("<progress") && !page.contains("every 2s"),
        "{page}"
    );
}
