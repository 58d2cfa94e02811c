//! The tenant's plugin chain: add a component (checked before it is
//! stored: it loads, has the role, accepts its configuration), list,
//! configure, order, switch on and off, remove.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::scope::Scope;
use super::{Result, Service, ServiceError, invalid};
use crate::domain::Secret;
use crate::plugin::{FailurePolicy, Limits, PluginRuntime, RuntimeConfig};
use crate::store::{BindingRole, NewBinding, StoredBinding, TenantId, TokenScope};

/// Settings of a binding, as a person gives them.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PluginSettings {
    /// `matcher` or `unknown-sender` (needed when adding).
    pub role: Option<String>,
    /// Deadline per message, milliseconds (default 100).
    pub deadline_ms: Option<u64>,
    /// Memory cap, MiB (default 64).
    pub memory_mb: Option<usize>,
    /// `quarantine` (default) or `skip`.
    pub on_error: Option<String>,
}

/// A binding's outbound HTTP grant, caps and secrets, as a person changes
/// them. Every field is optional: what is left out stays as it is.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundSettings {
    /// Replaces the allow-list: `scheme://host[:port]` entries, e.g.
    /// `https://crm.example.com`, `http://127.0.0.1:8080`,
    /// `https://*.example.com:443`. `[]` revokes the grant.
    pub allowed_outbound_hosts: Option<Vec<String>>,
    /// Time one request may take, milliseconds (default 5000; never past
    /// what is left of the deadline).
    pub http_timeout_ms: Option<u64>,
    /// Cap on one request's body, KiB (default 64).
    pub http_request_kb: Option<usize>,
    /// Cap on one response's body, KiB (default 1024).
    pub http_response_kb: Option<usize>,
    /// Secrets to set, name → value (e.g. `CRM_TOKEN`): stored encrypted,
    /// handed to this binding's instances as environment variables, never
    /// shown back.
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub set_secrets: Option<BTreeMap<String, Secret>>,
    /// Secrets to remove, by name.
    pub remove_secrets: Option<Vec<String>>,
}

impl OutboundSettings {
    /// Whether it changes anything.
    pub fn is_empty(&self) -> bool {
        self.allowed_outbound_hosts.is_none()
            && self.http_timeout_ms.is_none()
            && self.http_request_kb.is_none()
            && self.http_response_kb.is_none()
            && self.set_secrets.as_ref().is_none_or(BTreeMap::is_empty)
            && self.remove_secrets.as_ref().is_none_or(Vec::is_empty)
    }
}

/// A binding as views show it (not its bytes).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    /// Name in the chain.
    pub name: String,
    /// Place in the chain (ascending).
    pub position: i32,
    /// `matcher` or `unknown-sender`.
    pub role: String,
    /// Switched on.
    pub enabled: bool,
    /// Configuration passed to `init`.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Deadline per message, milliseconds.
    pub deadline_ms: u64,
    /// Memory cap, MiB.
    pub memory_mb: usize,
    /// What a failure does.
    pub on_error: String,
    /// The component's size in bytes.
    pub size: usize,
    /// The component's SHA-256, hex.
    pub sha256: String,
    /// The binding's configuration version: changes with its component,
    /// configuration, limits or failure policy; every recorded decision
    /// names it (`intake message explain`).
    pub config_version: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// Where the plugin may send HTTP requests; empty: nowhere.
    pub allowed_outbound_hosts: Vec<String>,
    /// Time one outbound request may take, milliseconds.
    pub http_timeout_ms: u64,
    /// Cap on one outbound request's body, KiB.
    pub http_request_kb: usize,
    /// Cap on one outbound response's body, KiB.
    pub http_response_kb: usize,
    /// The names of the binding's secrets (the values are never shown).
    pub secrets: Vec<String>,
}

fn view(b: &StoredBinding, secret_names: &BTreeMap<String, Vec<String>>) -> PluginView {
    let sha256 = hex::encode(sha2::Sha256::digest(&b.wasm));
    PluginView {
        config_version: crate::plugin::config_version(&sha256, &b.config, &b.limits, b.on_error),
        name: b.name.clone(),
        position: b.position,
        role: b.role.as_str().into(),
        enabled: b.enabled,
        config: serde_json::from_str(&b.config).unwrap_or(serde_json::Value::Null),
        deadline_ms: b.limits.deadline.as_millis() as u64,
        memory_mb: b.limits.memory_bytes >> 20,
        on_error: match b.on_error {
            FailurePolicy::Quarantine => "quarantine".into(),
            FailurePolicy::Skip => "skip".into(),
        },
        size: b.wasm.len(),
        sha256,
        created_at: b.created_at,
        allowed_outbound_hosts: b
            .limits
            .allowed_outbound_hosts
            .iter()
            .map(ToString::to_string)
            .collect(),
        http_timeout_ms: b.limits.http_timeout.as_millis() as u64,
        http_request_kb: b.limits.http_request_bytes >> 10,
        http_response_kb: b.limits.http_response_bytes >> 10,
        secrets: secret_names.get(&b.name).cloned().unwrap_or_default(),
    }
}

