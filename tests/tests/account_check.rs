//! "Test settings" against a real Dovecot: a good account passes every step,
//! and each typical mistake fails at the right step with a specific hint.

use std::time::Duration;

use clap::Parser;
use intake::fetch::check::{Report, test_account};
use intake::fetch::{AccountSettings, Protocol, Secret, Security};
use intake_tests::servers::{Dovecot, DovecotOptions, USER};

fn names(r: &Report) -> Vec<&str> {
    r.steps.iter().map(|s| s.name).collect()
}

fn failed(r: &Report) -> (&str, &str, &str) {
    let last = r.steps.last().unwrap();
    assert!(!last.ok, "expected a failure: {r:#?}");
    (
        last.name,
        last.detail.as_str(),
        last.hint.as_deref().unwrap_or(""),
    )
}

fn quick(mut a: AccountSettings) -> AccountSettings {
    // Above Dovecot's 2 s delay on failed logins.
    a.timeouts.io = Duration::from_secs(4);
    a.timeouts.connect = Duration::from_secs(2);
    a
}

#[tokio::test]
async fn a_good_account_passes_every_step() {
    let server = Dovecot::start();
    server.deliver(
        USER,
        "INBOX",
        b"From: a@b.example\r\nSubject: x\r\n\r\nhi\r\n",
        false,
    );
    for security in [Security::Tls, Security::Starttls] {
        let r = test_account(&server.account(Protocol::Imap, security)).await;
        assert!(r.ok(), "{r:#?}");
        assert_eq!(
            names(&r),
            [
                "resolve",
                "connect",
                "tls",
                "capabilities",
                "login",
                "folder"
            ]
        );
        let tls = &r.steps[2].detail;
        assert!(
            tls.contains("TLSv1_") && tls.contains("Intake Test CA") && tls.contains("verified"),
            "{tls}"
        );
        assert_eq!(r.steps[5].detail, "INBOX: 1 messages, 1 unseen");
    }
}

#[tokio::test]
async fn each_mistake_fails_at_its_step_with_a_hint() {
    let server = Dovecot::start();
    let good = server.account(Protocol::Imap, Security::Tls);

    let mut closed = good.clone();
    closed.port = Some(
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    );
    let r = test_account(&quick(closed)).await;
    let (step, _, hint) = failed(&r);
    assert_eq!(step, "connect");
    assert!(hint.contains("nothing accepts connections"), "{hint}");

    let mut tls_on_plain_port = good.clone();
    tls_on_plain_port.port = Some(server.imap_port);
    let r = test_account(&quick(tls_on_plain_port)).await;
    let (step, _, hint) = failed(&r);
    assert_eq!(step, "tls");
    assert!(hint.contains("does not seem to speak TLS"), "{hint}");

    let mut plain_on_tls_port = server.account(Protocol::Imap, Security::None);
    plain_on_tls_port.port = Some(server.imaps_port);
    let r = test_account(&quick(plain_on_tls_port)).await;
    let (step, _, hint) = failed(&r);
    assert_eq!(step, "capabilities");
    assert!(hint.contains("expects TLS"), "{hint}");

    let mut private_ca = good.clone();
    private_ca.ca_file = None;
    let r = test_account(&quick(private_ca.clone())).await;
    let (step, detail, hint) = failed(&r);
    assert_eq!(step, "tls");
    assert!(
        detail.contains("Intake Test CA"),
        "the report shows what the server presented: {detail}"
    );
    assert!(hint.contains("self-signed or from a private CA"), "{hint}");

    private_ca.verify_certificate = false;
    let r = test_account(&quick(private_ca)).await;
    assert!(r.ok());
    assert!(
        r.steps[2]
            .hint
            .as_deref()
            .unwrap()
            .contains("verification is off")
    );

    let mut missing_folder = good.clone();
    missing_folder.folders = vec!["INBOX".into(), "Does/Not/Exist".into()];
    let r = test_account(&quick(missing_folder)).await;
    let (step, _, hint) = failed(&r);
    assert_eq!(step, "folder");
    assert!(hint.contains("does not exist"), "{hint}");

    // Last: after a failed login Dovecot slows further logins from this
    // address (its auth penalty), as a real server would.
    let mut wrong_password = good.clone();
    wrong_password.password = Secret::new("nope");
    let r = test_account(&quick(wrong_password)).await;
    let (step, _, hint) = failed(&r);
    assert_eq!(step, "login");
    assert!(hint.contains("user name or password"), "{hint}");
}

#[tokio::test]
async fn starttls_not_offered_fails_the_tls_step() {
    let server = Dovecot::start_with(DovecotOptions {
        tls: false,
        ..DovecotOptions::default()
    });
    let r = test_account(&quick(server.account(Protocol::Imap, Security::Starttls))).await;
    let (step, _, hint) = failed(&r);
    assert_eq!(step, "tls");
    assert!(
        hint.contains("does not offer STARTTLS") && hint.contains("never falls back"),
        "{hint}"
    );
}

