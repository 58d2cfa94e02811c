//! The tenant's plugin chain: components (bytes in the database, so every
//! worker on one PostgreSQL runs the same plugins), config, limits and
//! failure policy, in chain order.
//!
//! A binding keeps numbered versions (component, config, limits): one is
//! active, and at most one more is its candidate, deciding the messages of
//! a [`Rollout`] (a canary). Components are kept once per tenant by
//! SHA-256, so versions that share one share its bytes. The binding row
//! carries the active version's config and limits too, so the chain and
//! its signature read one table.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::entity::{plugin_bindings, plugin_components, plugin_versions};
use super::{
    Error, Result, Store, TenantId, corrupt, invalid, lock_tenant, not_found, now, unique_violation,
};
use crate::domain::Rollout;
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
    /// The active version's number (its component, config and limits are
    /// the fields above).
    pub version: u32,
    /// The candidate version and who gets it, if a canary runs.
    pub canary: Option<Canary>,
}

/// A binding's candidate version and its rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// The candidate's version number.
    pub version: u32,
    /// Which messages it decides.
    pub rollout: Rollout,
}

/// A version to add to a binding.
#[derive(Clone)]
pub struct NewVersion {
    /// The component's bytes.
    pub wasm: Vec<u8>,
    /// JSON passed to `init`.
    pub config: String,
    /// Deadline, memory and output caps.
    pub limits: Limits,
}

/// A stored version of a binding.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// Its number, 1, 2, … within the binding.
    pub number: u32,
    /// SHA-256 of its component, hex.
    pub component_sha256: String,
    /// JSON passed to `init`.
    pub config: String,
    /// Deadline, memory and output caps.
    pub limits: Limits,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last became the active version.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it was last rolled back from (until promoted again).
    pub rolled_back_at: Option<DateTime<Utc>>,
}

/// A binding with every one of its versions, oldest first.
#[derive(Debug, Clone)]
pub struct BindingVersions {
    /// The binding (with its active component's bytes).
    pub binding: StoredBinding,
    /// Its versions, by number.
    pub versions: Vec<StoredVersion>,
}

/// What a rollback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolledBack {
    /// The canary of this candidate version was stopped; the active
    /// version decides all mail again.
    Canary {
        /// The candidate that no longer runs.
        candidate: u32,
    },
    /// No canary ran: the active version went back to the version that was
    /// active before it.
    Active {
        /// The version rolled back from.
        from: u32,
        /// The version active now.
        to: u32,
    },
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
    /// The binding the plugin runtime loads (its active version).
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

    /// The binding the plugin runtime loads for another of its versions,
    /// whose component is `wasm`.
    pub fn version_binding(&self, version: &StoredVersion, wasm: Arc<[u8]>) -> Binding {
        Binding {
            name: self.name.clone(),
            wasm: WasmSource::Bytes(wasm),
            config: version.config.clone(),
            limits: version.limits.clone(),
            on_error: self.on_error,
            // As for the active version: the binding's secrets.
            secrets: Vec::new(),
        }
    }
}

fn version_from_row(row: plugin_versions::Model) -> Result<StoredVersion> {
    Ok(StoredVersion {
        number: u32::try_from(row.version).map_err(|e| corrupt("version number", e))?,
        limits: serde_json::from_str(&row.limits).map_err(|e| corrupt("version limits", e))?,
        component_sha256: row.component_sha256,
        config: row.config,
        created_at: row.created_at,
        activated_at: row.activated_at,
        rolled_back_at: row.rolled_back_at,
    })
}

/// The canary a binding row names, if any.
fn canary_of(row: &plugin_bindings::Model) -> Result<Option<Canary>> {
    let Some(version) = row.candidate_version else {
        return Ok(None);
    };
    let accounts = match &row.canary_accounts {
        None => Vec::new(),
        Some(json) => serde_json::from_str(json).map_err(|e| corrupt("canary accounts", e))?,
    };
    Ok(Some(Canary {
        version: u32::try_from(version).map_err(|e| corrupt("candidate version", e))?,
        rollout: Rollout {
            share_bp: u16::try_from(row.canary_share_bp.unwrap_or(0))
                .map_err(|e| corrupt("canary share", e))?,
            accounts,
        },
    }))
}

