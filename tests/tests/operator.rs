//! An operator's first hour (issue 14) and the terminal's safety (issue 8),
//! through the real command-line code in-process: the data directory,
//! owner-only files, keys and credential rotation, input checks, the views,
//! control characters, and domain matching over several imports.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::Parser;
use intake::cli::{Cli, run};
use intake::store::{MasterKey, Store, StoreLocation};
use intake_tests::{plugin, root};

/// One operator's environment: a data directory under a temporary dir.
struct Operator {
    _tmp: tempfile::TempDir,
    home: PathBuf,
}

impl Operator {
    fn new() -> Operator {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("data");
        Operator { _tmp: tmp, home }
    }

    fn dir(&self) -> &Path {
        self.home.parent().unwrap()
    }

    /// Runs `intake --home DATA ARGS`; returns (success, stdout + error).
    async fn run(&self, args: &[&str]) -> (bool, String) {
        let home = self.home.display().to_string();
        let mut full = vec!["intake", "--home", &home];
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

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.run(args).await;
        assert!(ok, "{args:?} failed: {out}");
        out
    }

    async fn fails(&self, args: &[&str]) -> String {
        let (ok, out) = self.run(args).await;
        assert!(!ok, "{args:?} should fail: {out}");
        out
    }

    /// A credential `box` and an IMAP account `sales` using it.
    async fn account(&self) {
        // SAFETY: every test sets the same value; tests only read it.
        unsafe { std::env::set_var("INTAKE_OPERATOR_SECRET", "s3cret") };
        self.ok(&[
            "credential",
            "add",
            "box",
            "--user",
            "u",
            "--secret-env",
            "INTAKE_OPERATOR_SECRET",
        ])
        .await;
        self.ok(&[
            "account",
            "add",
            "sales",
            "--protocol",
            "imap",
            "--host",
            "localhost",
            "--credential",
            "box",
        ])
        .await;
    }

