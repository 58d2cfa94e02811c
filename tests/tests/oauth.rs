//! OAuth2 sign-in against a real Dovecot whose `oauth2` passdb asks a local
//! authorization server (tests/src/oauth.rs) about each bearer token:
//! XOAUTH2 and OAUTHBEARER over IMAP and POP3; an expired access token is
//! refreshed before a check; a revoked grant disables the account with the
//! reason "re-authorize", and signing in again (the authorization-code flow
//! with PKCE, driven through `intake credential authorize`) brings it back.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use intake::domain::Auth;
use intake::fetch::check::test_account;
use intake::fetch::{FailureClass, Protocol, Secret, Security};
use intake::pipeline::{Options, Pipeline};
use intake::service::policy::RetryPolicy;
use intake::service::{Scope, Service, ServiceOptions};
use intake::store::{AccountConfig, BindingRole, HealthState, MasterKey, ProviderKind, Store};
use intake_tests::databases::Db;
use intake_tests::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthServer};
use intake_tests::on_both_databases;
use intake_tests::servers::{Dovecot, DovecotOptions, USER};
use intake_tests::{add_plugins, runtime};

const TENANT: &str = "acme";

fn message(subject: &str) -> Vec<u8> {
    format!("From: Ann <ann@customer.example>\r\nTo: alice@ourco.example\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x>\r\n\r\nhello\r\n")
        .into_bytes()
}

#[tokio::test]
async fn bearer_tokens_sign_in_over_imap_and_pop3_and_a_bad_one_is_an_auth_failure() {
    let oauth = OAuthServer::start().await;
    let server = Dovecot::start_oauth2(DovecotOptions::default(), &oauth.introspection_url());
    server.deliver(USER, "INBOX", &message("bearer"), false);
    for protocol in [Protocol::Imap, Protocol::Pop3] {
        for security in [Security::Tls, Security::Starttls] {
            for auth in [Auth::Xoauth2, Auth::Oauthbearer] {
                let mut account = server.account(protocol, security);
                account.auth = auth;
                account.password = Secret::new(oauth.access_token(USER));
                let r = test_account(&account).await;
                assert!(
                    r.ok(),
                    "{protocol:?}/{security:?}/{auth:?}: {r:#?}\n{}",
                    server.log()
                );
                let source = intake::fetch::open(&account).await.unwrap();
                source.close().await.unwrap();

                // An unknown token: refused as an authentication failure
                // (the failure challenge answered, then the server's no).
                account.password = Secret::new("not-a-token");
                let e = intake::fetch::open(&account).await.err().unwrap();
                assert_eq!(e.class(), FailureClass::Auth, "{protocol:?}/{auth:?}: {e}");
            }
        }
    }
    assert!(oauth.introspections() >= 16);
}

/// A store with an OAuth2 provider pointing at `oauth`, a credential
/// granted for alice, an account on `server` using it, and a chain.
async fn setup(db: &Db, oauth: &OAuthServer, server: &Dovecot, key: &MasterKey) -> Service {
    let store = &db.store;
    let tenant = store.ensure_tenant(TENANT).await.unwrap();
    let service = Service::new(
        store.clone(),
        Arc::new(Pipeline::new(
            store.clone(),
            Arc::new(runtime()),
            Options::default(),
        )),
        Some(key.clone()),
        ServiceOptions {
            worker_id: "oauth-test".into(),
            lease: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            progress_every: Duration::from_secs(2),
        },
    );
    service
        .put_oauth_provider(intake::service::oauth::ProviderSpec {
            name: "local".into(),
            kind: ProviderKind::Generic,
            client_id: CLIENT_ID.into(),
            client_secret: Some(Secret::new(CLIENT_SECRET)),
            auth_url: Some(format!("{}/authorize", oauth.base())),
            token_url: Some(format!("{}/token", oauth.base())),
            scopes: vec!["mail".into()],
        })
        .await
        .unwrap();
    store
        .put_oauth_credential(
            tenant,
            "alice-oauth",
            USER,
            "local",
            &Secret::new(oauth.grant(USER)),
            None,
            key,
        )
        .await
        .unwrap();
    let mut config = AccountConfig::new(
        "sales",
        Protocol::Imap,
        "localhost",
        Security::Tls,
        "alice-oauth",
    );
    config.port = Some(server.imaps_port);
    config.ca_file = Some(server.certs.ca_pem.clone());
    store.add_account(tenant, &config).await.unwrap();
    add_plugins(
        store,
        tenant,
        &[("exact_match", BindingRole::Matcher, "{}")],
    )
    .await;
    service
}

async fn check(service: &Service, store: &Store) -> intake::service::CheckReport {
    let tenant = store.ensure_tenant(TENANT).await.unwrap();
    let id = store.account_id(tenant, "sales").await.unwrap();
    service
        .check_account(tenant, TENANT, id, "sales")
        .await
        .unwrap()
        .expect("not leased elsewhere")
}

