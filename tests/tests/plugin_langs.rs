//! Plugins in Python and JavaScript: the ports of `exact-match`
//! (`plugins/exact-match-py`, `plugins/exact-match-js`), built from source
//! with componentize-py and componentize-js, decide exactly as the Rust one
//! does, message by message, under `intake plugin test`; and the projects
//! `intake plugin new --lang python|js` writes build and pass their
//! README's `intake plugin test` step.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use intake_tests::langs::{self, Lang};
use intake_tests::{fixture, plugin, root};

/// The `intake` binary, run as a user runs it.
fn intake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intake-under-test"))
        .args(args)
        .env_remove("INTAKE_LOG")
        .env_remove("INTAKE_LOG_FORMAT")
        .output()
        .expect("run intake")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The three ports, each as `exact_match.wasm` in a folder of its own, so
/// that every report names the plugin `exact_match`.
struct Ports {
    rust: PathBuf,
    python: PathBuf,
    js: PathBuf,
    _temp: tempfile::TempDir,
}

fn ports() -> &'static Ports {
    static PORTS: OnceLock<Ports> = OnceLock::new();
    PORTS.get_or_init(|| {
        let temp = tempfile::tempdir().unwrap();
        let place = |lang: &str, built: &Path| {
            let dir = temp.path().join(lang);
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("exact_match.wasm");
            std::fs::copy(built, &file).unwrap();
            file
        };
        let python = langs::build(
            Lang::Python,
            &root().join("plugins/exact-match-py"),
            "exact_match",
        );
        let js = langs::build(
            Lang::Js,
            &root().join("plugins/exact-match-js"),
            "exact_match",
        );
        Ports {
            rust: place("rust", &plugin("exact_match")),
            python: place("python", &python),
            js: place("js", &js),
            _temp: temp,
        }
    })
}

/// The `.eml` files of a fixture folder, sorted.
fn mail_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}

