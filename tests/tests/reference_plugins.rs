//! The reference plugins, as compiled components in the real engine, on
//! `.eml` fixtures: multipart, non-ASCII headers, threads, auto-replies, DSNs,
//! unknown senders, and tenant isolation.

use std::sync::Arc;

use intake::directory::{MemoryDirectory, PartyKind, PartyRef};
use intake::plugin::{Chain, Decision, Disposition};
use intake_tests::{fixture, load, parse_fixture, runtime};

async fn default_chain(rt: &intake::plugin::PluginRuntime) -> Chain {
    let guard = load(rt, "auto_reply_guard", "{}").await;
    let thread = load(rt, "thread_match", "{}").await;
    let exact = load(
        rt,
        "exact_match",
        r#"{"fold_plus": true, "ignore": ["sales@ourco.example"]}"#,
    )
    .await;
    let domain = load(
        rt,
        "domain_match",
        r#"{"ignore_domains": ["ourco.example"]}"#,
    )
    .await;
    let policy = load(rt, "unknown_sender", "{}").await;
    Chain::new(vec![guard, thread, exact, domain], Some(policy)).unwrap()
}

fn directory() -> Arc<MemoryDirectory> {
    let dir = MemoryDirectory::new();
    dir.load_csv("t", &fixture("contacts.csv")).unwrap();
    // An earlier outgoing message of ours, linked to the contract owner.
    dir.link_message(
        "t",
        "root-contract@ourco.example",
        &[PartyRef {
            kind: PartyKind::Contact,
            id: "c5".into(),
        }],
    );
    Arc::new(dir)
}

fn emails(d: &Decision) -> Vec<String> {
    match &d.disposition {
        Disposition::Attach { parties } => parties.iter().map(|p| p.email.clone()).collect(),
        other => panic!("expected attach, got {other:?}"),
    }
}

fn discard_reason(d: &Decision) -> String {
    assert_eq!(d.decided_by.as_deref(), Some("auto_reply_guard"), "{d:?}");
    match &d.disposition {
        Disposition::Discard { reason } => reason.clone(),
        other => panic!("expected discard, got {other:?}"),
    }
}

