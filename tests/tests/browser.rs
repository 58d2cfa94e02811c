//! The console in a real browser: Debian's chromium driven by playwright-core
//! (`tests/browser/console.mjs`), against a real `intake serve` with a real
//! Dovecot behind it. This side builds the world — two tenants, a contact,
//! a message held in quarantine by a failing plugin, a hostile message
//! waiting in the mailbox — and the script plays the admin: sign in, a new
//! account from a preset, Test settings, check now, the inbox, the message,
//! a release, and another tenant's session refused. With
//! `INTAKE_SCREENSHOTS=DIR` the script saves the main screens there
//! (`./dev screenshots` refreshes docs/screenshots/).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use intake::fetch::{Protocol, Security};
use intake_tests::api::{ApiServe, Client, sqlite_store, tenant_token};
use intake_tests::servers::{Dovecot, PASSWORD, USER};
use intake_tests::{HOSTILE_MAIL, plugin, root};
use serde_json::json;

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_intake-under-test"))
}

async fn ok(client: &Client, method: &str, path: &str, body: serde_json::Value) {
    let r = client.json(method, path, &body).await;
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let scripts = root().join("tests/browser");
    assert!(
        scripts.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run `./dev test` (it runs `npm ci` there)",
        scripts.display()
    );
    let chromium = std::env::var("INTAKE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no {chromium}: `./dev test` installs Debian's chromium"
    );

    let dovecot = Dovecot::start();
    dovecot.deliver(USER, "INBOX", HOSTILE_MAIL.as_bytes(), false);
    dovecot.deliver(
        "bob",
        "INBOX",
        b"From: Ann Lee <ann.lee@acme.example>\r\nTo: support@ourco.example\r\n\
Subject: Held for the browser test\r\nMessage-ID: <held@test.example>\r\n\r\nPlease call me.\r\n",
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let (key, db) = sqlite_store(dir.path());
    let serve = ApiServe::start(&binary(), &db, &key, &[]);
    let acme_token = tenant_token(&serve, "acme").await;
    let globex_token = tenant_token(&serve, "globex").await;
    let acme = serve.client(Some(&acme_token));
    ok(
        &acme,
        "POST",
        "/v1/credentials",
        json!({ "name": "alice", "username": USER, "secret": PASSWORD }),
    )
    .await;
    ok(
        &acme,
        "POST",
        "/v1/credentials",
        json!({ "name": "bob", "username": "bob", "secret": "bobpw" }),
    )
    .await;
    ok(
        &acme,
        "POST",
        "/v1/parties/bulk",
        json!({ "parties": [{ "kind": "contact", "email": "ann.lee@acme.example", "name": "Ann Lee", "company": "Acme" }] }),
    )
    .await;

    // A failing plugin first: the support mailbox's message is held.
    let r = acme
        .send(
            "POST",
            "/v1/plugins?name=hostile&role=matcher&config=%7B%22mode%22%3A%22panic%22%7D",
            Some((
                "application/wasm",
                std::fs::read(plugin("hostile")).unwrap(),
            )),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let chain = acme.get("/v1/plugins").await.json();
    let mut names: Vec<String> = chain
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.rotate_right(1);
    ok(&acme, "PUT", "/v1/chain/order", json!({ "names": names })).await;
    let port = dovecot
        .account(Protocol::Imap, Security::None)
        .port
        .unwrap();
    ok(
        &acme,
        "POST",
        "/v1/accounts",
        json!({ "name": "support", "protocol": "imap", "host": "localhost", "port": port,
                "security": "none", "credential": "bob", "check_interval_secs": 3600 }),
    )
    .await;
    let r = acme
        .send("POST", "/v1/accounts/support/check?wait_secs=60", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let started = Instant::now();
    while acme.get("/v1/quarantine").await.json()["items"]
        .as_array()
        .map_or(0, Vec::len)
        == 0
    {
        assert!(started.elapsed() < Duration::from_secs(30), "nothing held");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The plugin is fixed (removed): re-running the chain now stores it.
    let r = acme.delete("/v1/plugins/hostile").await;
    assert!((200..300).contains(&r.status), "{}", r.text());

    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("node");
        cmd.arg("console.mjs")
            .current_dir(&scripts)
            .env("INTAKE_URL", format!("http://{}", serve.addr))
            .env("INTAKE_TOKEN_ACME", &acme_token)
            .env("INTAKE_TOKEN_GLOBEX", &globex_token)
            .env("INTAKE_DOVECOT_PORT", port.to_string())
            .env("INTAKE_CHROMIUM", &chromium);
        let output = cmd
            .output()
            .expect("run node (./dev test installs Node.js)");
        (output, serve)
    })
    .await
    .unwrap();
    let (output, serve) = output;
    assert!(
        output.status.success(),
        "browser test failed:\n{}\n{}\nengine log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        serve.log()
    );
}
