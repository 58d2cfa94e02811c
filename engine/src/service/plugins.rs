//! The tenant's plugin chain: add a component (checked before it is
//! stored: it loads, has the role, accepts its configuration), list,
//! configure, order, switch on and off, remove; and a binding's versions:
//! add one beside the running one, roll it out to a share of the mail or to
//! chosen accounts (a canary), promote it, roll back.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::scope::Scope;
use super::{Result, Service, ServiceError, invalid};
use crate::domain::Rollout;
use crate::domain::Secret;
use crate::plugin::{FailurePolicy, Limits, PluginRuntime, RuntimeConfig};
use crate::store::{
    BindingRole, NewBinding, NewVersion, RolledBack, StoredBinding, StoredVersion, TenantId,
    TokenScope,
};

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
    /// The plugin contract version the component targets (`0.1.0`,
    /// `0.2.0`), read from its exports; none if they name no version the
    /// engine knows.
    pub contract: Option<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// The active version's number (`intake plugin versions`).
    pub version: u32,
    /// The canary, if one runs.
    pub canary: Option<CanaryView>,
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

/// A canary: a binding's candidate version and the mail it decides.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CanaryView {
    /// The candidate's version number.
    pub version: u32,
    /// Share of messages it decides, per cent (by a hash of the message,
    /// so the same message always goes the same way).
    pub share_percent: f64,
    /// Accounts whose every message it decides.
    pub accounts: Vec<String>,
}

impl CanaryView {
    fn new(canary: &crate::store::Canary) -> Self {
        CanaryView {
            version: canary.version,
            share_percent: canary.rollout.share_percent(),
            accounts: canary.rollout.accounts.clone(),
        }
    }
}

/// One version of a binding.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginVersionView {
    /// Its number, 1, 2, … within the binding.
    pub version: u32,
    /// `active` (decides the mail), `candidate` (decides its canary's
    /// share), `previous` (was active; a rollback can return to it),
    /// `rolled-back` (was rolled back from) or `new` (never live).
    pub state: String,
    /// The component's SHA-256, hex.
    pub sha256: String,
    /// Configuration passed to `init`.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Deadline per message, milliseconds.
    pub deadline_ms: u64,
    /// Memory cap, MiB.
    pub memory_mb: usize,
    /// Its configuration version, as recorded decisions name it.
    pub config_version: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last became the active version.
    pub activated_at: Option<DateTime<Utc>>,
}

/// A binding's versions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginVersions {
    /// The binding's name.
    pub name: String,
    /// The active version's number.
    pub active: u32,
    /// The canary, if one runs.
    pub canary: Option<CanaryView>,
    /// Every version, oldest first.
    pub versions: Vec<PluginVersionView>,
}

/// A canary to start (or change).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// The version to roll out (not the active one).
    pub version: u32,
    /// Share of messages it decides, per cent (0 to 100, at most two
    /// decimals); default 0.
    pub share_percent: Option<f64>,
    /// Accounts (by name) whose every message it decides.
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RollbackView {
    /// `canary` (the candidate stopped) or `active` (the active version
    /// went back to the one before it).
    pub undid: String,
    /// The version that no longer decides.
    pub from: u32,
    /// The version that decides all mail now.
    pub to: u32,
    /// The binding's versions after it.
    pub plugin: PluginVersions,
}

