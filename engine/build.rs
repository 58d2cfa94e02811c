//! Embeds the reference plugins in the `intake` binary, so that one file is
//! a working install: the default chain needs nothing beside it.
//!
//! The components come from `$INTAKE_BUNDLED_PLUGINS` (a directory) or the
//! source tree's build output, `plugins/target/wasm32-wasip2/release`
//! (`./dev plugins`). Without all of them the build still succeeds (so a
//! plain `cargo build` works), and `intake` says at run time how to get the
//! chain.

use std::path::PathBuf;

/// The default chain, in order (file stems).
const CHAIN: [&str; 5] = [
    "auto_reply_guard",
    "thread_match",
    "exact_match",
    "domain_match",
    "unknown_sender",
];

fn main() {
    println!("cargo::rerun-if-env-changed=INTAKE_BUNDLED_PLUGINS");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dir = std::env::var_os("INTAKE_BUNDLED_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../plugins/target/wasm32-wasip2/release"));
    let files: Vec<PathBuf> = CHAIN
        .iter()
        .map(|n| dir.join(format!("{n}.wasm")))
        .collect();
    for file in &files {
        println!("cargo::rerun-if-changed={}", file.display());
    }
    let body = if files.iter().all(|f| f.is_file()) {
        let entries: Vec<String> = CHAIN
            .iter()
            .zip(&files)
            .map(|(name, file)| {
                let file = file.canonicalize().expect("the component exists");
                format!(
                    "    ({name:?}, include_bytes!({:?})),\n",
                    file.display().to_string()
                )
            })
            .collect();
        format!("Some([\n{}])", entries.concat())
    } else {
        if std::env::var("PROFILE").as_deref() == Ok("release") {
            println!(
                "cargo::warning=the reference plugins are not built ({}): this intake has no bundled chain; run `./dev plugins` first",
                dir.display()
            );
        }
        "None".to_owned()
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("bundled.rs");
    std::fs::write(
        out,
        format!(
            "/// The embedded components of the default chain, in order, if the build had them.\n\
             pub(crate) static EMBEDDED: Option<[(&str, &[u8]); 5]> = {body};\n"
        ),
    )
    .expect("write bundled.rs");
}
