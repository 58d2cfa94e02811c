//! `intake plugin new`: a plugin project that builds on its own, outside
//! this repository, on the SDK of this checkout by path (it is not on a
//! registry yet): a matcher skeleton, a sample message and contacts,
//! `build.sh`, and a README that ends with `intake plugin test`.
//!
//! - Rust: Cargo.toml on `plugin-sdk`, a native unit test, the reference
//!   plugins' release profile.
//! - Python: `app.py` on `plugin-sdk/python`, built by componentize-py.
//! - JavaScript: `app.js` on `plugin-sdk/js`, built by componentize-js
//!   through the SDK's `build.mjs`.

use std::path::{Path, PathBuf};

/// The languages a project can be started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust, on `intake-plugin-sdk`.
    Rust,
    /// Python, on `plugin-sdk/python` (componentize-py).
    Python,
    /// JavaScript (or TypeScript compiled to it), on `plugin-sdk/js`
    /// (componentize-js).
    Js,
}

impl std::str::FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" => Ok(Language::Rust),
            "python" => Ok(Language::Python),
            "js" => Ok(Language::Js),
            other => Err(format!(
                "unknown language {other:?} (expected rust, python or js)"
            )),
        }
    }
}

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a crate and component name.
    #[error(
        "{0:?} cannot name a plugin: use 1 to 64 lower-case letters, digits, `-` or `_`, starting with a letter"
    )]
    Name(String),
    /// The SDK to depend on is not where it was looked for.
    #[error(
        "the plugin SDK is not at {0} (it is not on a package registry yet): give --sdk PATH/TO/intake/plugin-sdk"
    )]
    Sdk(PathBuf),
    /// The target directory holds files already.
    #[error("{0} exists and is not empty: choose another --dir")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The SDK of the checkout this binary was built from: the default
/// dependency of a new project.
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk")
}

/// What `plugin new` wrote.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project directory.
    pub dir: PathBuf,
    /// The files, relative to it.
    pub files: Vec<PathBuf>,
    /// The component `build.sh` makes, relative to the project.
    pub component: PathBuf,
    /// The commands that take it from here to `intake plugin test`.
    pub steps: Vec<String>,
}

/// Writes a new project named `name` into `dir` (created; it must be empty
/// if it exists), depending on the SDK at `sdk` (the `plugin-sdk` folder;
/// Python and JavaScript use its `python/` and `js/`).
pub fn new_project(
    name: &str,
    language: Language,
    dir: &Path,
    sdk: &Path,
) -> Result<Project, ScaffoldError> {
    check_name(name)?;
    let sdk = sdk
        .canonicalize()
        .ok()
        .filter(|p| is_sdk(p, language))
        .ok_or_else(|| ScaffoldError::Sdk(sdk.to_path_buf()))?;
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|source| ScaffoldError::Write {
                path: dir.to_path_buf(),
                source,
            })?
            .next()
            .is_none();
        if !empty {
            return Err(ScaffoldError::Exists(dir.to_path_buf()));
        }
    }
    let files = match language {
        Language::Rust => rust_files(name, &sdk),
        Language::Python => other_files(name, &sdk, language),
        Language::Js => other_files(name, &sdk, language),
    };
    for (relative, text) in &files {
        let path = dir.join(relative);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)?;
            if relative.ends_with("build.sh") {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
            }
            Ok(())
        };
        write().map_err(|source| ScaffoldError::Write {
            path: path.clone(),
            source,
        })?;
    }
    let component = component_path(name, language);
    let test = format!(
        "intake plugin test {} --message sample/message.eml --contacts sample/contacts.csv --pretty",
        component.display()
    );
    let steps = match language {
        Language::Rust => vec!["cargo test".into(), "./build.sh".into(), test],
        Language::Python | Language::Js => vec!["./build.sh".into(), test],
    };
    Ok(Project {
        dir: dir.to_path_buf(),
        files: files.into_iter().map(|(p, _)| p).collect(),
        component,
        steps,
    })
}

/// Where `build.sh` puts the component.
pub fn component_path(name: &str, language: Language) -> PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    match language {
        Language::Rust => Path::new("target/wasm32-wasip2/release").join(file),
        Language::Python | Language::Js => Path::new("target").join(file),
    }
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ScaffoldError::Name(name.to_string()))
    }
}

