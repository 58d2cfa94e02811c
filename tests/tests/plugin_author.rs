//! A plugin author's loop, as the issue's new author met it: `intake plugin
//! new` writes a project outside this checkout, which builds for
//! wasm32-wasip2 and passes its own unit tests; `intake plugin test` and
//! `plugin check` run it, read its configuration schema from the component
//! and name a missing or mistyped setting; the offline commands' input
//! handling, help and logs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use intake_tests::{fixture, plugin, root};

/// The `intake` binary, run as a user runs it (stderr redirected).
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

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Redirected output carries no colour codes.
fn assert_plain(out: &Output) {
    assert!(
        !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
        "ANSI escape in redirected output: {}",
        text(&out.stderr)
    );
}

fn cargo(dir: &Path, target_dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} in {} failed:\n{}",
        dir.display(),
        text(&out.stderr)
    );
    out
}

/// A project from `intake plugin new`, in the system's temporary directory
/// (outside this checkout), built for wasm32-wasip2 once per test process.
/// The build's target directory is kept between runs, so only the first
/// run compiles the SDK's dependencies.
struct NewProject {
    dir: PathBuf,
    target_dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl NewProject {
    fn component(&self) -> PathBuf {
        self.target_dir.join("wasm32-wasip2/release/vip_match.wasm")
    }

    fn build(&self) {
        cargo(
            &self.dir,
            &self.target_dir,
            &["build", "--release", "--target", "wasm32-wasip2"],
        );
    }
}

fn new_project() -> &'static NewProject {
    static PROJECT: OnceLock<NewProject> = OnceLock::new();
    PROJECT.get_or_init(|| {
        let temp = tempfile::tempdir().unwrap();
        assert!(
            !temp.path().starts_with(root()),
            "the project must be outside the checkout"
        );
        let dir = temp.path().join("vip-match");
        let out = intake(&[
            "plugin",
            "new",
            "vip-match",
            "--lang",
            "rust",
            "--dir",
            dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("intake plugin test"));
        let project = NewProject {
            dir,
            target_dir: std::env::temp_dir().join("intake-plugin-new-target"),
            _temp: temp,
        };
        project.build();
        project
    })
}

#[test]
fn a_new_project_builds_outside_the_tree_and_its_sample_is_attached() {
    let project = new_project();
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "sample/message.eml",
        "build.sh",
        "README.md",
    ] {
        assert!(project.dir.join(file).is_file(), "{file}");
    }
    let readme = std::fs::read_to_string(project.dir.join("README.md")).unwrap();
    assert!(readme.contains("intake plugin test"), "{readme}");
    assert!(readme.contains("not on crates.io"), "{readme}");