async fn tokens_are_refreshed_and_a_revoked_grant_disables_only_that_account(db: Db) {
    let oauth = OAuthServer::start().await;
    let server = Dovecot::start_oauth2(DovecotOptions::default(), &oauth.introspection_url());
    let key = MasterKey::generate().unwrap();
    let service = setup(&db, &oauth, &server, &key).await;
    let store = &db.store;
    let tenant = store.ensure_tenant(TENANT).await.unwrap();

    // No access token yet: the first check gets one, and signs in with it.
    server.deliver(USER, "INBOX", &message("first"), false);
    let report = check(&service, store).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.summary.as_ref().unwrap().fetched, 1);
    assert_eq!(oauth.refreshes(), 1);
    // Still valid: the next check reuses it.
    check(&service, store).await;
    assert_eq!(oauth.refreshes(), 1);

    // Expired (at the provider, and by the stored expiry): refreshed
    // before the next check, which goes through.
    oauth.expire_access_tokens();
    oauth.set_lifetime(Duration::from_secs(60)); // inside the refresh margin
    let credential = store.credential(tenant, "alice-oauth", &key).await.unwrap();
    store
        .save_access_token(
            tenant,
            "alice-oauth",
            credential.oauth.unwrap().access_token.as_ref().unwrap(),
            chrono::Utc::now() - chrono::Duration::seconds(1),
            None,
            &key,
        )
        .await
        .unwrap();
    server.deliver(USER, "INBOX", &message("second"), false);
    let report = check(&service, store).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.summary.as_ref().unwrap().fetched, 1);
    assert_eq!(oauth.refreshes(), 2);

    // A second account on another (password) login is not touched by what
    // follows.
    store
        .add_credential(tenant, "other", "bob", &Secret::new("bobpw"), &key)
        .await
        .unwrap();
    let mut other =
        AccountConfig::new("other", Protocol::Imap, "localhost", Security::Tls, "other");
    other.port = Some(server.imaps_port);
    other.ca_file = Some(server.certs.ca_pem.clone());
    store.add_account(tenant, &other).await.unwrap();

    // The user revokes the grant: the next refresh fails with
    // invalid_grant and the account is disabled at once, saying why.
    oauth.revoke(USER);
    let report = check(&service, store).await;
    let error = report.error.as_ref().expect("a failed check").to_string();
    assert!(error.contains("re-authorize"), "{error}");
    assert_eq!(report.health.state, HealthState::Disabled);
    let reason = report.health.disabled_reason.clone().unwrap();
    assert!(reason.starts_with("re-authorize:"), "{reason}");
    let scope = Scope::local(tenant, TENANT);
    let status = service.account_status(&scope, "other").await.unwrap();
    assert_ne!(status.health.state, HealthState::Disabled);
    // Test settings says the same, at the login step.
    let r = service.test_account(&scope, "sales").await.unwrap();
    let last = r.steps.last().unwrap();
    assert!(
        !last.ok && last.name == "login" && last.detail.contains("re-authorize"),
        "{r:#?}"
    );

    // Signing in again: the authorization-code flow with PKCE, as the
    // console's button and `intake credential authorize` run it.
    let pending = service
        .begin_authorization(
            &scope,
            "alice-oauth",
            USER,
            "local",
            "http://127.0.0.1:9/callback",
        )
        .await
        .unwrap();
    let (code, state) = follow_authorization(&pending.url).await;
    // A forged state is refused.
    assert!(
        service
            .complete_authorization(&scope, &pending, &code, "forged")
            .await
            .is_err()
    );
    service
        .complete_authorization(&scope, &pending, &code, &state)
        .await
        .unwrap();
    let status = service.account_status(&scope, "sales").await.unwrap();
    assert_ne!(status.health.state, HealthState::Disabled, "{status:?}");
    server.deliver(USER, "INBOX", &message("third"), false);
    let report = check(&service, store).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.summary.as_ref().unwrap().fetched, 1);
}

/// Plays the browser: asks the authorization endpoint (which signs in at
/// once) and reads the code and state from its redirect.
async fn follow_authorization(url: &str) -> (String, String) {
    let client = reqwest_free_get(url).await;
    let location = url::Url::parse(&client).unwrap();
    let get = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    (get("code"), get("state"))
}

