//! What an account is, as CRM admins know it: server, security, credentials,
//! certificate checks, proxy, folders and how to fetch. `fetch` connects
//! with it, `store` keeps it, the pipeline caps plugin suggestions by it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Mail protocol.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// IMAP4rev1.
    Imap,
    /// POP3.
    Pop3,
}

/// Connection security.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain text (only sensible on loopback or inside a tunnel).
    None,
    /// Plain connection upgraded with STARTTLS / STLS; refused if the server
    /// does not offer it (never a silent fall-back to plain text).
    Starttls,
    /// Implicit TLS from the first byte.
    Tls,
}

/// How to fetch IMAP folders.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FetchMode {
    /// UIDs above the folder cursor.
    #[default]
    New,
    /// Messages without `\Seen` (`UID SEARCH UNSEEN`).
    Unseen,
}

/// Authentication mechanism.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// IMAP `LOGIN`, POP3 `USER`/`PASS`.
    #[default]
    Login,
    /// SASL `PLAIN` (IMAP `AUTHENTICATE PLAIN`, POP3 `AUTH PLAIN`).
    Plain,
    /// SASL `XOAUTH2` with an OAuth2 access token (Gmail, Microsoft 365).
    Xoauth2,
    /// SASL `OAUTHBEARER` (RFC 7628) with an OAuth2 access token.
    Oauthbearer,
}

impl Auth {
    /// Whether it signs in with an OAuth2 access token.
    pub fn is_oauth(self) -> bool {
        matches!(self, Auth::Xoauth2 | Auth::Oauthbearer)
    }
}

/// A secret that never prints.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The SHA-256 fingerprint of one exact server certificate: an account that
/// pins it accepts that certificate and no other, whoever issued it (what
/// Thunderbird calls a security exception). The safe answer for a private
/// server with a self-signed certificate, preferred over skipping
/// verification.
///
/// Written `sha256:` and 64 hex digits; parsing also takes the colon-
/// separated upper-case form `openssl x509 -fingerprint -sha256` prints.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificatePin([u8; 32]);

impl CertificatePin {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        use sha2::Digest;
        CertificatePin(sha2::Sha256::digest(der).into())
    }
}

impl std::fmt::Display for CertificatePin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl std::fmt::Debug for CertificatePin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Why a text is not a certificate fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a certificate fingerprint is written sha256: and 64 hex digits (colons allowed), as Test settings prints it"
)]
pub struct BadPin;

impl std::str::FromStr for CertificatePin {
    type Err = BadPin;

    fn from_str(text: &str) -> Result<Self, BadPin> {
        let text = text.trim();
        let digits = match text.split_once(':') {
            Some((algorithm, rest)) if algorithm.eq_ignore_ascii_case("sha256") => rest,
            _ => return Err(BadPin),
        };
        let digits: String = digits
            .chars()
            .filter(|c| *c != ':' && !c.is_whitespace())
            .collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| BadPin)?;
        Ok(CertificatePin(bytes))
    }
}

impl Serialize for CertificatePin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CertificatePin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for CertificatePin {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(
                "^(sha256|SHA256):([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$",
            ))
            .examples([serde_json::json!(
                "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            )])
            .description(Some(
                "SHA-256 fingerprint of the one server certificate the account accepts",
            ))
            .into()
    }
}

impl utoipa::ToSchema for CertificatePin {}

/// A SOCKS5 proxy ("network connector").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxySettings {
    /// Proxy host.
    pub host: String,
    /// Proxy port.
    pub port: u16,
    /// User name, if the proxy requires authentication.
    pub username: Option<String>,
    /// Password, if the proxy requires authentication.
    pub password: Option<Secret>,
}

/// Network timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// TCP connect (including the proxy hand-shake).
    pub connect: Duration,
    /// TLS hand-shake.
    pub tls: Duration,
    /// Any single read or write making no progress.
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(15),
            tls: Duration::from_secs(15),
            io: Duration::from_secs(60),
        }
    }
}

