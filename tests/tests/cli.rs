//! `intake plugin test`, the plugin author's offline loop, run through the
//! real command-line code on the bundled sample mail.

use clap::Parser;
use intake::cli::{Cli, run};
use intake_tests::{plugin, root};

/// Runs the CLI in-process; returns its error text (if any) and its JSON lines.
async fn intake(args: &[&str]) -> (Result<(), String>, Vec<serde_json::Value>) {
    let cli = Cli::try_parse_from(std::iter::once("intake").chain(args.iter().copied()))
        .expect("arguments parse");
    let mut out = Vec::new();
    let result = run(cli, &mut out)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:#}"));
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (result, lines)
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn runs_the_bundled_chain_on_sample_mail() {
    let plugins: Vec<String> = [
        "auto_reply_guard",
        "thread_match",
        "exact_match",
        "domain_match",
        "unknown_sender",
    ]
    .iter()
    .map(|p| path(&plugin(p)))
    .collect();
    let mail = path(&root().join("samples/maildir"));
    let contacts = path(&root().join("samples/contacts.csv"));
    let mut args: Vec<&str> = vec!["plugin", "test"];
    args.extend(plugins.iter().map(String::as_str));
    args.extend([
        "--message",
        &mail,
        "--contacts",
        &contacts,
        "--config",
        r#"exact_match={"fold_plus": true, "ignore": ["sales@ourco.example"]}"#,
        "--config",
        r#"domain_match={"ignore_domains": ["ourco.example"]}"#,
    ]);
    let (result, lines) = intake(&args).await;
    result.unwrap();
    assert_eq!(lines.len(), 13, "one JSON object per sample message");
    let by_file = |suffix: &str| {
        lines
            .iter()
            .find(|l| l["file"].as_str().unwrap().ends_with(suffix))
            .unwrap()
            .clone()
    };

    let known = by_file("01-known-contact.eml");
    assert_eq!(known["decided_by"], "exact_match");
    assert_eq!(known["disposition"]["kind"], "attach");
    assert_eq!(
        known["disposition"]["parties"][0]["external_id"],
        "crm-1001"
    );
    assert!(
        known["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["micros"].as_u64().is_some())
    );

    assert_eq!(
        by_file("04-reply-from-home.eml")["decided_by"],
        "thread_match"
    );
    assert_eq!(by_file("06-bounce.eml")["disposition"]["kind"], "discard");
    let lead = by_file("08-unknown-company.eml");
    assert_eq!(lead["disposition"]["lead"]["company"], "Northwind Traders");
    // The lead created from message 08 is known by message 10.
    assert_eq!(
        by_file("10-lead-follow-up.eml")["decided_by"],
        "exact_match"
    );
    let broken = by_file("13-not-mail.eml");
    assert_eq!(broken["disposition"]["kind"], "quarantine");
    assert!(
        broken["disposition"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("unparseable")
    );
}

#[tokio::test]
async fn load_and_init_failures_fail_the_command() {
    let exact = path(&plugin("exact_match"));
    let mail = path(&root().join("samples/maildir/cur/01-known-contact.eml"));
    let (r, _) = intake(&[
        "plugin",
        "test",
        &exact,
        "--message",
        &mail,
        "--config",
        r#"exact_match={"fields": []}"#,
    ])
    .await;
    assert!(
        r.unwrap_err()
            .contains("exact_match rejected its configuration: `fields` is empty")
    );

    let (r, _) = intake(&[
        "plugin",
        "test",
        &exact,
        "--message",
        &mail,
        "--config",
        "exact_match={not json",
    ])
    .await;
    assert!(r.unwrap_err().contains("not valid JSON"));

    let (r, _) = intake(&[
        "plugin",
        "test",
        &exact,
        "--message",
        &mail,
        "--config",
        "typo={}",
    ])
    .await;
    assert!(r.unwrap_err().contains("no plugin named \"typo\""));

    let policy = path(&plugin("unknown_sender"));
    let both = path(&plugin("hostile"));
    let (r, _) = intake(&["plugin", "test", &policy, &both, "--message", &mail]).await;
    assert!(r.unwrap_err().contains("export the unknown-sender role"));

    let (r, _) = intake(&["plugin", "test", "/nonexistent.wasm", "--message", &mail]).await;
    assert!(
        r.unwrap_err()
            .contains("cannot read plugin file /nonexistent.wasm")
    );
}

/// Runs the CLI with a store and key file; returns (success, output).
async fn intake_store(db: &str, key: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut full = vec![
        "intake",
        "--database-url",
        db,
        "--key-file",
        key.to_str().unwrap(),
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

#[tokio::test]
async fn a_failing_plugin_quarantines_and_release_reruns_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("intake.db").display()
    );
    let key = dir.path().join("intake.key");
    std::fs::write(&key, "nZ8y6b1Ttxv3Lkz1yE6P6k2m8D3mQ0b5Xw7cJ4hR2aU=").unwrap();
    let maildir = path(&root().join("samples/maildir"));
    let contacts = path(&root().join("samples/contacts.csv"));
    let hostile = path(&plugin("hostile"));
    let exact = path(&plugin("exact_match"));
    unsafe { std::env::set_var("INTAKE_CLI_TEST_SECRET", "s3cret") };
    for args in [
        vec![
            "credential",
            "add",
            "box",
            "--user",
            "u",
            "--secret-env",
            "INTAKE_CLI_TEST_SECRET",
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
        vec!["contact", "import", &contacts],
        vec![
            "plugin",
            "add",
            &hostile,
            "--role",
            "matcher",
            "--config",
            r#"{"mode": "panic"}"#,
        ],
        vec!["plugin", "add", &exact, "--role", "matcher"],
    ] {
        let (ok, out) = intake_store(&db, &key, &args).await;
        assert!(ok, "{args:?}: {out}");
    }
    let (ok, out) = intake_store(&db, &key, &["credential", "list"]).await;
    assert!(
        ok && out.contains("box") && !out.contains("s3cret"),
        "{out}"
    );

    // Every message is kept, in quarantine, with the plugin's name.
    let (ok, out) = intake_store(
        &db,
        &key,
        &["import", "--maildir", &maildir, "--account", "sales"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("quarantined   13"), "{out}");
    let (_, list) = intake_store(&db, &key, &["quarantine", "list"]).await;
    assert!(
        list.contains("hostile") && list.contains("panicked on purpose"),
        "{list}"
    );

    // Fix the chain, then release: re-run, or attach by hand.
    assert!(
        intake_store(&db, &key, &["plugin", "remove", "hostile"])
            .await
            .0
    );
    let (_, inbox) = intake_store(&db, &key, &["inbox", "sales", "--quarantined"]).await;
    let id_of = |from: &str| {
        inbox
            .lines()
            .find(|l| l.contains(from))
            .and_then(|l| l.split_whitespace().next())
            .unwrap()
            .to_string()
    };
    let ann = id_of("ann.lee@acme.example");
    // Why it is held: the first plugin failed, and its failure decided.
    let (_, why) = intake_store(&db, &key, &["message", "explain", &ann, "--json"]).await;
    let why: serde_json::Value = serde_json::from_str(&why).unwrap();
    assert_eq!(why["decided_by"], "hostile", "{why}");
    assert_eq!(why["steps"][0]["result"], "failed", "{why}");
    assert_eq!(why["steps"][0]["error_kind"], "trap", "{why}");
    assert_eq!(why["steps"][0]["decided"], true, "{why}");
    let (ok, out) = intake_store(&db, &key, &["quarantine", "release", &ann, "--rerun"]).await;
    assert!(ok && out.contains("linked to 1 party"), "{out}");
    // The re-run's decision replaces the recorded one.
    let (_, why) = intake_store(&db, &key, &["message", "explain", &ann, "--json"]).await;
    let why: serde_json::Value = serde_json::from_str(&why).unwrap();
    assert_eq!(why["decided_by"], "exact_match", "{why}");
    assert_eq!(why["steps"][0]["plugin"], "exact_match", "{why}");
    assert_eq!(why["status"], "stored", "{why}");
    let tom = id_of("tom.baker@acme.example");
    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "quarantine",
            "release",
            &tom,
            "--attach",
            "raj.patel@acme.example",
        ],
    )
    .await;
    assert!(ok && out.contains("linked to 1 party"), "{out}");
    let (_, inbox) = intake_store(
        &db,
        &key,
        &["inbox", "sales", "--contact", "ann.lee@acme.example"],
    )
    .await;
    assert!(
        inbox.contains("Quote for 40 licences") && inbox.contains("Ann Lee (contact)"),
        "{inbox}"
    );
    let (_, shown) = intake_store(&db, &key, &["message", "show", &ann]).await;
    assert!(
        shown.contains("status:      stored") && shown.contains("linked:      contact Ann Lee"),
        "{shown}"
    );
}

/// Issue 14: a failed account in `intake fetch` comes with the same hint
/// Test settings gives (here: TLS on a port that speaks plain IMAP).
#[tokio::test]
async fn a_failed_fetch_prints_the_hint_test_settings_gives() {
    use intake_tests::hostile::{Fault, Hostile};
    let server = Hostile::imap(Fault::None, 1).await;
    let port = server.addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("intake.db").display()
    );
    let key = dir.path().join("intake.key");
    std::fs::write(&key, "nZ8y6b1Ttxv3Lkz1yE6P6k2m8D3mQ0b5Xw7cJ4hR2aU=").unwrap();
    let exact = path(&plugin("exact_match"));
    unsafe { std::env::set_var("INTAKE_CLI_TEST_HINT_SECRET", "s3cret") };
    for args in [
        vec![
            "credential",
            "add",
            "box",
            "--user",
            "u",
            "--secret-env",
            "INTAKE_CLI_TEST_HINT_SECRET",
        ],
        vec![
            "account",
            "add",
            "sales",
            "--protocol",
            "imap",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--security",
            "tls",
            "--credential",
            "box",
        ],
        vec!["plugin", "add", &exact, "--role", "matcher"],
    ] {
        let (ok, out) = intake_store(&db, &key, &args).await;
        assert!(ok, "{args:?}: {out}");
    }
    let (ok, out) = intake_store(&db, &key, &["fetch"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED:") && out.contains("TLS"), "{out}");
    assert!(
        out.contains("hint:") && out.contains("does not seem to speak TLS"),
        "{out}"
    );
}

/// Tenants and API tokens from the command line: a token is printed once,
/// listed by its prefix and scope only, and revoked; a token works against
/// the store it was made in, and stops working when revoked.
#[tokio::test]
async fn tenants_and_tokens_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("intake.db").display()
    );
    let key = dir.path().join("intake.key");
    std::fs::write(&key, "nZ8y6b1Ttxv3Lkz1yE6P6k2m8D3mQ0b5Xw7cJ4hR2aU=").unwrap();
    let (ok, out) = intake_store(&db, &key, &["tenant", "add", "acme"]).await;
    assert!(ok && out.contains("added tenant acme"), "{out}");
    let (ok, out) = intake_store(&db, &key, &["tenant", "add", "bad name"]).await;
    assert!(!ok && out.contains("invalid name"), "{out}");
    let (ok, out) = intake_store(&db, &key, &["tenant", "list"]).await;
    assert!(ok && out.lines().any(|l| l == "acme"), "{out}");

    let (ok, token) = intake_store(
        &db,
        &key,
        &[
            "--tenant", "acme", "token", "create", "crm", "--scope", "write",
        ],
    )
    .await;
    let token = token.trim().to_owned();
    assert!(ok && token.starts_with("itk_"), "{token}");
    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "--tenant", "acme", "token", "create", "x", "--scope", "root",
        ],
    )
    .await;
    assert!(
        !ok && out.contains("expected read, write or admin"),
        "{out}"
    );

    let (ok, list) = intake_store(&db, &key, &["--tenant", "acme", "token", "list"]).await;
    assert!(ok, "{list}");
    let row = list.lines().find(|l| l.contains("crm")).unwrap();
    assert!(row.contains("write") && row.contains(&token[..17]), "{row}");
    assert!(!list.contains(&token[17..]), "the secret is listed: {list}");

    // The token opens the tenant through the service layer, until revoked.
    let store = intake::store::Store::connect(&db).await.unwrap();
    let service = intake::service::Service::admin(store.clone());
    match service.authenticate(&token, None, None).await.unwrap() {
        intake::service::Principal::Tenant(scope) => {
            assert_eq!(scope.tenant_name(), "acme");
            assert_eq!(scope.access(), intake::store::TokenScope::Write);
        }
        other => panic!("{other:?}"),
    }
    let id = row.split_whitespace().next().unwrap();
    let (ok, out) = intake_store(&db, &key, &["--tenant", "acme", "token", "revoke", id]).await;
    assert!(ok, "{out}");
    assert!(matches!(
        service.authenticate(&token, None, None).await,
        Err(intake::service::ServiceError::Unauthorized)
    ));
    // Another tenant sees none of acme's tokens.
    let (ok, list) = intake_store(&db, &key, &["--tenant", "other", "token", "create", "o"]).await;
    assert!(ok, "{list}");
    let (_, list) = intake_store(&db, &key, &["--tenant", "other", "token", "list"]).await;
    assert!(!list.contains("crm"), "{list}");
}

