//! Finding an e-mail address's incoming mail servers, the way mail clients
//! do, in this order:
//!
//! 1. the bundled provider table ([`presets`]) by the address's domain;
//! 2. RFC 6186 SRV records on the domain ([`srv`]);
//! 3. Mozilla-style autoconfig documents ([`autoconfig`]):
//!    `https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=…`,
//!    then `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml`;
//! 4. the domain's MX records ([`mx`]): a company domain whose mail a
//!    provider of the table hosts (Microsoft 365, Google Workspace, …) gets
//!    that provider's servers, as Thunderbird does.
//!
//! Every network step has a timeout and the whole discovery a deadline;
//! bodies are capped, redirects few and never from https to http, and —
//! unless allowed — no request goes to a loopback, private or link-local
//! address. A failure of one step is noted and the next one tried; the
//! answer says which method found the settings, and every step tried.
//!
//! [`DiscoveryConfig`] is the one place to point it elsewhere: the name
//! servers and the autoconfig URLs (tests use a DNS responder and an HTTP
//! server on loopback). This module knows no database and no tenant.

pub mod autoconfig;
pub mod mx;
pub mod presets;
pub mod srv;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use serde::Serialize;

use crate::domain::{Protocol, Security};
pub use presets::{OAuthProvider, PRESETS, Preset, preset, preset_for_domain};

/// How far discovery may reach, as the operator allows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DiscoveryMode {
    /// No discovery at all (presets can still be listed).
    Off,
    /// The bundled table only: no outbound request.
    Table,
    /// The table, then DNS SRV records, then autoconfig over HTTPS.
    #[default]
    Network,
}

impl std::str::FromStr for DiscoveryMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(DiscoveryMode::Off),
            "table" => Ok(DiscoveryMode::Table),
            "network" => Ok(DiscoveryMode::Network),
            other => Err(format!("{other:?}: expected off, table or network")),
        }
    }
}

impl DiscoveryMode {
    /// The mode in words (`off`, `table`, `network`).
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryMode::Off => "off",
            DiscoveryMode::Table => "table",
            DiscoveryMode::Network => "network",
        }
    }
}

/// Where and how discovery looks. The defaults are the real DNS (the
/// system's resolver configuration) and the real autoconfig URLs.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Table only, or the network too. ([`DiscoveryMode::Off`] is the
    /// service's to refuse; here it means the table only.)
    pub mode: DiscoveryMode,
    /// Name servers for SRV look-ups (UDP, then TCP); empty: the system's
    /// (`/etc/resolv.conf`).
    pub name_servers: Vec<SocketAddr>,
    /// Autoconfig URLs, tried in order: `{domain}` is replaced by the
    /// address's domain, `{email}` by the address (URL-encoded).
    pub autoconfig_urls: Vec<String>,
    /// Limit on one look-up (one SRV query, one HTTP request).
    pub lookup_timeout: Duration,
    /// Limit on the whole discovery.
    pub total_timeout: Duration,
    /// The largest autoconfig document read.
    pub max_body: usize,
    /// Redirects followed for one autoconfig request.
    pub max_redirects: usize,
    /// Allow autoconfig requests to loopback, private and link-local
    /// addresses (off in `intake serve`, so a tenant cannot make the
    /// engine probe the operator's internal network; on for the command
    /// line's own use, and for tests).
    pub allow_private_networks: bool,
}

/// The autoconfig URLs Thunderbird asks, in its order.
pub const AUTOCONFIG_URLS: [&str; 2] = [
    "https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={email}",
    "https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml",
];

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            mode: DiscoveryMode::Network,
            name_servers: Vec::new(),
            autoconfig_urls: AUTOCONFIG_URLS.iter().map(|u| (*u).to_owned()).collect(),
            lookup_timeout: Duration::from_secs(4),
            total_timeout: Duration::from_secs(15),
            max_body: 64 << 10,
            max_redirects: 3,
            allow_private_networks: false,
        }
    }
}

/// How the settings were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The bundled provider table.
    Table,
    /// RFC 6186 DNS SRV records.
    Srv,
    /// A Mozilla-style autoconfig document.
    Autoconfig,
    /// The domain's MX records point at a provider of the table.
    Mx,
}

