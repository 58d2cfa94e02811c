//! Webhook endpoints and deliveries: the rules the command line and the
//! HTTP API share.
//!
//! An endpoint's URL is `http` or `https`, at most [`MAX_URL_LEN`]
//! characters, without credentials in it, and — unless the operator allows
//! it ([`WebhookPolicy::allow_private_networks`]) — not aimed at a
//! loopback, private or link-local address (checked here on an address
//! literal, and again by the delivery loop on the address a name resolves
//! to). Event types are from [`WebhookEventType::ALL`], or `*`; none means
//! all. The signing secret (`whsec_` and the base64 of 32 random bytes, the
//! Standard Webhooks format) is returned once, at creation or rotation, and
//! stored sealed with the master key; listing never returns it.
//!
//! Validation errors are [`store::Error::Invalid`] naming the field (`url`,
//! `events`, `description`), so the API can map them to a problem naming
//! it. Every function takes the tenant; an id of another tenant's is "not
//! found".

use std::net::IpAddr;

use base64::Engine as _;
use serde::Serialize;

use super::{Result, Scope, Service, ServiceError};
use crate::domain::Secret;
use crate::store::{
    self, DeliveryQuery, EndpointChanges, NewEndpoint, TokenScope, WebhookDelivery,
    WebhookDeliveryId, WebhookEndpoint, WebhookEndpointId, WebhookEventType,
};

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// The longest description accepted, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Random bytes in a signing secret.
const SECRET_BYTES: usize = 32;

/// The operator's rules for webhook destinations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// Allow loopback, private and link-local destinations (a single-tenant
    /// set-up, or tests); off by default so that in hosted use a tenant
    /// cannot aim webhooks at the operator's internal network.
    pub allow_private_networks: bool,
}

/// An endpoint to register.
#[derive(Debug, Clone)]
pub struct WebhookInput {
    /// Where events are POSTed.
    pub url: String,
    /// Event types; empty (or `*`): all.
    pub event_types: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Switched on (normally true).
    pub enabled: bool,
}

/// A registered endpoint and its secret, shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// The `whsec_…` signing secret.
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub secret: Secret,
}

fn expose<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// A fresh signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> Result<Secret> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        ServiceError::Store(store::Error::Key(store::KeyError::Random(e.to_string())))
    })?;
    Ok(Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )))
}

/// Whether `ip` is on a network a hosted tenant must not reach: loopback,
/// private (RFC 1918, unique local), link-local, shared (CGNAT),
/// unspecified, broadcast or multicast — IPv4 inside IPv6 included.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

fn invalid(what: &'static str, reason: impl Into<String>) -> ServiceError {
    ServiceError::Store(store::Error::Invalid {
        what,
        reason: reason.into(),
    })
}

/// Checks a URL against the rules in the module docs; returns it trimmed.
pub fn check_url(url: &str, policy: WebhookPolicy) -> Result<String> {
    let url = url.trim();
    if url.is_empty() {
        return Err(invalid("url", "empty"));
    }
    if url.len() > MAX_URL_LEN {
        return Err(invalid(
            "url",
            format!("longer than {MAX_URL_LEN} characters"),
        ));
    }
    let parsed = url::Url::parse(url).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            "url",
            format!("scheme {:?}: only http and https", parsed.scheme()),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "url",
            "credentials in the URL are not accepted; verify the signature instead",
        ));
    }
    let Some(host) = parsed.host() else {
        return Err(invalid("url", "no host"));
    };
    if !policy.allow_private_networks {
        let private = match host {
            url::Host::Ipv4(ip) => is_private_address(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => is_private_address(IpAddr::V6(ip)),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
        };
        if private {
            return Err(invalid(
                "url",
                "a loopback, private or link-local destination; the operator allows those \
                 with --webhook-allow-private-networks",
            ));
        }
    }
    Ok(url.to_owned())
}

