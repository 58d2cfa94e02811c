//! The reference plugins that make up a fresh tenant's default chain
//! (guard → thread → exact → domain, unknown-sender as the policy).
//!
//! A release build carries them inside the binary (see `engine/build.rs`),
//! so one file is a working install. `--plugin-dir` / `INTAKE_PLUGIN_DIR`
//! replaces them with the `.wasm` files of a directory, e.g. to try a
//! rebuilt plugin without rebuilding `intake`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::store::BindingRole;

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The default chain: file stem and role, in order.
pub const DEFAULT_CHAIN: [(&str, BindingRole); 5] = [
    ("auto_reply_guard", BindingRole::Matcher),
    ("thread_match", BindingRole::Matcher),
    ("exact_match", BindingRole::Matcher),
    ("domain_match", BindingRole::Matcher),
    ("unknown_sender", BindingRole::UnknownSender),
];

/// Why the default chain cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum BundledError {
    /// This binary was built without the components and no directory was
    /// given.
    #[error(
        "this intake was built without the bundled plugins: in the source tree run \
         `./dev plugins`, then build intake again (`cargo build --release -p intake-engine`); \
         or give --plugin-dir (INTAKE_PLUGIN_DIR) a directory holding {}.wasm; \
         or add plugins to the tenant with `intake plugin add`",
        DEFAULT_CHAIN.map(|(n, _)| n).join(".wasm, ")
    )]
    NotBuilt,
    /// A component is missing from the directory given.
    #[error("cannot read {}: {source} (--plugin-dir must hold every component of the default chain)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Where the components came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Inside this binary.
    Embedded,
    /// Read from this directory.
    Directory(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Embedded => f.write_str("built into intake"),
            Origin::Directory(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// One component of the default chain.
#[derive(Debug, Clone)]
pub struct BundledPlugin {
    /// Its name in the chain (the file stem).
    pub name: &'static str,
    /// Its role.
    pub role: BindingRole,
    /// The component.
    pub wasm: Cow<'static, [u8]>,
}

impl BundledPlugin {
    /// The component's SHA-256, hex: what an operator compares with a
    /// build they trust.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.wasm))
    }
}

/// Whether this binary carries the components.
pub fn embedded() -> bool {
    EMBEDDED.is_some()
}

/// The default chain from `dir` if given, else from inside the binary.
pub fn default_chain(dir: Option<&Path>) -> Result<(Vec<BundledPlugin>, Origin), BundledError> {
    if let Some(dir) = dir {
        let mut chain = Vec::new();
        for (name, role) in DEFAULT_CHAIN {
            let path = dir.join(format!("{name}.wasm"));
            let wasm =
                std::fs::read(&path).map_err(|source| BundledError::Read { path, source })?;
            chain.push(BundledPlugin {
                name,
                role,
                wasm: Cow::Owned(wasm),
            });
        }
        return Ok((chain, Origin::Directory(dir.to_path_buf())));
    }
    let embedded = EMBEDDED.as_ref().ok_or(BundledError::NotBuilt)?;
    let chain = DEFAULT_CHAIN
        .iter()
        .zip(embedded.iter())
        .map(|((name, role), (_, wasm))| BundledPlugin {
            name,
            role: *role,
            wasm: Cow::Borrowed(*wasm),
        })
        .collect();
    Ok((chain, Origin::Embedded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_names_follow_the_chain() {
        if let Some(embedded) = EMBEDDED.as_ref() {
            let names: Vec<&str> = embedded.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, DEFAULT_CHAIN.map(|(n, _)| n));
        }
        let err = default_chain(Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(err.to_string().contains("auto_reply_guard.wasm"), "{err}");
        assert!(BundledError::NotBuilt.to_string().contains("./dev plugins"));
    }
}
