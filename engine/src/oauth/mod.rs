//! OAuth2 sign-in for mailboxes (Gmail, Microsoft 365, any provider with the
//! authorization-code flow): the authorization URL with PKCE, the code
//! exchange, and the refresh that keeps an access token valid.
//!
//! `fetch` never sees OAuth2: it gets an access token in the account's
//! password field and speaks XOAUTH2 or OAUTHBEARER ([`crate::fetch::sasl`]).
//! [`fresh_settings`] is what stands between the store and a connection: it
//! refreshes the token when it expires within [`REFRESH_MARGIN`], saves the
//! new one (and a rotated refresh token), and turns a revoked grant into
//! [`OAuthError::Revoked`], which disables the account with the reason
//! "re-authorize".
//!
//! Talking to a token endpoint is bounded like everything else: a timeout
//! per request, no redirects, at most [`MAX_RESPONSE_BYTES`] read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::Digest;

use crate::domain::{AccountSettings, Secret};
use crate::store::{self, MasterKey, OAuthProvider, ProviderKind, Store, TenantId};

/// An access token expiring sooner than this is refreshed before use: a
/// check that starts with a token about to lapse would fail half-way.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(120);

/// Most bytes read from a token endpoint's answer.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Time allowed for one request to a token endpoint.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What went wrong getting or refreshing a token.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider no longer honours the grant (`invalid_grant`): the
    /// user revoked it, changed the password, or it expired. Only the user
    /// signing in again helps.
    #[error("{provider} no longer accepts this authorization ({detail}): re-authorize the account")]
    Revoked {
        /// Provider name.
        provider: String,
        /// The provider's words.
        detail: String,
    },
    /// The provider refused Intake's client (`invalid_client`,
    /// `unauthorized_client`, a bad scope…): the operator's configuration.
    #[error(
        "{provider} refused the OAuth2 client ({detail}): check the provider's client id, secret and scopes"
    )]
    Client {
        /// Provider name.
        provider: String,
        /// The provider's words.
        detail: String,
    },
    /// The token endpoint could not be reached or failed (network, timeout,
    /// 5xx): worth trying again later.
    #[error("cannot get an access token from {provider}: {detail}")]
    Unreachable {
        /// Provider name.
        provider: String,
        /// What happened.
        detail: String,
    },
    /// The token endpoint answered something that is not a token.
    #[error("{provider}'s token endpoint answered something unusable: {detail}")]
    BadResponse {
        /// Provider name.
        provider: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The account and its credential do not fit together.
    #[error("{0}")]
    Mismatch(String),
    /// The store failed (or the provider is unknown).
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl OAuthError {
    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, OAuthError::Unreachable { .. })
    }
}

/// What a token endpoint returned.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token.
    pub access_token: Secret,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// A new refresh token, when the provider issued or rotated one.
    pub refresh_token: Option<Secret>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A PKCE pair (RFC 7636, S256): the verifier stays with Intake, the
/// challenge goes in the authorization URL.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// Sent with the code exchange.
    pub verifier: String,
    /// Sent with the authorization request.
    pub challenge: String,
}

impl Pkce {
    /// A fresh random pair.
    pub fn new() -> Self {
        let verifier = random_token(32);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// `bytes` random bytes, base64url: for PKCE verifiers and `state`.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The URL to send the user to: the provider's consent screen, coming back
/// to `redirect_uri` with a code and `state`.
pub fn authorize_url(
    provider: &OAuthProvider,
    redirect_uri: &str,
    state: &str,
    pkce: &Pkce,
    login_hint: Option<&str>,
) -> String {
    let mut url = match url::Url::parse(&provider.auth_url) {
        Ok(url) => url,
        // Checked when the provider was stored.
        Err(_) => return provider.auth_url.clone(),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &provider.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = login_hint {
            q.append_pair("login_hint", hint);
        }
        if provider.kind == ProviderKind::Google {
            // Without these Google returns no refresh token on a second
            // authorization.
            q.append_pair("access_type", "offline")
                .append_pair("prompt", "consent");
        }
    }
    url.into()
}

/// The HTTP client for token endpoints.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
}

impl OAuthClient {
    /// A client with Intake's limits: a timeout per request, no redirects.
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("intake/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with rustls and the system roots");
        OAuthClient { http }
    }

