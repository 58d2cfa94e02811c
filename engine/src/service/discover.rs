//! Provider presets and discovery, as the command line, the API and the
//! console offer them: the list of presets, the servers of an e-mail
//! address, and the one rule for filling an account's settings from what
//! was found (settings the user gave win).
//!
//! Discovery reads no tenant data, but it makes outbound DNS and HTTPS
//! requests on the caller's behalf, so the API asks for a token that may
//! change accounts (`write`), and the operator decides how far it reaches
//! ([`DiscoveryMode`]: off, the bundled table only, or the network too).

use serde::Serialize;

use super::accounts::AccountPatch;
use super::{Result, Scope, Service, ServiceError, invalid};
use crate::discover::presets::UserName;
use crate::discover::{
    DiscoverError, Discovered, Discoverer, DiscoveryConfig, DiscoveryMode, OAuthProvider, PRESETS,
    Preset, ServerSettings,
};
use crate::domain::Security;
use crate::store::TokenScope;

/// A provider preset as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderView {
    /// Stable id (`gmail`, `microsoft`, …).
    pub id: String,
    /// The name people know it by.
    pub name: String,
    /// The e-mail domains it serves.
    pub domains: Vec<String>,
    /// Its incoming servers, IMAP first.
    pub servers: Vec<ServerSettings>,
    /// The user name it expects: `address` (the whole address) or
    /// `local-part` (the part before the @).
    pub username: String,
    /// The OAuth2 provider it signs in with, if any.
    pub oauth2: Option<OAuthProvider>,
    /// Its server presents a self-signed certificate (a local bridge):
    /// the account needs it as its CA file.
    pub self_signed_certificate: bool,
    /// What a user needs to know to sign in.
    pub notes: Vec<String>,
}

impl From<&Preset> for ProviderView {
    fn from(p: &Preset) -> Self {
        ProviderView {
            id: p.id.to_owned(),
            name: p.name.to_owned(),
            domains: p.domains.iter().map(|d| (*d).to_owned()).collect(),
            servers: p.servers(None),
            username: match p.username {
                UserName::Address => "address",
                UserName::LocalPart => "local-part",
            }
            .to_owned(),
            oauth2: p.oauth2,
            self_signed_certificate: p.self_signed_certificate,
            notes: p.notes.iter().map(|n| (*n).to_owned()).collect(),
        }
    }
}

/// Discovery as the operator allows it.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Off, table only, or the network too.
    mode: DiscoveryMode,
    /// The machinery (resolver and HTTP client, made at first use).
    discoverer: Discoverer,
}

impl Discovery {
    /// Discovery in `mode`, looking where `config` says.
    pub fn new(mode: DiscoveryMode, mut config: DiscoveryConfig) -> Self {
        config.mode = match mode {
            DiscoveryMode::Network => DiscoveryMode::Network,
            DiscoveryMode::Off | DiscoveryMode::Table => DiscoveryMode::Table,
        };
        Discovery {
            mode,
            discoverer: Discoverer::new(config),
        }
    }

    /// How far it reaches.
    pub fn mode(&self) -> DiscoveryMode {
        self.mode
    }

    /// Every preset of the bundled table.
    pub fn providers(&self) -> Vec<ProviderView> {
        PRESETS.iter().map(ProviderView::from).collect()
    }

    /// The preset `id`; an unknown id is a refused `provider` field that
    /// lists the known ones.
    pub fn preset(&self, id: &str) -> Result<&'static Preset> {
        crate::discover::preset(id).ok_or_else(|| {
            let known: Vec<&str> = PRESETS.iter().map(|p| p.id).collect();
            invalid(
                "provider",
                format!("unknown provider; known: {}", known.join(", ")),
            )
        })
    }

    /// The servers of `email`: a refused `email` field when it is no
    /// address, [`ServiceError::NothingFound`] (with every step tried)
    /// when nothing was found, [`ServiceError::Refused`] when the operator
    /// switched discovery off.
    pub async fn discover(&self, email: &str) -> Result<Discovered> {
        if self.mode == DiscoveryMode::Off {
            return Err(ServiceError::Refused(
                "discovery is switched off on this engine (intake serve --discovery off): \
                 choose a provider or enter the server by hand"
                    .into(),
            ));
        }
        self.discoverer.discover(email).await.map_err(|e| match e {
            DiscoverError::NotAnAddress(why) => invalid("email", why),
            e @ DiscoverError::NotFound { .. } => ServiceError::NothingFound(e.to_string()),
        })
    }
}

/// What [`fill`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    /// The server the settings came from.
    pub server: ServerSettings,
    /// The settings it filled (`protocol`, `host`, `port`, `security`).
    pub fields: Vec<&'static str>,
}