    let component = project.component();
    let sample = project.dir.join("sample");
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
    assert_plain(&out);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["disposition"]["kind"], "attach");
    assert_eq!(
        lines[0]["disposition"]["parties"][0]["email"],
        "ann@acme.example"
    );
    assert_eq!(lines[0]["decided_by"], "vip_match");

    // Its log line reaches the step; its name is the file stem.
    let out = intake(&[
        "plugin",
        "test",
        component.to_str().unwrap(),
        "--message",
        sample.join("message.eml").to_str().unwrap(),
        "--config",
        r#"vip_match={"ignore_domains": ["acme.example"]}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_plain(&out);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["disposition"]["kind"], "keep-unlinked");
    assert_eq!(
        lines[0]["steps"][0]["logs"][0]["message"],
        "acme.example is ignored"
    );
    assert_eq!(lines[0]["steps"][0]["logs"][0]["level"], "info");
    // On stderr too, without colour.
    assert!(text(&out.stderr).contains("acme.example is ignored"));
}

#[test]
fn the_new_project_passes_its_own_unit_tests() {
    let project = new_project();
    let out = cargo(&project.dir, &project.target_dir, &["test"]);
    let said = text(&out.stdout);
    assert!(said.contains("3 passed"), "{said}");
}

#[test]
fn the_schema_in_the_component_names_a_mistyped_or_missing_setting() {
    let project = new_project();
    let component = project.component();
    let component = component.to_str().unwrap();
    let message = project.dir.join("sample/message.eml");

    let out = intake(&[
        "plugin",
        "test",
        component,
        "--message",
        message.to_str().unwrap(),
        "--config",
        r#"vip_match={"ignore_domains": "acme.example"}"#,
    ]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("vip_match: invalid configuration: `ignore_domains` must be an array"),
        "{said}"
    );

    let out = intake(&["plugin", "check", component]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("exports matcher"), "{said}");
    assert!(said.contains("ignore_domains"), "{said}");
    assert!(said.contains("optional"), "{said}");

    // The same project with the setting required: without it, the plugin
    // is refused before any mail is matched (a copy, so the other tests'
    // component stays as generated).
    let strict = project._temp.path().join("strict");
    copy_dir(&project.dir, &strict);
    let lib = strict.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    let source = source.replace(
        "ignore_domains: array optional",
        "ignore_domains: array required",
    );
    std::fs::write(&lib, source).unwrap();
    cargo(
        &strict,
        &project.target_dir.join("strict"),
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
    let strict_component = project
        .target_dir
        .join("strict/wasm32-wasip2/release/vip_match.wasm");
    let out = intake(&[
        "plugin",
        "test",
        strict_component.to_str().unwrap(),
        "--message",
        message.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("`ignore_domains` is required: an array (Sender domains never matched)"),
        "{said}"
    );
    let out = intake(&[
        "plugin",
        "check",
        strict_component.to_str().unwrap(),
        "--config",
        r#"{"ignore_domains": ["ourco.example"]}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Copies a directory tree, following links (as `cp -rL`), leaving out
/// build output.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "target" {
            continue;
        }
        let target = to.join(entry.file_name());
        if std::fs::metadata(entry.path()).unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn plugin_new_refuses_other_languages_and_existing_projects() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("p");
    let out = intake(&[
        "plugin",
        "new",
        "p",
        "--lang",
        "cobol",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("rust") && said.contains("python") && said.contains("js"),
        "{said}"
    );
    assert!(!dir.exists());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let out = intake(&["plugin", "new", "p", "--dir", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_directory_gives_only_its_mail_and_names_what_it_skipped() {
    let temp = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("contact-plain.eml"), temp.path().join("a.eml")).unwrap();
    std::fs::copy(fixture("contacts.csv"), temp.path().join("contacts.csv")).unwrap();
    let mbox = "From ann@acme.example Mon Nov  2 09:00:00 2026\n\
                From: ann@acme.example\nMessage-ID: <m1@acme.example>\nSubject: one\n\nfirst\n\n\
                From bo@acme.example Mon Nov  2 10:00:00 2026\n\
                From: bo@acme.example\nMessage-ID: <m2@acme.example>\nSubject: two\n\n>From here\n";
    std::fs::write(temp.path().join("box.mbox"), mbox).unwrap();
    let exact = plugin("exact_match");
    let out = intake(&[
        "plugin",
        "test",
        exact.to_str().unwrap(),
        "--message",
        temp.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_plain(&out);
    let lines = json_lines(&out);
    let files: Vec<&str> = lines.iter().map(|l| l["file"].as_str().unwrap()).collect();
    assert_eq!(files.len(), 3, "the .eml and the mbox's two: {files:?}");
    assert!(files[0].ends_with("a.eml"), "{files:?}");
    assert!(
        files[1].ends_with("box.mbox#1") && files[2].ends_with("box.mbox#2"),
        "{files:?}"
    );
    assert_eq!(lines[2]["subject"], "two");
    let said = text(&out.stderr);
    assert!(
        said.contains("contacts.csv") && said.contains("skipped"),
        "{said}"
    );
}

#[test]
fn several_messages_follow_one_flag_and_a_message_given_as_plugin_gets_a_hint() {
    let exact = plugin("exact_match");
    let a = fixture("contact-plain.eml");
    let b = fixture("plus-address.eml");
    let out = intake(&[
        "plugin",
        "test",
        exact.to_str().unwrap(),
        "--message",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_lines(&out).len(), 2);

    // The old shape of the mistake: the shell's second file lands among
    // the plugins.
    let out = intake(&[
        "plugin",
        "test",
        exact.to_str().unwrap(),
        b.to_str().unwrap(),
        "--message",
        a.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("is a mail message, not a WebAssembly component"),
        "{said}"
    );
    assert!(said.contains("--message a.eml b.eml"), "{said}");
    assert!(!said.contains("magic"), "{said}");
}

#[test]
fn offline_commands_do_not_offer_the_store_options() {
    for command in ["test", "check", "new"] {
        let out = intake(&["plugin", command, "--help"]);
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(!help.contains("--database-url"), "plugin {command}: {help}");
        assert!(!help.contains("--key-file"), "plugin {command}: {help}");
        assert!(help.contains("--tenant"), "plugin {command}: {help}");
    }
    // Commands on the store still list them.
    let out = intake(&["plugin", "add", "--help"]);
    let help = text(&out.stdout);
    assert!(
        help.contains("--database-url") && help.contains("--key-file"),
        "{help}"
    );
}

/// A copy of `plugin-sdk/` as a vendor takes it (links followed), somewhere
/// without our workspace: its manifest inherits nothing, the contract comes
/// along, and it builds for the plugin target.
#[test]
fn the_sdk_builds_as_a_copy_outside_the_checkout() {
    let temp = tempfile::tempdir().unwrap();
    let copy = temp.path().join("plugin-sdk");
    copy_dir(&root().join("plugin-sdk"), &copy);
    let manifest = std::fs::read_to_string(copy.join("Cargo.toml")).unwrap();
    assert!(!manifest.contains(".workspace"), "{manifest}");
    for key in [
        "rust-version",
        "license",
        "description",
        "repository",
        "readme",
    ] {
        assert!(manifest.contains(&format!("\n{key} = ")), "{key} missing");
    }
    let target_dir = std::env::temp_dir().join("intake-plugin-new-target");
    cargo(
        &copy,
        &target_dir,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
}