/// Parses a role name.
pub fn parse_role(text: &str) -> Result<BindingRole> {
    match text {
        "matcher" => Ok(BindingRole::Matcher),
        "unknown-sender" => Ok(BindingRole::UnknownSender),
        other => Err(invalid(
            "role",
            format!("unknown role {other:?} (expected matcher or unknown-sender)"),
        )),
    }
}

fn limits(settings: &PluginSettings, mut base: Limits) -> Result<Limits> {
    if let Some(ms) = settings.deadline_ms {
        if !(1..=60_000).contains(&ms) {
            return Err(invalid("deadline_ms", "1 to 60000"));
        }
        base.deadline = Duration::from_millis(ms);
    }
    if let Some(mb) = settings.memory_mb {
        if mb == 0 || mb << 20 > crate::plugin::limits::MAX_MEMORY_BYTES {
            return Err(invalid(
                "memory_mb",
                format!("1 to {}", crate::plugin::limits::MAX_MEMORY_BYTES >> 20),
            ));
        }
        base.memory_bytes = mb << 20;
    }
    Ok(base)
}

/// The outbound grant and caps of `settings` over `base`; every bad
/// allow-list entry is refused with what is wrong with it.
pub fn outbound_limits(settings: &OutboundSettings, mut base: Limits) -> Result<Limits> {
    use crate::plugin::limits::MAX_HTTP_BODY_BYTES;
    if let Some(entries) = &settings.allowed_outbound_hosts {
        if entries.len() > 64 {
            return Err(invalid("allowed_outbound_hosts", "at most 64 entries"));
        }
        base.allowed_outbound_hosts = crate::plugin::parse_allow_list(entries)
            .map_err(|e| invalid("allowed_outbound_hosts", e.to_string()))?;
    }
    if let Some(ms) = settings.http_timeout_ms {
        if !(1..=60_000).contains(&ms) {
            return Err(invalid("http_timeout_ms", "1 to 60000"));
        }
        base.http_timeout = Duration::from_millis(ms);
    }
    for (field, value, target) in [
        (
            "http_request_kb",
            settings.http_request_kb,
            &mut base.http_request_bytes,
        ),
        (
            "http_response_kb",
            settings.http_response_kb,
            &mut base.http_response_bytes,
        ),
    ] {
        if let Some(kb) = value {
            if kb == 0 || kb << 10 > MAX_HTTP_BODY_BYTES {
                return Err(invalid(
                    field,
                    format!("1 to {}", MAX_HTTP_BODY_BYTES >> 10),
                ));
            }
            *target = kb << 10;
        }
    }
    Ok(base)
}

fn on_error(settings: &PluginSettings, base: FailurePolicy) -> Result<FailurePolicy> {
    match settings.on_error.as_deref() {
        None => Ok(base),
        Some(text) => text.parse().map_err(|e: String| invalid("on_error", e)),
    }
}

/// What checking a component found: the roles it exports and the settings
/// it declares.
#[derive(Debug, Clone)]
pub struct ComponentCheck {
    /// The roles it exports.
    pub roles: crate::plugin::Roles,
    /// Its configuration schema (`intake:config-schema`), if it has one.
    pub schema: Option<intake_plugin_sdk::rules::ConfigSchema>,
}