#[tokio::test]
async fn reference_chain_on_fixtures() {
    let rt = runtime();
    let chain = default_chain(&rt).await;
    let dir = directory();
    let run = |name: &'static str| {
        let chain = chain.clone();
        let dir = dir.clone();
        async move { chain.run(&parse_fixture(name, "t"), dir).await }
    };

    let d = run("contact-plain.eml").await;
    assert_eq!(d.decided_by.as_deref(), Some("exact_match"));
    assert_eq!(emails(&d), ["ann.lee@acme.example"]);
    assert_eq!(
        d.steps.iter().map(|s| s.result).collect::<Vec<_>>(),
        ["no-opinion", "no-opinion", "attach"]
    );

    // Two contacts at acme.example: which one a new colleague writes about
    // is a guess, so domain-match has no opinion and the policy makes the
    // colleague a lead of their own, company filled in.
    let d = run("colleague-multipart.eml").await;
    assert_eq!(d.decided_by.as_deref(), Some("unknown_sender"));
    match &d.disposition {
        Disposition::CreateLead { lead } => {
            assert_eq!(lead.email, "tom.baker@acme.example");
            assert_eq!(lead.company.as_deref(), Some("Acme"));
        }
        other => panic!("expected a new lead, got {other:?}"),
    }

    let d = run("non-ascii-latin1.eml").await;
    assert_eq!(emails(&d), ["rene.dupont@globex.example"]);

    let d = run("thread-deep-reply.eml").await;
    assert_eq!(d.decided_by.as_deref(), Some("thread_match"));
    assert_eq!(emails(&d), ["contract.owner@bigco.example"]);

    let d = run("plus-address.eml").await;
    assert_eq!(emails(&d), ["sofia@initech.example"]);

    assert!(
        discard_reason(&run("auto-submitted.eml").await).contains("Auto-Submitted: auto-replied")
    );
    assert!(discard_reason(&run("precedence-junk.eml").await).contains("Precedence: junk"));
    assert!(discard_reason(&run("x-autoreply.eml").await).contains("X-Autoreply"));
    assert!(discard_reason(&run("mailing-list.eml").await).contains("mailing list"));
    assert!(discard_reason(&run("dsn-report-only.eml").await).contains("delivery status"));
    assert!(discard_reason(&run("noreply-sender.eml").await).contains("no-reply@shop.example"));

    let d = run("unknown-company.eml").await;
    assert_eq!(d.decided_by.as_deref(), Some("unknown_sender"));
    match d.disposition {
        Disposition::CreateLead { lead } => {
            assert_eq!(lead.email, "jane.roe@northwind-traders.example");
            assert_eq!(lead.name.as_deref(), Some("Jane Roe"));
            assert_eq!(lead.company.as_deref(), Some("Northwind Traders"));
        }
        other => panic!("{other:?}"),
    }
    match run("unknown-freemail.eml").await.disposition {
        Disposition::CreateLead { lead } => {
            assert_eq!(lead.company, None);
            assert_eq!(lead.name.as_deref(), Some("Mark Obrien"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        run("no-message-id.eml").await.disposition,
        Disposition::CreateLead { .. }
    ));
}

#[tokio::test]
async fn non_ascii_headers_reach_plugins_decoded() {
    let m = parse_fixture("non-ascii-latin1.eml", "t").view;
    assert_eq!(m.from[0].name.as_deref(), Some("René Dupont"));
    assert_eq!(m.subject.as_deref(), Some("Réunion à Zürich"));
    assert_eq!(m.text_body.as_deref().map(str::trim), Some("Chère équipe"));
    assert_eq!(m.to[0].name.as_deref(), Some("Vertrieb"));
}

#[tokio::test]
async fn tenants_do_not_see_each_other() {
    let rt = runtime();
    let chain = default_chain(&rt).await;
    let dir = directory();
    // The same mail for another tenant: its directory is empty, so the
    // known contact of tenant `t` is a stranger there.
    let d = chain
        .run(&parse_fixture("contact-plain.eml", "other"), dir.clone())
        .await;
    assert!(
        matches!(d.disposition, Disposition::CreateLead { .. }),
        "{d:?}"
    );
    let d = chain
        .run(&parse_fixture("thread-deep-reply.eml", "other"), dir)
        .await;
    assert_ne!(d.decided_by.as_deref(), Some("thread_match"), "{d:?}");
}

#[tokio::test]
async fn without_a_policy_strangers_are_kept_unlinked() {
    let rt = runtime();
    let exact = load(&rt, "exact_match", "{}").await;
    let chain = Chain::new(vec![exact], None).unwrap();
    let d = chain
        .run(&parse_fixture("unknown-company.eml", "t"), directory())
        .await;
    assert_eq!(d.disposition, Disposition::KeepUnlinked);
    assert_eq!(d.decided_by, None);
}

#[tokio::test]
async fn roles_are_detected_and_checked() {
    let rt = runtime();
    let exact = load(&rt, "exact_match", "{}").await;
    let policy = load(&rt, "unknown_sender", "{}").await;
    let both = load(&rt, "hostile", "{}").await;
    assert!(exact.roles().matcher && !exact.roles().unknown_sender);
    assert!(!policy.roles().matcher && policy.roles().unknown_sender);
    assert!(both.roles().matcher && both.roles().unknown_sender);
    let err = Chain::new(vec![policy.clone()], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not export the matcher role"), "{err}");
    assert!(Chain::new(vec![exact.clone()], Some(exact)).is_err());
}

/// Issue 8: an encoded-word local part was parsed as `@acme.com`; the
/// unknown-sender policy proposed that as a lead, the host refused it and
/// the message was quarantined. Now the address survives parsing and the
/// lead is created.
#[tokio::test]
async fn an_encoded_local_part_becomes_a_lead_not_a_quarantine() {
    let rt = runtime();
    let chain = default_chain(&rt).await;
    let m = intake_tests::parse_bytes(
        "From: =?utf-8?q?Bj=C3=B6rn?= <=?utf-8?q?bj=C3=B6rn?=@acme.com>\r\n\
         To: sales@ourco.example\r\nSubject: hello\r\nMessage-ID: <bj@acme.com>\r\n\r\nHi\r\n"
            .to_string(),
        "t",
    );
    let d = chain.run(&m, directory()).await;
    match &d.disposition {
        Disposition::CreateLead { lead } => assert_eq!(lead.email, "björn@acme.com"),
        other => panic!("expected a lead, got {other:?}"),
    }
}

/// domain-match declares its settings; the schema survives LTO, `strip`
/// and the component wrapping, and the service that `plugin add`, `plugin
/// check` and the API's upload share names a mistyped one.
#[tokio::test]
async fn domain_match_declares_its_settings_and_a_mistyped_one_is_named() {
    let wasm = std::fs::read(intake_tests::plugin("domain_match")).unwrap();
    let schema = intake::plugin::schema::read(&wasm).unwrap().unwrap();
    let ignore = schema
        .fields
        .iter()
        .find(|f| f.name == "ignore_domains")
        .expect("ignore_domains declared");
    assert!(!ignore.required, "the default chain runs it with {{}}");
    let limits = intake::plugin::Limits::default();
    let check = |config: &'static str| {
        let wasm = wasm.clone();
        let limits = limits.clone();
        async move {
            intake::service::plugins::check_component("domain_match", &wasm, config, &limits, "t")
                .await
        }
    };
    let ok = check(r#"{"ignore_domains": ["ourco.example"]}"#)
        .await
        .unwrap();
    assert!(ok.roles.matcher);
    match check(r#"{"ignore_domains": "ourco.example", "max_parties": "2"}"#).await {
        Err(intake::service::ServiceError::Invalid { field, reason }) => {
            assert_eq!(field, "config.ignore_domains");
            assert!(
                reason.contains("`ignore_domains` must be an array"),
                "{reason}"
            );
            assert!(
                reason.contains("`max_parties` must be an integer"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Components without a schema keep working as before.
    let exact = std::fs::read(intake_tests::plugin("exact_match")).unwrap();
    assert_eq!(intake::plugin::schema::read(&exact).unwrap(), None);
}
