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