    async fn store(&self) -> Store {
        Store::open(
            &StoreLocation::File(self.home.join("intake.db")),
            intake::store::OpenMode::Existing,
        )
        .await
        .unwrap()
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn assert_bundled() {
    assert!(
        intake::bundled::embedded(),
        "these tests use the plugins built into intake: run `./dev plugins` before building the tests"
    );
}

#[tokio::test]
async fn store_and_key_live_in_the_data_directory_owner_only() {
    let op = Operator::new();
    // Reading creates nothing, and says where it looked.
    let err = op.fails(&["account", "list"]).await;
    assert!(
        err.contains("no store at")
            && err.contains(&op.home.join("intake.db").display().to_string()),
        "{err}"
    );
    assert!(
        !op.home.exists(),
        "a read-only command created the data directory"
    );
    for read in [
        &["credential", "list"][..],
        &["contact", "list"],
        &["inbox", "sales"],
        &["quarantine", "list"],
        &["plugin", "list"],
    ] {
        op.fails(read).await;
    }
    assert!(!op.home.exists());

    op.account().await;
    let db = op.home.join("intake.db");
    assert_eq!(mode(&op.home), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&op.home.join("intake.key")), 0o600);
    for side in ["intake.db-wal", "intake.db-shm"] {
        let side = op.home.join(side);
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}", side.display());
        }
    }
    let list = op.ok(&["account", "list"]).await;
    assert!(list.contains("sales"), "{list}");
    let err = op.fails(&["--tenant", "typo", "account", "list"]).await;
    assert!(err.contains("no tenant \"typo\""), "{err}");

    // A store with credentials never gets a new key silently.
    std::fs::rename(op.home.join("intake.key"), op.dir().join("moved.key")).unwrap();
    let err = op
        .fails(&[
            "credential",
            "add",
            "other",
            "--user",
            "u",
            "--secret-env",
            "INTAKE_OPERATOR_SECRET",
        ])
        .await;
    assert!(
        err.contains("no master key") && err.contains("intake.key"),
        "{err}"
    );
    assert!(!op.home.join("intake.key").exists());

    // A store without accounts needs no key, and says which store it is.
    let other = Operator::new();
    other.ok(&["contact", "add", "ann@acme.example"]).await;
    let err = other.fails(&["fetch"]).await;
    assert!(
        err.contains("no enabled accounts")
            && err.contains("intake.db")
            && !err.contains("master key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_plain_path_names_a_sqlite_store() {
    let op = Operator::new();
    let db = op.dir().join("elsewhere").join("my.db");
    let db_arg = db.display().to_string();
    op.ok(&[
        "--database-url",
        &db_arg,
        "contact",
        "add",
        "ann@acme.example",
    ])
    .await;
    assert_eq!(mode(&db), 0o600);
    let list = op.ok(&["--database-url", &db_arg, "contact", "list"]).await;
    assert!(list.contains("ann@acme.example"), "{list}");
    let url = format!("sqlite://{db_arg}?mode=rwc");
    let list = op.ok(&["--database-url", &url, "contact", "list"]).await;
    assert!(list.contains("ann@acme.example"), "{list}");
}

#[tokio::test]
async fn keys_are_generated_never_overwritten_and_rotated() {
    let op = Operator::new();
    let new_key = op.dir().join("new.key");
    let new_arg = new_key.display().to_string();
    // A named key file that does not exist: the error says how to make one.
    let err = op
        .fails(&[
            "--key-file",
            &new_arg,
            "credential",
            "add",
            "x",
            "--user",
            "u",
            "--secret-env",
            "HOME",
        ])
        .await;
    assert!(
        err.contains("intake key generate") && err.contains(&new_arg),
        "{err}"
    );
    op.ok(&["key", "generate", &new_arg]).await;
    assert_eq!(mode(&new_key), 0o600);
    let before = std::fs::read(&new_key).unwrap();
    let err = op.fails(&["key", "generate", &new_arg]).await;
    assert!(err.contains("never overwritten"), "{err}");
    assert_eq!(std::fs::read(&new_key).unwrap(), before);

    // Credentials sealed with the default key open with the new one after
    // rotation, and no longer with the old one.
    op.account().await;
    let rotated = op.ok(&["key", "rotate", &new_arg]).await;
    assert!(rotated.contains("re-encrypted 1 credential"), "{rotated}");
    let store = op.store().await;
    let tenant = store.ensure_tenant("default").await.unwrap();
    let new = MasterKey::from_env_or_file(Some(&new_key)).unwrap();
    let old = MasterKey::from_env_or_file(Some(&op.home.join("intake.key"))).unwrap();
    assert_eq!(
        store
            .credential(tenant, "box", &new)
            .await
            .unwrap()
            .secret
            .expose(),
        "s3cret"
    );
    assert!(store.credential(tenant, "box", &old).await.is_err());
    // A wrong key says where it came from.
    let err = op.fails(&["account", "test", "sales"]).await;
    assert!(err.contains("intake.key"), "{err}");
}

#[tokio::test]
async fn credentials_are_changed_in_place() {
    let op = Operator::new();
    op.account().await;
    let err = op
        .fails(&[
            "credential",
            "add",
            "box",
            "--user",
            "u",
            "--secret-env",
            "INTAKE_OPERATOR_SECRET",
        ])
        .await;
    assert!(err.contains("intake credential set box"), "{err}");
    unsafe { std::env::set_var("INTAKE_OPERATOR_SECRET_2", "n3w") };
    op.ok(&[
        "credential",
        "set",
        "box",
        "--secret-env",
        "INTAKE_OPERATOR_SECRET_2",
    ])
    .await;
    let store = op.store().await;
    let tenant = store.ensure_tenant("default").await.unwrap();
    let key = MasterKey::from_env_or_file(Some(&op.home.join("intake.key"))).unwrap();
    let settings = store.settings(tenant, "sales", &key).await.unwrap();
    assert_eq!(settings.password.expose(), "n3w");
    assert_eq!(settings.username, "u");
    op.ok(&[
        "credential",
        "set",
        "box",
        "--user",
        "v",
        "--secret-env",
        "INTAKE_OPERATOR_SECRET_2",
    ])
    .await;
    let list = op.ok(&["credential", "list"]).await;
    assert!(
        list.starts_with("NAME") && list.contains("box") && list.contains(" v "),
        "{list}"
    );
    op.fails(&[
        "credential",
        "set",
        "nope",
        "--secret-env",
        "INTAKE_OPERATOR_SECRET_2",
    ])
    .await;
}

#[tokio::test]
async fn input_is_refused_with_help_or_reported_unchanged() {
    let op = Operator::new();
    op.account().await;
    let err = op
        .fails(&[
            "account",
            "add",
            "pop",
            "--protocol",
            "pop3",
            "--host",
            "localhost",
            "--credential",
            "box",
            "--folder",
            "Leads",
        ])
        .await;
    assert!(
        err.contains("--folder") && err.contains("POP3 account has one mailbox"),
        "{err}"
    );
    op.ok(&[
        "account",
        "add",
        "pop",
        "--protocol",
        "pop3",
        "--host",
        "localhost",
        "--credential",
        "box",
    ])
    .await;
    op.fails(&["account", "edit", "pop", "--folder", "Leads"])
        .await;

    let err = op.fails(&["account", "edit", "sales"]).await;
    assert!(err.contains("nothing to change"), "{err}");
    let out = op
        .ok(&["account", "edit", "sales", "--host", "localhost"])
        .await;
    assert!(out.contains("nothing changed"), "{out}");
    let out = op.ok(&["account", "edit", "sales", "--port", "1143"]).await;
    assert!(out.contains("updated account sales"), "{out}");

    let contacts = root().join("samples/contacts.csv").display().to_string();
    let first = op.ok(&["contact", "import", &contacts]).await;
    assert!(
        first.contains("4 created, 0 updated, 0 unchanged"),
        "{first}"
    );
    let again = op.ok(&["contact", "import", &contacts]).await;
    assert!(
        again.contains("0 created, 0 updated, 4 unchanged"),
        "{again}"
    );

    // The list shows the port in use and the flag's own words.
    let list = op.ok(&["account", "list"]).await;
    assert!(list.contains("KEEP ON SERVER"), "{list}");
    assert!(list.contains("localhost:1143"), "{list}");
    assert!(list.contains("localhost:995"), "{list}");
    let pop = list.lines().find(|l| l.starts_with("pop")).unwrap();
    // A POP3 account has no folders ("-"), and the state comes last.
    assert!(
        pop.contains("true") && pop.contains(" - ") && pop.trim_end().ends_with("ok"),
        "{pop}"
    );
}

#[tokio::test]
async fn the_views_show_what_an_operator_needs() {
    assert_bundled();
    let op = Operator::new();
    op.account().await;
    let contacts = root().join("samples/contacts.csv").display().to_string();
    let maildir = root().join("samples/maildir").display().to_string();
    op.ok(&["contact", "import", &contacts]).await;
    let summary = op
        .ok(&["import", "--maildir", &maildir, "--account", "sales"])
        .await;
    assert!(
        summary.contains("installed the default plugin chain (built into intake)"),
        "{summary}"
    );
    assert!(
        summary.contains("server actions 0 done, 0 failed"),
        "{summary}"
    );

    // Newest first, by date.
    let inbox = op.ok(&["inbox", "sales"]).await;
    let dates: Vec<&str> = inbox
        .lines()
        .skip(1)
        .filter_map(|l| l.get(7..23))
        .filter(|d| d.starts_with("20"))
        .collect();
    assert!(dates.len() > 5, "{inbox}");
    assert!(
        dates.windows(2).all(|w| w[0] >= w[1]),
        "not newest first:\n{inbox}"
    );

    let id_of = |text: &str, needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{needle} not in\n{text}"))
            .to_string()
    };
    let quarantine = op.ok(&["quarantine", "list"]).await;
    assert!(
        quarantine.lines().next().unwrap().contains("ACCOUNT"),
        "{quarantine}"
    );
    let broken = quarantine.lines().nth(1).unwrap();
    assert!(broken.contains("sales"), "{quarantine}");
    let shown = op
        .ok(&["message", "show", &id_of(&quarantine, "sales")])
        .await;
    assert!(
        shown.contains("reason:") && shown.contains("decided by:"),
        "{shown}"
    );

    let all = op.ok(&["inbox", "sales", "--limit", "100"]).await;
    let pdf = op.ok(&["message", "show", &id_of(&all, "Angebot")]).await;
    assert!(
        pdf.contains("attachment:  anforderungen.pdf (application/pdf"),
        "{pdf}"
    );
    let ann = op
        .ok(&["message", "show", &id_of(&all, "ann.lee@acme.example")])
        .await;
    assert!(
        ann.contains("from:        Ann Lee <ann.lee@acme.example>"),
        "{ann}"
    );
    assert!(ann.contains("account:     sales"), "{ann}");

    // What is inside the binary, with checksums.
    let bundled = op.ok(&["plugin", "list", "--bundled"]).await;
    for name in [
        "auto_reply_guard",
        "thread_match",
        "exact_match",
        "domain_match",
        "unknown_sender",
    ] {
        assert!(bundled.contains(name), "{bundled}");
    }
    assert_eq!(
        bundled
            .lines()
            .filter(|l| l.split_whitespace().last().is_some_and(|h| h.len() == 64))
            .count(),
        5,
        "{bundled}"
    );

    // A bundled plugin can be added again with another configuration.
    op.ok(&["plugin", "remove", "domain_match"]).await;
    let added = op
        .ok(&[
            "plugin",
            "add",
            "--bundled",
            "domain_match",
            "--config",
            r#"{"max_parties": 2}"#,
        ])
        .await;
    assert!(added.contains("added domain_match as matcher"), "{added}");
    let chain = op.ok(&["plugin", "list"]).await;
    assert!(chain.contains(r#"{"max_parties": 2}"#), "{chain}");
    op.fails(&["plugin", "add", "--bundled", "nope"]).await;
}

#[tokio::test]
async fn mail_and_plugin_text_cannot_drive_the_terminal() {
    let op = Operator::new();
    op.account().await;
    let mail = op.dir().join("evil");
    std::fs::create_dir_all(&mail).unwrap();
    std::fs::write(
        mail.join("1.eml"),
        b"Subject: \x1b[2J\x1b]0;owned\x07cleared\r\nFrom: \"\x1b[31mBoss\" <boss@evil.example>\r\nTo: sales@ourco.example\r\nMessage-ID: <e1@evil.example>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\nhi\r\n",
    )
    .unwrap();
    let hostile = plugin("hostile").display().to_string();
    let policy = plugin("unknown_sender").display().to_string();
    op.ok(&[
        "plugin",
        "add",
        &hostile,
        "--role",
        "matcher",
        "--config",
        r#"{"mode": "raw-echo"}"#,
    ])
    .await;
    op.ok(&["plugin", "add", &policy, "--role", "unknown-sender"])
        .await;
    let eml = mail.display().to_string();
    op.ok(&["import", "--eml", &eml, "--account", "sales"])
        .await;

    let quarantine = op.ok(&["quarantine", "list"]).await;
    assert!(
        quarantine.contains("first line: Subject: ^[[2J^[]0;owned^Gcleared"),
        "{quarantine}"
    );
    let inbox = op.ok(&["inbox", "sales"]).await;
    let id = inbox
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let shown = op.ok(&["message", "show", &id]).await;
    for text in [&quarantine, &inbox, &shown] {
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    }
    assert!(shown.contains("^[[31mBoss"), "{shown}");
}

/// A message from `from` with a fixed date (so the sequence is the same in
/// every tenant).
fn write_eml(dir: &Path, n: usize, from: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(format!("{n:02}.eml")),
        format!(
            "From: {from}\r\nTo: sales@ourco.example\r\nSubject: hello {n}\r\nMessage-ID: <m{n}@test>\r\nDate: Mon, 1 Jun 2026 10:{n:02}:00 +0000\r\n\r\nhello\r\n"
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn domain_matching_does_not_depend_on_arrival_order() {
    assert_bundled();
    let op = Operator::new();
    op.account().await;
    let contacts = op.dir().join("contacts.csv");
    std::fs::write(
        &contacts,
        "email,name,company,kind\nsofia@initech.example,Sofia Rossi,Initech,contact\nann@acme.example,Ann Lee,Acme,contact\nraj@acme.example,Raj Patel,Acme,contact\n",
    )
    .unwrap();
    let senders = [
        "Mateo Rossi <mateo@soylent.example>",
        "Dmitri Rossi <dmitri@soylent.example>",
        "Eve Adams <eve@soylent.example>",
        "Bob Stone <bob@initech.example>",
        "Tom Baker <tom@acme.example>",
    ];
    // Tenant `forward` gets the mail in two imports, in order; tenant
    // `backward` gets it one message per import, in reverse order.
    let dir = op.dir().join("mail");
    for (n, from) in senders.iter().enumerate() {
        write_eml(&dir.join(format!("one-{}", n.min(2))), n, from);
        write_eml(&dir.join(format!("single-{n}")), n, from);
    }
    let csv = contacts.display().to_string();
    let mut views = Vec::new();
    for (tenant, batches) in [
        ("forward", vec!["one-0", "one-1", "one-2"]),
        (
            "backward",
            vec!["single-4", "single-3", "single-2", "single-1", "single-0"],
        ),
    ] {
        let t = ["--tenant", tenant];
        let mut args = t.to_vec();
        args.extend([
            "credential",
            "add",
            "box",
            "--user",
            "u",
            "--secret-env",
            "INTAKE_OPERATOR_SECRET",
        ]);
        op.ok(&args).await;
        let mut args = t.to_vec();
        args.extend([
            "account",
            "add",
            "sales",
            "--protocol",
            "imap",
            "--host",
            "localhost",
            "--credential",
            "box",
        ]);
        op.ok(&args).await;
        let mut args = t.to_vec();
        args.extend(["contact", "import", &csv]);
        op.ok(&args).await;
        for batch in batches {
            let path = dir.join(batch).display().to_string();
            let mut args = t.to_vec();
            args.extend(["import", "--eml", &path, "--account", "sales"]);
            op.ok(&args).await;
        }
        let mut args = t.to_vec();
        args.extend(["inbox", "sales"]);
        let inbox = op.ok(&args).await;
        // FROM column onwards, minus the id: the same in both tenants.
        let mut lines: Vec<String> = inbox
            .lines()
            .skip(1)
            .map(|l| {
                let from = l.split_whitespace().nth(3).unwrap().to_string();
                let linked = l.split(" stored ").nth(1).unwrap_or("").trim().to_string();
                format!("{from} -> {linked}")
            })
            .collect();
        lines.sort();
        views.push(lines);
    }
    assert_eq!(views[0], views[1], "the outcome depends on arrival order");
    let view = views[0].join("\n");
    // Strangers at a company with no contact get leads of their own, with
    // the company; a company's only contact takes a new colleague's mail;
    // with two contacts the policy decides.
    for expected in [
        "eve@soylent.example -> Eve Adams (lead)",
        "mateo@soylent.example -> Mateo Rossi (lead)",
        "dmitri@soylent.example -> Dmitri Rossi (lead)",
        "bob@initech.example -> Sofia Rossi (contact)",
        "tom@acme.example -> Tom Baker (lead)",
    ] {
        assert!(view.contains(expected), "{expected} missing from\n{view}");
    }
    let leads = op
        .ok(&["--tenant", "backward", "contact", "list", "--kind", "lead"])
        .await;
    assert!(
        leads
            .lines()
            .any(|l| l.contains("eve@soylent.example") && l.contains("Soylent")),
        "{leads}"
    );
}
