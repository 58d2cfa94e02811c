//! Credentials: a user name and a secret sealed with the [`MasterKey`].
//!
//! The plaintext exists only in a [`Secret`], which never prints; listing
//! never decrypts. Accounts refer to credentials by name, so one password
//! change serves every account that shares the login.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait};

use super::entity::{accounts, credentials};
use super::key::MasterKey;
use super::oauth::OAuthGrant;
use super::{Error, Result, Store, TenantId, invalid, not_found, now, unique_violation};
use crate::domain::Secret;

/// A credential without its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CredentialInfo {
    /// Name, unique in the tenant.
    pub name: String,
    /// Login name.
    pub username: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// The OAuth2 provider it was authorized with; absent for a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_provider: Option<String>,
    /// When its current OAuth2 access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<DateTime<Utc>>,
}

/// A decrypted credential. Its `Debug` shows the secret as `***`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Name, unique in the tenant.
    pub name: String,
    /// Login name.
    pub username: String,
    /// The password; for an OAuth2 credential, the refresh token.
    pub secret: Secret,
    /// The OAuth2 grant, for a credential authorized with a provider.
    pub oauth: Option<OAuthGrant>,
}

/// What the sealed secret is bound to: a sealed value copied into another
/// tenant's or credential's row does not open there.
pub(super) fn context(tenant: TenantId, name: &str) -> Vec<u8> {
    format!("intake/credential/v1/{tenant}/{name}").into_bytes()
}