/// One mail account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// Name shown to admins.
    pub name: String,
    /// IMAP or POP3.
    pub protocol: Protocol,
    /// Server host name or address.
    pub host: String,
    /// Port; `None` means the protocol's default for the security mode.
    pub port: Option<u16>,
    /// Connection security.
    pub security: Security,
    /// Login name.
    pub username: String,
    /// Password.
    pub password: Secret,
    /// Authentication mechanism.
    pub auth: Auth,
    /// Verify the server certificate (on by default; turning it off is an
    /// explicit choice that is warned about on every connect).
    pub verify_certificate: bool,
    /// Extra CA certificate(s), PEM, trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept exactly this certificate and no other (the CA file, the
    /// system roots, the name and the dates then do not matter).
    pub pinned_certificate: Option<CertificatePin>,
    /// Keep a copy on the server (never delete after ingesting).
    pub keep_on_server: bool,
    /// Optional SOCKS5 proxy.
    pub proxy: Option<ProxySettings>,
    /// IMAP folders to read; POP3 has only the inbox.
    pub folders: Vec<String>,
    /// IMAP fetch mode.
    pub mode: FetchMode,
    /// Larger messages are listed as skipped, not fetched.
    pub max_message_bytes: u64,
    /// Messages per fetch command.
    pub batch_size: usize,
    /// IMAP: skip mail older than this day on a folder's first sync (and
    /// always in `unseen` mode), by `UID SEARCH SINCE`. POP3 has no
    /// server-side dates; there the limit does not apply.
    pub first_sync_since: Option<chrono::DateTime<chrono::Utc>>,
    /// On a folder's first sync, only the newest this many messages are
    /// listed; the listing moves the cursor past the older ones (IMAP).
    pub first_sync_max_messages: Option<u32>,
    /// Network timeouts.
    pub timeouts: Timeouts,
}

impl AccountSettings {
    /// An account with the defaults admins expect: verify certificates, keep
    /// a copy, INBOX, mode `new`, 50 MiB size limit.
    pub fn new(
        name: &str,
        protocol: Protocol,
        host: &str,
        security: Security,
        username: &str,
        password: Secret,
    ) -> Self {
        AccountSettings {
            name: name.into(),
            protocol,
            host: host.into(),
            port: None,
            security,
            username: username.into(),
            password,
            auth: Auth::default(),
            verify_certificate: true,
            ca_file: None,
            pinned_certificate: None,
            keep_on_server: true,
            proxy: None,
            folders: vec!["INBOX".into()],
            mode: FetchMode::New,
            max_message_bytes: 50 << 20,
            batch_size: 100,
            first_sync_since: None,
            first_sync_max_messages: None,
            timeouts: Timeouts::default(),
        }
    }

    /// The port to use: the configured one, else 143/993 (IMAP) or 110/995
    /// (POP3) by security mode.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match (self.protocol, self.security) {
            (Protocol::Imap, Security::Tls) => 993,
            (Protocol::Imap, _) => 143,
            (Protocol::Pop3, Security::Tls) => 995,
            (Protocol::Pop3, _) => 110,
        })
    }

    /// Whether messages can be moved to another folder on this account's
    /// server: IMAP can; POP3 has no folders.
    pub fn can_move(&self) -> bool {
        match self.protocol {
            Protocol::Imap => true,
            Protocol::Pop3 => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_in_both_spellings_and_print_in_one() {
        let pin = CertificatePin::of(b"certificate");
        let text = pin.to_string();
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(text.parse::<CertificatePin>().unwrap(), pin);
        let openssl = format!(
            "SHA256:{}",
            hex::encode_upper(pin.0)
                .as_bytes()
                .chunks(2)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(":")
        );
        assert_eq!(openssl.parse::<CertificatePin>().unwrap(), pin);
        for bad in [
            "",
            "sha256:",
            "sha1:00",
            "md5:ab",
            &text[..40],
            &format!("{text}00"),
        ] {
            assert_eq!(bad.parse::<CertificatePin>(), Err(BadPin), "{bad}");
        }
        let json = serde_json::to_string(&pin).unwrap();
        assert_eq!(serde_json::from_str::<CertificatePin>(&json).unwrap(), pin);
        assert!(serde_json::from_str::<CertificatePin>("\"sha256:zz\"").is_err());
    }

    #[test]
    fn default_ports_follow_protocol_and_security() {
        let mut a = AccountSettings::new(
            "a",
            Protocol::Imap,
            "h",
            Security::Tls,
            "u",
            Secret::new("p"),
        );
        assert_eq!(a.effective_port(), 993);
        a.security = Security::Starttls;
        assert_eq!(a.effective_port(), 143);
        a.protocol = Protocol::Pop3;
        assert_eq!(a.effective_port(), 110);
        a.security = Security::Tls;
        assert_eq!(a.effective_port(), 995);
        a.port = Some(2995);
        assert_eq!(a.effective_port(), 2995);
    }

    #[test]
    fn secrets_never_print() {
        let a = AccountSettings::new(
            "a",
            Protocol::Imap,
            "h",
            Security::Tls,
            "u",
            Secret::new("hunter2"),
        );
        assert!(!format!("{a:?}").contains("hunter2"));
    }
}