/// Stores a component's bytes for the tenant unless they are there
/// already; returns their SHA-256.
async fn put_component<C: sea_orm::ConnectionTrait>(
    txn: &C,
    tenant: TenantId,
    wasm: &[u8],
) -> Result<String> {
    use sha2::Digest;
    let sha256 = hex::encode(sha2::Sha256::digest(wasm));
    let known = plugin_components::Entity::find()
        .select_only()
        .column(plugin_components::Column::Id)
        .filter(plugin_components::Column::TenantId.eq(tenant.0))
        .filter(plugin_components::Column::Sha256.eq(&sha256))
        .into_tuple::<i64>()
        .one(txn)
        .await?
        .is_some();
    if !known {
        plugin_components::Entity::insert(plugin_components::ActiveModel {
            tenant_id: Set(tenant.0),
            sha256: Set(sha256.clone()),
            wasm: Set(wasm.to_vec()),
            created_at: Set(now()),
            ..Default::default()
        })
        .exec(txn)
        .await?;
    }
    Ok(sha256)
}

/// The binding row `name`, locked by the caller's tenant lock.
async fn binding_row<C: sea_orm::ConnectionTrait>(
    txn: &C,
    tenant: TenantId,
    name: &str,
) -> Result<plugin_bindings::Model> {
    plugin_bindings::Entity::find()
        .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
        .filter(plugin_bindings::Column::Name.eq(name))
        .one(txn)
        .await?
        .ok_or_else(|| not_found("binding", name))
}

/// Version `number` of binding row `binding`.
async fn version_row<C: sea_orm::ConnectionTrait>(
    txn: &C,
    binding: &plugin_bindings::Model,
    number: u32,
) -> Result<plugin_versions::Model> {
    plugin_versions::Entity::find()
        .filter(plugin_versions::Column::BindingId.eq(binding.id))
        .filter(plugin_versions::Column::Version.eq(number as i32))
        .one(txn)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "plugin version",
            name: format!("{} version {number}", binding.name),
        })
}

/// What a version row holds besides its place.
struct VersionParts<'a> {
    /// Its component's SHA-256 (already in `plugin_components`).
    sha256: String,
    /// JSON passed to `init`.
    config: &'a str,
    /// `Limits` as JSON.
    limits: String,
}

