//! Compiled components, cached on disk so a plugin is compiled once per
//! machine, not once per run.
//!
//! The file name joins the SHA-256 of the component bytes with a hash of the
//! engine's compatibility settings (wasmtime version, target, compiler flags),
//! so a wasmtime upgrade or a config change never loads a stale artifact.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// An on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into SHA-256 so the key is stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is used")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ComponentCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..12]);
        Ok(ComponentCache { dir, engine_key })
    }

    /// The default location: `$INTAKE_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/intake/components`, else `~/.cache/intake/components`.
    pub(crate) fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("INTAKE_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
        Some(base.join("intake").join("components"))
    }

    fn path_for(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// Loads the compiled form of `wasm`, compiling and storing it on a miss.
    /// A corrupt or unreadable entry is recompiled, never trusted.
    pub(crate) fn load(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<(Component, bool)> {
        let path = self.path_for(wasm);
        if path.exists() {
            // SAFETY: the file is in Intake's own cache directory, written by
            // `Component::serialize` below under a name that includes the
            // engine's compatibility hash; wasmtime also checks its header.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached component")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write component cache; continuing without it");
        }
        Ok((component, false))
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        let bytes = component.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