/// Checks that a component loads and accepts `config`: its declared
/// settings (each bad field named), then its own `init`. The one check
/// behind `intake plugin add`, `plugin check`, the API's upload and a
/// configuration change.
pub async fn check_component(
    name: &str,
    wasm: &[u8],
    config: &str,
    limits: &Limits,
    tenant: &str,
) -> Result<ComponentCheck> {
    let runtime = Arc::new(
        PluginRuntime::new(RuntimeConfig::default())
            .map_err(|e| ServiceError::Internal(format!("plugin runtime: {e}")))?,
    );
    let plugin = runtime
        .load_async(crate::plugin::Binding {
            name: name.to_owned(),
            wasm: crate::plugin::WasmSource::Bytes(wasm.into()),
            config: config.to_owned(),
            limits: limits.clone(),
            on_error: FailurePolicy::default(),
            secrets: Vec::new(),
        })
        .await
        .map_err(|e| invalid("wasm", e.to_string()))?;
    plugin
        .check_init(tenant, Arc::new(crate::directory::MemoryDirectory::new()))
        .await
        .map_err(config_error)?;
    Ok(ComponentCheck {
        roles: plugin.roles(),
        schema: plugin.config_schema().cloned(),
    })
}

/// Checks that a component loads, has the role and accepts its config.
pub(crate) async fn check_plugin(binding: &NewBinding, tenant: &str) -> Result<()> {
    let roles = check_component(
        &binding.name,
        &binding.wasm,
        &binding.config,
        &binding.limits,
        tenant,
    )
    .await?
    .roles;
    let ok = match binding.role {
        BindingRole::Matcher => roles.matcher,
        BindingRole::UnknownSender => roles.unknown_sender,
    };
    if !ok {
        return Err(invalid(
            "role",
            format!(
                "{} does not export the {} role",
                binding.name,
                binding.role.as_str()
            ),
        ));
    }
    Ok(())
}

/// A refused configuration, named by its first bad field (`config.domains`)
/// when the component's schema found one, with every field in the reason.
fn config_error(error: crate::plugin::LoadError) -> ServiceError {
    match &error {
        crate::plugin::LoadError::Config { errors, .. } => {
            let field = match errors.first() {
                Some(first) if !first.field.is_empty() => format!("config.{}", first.field),
                _ => "config".into(),
            };
            invalid(field, error.to_string())
        }
        _ => invalid("config", error.to_string()),
    }
}

fn check_config(config: &str) -> Result<()> {
    serde_json::from_str::<serde_json::Value>(config)
        .map(drop)
        .map_err(|e| invalid("config", format!("not JSON: {e}")))
}

fn check_plugin_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(invalid("name", "1 to 64 letters, digits, `-`, `_` or `.`"))
    }
}

impl Service {
    /// On a tenant without plugins, installs the bundled reference chain.
    /// Returns where it came from when it installed it; `None` when the
    /// tenant had a chain (or another worker installed it first).
    pub async fn ensure_default_chain(&self, tenant: TenantId) -> Result<Option<String>> {
        if self.store.has_bindings(tenant).await? {
            return Ok(None);
        }
        let (plugins, origin) =
            crate::bundled::default_chain(self.plugin_dir.as_deref()).map_err(|e| {
                ServiceError::Internal(format!(
                    "this tenant has no plugins yet, and the default chain is not available: {e}"
                ))
            })?;
        let chain: Vec<NewBinding> = plugins
            .into_iter()
            .map(|p| NewBinding {
                name: p.name.into(),
                role: p.role,
                wasm: p.wasm.into_owned(),
                config: "{}".into(),
                limits: Limits::default(),
                on_error: FailurePolicy::Quarantine,
                enabled: true,
            })
            .collect();
        Ok(self
            .store
            .add_bindings(tenant, &chain, true)
            .await?
            .then(|| origin.to_string()))
    }

    /// The tenant's chain, in order.
    pub async fn plugins(&self, scope: &Scope) -> Result<Vec<PluginView>> {
        scope.require(TokenScope::Read)?;
        let names = self.store.plugin_secret_names(scope.tenant()).await?;
        Ok(self
            .store
            .bindings(scope.tenant())
            .await?
            .iter()
            .map(|b| view(b, &names))
            .collect())
    }

    /// Adds a component at the end of the chain, after checking that it
    /// loads, has the role and accepts `config`.
    pub async fn add_plugin(
        &self,
        scope: &Scope,
        name: &str,
        wasm: Vec<u8>,
        config: &str,
        settings: &PluginSettings,
    ) -> Result<PluginView> {
        scope.require(TokenScope::Admin)?;
        check_plugin_name(name)?;
        let role = parse_role(
            settings
                .role
                .as_deref()
                .ok_or_else(|| invalid("role", "needed: matcher or unknown-sender"))?,
        )?;
        if wasm.is_empty() {
            return Err(invalid("wasm", "empty: send the component's bytes"));
        }
        check_config(config)?;
        let binding = NewBinding {
            name: name.to_owned(),
            role,
            wasm,
            config: config.to_owned(),
            limits: limits(settings, Limits::default())?,
            on_error: on_error(settings, FailurePolicy::Quarantine)?,
            enabled: true,
        };
        check_plugin(&binding, scope.tenant_name()).await?;
        self.store.add_binding(scope.tenant(), &binding).await?;
        self.plugin(scope, name).await
    }

