//! Support for Intake's integration tests: the reference and hostile plugins
//! built once per run (into their own target directory), fixture paths, and
//! small constructors shared by the test files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use intake::directory::MemoryDirectory;
use intake::parse::Origin;
use intake::parse::{self, Envelope, ParsedMessage};
use intake::plugin::{Binding, LoadedPlugin, PluginRuntime, RuntimeConfig};

pub mod api;
pub mod databases;
pub mod dns;
pub mod hostile;
pub mod langs;
pub mod oauth;
pub mod servers;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests").join("fixtures").join(name)
}

/// Where the plugins are built: `$INTAKE_PLUGIN_TARGET_DIR`, else
/// `plugins/target` (the same place `cargo build` in `plugins/` uses).
fn plugin_target_dir() -> PathBuf {
    std::env::var_os("INTAKE_PLUGIN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("plugins").join("target"))
}

/// Builds every plugin in `plugins/` for wasm32-wasip2 once per test
/// process (cargo makes concurrent builds from several test binaries wait
/// for each other) and returns the directory holding the `.wasm` files.
pub fn plugin_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = plugin_target_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(root().join("plugins").join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo to build the plugins");
        assert!(
            status.success(),
            "building the plugins failed; is the target installed? (rustup target add wasm32-wasip2)"
        );
        target.join("wasm32-wasip2").join("release")
    })
}

/// The built component of plugin crate `name` (e.g. `exact_match`).
pub fn plugin(name: &str) -> PathBuf {
    plugin_dir().join(format!("{name}.wasm"))
}

/// A runtime whose component cache is shared by all test binaries.
pub fn runtime() -> PluginRuntime {
    let cache = root().join("target").join("test-component-cache");
    PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(cache),
        ..RuntimeConfig::default()
    })
    .expect("plugin runtime")
}

/// Loads plugin `name` with a JSON config and checks its `init`.
pub async fn load(runtime: &PluginRuntime, name: &str, config: &str) -> Arc<LoadedPlugin> {
    let mut binding = Binding::from_file(plugin(name));
    binding.config = config.to_string();
    let loaded = runtime.load(binding).expect("load plugin");
    loaded
        .check_init("t", Arc::new(MemoryDirectory::new()))
        .await
        .expect("init");
    Arc::new(loaded)
}

/// Loads a plugin with a custom binding (limits, policy), without `init`
/// checks.
pub fn load_binding(runtime: &PluginRuntime, binding: Binding) -> Arc<LoadedPlugin> {
    Arc::new(runtime.load(binding).expect("load plugin"))
}

/// Parses raw bytes as a message of `tenant`.
pub fn parse_bytes(raw: impl Into<bytes::Bytes>, tenant: &str) -> ParsedMessage {
    let envelope = Envelope {
        tenant_id: tenant.into(),
        account_id: "acct".into(),
        origin: Origin::File("test".into()),
    };
    parse::parse(raw.into(), &envelope, parse::DEFAULT_MAX_BODY_BYTES).expect("parse")
}

/// Parses a fixture as a message of `tenant`.
pub fn parse_fixture(name: &str, tenant: &str) -> ParsedMessage {
    parse_bytes(std::fs::read(fixture(name)).expect("read fixture"), tenant)
}

/// A small valid message from `from`.
pub fn simple_message(from: &str, tenant: &str) -> ParsedMessage {
    parse_bytes(
        format!(
            "From: {from}\r\nTo: sales@ourco.example\r\nSubject: hi\r\nMessage-ID: <m@x>\r\n\r\nhello\r\n"
        ),
        tenant,
    )
}

/// Appends the named plugins from `plugins/` to a tenant's stored chain, in
/// order: `(crate name, role, JSON config)`, default limits, quarantine on
/// failure.
pub async fn add_plugins(
    store: &intake::store::Store,
    tenant: intake::store::TenantId,
    chain: &[(&str, intake::store::BindingRole, &str)],
) {
    let bindings: Vec<intake::store::NewBinding> = chain
        .iter()
        .map(|(name, role, config)| intake::store::NewBinding {
            name: (*name).into(),
            role: *role,
            wasm: std::fs::read(plugin(name)).expect("read plugin"),
            config: (*config).into(),
            limits: intake::plugin::Limits::default(),
            on_error: intake::plugin::FailurePolicy::Quarantine,
            enabled: true,
        })
        .collect();
    store
        .add_bindings(tenant, &bindings, false)
        .await
        .expect("add plugins");
}

/// The `intake` binary a benchmark measures: `INTAKE_BENCH_BINARY`, else
/// the release build beside the benchmark's own target directory
/// (`target/<profile>/<bench>` → `target/release/intake`).
pub fn bench_binary() -> PathBuf {
    if let Ok(path) = std::env::var("INTAKE_BENCH_BINARY") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .map(|t| t.join("release").join("intake"))
        .unwrap()
}

/// A benchmark's size setting from the environment, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A message from Ann Lee (a contact in the console tests) whose subject,
/// sender name and bodies carry script, event handlers, a `javascript:`
/// link, a remote image, CSS tricks, a frame and a form: the console must
/// show it inert.
pub const HOSTILE_MAIL: &str = "From: \"<script>alert('from')</script>\" <ann.lee@acme.example>\r\n\
To: sales@ourco.example\r\n\
Subject: <img src=x onerror=alert('subject')> Quarterly numbers\r\n\
Message-ID: <hostile@test.example>\r\n\
Date: Mon, 02 Nov 2026 09:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Plain <script>alert('text')</script> body.\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><head><style>body{display:none}</style><script>alert('head')</script></head>\
<body onload=\"alert('body')\"><p>Visible text</p>\
<a href=\"javascript:alert('link')\">click</a>\
<img src=\"http://127.0.0.1:9/tracker.png\" onerror=\"alert('img')\">\
<div style=\"position:fixed;top:0;left:0\">overlay</div>\
<iframe src=\"https://evil.example\"></iframe>\
<form action=\"https://evil.example\"><input name=p></form></body></html>\r\n\
--b--\r\n";