    /// The process's shared client.
    pub fn shared() -> &'static OAuthClient {
        static CLIENT: OnceLock<OAuthClient> = OnceLock::new();
        CLIENT.get_or_init(OAuthClient::new)
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        provider: &OAuthProvider,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, OAuthError> {
        let form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", verifier.to_string()),
        ];
        self.token_request(provider, form).await
    }

    /// A new access token for a refresh token.
    pub async fn refresh(
        &self,
        provider: &OAuthProvider,
        refresh_token: &Secret,
    ) -> Result<Tokens, OAuthError> {
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose().to_string()),
        ];
        if provider.kind == ProviderKind::Microsoft {
            form.push(("scope", provider.scopes.join(" ")));
        }
        self.token_request(provider, form).await
    }

    async fn token_request(
        &self,
        provider: &OAuthProvider,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<Tokens, OAuthError> {
        let name = provider.name.clone();
        let unreachable = |detail: String| OAuthError::Unreachable {
            provider: name.clone(),
            detail,
        };
        form.push(("client_id", provider.client_id.clone()));
        if let Some(secret) = &provider.client_secret {
            form.push(("client_secret", secret.expose().to_string()));
        }
        let mut response = self
            .http
            .post(&provider.token_url)
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| unreachable(describe(&e)))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(describe(&e)))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(OAuthError::BadResponse {
                    provider: name,
                    detail: format!(
                        "the answer is larger than {} KiB",
                        MAX_RESPONSE_BYTES / 1024
                    ),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            let parsed: TokenResponse =
                serde_json::from_slice(&body).map_err(|e| OAuthError::BadResponse {
                    provider: name.clone(),
                    detail: format!("not a token response: {e}"),
                })?;
            if let Some(kind) = &parsed.token_type
                && !kind.eq_ignore_ascii_case("bearer")
            {
                return Err(OAuthError::BadResponse {
                    provider: name,
                    detail: format!("token type {kind:?}, not bearer"),
                });
            }
            if parsed.access_token.is_empty() {
                return Err(OAuthError::BadResponse {
                    provider: name,
                    detail: "an empty access token".into(),
                });
            }
            // Providers send a number, some a string; an hour when absent.
            let lifetime = match &parsed.expires_in {
                Some(serde_json::Value::Number(n)) => n.as_u64(),
                Some(serde_json::Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .unwrap_or(3600)
            .min(365 * 24 * 3600);
            return Ok(Tokens {
                access_token: Secret::new(parsed.access_token),
                expires_at: Utc::now() + chrono::Duration::seconds(lifetime as i64),
                refresh_token: parsed
                    .refresh_token
                    .filter(|t| !t.is_empty())
                    .map(Secret::new),
            });
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(unreachable(format!("the token endpoint answered {status}")));
        }
        let error: Option<ErrorResponse> = serde_json::from_slice(&body).ok();
        let detail = match &error {
            Some(e) => {
                let words = e
                    .error_description
                    .as_deref()
                    .map(|d| format!(": {}", crate::text::bounded(d, 300)))
                    .unwrap_or_default();
                crate::text::neutralize(&format!("{}{words}", crate::text::bounded(&e.error, 100)))
                    .into_owned()
            }
            None => format!("HTTP {status}"),
        };
        match error.as_ref().map(|e| e.error.as_str()) {
            Some("invalid_grant") => Err(OAuthError::Revoked {
                provider: name,
                detail,
            }),
            _ => Err(OAuthError::Client {
                provider: name,
                detail,
            }),
        }
    }
}

impl Default for OAuthClient {
    fn default() -> Self {
        Self::new()
    }
}

/// A reqwest error in words, without the URL's query (never a secret in
/// it, but long).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect to the token endpoint".into()
    } else {
        let mut text = e.to_string();
        if let Some(url) = e.url() {
            text = text.replace(url.as_str(), "the token endpoint");
        }
        text
    }
}

/// One lock per credential in this process, so two checks of accounts that
/// share a login refresh once, not twice.
type RefreshLocks = Mutex<HashMap<(i64, String), Arc<tokio::sync::Mutex<()>>>>;

fn refresh_lock(tenant: TenantId, credential: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<RefreshLocks> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    locks
        .entry((tenant.0, credential.to_owned()))
        .or_default()
        .clone()
}

/// The settings to connect the account `name` with: the store's, and for an
/// OAuth2 credential a valid access token, refreshed first when it expires
/// within [`REFRESH_MARGIN`] (the new token is saved for the next check).
pub async fn fresh_settings(
    store: &Store,
    tenant: TenantId,
    name: &str,
    key: &MasterKey,
) -> Result<AccountSettings, OAuthError> {
    fresh_settings_with(OAuthClient::shared(), store, tenant, name, key).await
}

/// [`fresh_settings`] with a given client.
pub async fn fresh_settings_with(
    client: &OAuthClient,
    store: &Store,
    tenant: TenantId,
    name: &str,
    key: &MasterKey,
) -> Result<AccountSettings, OAuthError> {
    let account = store.account(tenant, name).await?;
    let credential_name = account.config.credential.clone();
    let login = store.credential(tenant, &credential_name, key).await?;
    let Some(grant) = &login.oauth else {
        if account.config.auth.is_oauth() {
            return Err(OAuthError::Mismatch(format!(
                "account {name} signs in with {:?}, but its credential {credential_name} is a password: \
                 authorize the credential with an OAuth2 provider",
                account.config.auth
            )));
        }
        return Ok(store.settings_with(tenant, &account, &login, key).await?);
    };
    let fresh = |expires_at: Option<DateTime<Utc>>| {
        expires_at.is_some_and(|at| {
            at - chrono::Duration::from_std(REFRESH_MARGIN).unwrap_or_default() > Utc::now()
        })
    };
    if grant.access_token.is_some() && fresh(grant.expires_at) {
        return Ok(store.settings_with(tenant, &account, &login, key).await?);
    }
    {
        let lock = refresh_lock(tenant, &credential_name);
        let _held = lock.lock().await;
        // Another check may have refreshed it while this one waited.
        let again = store.credential(tenant, &credential_name, key).await?;
        let current = again.oauth.as_ref();
        if !(current.is_some_and(|g| g.access_token.is_some() && fresh(g.expires_at))) {
            let provider = store.oauth_provider(&grant.provider, key).await?;
            let tokens = client.refresh(&provider, &again.secret).await?;
            store
                .save_access_token(
                    tenant,
                    &credential_name,
                    &tokens.access_token,
                    tokens.expires_at,
                    tokens.refresh_token.as_ref(),
                    key,
                )
                .await?;
            tracing::info!(
                tenant = %tenant,
                credential = %credential_name,
                provider = %provider.name,
                expires_at = %tokens.expires_at,
                "refreshed the OAuth2 access token"
            );
        }
    }
    Ok(store.settings(tenant, name, key).await?)
}