impl Method {
    /// The method in words.
    pub fn describe(self) -> &'static str {
        match self {
            Method::Table => "the bundled provider table",
            Method::Srv => "DNS SRV records (RFC 6186)",
            Method::Autoconfig => "an autoconfig document",
            Method::Mx => "the domain's MX records (a known provider hosts its mail)",
        }
    }
}

/// A way of signing in a server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Authentication {
    /// A password (or app password), sent inside TLS.
    Password,
    /// OAuth2 (XOAUTH2 / OAUTHBEARER).
    OAuth2,
    /// Something Intake does not speak (CRAM-MD5, NTLM, Kerberos, a
    /// client certificate, …).
    Other,
}

/// An incoming server found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServerSettings {
    /// `imap` or `pop3`.
    pub protocol: Protocol,
    /// Host name (checked to be one).
    pub host: String,
    /// Port.
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub security: Security,
    /// The user name to sign in with, when the source says.
    pub username: Option<String>,
    /// Ways of signing in the source names.
    pub authentication: Vec<Authentication>,
}

/// One step of a discovery and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// The method.
    pub method: Method,
    /// What was asked: a domain, a DNS name, a URL.
    pub target: String,
    /// What came of it (`found …`, `no records`, `HTTP 404`, …).
    pub result: String,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let method = match self.method {
            Method::Table => "table",
            Method::Srv => "SRV",
            Method::Autoconfig => "autoconfig",
            Method::Mx => "MX",
        };
        write!(f, "{method} {}: {}", self.target, self.result)
    }
}

/// What discovery found for an address.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Discovered {
    /// The address asked about (trimmed).
    pub email: String,
    /// Its domain (lower case, IDNA-encoded).
    pub domain: String,
    /// The method that found the servers.
    pub method: Method,
    /// Where exactly: the preset's id, the SRV names, the document's URL.
    pub source: String,
    /// The provider's preset id, when the table knows the provider (also
    /// for a domain whose servers are a known provider's).
    pub provider: Option<String>,
    /// The provider's name, from the table or the autoconfig document.
    pub provider_name: Option<String>,
    /// The servers, best first.
    pub servers: Vec<ServerSettings>,
    /// The OAuth2 provider the account signs in with, if any.
    pub oauth2: Option<OAuthProvider>,
    /// What a user needs to know (the preset's notes).
    pub notes: Vec<String>,
    /// Every step tried, in order, the one that found them last.
    pub tried: Vec<Attempt>,
}

/// Why a DNS look-up found nothing.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The name has no records of the type (or does not exist).
    #[error("no records")]
    NoRecords,
    /// No answer in time.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The resolver failed (no name server answered, a malformed answer, …).
    #[error("DNS failed: {0}")]
    Dns(String),
}

impl DnsError {
    /// A look-up's answer under our timeout, its failures in our terms.
    fn of<T>(
        answer: Result<Result<T, hickory_resolver::net::NetError>, tokio::time::error::Elapsed>,
        timeout: Duration,
    ) -> Result<T, DnsError> {
        match answer {
            Err(_) => Err(DnsError::Timeout(timeout)),
            Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Err(DnsError::NoRecords),
            Ok(Err(e)) => Err(DnsError::Dns(crate::text::bounded(&e.to_string(), 300))),
            Ok(Ok(answer)) => Ok(answer),
        }
    }
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The text is not an e-mail address discovery can work with.
    #[error("{0}")]
    NotAnAddress(String),
    /// No method found servers.
    #[error("no mail server settings found for {domain}: tried {}", list(.tried))]
    NotFound {
        /// The domain.
        domain: String,
        /// Every step, with what came of it.
        tried: Vec<Attempt>,
    },
}

