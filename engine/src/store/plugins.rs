//! The tenant's plugin chain: components (bytes in the database, so every
//! worker on one PostgreSQL runs the same plugins), config, limits and
//! failure policy, in chain order.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::entity::plugin_bindings;
use super::{
    Error, Result, Store, TenantId, corrupt, invalid, lock_tenant, not_found, now, unique_violation,
};
use crate::plugin::{Binding, FailurePolicy, Limits, WasmSource};

/// What a binding does in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindingRole {
    /// Runs in order; the first that attaches or ends the chain decides.
    Matcher,
    /// Decides for senders no matcher attached (at most one per tenant).
    UnknownSender,
}

impl BindingRole {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingRole::Matcher => "matcher",
            BindingRole::UnknownSender => "unknown-sender",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "matcher" => Ok(BindingRole::Matcher),
            "unknown-sender" => Ok(BindingRole::UnknownSender),
            other => Err(corrupt("binding role", format!("unknown value {other:?}"))),
        }
    }
}

/// A binding to add.
#[derive(Clone)]
pub struct NewBinding {
    /// Name, unique in the tenant (shown in logs and quarantine reasons).
    pub name: String,
    /// Its role in the chain.
    pub role: BindingRole,
    /// The component's bytes.
    pub wasm: Vec<u8>,
    /// JSON passed to `init`.
    pub config: String,
    /// Deadline, memory and output caps.
    pub limits: Limits,
    /// What a failure does.
    pub on_error: FailurePolicy,
    /// Switched on.
    pub enabled: bool,
}

impl std::fmt::Debug for NewBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewBinding")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("wasm_bytes", &self.wasm.len())
            .finish_non_exhaustive()
    }
}

/// A stored binding.
#[derive(Clone)]
pub struct StoredBinding {
    /// Name, unique in the tenant.
    pub name: String,
    /// Place in the chain (ascending).
    pub position: i32,
    /// Its role.
    pub role: BindingRole,
    /// The component's bytes, shared with the [`Binding`] built from it.
    pub wasm: Arc<[u8]>,
    /// JSON passed to `init`.
    pub config: String,
    /// Deadline, memory and output caps.
    pub limits: Limits,
    /// What a failure does.
    pub on_error: FailurePolicy,
    /// Switched on.
    pub enabled: bool,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for StoredBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredBinding")
            .field("name", &self.name)
            .field("position", &self.position)
            .field("role", &self.role)
            .field("wasm_bytes", &self.wasm.len())
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl StoredBinding {
    /// The binding the plugin runtime loads.
    pub fn to_binding(&self) -> Binding {
        Binding {
            name: self.name.clone(),
            wasm: WasmSource::Bytes(self.wasm.clone()),
            config: self.config.clone(),
            limits: self.limits.clone(),
            on_error: self.on_error,
            // Opened separately, with the master key, when a chain is
            // loaded (`Store::plugin_secrets`).
            secrets: Vec::new(),
        }
    }
}

fn policy_name(policy: FailurePolicy) -> &'static str {
    match policy {
        FailurePolicy::Quarantine => "quarantine",
        FailurePolicy::Skip => "skip",
    }
}

fn from_row(row: plugin_bindings::Model) -> Result<StoredBinding> {
    Ok(StoredBinding {
        role: BindingRole::parse(&row.role)?,
        limits: serde_json::from_str(&row.limits).map_err(|e| corrupt("binding limits", e))?,
        on_error: row
            .failure_policy
            .parse()
            .map_err(|e: String| corrupt("binding failure policy", e))?,
        name: row.name,
        position: row.position,
        wasm: row.wasm.into(),
        config: row.config,
        enabled: row.enabled,
        created_at: row.created_at,
    })
}

impl Store {
    /// Appends a binding to the end of the tenant's chain.
    pub async fn add_binding(&self, tenant: TenantId, binding: &NewBinding) -> Result<()> {
        self.add_bindings(tenant, std::slice::from_ref(binding), false)
            .await
            .map(|_| ())
    }