    /// One binding.
    pub async fn plugin(&self, scope: &Scope, name: &str) -> Result<PluginView> {
        scope.require(TokenScope::Read)?;
        let names = self.store.plugin_secret_names(scope.tenant()).await?;
        self.store
            .bindings(scope.tenant())
            .await?
            .iter()
            .find(|b| b.name == name)
            .map(|b| view(b, &names))
            .ok_or_else(|| super::directory::not_found("plugin", name))
    }

    /// Changes a binding's configuration, limits, failure policy, outbound
    /// grant or secrets; a new configuration is checked by the component's
    /// `init` first, and everything is checked before anything is stored.
    /// Setting a secret needs the master key.
    pub async fn configure_plugin(
        &self,
        scope: &Scope,
        name: &str,
        config: Option<&str>,
        settings: &PluginSettings,
        outbound: &OutboundSettings,
        enabled: Option<bool>,
    ) -> Result<PluginView> {
        scope.require(TokenScope::Admin)?;
        if settings.role.is_some() {
            return Err(invalid(
                "role",
                "a binding's role cannot change: add the component again under another name",
            ));
        }
        let bindings = self.store.bindings(scope.tenant()).await?;
        let current = bindings
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| super::directory::not_found("plugin", name))?;
        let new_config = config.unwrap_or(&current.config);
        check_config(new_config)?;
        let new_limits = outbound_limits(outbound, limits(settings, current.limits.clone())?)?;
        let new_policy = on_error(settings, current.on_error)?;
        let set_secrets = outbound.set_secrets.clone().unwrap_or_default();
        let remove_secrets = outbound.remove_secrets.clone().unwrap_or_default();
        for secret in set_secrets.keys().chain(&remove_secrets) {
            crate::store::plugin_secrets::check_secret_name(secret)
                .map_err(|e| invalid("secrets", e.to_string()))?;
        }
        if let Some(both) = set_secrets.keys().find(|k| remove_secrets.contains(k)) {
            return Err(invalid(
                "secrets",
                format!("{both} is both set and removed"),
            ));
        }
        let key = if set_secrets.is_empty() {
            None
        } else {
            Some(self.key.as_ref().ok_or(ServiceError::NoKey)?)
        };
        if config.is_some() {
            let binding = NewBinding {
                name: current.name.clone(),
                role: current.role,
                wasm: current.wasm.to_vec(),
                config: new_config.to_owned(),
                limits: new_limits.clone(),
                on_error: new_policy,
                enabled: current.enabled,
            };
            check_plugin(&binding, scope.tenant_name()).await?;
        }
        self.store
            .configure_binding(scope.tenant(), name, new_config, &new_limits, new_policy)
            .await?;
        if let Some(key) = key {
            for (secret, value) in &set_secrets {
                self.store
                    .set_plugin_secret(scope.tenant(), name, secret, value, key)
                    .await
                    .map_err(|e| match e {
                        crate::store::Error::Invalid { reason, .. } => invalid("secrets", reason),
                        other => other.into(),
                    })?;
            }
        }
        for secret in &remove_secrets {
            self.store
                .remove_plugin_secret(scope.tenant(), name, secret)
                .await?;
        }
        if let Some(enabled) = enabled {
            self.store
                .set_binding_enabled(scope.tenant(), name, enabled)
                .await?;
        }
        self.plugin(scope, name).await
    }

    /// Puts the chain in this order (every binding named once).
    pub async fn order_plugins(&self, scope: &Scope, names: &[String]) -> Result<Vec<PluginView>> {
        scope.require(TokenScope::Admin)?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.store
            .order_bindings(scope.tenant(), &names)
            .await
            .map_err(|e| match e {
                crate::store::Error::Invalid { reason, .. } => invalid("names", reason),
                other => other.into(),
            })?;
        self.plugins(scope).await
    }

    /// Removes a binding.
    pub async fn remove_plugin(&self, scope: &Scope, name: &str) -> Result<()> {
        scope.require(TokenScope::Admin)?;
        Ok(self.store.remove_binding(scope.tenant(), name).await?)
    }
}
