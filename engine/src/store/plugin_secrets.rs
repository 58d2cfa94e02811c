//! A plugin binding's secrets (a CRM's API token): each sealed with the
//! [`MasterKey`], bound to its tenant, binding and name, so a sealed value
//! copied to another binding's row does not open there. Listing shows names
//! only; the values are opened only to load the binding's chain, where each
//! becomes an environment variable of that binding's instances.

use std::collections::BTreeMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::entity::{plugin_bindings, plugin_secrets};
use super::key::MasterKey;
use super::{Error, Result, Store, TenantId, invalid, lock_tenant, not_found, now};
use crate::domain::Secret;

/// Most secrets one binding may hold.
pub const MAX_SECRETS_PER_BINDING: usize = 16;
/// Longest secret value, bytes.
pub const MAX_SECRET_BYTES: usize = 8 << 10;

/// What the sealed value is bound to.
fn context(tenant: TenantId, binding: &str, name: &str) -> Vec<u8> {
    format!(
        "intake/plugin-secret/v1/{tenant}/{}/{binding}/{name}",
        binding.len()
    )
    .into_bytes()
}

/// Checks a secret's name: an environment variable name, `A-Z`, `0-9` and
/// `_`, not starting with a digit, at most 64 characters.
pub fn check_secret_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "secret name",
            format!(
                "{:?}: an environment variable name of 1 to 64 characters A-Z, 0-9 and `_`, not starting with a digit (e.g. CRM_TOKEN)",
                name.chars().take(80).collect::<String>()
            ),
        ))
    }
}

fn check_secret_value(name: &str, value: &Secret) -> Result<()> {
    let v = value.expose();
    if v.is_empty() {
        return Err(invalid("secret", format!("{name} is empty")));
    }
    if v.len() > MAX_SECRET_BYTES {
        return Err(invalid(
            "secret",
            format!("{name} is over {MAX_SECRET_BYTES} bytes"),
        ));
    }
    if v.contains('\0') {
        return Err(invalid("secret", format!("{name} contains a NUL byte")));
    }
    Ok(())
}

