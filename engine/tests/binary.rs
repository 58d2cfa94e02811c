//! The `intake` binary as an operator runs it: one file, no environment
//! variables, any current directory; the store named on stderr; no colour
//! codes in a log that is not a terminal; quiet when stdout is closed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `intake` with nothing set but `HOME` (and `PATH`), run in `cwd`, logging
/// at `info` to a pipe.
fn intake(home: &Path, cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_intake"));
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("INTAKE_LOG", "info")
        .current_dir(cwd)
        .args(args);
    cmd
}

fn run(home: &Path, cwd: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = intake(home, cwd, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in a pipe: {stderr:?}"
    );
    out
}

fn samples(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples")
        .join(name)
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn one_binary_from_any_directory_without_settings() {
    assert!(
        intake::bundled::embedded(),
        "this test needs the plugins built into intake: run `./dev plugins`, then the tests"
    );
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&home, &a, &b] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let store = home.join(".local/share/intake/intake.db");
    let store_line = format!("store: {}", store.display());

    let (contacts, maildir) = (samples("contacts.csv"), samples("maildir"));
    let steps: [(&[&str], &str); 4] = [
        (
            &["credential", "add", "box", "--user", "u", "--secret-stdin"],
            "s3cret\n",
        ),
        (
            &[
                "account",
                "add",
                "samples",
                "--protocol",
                "imap",
                "--host",
                "localhost",
                "--credential",
                "box",
            ],
            "",
        ),
        (&["contact", "import", &contacts], ""),
        (
            &["import", "--maildir", &maildir, "--account", "samples"],
            "",
        ),
    ];
    for (args, stdin) in steps {
        let out = run(&home, &a, args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.lines().filter(|l| *l == store_line).count(),
            1,
            "{args:?} should name the store once: {stderr}"
        );
        if args[0] == "import" {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("(built into intake)"), "{stdout}");
        }
    }
    assert!(
        std::fs::read_dir(&a).unwrap().next().is_none(),
        "files were left in the current directory"
    );
    assert!(home.join(".local/share/intake/intake.key").exists());

    // Another directory, the same data; reading names nothing on stderr.
    let out = run(&home, &b, &["inbox", "samples"], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Quote for 40 licences"), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("store:"));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    run(
        tmp.path(),
        tmp.path(),
        &["contact", "add", "ann@acme.example"],
        "",
    );
    // The reading end is closed before intake writes: every write fails
    // with EPIPE, as under `intake contact list | head -0`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = intake(tmp.path(), tmp.path(), &["contact", "list"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("Broken pipe") && !stderr.contains("error"),
        "{stderr}"
    );
}