/// Inserts version `number` of binding row `binding_id`.
async fn insert_version<C: sea_orm::ConnectionTrait>(
    txn: &C,
    tenant: TenantId,
    binding_id: i64,
    number: i32,
    parts: VersionParts<'_>,
    active: bool,
) -> Result<()> {
    let at = now();
    plugin_versions::Entity::insert(plugin_versions::ActiveModel {
        tenant_id: Set(tenant.0),
        binding_id: Set(binding_id),
        version: Set(number),
        component_sha256: Set(parts.sha256),
        config: Set(parts.config.to_owned()),
        limits: Set(parts.limits),
        created_at: Set(at),
        activated_at: Set(active.then_some(at)),
        rolled_back_at: Set(None),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    Ok(())
}

/// Makes `version` the binding's active version: the row takes its config
/// and limits; a canary of that same version ends (it is live for all).
async fn activate<C: sea_orm::ConnectionTrait>(
    txn: &C,
    binding: &plugin_bindings::Model,
    version: &plugin_versions::Model,
) -> Result<()> {
    let mut update = plugin_bindings::Entity::update_many()
        .col_expr(
            plugin_bindings::Column::ActiveVersion,
            Expr::value(version.version),
        )
        .col_expr(
            plugin_bindings::Column::Config,
            Expr::value(version.config.clone()),
        )
        .col_expr(
            plugin_bindings::Column::Limits,
            Expr::value(version.limits.clone()),
        );
    if binding.candidate_version == Some(version.version) {
        update = clear_canary(update);
    }
    update
        .filter(plugin_bindings::Column::Id.eq(binding.id))
        .exec(txn)
        .await?;
    plugin_versions::Entity::update_many()
        .col_expr(plugin_versions::Column::ActivatedAt, Expr::value(now()))
        .col_expr(
            plugin_versions::Column::RolledBackAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(plugin_versions::Column::Id.eq(version.id))
        .exec(txn)
        .await?;
    Ok(())
}

fn clear_canary(
    update: sea_orm::UpdateMany<plugin_bindings::Entity>,
) -> sea_orm::UpdateMany<plugin_bindings::Entity> {
    update
        .col_expr(
            plugin_bindings::Column::CandidateVersion,
            Expr::value(Option::<i32>::None),
        )
        .col_expr(
            plugin_bindings::Column::CanaryShareBp,
            Expr::value(Option::<i32>::None),
        )
        .col_expr(
            plugin_bindings::Column::CanaryAccounts,
            Expr::value(Option::<String>::None),
        )
}

fn policy_name(policy: FailurePolicy) -> &'static str {
    match policy {
        FailurePolicy::Quarantine => "quarantine",
        FailurePolicy::Skip => "skip",
    }
}

fn from_row(row: plugin_bindings::Model, wasm: Arc<[u8]>) -> Result<StoredBinding> {
    Ok(StoredBinding {
        version: u32::try_from(row.active_version).map_err(|e| corrupt("active version", e))?,
        canary: canary_of(&row)?,
        role: BindingRole::parse(&row.role)?,
        limits: serde_json::from_str(&row.limits).map_err(|e| corrupt("binding limits", e))?,
        on_error: row
            .failure_policy
            .parse()
            .map_err(|e: String| corrupt("binding failure policy", e))?,
        name: row.name,
        position: row.position,
        wasm,
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
            let inserted = plugin_bindings::Entity::insert(plugin_bindings::ActiveModel {
                tenant_id: Set(tenant.0),
                position: Set(last.map_or(0, |p| p + 1)),
                name: Set(name.to_owned()),
                role: Set(binding.role.as_str().to_owned()),
                // The bytes are the version's, in `plugin_components`.
                wasm: Set(Vec::new()),
                config: Set(binding.config.clone()),
                limits: Set(limits.clone()),
                failure_policy: Set(policy_name(binding.on_error).to_owned()),
                enabled: Set(binding.enabled),
                created_at: Set(now()),
                active_version: Set(1),
                candidate_version: Set(None),
                canary_share_bp: Set(None),
                canary_accounts: Set(None),
                ..Default::default()
            })
            .exec(&txn)
            .await
            .map_err(|e| unique_violation(e, "binding", name))?;
            let sha256 = put_component(&txn, tenant, &binding.wasm).await?;
            let parts = VersionParts {
                sha256,
                config: &binding.config,
                limits,
            };
            insert_version(&txn, tenant, inserted.last_insert_id, 1, parts, true).await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// The tenant's bindings in chain order, each with its active
    /// version's component.
    pub async fn bindings(&self, tenant: TenantId) -> Result<Vec<StoredBinding>> {
        let rows = plugin_bindings::Entity::find()
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .order_by_asc(plugin_bindings::Column::Position)
            .order_by_asc(plugin_bindings::Column::Id)
            .all(&self.db)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // Which component each active version runs.
        let active: std::collections::HashMap<i64, String> = plugin_versions::Entity::find()
            .select_only()
            .column(plugin_versions::Column::BindingId)
            .column(plugin_versions::Column::Version)
            .column(plugin_versions::Column::ComponentSha256)
            .filter(plugin_versions::Column::TenantId.eq(tenant.0))
            .into_tuple::<(i64, i32, String)>()
            .all(&self.db)
            .await?
            .into_iter()
            .filter(|(binding, version, _)| {
                rows.iter()
                    .any(|r| r.id == *binding && r.active_version == *version)
            })
            .map(|(binding, _, sha256)| (binding, sha256))
            .collect();
        let mut components = self
            .components(tenant, active.values().cloned().collect())
            .await?;
        rows.into_iter()
            .map(|row| {
                let sha256 = active.get(&row.id).ok_or_else(|| {
                    corrupt("binding", format!("{}: no active version", row.name))
                })?;
                let wasm = components.get_mut(sha256).cloned().ok_or_else(|| {
                    corrupt(
                        "binding",
                        format!("{}: component {sha256} missing", row.name),
                    )
                })?;
                from_row(row, wasm)
            })
            .collect()
    }

    /// The tenant's components with these hashes, by hash.
    async fn components(
        &self,
        tenant: TenantId,
        mut hashes: Vec<String>,
    ) -> Result<std::collections::HashMap<String, Arc<[u8]>>> {
        hashes.sort();
        hashes.dedup();
        Ok(plugin_components::Entity::find()
            .filter(plugin_components::Column::TenantId.eq(tenant.0))
            .filter(plugin_components::Column::Sha256.is_in(hashes))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.sha256, Arc::from(c.wasm)))
            .collect())
    }

    /// The binding `name` (with its active component's bytes, and no
    /// other component's) and all its versions.
    pub async fn binding_versions(&self, tenant: TenantId, name: &str) -> Result<BindingVersions> {
        let row = binding_row(&self.db, tenant, name).await?;
        let versions: Vec<StoredVersion> = plugin_versions::Entity::find()
            .filter(plugin_versions::Column::BindingId.eq(row.id))
            .order_by_asc(plugin_versions::Column::Version)
            .all(&self.db)
            .await?
            .into_iter()
            .map(version_from_row)
            .collect::<Result<_>>()?;
        let sha256 = versions
            .iter()
            .find(|v| v.number as i32 == row.active_version)
            .map(|v| v.component_sha256.clone())
            .ok_or_else(|| corrupt("binding", format!("{name}: no active version")))?;
        let wasm = self
            .components(tenant, vec![sha256.clone()])
            .await?
            .remove(&sha256)
            .ok_or_else(|| corrupt("binding", format!("{name}: component {sha256} missing")))?;
        Ok(BindingVersions {
            binding: from_row(row, wasm)?,
            versions,
        })
    }

    /// Version `number` of binding `name` with its component's bytes.
    pub async fn binding_version(
        &self,
        tenant: TenantId,
        name: &str,
        number: u32,
    ) -> Result<(StoredVersion, Arc<[u8]>)> {
        let row = binding_row(&self.db, tenant, name).await?;
        let version = version_from_row(version_row(&self.db, &row, number).await?)?;
        let wasm = self
            .components(tenant, vec![version.component_sha256.clone()])
            .await?
            .remove(&version.component_sha256)
            .ok_or_else(|| {
                corrupt(
                    "plugin version",
                    format!("{name} version {number}: component missing"),
                )
            })?;
        Ok((version, wasm))
    }

    /// Adds a version to binding `name`, numbered one past its last; it
    /// does not decide anything until it is made a canary or promoted.
    pub async fn add_binding_version(
        &self,
        tenant: TenantId,
        name: &str,
        version: &NewVersion,
    ) -> Result<u32> {
        serde_json::from_str::<serde_json::Value>(&version.config)
            .map_err(|e| invalid("version config", format!("not JSON: {e}")))?;
        let limits = serde_json::to_string(&version.limits)
            .map_err(|e| invalid("version limits", e.to_string()))?;
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let row = binding_row(&txn, tenant, name).await?;
        let number = next_version(&txn, row.id).await?;
        let sha256 = put_component(&txn, tenant, &version.wasm).await?;
        let parts = VersionParts {
            sha256,
            config: &version.config,
            limits,
        };
        insert_version(&txn, tenant, row.id, number, parts, false).await?;
        txn.commit().await?;
        Ok(number as u32)
    }

    /// Starts (or changes) the canary of binding `name`: version `number`
    /// decides the messages `rollout` takes; the active version the rest.
    pub async fn set_canary(
        &self,
        tenant: TenantId,
        name: &str,
        number: u32,
        rollout: &Rollout,
    ) -> Result<()> {
        if rollout.share_bp > crate::domain::rollout::WHOLE {
            return Err(invalid("canary share", "at most 100 %"));
        }
        let accounts = serde_json::to_string(&rollout.accounts)
            .map_err(|e| invalid("canary accounts", e.to_string()))?;
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let row = binding_row(&txn, tenant, name).await?;
        version_row(&txn, &row, number).await?;
        if row.active_version == number as i32 {
            return Err(invalid(
                "version",
                format!("{name} version {number} is already the active version"),
            ));
        }
        plugin_bindings::Entity::update_many()
            .col_expr(
                plugin_bindings::Column::CandidateVersion,
                Expr::value(number as i32),
            )
            .col_expr(
                plugin_bindings::Column::CanaryShareBp,
                Expr::value(i32::from(rollout.share_bp)),
            )
            .col_expr(
                plugin_bindings::Column::CanaryAccounts,
                Expr::value(accounts),
            )
            .filter(plugin_bindings::Column::Id.eq(row.id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Makes version `number` (by default the canary's candidate) the
    /// active version of binding `name`; returns its number. A canary of
    /// another version keeps running.
    pub async fn promote_binding_version(
        &self,
        tenant: TenantId,
        name: &str,
        number: Option<u32>,
    ) -> Result<u32> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let row = binding_row(&txn, tenant, name).await?;
        let number = match (number, row.candidate_version) {
            (Some(n), _) => n,
            (None, Some(candidate)) => candidate as u32,
            (None, None) => {
                return Err(invalid(
                    "version",
                    format!("{name} has no canary: name the version to promote"),
                ));
            }
        };
        if row.active_version == number as i32 {
            return Err(invalid(
                "version",
                format!("{name} version {number} is already the active version"),
            ));
        }
        let version = version_row(&txn, &row, number).await?;
        activate(&txn, &row, &version).await?;
        txn.commit().await?;
        Ok(number)
    }

    /// Rolls binding `name` back: stops its canary if one runs; otherwise
    /// makes active again the version that was active before the current
    /// one (the latest activated that has not itself been rolled back
    /// from), and marks the current one rolled back from, so repeated
    /// rollbacks walk back through the versions that were live.
    pub async fn rollback_binding(&self, tenant: TenantId, name: &str) -> Result<RolledBack> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let row = binding_row(&txn, tenant, name).await?;
        if let Some(candidate) = row.candidate_version {
            clear_canary(plugin_bindings::Entity::update_many())
                .filter(plugin_bindings::Column::Id.eq(row.id))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            return Ok(RolledBack::Canary {
                candidate: candidate as u32,
            });
        }
        let previous = plugin_versions::Entity::find()
            .filter(plugin_versions::Column::BindingId.eq(row.id))
            .filter(plugin_versions::Column::Version.ne(row.active_version))
            .filter(plugin_versions::Column::ActivatedAt.is_not_null())
            .filter(plugin_versions::Column::RolledBackAt.is_null())
            .order_by_desc(plugin_versions::Column::ActivatedAt)
            .order_by_desc(plugin_versions::Column::Version)
            .one(&txn)
            .await?
            .ok_or_else(|| {
                invalid(
                    "version",
                    format!(
                        "{name} has no canary and no earlier active version to go back to \
                         (`intake plugin promote {name} --version N` makes any version active)"
                    ),
                )
            })?;
        let from = row.active_version;
        plugin_versions::Entity::update_many()
            .col_expr(plugin_versions::Column::RolledBackAt, Expr::value(now()))
            .filter(plugin_versions::Column::BindingId.eq(row.id))
            .filter(plugin_versions::Column::Version.eq(from))
            .exec(&txn)
            .await?;
        activate(&txn, &row, &previous).await?;
        txn.commit().await?;
        Ok(RolledBack::Active {
            from: from as u32,
            to: previous.version as u32,
        })
    }

    /// Whether the tenant has any binding (a fresh database has none).
    pub async fn has_bindings(&self, tenant: TenantId) -> Result<bool> {
        Ok(plugin_bindings::Entity::find()
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .count(&self.db)
            .await?
            > 0)
    }

    /// Removes the binding `name` with its versions, and the components no
    /// other version uses.
    pub async fn remove_binding(&self, tenant: TenantId, name: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let row = binding_row(&txn, tenant, name).await?;
        // Explicitly, not by the cascade alone: a SQLite connection may run
        // without foreign keys.
        plugin_versions::Entity::delete_many()
            .filter(plugin_versions::Column::BindingId.eq(row.id))
            .exec(&txn)
            .await?;
        plugin_bindings::Entity::delete_many()
            .filter(plugin_bindings::Column::Id.eq(row.id))
            .exec(&txn)
            .await?;
        let used: Vec<String> = plugin_versions::Entity::find()
            .select_only()
            .column(plugin_versions::Column::ComponentSha256)
            .filter(plugin_versions::Column::TenantId.eq(tenant.0))
            .distinct()
            .into_tuple::<String>()
            .all(&txn)
            .await?;
        plugin_components::Entity::delete_many()
            .filter(plugin_components::Column::TenantId.eq(tenant.0))
            .filter(plugin_components::Column::Sha256.is_not_in(used))
            .exec(&txn)
            .await?;
        super::plugin_secrets::delete_for_binding(&txn, tenant, name).await?;
        txn.commit().await?;
        Ok(())
    }

    /// A fingerprint of the tenant's chain as stored — every binding's id,
    /// place, settings and switch, its active version and its canary
    /// (candidate, share, accounts), not the component's bytes (a version's
    /// component never changes) — so a running engine can tell that its
    /// loaded chain is out of date with one small query, and a promote or
    /// a rollback takes effect at its next run.
    pub async fn chain_signature(&self, tenant: TenantId) -> Result<String> {
        use sha2::Digest;
        type Row = (
            i64,
            i32,
            bool,
            String,
            String,
            String,
            i32,
            Option<i32>,
            Option<i32>,
            Option<String>,
        );
        let rows: Vec<Row> = plugin_bindings::Entity::find()
            .select_only()
            .column(plugin_bindings::Column::Id)
            .column(plugin_bindings::Column::Position)
            .column(plugin_bindings::Column::Enabled)
            .column(plugin_bindings::Column::Config)
            .column(plugin_bindings::Column::Limits)
            .column(plugin_bindings::Column::FailurePolicy)
            .column(plugin_bindings::Column::ActiveVersion)
            .column(plugin_bindings::Column::CandidateVersion)
            .column(plugin_bindings::Column::CanaryShareBp)
            .column(plugin_bindings::Column::CanaryAccounts)
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .order_by_asc(plugin_bindings::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut hash = sha2::Sha256::new();
        for (id, position, enabled, config, limits, policy, active, candidate, share, accounts) in
            rows
        {
            hash.update(format!("{id}\0{position}\0{enabled}\0{}\0", config.len()));
            hash.update(config.as_bytes());
            hash.update(format!("\0{limits}\0{policy}\0{active}\0").as_bytes());
            hash.update(format!("{candidate:?}\0{share:?}\0{accounts:?}\n").as_bytes());
        }
        // A changed secret is a changed chain too.
        hash.update(super::plugin_secrets::signature(&self.db, tenant).await?);
        Ok(hex::encode(hash.finalize()))
    }

    /// Replaces the configuration, limits and failure policy of the binding
    /// `name`. A new configuration or new limits are a new version (the
    /// active one's component with them), active at once, so every recorded
    /// decision names the version that made it; returns the active
    /// version's number. A canary keeps running; the failure policy is the
    /// binding's, for all its versions.
    pub async fn configure_binding(
        &self,
        tenant: TenantId,
        name: &str,
        config: &str,
        limits: &Limits,
        on_error: FailurePolicy,
    ) -> Result<u32> {
        let limits = serde_json::to_string(limits).map_err(|e| invalid("limits", e.to_string()))?;
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let row = binding_row(&txn, tenant, name).await?;
        let mut active = row.active_version;
        // The same JSON written otherwise (a form's spacing) is the same
        // configuration: no new version.
        let same_config = row.config == config
            || serde_json::from_str::<serde_json::Value>(&row.config)
                .ok()
                .is_some_and(|stored| {
                    serde_json::from_str::<serde_json::Value>(config).ok() == Some(stored)
                });
        if !same_config || row.limits != limits {
            let current = version_row(&txn, &row, active as u32).await?;
            active = next_version(&txn, row.id).await?;
            let parts = VersionParts {
                sha256: current.component_sha256,
                config,
                limits,
            };
            insert_version(&txn, tenant, row.id, active, parts, false).await?;
            activate(&txn, &row, &version_row(&txn, &row, active as u32).await?).await?;
        }
        plugin_bindings::Entity::update_many()
            .col_expr(
                plugin_bindings::Column::FailurePolicy,
                Expr::value(policy_name(on_error)),
            )
            .filter(plugin_bindings::Column::Id.eq(row.id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(active as u32)
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

/// The number one past binding `binding_id`'s last version.
async fn next_version<C: sea_orm::ConnectionTrait>(txn: &C, binding_id: i64) -> Result<i32> {
    let last: Option<i32> = plugin_versions::Entity::find()
        .select_only()
        .column_as(Expr::col(plugin_versions::Column::Version).max(), "last")
        .filter(plugin_versions::Column::BindingId.eq(binding_id))
        .into_tuple::<Option<i32>>()
        .one(txn)
        .await?
        .flatten();
    Ok(last.unwrap_or(0) + 1)
}