impl Store {
    /// Sets (adds or replaces) the secret `name` of the binding `binding`,
    /// sealed with `key`.
    pub async fn set_plugin_secret(
        &self,
        tenant: TenantId,
        binding: &str,
        name: &str,
        value: &Secret,
        key: &MasterKey,
    ) -> Result<()> {
        check_secret_name(name)?;
        check_secret_value(name, value)?;
        let sealed = key.seal(value.expose().as_bytes(), &context(tenant, binding, name))?;
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let exists = plugin_bindings::Entity::find()
            .filter(plugin_bindings::Column::TenantId.eq(tenant.0))
            .filter(plugin_bindings::Column::Name.eq(binding))
            .count(&txn)
            .await?
            > 0;
        if !exists {
            return Err(not_found("binding", binding));
        }
        let scoped = || {
            plugin_secrets::Entity::find()
                .filter(plugin_secrets::Column::TenantId.eq(tenant.0))
                .filter(plugin_secrets::Column::Binding.eq(binding))
        };
        let replaced = plugin_secrets::Entity::delete_many()
            .filter(plugin_secrets::Column::TenantId.eq(tenant.0))
            .filter(plugin_secrets::Column::Binding.eq(binding))
            .filter(plugin_secrets::Column::Name.eq(name))
            .exec(&txn)
            .await?
            .rows_affected;
        if replaced == 0 && scoped().count(&txn).await? as usize >= MAX_SECRETS_PER_BINDING {
            return Err(invalid(
                "secret",
                format!(
                    "{binding} has {MAX_SECRETS_PER_BINDING} secrets, the most a binding may hold"
                ),
            ));
        }
        plugin_secrets::Entity::insert(plugin_secrets::ActiveModel {
            tenant_id: Set(tenant.0),
            binding: Set(binding.to_owned()),
            name: Set(name.to_owned()),
            secret: Set(sealed),
            created_at: Set(now()),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Removes the secret `name` of the binding `binding`.
    pub async fn remove_plugin_secret(
        &self,
        tenant: TenantId,
        binding: &str,
        name: &str,
    ) -> Result<()> {
        let removed = plugin_secrets::Entity::delete_many()
            .filter(plugin_secrets::Column::TenantId.eq(tenant.0))
            .filter(plugin_secrets::Column::Binding.eq(binding))
            .filter(plugin_secrets::Column::Name.eq(name))
            .exec(&self.db)
            .await?;
        if removed.rows_affected == 0 {
            return Err(not_found("secret", &format!("{binding}/{name}")));
        }
        Ok(())
    }

    /// The names of every binding's secrets (never the values), by binding.
    pub async fn plugin_secret_names(
        &self,
        tenant: TenantId,
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let rows: Vec<(String, String)> = plugin_secrets::Entity::find()
            .select_only()
            .column(plugin_secrets::Column::Binding)
            .column(plugin_secrets::Column::Name)
            .filter(plugin_secrets::Column::TenantId.eq(tenant.0))
            .order_by_asc(plugin_secrets::Column::Binding)
            .order_by_asc(plugin_secrets::Column::Name)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (binding, name) in rows {
            names.entry(binding).or_default().push(name);
        }
        Ok(names)
    }

    /// Every binding's secrets, opened, by binding: for loading the chain.
    /// Without a key, a tenant whose bindings hold secrets is an error (its
    /// plugins would run without what they were configured with).
    pub async fn plugin_secrets(
        &self,
        tenant: TenantId,
        key: Option<&MasterKey>,
    ) -> Result<BTreeMap<String, Vec<(String, Secret)>>> {
        let rows = plugin_secrets::Entity::find()
            .filter(plugin_secrets::Column::TenantId.eq(tenant.0))
            .order_by_asc(plugin_secrets::Column::Binding)
            .order_by_asc(plugin_secrets::Column::Name)
            .all(&self.db)
            .await?;
        let mut secrets: BTreeMap<String, Vec<(String, Secret)>> = BTreeMap::new();
        for row in rows {
            let Some(key) = key else {
                return Err(invalid(
                    "master key",
                    format!(
                        "plugin {} has secrets, and no master key was given to open them \
                         (set INTAKE_MASTER_KEY or --key-file)",
                        row.binding
                    ),
                ));
            };
            let plain = open(tenant, &row, key)?;
            secrets
                .entry(row.binding)
                .or_default()
                .push((row.name, plain));
        }
        Ok(secrets)
    }

    /// Whether any binding of any tenant holds a secret (so a master key
    /// was in use).
    pub async fn has_plugin_secrets(&self) -> Result<bool> {
        Ok(plugin_secrets::Entity::find()
            .one(&self.db)
            .await?
            .is_some())
    }
}

fn open(tenant: TenantId, row: &plugin_secrets::Model, key: &MasterKey) -> Result<Secret> {
    let wrong = || Error::WrongKey {
        credential: format!("secret {} of plugin {}", row.name, row.binding),
    };
    let plain = key
        .open(&row.secret, &context(tenant, &row.binding, &row.name))
        .ok_or_else(wrong)?;
    Ok(Secret::new(String::from_utf8(plain).map_err(|_| wrong())?))
}

/// Removes the binding's secrets with it.
pub(super) async fn delete_for_binding(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    binding: &str,
) -> Result<()> {
    plugin_secrets::Entity::delete_many()
        .filter(plugin_secrets::Column::TenantId.eq(tenant.0))
        .filter(plugin_secrets::Column::Binding.eq(binding))
        .exec(db)
        .await?;
    Ok(())
}

/// A fingerprint of the tenant's secrets (names and sealed bytes), part of
/// the chain's signature: a changed secret reloads the chain.
pub(super) async fn signature(db: &impl ConnectionTrait, tenant: TenantId) -> Result<String> {
    use sha2::Digest;
    let rows = plugin_secrets::Entity::find()
        .filter(plugin_secrets::Column::TenantId.eq(tenant.0))
        .order_by_asc(plugin_secrets::Column::Id)
        .all(db)
        .await?;
    let mut hash = sha2::Sha256::new();
    for row in rows {
        hash.update(format!("{}\0{}\0{}\0", row.id, row.binding, row.name));
        hash.update(&row.secret);
        hash.update(b"\n");
    }
    Ok(hex::encode(hash.finalize()))
}

/// Re-seals every plugin secret from `old` to `new` (master key rotation).
pub(super) async fn reseal_secrets(
    txn: &DatabaseTransaction,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize> {
    let rows = plugin_secrets::Entity::find()
        .order_by_asc(plugin_secrets::Column::Id)
        .all(txn)
        .await?;
    let count = rows.len();
    for row in rows {
        let tenant = TenantId(row.tenant_id);
        let plain = open(tenant, &row, old)?;
        let sealed = new.seal(
            plain.expose().as_bytes(),
            &context(tenant, &row.binding, &row.name),
        )?;
        plugin_secrets::Entity::update_many()
            .set(plugin_secrets::ActiveModel {
                secret: Set(sealed),
                ..Default::default()
            })
            .filter(plugin_secrets::Column::Id.eq(row.id))
            .exec(txn)
            .await?;
    }
    Ok(count)
}