/// `intake plugin test` on `messages`: one report per message, with the
/// timings taken out (the only part that may differ between ports).
fn decisions(
    component: &Path,
    messages: &[PathBuf],
    contacts: &Path,
    config: Option<&str>,
) -> Vec<serde_json::Value> {
    let mut args = vec![
        "plugin".to_string(),
        "test".into(),
        component.display().to_string(),
        "--contacts".into(),
        contacts.display().to_string(),
    ];
    if let Some(config) = config {
        args.push("--config".into());
        args.push(format!("exact_match={config}"));
    }
    args.push("--message".into());
    args.extend(messages.iter().map(|m| m.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = intake(&args);
    assert!(
        out.status.success(),
        "{}: {}",
        component.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .map(|line| {
            let mut report: serde_json::Value = serde_json::from_str(line).unwrap();
            // What differs between ports by nature: time, and which
            // component (and so which configuration version) ran.
            for step in report["steps"].as_array_mut().unwrap() {
                let step = step.as_object_mut().unwrap();
                for field in ["micros", "component_sha256", "config_version"] {
                    step.remove(field);
                }
            }
            report
        })
        .collect()
}

/// What a report says was decided: the disposition's kind and the
/// attached parties' ids.
fn summary(report: &serde_json::Value) -> (String, Vec<String>) {
    let kind = report["disposition"]["kind"].as_str().unwrap().to_string();
    let ids = report["disposition"]["parties"]
        .as_array()
        .map(|parties| {
            parties
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (kind, ids)
}

fn by_file<'a>(reports: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    reports
        .iter()
        .find(|r| r["file"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("no report for {name}"))
}

/// Runs all three ports on the same mail, contacts and configuration and
/// requires the same reports, message for message; returns Rust's.
fn same_decisions(
    messages: &[PathBuf],
    contacts: &Path,
    config: Option<&str>,
) -> Vec<serde_json::Value> {
    let ports = ports();
    let rust = decisions(&ports.rust, messages, contacts, config);
    assert_eq!(rust.len(), messages.len());
    for (lang, component) in [("python", &ports.python), ("js", &ports.js)] {
        let other = decisions(component, messages, contacts, config);
        assert_eq!(other.len(), rust.len(), "{lang}");
        for (r, o) in rust.iter().zip(&other) {
            assert_eq!(
                r, o,
                "{lang} decided otherwise than rust (config {config:?})"
            );
        }
    }
    rust
}

#[test]
fn the_three_exact_match_ports_decide_alike_on_case_encoding_and_unicode_variants() {
    let dir = fixture("langs");
    let messages = mail_in(&dir);
    let contacts = dir.join("contacts.csv");
    assert!(messages.len() >= 9, "{messages:?}");

    let reports = same_decisions(&messages, &contacts, None);
    // What they agree on is right, not only alike: contacts.csv's ids are
    // c1.. in file order (ann c1, raj c2, rené l3, sofia l4, jörg c5,
    // οδος l6, sales c7).
    let expect = |file: &str, kind: &str, ids: &[&str]| {
        let (k, i) = summary(by_file(&reports, file));
        assert_eq!(
            (k.as_str(), i),
            (kind, ids.iter().map(|s| s.to_string()).collect()),
            "{file}"
        );
    };
    expect("upper-case-sender.eml", "attach", &["c1"]);
    expect(
        "recipients-and-duplicates.eml",
        "attach",
        &["c2", "c1", "l4"],
    );
    expect("encoded-name-lead.eml", "attach", &["l3", "c7"]);
    expect("unicode-address.eml", "attach", &["c5"]);
    expect("final-sigma.eml", "attach", &["l6"]);
    expect("plus-tagged.eml", "keep-unlinked", &[]);
    expect("stranger.eml", "keep-unlinked", &[]);
    expect("sender-and-reply-to.eml", "attach", &["c2", "l4"]);
    expect("own-mailbox-only.eml", "attach", &["c7"]);

    // Plus folding, and the own mailbox ignored (in another case), only the
    // sender looked at.
    let folded = same_decisions(&messages, &contacts, Some(r#"{"fold_plus": true}"#));
    assert_eq!(
        summary(by_file(&folded, "plus-tagged.eml")),
        ("attach".into(), vec!["c1".into()])
    );
    let narrow = same_decisions(
        &messages,
        &contacts,
        Some(
            r#"{"fields": ["from", "cc"], "ignore": ["SALES@OurCo.example", " Ann.Lee@acme.example "]}"#,
        ),
    );
    assert_eq!(
        summary(by_file(&narrow, "own-mailbox-only.eml")).0,
        "keep-unlinked"
    );
    assert_eq!(
        summary(by_file(&narrow, "upper-case-sender.eml")).0,
        "keep-unlinked"
    );
    assert_eq!(
        summary(by_file(&narrow, "recipients-and-duplicates.eml")),
        ("attach".into(), vec!["l4".into()])
    );
    assert_eq!(
        summary(by_file(&narrow, "encoded-name-lead.eml")),
        ("attach".into(), vec!["l3".into()])
    );
}

#[test]
fn the_three_ports_decide_alike_on_the_shared_fixtures() {
    let messages = mail_in(&fixture(""));
    let reports = same_decisions(&messages, &fixture("contacts.csv"), None);
    let kinds: Vec<String> = reports.iter().map(|r| summary(r).0).collect();
    assert!(kinds.iter().any(|k| k == "attach"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k != "attach"), "{kinds:?}");
}

#[test]
fn the_three_ports_refuse_the_same_bad_configurations() {
    let ports = ports();
    let message = fixture("contact-plain.eml");
    for (config, said) in [
        (r#"{"feilds": ["from"]}"#, "unknown field `feilds`"),
        (r#"{"fields": []}"#, "`fields` is empty"),
        (r#"{"fields": ["bcc"]}"#, "unknown variant `bcc`"),
        (r#"{"fold_plus": "yes"}"#, "invalid configuration"),
    ] {
        for component in [&ports.rust, &ports.python, &ports.js] {
            let out = intake(&[
                "plugin",
                "test",
                component.to_str().unwrap(),
                "--config",
                &format!("exact_match={config}"),
                "--message",
                message.to_str().unwrap(),
            ]);
            let stderr = text(&out.stderr);
            assert!(!out.status.success(), "{}: {config}", component.display());
            assert!(
                stderr.contains(said),
                "{}: {config}: {stderr}",
                component.display()
            );
        }
    }
}

/// `intake plugin new NAME --lang LANG` outside the checkout, its
/// `build.sh`, then the README's last step.
fn scaffold_builds_and_its_sample_is_attached(lang: Lang) {
    let temp = tempfile::tempdir().unwrap();
    assert!(!temp.path().starts_with(root()));
    let dir = temp.path().join("vip-match");
    let out = intake(&[
        "plugin",
        "new",
        "vip-match",
        "--lang",
        lang.name(),
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("./build.sh"), "{said}");
    assert!(
        said.contains("intake plugin test target/vip_match.wasm"),
        "{said}"
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("intake plugin test target/vip_match.wasm"),
        "{readme}"
    );

    if lang == Lang::Js {
        langs::js_sdk();
    }
    let build = Command::new(dir.join("build.sh"))
        .env("PATH", langs::path_with_tools())
        .output()
        .expect("run build.sh");
    assert!(
        build.status.success(),
        "build.sh: {}{}",
        text(&build.stdout),
        text(&build.stderr)
    );
    let component = dir.join("target/vip_match.wasm");
    let sample = dir.join("sample");
    let out = intake(&[
        "plugin",
        "test",
        component.to_str().unwrap(),
        "--message",
        sample.join("message.eml").to_str().unwrap(),
        "--contacts",
        sample.join("contacts.csv").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(report["disposition"]["kind"], "attach", "{report}");
    assert_eq!(
        report["disposition"]["parties"][0]["email"],
        "ann@acme.example"
    );
    assert_eq!(report["decided_by"], "vip_match");

    // Its configuration and its log line, as in the Rust project.
    let out = intake(&[
        "plugin",
        "test",
        component.to_str().unwrap(),
        "--message",
        sample.join("message.eml").to_str().unwrap(),
        "--config",
        r#"vip_match={"ignore_domains": ["ACME.example"]}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(report["disposition"]["kind"], "keep-unlinked", "{report}");
    assert_eq!(
        report["steps"][0]["logs"][0]["message"],
        "acme.example is ignored"
    );
    let out = intake(&[
        "plugin",
        "test",
        component.to_str().unwrap(),
        "--message",
        sample.join("message.eml").to_str().unwrap(),
        "--config",
        r#"vip_match={"ignore_domain": []}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown field `ignore_domain`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_new_python_project_builds_and_its_sample_is_attached() {
    scaffold_builds_and_its_sample_is_attached(Lang::Python);
}

#[test]
fn a_new_js_project_builds_and_its_sample_is_attached() {
    scaffold_builds_and_its_sample_is_attached(Lang::Js);
}