#[tokio::test]
async fn the_command_prints_one_line_per_step_and_fails_on_error() {
    let server = Dovecot::start();
    let port = server.imaps_port.to_string();
    let ca = server.certs.ca_pem.display().to_string();
    // SAFETY of the test: this process's tests don't read this variable
    // elsewhere.
    unsafe { std::env::set_var("INTAKE_TEST_PW", intake_tests::servers::PASSWORD) };
    let run = |extra: Vec<String>| async move {
        let mut args: Vec<String> = [
            "intake",
            "account",
            "test",
            "--protocol",
            "imap",
            "--host",
            "localhost",
            "--user",
            USER,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra);
        let cli = intake::cli::Cli::try_parse_from(args).unwrap();
        let mut out = Vec::new();
        let code = intake::cli::run(cli, &mut out).await.unwrap();
        (code, String::from_utf8(out).unwrap())
    };
    let good = vec![
        "--port".into(),
        port.clone(),
        "--ca-file".into(),
        ca.clone(),
        "--password-env".into(),
        "INTAKE_TEST_PW".into(),
    ];
    let (code, out) = run(good).await;
    assert_eq!(code, std::process::ExitCode::SUCCESS, "{out}");
    assert!(
        out.lines().next().unwrap().starts_with("ok   resolve"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("settings OK"), "{out}");

    let no_ca = vec![
        "--port".into(),
        port,
        "--password-env".into(),
        "INTAKE_TEST_PW".into(),
    ];
    let (code, out) = run(no_ca).await;
    assert_eq!(code, std::process::ExitCode::FAILURE);
    assert!(
        out.contains("FAIL tls") && out.contains("hint: the certificate is self-signed"),
        "{out}"
    );
}

#[tokio::test]
async fn pop3_accounts_are_checked_too() {
    let server = Dovecot::start();
    server.deliver(
        USER,
        "INBOX",
        b"From: a@b.example\r\nSubject: x\r\n\r\nhi\r\n",
        false,
    );
    for security in [Security::None, Security::Starttls, Security::Tls] {
        let r = test_account(&server.account(Protocol::Pop3, security)).await;
        assert!(r.ok(), "{security:?}: {r:#?}");
        assert_eq!(
            r.steps.last().unwrap().detail,
            "INBOX: 1 messages (POP3 has no unseen flag)"
        );
    }
    let mut wrong = server.account(Protocol::Pop3, Security::Tls);
    wrong.password = Secret::new("nope");
    let r = test_account(&quick(wrong)).await;
    let (step, _, hint) = failed(&r);
    assert_eq!(step, "login");
    assert!(hint.contains("user name or password"), "{hint}");
}

/// A certificate that is its own CA (what `openssl req -x509` makes), served
/// by the hostile IMAP server over implicit TLS; returns the server and the
/// account trusting that certificate as its CA file.
async fn ca_as_server_certificate(
    dir: &std::path::Path,
) -> (intake_tests::hostile::Hostile, AccountSettings) {
    use intake_tests::hostile::{Fault, Hostile, Script};
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.self_signed(&key).unwrap();
    let pem = dir.join("self-signed.pem");
    std::fs::write(&pem, cert.pem()).unwrap();
    let server = Hostile::start_tls(
        Protocol::Imap,
        Script {
            fault: Fault::None,
            messages: 1,
        },
        cert.der().to_vec(),
        key.serialize_der(),
    )
    .await;
    let mut account = server.account(Duration::from_secs(4));
    account.host = "localhost".into();
    account.security = Security::Tls;
    account.ca_file = Some(pem);
    (server, account)
}

/// Log lines written while `work` runs on this thread.
async fn logs_of<T>(work: impl std::future::Future<Output = T>) -> (T, String) {
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let out = work.await;
    drop(guard);
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    (out, text)
}

#[tokio::test]
async fn a_ca_certificate_used_as_the_servers_own_is_explained_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, account) = ca_as_server_certificate(dir.path()).await;
    let r = test_account(&account).await;
    let (step, detail, hint) = failed(&r);
    assert_eq!(step, "tls");
    assert!(
        detail.contains("itself a CA certificate") && !detail.contains("OtherError"),
        "{detail}"
    );
    assert!(
        hint.contains("CA file") && hint.contains("issued by that CA"),
        "{hint}"
    );
    // fetch says the same.
    let e = intake::fetch::open(&account).await.unwrap_err();
    assert!(e.to_string().contains("itself a CA certificate"), "{e}");
    assert_eq!(e.class(), intake::fetch::FailureClass::Tls);
}