fn version_view(b: &StoredBinding, v: &StoredVersion) -> PluginVersionView {
    let state = if v.number == b.version {
        "active"
    } else if b.canary.as_ref().is_some_and(|c| c.version == v.number) {
        "candidate"
    } else if v.rolled_back_at.is_some() {
        "rolled-back"
    } else if v.activated_at.is_some() {
        "previous"
    } else {
        "new"
    };
    PluginVersionView {
        version: v.number,
        state: state.into(),
        config_version: crate::plugin::config_version(
            &v.component_sha256,
            &v.config,
            &v.limits,
            b.on_error,
        ),
        sha256: v.component_sha256.clone(),
        config: serde_json::from_str(&v.config).unwrap_or(serde_json::Value::Null),
        deadline_ms: v.limits.deadline.as_millis() as u64,
        memory_mb: v.limits.memory_bytes >> 20,
        created_at: v.created_at,
        activated_at: v.activated_at,
    }
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
        contract: crate::plugin::ContractVersion::of_component(&b.wasm).map(|v| v.to_string()),
        created_at: b.created_at,
        version: b.version,
        canary: b.canary.as_ref().map(CanaryView::new),
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
    /// The contract version it targets.
    pub contract: crate::plugin::ContractVersion,
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
        contract: plugin.contract(),
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

    /// A binding's versions, which is active and which is a canary.
    pub async fn plugin_versions(&self, scope: &Scope, name: &str) -> Result<PluginVersions> {
        scope.require(TokenScope::Read)?;
        let found = self
            .store
            .binding_versions(scope.tenant(), name)
            .await
            .map_err(|e| plugin_not_found(e, name))?;
        let b = &found.binding;
        Ok(PluginVersions {
            name: b.name.clone(),
            active: b.version,
            canary: b.canary.as_ref().map(CanaryView::new),
            versions: found.versions.iter().map(|v| version_view(b, v)).collect(),
        })
    }

    /// Adds a version beside the running one: `wasm` (default: the active
    /// version's component) with `config` (default: the active version's)
    /// and limits (the active version's, changed by `settings`). It is
    /// checked as `add_plugin` checks a component — it loads, exports the
    /// binding's role, accepts its configuration — and decides nothing until
    /// it is made a canary or promoted.
    pub async fn add_plugin_version(
        &self,
        scope: &Scope,
        name: &str,
        wasm: Option<Vec<u8>>,
        config: Option<&str>,
        settings: &PluginSettings,
    ) -> Result<PluginVersionView> {
        scope.require(TokenScope::Admin)?;
        if settings.role.is_some() {
            return Err(invalid(
                "role",
                "a version has its binding's role: add the component under another name",
            ));
        }
        if settings.on_error.is_some() {
            return Err(invalid(
                "on_error",
                "the failure policy is the binding's, for all its versions: change it with a configure",
            ));
        }
        let current = self
            .store
            .bindings(scope.tenant())
            .await?
            .into_iter()
            .find(|b| b.name == name)
            .ok_or_else(|| super::directory::not_found("plugin", name))?;
        let wasm = match wasm {
            Some(bytes) if bytes.is_empty() => {
                return Err(invalid("wasm", "empty: send the component's bytes"));
            }
            Some(bytes) => bytes,
            None => current.wasm.to_vec(),
        };
        let config = config.unwrap_or(&current.config).to_owned();
        check_config(&config)?;
        let version = NewVersion {
            wasm,
            config,
            limits: limits(settings, current.limits.clone())?,
        };
        check_plugin(
            &NewBinding {
                name: current.name.clone(),
                role: current.role,
                wasm: version.wasm.clone(),
                config: version.config.clone(),
                limits: version.limits.clone(),
                on_error: current.on_error,
                enabled: current.enabled,
            },
            scope.tenant_name(),
        )
        .await?;
        let number = self
            .store
            .add_binding_version(scope.tenant(), name, &version)
            .await
            .map_err(|e| plugin_not_found(e, name))?;
        self.plugin_versions(scope, name)
            .await?
            .versions
            .into_iter()
            .find(|v| v.version == number)
            .ok_or_else(|| ServiceError::Internal(format!("{name} version {number} vanished")))
    }

    /// Starts a canary (or changes the running one): `request.version`
    /// decides the mail of the named accounts and `share_percent` of the
    /// rest, chosen by a hash of each message, from the next run on; the
    /// active version decides everything else.
    pub async fn start_canary(
        &self,
        scope: &Scope,
        name: &str,
        request: &CanaryRequest,
    ) -> Result<PluginVersions> {
        scope.require(TokenScope::Admin)?;
        // Another tenant's plugin is not found, whatever the request says.
        self.plugin(scope, name).await?;
        let share_bp = crate::domain::rollout::parse_share(request.share_percent.unwrap_or(0.0))
            .map_err(|e| invalid("share_percent", e))?;
        let mut accounts: Vec<String> = Vec::new();
        for (i, account) in request.accounts.iter().enumerate() {
            let account = account.trim();
            match self.store.account_id(scope.tenant(), account).await {
                Ok(_) => {}
                Err(crate::store::Error::NotFound { .. }) => {
                    return Err(invalid(
                        format!("accounts[{i}]"),
                        format!("no account {account:?}"),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            if !accounts.iter().any(|a| a == account) {
                accounts.push(account.to_owned());
            }
        }
        if share_bp == 0 && accounts.is_empty() {
            return Err(invalid(
                "share_percent",
                "a canary needs a share of the mail, accounts, or both",
            ));
        }
        self.store
            .set_canary(
                scope.tenant(),
                name,
                request.version,
                &Rollout { share_bp, accounts },
            )
            .await
            .map_err(|e| version_error(e, name))?;
        self.plugin_versions(scope, name).await
    }

    /// Makes a version the active one for all mail, from the next run on:
    /// `version`, or by default the canary's candidate.
    pub async fn promote_plugin(
        &self,
        scope: &Scope,
        name: &str,
        version: Option<u32>,
    ) -> Result<PluginVersions> {
        scope.require(TokenScope::Admin)?;
        self.store
            .promote_binding_version(scope.tenant(), name, version)
            .await
            .map_err(|e| version_error(e, name))?;
        self.plugin_versions(scope, name).await
    }

    /// Rolls a binding back: stops its canary, or when none runs, returns
    /// to the version that was active before the current one.
    pub async fn rollback_plugin(&self, scope: &Scope, name: &str) -> Result<RollbackView> {
        scope.require(TokenScope::Admin)?;
        let done = self
            .store
            .rollback_binding(scope.tenant(), name)
            .await
            .map_err(|e| version_error(e, name))?;
        let plugin = self.plugin_versions(scope, name).await?;
        let (undid, from, to) = match done {
            RolledBack::Canary { candidate } => ("canary", candidate, plugin.active),
            RolledBack::Active { from, to } => ("active", from, to),
        };
        Ok(RollbackView {
            undid: undid.into(),
            from,
            to,
            plugin,
        })
    }
}

/// A missing binding as the service names it (`plugin`).
fn plugin_not_found(error: crate::store::Error, name: &str) -> ServiceError {
    match error {
        crate::store::Error::NotFound {
            what: "binding", ..
        } => super::directory::not_found("plugin", name),
        other => other.into(),
    }
}

/// A refused version operation, on the `version` field.
fn version_error(error: crate::store::Error, name: &str) -> ServiceError {
    match error {
        crate::store::Error::Invalid {
            what: "version",
            reason,
        } => invalid("version", reason),
        crate::store::Error::NotFound {
            what: "plugin version",
            name: missing,
        } => invalid("version", format!("no {missing}")),
        other => plugin_not_found(other, name),
    }
}
