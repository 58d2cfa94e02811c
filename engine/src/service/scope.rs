//! Who is asking: the tenant scope every tenant operation takes, and the
//! operator.
//!
//! A [`Scope`] can only be made here: from an API token that matched
//! ([`Service::authenticate`]), from the operator's credential acting in a
//! named tenant, or from the command line's explicit `--tenant`
//! ([`Scope::local`]). Service methods take the scope and read the
//! tenant from it, so a caller cannot ask about another tenant's rows, and
//! each method states the level it needs ([`Scope::require`]).

use chrono::Utc;
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::{Result, Service, ServiceError};
use crate::store::{TenantId, TokenScope};

/// A tenant and what the caller may do in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The tenant's key.
    tenant: TenantId,
    /// The tenant's name (plugins see it; logs show it).
    tenant_name: String,
    /// What the caller may do.
    access: TokenScope,
    /// The API token behind it, if any (for per-token limits).
    token: Option<i64>,
}

impl Scope {
    /// The scope of code that opened the store itself: the command line's
    /// `--tenant`, a program that embeds the engine, a test. Whoever can
    /// open the store can change anything in it, so this scope may do
    /// everything in the tenant; it grants nothing the store does not.
    pub fn local(tenant: TenantId, tenant_name: &str) -> Self {
        Scope {
            tenant,
            tenant_name: tenant_name.to_owned(),
            access: TokenScope::Admin,
            token: None,
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The tenant's name.
    pub fn tenant_name(&self) -> &str {
        &self.tenant_name
    }

    /// What the caller may do.
    pub fn access(&self) -> TokenScope {
        self.access
    }

    /// The API token behind this scope, if one is.
    pub fn token(&self) -> Option<i64> {
        self.token
    }

    /// Fails unless the caller may act at `needed`.
    pub fn require(&self, needed: TokenScope) -> Result<()> {
        if self.access >= needed {
            Ok(())
        } else {
            Err(ServiceError::Forbidden { needed })
        }
    }
}

/// The operator's credential: it manages tenants and their tokens, and can
/// act in any tenant it names. Only its SHA-256 is kept in memory.
#[derive(Clone)]
pub struct OperatorKey {
    /// SHA-256 of the credential.
    digest: [u8; 32],
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorKey(..)")
    }
}

/// The shortest operator credential accepted.
pub const OPERATOR_KEY_MIN: usize = 24;

impl OperatorKey {
    /// The credential, trimmed; refused when it is too short to be secret.
    pub fn new(secret: &str) -> Result<Self> {
        let secret = secret.trim();
        if secret.len() < OPERATOR_KEY_MIN {
            return Err(ServiceError::Invalid {
                field: "admin token".into(),
                reason: format!(
                    "at least {OPERATOR_KEY_MIN} characters (e.g. `openssl rand -base64 32`)"
                ),
            });
        }
        Ok(OperatorKey {
            digest: sha2::Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the credential, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = sha2::Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator, not (yet) in a tenant.
    Operator,
    /// A tenant's token, or the operator acting in a tenant.
    Tenant(Scope),
}

/// A token's last use is recorded at most this often.
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

impl Service {
    /// Who presents `credential`: the operator (when `operator` is set and
    /// matches) or a live token of a tenant. The operator may name a
    /// tenant to act in it with admin rights. Anything else is
    /// [`ServiceError::Unauthorized`] — one answer for unknown, malformed
    /// and revoked tokens.
    pub async fn authenticate(
        &self,
        credential: &str,
        operator: Option<&OperatorKey>,
        act_in: Option<&str>,
    ) -> Result<Principal> {
        if let Some(key) = operator
            && key.matches(credential)
        {
            return match act_in {
                None => Ok(Principal::Operator),
                Some(name) => {
                    let tenant = self
                        .store
                        .tenant(name)
                        .await?
                        .ok_or_else(|| super::directory::not_found("tenant", name))?;
                    Ok(Principal::Tenant(Scope {
                        tenant,
                        tenant_name: name.to_owned(),
                        access: TokenScope::Admin,
                        token: None,
                    }))
                }
            };
        }
        let Some(found) = self.store.match_token(credential).await? else {
            return Err(ServiceError::Unauthorized);
        };
        let now = Utc::now();
        if found.last_used_at.is_none_or(|t| now - t > TOUCH_EVERY) {
            // A failed bookkeeping write must not refuse the request.
            if let Err(e) = self.store.touch_token(found.id, now).await {
                tracing::warn!(error = %e, "cannot record a token's use");
            }
        }
        let tenant_name = self
            .store
            .tenant_name(found.tenant)
            .await?
            .ok_or(ServiceError::Unauthorized)?;
        Ok(Principal::Tenant(Scope {
            tenant: found.tenant,
            tenant_name,
            access: found.scope,
            token: Some(found.id),
        }))
    }
}
