//! OAuth2 sign-in data: the operator's providers and, per credential, the
//! grant — which provider, the refresh token (the credential's sealed
//! secret) and the current access token with its expiry.
//!
//! Everything secret is sealed with the [`MasterKey`], bound to where it
//! belongs (a provider's name, a tenant's credential), like passwords. The
//! store talks to no provider: [`crate::oauth`] does, and saves what it got
//! here.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};

use super::entity::{credentials, oauth_providers};
use super::key::MasterKey;
use super::{Error, Result, Store, TenantId, corrupt, invalid, not_found, now, unique_violation};
use crate::domain::Secret;

/// Which provider's conventions apply (endpoints, scopes, extra
/// parameters); `generic` takes them all from the configuration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Google (Gmail, Workspace).
    Google,
    /// Microsoft (Outlook.com, Microsoft 365).
    Microsoft,
    /// Any other OAuth2 server with the authorization-code flow.
    Generic,
}

impl ProviderKind {
    /// Its name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Google => "google",
            ProviderKind::Microsoft => "microsoft",
            ProviderKind::Generic => "generic",
        }
    }

    /// The endpoints and scopes the provider documents for IMAP and POP3
    /// access: `(authorization, token, scopes)`; `None` for `generic`.
    pub fn defaults(self) -> Option<(&'static str, &'static str, &'static [&'static str])> {
        match self {
            ProviderKind::Google => Some((
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                &["https://mail.google.com/"],
            )),
            ProviderKind::Microsoft => Some((
                "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
                "https://login.microsoftonline.com/common/oauth2/v2.0/token",
                &[
                    "https://outlook.office.com/IMAP.AccessAsUser.All",
                    "https://outlook.office.com/POP.AccessAsUser.All",
                    "offline_access",
                ],
            )),
            ProviderKind::Generic => None,
        }
    }
}

/// An OAuth2 client the operator registered with a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthProvider {
    /// Name credentials refer to.
    pub name: String,
    /// Conventions.
    pub kind: ProviderKind,
    /// Client id.
    pub client_id: String,
    /// Client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<Secret>,
    /// Authorization endpoint.
    pub auth_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
}

/// A provider without its secret, for lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OAuthProviderInfo {
    /// Name.
    pub name: String,
    /// Conventions.
    pub kind: ProviderKind,
    /// Client id (not secret).
    pub client_id: String,
    /// Whether a client secret is stored.
    pub has_secret: bool,
    /// Authorization endpoint.
    pub auth_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Scopes.
    pub scopes: Vec<String>,
}

/// A credential's OAuth2 grant, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthGrant {
    /// The provider it was authorized with.
    pub provider: String,
    /// The current access token, if one was obtained.
    pub access_token: Option<Secret>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
}

fn provider_context(name: &str) -> Vec<u8> {
    format!("intake/oauth-provider/v1/{name}").into_bytes()
}

pub(super) fn access_context(tenant: TenantId, credential: &str) -> Vec<u8> {
    format!("intake/credential-access/v1/{tenant}/{credential}").into_bytes()
}

fn checked_url(field: &'static str, url: &str) -> Result<()> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        _ => Err(invalid(field, format!("{url:?} is not an http(s) URL"))),
    }
}