/// Fills the protocol, host, port and security that `patch` leaves open
/// from the best of `servers` that agrees with what it does set (its
/// protocol, then its security and host; encrypted before plain). `None`
/// when no server speaks the protocol asked for.
pub fn fill(patch: &mut AccountPatch, servers: &[ServerSettings]) -> Option<Filled> {
    let server = servers
        .iter()
        .enumerate()
        .filter(|(_, s)| patch.protocol.is_none_or(|p| p == s.protocol))
        .min_by_key(|(rank, s)| {
            (
                patch.security.is_some_and(|want| want != s.security),
                patch
                    .host
                    .as_deref()
                    .is_some_and(|h| !h.eq_ignore_ascii_case(&s.host)),
                s.security == Security::None,
                *rank,
            )
        })
        .map(|(_, s)| s.clone())?;
    let mut fields = Vec::new();
    if patch.protocol.is_none() {
        patch.protocol = Some(server.protocol);
        fields.push("protocol");
    }
    if patch.host.is_none() {
        patch.host = Some(server.host.clone());
        fields.push("host");
    }
    if patch.port.is_none() {
        patch.port = Some(Some(server.port));
        fields.push("port");
    }
    if patch.security.is_none() {
        patch.security = Some(server.security);
        fields.push("security");
    }
    Some(Filled { server, fields })
}

impl Service {
    /// Discovery as this service runs it.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The same service with discovery as the operator configured it.
    pub fn with_discovery(mut self, discovery: Discovery) -> Self {
        self.discovery = discovery;
        self
    }

    /// The bundled provider presets (any token).
    pub fn providers(&self, scope: &Scope) -> Result<Vec<ProviderView>> {
        scope.require(TokenScope::Read)?;
        Ok(self.discovery.providers())
    }

    /// The servers of `email`. It reads nothing of the tenant's, but makes
    /// outbound requests for it, so it takes a token that may change
    /// accounts.
    pub async fn discover(&self, scope: &Scope, email: &str) -> Result<Discovered> {
        scope.require(TokenScope::Write)?;
        tracing::info!(tenant = %scope.tenant_name(), "discovering mail settings");
        self.discovery.discover(email).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::Authentication;
    use crate::domain::Protocol;

    fn server(protocol: Protocol, host: &str, port: u16, security: Security) -> ServerSettings {
        ServerSettings {
            protocol,
            host: host.into(),
            port,
            security,
            username: None,
            authentication: vec![Authentication::Password],
        }
    }

    fn found() -> Vec<ServerSettings> {
        vec![
            server(Protocol::Imap, "imap.example.com", 143, Security::None),
            server(Protocol::Imap, "imap.example.com", 993, Security::Tls),
            server(Protocol::Pop3, "pop.example.com", 995, Security::Tls),
        ]
    }

    #[test]
    fn the_best_encrypted_server_fills_what_is_open() {
        let mut patch = AccountPatch::default();
        let filled = fill(&mut patch, &found()).unwrap();
        assert_eq!(filled.fields, ["protocol", "host", "port", "security"]);
        assert_eq!(patch.protocol, Some(Protocol::Imap));
        assert_eq!(patch.host.as_deref(), Some("imap.example.com"));
        assert_eq!(patch.port, Some(Some(993)));
        assert_eq!(patch.security, Some(Security::Tls));
    }

    #[test]
    fn what_the_user_gave_wins() {
        let mut patch = AccountPatch {
            protocol: Some(Protocol::Pop3),
            port: Some(Some(10995)),
            ..AccountPatch::default()
        };
        let filled = fill(&mut patch, &found()).unwrap();
        assert_eq!(filled.fields, ["host", "security"]);
        assert_eq!(patch.host.as_deref(), Some("pop.example.com"));
        assert_eq!(patch.port, Some(Some(10995)));

        let mut patch = AccountPatch {
            security: Some(Security::None),
            host: Some("mail.elsewhere.example".into()),
            ..AccountPatch::default()
        };
        let filled = fill(&mut patch, &found()).unwrap();
        assert_eq!(filled.server.port, 143);
        assert_eq!(patch.host.as_deref(), Some("mail.elsewhere.example"));
        assert_eq!(patch.port, Some(Some(143)));

        // No POP3 server: nothing to fill from.
        let mut patch = AccountPatch {
            protocol: Some(Protocol::Pop3),
            ..AccountPatch::default()
        };
        assert!(fill(&mut patch, &found()[..2]).is_none());
        assert_eq!(patch.host, None);
    }

    #[tokio::test]
    async fn off_refuses_and_unknown_providers_are_named() {
        let off = Discovery::new(DiscoveryMode::Off, DiscoveryConfig::default());
        assert!(matches!(
            off.discover("a@gmail.com").await,
            Err(ServiceError::Refused(_))
        ));
        assert_eq!(off.providers().len(), PRESETS.len());
        let table = Discovery::new(DiscoveryMode::Table, DiscoveryConfig::default());
        match table.preset("nope") {
            Err(ServiceError::Invalid { field, reason }) => {
                assert_eq!(field, "provider");
                assert!(reason.contains("gmail"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match table.discover("not an address").await {
            Err(ServiceError::Invalid { field, .. }) => assert_eq!(field, "email"),
            other => panic!("{other:?}"),
        }
        match table.discover("a@nowhere.example").await {
            Err(ServiceError::NothingFound(detail)) => {
                assert!(detail.contains("nowhere.example"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }
}
