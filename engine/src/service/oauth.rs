//! OAuth2 sign-in as the command line and the console drive it: the
//! operator's providers, and a tenant's "Sign in with …" — begin (an
//! authorization URL with PKCE and a `state`), then complete (the code
//! exchanged, the refresh token stored encrypted as the credential, and
//! the accounts a revoked grant had disabled switched back on).

use subtle::ConstantTimeEq;

use super::scope::Scope;
use super::{Result, Service, ServiceError, invalid};
use crate::oauth::{self, OAuthClient, OAuthError, Pkce};
use crate::store::{
    CredentialInfo, HealthState, MasterKey, OAuthProvider, OAuthProviderInfo, ProviderKind,
    TokenScope,
};

/// An authorization under way: what finishing it needs. The caller keeps
/// it (the console in the signed-in session, the command line in memory)
/// and must not show `verifier` to anyone.
#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    /// The credential it will store.
    pub credential: String,
    /// The mailbox's login name.
    pub username: String,
    /// The provider's name.
    pub provider: String,
    /// Where the provider sends the user back.
    pub redirect_uri: String,
    /// Binds the answer to this request (CSRF).
    pub state: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// Where to send the user.
    pub url: String,
}

/// A provider as the operator describes it; endpoints and scopes default
/// to the kind's.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// Name.
    pub name: String,
    /// Conventions.
    pub kind: ProviderKind,
    /// Client id.
    pub client_id: String,
    /// Client secret (none for a public client).
    pub client_secret: Option<crate::domain::Secret>,
    /// Authorization endpoint (required for `generic`).
    pub auth_url: Option<String>,
    /// Token endpoint (required for `generic`).
    pub token_url: Option<String>,
    /// Scopes (required for `generic`).
    pub scopes: Vec<String>,
}

impl Service {
    fn oauth_key(&self) -> Result<&MasterKey> {
        self.key.as_ref().ok_or(ServiceError::NoKey)
    }

    /// The operator's providers (no secrets): what "Sign in with …" offers.
    pub async fn oauth_providers(&self, scope: &Scope) -> Result<Vec<OAuthProviderInfo>> {
        scope.require(TokenScope::Read)?;
        Ok(self.store.oauth_providers().await?)
    }

    /// Adds or replaces a provider: the operator's (the command line's)
    /// alone, as it serves every tenant.
    pub async fn put_oauth_provider(&self, spec: ProviderSpec) -> Result<OAuthProviderInfo> {
        let defaults = spec.kind.defaults();
        let pick = |given: Option<String>, default: Option<&str>, field: &str| {
            given
                .or_else(|| default.map(str::to_owned))
                .ok_or_else(|| invalid(field, "needed for a generic provider"))
        };
        let scopes = if spec.scopes.is_empty() {
            defaults
                .map(|(_, _, s)| s.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default()
        } else {
            spec.scopes
        };
        if scopes.is_empty() {
            return Err(invalid("scopes", "needed for a generic provider"));
        }
        let provider = OAuthProvider {
            auth_url: pick(spec.auth_url, defaults.map(|d| d.0), "auth_url")?,
            token_url: pick(spec.token_url, defaults.map(|d| d.1), "token_url")?,
            name: spec.name,
            kind: spec.kind,
            client_id: spec.client_id,
            client_secret: spec.client_secret,
            scopes,
        };
        self.store
            .put_oauth_provider(&provider, self.oauth_key()?)
            .await?;
        self.store
            .oauth_providers()
            .await?
            .into_iter()
            .find(|p| p.name == provider.name.trim())
            .ok_or_else(|| ServiceError::Internal("the provider just stored is missing".into()))
    }

    /// Removes a provider (the operator's).
    pub async fn remove_oauth_provider(&self, name: &str) -> Result<()> {
        Ok(self.store.remove_oauth_provider(name).await?)
    }

    /// Starts "Sign in with `provider`" for the credential `credential`
    /// (new, or one to re-authorize) of the mailbox `username`; the
    /// provider sends the user back to `redirect_uri`.
    pub async fn begin_authorization(
        &self,
        scope: &Scope,
        credential: &str,
        username: &str,
        provider: &str,
        redirect_uri: &str,
    ) -> Result<PendingAuthorization> {
        scope.require(TokenScope::Write)?;
        if credential.trim().is_empty() {
            return Err(invalid("credential", "empty"));
        }
        if username.trim().is_empty() {
            return Err(invalid("username", "empty"));
        }
        let config = self
            .store
            .oauth_provider(provider, self.oauth_key()?)
            .await?;
        let pkce = Pkce::new();
        let state = oauth::random_token(24);
        let url = oauth::authorize_url(&config, redirect_uri, &state, &pkce, Some(username));
        Ok(PendingAuthorization {
            credential: credential.trim().to_owned(),
            username: username.trim().to_owned(),
            provider: config.name,
            redirect_uri: redirect_uri.to_owned(),
            state,
            verifier: pkce.verifier,
            url,
        })
    }

    /// Finishes an authorization with what the provider sent back: checks
    /// `state`, exchanges `code`, stores the credential, and switches back
    /// on the tenant's accounts using it that were disabled.
    pub async fn complete_authorization(
        &self,
        scope: &Scope,
        pending: &PendingAuthorization,
        code: &str,
        state: &str,
    ) -> Result<CredentialInfo> {
        self.complete_authorization_with(OAuthClient::shared(), scope, pending, code, state)
            .await
    }

    /// [`complete_authorization`](Self::complete_authorization) with a
    /// given HTTP client.
    pub async fn complete_authorization_with(
        &self,
        client: &OAuthClient,
        scope: &Scope,
        pending: &PendingAuthorization,
        code: &str,
        state: &str,
    ) -> Result<CredentialInfo> {
        scope.require(TokenScope::Write)?;
        if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
            return Err(ServiceError::Refused(
                "the answer does not belong to this sign-in (state differs): start again".into(),
            ));
        }
        let key = self.oauth_key()?;
        let provider = self.store.oauth_provider(&pending.provider, key).await?;
        let tokens = client
            .exchange_code(&provider, code, &pending.verifier, &pending.redirect_uri)
            .await
            .map_err(authorization_error)?;
        let Some(refresh) = &tokens.refresh_token else {
            return Err(ServiceError::Refused(format!(
                "{} gave no refresh token, so Intake could not sign in again when the access token \
                 expires: check the provider's offline-access scope",
                provider.name
            )));
        };
        let tenant = scope.tenant();
        self.store
            .put_oauth_credential(
                tenant,
                &pending.credential,
                &pending.username,
                &provider.name,
                refresh,
                Some((&tokens.access_token, tokens.expires_at)),
                key,
            )
            .await?;
        // Accounts a revoked grant disabled work again with the new one.
        let health = self.store.health_of_tenant(tenant).await?;
        for account in self.store.accounts(tenant).await? {
            if account.config.credential == pending.credential
                && health
                    .get(&account.id)
                    .is_some_and(|h| h.state == HealthState::Disabled)
            {
                self.store.reset_health(tenant, account.id).await?;
            }
        }
        self.store
            .credentials(tenant)
            .await?
            .into_iter()
            .find(|c| c.name == pending.credential)
            .ok_or_else(|| ServiceError::Internal("the credential just stored is missing".into()))
    }
}

/// A failed code exchange as the service reports it.
fn authorization_error(e: OAuthError) -> ServiceError {
    match e {
        OAuthError::Store(e) => e.into(),
        other => ServiceError::Refused(other.to_string()),
    }
}
