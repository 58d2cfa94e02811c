//! API tokens: a tenant's keys to the HTTP API.
//!
//! A token reads `itk_<lookup>_<secret>`. The `itk_` prefix makes a leaked
//! token recognisable (secret scanners, logs); `lookup` is public and finds
//! the row; only the SHA-256 of `secret` is stored, and it is compared in
//! constant time. The whole token is shown once, when it is issued.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::entity::api_tokens;
use super::{Result, Store, TenantId, corrupt, invalid, not_found, now};

/// The visible prefix of every Intake API token.
pub const TOKEN_PREFIX: &str = "itk_";

/// What a token may do. Each level includes the ones below it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Read everything of the tenant.
    Read,
    /// Also change accounts, credentials, the directory, messages and
    /// quarantine.
    Write,
    /// Also manage tokens, plugins and webhooks: what code runs on the
    /// tenant's mail and where its data is sent.
    Admin,
}

impl TokenScope {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
            TokenScope::Admin => "admin",
        }
    }

    /// Parses the stored or typed text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(TokenScope::Read),
            "write" => Some(TokenScope::Write),
            "admin" => Some(TokenScope::Admin),
            _ => None,
        }
    }
}

/// A token as lists show it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub scope: TokenScope,
    /// The visible start of the token (`itk_<lookup>_`), to recognise it.
    pub prefix: String,
    /// Issued.
    pub created_at: DateTime<Utc>,
    /// Last used (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revoked, if it is.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token that matched a presented secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    /// Its id.
    pub id: i64,
    /// Its tenant.
    pub tenant: TenantId,
    /// What it may do.
    pub scope: TokenScope,
    /// Last used, to decide whether to record this use.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The longest token name accepted.
const NAME_MAX: usize = 100;

fn random_text(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system's random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

fn hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Splits `itk_<lookup>_<secret>`; the lookup never contains `_`.
fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (lookup, secret) = rest.split_once('_')?;
    (lookup.len() == 12
        && lookup.bytes().all(|b| b.is_ascii_alphanumeric())
        && !secret.is_empty()
        && secret.len() <= 64)
        .then_some((lookup, secret))
}

fn info(row: api_tokens::Model) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: row.id,
        scope: TokenScope::parse(&row.scope)
            .ok_or_else(|| corrupt("token scope", format!("unknown value {:?}", row.scope)))?,
        prefix: format!("{TOKEN_PREFIX}{}_", row.lookup),
        name: row.name,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
    })
}

impl Store {
    /// Issues a token; returns it whole (the only time it is) with its info.
    pub async fn create_token(
        &self,
        tenant: TenantId,
        name: &str,
        scope: TokenScope,
    ) -> Result<(TokenInfo, String)> {
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid("name", "empty"));
        }
        if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                format!("at most {NAME_MAX} printable characters"),
            ));
        }
        // 12 alphanumerics: base64url without the two symbols, so `_`
        // separates the parts unambiguously.
        let lookup: String = loop {
            let candidate: String = random_text(24)
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(12)
                .collect();
            if candidate.len() == 12 {
                break candidate;
            }
        };
        let secret = random_text(32);
        let _turn = self.write_turn().await;
        let row = api_tokens::ActiveModel {
            tenant_id: Set(tenant.0),
            lookup: Set(lookup.clone()),
            secret_sha256: Set(hash(&secret)),
            name: Set(name.to_owned()),
            scope: Set(scope.as_str().to_owned()),
            created_at: Set(now()),
            last_used_at: Set(None),
            revoked_at: Set(None),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok((info(row)?, format!("{TOKEN_PREFIX}{lookup}_{secret}")))
    }

    /// The tenant's tokens, newest first, revoked ones included.
    pub async fn tokens(&self, tenant: TenantId) -> Result<Vec<TokenInfo>> {
        api_tokens::Entity::find()
            .filter(api_tokens::Column::TenantId.eq(tenant.0))
            .order_by_desc(api_tokens::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(info)
            .collect()
    }

    /// Revokes a token of the tenant; revoking twice is not an error.
    pub async fn revoke_token(&self, tenant: TenantId, id: i64) -> Result<TokenInfo> {
        let row = api_tokens::Entity::find()
            .filter(api_tokens::Column::TenantId.eq(tenant.0))
            .filter(api_tokens::Column::Id.eq(id))
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("token", &id.to_string()))?;
        if row.revoked_at.is_some() {
            return info(row);
        }
        let _turn = self.write_turn().await;
        let mut active: api_tokens::ActiveModel = row.into();
        active.revoked_at = Set(Some(now()));
        info(active.update(&self.db).await?)
    }

    /// The live token `presented` is, if any. Tokens of any tenant: this is
    /// how a request's tenant is found.
    pub async fn match_token(&self, presented: &str) -> Result<Option<TokenMatch>> {
        let Some((lookup, secret)) = split(presented) else {
            return Ok(None);
        };
        let Some(row) = api_tokens::Entity::find()
            .filter(api_tokens::Column::Lookup.eq(lookup))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let matches: bool = hash(secret)
            .as_bytes()
            .ct_eq(row.secret_sha256.as_bytes())
            .into();
        if !matches || row.revoked_at.is_some() {
            return Ok(None);
        }
        Ok(Some(TokenMatch {
            id: row.id,
            tenant: TenantId(row.tenant_id),
            scope: TokenScope::parse(&row.scope)
                .ok_or_else(|| corrupt("token scope", format!("unknown value {:?}", row.scope)))?,
            last_used_at: row.last_used_at,
        }))
    }

    /// Records that a token was used.
    pub async fn touch_token(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        let _turn = self.write_turn().await;
        api_tokens::Entity::update_many()
            .col_expr(
                api_tokens::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(at),
            )
            .filter(api_tokens::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_splits_into_lookup_and_secret_only_when_well_formed() {
        assert_eq!(
            split("itk_abcdefABCDEF_s3cr-et_x"),
            Some(("abcdefABCDEF", "s3cr-et_x"))
        );
        assert_eq!(split("itk_short_secret"), None);
        assert_eq!(split("xyz_abcdefABCDEF_secret"), None);
        assert_eq!(split("itk_abcdefABCDEF_"), None);
        assert_eq!(split("itk_abcdef-BCDEF_secret"), None);
        assert_eq!(split(""), None);
    }
}