/// Checks event types: known ones or `*`, without repeats; `*` alone
/// stands for all and is stored as the empty list.
pub fn check_event_types(types: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in types {
        let t = t.trim();
        if t == "*" {
            return Ok(Vec::new());
        }
        if WebhookEventType::parse(t).is_none() {
            let known: Vec<&str> = WebhookEventType::ALL.iter().map(|k| k.as_str()).collect();
            return Err(invalid(
                "event_types",
                format!(
                    "unknown event type {t:?}; known: {}, or *",
                    known.join(", ")
                ),
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

fn check_description(description: Option<&str>) -> Result<Option<String>> {
    match description.map(str::trim) {
        None | Some("") => Ok(None),
        Some(d) if d.chars().count() > MAX_DESCRIPTION_LEN => Err(invalid(
            "description",
            format!("longer than {MAX_DESCRIPTION_LEN} characters"),
        )),
        Some(d) => Ok(Some(crate::text::bounded(d, MAX_DESCRIPTION_LEN))),
    }
}

impl Service {
    /// The same service with these webhook rules.
    pub fn with_webhook_policy(mut self, policy: WebhookPolicy) -> Self {
        self.webhooks = policy;
        self
    }

    /// The same service with a master key (an administering service seals
    /// webhook secrets with it).
    pub fn with_master_key(mut self, key: crate::store::MasterKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The webhook rules in force.
    pub fn webhook_policy(&self) -> WebhookPolicy {
        self.webhooks
    }

    fn sealing_key(&self) -> Result<&crate::store::MasterKey> {
        self.key.as_ref().ok_or(ServiceError::NoKey)
    }

    /// Registers an endpoint; the secret is in the answer, and only there.
    #[tracing::instrument(name = "service.webhook.create", skip_all, fields(tenant = %scope.tenant_name()))]
    pub async fn create_webhook(
        &self,
        scope: &Scope,
        input: &WebhookInput,
    ) -> Result<CreatedWebhook> {
        scope.require(TokenScope::Admin)?;
        let tenant = scope.tenant();
        let url = check_url(&input.url, self.webhooks)?;
        let event_types = check_event_types(&input.event_types)?;
        let description = check_description(input.description.as_deref())?;
        let key = self.sealing_key()?;
        let secret = new_secret()?;
        let endpoint = self
            .store
            .add_webhook_endpoint(
                tenant,
                &NewEndpoint {
                    url,
                    event_types,
                    description,
                    enabled: input.enabled,
                    secret: secret.clone(),
                },
                key,
            )
            .await?;
        tracing::info!(endpoint = %endpoint.id, "webhook endpoint registered");
        Ok(CreatedWebhook { endpoint, secret })
    }

    /// The tenant's endpoints (never their secrets).
    pub async fn webhooks(&self, scope: &Scope) -> Result<Vec<WebhookEndpoint>> {
        scope.require(TokenScope::Read)?;
        let tenant = scope.tenant();
        Ok(self.store.webhook_endpoints(tenant).await?)
    }

    /// One endpoint.
    pub async fn webhook(&self, scope: &Scope, id: WebhookEndpointId) -> Result<WebhookEndpoint> {
        scope.require(TokenScope::Read)?;
        let tenant = scope.tenant();
        Ok(self.store.webhook_endpoint(tenant, id).await?)
    }

    /// Changes an endpoint's URL, event types, switch or description.
    pub async fn update_webhook(
        &self,
        scope: &Scope,
        id: WebhookEndpointId,
        changes: &EndpointChanges,
    ) -> Result<WebhookEndpoint> {
        scope.require(TokenScope::Admin)?;
        let tenant = scope.tenant();
        let checked = EndpointChanges {
            url: changes
                .url
                .as_deref()
                .map(|u| check_url(u, self.webhooks))
                .transpose()?,
            event_types: changes
                .event_types
                .as_deref()
                .map(check_event_types)
                .transpose()?,
            enabled: changes.enabled,
            description: changes
                .description
                .as_ref()
                .map(|d| check_description(d.as_deref()))
                .transpose()?,
        };
        Ok(self
            .store
            .update_webhook_endpoint(tenant, id, &checked)
            .await?)
    }

    /// Gives an endpoint a new secret and returns it (shown this once).
    /// Deliveries signed from now on use it.
    pub async fn rotate_webhook_secret(
        &self,
        scope: &Scope,
        id: WebhookEndpointId,
    ) -> Result<Secret> {
        scope.require(TokenScope::Admin)?;
        let tenant = scope.tenant();
        let key = self.sealing_key()?;
        let secret = new_secret()?;
        self.store
            .set_webhook_secret(tenant, id, &secret, key)
            .await?;
        tracing::info!(tenant = %tenant, endpoint = %id, "webhook secret rotated");
        Ok(secret)
    }

    /// Removes an endpoint and its deliveries.
    pub async fn delete_webhook(&self, scope: &Scope, id: WebhookEndpointId) -> Result<()> {
        scope.require(TokenScope::Admin)?;
        let tenant = scope.tenant();
        Ok(self.store.remove_webhook_endpoint(tenant, id).await?)
    }

    /// Deliveries, newest first, filtered and paged by `query`.
    pub async fn webhook_deliveries(
        &self,
        scope: &Scope,
        query: &DeliveryQuery,
    ) -> Result<Vec<WebhookDelivery>> {
        scope.require(TokenScope::Read)?;
        let tenant = scope.tenant();
        Ok(self.store.webhook_deliveries(tenant, query).await?)
    }

    /// Sends a dead (or delivered) delivery again: pending, due now, with a
    /// new retry window.
    pub async fn redeliver_webhook(
        &self,
        scope: &Scope,
        id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery> {
        scope.require(TokenScope::Write)?;
        let tenant = scope.tenant();
        Ok(self.store.redeliver_webhook(tenant, id).await?)
    }

    /// Sends every dead delivery of an endpoint again; returns how many.
    pub async fn redeliver_dead_webhooks(
        &self,
        scope: &Scope,
        endpoint: WebhookEndpointId,
    ) -> Result<u64> {
        scope.require(TokenScope::Write)?;
        let tenant = scope.tenant();
        Ok(self.store.redeliver_dead_webhooks(tenant, endpoint).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<String>) -> String {
        match result {
            Err(ServiceError::Store(store::Error::Invalid { what, reason })) => {
                format!("{what}: {reason}")
            }
            other => panic!("expected an invalid url, got {other:?}"),
        }
    }

    #[test]
    fn urls_are_checked() {
        let hosted = WebhookPolicy::default();
        let open = WebhookPolicy {
            allow_private_networks: true,
        };
        assert_eq!(
            check_url(" https://crm.example/hooks ", hosted).unwrap(),
            "https://crm.example/hooks"
        );
        assert!(reason(check_url("ftp://crm.example/", hosted)).starts_with("url: scheme"));
        assert!(reason(check_url("https://u:p@crm.example/", hosted)).contains("credentials"));
        assert!(reason(check_url("not a url", hosted)).starts_with("url: not a URL"));
        let long = format!("https://crm.example/{}", "a".repeat(MAX_URL_LEN));
        assert!(reason(check_url(&long, hosted)).contains("longer"));
        for private in [
            "http://127.0.0.1:8080/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://localhost/",
            "http://0.0.0.0/",
        ] {
            assert!(
                reason(check_url(private, hosted)).contains("private"),
                "{private}"
            );
            assert!(check_url(private, open).is_ok(), "{private}");
        }
    }

    #[test]
    fn event_types_are_known_ones() {
        assert_eq!(check_event_types(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            check_event_types(&["*".into(), "lead.created".into()]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            check_event_types(&["lead.created".into(), "lead.created".into()]).unwrap(),
            vec!["lead.created".to_string()]
        );
        match check_event_types(&["lead.deleted".into()]) {
            Err(ServiceError::Store(store::Error::Invalid { what, .. })) => {
                assert_eq!(what, "event_types")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_have_the_standard_format() {
        let s = new_secret().unwrap();
        let b64 = s.expose().strip_prefix("whsec_").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(bytes.len(), 32);
        assert_ne!(new_secret().unwrap().expose(), s.expose());
    }
}