impl Store {
    /// Adds a credential, sealing `secret` with `key`.
    pub async fn add_credential(
        &self,
        tenant: TenantId,
        name: &str,
        username: &str,
        secret: &Secret,
        key: &MasterKey,
    ) -> Result<()> {
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid("credential name", "empty"));
        }
        let sealed = key.seal(secret.expose().as_bytes(), &context(tenant, name))?;
        credentials::Entity::insert(credentials::ActiveModel {
            tenant_id: Set(tenant.0),
            name: Set(name.to_owned()),
            username: Set(username.to_owned()),
            secret: Set(sealed),
            created_at: Set(now()),
            ..Default::default()
        })
        .exec(&self.db)
        .await
        .map_err(|e| unique_violation(e, "credential", name))?;
        Ok(())
    }

    /// Replaces a credential's user name and secret (a password change).
    pub async fn update_credential(
        &self,
        tenant: TenantId,
        name: &str,
        username: &str,
        secret: &Secret,
        key: &MasterKey,
    ) -> Result<()> {
        let sealed = key.seal(secret.expose().as_bytes(), &context(tenant, name))?;
        let updated = credentials::Entity::update_many()
            .set(credentials::ActiveModel {
                username: Set(username.to_owned()),
                secret: Set(sealed),
                ..Default::default()
            })
            .filter(credentials::Column::TenantId.eq(tenant.0))
            .filter(credentials::Column::Name.eq(name))
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            return Err(not_found("credential", name));
        }
        Ok(())
    }

    /// Re-seals every credential of every tenant from `old` to `new`, in one
    /// transaction: either all of them open with the new key afterwards, or
    /// (a credential that does not open with `old`) none was changed.
    /// Returns how many were re-sealed.
    pub async fn rotate_master_key(&self, old: &MasterKey, new: &MasterKey) -> Result<usize> {
        let txn = self.db.begin().await?;
        let rows = credentials::Entity::find()
            .order_by_asc(credentials::Column::Id)
            .all(&txn)
            .await?;
        let count = rows.len();
        for row in rows {
            let (id, tenant) = (row.id, TenantId(row.tenant_id));
            let credential = open(tenant, row, old)?;
            let sealed = new.seal(
                credential.secret.expose().as_bytes(),
                &context(tenant, &credential.name),
            )?;
            // An OAuth2 access token is not re-sealed: it lives an hour
            // and is refreshed with the (re-sealed) refresh token.
            credentials::Entity::update_many()
                .set(credentials::ActiveModel {
                    secret: Set(sealed),
                    access_token: Set(None),
                    access_expires_at: Set(None),
                    ..Default::default()
                })
                .filter(credentials::Column::Id.eq(id))
                .exec(&txn)
                .await?;
        }
        // Webhook signing secrets are sealed with the same key.
        super::webhooks::reseal_secrets(&txn, old, new).await?;
        super::oauth::reseal_secrets(&txn, old, new).await?;
        super::plugin_secrets::reseal_secrets(&txn, old, new).await?;
        txn.commit().await?;
        Ok(count)
    }

    /// Whether any tenant has a stored credential or plugin secret (so a
    /// master key was in use).
    pub async fn has_credentials(&self) -> Result<bool> {
        Ok(credentials::Entity::find().one(&self.db).await?.is_some()
            || self.has_plugin_secrets().await?)
    }

    /// The tenant's credentials, by name, without secrets.
    pub async fn credentials(&self, tenant: TenantId) -> Result<Vec<CredentialInfo>> {
        let rows = credentials::Entity::find()
            .filter(credentials::Column::TenantId.eq(tenant.0))
            .order_by_asc(credentials::Column::Name)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| CredentialInfo {
                name: r.name,
                username: r.username,
                created_at: r.created_at,
                oauth_provider: r.oauth_provider,
                access_expires_at: r.access_expires_at,
            })
            .collect())
    }

    /// Removes a credential no account uses.
    pub async fn remove_credential(&self, tenant: TenantId, name: &str) -> Result<()> {
        let row = self.credential_row(tenant, name).await?;
        let users = accounts::Entity::find()
            .filter(accounts::Column::TenantId.eq(tenant.0))
            .filter(
                accounts::Column::CredentialId
                    .eq(row.id)
                    .or(accounts::Column::ProxyCredentialId.eq(row.id)),
            )
            .order_by_asc(accounts::Column::Name)
            .all(&self.db)
            .await?;
        if !users.is_empty() {
            let names: Vec<String> = users.into_iter().map(|a| a.name).collect();
            return Err(Error::InUse {
                what: "credential",
                name: name.to_owned(),
                by: format!("account(s) {}", names.join(", ")),
            });
        }
        // The foreign key still guards against an account added meanwhile.
        credentials::Entity::delete_many()
            .filter(credentials::Column::TenantId.eq(tenant.0))
            .filter(credentials::Column::Id.eq(row.id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The credential `name`, decrypted with `key`.
    pub async fn credential(
        &self,
        tenant: TenantId,
        name: &str,
        key: &MasterKey,
    ) -> Result<Credential> {
        let row = self.credential_row(tenant, name).await?;
        open(tenant, row, key)
    }

    pub(super) async fn credential_row(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<credentials::Model> {
        credentials::Entity::find()
            .filter(credentials::Column::TenantId.eq(tenant.0))
            .filter(credentials::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("credential", name))
    }
}

/// Decrypts a credential row.
pub(super) fn open(
    tenant: TenantId,
    row: credentials::Model,
    key: &MasterKey,
) -> Result<Credential> {
    let wrong = || Error::WrongKey {
        credential: row.name.clone(),
    };
    let plain = key
        .open(&row.secret, &context(tenant, &row.name))
        .ok_or_else(wrong)?;
    let secret = String::from_utf8(plain).map_err(|_| wrong())?;
    let oauth = match row.oauth_provider {
        Some(provider) => {
            // An access token that does not open (a rotated key) is only
            // a token to refresh.
            let access_token = row
                .access_token
                .as_deref()
                .and_then(|sealed| {
                    key.open(sealed, &super::oauth::access_context(tenant, &row.name))
                })
                .and_then(|plain| String::from_utf8(plain).ok())
                .map(Secret::new);
            Some(OAuthGrant {
                provider,
                expires_at: access_token.as_ref().and(row.access_expires_at),
                access_token,
            })
        }
        None => None,
    };
    Ok(Credential {
        name: row.name,
        username: row.username,
        secret: Secret::new(secret),
        oauth,
    })
}