fn is_sdk(dir: &Path, language: Language) -> bool {
    match language {
        Language::Rust => std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|t| t.contains("name = \"intake-plugin-sdk\"")),
        Language::Python => dir.join("python/intake_plugin/__init__.py").is_file(),
        Language::Js => std::fs::read_to_string(dir.join("js/package.json"))
            .is_ok_and(|t| t.contains("\"name\": \"intake-plugin-sdk\"")),
    }
}

/// The project's files: path relative to the project, contents.
fn rust_files(name: &str, sdk: &Path) -> Vec<(PathBuf, String)> {
    let snake = name.replace('-', "_");
    let type_name = type_name(name);
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{snake}}", &snake)
            .replace("{{Type}}", &type_name)
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace(
                "{{component}}",
                &component_path(name, Language::Rust).display().to_string(),
            )
    };
    [
        ("Cargo.toml", CARGO_TOML),
        ("src/lib.rs", LIB_RS),
        ("sample/message.eml", SAMPLE_EML),
        ("sample/contacts.csv", SAMPLE_CONTACTS),
        ("build.sh", BUILD_SH),
        ("README.md", README_MD),
        (".gitignore", "/target\n"),
    ]
    .into_iter()
    .map(|(path, template)| (PathBuf::from(path), fill(template)))
    .collect()
}

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
rust-version = "1.88"
publish = false

[lib]
# A component for the engine (cdylib); `cargo test` runs the unit tests
# natively.
crate-type = ["cdylib"]

[dependencies]
# The SDK is not on crates.io yet: this is the copy in the Intake checkout
# that made this project. Point it at yours, or at a git URL.
intake-plugin-sdk = { path = "{{sdk}}" }
serde = { version = "1", features = ["derive"] }

# Intake's reference plugins are built this way: small, and a panic aborts
# the instance instead of unwinding through the component boundary.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A project of its own, even inside another Cargo workspace.
[workspace]
"#;

const LIB_RS: &str = r##"//! {{name}}: an Intake matcher. It attaches a message to the contacts and
//! leads whose address is the sender's, unless the sender's domain is
//! listed in `ignore_domains`.
//!
//! Configuration (binding name `{{snake}}`):
//! ```json
//! { "ignore_domains": ["our-company.example"] }
//! ```

use intake_plugin_sdk::{Directory, Error, Matcher, Message, Plugin, Verdict, address, log};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Sender domains never matched (your own, say).
    ignore_domains: Vec<String>,
}

struct {{Type}} {
    config: Config,
}

impl Plugin for {{Type}} {
    type Config = Config;

    // What the engine checks before the plugin runs: `intake plugin add`,
    // `plugin check` and `plugin test` name a missing required setting or
    // one of the wrong type. Mark a setting `required` when the plugin is
    // useless without it.
    const CONFIG_SCHEMA: &'static str = intake_plugin_sdk::config_schema! {
        ignore_domains: array optional "Sender domains never matched",
    };

    fn new(config: Config) -> Result<Self, Error> {
        Ok({{Type}} { config })
    }
}

impl Matcher for {{Type}} {
    fn match_message(
        &self,
        message: &Message,
        directory: &dyn Directory,
    ) -> Result<Verdict, Error> {
        let Some(sender) = message.sender_address() else {
            return Ok(Verdict::no_opinion());
        };
        if let Some(domain) = address::domain(sender)
            && self
                .config
                .ignore_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
        {
            log::info(&format!("{domain} is ignored"));
            return Ok(Verdict::no_opinion());
        }
        let found = directory.find_by_address(sender)?;
        Ok(Verdict::attach(
            found.parties.iter().map(|p| p.to_ref()).collect(),
        ))
    }
}

intake_plugin_sdk::export_plugin!({{Type}}: matcher);

#[cfg(test)]
mod tests {
    use super::*;
    use intake_plugin_sdk::testing::{MessageBuilder, logs, run_matcher};
    use intake_plugin_sdk::{MemoryDirectory, Outcome, PartyKind};

    fn directory() -> MemoryDirectory {
        MemoryDirectory::new().with_party(PartyKind::Contact, "ann@acme.example", Some("Ann"))
    }

    #[test]
    fn attaches_a_known_sender() {
        let message = MessageBuilder::new().from("Ann <Ann@Acme.example>").build();
        let verdict = run_matcher::<{{Type}}>("{}", &message, &directory()).unwrap();
        assert!(matches!(verdict.outcome, Outcome::Attach(ref p) if p.len() == 1));
    }

    #[test]
    fn ignores_listed_domains_and_says_so() {
        let message = MessageBuilder::new().from("ann@acme.example").build();
        let config = r#"{"ignore_domains": ["acme.example"]}"#;
        let verdict = run_matcher::<{{Type}}>(config, &message, &directory()).unwrap();
        assert_eq!(verdict.outcome, Outcome::NoOpinion);
        assert_eq!(logs()[0].message, "acme.example is ignored");
    }

