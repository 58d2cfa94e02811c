//! The master key and the sealing of secrets at rest.
//!
//! Each secret is sealed with ChaCha20-Poly1305 under a fresh random 96-bit
//! nonce, stored in front of the ciphertext. The associated data names the
//! row (tenant and credential name), so a sealed secret copied into another
//! row does not open there. A wrong key fails the tag check and is reported
//! as such; it never yields garbage.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// The environment variable holding the base64 of the 32-byte master key.
pub const MASTER_KEY_ENV: &str = "INTAKE_MASTER_KEY";

/// Bytes of the key.
const KEY_LEN: usize = 32;
/// Bytes of the nonce in front of every sealed secret.
const NONCE_LEN: usize = 12;

/// Why the master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither the variable nor a key file was given.
    #[error(
        "no master key: set {MASTER_KEY_ENV} to the base64 of 32 random bytes \
         (e.g. `head -c 32 /dev/urandom | base64`) or give a key file"
    )]
    Missing,
    /// The key is not 32 bytes, or not base64.
    #[error("the master key from {from} is not valid: {reason} (expected the base64 of 32 bytes)")]
    Invalid {
        /// Where it came from (the variable or the file).
        from: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file could not be read.
    #[error("cannot read the master key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        source: std::io::Error,
    },
    /// The operating system's random source failed (no nonce, no sealing).
    #[error("the system random source failed: {0}")]
    Random(String),
}

/// The key that seals credentials. Never printed.
#[derive(Clone)]
pub struct MasterKey {
    /// The raw key bytes.
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(key: [u8; KEY_LEN]) -> Self {
        MasterKey { key }
    }

    /// A fresh random key (for first-time set-up).
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = [0u8; KEY_LEN];
        getrandom::getrandom(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(MasterKey { key })
    }

    /// A key from the base64 of its 32 bytes (surrounding blanks ignored).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        Self::decode(text, "the given text")
    }

    /// The key as base64, for writing a key file once.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.key)
    }

    /// The key from `file` if given, else from `$INTAKE_MASTER_KEY`.
    ///
    /// A key file holds either the base64 text or exactly 32 raw bytes. An
    /// explicit file wins over the variable so a command-line flag can
    /// override the environment.
    pub fn from_env_or_file(file: Option<&Path>) -> Result<Self, KeyError> {
        if let Some(path) = file {
            let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let from = format!("file {}", path.display());
            if let Ok(raw) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
                return Ok(MasterKey { key: raw });
            }
            let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Invalid {
                from: from.clone(),
                reason: format!(
                    "{} bytes that are neither the raw key nor text",
                    bytes.len()
                ),
            })?;
            return Self::decode(text, &from);
        }
        match std::env::var(MASTER_KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => Self::decode(&text, MASTER_KEY_ENV),
            Ok(_) | Err(std::env::VarError::NotPresent) => Err(KeyError::Missing),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyError::Invalid {
                from: MASTER_KEY_ENV.into(),
                reason: "not valid text".into(),
            }),
        }
    }

    fn decode(text: &str, from: &str) -> Result<Self, KeyError> {
        let bytes = BASE64.decode(text.trim()).map_err(|e| KeyError::Invalid {
            from: from.into(),
            reason: format!("not base64 ({e})"),
        })?;
        let key = <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Invalid {
            from: from.into(),
            reason: format!("{} bytes, not {KEY_LEN}", bytes.len()),
        })?;
        Ok(MasterKey { key })
    }

    /// Seals `plaintext`; `context` must be given again to open it.
    pub(crate) fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            // Only fails for inputs beyond 256 GiB.
            .map_err(|_| KeyError::Random("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) produced; `None` if the key or the
    /// context is wrong, or the bytes were altered.
    pub(crate) fn open(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        ChaCha20Poly1305::new(Key::from_slice(&self.key))
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_refusals() {
        let key = MasterKey::from_bytes([7; 32]);
        let sealed = key.seal(b"hunter2", b"ctx").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 7 + 16);
        assert_eq!(key.open(&sealed, b"ctx").unwrap(), b"hunter2");
        assert!(key.open(&sealed, b"other").is_none());
        assert!(
            MasterKey::from_bytes([8; 32])
                .open(&sealed, b"ctx")
                .is_none()
        );
        // A fresh nonce each time: the same secret never seals the same way.
        assert_ne!(sealed, key.seal(b"hunter2", b"ctx").unwrap());
    }

    #[test]
    fn base64_must_be_32_bytes() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.key, again.key);
        let short = MasterKey::from_base64(&BASE64.encode([1u8; 16])).unwrap_err();
        assert!(short.to_string().contains("16 bytes, not 32"), "{short}");
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(***)");
    }
}
