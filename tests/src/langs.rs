//! Plugins written in Python and JavaScript, built from source for the
//! tests and benchmarks: componentize-py (from `$INTAKE_TEST_PYTHON`'s
//! virtual environment, which `./dev test` fills) and componentize-js (from
//! `plugin-sdk/js/node_modules`, `npm ci` there).
//!
//! Building one takes 10 to 30 seconds, so a component is kept under
//! `target/lang-plugins/`, keyed by a hash of everything it is built from
//! (the app's folder, the SDK, the contract and the tool's version): a warm
//! run builds nothing, and the engine's compiled-component cache, keyed by
//! the component's bytes, hits too.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::root;

/// A plugin language other than Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// componentize-py on `plugin-sdk/python`.
    Python,
    /// componentize-js on `plugin-sdk/js`.
    Js,
}

impl Lang {
    /// `python` or `js`, as `intake plugin new --lang` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

/// The componentize-py command: beside `$INTAKE_TEST_PYTHON`, else in
/// `~/.cache/intake/venv` (where `./dev test` installs it).
pub fn componentize_py() -> PathBuf {
    let venv_bin = std::env::var_os("INTAKE_TEST_PYTHON")
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/intake/venv/bin")));
    let found = venv_bin
        .map(|dir| dir.join("componentize-py"))
        .filter(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "componentize-py is not installed: run ./dev test, or pip install componentize-py==0.25.1 into ~/.cache/intake/venv"
        )
    })
}

/// A `PATH` with componentize-py's folder first, for build scripts.
pub fn path_with_tools() -> std::ffi::OsString {
    let bin = componentize_py()
        .parent()
        .expect("componentize-py is in a folder")
        .to_path_buf();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH")
}

/// The JavaScript SDK, checked to have its build tools installed.
pub fn js_sdk() -> PathBuf {
    let sdk = root().join("plugin-sdk/js");
    assert!(
        sdk.join("node_modules/@bytecodealliance/componentize-js")
            .is_dir(),
        "componentize-js is not installed: run ./dev test, or npm ci in {}",
        sdk.display()
    );
    sdk
}

/// Builds the app in `app_dir` (`app.py` or `app.js`) as a matcher, or
/// returns the component built from the same sources before. The file is
/// named `{stem}.wasm`, so `intake plugin test` names the plugin `stem`.
pub fn build(lang: Lang, app_dir: &Path, stem: &str) -> PathBuf {
    let (sdk, tool_version) = match lang {
        Lang::Python => {
            let out = Command::new(componentize_py())
                .arg("--version")
                .output()
                .expect("run componentize-py");
            (
                root().join("plugin-sdk/python"),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
        Lang::Js => {
            let sdk = js_sdk();
            let lock = std::fs::read_to_string(sdk.join("package-lock.json"))
                .expect("plugin-sdk/js/package-lock.json");
            (sdk, lock)
        }
    };
    let mut hash = Sha256::new();
    hash.update(lang.name());
    hash.update(tool_version);
    hash_tree(&mut hash, app_dir);
    hash_tree(&mut hash, &sdk);
    hash_tree(&mut hash, &root().join("wit/v0.1.0"));
    let key: String = hash.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = root().join("target/lang-plugins").join(&key);
    let wasm = dir.join(format!("{stem}.wasm"));
    if wasm.is_file() {
        return wasm;
    }
    std::fs::create_dir_all(&dir).expect("create target/lang-plugins");
    let partial = dir.join(format!("{stem}.wasm.tmp{}", std::process::id()));
    let out = match lang {
        Lang::Python => Command::new(componentize_py())
            .args(["-d"])
            .arg(sdk.join("wit"))
            .args(["-w", "matcher-plugin", "componentize", "app", "-p"])
            .arg(app_dir)
            .arg("-p")
            .arg(&sdk)
            .arg("-o")
            .arg(&partial)
            .current_dir(app_dir)
            .output()
            .expect("run componentize-py"),
        Lang::Js => Command::new("node")
            .arg(sdk.join("build.mjs"))
            .arg(app_dir.join("app.js"))
            .arg("-o")
            .arg(&partial)
            .output()
            .expect("run node"),
    };
    assert!(
        out.status.success(),
        "building {} ({}) failed:\n{}{}",
        app_dir.display(),
        lang.name(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&partial, &wasm).expect("keep the component");
    wasm
}

/// Feeds the names and contents of the source files under `dir` (links
/// followed; build output, caches and installed packages left out) into
/// `hash`, in a stable order.
fn hash_tree(hash: &mut Sha256, dir: &Path) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if matches!(
            name.as_ref(),
            "target" | "node_modules" | "__pycache__" | ".git"
        ) {
            continue;
        }
        hash.update(name.as_bytes());
        if path.is_dir() {
            hash_tree(hash, &path);
        } else {
            hash.update(std::fs::read(&path).expect("read a source file"));
        }
    }
}