/// A GET over a plain TCP connection, returning the `Location` header.
async fn reqwest_free_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(url).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    socket
        .write_all(
            format!("GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    answer
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no redirect: {answer}"))
}

on_both_databases!(tokens_are_refreshed_and_a_revoked_grant_disables_only_that_account);

/// A writer the test can read while the command runs.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn intake(
    db: &str,
    key: &std::path::Path,
    args: &[&str],
    out: &mut Shared,
) -> Result<(), String> {
    let mut full = vec![
        "intake",
        "--database-url",
        db,
        "--key-file",
        key.to_str().unwrap(),
    ];
    full.extend_from_slice(args);
    let cli = intake::cli::Cli::try_parse_from(full).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    match intake::cli::run(cli, out).await {
        Ok(code) if code == std::process::ExitCode::SUCCESS => Ok(()),
        Ok(code) => Err(format!("{code:?}: {}", out.text())),
        Err(e) => Err(format!("{e:#}: {}", out.text())),
    }
}

/// The command line's sign-in: `intake oauth add`, then `intake credential
/// authorize` printing the address and waiting on loopback for the
/// provider's redirect; the stored credential then signs in to Dovecot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_signs_in_with_the_authorization_code_flow() {
    let oauth = OAuthServer::start().await;
    let server = Dovecot::start_oauth2(DovecotOptions::default(), &oauth.introspection_url());
    server.deliver(USER, "INBOX", &message("cli"), false);
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("intake.db").display()
    );
    let key = dir.path().join("intake.key");
    std::fs::write(&key, "nZ8y6b1Ttxv3Lkz1yE6P6k2m8D3mQ0b5Xw7cJ4hR2aU=").unwrap();
    unsafe { std::env::set_var("INTAKE_OAUTH_TEST_SECRET", CLIENT_SECRET) };
    let auth_url = format!("{}/authorize", oauth.base());
    let token_url = format!("{}/token", oauth.base());
    intake(
        &db,
        &key,
        &[
            "oauth",
            "add",
            "local",
            "--kind",
            "generic",
            "--client-id",
            CLIENT_ID,
            "--client-secret-env",
            "INTAKE_OAUTH_TEST_SECRET",
            "--auth-url",
            &auth_url,
            "--token-url",
            &token_url,
            "--scope",
            "mail",
        ],
        &mut Shared::default(),
    )
    .await
    .unwrap();
    let mut listing = Shared::default();
    intake(&db, &key, &["oauth", "list"], &mut listing)
        .await
        .unwrap();
    assert!(
        listing.text().contains("local") && !listing.text().contains(CLIENT_SECRET),
        "{}",
        listing.text()
    );

    let out = Shared::default();
    let command = {
        let (db, key, mut out) = (db.clone(), key.clone(), out.clone());
        tokio::spawn(async move {
            intake(
                &db,
                &key,
                &[
                    "credential",
                    "authorize",
                    "alice-oauth",
                    "--provider",
                    "local",
                    "--user",
                    USER,
                    "--wait-secs",
                    "60",
                ],
                &mut out,
            )
            .await
        })
    };
    // The address is printed; the "browser" follows it to the redirect.
    let url = loop {
        if let Some(line) = out.text().lines().find(|l| l.starts_with("http")) {
            break line.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        url.contains("code_challenge=") && url.contains("code_challenge_method=S256"),
        "{url}"
    );
    let callback = reqwest_free_get(&url).await;
    assert!(callback.starts_with("http://127.0.0.1:"), "{callback}");
    let page = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let target = url::Url::parse(&callback).unwrap();
        let mut socket =
            tokio::net::TcpStream::connect(format!("127.0.0.1:{}", target.port().unwrap()))
                .await
                .unwrap();
        socket
            .write_all(
                format!(
                    "GET {}?{} HTTP/1.1\r\nhost: x\r\n\r\n",
                    target.path(),
                    target.query().unwrap()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut page = String::new();
        socket.read_to_string(&mut page).await.unwrap();
        page
    };
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("You can close this tab"),
        "{page}"
    );
    command.await.unwrap().unwrap();
    assert!(
        out.text().contains("stored credential alice-oauth"),
        "{}",
        out.text()
    );

    let mut listing = Shared::default();
    intake(&db, &key, &["credential", "list"], &mut listing)
        .await
        .unwrap();
    assert!(
        listing.text().contains("oauth2:local"),
        "{}",
        listing.text()
    );

    // The account signs in with it (XOAUTH2 by default).
    let port = server.imaps_port.to_string();
    let ca = server.certs.ca_pem.display().to_string();
    intake(
        &db,
        &key,
        &[
            "account",
            "add",
            "sales",
            "--protocol",
            "imap",
            "--host",
            "localhost",
            "--port",
            &port,
            "--security",
            "tls",
            "--ca-file",
            &ca,
            "--credential",
            "alice-oauth",
        ],
        &mut Shared::default(),
    )
    .await
    .unwrap();
    let mut test = Shared::default();
    intake(&db, &key, &["account", "test", "sales"], &mut test)
        .await
        .unwrap();
    assert!(test.text().contains("login"), "{}", test.text());
}