    #[test]
    fn refuses_a_setting_of_the_wrong_type() {
        let message = MessageBuilder::new().build();
        let err = run_matcher::<{{Type}}>(
            r#"{"ignore_domains": "acme.example"}"#,
            &message,
            &directory(),
        )
        .unwrap_err();
        assert!(err.contains("`ignore_domains` must be an array"), "{err}");
    }
}
"##;

/// `vip-match` -> `VipMatch`.
fn type_name(name: &str) -> String {
    name.replace('-', "_")
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The files of a Python or JavaScript project: the app, a sample message
/// and contacts (the Rust project's), `build.sh` and the README.
fn other_files(name: &str, sdk: &Path, language: Language) -> Vec<(PathBuf, String)> {
    let snake = name.replace('-', "_");
    let (app_name, app, build, readme, ignore, sdk_dir) = match language {
        Language::Python => (
            "app.py",
            PYTHON_APP,
            PYTHON_BUILD_SH,
            PYTHON_README_MD,
            "/target\n__pycache__/\n",
            sdk.join("python"),
        ),
        Language::Js | Language::Rust => (
            "app.js",
            JS_APP,
            JS_BUILD_SH,
            JS_README_MD,
            "/target\n/node_modules\n",
            sdk.join("js"),
        ),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{snake}}", &snake)
            .replace("{{Type}}", &type_name(name))
            .replace("{{sdk}}", &sdk_dir.display().to_string())
            .replace(
                "{{component}}",
                &component_path(name, language).display().to_string(),
            )
    };
    [
        (app_name, app),
        ("sample/message.eml", SAMPLE_EML),
        ("sample/contacts.csv", SAMPLE_CONTACTS),
        ("build.sh", build),
        ("README.md", readme),
        (".gitignore", ignore),
    ]
    .into_iter()
    .map(|(path, template)| (PathBuf::from(path), fill(template)))
    .collect()
}

const PYTHON_APP: &str = r##""""{{name}}: an Intake matcher. It attaches a message to the contacts and
leads whose address is the sender's, unless the sender's domain is listed in
``ignore_domains``.

Configuration (binding name ``{{snake}}``)::

    { "ignore_domains": ["our-company.example"] }