#[tokio::test(flavor = "current_thread")]
async fn no_false_warning_about_verification_when_it_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, account) = ca_as_server_certificate(dir.path()).await;
    // Rejected, so the check looks at the certificate over a second,
    // unverified connection: that look is not the account's setting.
    let (r, logs) = logs_of(test_account(&account)).await;
    assert!(!r.ok());
    assert!(
        r.steps
            .last()
            .unwrap()
            .detail
            .contains("the server presented")
    );
    assert!(!logs.contains("verification is switched off"), "{logs}");
    // The warning is still there when the account really switches it off.
    let mut off = account.clone();
    off.verify_certificate = false;
    let (r, logs) = logs_of(test_account(&off)).await;
    assert!(r.ok(), "{r:#?}");
    assert!(logs.contains("verification is switched off"), "{logs}");
}

/// Test settings' last step, with the detail and hint in one string.
fn last_words(r: &Report) -> String {
    let last = r.steps.last().unwrap();
    format!(
        "{}: {} / hint: {}",
        last.name,
        last.detail,
        last.hint.as_deref().unwrap_or("")
    )
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_with_its_fingerprint_and_accepted_when_pinned() {
    let mut server = Dovecot::start_with(DovecotOptions {
        self_signed: true,
        ..DovecotOptions::default()
    });
    server.deliver(
        USER,
        "INBOX",
        b"From: a@b.example\r\nSubject: pinned\r\n\r\nhi\r\n",
        false,
    );
    let pin = server.certs.pin();
    let shown = pin.to_string();
    for (protocol, security) in [
        (Protocol::Imap, Security::Tls),
        (Protocol::Imap, Security::Starttls),
        (Protocol::Pop3, Security::Tls),
        (Protocol::Pop3, Security::Starttls),
    ] {
        // Without a pin: refused, in words, with the fingerprint to pin,
        // whether the certificate is given as the CA file or not at all
        // (webpki looks at its CA flag first either way).
        let with_ca_file = server.account(protocol, security);
        let mut without = with_ca_file.clone();
        without.ca_file = None;
        for (account, problem) in [
            (&with_ca_file, "itself a CA certificate"),
            (&without, "itself a CA certificate"),
        ] {
            let r = test_account(&quick(account.clone())).await;
            let (step, detail, hint) = failed(&r);
            assert_eq!(step, "tls", "{protocol:?}/{security:?}: {r:#?}");
            assert!(
                detail.contains(problem) && detail.contains(&shown),
                "{detail}"
            );
            assert!(
                hint.contains(&format!("--pin-certificate {shown}")),
                "{hint}"
            );
            let e = intake::fetch::open(account).await.err().unwrap();
            assert_eq!(e.class(), intake::fetch::FailureClass::Tls);
            assert!(e.to_string().contains(&shown), "{e}");
        }

        // Pinned: accepted, whatever the CA file says, and said so.
        let mut pinned = without.clone();
        pinned.pinned_certificate = Some(pin);
        let (r, logs) = logs_of(test_account(&quick(pinned.clone()))).await;
        assert!(r.ok(), "{protocol:?}/{security:?}: {r:#?}");
        let tls = r
            .steps
            .iter()
            .find(|s| s.name == "tls")
            .unwrap_or_else(|| panic!("{protocol:?}/{security:?}: {r:#?}"));
        assert!(
            tls.hint.is_none()
                && tls.detail.contains(&shown)
                && tls.detail.contains("verified by this account's pin"),
            "{tls:?}"
        );
        assert!(!logs.contains("verification is switched off"), "{logs}");
        let source = intake::fetch::open(&pinned).await.unwrap();
        source.close().await.unwrap();
    }

    // The server's certificate changes: the pin refuses it, showing both.
    let old = server.account(Protocol::Imap, Security::Tls);
    let mut pinned = old.clone();
    pinned.ca_file = None;
    pinned.pinned_certificate = Some(pin);
    let renewed = server.renew_self_signed().pin().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = test_account(&quick(pinned.clone())).await;
        if !r.ok() || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let words = last_words(&r);
    assert!(
        words.starts_with("tls:")
            && words.contains(&format!("the certificate this account pins ({shown})"))
            && words.contains(&format!("the server presented {renewed}"))
            && words.contains("not the one this account pins"),
        "{words}"
    );
    let e = intake::fetch::open(&pinned).await.err().unwrap();
    assert_eq!(e.class(), intake::fetch::FailureClass::Tls);
    // Pinning the new one is accepted again.
    pinned.pinned_certificate = Some(renewed.parse().unwrap());
    let r = test_account(&quick(pinned)).await;
    assert!(r.ok(), "{r:#?}");
}