/// Pinning from the command line: Test settings refuses a self-signed
/// certificate and names its fingerprint; pinning that fingerprint makes the
/// account work; a pinned account cannot also skip verification.
#[tokio::test]
async fn a_certificate_is_pinned_from_the_command_line() {
    use intake_tests::servers::{Dovecot, DovecotOptions, PASSWORD, USER};
    let server = Dovecot::start_with(DovecotOptions {
        self_signed: true,
        ..DovecotOptions::default()
    });
    server.deliver(
        USER,
        "INBOX",
        b"From: a@b.example\r\nSubject: pinned\r\n\r\nhi\r\n",
        false,
    );
    let pin = server.certs.pin().to_string();
    let port = server.imaps_port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("intake.db").display()
    );
    let key = dir.path().join("intake.key");
    std::fs::write(&key, "nZ8y6b1Ttxv3Lkz1yE6P6k2m8D3mQ0b5Xw7cJ4hR2aU=").unwrap();
    unsafe { std::env::set_var("INTAKE_CLI_TEST_PIN_SECRET", PASSWORD) };
    for args in [
        vec![
            "credential",
            "add",
            "box",
            "--user",
            USER,
            "--secret-env",
            "INTAKE_CLI_TEST_PIN_SECRET",
        ],
        vec![
            "account",
            "add",
            "private",
            "--protocol",
            "imap",
            "--host",
            "localhost",
            "--port",
            &port,
            "--security",
            "tls",
            "--credential",
            "box",
        ],
    ] {
        let (ok, out) = intake_store(&db, &key, &args).await;
        assert!(ok, "{args:?}: {out}");
    }
    let (ok, out) = intake_store(&db, &key, &["account", "test", "private"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&pin) && out.contains(&format!("--pin-certificate {pin}")),
        "{out}"
    );

    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "account",
            "edit",
            "private",
            "--pin-certificate",
            "sha256:nonsense",
        ],
    )
    .await;
    assert!(
        !ok && out.contains("--pin-certificate") && out.contains("64 hex digits"),
        "{out}"
    );
    let (ok, out) = intake_store(
        &db,
        &key,
        &["account", "edit", "private", "--pin-certificate", &pin],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = intake_store(&db, &key, &["account", "show", "private"]).await;
    assert!(
        ok && out.contains(&format!("\"pinned_certificate\": \"{pin}\"")),
        "{out}"
    );
    let (ok, out) = intake_store(&db, &key, &["account", "test", "private"]).await;
    assert!(
        ok && out.contains("verified by this account's pin"),
        "{out}"
    );
    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "account",
            "edit",
            "private",
            "--verify-certificate",
            "false",
        ],
    )
    .await;
    assert!(!ok && out.contains("remove the pin"), "{out}");

    let exact = path(&plugin("exact_match"));
    let (ok, out) = intake_store(&db, &key, &["plugin", "add", &exact, "--role", "matcher"]).await;
    assert!(ok, "{out}");
    let (ok, out) = intake_store(&db, &key, &["fetch"]).await;
    assert!(ok, "{out}");
    let (ok, out) = intake_store(&db, &key, &["inbox", "private"]).await;
    assert!(ok && out.contains("pinned"), "{out}");

    // Removing the pin brings the refusal back.
    let (ok, out) = intake_store(
        &db,
        &key,
        &["account", "edit", "private", "--pin-certificate", "none"],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = intake_store(&db, &key, &["account", "test", "private"]).await;
    assert!(!ok && out.contains("itself a CA certificate"), "{out}");
}