    /// Appends several bindings in one transaction: all or none, so a crash
    /// never leaves half a chain. With `only_if_empty`, nothing is added
    /// (and `false` returned) when the tenant already has bindings; the
    /// check is made under the tenant lock, so two workers installing a
    /// default chain at once install it once.
    pub async fn add_bindings(
        &self,
        tenant: TenantId,
        bindings: &[NewBinding],
        only_if_empty: bool,
    ) -> Result<bool> {
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let scoped = || {
            plugin_bindings::Entity::find().filter(plugin_bindings::Column::TenantId.eq(tenant.0))
        };
        if only_if_empty && scoped().one(&txn).await?.is_some() {
            return Ok(false);
        }
        for binding in bindings {
            let name = binding.name.trim();
            if name.is_empty() {
                return Err(invalid("binding name", "empty"));
            }
            serde_json::from_str::<serde_json::Value>(&binding.config)
                .map_err(|e| invalid("binding config", format!("not JSON: {e}")))?;
            let limits = serde_json::to_string(&binding.limits)
                .map_err(|e| invalid("binding limits", e.to_string()))?;
            if binding.role == BindingRole::UnknownSender
                && let Some(other) = scoped()
                    .filter(plugin_bindings::Column::Role.eq(BindingRole::UnknownSender.as_str()))
                    .one(&txn)
                    .await?
            {
                // The chain takes one policy; a second would be silently unused.
                return Err(invalid(
                    "binding role",
                    format!(
                        "{:?} is already the unknown-sender policy; remove it first",
                        other.name
                    ),
                ));
            }
            let last: Option<i32> = scoped()
                .select_only()
                .column_as(Expr::col(plugin_bindings::Column::Position).max(), "last")
                .into_tuple::<Option<i32>>()
                .one(&txn)
                .await?
                .flatten();
            plugin_bindings::Entity::insert(plugin_bindings::ActiveModel {
                tenant_id: Set(tenant.0),
                position: Set(last.map_or(0, |p| p + 1)),
                name: Set(name.to_owned()),
                role: Set(binding.role.as_str().to_owned()),
                wasm: Set(binding.wasm.clone()),
                config: Set(binding.config.clone()),
                limits: Set(limits),
                failure_policy: Set(policy_name(binding.on_error).to_owned()),
                enabled: Set(binding.enabled),
                created_at: Set(now()),
                ..Default::default()
            })
            .exec(&txn)
            .await
            .map_err(|e| unique_violation(e, "binding", name))?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// The tenant's bindings in chain order.
    pub async fn bindings(&self, tenant: TenantId) -> Result<Vec<StoredBinding>> {
        plugin_bindings::Entity::find()
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .order_by_asc(plugin_bindings::Column::Position)
            .order_by_asc(plugin_bindings::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(from_row)
            .collect()
    }

    /// Whether the tenant has any binding (a fresh database has none).
    pub async fn has_bindings(&self, tenant: TenantId) -> Result<bool> {
        Ok(plugin_bindings::Entity::find()
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .count(&self.db)
            .await?
            > 0)
    }

    /// Removes the binding `name`, and its secrets.
    pub async fn remove_binding(&self, tenant: TenantId, name: &str) -> Result<()> {
        let txn = self.db.begin().await?;
        let removed = plugin_bindings::Entity::delete_many()
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .filter(plugin_bindings::Column::Name.eq(name))
            .exec(&txn)
            .await?;
        if removed.rows_affected == 0 {
            return Err(not_found("binding", name));
        }
        super::plugin_secrets::delete_for_binding(&txn, tenant, name).await?;
        txn.commit().await?;
        Ok(())
    }

    /// A fingerprint of the tenant's chain as stored — every binding's id,
    /// place, settings and switch, not the component's bytes (a new
    /// component is a new row) — so a running engine can tell that its
    /// loaded chain is out of date with one small query.
    pub async fn chain_signature(&self, tenant: TenantId) -> Result<String> {
        use sha2::Digest;
        let rows: Vec<(i64, i32, bool, String, String, String)> = plugin_bindings::Entity::find()
            .select_only()
            .column(plugin_bindings::Column::Id)
            .column(plugin_bindings::Column::Position)
            .column(plugin_bindings::Column::Enabled)
            .column(plugin_bindings::Column::Config)
            .column(plugin_bindings::Column::Limits)
            .column(plugin_bindings::Column::FailurePolicy)
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .order_by_asc(plugin_bindings::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut hash = sha2::Sha256::new();
        for (id, position, enabled, config, limits, policy) in rows {
            hash.update(format!("{id}\0{position}\0{enabled}\0{}\0", config.len()));
            hash.update(config.as_bytes());
            hash.update(format!("\0{limits}\0{policy}\n").as_bytes());
        }
        // A changed secret is a changed chain too.
        hash.update(super::plugin_secrets::signature(&self.db, tenant).await?);
        Ok(hex::encode(hash.finalize()))
    }

    /// Replaces the configuration, limits and failure policy of the binding
    /// `name` (the component stays).
    pub async fn configure_binding(
        &self,
        tenant: TenantId,
        name: &str,
        config: &str,
        limits: &Limits,
        on_error: FailurePolicy,
    ) -> Result<()> {
        let limits = serde_json::to_string(limits).map_err(|e| invalid("limits", e.to_string()))?;
        let _turn = self.write_turn().await;
        let updated = plugin_bindings::Entity::update_many()
            .col_expr(plugin_bindings::Column::Config, Expr::value(config))
            .col_expr(plugin_bindings::Column::Limits, Expr::value(limits))
            .col_expr(
                plugin_bindings::Column::FailurePolicy,
                Expr::value(policy_name(on_error)),
            )
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .filter(plugin_bindings::Column::Name.eq(name))
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            return Err(not_found("binding", name));
        }
        Ok(())
    }

    /// Switches the binding `name` on or off.
    pub async fn set_binding_enabled(
        &self,
        tenant: TenantId,
        name: &str,
        enabled: bool,
    ) -> Result<()> {
        let updated = plugin_bindings::Entity::update_many()
            .col_expr(plugin_bindings::Column::Enabled, Expr::value(enabled))
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .filter(plugin_bindings::Column::Name.eq(name))
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            return Err(not_found("binding", name));
        }
        Ok(())
    }

    /// Puts the chain in the order `names` gives; `names` must name every
    /// binding of the tenant exactly once.
    pub async fn order_bindings(&self, tenant: TenantId, names: &[&str]) -> Result<()> {
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let mut current: Vec<String> = plugin_bindings::Entity::find()
            .select_only()
            .column(plugin_bindings::Column::Name)
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .into_tuple::<String>()
            .all(&txn)
            .await?;
        let mut wanted: Vec<&str> = names.to_vec();
        current.sort();
        wanted.sort_unstable();
        if current
            .iter()
            .map(String::as_str)
            .ne(wanted.iter().copied())
        {
            return Err(Error::Invalid {
                what: "binding order",
                reason: format!(
                    "name every binding exactly once; the bindings are: {}",
                    current.join(", ")
                ),
            });
        }
        for (position, name) in names.iter().enumerate() {
            plugin_bindings::Entity::update_many()
                .col_expr(
                    plugin_bindings::Column::Position,
                    Expr::value(i32::try_from(position).unwrap_or(i32::MAX)),
                )
                .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
                .filter(plugin_bindings::Column::Name.eq(*name))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