impl Store {
    /// Adds or replaces the provider `provider.name`.
    pub async fn put_oauth_provider(
        &self,
        provider: &OAuthProvider,
        key: &MasterKey,
    ) -> Result<()> {
        let name = provider.name.trim();
        if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("provider name", "empty or with spaces"));
        }
        if provider.client_id.trim().is_empty() {
            return Err(invalid("client_id", "empty"));
        }
        checked_url("auth_url", &provider.auth_url)?;
        checked_url("token_url", &provider.token_url)?;
        let secret = provider
            .client_secret
            .as_ref()
            .map(|s| key.seal(s.expose().as_bytes(), &provider_context(name)))
            .transpose()?;
        let row = oauth_providers::ActiveModel {
            name: Set(name.to_owned()),
            kind: Set(provider.kind.as_str().to_owned()),
            client_id: Set(provider.client_id.trim().to_owned()),
            client_secret: Set(secret),
            auth_url: Set(provider.auth_url.clone()),
            token_url: Set(provider.token_url.clone()),
            scopes: Set(provider.scopes.join(" ")),
            created_at: Set(now()),
            ..Default::default()
        };
        let existing = oauth_providers::Entity::find()
            .filter(oauth_providers::Column::Name.eq(name))
            .one(&self.db)
            .await?;
        match existing {
            Some(old) => {
                let mut row = row;
                row.created_at = Set(old.created_at);
                oauth_providers::Entity::update_many()
                    .set(row)
                    .filter(oauth_providers::Column::Id.eq(old.id))
                    .exec(&self.db)
                    .await?;
            }
            None => {
                oauth_providers::Entity::insert(row)
                    .exec(&self.db)
                    .await
                    .map_err(|e| unique_violation(e, "OAuth2 provider", name))?;
            }
        }
        Ok(())
    }

    /// The providers, by name, without secrets.
    pub async fn oauth_providers(&self) -> Result<Vec<OAuthProviderInfo>> {
        let rows = oauth_providers::Entity::find()
            .order_by_asc(oauth_providers::Column::Name)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(OAuthProviderInfo {
                    kind: parse_kind(&r.kind)?,
                    has_secret: r.client_secret.is_some(),
                    scopes: split_scopes(&r.scopes),
                    name: r.name,
                    client_id: r.client_id,
                    auth_url: r.auth_url,
                    token_url: r.token_url,
                })
            })
            .collect()
    }

    /// The provider `name`, its secret decrypted.
    pub async fn oauth_provider(&self, name: &str, key: &MasterKey) -> Result<OAuthProvider> {
        let row = oauth_providers::Entity::find()
            .filter(oauth_providers::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("OAuth2 provider", name))?;
        let client_secret = match &row.client_secret {
            Some(sealed) => {
                let plain = key
                    .open(sealed, &provider_context(&row.name))
                    .ok_or_else(|| Error::WrongKey {
                        credential: format!("OAuth2 provider {}", row.name),
                    })?;
                Some(Secret::new(
                    String::from_utf8(plain)
                        .map_err(|_| corrupt("OAuth2 client secret", "not UTF-8"))?,
                ))
            }
            None => None,
        };
        Ok(OAuthProvider {
            kind: parse_kind(&row.kind)?,
            scopes: split_scopes(&row.scopes),
            name: row.name,
            client_id: row.client_id,
            client_secret,
            auth_url: row.auth_url,
            token_url: row.token_url,
        })
    }

    /// Removes a provider. Credentials authorized with it fail until they
    /// are authorized again.
    pub async fn remove_oauth_provider(&self, name: &str) -> Result<()> {
        let removed = oauth_providers::Entity::delete_many()
            .filter(oauth_providers::Column::Name.eq(name))
            .exec(&self.db)
            .await?;
        if removed.rows_affected == 0 {
            return Err(not_found("OAuth2 provider", name));
        }
        Ok(())
    }

    /// Adds the credential `name`, or re-authorizes it: an OAuth2 grant
    /// from `provider` for `username`, with its refresh token and, when the
    /// authorization returned one, the first access token.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_oauth_credential(
        &self,
        tenant: TenantId,
        name: &str,
        username: &str,
        provider: &str,
        refresh_token: &Secret,
        access: Option<(&Secret, DateTime<Utc>)>,
        key: &MasterKey,
    ) -> Result<()> {
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid("credential name", "empty"));
        }
        oauth_providers::Entity::find()
            .filter(oauth_providers::Column::Name.eq(provider))
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("OAuth2 provider", provider))?;
        let sealed = key.seal(
            refresh_token.expose().as_bytes(),
            &super::credentials::context(tenant, name),
        )?;
        let (access_token, expires) = match access {
            Some((token, at)) => (
                Some(key.seal(token.expose().as_bytes(), &access_context(tenant, name))?),
                Some(at),
            ),
            None => (None, None),
        };
        let row = credentials::ActiveModel {
            tenant_id: Set(tenant.0),
            name: Set(name.to_owned()),
            username: Set(username.to_owned()),
            secret: Set(sealed),
            oauth_provider: Set(Some(provider.to_owned())),
            access_token: Set(access_token),
            access_expires_at: Set(expires),
            ..Default::default()
        };
        let existing = credentials::Entity::find()
            .filter(credentials::Column::TenantId.eq(tenant.0))
            .filter(credentials::Column::Name.eq(name))
            .one(&self.db)
            .await?;
        match existing {
            Some(old) => {
                credentials::Entity::update_many()
                    .set(row)
                    .filter(credentials::Column::Id.eq(old.id))
                    .exec(&self.db)
                    .await?;
            }
            None => {
                let mut row = row;
                row.created_at = Set(now());
                credentials::Entity::insert(row)
                    .exec(&self.db)
                    .await
                    .map_err(|e| unique_violation(e, "credential", name))?;
            }
        }
        Ok(())
    }

    /// Saves a refreshed access token (and the new refresh token, when the
    /// provider rotated it) on the credential `name`.
    pub async fn save_access_token(
        &self,
        tenant: TenantId,
        name: &str,
        access_token: &Secret,
        expires_at: DateTime<Utc>,
        refresh_token: Option<&Secret>,
        key: &MasterKey,
    ) -> Result<()> {
        let mut row = credentials::ActiveModel {
            access_token: Set(Some(key.seal(
                access_token.expose().as_bytes(),
                &access_context(tenant, name),
            )?)),
            access_expires_at: Set(Some(expires_at)),
            ..Default::default()
        };
        if let Some(refresh) = refresh_token {
            row.secret = Set(key.seal(
                refresh.expose().as_bytes(),
                &super::credentials::context(tenant, name),
            )?);
        }
        let updated = credentials::Entity::update_many()
            .set(row)
            .filter(credentials::Column::TenantId.eq(tenant.0))
            .filter(credentials::Column::Name.eq(name))
            .filter(credentials::Column::OauthProvider.is_not_null())
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            return Err(not_found("OAuth2 credential", name));
        }
        Ok(())
    }
}

fn parse_kind(text: &str) -> Result<ProviderKind> {
    <ProviderKind as clap::ValueEnum>::from_str(text, true)
        .map_err(|_| corrupt("OAuth2 provider kind", format!("unknown value {text:?}")))
}

fn split_scopes(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// Re-seals the providers' client secrets from `old` to `new` (master key
/// rotation, inside its transaction).
pub(super) async fn reseal_secrets(
    txn: &sea_orm::DatabaseTransaction,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize> {
    let rows = oauth_providers::Entity::find()
        .order_by_asc(oauth_providers::Column::Id)
        .all(txn)
        .await?;
    let mut count = 0;
    for row in rows {
        let Some(sealed) = &row.client_secret else {
            continue;
        };
        let context = provider_context(&row.name);
        let plain = old.open(sealed, &context).ok_or_else(|| Error::WrongKey {
            credential: format!("OAuth2 provider {}", row.name),
        })?;
        oauth_providers::Entity::update_many()
            .set(oauth_providers::ActiveModel {
                client_secret: Set(Some(new.seal(&plain, &context)?)),
                ..Default::default()
            })
            .filter(oauth_providers::Column::Id.eq(row.id))
            .exec(txn)
            .await?;
        count += 1;
    }
    Ok(count)
}
