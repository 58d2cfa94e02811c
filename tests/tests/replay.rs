//! Explainable decisions and replay, through the real command line on the
//! bundled sample Maildir (`intake import`: no mail server), on SQLite and
//! on PostgreSQL: `intake message explain` shows every plugin as it ran
//! with its component hash and configuration version; `intake replay`
//! reports what a changed chain would do without changing anything, apply
//! does it (leads made as ingestion makes them), and a second apply finds
//! nothing to do.

use clap::Parser;
use intake::cli::{Cli, run};
use intake::directory::{Party, PartyKind};
use intake::store::{MessageQuery, PartyFilter, TenantId};
use intake_tests::databases::Db;
use intake_tests::{on_both_databases, plugin, root};
use serde_json::Value;
use sha2::Digest;

on_both_databases!(
    explain_shows_each_step_with_its_component_and_config_version,
    replay_reports_then_applies_a_changed_chain_once,
);

const KEY: &str = "nZ8y6b1Ttxv3Lkz1yE6P6k2m8D3mQ0b5Xw7cJ4hR2aU=";

/// Runs the CLI in-process on `db` for `tenant`; returns (success, output).
async fn intake(db: &Db, key: &std::path::Path, tenant: &str, args: &[&str]) -> (bool, String) {
    let mut full = vec![
        "intake",
        "--database-url",
        &db.url,
        "--key-file",
        key.to_str().unwrap(),
        "--tenant",
        tenant,
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

async fn ok(db: &Db, key: &std::path::Path, tenant: &str, args: &[&str]) -> String {
    let (ok, out) = intake(db, key, tenant, args).await;
    assert!(ok, "{args:?}: {out}");
    out
}

async fn json(db: &Db, key: &std::path::Path, tenant: &str, args: &[&str]) -> Value {
    let out = ok(db, key, tenant, args).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// A tenant with account `sales`, the sample contacts and the plugins
/// `chain` (matchers, then `unknown_sender` as the policy if named).
async fn setup(db: &Db, key: &std::path::Path, tenant: &str, chain: &[&str]) {
    unsafe { std::env::set_var("INTAKE_REPLAY_TEST_SECRET", "s3cret") };
    let contacts = path(&root().join("samples/contacts.csv"));
    for args in [
        vec![
            "credential",
            "add",
            "box",
            "--user",
            "u",
            "--secret-env",
            "INTAKE_REPLAY_TEST_SECRET",
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
    ] {
        ok(db, key, tenant, &args).await;
    }
    for name in chain {
        add_plugin(db, key, tenant, name).await;
    }
}

async fn add_plugin(db: &Db, key: &std::path::Path, tenant: &str, name: &str) {
    let wasm = path(&plugin(name));
    let role = if name == "unknown_sender" {
        "unknown-sender"
    } else {
        "matcher"
    };
    ok(db, key, tenant, &["plugin", "add", &wasm, "--role", role]).await;
}

async fn import(db: &Db, key: &std::path::Path, tenant: &str) {
    let maildir = path(&root().join("samples/maildir"));
    ok(
        db,
        key,
        tenant,
        &["import", "--maildir", &maildir, "--account", "sales"],
    )
    .await;
}

/// Every stored message of the tenant: (id, sender, status, linked party
/// ids), by id.
async fn state(db: &Db, tenant: TenantId) -> Vec<(i64, String, String, Vec<String>)> {
    let mut rows: Vec<_> = db
        .store
        .messages(
            tenant,
            &MessageQuery {
                limit: 1000,
                ..MessageQuery::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            let mut parties: Vec<String> = m.parties.iter().map(|p| p.id.clone()).collect();
            parties.sort();
            (
                m.id.0,
                m.from.unwrap_or_default(),
                m.status.as_str().to_owned(),
                parties,
            )
        })
        .collect();
    rows.sort();
    rows
}

async fn leads(db: &Db, tenant: TenantId) -> Vec<Party> {
    db.store
        .find_parties(
            tenant,
            &PartyFilter {
                kind: Some(PartyKind::Lead),
                limit: 1000,
                ..PartyFilter::default()
            },
        )
        .await
        .unwrap()
}

fn id_from(state: &[(i64, String, String, Vec<String>)], from: &str) -> String {
    state
        .iter()
        .find(|(_, f, _, _)| f == from)
        .unwrap_or_else(|| panic!("no message from {from}: {state:?}"))
        .0
        .to_string()
}

async fn explain_shows_each_step_with_its_component_and_config_version(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("intake.key");
    std::fs::write(&key, KEY).unwrap();
    setup(&db, &key, "default", &["exact_match", "unknown_sender"]).await;
    import(&db, &key, "default").await;
    let tenant = db.store.ensure_tenant("default").await.unwrap();
    let messages = state(&db, tenant).await;
    let sha = |name: &str| hex(&sha2::Sha256::digest(std::fs::read(plugin(name)).unwrap()));
    let listed = ok(&db, &key, "default", &["plugin", "list"]).await;
    // The configuration version `plugin list` shows for a binding.
    let version = |name: &str| {
        listed
            .lines()
            // POS NAME ROLE ENABLED DEADLINE(2) ON-ERROR SHA-256 VERSION
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .and_then(|l| l.split_whitespace().nth(8))
            .unwrap_or_else(|| panic!("{name} in {listed}"))
            .to_string()
    };

    // A known contact: the first matcher decides.
    let ann = id_from(&messages, "ann.lee@acme.example");
    let e = json(
        &db,
        &key,
        "default",
        &["message", "explain", &ann, "--json"],
    )
    .await;
    assert_eq!(e["recorded"], true, "{e}");
    assert_eq!(e["decided_by"], "exact_match", "{e}");
    assert_eq!(e["disposition"], "attach", "{e}");
    let steps = e["steps"].as_array().unwrap();
    assert_eq!(
        steps.len(),
        1,
        "the chain stops at the deciding matcher: {e}"
    );
    assert_eq!(steps[0]["plugin"], "exact_match");
    assert_eq!(steps[0]["role"], "matcher");
    assert_eq!(steps[0]["result"], "attach");
    assert_eq!(steps[0]["decided"], true);
    assert_eq!(steps[0]["component_sha256"], sha("exact_match").as_str());
    assert_eq!(steps[0]["config_version"], version("exact_match").as_str());
    assert!(steps[0]["micros"].as_u64().unwrap() > 0, "{e}");

    // An unknown sender: the matcher has no opinion, the policy decides.
    let jane = id_from(&messages, "jane.roe@northwind-traders.example");
    let e = json(
        &db,
        &key,
        "default",
        &["message", "explain", &jane, "--json"],
    )
    .await;
    assert_eq!(e["decided_by"], "unknown_sender", "{e}");
    assert_eq!(e["disposition"], "create-lead", "{e}");
    let steps = e["steps"].as_array().unwrap();
    let answers: Vec<(&str, &str, bool)> = steps
        .iter()
        .map(|s| {
            (
                s["plugin"].as_str().unwrap(),
                s["result"].as_str().unwrap(),
                s["decided"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        answers,
        [
            ("exact_match", "no-opinion", false),
            ("unknown_sender", "decided", true)
        ],
        "{e}"
    );
    assert_eq!(steps[1]["component_sha256"], sha("unknown_sender").as_str());
    assert_eq!(
        steps[1]["config_version"],
        version("unknown_sender").as_str()
    );
    assert_ne!(version("exact_match"), version("unknown_sender"));

    // The text form names the same, and who decided.
    let text = ok(&db, &key, "default", &["message", "explain", &jane]).await;
    assert!(text.contains("decided by:  unknown_sender"), "{text}");
    assert!(
        text.contains(&sha("unknown_sender")[..12]) && text.contains(&version("unknown_sender")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('→') && l.contains("unknown_sender")),
        "{text}"
    );

    // Another tenant cannot explain this tenant's message.
    let contacts = path(&root().join("samples/contacts.csv"));
    ok(&db, &key, "other", &["contact", "import", &contacts]).await;
    let (found, out) = intake(&db, &key, "other", &["message", "explain", &ann]).await;
    assert!(
        !found && out.contains(&format!("message \"{ann}\" not found")),
        "{out}"
    );
}

async fn replay_reports_then_applies_a_changed_chain_once(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("intake.key");
    std::fs::write(&key, KEY).unwrap();
    // Ingested with matchers only: unknown senders are kept unlinked.
    setup(&db, &key, "default", &["exact_match"]).await;
    import(&db, &key, "default").await;
    let tenant = db.store.ensure_tenant("default").await.unwrap();
    let before = state(&db, tenant).await;
    let leads_before = leads(&db, tenant).await;
    let jane = id_from(&before, "jane.roe@northwind-traders.example");
    let ann = id_from(&before, "ann.lee@acme.example");

    // The same chain: nothing to change.
    let same = json(
        &db,
        &key,
        "default",
        &["replay", "--account", "sales", "--dry-run", "--json"],
    )
    .await;
    assert_eq!(same["changed"], 0, "{same}");
    assert_eq!(same["records_added"], 0, "{same}");
    assert!(same["messages"].as_u64().unwrap() >= 10, "{same}");

    // Add the unknown-sender policy: the dry run reports new leads, and
    // changes nothing.
    add_plugin(&db, &key, "default", "unknown_sender").await;
    let dry = json(
        &db,
        &key,
        "default",
        &["replay", "--account", "sales", "--dry-run", "--json"],
    )
    .await;
    assert_eq!(dry["applied"], false);
    let new_leads: Vec<&str> = dry["new_leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        new_leads.contains(&"jane.roe@northwind-traders.example"),
        "{dry}"
    );
    let change = dry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"].as_i64() == jane.parse().ok())
        .unwrap_or_else(|| panic!("no change for {jane}: {dry}"));
    assert_eq!(change["was"], "unlinked", "{change}");
    assert_eq!(change["now"], "linked", "{change}");
    assert_eq!(change["decision"], "create-lead", "{change}");
    assert_eq!(change["decided_by"], "unknown_sender", "{change}");
    assert_eq!(
        change["new_lead"], "jane.roe@northwind-traders.example",
        "{change}"
    );
    assert_eq!(
        dry["dispositions_changed"].as_u64().unwrap(),
        dry["changed"].as_u64().unwrap(),
        "unlinked → linked for each: {dry}"
    );
    assert_eq!(dry["links_removed"], 0, "{dry}");
    assert!(
        !dry["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"].as_i64() == ann.parse().ok()),
        "a matched contact stays: {dry}"
    );
    let text = ok(
        &db,
        &key,
        "default",
        &["replay", "--account", "sales", "--dry-run"],
    )
    .await;
    assert!(
        text.contains("+lead jane.roe@northwind-traders.example")
            && text.contains(&format!(
                "would change {}: 0 links added, 0 removed, {} new leads, {} dispositions changed",
                dry["changed"],
                new_leads.len(),
                dry["dispositions_changed"]
            )),
        "{text}"
    );
    assert_eq!(
        state(&db, tenant).await,
        before,
        "a dry run changes nothing"
    );
    assert_eq!(leads(&db, tenant).await, leads_before);

    // Other components given by hand: the contact's link would go (the
    // policy alone makes a lead of every sender).
    let policy_only = path(&plugin("unknown_sender"));
    let hand = json(
        &db,
        &key,
        "default",
        &[
            "replay",
            "--account",
            "sales",
            "--chain",
            &policy_only,
            "--dry-run",
            "--json",
        ],
    )
    .await;
    let ann_change = hand["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"].as_i64() == ann.parse().ok())
        .unwrap_or_else(|| panic!("no change for {ann}: {hand}"));
    assert_eq!(
        ann_change["links_removed"][0]["email"], "ann.lee@acme.example",
        "{ann_change}"
    );
    assert_eq!(ann_change["new_lead"], "ann.lee@acme.example");
    assert!(hand["links_removed"].as_u64().unwrap() >= 1, "{hand}");
    assert_eq!(
        state(&db, tenant).await,
        before,
        "a dry run changes nothing"
    );

    // Apply: what the dry run said.
    let applied = json(
        &db,
        &key,
        "default",
        &["replay", "--account", "sales", "--apply", "--json"],
    )
    .await;
    assert_eq!(applied["applied"], true);
    assert_eq!(applied["new_leads"], dry["new_leads"], "{applied}");
    assert_eq!(
        applied["dispositions_changed"], dry["dispositions_changed"],
        "{applied}"
    );
    // Leads made, it went over the mail once more: a reply from a new
    // lead's sender that a contact among its recipients had claimed now
    // links the lead too (exact_match attaches every party it knows).
    assert_eq!(applied["passes"], 2, "{applied}");
    assert!(
        applied["changed"].as_u64() >= dry["changed"].as_u64(),
        "{applied}"
    );
    for c in dry["changes"].as_array().unwrap() {
        let same = applied["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == c["id"])
            .unwrap_or_else(|| panic!("{c} not applied: {applied}"));
        assert_eq!((&same["was"], &same["now"]), (&c["was"], &c["now"]));
        assert_eq!(same["new_lead"], c["new_lead"]);
    }
    let after = state(&db, tenant).await;
    assert_ne!(after, before);
    let lead = leads(&db, tenant)
        .await
        .into_iter()
        .find(|p| p.email == "jane.roe@northwind-traders.example")
        .expect("replay made jane's lead");
    let jane_row = after.iter().find(|m| m.0.to_string() == jane).unwrap();
    assert_eq!(jane_row.3, vec![lead.id.clone()], "{after:?}");
    // The new decision is recorded.
    let e = json(
        &db,
        &key,
        "default",
        &["message", "explain", &jane, "--json"],
    )
    .await;
    assert_eq!(e["decided_by"], "unknown_sender", "{e}");
    assert_eq!(e["disposition"], "create-lead", "{e}");
    assert_eq!(e["steps"].as_array().unwrap().len(), 2, "{e}");

    // A second apply (and a dry run) find nothing to do.
    let again = json(
        &db,
        &key,
        "default",
        &["replay", "--account", "sales", "--apply", "--json"],
    )
    .await;
    assert_eq!(again["changed"], 0, "{again}");
    assert_eq!(again["passes"], 1, "{again}");
    assert_eq!(again["records_added"], 0, "{again}");
    assert_eq!(again["new_leads"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(state(&db, tenant).await, after);

    // The lead is the one ingestion makes: the same mail imported into a
    // tenant that had the policy from the start.
    setup(&db, &key, "fresh", &["exact_match", "unknown_sender"]).await;
    import(&db, &key, "fresh").await;
    let fresh = db.store.ensure_tenant("fresh").await.unwrap();
    let ingested = leads(&db, fresh)
        .await
        .into_iter()
        .find(|p| p.email == lead.email)
        .expect("ingestion made jane's lead");
    assert_eq!(
        (
            &ingested.kind,
            &ingested.name,
            &ingested.company,
            &ingested.external_id
        ),
        (&lead.kind, &lead.name, &lead.company, &lead.external_id)
    );
    let made = |ps: Vec<Party>| {
        let mut emails: Vec<String> = ps.into_iter().map(|p| p.email).collect();
        emails.sort();
        emails
    };
    assert_eq!(
        made(leads(&db, tenant).await),
        made(leads(&db, fresh).await),
        "replay made the leads ingestion makes"
    );

    // A chain that holds everything: apply quarantines (links go), and the
    // stored chain releases it all again, as it was.
    let held = json(
        &db,
        &key,
        "default",
        &[
            "replay",
            "--account",
            "sales",
            "--chain",
            &policy_only,
            "--config",
            r#"unknown_sender={"action": "quarantine"}"#,
            "--apply",
            "--json",
        ],
    )
    .await;
    let quarantined = state(&db, tenant).await;
    assert!(
        quarantined
            .iter()
            .all(|(_, _, status, links)| status == "quarantined" && links.is_empty()),
        "{quarantined:?}\n{held}"
    );
    assert!(held["links_removed"].as_u64().unwrap() >= 1, "{held}");
    let (_, list) = intake(&db, &key, "default", &["quarantine", "list"]).await;
    assert!(list.contains("unknown_sender"), "{list}");
    let back = json(
        &db,
        &key,
        "default",
        &["replay", "--account", "sales", "--apply", "--json"],
    )
    .await;
    assert_eq!(state(&db, tenant).await, after, "{back}");
    let (_, list) = intake(&db, &key, "default", &["quarantine", "list"]).await;
    assert!(!list.contains("unknown_sender"), "{list}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