/// Presets and discovery from the command line, on providers of the
/// bundled table (no network): `account providers`, `account discover`,
/// `account add --provider` and `--email … --discover`, options given
/// winning over what is filled.
#[tokio::test]
async fn accounts_from_presets_and_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("intake.db").display()
    );
    let key = dir.path().join("intake.key");
    std::fs::write(&key, "nZ8y6b1Ttxv3Lkz1yE6P6k2m8D3mQ0b5Xw7cJ4hR2aU=").unwrap();
    let (ok, out) = intake_store(&db, &key, &["account", "providers"]).await;
    assert!(ok, "{out}");
    let gmail = out.lines().find(|l| l.starts_with("gmail ")).unwrap();
    assert!(gmail.contains("imap.gmail.com:993 tls"), "{gmail}");
    assert!(gmail.contains("pop.gmail.com:995 tls"), "{gmail}");
    for id in [
        "microsoft",
        "yahoo",
        "icloud",
        "fastmail",
        "zoho",
        "gmx",
        "aol",
        "yandex",
        "proton-bridge",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{id} "))),
            "{id}: {out}"
        );
    }

    let (ok, out) = intake_store(&db, &key, &["account", "discover", "ann@me.com"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("found by the bundled provider table"), "{out}");
    assert!(out.contains("imap.mail.me.com:993"), "{out}");
    assert!(
        out.contains("user ann "),
        "iCloud's user name is the local part: {out}"
    );
    let (ok, out) = intake_store(
        &db,
        &key,
        &["account", "discover", "ann@gmail.com", "--json"],
    )
    .await;
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["method"], "table");
    assert_eq!(v["servers"][0]["host"], "imap.gmail.com");
    let (ok, out) = intake_store(&db, &key, &["account", "discover", "not an address"]).await;
    assert!(!ok && out.contains("email"), "{out}");

    unsafe { std::env::set_var("INTAKE_CLI_DISCOVER_SECRET", "s3cret") };
    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "credential",
            "add",
            "box",
            "--user",
            "u",
            "--secret-env",
            "INTAKE_CLI_DISCOVER_SECRET",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "account",
            "add",
            "g",
            "--provider",
            "gmail",
            "--credential",
            "box",
            "--auto-check",
            "false",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let show = |name: &'static str| {
        let (db, key) = (db.clone(), key.clone());
        async move {
            let (ok, out) = intake_store(&db, &key, &["account", "show", name]).await;
            assert!(ok, "{out}");
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        }
    };
    let g = show("g").await;
    assert_eq!(g["protocol"], "imap", "{g}");
    assert_eq!(g["host"], "imap.gmail.com", "{g}");
    assert_eq!(g["port"], 993, "{g}");
    assert_eq!(g["security"], "tls", "{g}");

    // Options given win; the rest comes from the provider's POP3 server.
    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "account",
            "add",
            "p",
            "--email",
            "ann@outlook.com",
            "--discover",
            "--protocol",
            "pop3",
            "--port",
            "1995",
            "--credential",
            "box",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let p = show("p").await;
    assert_eq!(p["protocol"], "pop3", "{p}");
    assert_eq!(p["host"], "outlook.office365.com", "{p}");
    assert_eq!(p["port"], 1995, "{p}");

    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "account",
            "add",
            "x",
            "--provider",
            "nope",
            "--credential",
            "box",
        ],
    )
    .await;
    assert!(
        !ok && out.contains("--provider nope: unknown provider; known: gmail"),
        "{out}"
    );
    let (ok, out) = intake_store(
        &db,
        &key,
        &[
            "account",
            "add",
            "y",
            "--email",
            "ann@icloud.com",
            "--discover",
            "--protocol",
            "pop3",
            "--credential",
            "box",
        ],
    )
    .await;
    assert!(
        !ok && out.contains("iCloud Mail offers no pop3 server"),
        "{out}"
    );
}
