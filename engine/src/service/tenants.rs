//! Tenants (the operator's) and API tokens (each tenant's).

use serde::Serialize;

use super::scope::{Principal, Scope};
use super::{Result, Service, ServiceError, invalid};
use crate::store::{TokenInfo, TokenScope};

/// A tenant as the operator sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    /// Its name: the tenant id plugins see.
    pub name: String,
}

/// A token just issued: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// What lists show of it.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The whole token. Store it now: it cannot be shown again.
    pub token: String,
}

/// Tenant names: what plugins see as the tenant id.
fn check_tenant_name(name: &str) -> Result<()> {
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

fn operator(principal: &Principal) -> Result<()> {
    match principal {
        Principal::Operator => Ok(()),
        Principal::Tenant(_) => Err(ServiceError::Forbidden {
            needed: TokenScope::Admin,
        }),
    }
}

impl Service {
    /// Every tenant (the operator only).
    pub async fn tenant_list(&self, principal: &Principal) -> Result<Vec<TenantView>> {
        operator(principal)?;
        Ok(self
            .store
            .tenants()
            .await?
            .into_iter()
            .map(|(_, name)| TenantView { name })
            .collect())
    }

    /// Creates a tenant (the operator only); an existing name is a
    /// conflict.
    pub async fn create_tenant(&self, principal: &Principal, name: &str) -> Result<TenantView> {
        operator(principal)?;
        check_tenant_name(name)?;
        if self.store.tenant(name).await?.is_some() {
            return Err(ServiceError::Store(crate::store::Error::AlreadyExists {
                what: "tenant",
                name: name.into(),
            }));
        }
        let id = self.store.ensure_tenant(name).await?;
        self.ensure_default_chain(id).await?;
        Ok(TenantView { name: name.into() })
    }

    /// Issues a token for the tenant `name` (the operator only).
    pub async fn issue_token(
        &self,
        principal: &Principal,
        tenant: &str,
        token_name: &str,
        access: TokenScope,
    ) -> Result<IssuedToken> {
        operator(principal)?;
        let id = self
            .store
            .tenant(tenant)
            .await?
            .ok_or_else(|| super::directory::not_found("tenant", tenant))?;
        let (info, token) = self.store.create_token(id, token_name, access).await?;
        Ok(IssuedToken { info, token })
    }

    /// The tenant's tokens (never their secrets).
    pub async fn tokens(&self, scope: &Scope) -> Result<Vec<TokenInfo>> {
        scope.require(TokenScope::Admin)?;
        Ok(self.store.tokens(scope.tenant()).await?)
    }

    /// Issues a token in the caller's tenant, at most as strong as the
    /// caller's own.
    pub async fn create_token(
        &self,
        scope: &Scope,
        name: &str,
        access: TokenScope,
    ) -> Result<IssuedToken> {
        scope.require(TokenScope::Admin)?;
        scope.require(access)?;
        let (info, token) = self
            .store
            .create_token(scope.tenant(), name, access)
            .await?;
        Ok(IssuedToken { info, token })
    }

    /// Revokes a token of the tenant: refused from the next request on.
    pub async fn revoke_token(&self, scope: &Scope, id: i64) -> Result<TokenInfo> {
        scope.require(TokenScope::Admin)?;
        Ok(self.store.revoke_token(scope.tenant(), id).await?)
    }
}