"""

import intake_plugin
from intake_plugin import Plugin, Verdict, address, log


class {{Type}}(Plugin):
    # The settings the configuration may give: another key, or a value of
    # the wrong type, is refused with the field named.
    CONFIG = {"ignore_domains": "array"}

    def __init__(self, config):
        self.ignore_domains = [d.lower() for d in config.get("ignore_domains", [])]

    def match(self, message, directory):
        sender = message.sender_address()
        if sender is None:
            return Verdict.no_opinion()
        domain = address.domain(sender)
        if domain is not None and domain.lower() in self.ignore_domains:
            log.info(f"{domain} is ignored")
            return Verdict.no_opinion()
        found = directory.find_by_address(sender)
        return Verdict.attach([party.to_ref() for party in found.parties])


# The component's exports: componentize-py looks for these two names.
Lifecycle, Matcher = intake_plugin.export({{Type}}, "matcher")
"##;

const PYTHON_BUILD_SH: &str = r#"#!/usr/bin/env sh
# Builds the component the engine loads: {{component}}
# Needs componentize-py (pip install componentize-py==0.25.1).
set -eu
cd "$(dirname "$0")"
sdk="{{sdk}}"
if ! command -v componentize-py >/dev/null; then
  echo "componentize-py is not on PATH: pip install componentize-py==0.25.1 (in a virtual environment)" >&2
  exit 1
fi
mkdir -p target
componentize-py -d "$sdk/wit" -w matcher-plugin componentize app -p . -p "$sdk" -o {{component}}
echo "built {{component}}"
"#;

const PYTHON_README_MD: &str = r#"# {{name}}

An [Intake](https://example.invalid/intake) matcher plugin in Python, built
into a WebAssembly component by componentize-py.

The SDK (`intake_plugin`) is not on PyPI yet: `build.sh` takes it from the
Intake checkout that created this project (`{{sdk}}`). Change that path if
you move the project to another machine.

## Build the component

```sh
pip install componentize-py==0.25.1   # once, in a virtual environment
./build.sh
# -> {{component}}
```

componentize-py runs `app.py` once at build time and snapshots the
interpreter, so module-level code runs then, not per message. A plugin has
no file system, network or environment at run time: import everything at
the top of the module.

## Try it on mail

```sh
intake plugin test {{component}} \
    --message sample/message.eml --contacts sample/contacts.csv --pretty
```

One JSON object per message: the `disposition` (here an `attach` to Ann),
who decided, and per plugin `steps` with timings, errors and the lines it
logged. Pass a configuration with
`--config '{{snake}}={"ignore_domains": ["acme.example"]}'` (the name is the
file stem), and check the component on its own with
`intake plugin check {{component}}`.

More: the Python section of `docs/plugins.md` in the Intake repository.
"#;

const JS_APP: &str = r#"// {{name}}: an Intake matcher. It attaches a message to the contacts and
// leads whose address is the sender's, unless the sender's domain is listed
// in `ignore_domains`.
//
// Configuration (binding name `{{snake}}`):
//   { "ignore_domains": ["our-company.example"] }

import { Plugin, Verdict, address, exportPlugin, log } from 'intake-plugin-sdk';

class {{Type}} extends Plugin {
  // The settings the configuration may give: another key, or a value of the
  // wrong type, is refused with the field named.
  static config = { ignore_domains: 'array' };

  constructor(config) {
    super(config);
    this.ignoreDomains = (config.ignore_domains ?? []).map((d) => d.toLowerCase());
  }

  match(message, directory) {
    const sender = message.senderAddress();
    if (sender === null) return Verdict.noOpinion();
    const domain = address.domain(sender);
    if (domain !== null && this.ignoreDomains.includes(domain.toLowerCase())) {
      log.info(`${domain} is ignored`);
      return Verdict.noOpinion();
    }
    const found = directory.findByAddress(sender);
    return Verdict.attach(found.parties.map((party) => party.toRef()));
  }
}

// The component's exports: componentize-js looks for these two names.
export const { lifecycle, matcher } = exportPlugin({{Type}}, 'matcher');
"#;

const JS_BUILD_SH: &str = r#"#!/usr/bin/env sh
# Builds the component the engine loads: {{component}}
# Needs Node.js 20+ and the SDK's build tools (npm ci in the SDK, once).
set -eu
cd "$(dirname "$0")"
sdk="{{sdk}}"
if [ ! -d "$sdk/node_modules/@bytecodealliance/componentize-js" ]; then
  echo "the SDK's build tools are not installed: (cd $sdk && npm ci)" >&2
  exit 1
fi
node "$sdk/build.mjs" app.js -o {{component}}
"#;

const JS_README_MD: &str = r#"# {{name}}

An [Intake](https://example.invalid/intake) matcher plugin in JavaScript,
built into a WebAssembly component by componentize-js.

The SDK (`intake-plugin-sdk`) is not on npm yet: `build.sh` takes it, and
the pinned componentize-js it builds with, from the Intake checkout that
created this project (`{{sdk}}`). Change that path if you move the project
to another machine.

## Build the component

```sh
(cd {{sdk}} && npm ci)   # once: componentize-js and jco, pinned
./build.sh
# -> {{component}}
```

`app.js` imports the SDK as `intake-plugin-sdk`; the SDK's `build.mjs`
stages the project with a copy of it and runs componentize-js, leaving out
`fetch` (the engine grants a plugin no network). The module's top level runs
once at build time (the engine is snapshotted), not per message. For
TypeScript, compile to JavaScript first (`tsc`); the SDK ships `index.d.ts`.

## Try it on mail

```sh
intake plugin test {{component}} \
    --message sample/message.eml --contacts sample/contacts.csv --pretty
```

One JSON object per message: the `disposition` (here an `attach` to Ann),
who decided, and per plugin `steps` with timings, errors and the lines it
logged. Pass a configuration with
`--config '{{snake}}={"ignore_domains": ["acme.example"]}'` (the name is the
file stem), and check the component on its own with
`intake plugin check {{component}}`.

More: the JavaScript section of `docs/plugins.md` in the Intake repository.
"#;

const SAMPLE_EML: &str = "From: Ann Lee <ann@acme.example>\r\n\
To: sales@ourco.example\r\n\
Subject: Our order\r\n\
Message-ID: <sample-1@acme.example>\r\n\
Date: Mon, 02 Nov 2026 09:00:00 +0100\r\n\
\r\n\
Hello, a question about our order.\r\n";

const SAMPLE_CONTACTS: &str = "email,name,company,kind\nann@acme.example,Ann Lee,Acme,contact\n";

const BUILD_SH: &str = r#"#!/usr/bin/env sh
# Builds the component the engine loads: {{component}}
set -eu
cd "$(dirname "$0")"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
cargo build --release --target wasm32-wasip2 "$@"
echo "built {{component}}"
"#;

const README_MD: &str = r#"# {{name}}

An [Intake](https://example.invalid/intake) matcher plugin, written with
`intake-plugin-sdk`.

The SDK is not on crates.io yet: `Cargo.toml` depends on the copy in the
Intake checkout that created this project
(`{{sdk}}`). Change that path (or use a git dependency) if you move the
project to another machine.

## Test it natively

```sh
cargo test
```

The SDK's test helpers apply the engine's checks (the configuration schema,
look-up arguments, the verdict's rules, attached parties) and collect the
plugin's log lines (`testing::logs()`).

## Build the component

```sh
./build.sh        # cargo build --release --target wasm32-wasip2
# -> {{component}}
```

## Try it on mail

```sh
intake plugin test {{component}} \
    --message sample/message.eml --contacts sample/contacts.csv --pretty
```

One JSON object per message: the `disposition` (here an `attach` to Ann),
who decided, and per plugin `steps` with timings, errors and the lines it
logged. Pass a configuration with
`--config '{{snake}}={"ignore_domains": ["acme.example"]}'` (the name is the
file stem), and check the component on its own with
`intake plugin check {{component}} --config '{...}'`.

More: `docs/plugins.md` in the Intake repository, and
`cargo doc -p intake-plugin-sdk --open` for the SDK's API.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_languages_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = default_sdk_path();
        for bad in ["", "Vip", "9lives", "a b", "a/b"] {
            assert!(matches!(
                new_project(bad, Language::Rust, &dir.path().join("x"), &sdk),
                Err(ScaffoldError::Name(_))
            ));
        }
        assert!(matches!(
            new_project("vip", Language::Rust, &dir.path().join("x"), dir.path()),
            Err(ScaffoldError::Sdk(_))
        ));
    }

    #[test]
    fn writes_a_project_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("vip-match");
        let project =
            new_project("vip-match", Language::Rust, &target, &default_sdk_path()).unwrap();
        assert_eq!(
            project.component,
            Path::new("target/wasm32-wasip2/release/vip_match.wasm")
        );
        let lib = std::fs::read_to_string(target.join("src/lib.rs")).unwrap();
        assert!(lib.contains("export_plugin!(VipMatch: matcher)"), "{lib}");
        let manifest = std::fs::read_to_string(target.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("panic = \"abort\""));
        assert!(!manifest.contains("{{"), "{manifest}");
        assert!(matches!(
            new_project("vip-match", Language::Rust, &target, &default_sdk_path()),
            Err(ScaffoldError::Exists(_))
        ));
    }

    #[test]
    fn writes_python_and_js_projects_on_the_sdk_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = default_sdk_path().canonicalize().unwrap();
        let py = new_project("vip-match", Language::Python, &dir.path().join("py"), &sdk).unwrap();
        assert_eq!(py.component, Path::new("target/vip_match.wasm"));
        let app = std::fs::read_to_string(py.dir.join("app.py")).unwrap();
        assert!(
            app.contains("Lifecycle, Matcher = intake_plugin.export(VipMatch, \"matcher\")"),
            "{app}"
        );
        let build = std::fs::read_to_string(py.dir.join("build.sh")).unwrap();
        assert!(
            build.contains(&format!("sdk=\"{}\"", sdk.join("python").display())),
            "{build}"
        );
        let js = new_project("vip-match", Language::Js, &dir.path().join("js"), &sdk).unwrap();
        let app = std::fs::read_to_string(js.dir.join("app.js")).unwrap();
        assert!(app.contains("exportPlugin(VipMatch, 'matcher')"), "{app}");
        let readme = std::fs::read_to_string(js.dir.join("README.md")).unwrap();
        assert!(
            readme.contains("intake plugin test target/vip_match.wasm"),
            "{readme}"
        );
        for project in [&py, &js] {
            assert_eq!(project.steps[0], "./build.sh");
            for file in &project.files {
                let text = std::fs::read_to_string(project.dir.join(file)).unwrap();
                assert!(!text.contains("{{"), "{}: {text}", file.display());
            }
        }
        // The SDK is checked for the language asked for.
        assert!(matches!(
            new_project("vip", Language::Js, &dir.path().join("x"), &sdk.join("src")),
            Err(ScaffoldError::Sdk(_))
        ));
    }
}