fn list(tried: &[Attempt]) -> String {
    tried
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether `host` is a plausible host name: letters, digits and hyphens
/// in dot-separated labels of at most 63 (no leading or trailing hyphen),
/// at most 253 in all — or an IPv4 address. Nothing else from DNS or an
/// autoconfig document is used or shown.
pub fn valid_host(host: &str) -> bool {
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An address split and checked: `(address, domain)`, the domain lower
/// case and IDNA-encoded.
pub fn split_address(email: &str) -> Result<(String, String), DiscoverError> {
    let email = email.trim();
    let refuse = |why: &str| DiscoverError::NotAnAddress(why.to_owned());
    if email.len() > 254 {
        return Err(refuse("an e-mail address is at most 254 characters"));
    }
    let (local, domain) = email
        .rsplit_once('@')
        .ok_or_else(|| refuse("not an e-mail address (no @)"))?;
    if local.is_empty()
        || local.len() > 64
        || local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c))
    {
        return Err(refuse("the part before the @ is not a mailbox name"));
    }
    let domain = domain.trim_end_matches('.');
    let encoded = match url::Host::parse(domain) {
        Ok(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        Ok(_) => return Err(refuse("the domain is an address, not a name")),
        Err(_) => return Err(refuse("the part after the @ is not a domain name")),
    };
    if !encoded.contains('.')
        || !valid_host(&encoded)
        || encoded.parse::<std::net::Ipv4Addr>().is_ok()
    {
        return Err(refuse("the part after the @ is not a domain name"));
    }
    Ok((format!("{local}@{encoded}"), encoded))
}

/// The discovery machinery: the configuration, and the resolver and HTTP
/// client, made at first use and kept.
#[derive(Debug, Clone, Default)]
pub struct Discoverer {
    /// Shared by clones.
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    config: DiscoveryConfig,
    /// The SRV resolver, or why there is none.
    resolver: OnceLock<Result<TokioResolver, String>>,
    /// The autoconfig client, or why there is none.
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl Discoverer {
    /// Discovery as `config` says.
    pub fn new(config: DiscoveryConfig) -> Self {
        Discoverer {
            inner: Arc::new(Inner {
                config,
                resolver: OnceLock::new(),
                client: OnceLock::new(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.inner.config
    }

    /// The servers of `email`: the table, then (in network mode) SRV,
    /// autoconfig and MX, within the whole discovery's deadline.
    #[tracing::instrument(name = "discover", skip_all, fields(domain = tracing::field::Empty))]
    pub async fn discover(&self, email: &str) -> Result<Discovered, DiscoverError> {
        let (email, domain) = split_address(email)?;
        tracing::Span::current().record("domain", domain.as_str());
        let config = &self.inner.config;
        let mut tried = Vec::new();
        if let Some(preset) = preset_for_domain(&domain) {
            tried.push(Attempt {
                method: Method::Table,
                target: domain.clone(),
                result: format!("found {}", preset.id),
            });
            return Ok(from_preset(preset, email, domain, tried));
        }
        tried.push(Attempt {
            method: Method::Table,
            target: domain.clone(),
            result: "not a provider the table knows".into(),
        });
        if config.mode != DiscoveryMode::Network {
            tried.push(Attempt {
                method: Method::Srv,
                target: domain.clone(),
                result: "skipped: network discovery is off on this engine".into(),
            });
            return Err(DiscoverError::NotFound { domain, tried });
        }
        let deadline = tokio::time::Instant::now() + config.total_timeout;
        let total = config.total_timeout;
        let out_of_time = |tried: &mut Vec<Attempt>, method, target: String, started: bool| {
            tried.push(Attempt {
                method,
                target,
                result: format!(
                    "{}: the discovery's {} s were used up",
                    if started { "cut off" } else { "not tried" },
                    total.as_secs()
                ),
            });
        };

        match tokio::time::timeout_at(deadline, self.by_srv(&domain, &mut tried)).await {
            Ok(Some(servers)) => {
                let source = servers
                    .iter()
                    .map(|s| format!("{}:{}", s.host, s.port))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Ok(finish(
                    email,
                    domain,
                    Method::Srv,
                    format!("SRV records of {source}"),
                    servers,
                    None,
                    None,
                    tried,
                ));
            }
            Ok(None) => {}
            Err(_) => out_of_time(&mut tried, Method::Srv, domain.clone(), true),
        }

        for template in &config.autoconfig_urls {
            let url = autoconfig_url(template, &email, &domain);
            if tokio::time::Instant::now() >= deadline {
                out_of_time(&mut tried, Method::Autoconfig, url, false);
                continue;
            }
            match tokio::time::timeout_at(deadline, self.by_autoconfig(&url, &email)).await {
                Ok(Ok(found)) => {
                    tried.push(Attempt {
                        method: Method::Autoconfig,
                        target: url.clone(),
                        result: format!("found {} server(s)", found.servers.len()),
                    });
                    return Ok(finish(
                        email,
                        domain,
                        Method::Autoconfig,
                        url,
                        found.servers,
                        found.display_name,
                        found.oauth2,
                        tried,
                    ));
                }
                Ok(Err(e)) => {
                    tracing::debug!(%url, error = %e, "autoconfig gave nothing");
                    tried.push(Attempt {
                        method: Method::Autoconfig,
                        target: url,
                        result: e.to_string(),
                    });
                }
                Err(_) => out_of_time(&mut tried, Method::Autoconfig, url, true),
            }
        }

        if tokio::time::Instant::now() >= deadline {
            out_of_time(&mut tried, Method::Mx, domain.clone(), false);
            return Err(DiscoverError::NotFound { domain, tried });
        }
        match tokio::time::timeout_at(deadline, self.by_mx(&domain)).await {
            Ok(Ok((preset, exchange))) => {
                tried.push(Attempt {
                    method: Method::Mx,
                    target: domain.clone(),
                    result: format!("found {exchange}: {}", preset.id),
                });
                return Ok(mx::discovered(preset, &exchange, email, domain, tried));
            }
            Ok(Err(why)) => tried.push(Attempt {
                method: Method::Mx,
                target: domain.clone(),
                result: why,
            }),
            Err(_) => out_of_time(&mut tried, Method::Mx, domain.clone(), true),
        }
        Err(DiscoverError::NotFound { domain, tried })
    }

    /// Step 2: the four SRV names at once; the services found, best first.
    async fn by_srv(&self, domain: &str, tried: &mut Vec<Attempt>) -> Option<Vec<ServerSettings>> {
        let config = &self.inner.config;
        let resolver = match self.resolver() {
            Ok(r) => r,
            Err(why) => {
                tried.push(Attempt {
                    method: Method::Srv,
                    target: domain.to_owned(),
                    result: why.to_owned(),
                });
                return None;
            }
        };
        let answers = futures::future::join_all(
            srv::MailService::ALL
                .iter()
                .map(|service| srv::lookup(resolver, *service, domain, config.lookup_timeout)),
        )
        .await;
        let mut found = Vec::new();
        for (service, answer) in srv::MailService::ALL.iter().zip(answers) {
            let target = format!("{}.{domain}", service.label());
            let result = match answer {
                Ok(records) => match srv::choose(&records, crate::service::unit_random()) {
                    srv::Choice::Use(record) => {
                        let text = format!("found {}:{}", record.target, record.port);
                        found.push((*service, record));
                        text
                    }
                    srv::Choice::NotOffered => "not offered (target \".\")".into(),
                    srv::Choice::Nothing => "no usable record".into(),
                },
                Err(e) => e.to_string(),
            };
            tried.push(Attempt {
                method: Method::Srv,
                target,
                result,
            });
        }
        (!found.is_empty()).then(|| srv::order(found))
    }

    /// Step 4: the domain's MX records, matched against the table.
    async fn by_mx(&self, domain: &str) -> Result<(&'static Preset, String), String> {
        let resolver = self.resolver().map_err(str::to_owned)?;
        let records = mx::lookup(resolver, domain, self.inner.config.lookup_timeout)
            .await
            .map_err(|e| e.to_string())?;
        mx::provider(&records).ok_or_else(|| {
            let first = records
                .iter()
                .min_by_key(|(preference, _)| *preference)
                .map(|(_, host)| host.as_str())
                .unwrap_or("");
            format!("{first}: not a provider the table knows")
        })
    }

    /// Step 3: one autoconfig URL.
    async fn by_autoconfig(
        &self,
        url: &str,
        email: &str,
    ) -> Result<autoconfig::Autoconfig, autoconfig::AutoconfigError> {
        let config = &self.inner.config;
        let client = self
            .client()
            .map_err(|why| autoconfig::AutoconfigError::Http(why.to_owned()))?;
        let body = autoconfig::fetch(client, url, config.lookup_timeout, config.max_body).await?;
        autoconfig::parse(&body, email)
    }

    fn resolver(&self) -> Result<&TokioResolver, &str> {
        self.inner
            .resolver
            .get_or_init(|| build_resolver(&self.inner.config))
            .as_ref()
            .map_err(String::as_str)
    }

    fn client(&self) -> Result<&reqwest::Client, &str> {
        self.inner
            .client
            .get_or_init(|| build_client(&self.inner.config))
            .as_ref()
            .map_err(String::as_str)
    }
}

/// The settings of a preset, as discovery answers them.
pub fn from_preset(
    preset: &Preset,
    email: String,
    domain: String,
    tried: Vec<Attempt>,
) -> Discovered {
    Discovered {
        servers: preset.servers(Some(&email)),
        email,
        domain,
        method: Method::Table,
        source: format!("preset {}", preset.id),
        provider: Some(preset.id.to_owned()),
        provider_name: Some(preset.name.to_owned()),
        oauth2: preset.oauth2,
        notes: preset.notes.iter().map(|n| (*n).to_owned()).collect(),
        tried,
    }
}

/// Assembles what a network method found; a known provider's host names
/// bring its preset's name, OAuth2 provider and notes along.
#[allow(clippy::too_many_arguments)]
fn finish(
    email: String,
    domain: String,
    method: Method,
    source: String,
    servers: Vec<ServerSettings>,
    name: Option<String>,
    oauth2: Option<OAuthProvider>,
    tried: Vec<Attempt>,
) -> Discovered {
    let known = servers
        .iter()
        .find_map(|s| presets::preset_for_host(&s.host));
    let oauth2 = oauth2.or_else(|| known.and_then(|p| p.oauth2)).or_else(|| {
        servers
            .iter()
            .find_map(|s| OAuthProvider::for_host(&s.host))
    });
    Discovered {
        email,
        domain,
        method,
        source,
        provider: known.map(|p| p.id.to_owned()),
        provider_name: name.or_else(|| known.map(|p| p.name.to_owned())),
        servers,
        oauth2,
        notes: known
            .map(|p| p.notes.iter().map(|n| (*n).to_owned()).collect())
            .unwrap_or_default(),
        tried,
    }
}

/// An autoconfig URL from its template.
fn autoconfig_url(template: &str, email: &str, domain: &str) -> String {
    let email: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
    template
        .replace("{domain}", domain)
        .replace("{email}", &email)
}

fn build_resolver(config: &DiscoveryConfig) -> Result<TokioResolver, String> {
    let mut builder = if config.name_servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| {
            format!("cannot read the system's DNS configuration (/etc/resolv.conf): {e}")
        })?
    } else {
        let servers = config
            .name_servers
            .iter()
            .map(|addr| {
                let on_port = |mut c: ConnectionConfig| {
                    c.port = addr.port();
                    c
                };
                NameServerConfig::new(
                    addr.ip(),
                    true,
                    vec![
                        on_port(ConnectionConfig::udp()),
                        on_port(ConnectionConfig::tcp()),
                    ],
                )
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let options: &mut ResolverOpts = builder.options_mut();
    // Our own timeout around each look-up says so in words; the
    // resolver's is a backstop a little later.
    options.timeout = config.lookup_timeout + Duration::from_millis(500);
    options.attempts = 1;
    options.cache_size = 256;
    builder
        .build()
        .map_err(|e| format!("cannot set up the DNS resolver: {e}"))
}

/// The autoconfig client: rustls, no proxy from the environment, a few
/// redirects (never https → http, never to a private address unless
/// allowed), and the private-network guard on names.
fn build_client(config: &DiscoveryConfig) -> Result<reqwest::Client, String> {
    let max = config.max_redirects;
    let allow_private = config.allow_private_networks;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.error(format!("more than {max} redirects"));
        }
        let from_https = attempt
            .previous()
            .first()
            .is_some_and(|u| u.scheme() == "https");
        let url = attempt.url();
        if from_https && url.scheme() != "https" {
            return attempt.error("a redirect from https to http (refused)");
        }
        if !allow_private
            && let Some(ip) = literal_ip(url)
            && crate::service::webhooks::is_private_address(ip)
        {
            return attempt.error("a redirect to a private address (refused)");
        }
        attempt.follow()
    });
    let mut builder = reqwest::Client::builder()
        .redirect(policy)
        // Each request is bounded by our own timeout (which says so in
        // words); the client's are a backstop a little later.
        .timeout(config.lookup_timeout + Duration::from_secs(1))
        .connect_timeout(config.lookup_timeout + Duration::from_secs(1))
        .no_proxy()
        .user_agent(concat!("intake-discovery/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

fn literal_ip(url: &reqwest::Url) -> Option<std::net::IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    }
}

/// Resolves names as the system does, then drops loopback, private and
/// link-local addresses: an autoconfig name that points only inside is
/// refused.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| !crate::service::webhooks::is_private_address(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves only to loopback, private or link-local addresses (refused)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_domains_normalised() {
        let (email, domain) = split_address("  Ann.Lee@Example.COM. ").unwrap();
        assert_eq!(
            (email.as_str(), domain.as_str()),
            ("Ann.Lee@example.com", "example.com")
        );
        let (_, domain) = split_address("jörg@bücher.example").unwrap();
        assert_eq!(domain, "xn--bcher-kva.example");
        for bad in [
            "",
            "no-at-sign",
            "@example.com",
            "a@",
            "a@localhost",
            "a@[127.0.0.1]",
            "a@127.0.0.1",
            "a b@example.com",
            "a@exa mple.com",
            "a@example.com/path",
            "a@example.com:8080",
            "a@-bad-.example",
        ] {
            assert!(split_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_names_are_checked() {
        for good in [
            "imap.example.com",
            "a-b.example",
            "10.0.0.1",
            "mx1.xn--bcher-kva.example",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "",
            "a..b",
            "-a.example",
            "a b",
            "a.example/",
            "a\u{1b}.example",
            "x".repeat(64).as_str(),
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_made_from_templates() {
        assert_eq!(
            autoconfig_url(AUTOCONFIG_URLS[0], "a+b@example.com", "example.com"),
            "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=a%2Bb%40example.com"
        );
        assert_eq!(
            autoconfig_url(AUTOCONFIG_URLS[1], "a@example.com", "example.com"),
            "https://example.com/.well-known/autoconfig/mail/config-v1.1.xml"
        );
    }

    #[tokio::test]
    async fn the_table_answers_without_the_network() {
        let d = Discoverer::new(DiscoveryConfig {
            mode: DiscoveryMode::Table,
            ..DiscoveryConfig::default()
        });
        let found = d.discover("someone@googlemail.com").await.unwrap();
        assert_eq!(found.method, Method::Table);
        assert_eq!(found.provider.as_deref(), Some("gmail"));
        assert_eq!(found.servers[0].host, "imap.gmail.com");
        assert_eq!(
            found.servers[0].username.as_deref(),
            Some("someone@googlemail.com")
        );
        let e = d.discover("someone@unknown.example").await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("unknown.example"), "{text}");
        assert!(text.contains("network discovery is off"), "{text}");
    }

    #[test]
    fn a_known_providers_host_brings_its_preset() {
        let servers = vec![ServerSettings {
            protocol: Protocol::Imap,
            host: "outlook.office365.com".into(),
            port: 993,
            security: Security::Tls,
            username: None,
            authentication: vec![Authentication::Password],
        }];
        let d = finish(
            "a@contoso.example".into(),
            "contoso.example".into(),
            Method::Autoconfig,
            "https://autoconfig.contoso.example/…".into(),
            servers,
            None,
            None,
            vec![],
        );
        assert_eq!(d.provider.as_deref(), Some("microsoft"));
        assert_eq!(d.oauth2, Some(OAuthProvider::Microsoft));
        assert!(!d.notes.is_empty());
    }
}
