//! The handlers of `/v1`, each a thin call into the service layer, with its
//! OpenAPI description beside it. Routes and descriptions are registered
//! together ([`routes`]), so the document lists exactly what is served.

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use super::auth::{OperatorCaller, TenantCaller};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{Json, Query, Wasm, id, parse_json};
use crate::directory::Party;
use crate::discover::Discovered;
use crate::domain::Secret;
use crate::fetch::check::Report;
use crate::service::accounts::{AccountChange, AccountPatch, AccountView};
use crate::service::directory::{PartyPage, PartyQuery};
use crate::service::discover::ProviderView;
use crate::service::messages::{
    Explanation, MessageItem, MessagePage, MessageQuery, QuarantinePage, QuarantineQuery, Release,
    Released,
};
use crate::service::plugins::{
    CanaryRequest, OutboundSettings, PluginSettings, PluginVersionView, PluginVersions, PluginView,
    RollbackView,
};
use crate::service::replay::{ReplayChain, ReplayReport, ReplayRequest};
use crate::service::tenants::{IssuedToken, TenantView};
use crate::service::webhooks::{CreatedWebhook, WebhookInput};
use crate::store::{
    CredentialInfo, DeliveryQuery, DeliveryState, EndpointChanges, ImportSummary, NewParty,
    TokenInfo, TokenScope, WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookEndpointId,
};

type Out<T> = ApiResult<axum::Json<T>>;

fn ok<T>(value: T) -> Out<T> {
    Ok(axum::Json(value))
}

fn created<T: Serialize>(value: T) -> ApiResult<Response> {
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

fn no_content() -> ApiResult<StatusCode> {
    Ok(StatusCode::NO_CONTENT)
}

/// Every route of `/v1` with its description.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(issue_tenant_token))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, update_account, delete_account))
        .routes(routes!(test_account))
        .routes(routes!(check_account))
        .routes(routes!(enable_account))
        .routes(routes!(replay_account))
        .routes(routes!(list_credentials, create_credential))
        .routes(routes!(set_credential, delete_credential))
        .routes(routes!(upsert_parties))
        .routes(routes!(list_parties))
        .routes(routes!(get_party, delete_party))
        .routes(routes!(delete_party_by_external_id))
        .routes(routes!(list_plugins, add_plugin))
        .routes(routes!(get_plugin, configure_plugin, remove_plugin))
        .routes(routes!(order_plugins))
        .routes(routes!(list_plugin_versions, add_plugin_version))
        .routes(routes!(start_canary))
        .routes(routes!(promote_plugin))
        .routes(routes!(rollback_plugin))
        .routes(routes!(list_messages))
        .routes(routes!(get_message))
        .routes(routes!(raw_message))
        .routes(routes!(explain_message))
        .routes(routes!(list_quarantine))
        .routes(routes!(release_quarantined))
        .routes(routes!(drop_quarantined))
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(redeliver_dead_webhooks))
        .routes(routes!(list_webhook_deliveries))
        .routes(routes!(redeliver_webhook))
        .routes(routes!(list_providers))
        .routes(routes!(discover_settings))
}

// ---- tenants and tokens ----------------------------------------------------

/// A new tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Its name: 1 to 64 letters, digits, `-`, `_` or `.`.
    pub name: String,
}

/// A token to issue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A name people recognise it by (`crm-sync`, `console`).
    pub name: String,
    /// What it may do.
    pub scope: TokenScope,
}

/// Every tenant (operator only).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, body = Vec<TenantView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_tenants(
    state: axum::extract::State<ApiState>,
    OperatorCaller(p): OperatorCaller,
) -> Out<Vec<TenantView>> {
    ok(state.service.tenant_list(&p).await?)
}

/// Create a tenant (operator only).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = TenantView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn create_tenant(
    state: axum::extract::State<ApiState>,
    OperatorCaller(p): OperatorCaller,
    Json(body): Json<NewTenant>,
) -> ApiResult<Response> {
    created(state.service.create_tenant(&p, &body.name).await?)
}

/// Issue a token for a tenant (operator only). The token is in the answer
/// once, and never again.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", tag = "tenants", request_body = NewToken,
    params(("tenant" = String, Path, description = "Tenant name")),
    responses((status = 201, body = IssuedToken),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn issue_tenant_token(
    state: axum::extract::State<ApiState>,
    OperatorCaller(p): OperatorCaller,
    axum::extract::Path(tenant): axum::extract::Path<String>,
    Json(body): Json<NewToken>,
) -> ApiResult<Response> {
    created(
        state
            .service
            .issue_token(&p, &tenant, &body.name, body.scope)
            .await?,
    )
}

/// The tenant's tokens (admin scope); never their secrets.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenInfo>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_tokens(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
) -> Out<Vec<TokenInfo>> {
    ok(state.service.tokens(&s).await?)
}

/// Issue a token in the caller's tenant, at most as strong as the caller's.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = IssuedToken),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn create_token(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Json(body): Json<NewToken>,
) -> ApiResult<Response> {
    created(
        state
            .service
            .create_token(&s, &body.name, body.scope)
            .await?,
    )
}

/// Revoke a token: refused from the next request on.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, body = TokenInfo),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn revoke_token(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Out<TokenInfo> {
    let token = id(&token, "token")?;
    ok(state.service.revoke_token(&s, token).await?)
}

// ---- accounts and credentials ---------------------------------------------

/// A new account: its name and its settings ([`AccountPatch`]).
#[derive(Debug, utoipa::ToSchema)]
pub struct NewAccount {
    /// Name, unique in the tenant.
    pub name: String,
    /// The settings; `protocol`, `host` and `credential` are needed.
    #[schema(inline)]
    pub settings: AccountPatch,
}

/// Check now: how long to wait for the result.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckWait {
    /// Wait up to this many seconds (at most 50) for the check to finish;
    /// 0 (default): answer at once with 202.
    pub wait_secs: Option<u64>,
}

/// A check asked for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckRequested {
    /// When it was asked for.
    pub requested_at: DateTime<Utc>,
    /// The account as it is now (after the check, if it finished).
    pub account: Option<AccountView>,
}

/// A credential to store.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// Name, referenced by accounts.
    pub name: String,
    /// User name to log in with.
    pub username: String,
    /// Password or app password. Write-only: never returned.
    #[schema(write_only, format = Password)]
    pub secret: String,
}

/// A credential's new user name and secret.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialUpdate {
    /// User name to log in with.
    pub username: String,
    /// Password or app password. Write-only: never returned.
    #[schema(write_only, format = Password)]
    pub secret: String,
}

/// The tenant's accounts with their state.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts",
    responses((status = 200, body = Vec<AccountView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_accounts(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
) -> Out<Vec<AccountView>> {
    ok(state.service.accounts(&s).await?)
}

/// Add an account. The answer lists warnings (certificate verification
/// off, no TLS).
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = NewAccount,
    responses((status = 201, body = AccountChange),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn create_account(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Json(mut body): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Response> {
    let name = match body.remove("name") {
        Some(serde_json::Value::String(name)) => name,
        Some(_) => return Err(ApiError::invalid("name", "must be a string")),
        None => return Err(ApiError::invalid("name", "needed")),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| ApiError::internal(&e))?;
    let patch: AccountPatch = parse_json(&bytes)?;
    created(state.service.create_account(&s, &name, &patch).await?)
}

/// One account with its state.
#[utoipa::path(get, path = "/v1/accounts/{name}", tag = "accounts",
    params(("name" = String, Path, description = "Account name")),
    responses((status = 200, body = AccountView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn get_account(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Out<AccountView> {
    ok(state.service.account(&s, &name).await?)
}

/// Change settings (only those given; `null` clears `port` and `proxy`).
/// A change clears a disablement or backoff.
#[utoipa::path(patch, path = "/v1/accounts/{name}", tag = "accounts", request_body = AccountPatch,
    params(("name" = String, Path, description = "Account name")),
    responses((status = 200, body = AccountChange),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn update_account(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
    Json(patch): Json<AccountPatch>,
) -> Out<AccountChange> {
    ok(state.service.update_account(&s, &name, &patch).await?)
}

/// Remove an account; its stored messages stay.
#[utoipa::path(delete, path = "/v1/accounts/{name}", tag = "accounts",
    params(("name" = String, Path, description = "Account name")),
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn delete_account(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    state.service.remove_account(&s, &name).await?;
    no_content()
}

/// Test settings: resolve, connect, TLS, capabilities, login, folders; the
/// failed step says what to change. 200 either way: read `steps[].ok`.
#[utoipa::path(post, path = "/v1/accounts/{name}/test", tag = "accounts",
    params(("name" = String, Path, description = "Account name")),
    responses((status = 200, body = Report),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn test_account(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Out<Report> {
    ok(state.service.test_account(&s, &name).await?)
}

/// Check now: the service checks the account at its next tick. With
/// `wait_secs`, the answer waits for the result (200), else 202.
#[utoipa::path(post, path = "/v1/accounts/{name}/check", tag = "accounts",
    params(("name" = String, Path, description = "Account name"), CheckWait),
    responses((status = 200, body = CheckRequested), (status = 202, body = CheckRequested),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn check_account(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
    Query(wait): Query<CheckWait>,
) -> ApiResult<Response> {
    let requested_at = state.service.request_check(&s, &name).await?;
    let wait = Duration::from_secs(wait.wait_secs.unwrap_or(0).min(50));
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if state
            .service
            .check_result(&s, &name, requested_at)
            .await?
            .is_some()
        {
            let account = state.service.account(&s, &name).await?;
            return Ok(axum::Json(CheckRequested {
                requested_at,
                account: Some(account),
            })
            .into_response());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(CheckRequested {
            requested_at,
            account: None,
        }),
    )
        .into_response())
}

/// What to replay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayInput {
    /// Only report what would change (the default); `false` records it.
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Only mail dated at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Run the plugins' canaries as live mail gets them; by default every
    /// plugin's active version decides.
    #[serde(default)]
    pub with_canary: bool,
}

fn yes() -> bool {
    true
}

/// Replay: run the account's stored mail through the tenant's chain as
/// stored now and report what changes — links added and removed, new
/// leads, dispositions. With `dry_run: false` the new decisions are
/// recorded (a second run changes nothing). The mail server is never
/// contacted. The answer waits for the whole account.
#[utoipa::path(post, path = "/v1/accounts/{name}/replay", tag = "accounts",
    params(("name" = String, Path, description = "Account name")),
    request_body = ReplayInput,
    responses((status = 200, body = ReplayReport),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn replay_account(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
    Json(input): Json<ReplayInput>,
) -> Out<ReplayReport> {
    let request = ReplayRequest {
        since: input.since,
        chain: if input.with_canary {
            ReplayChain::Rollout
        } else {
            ReplayChain::Stored
        },
        apply: !input.dry_run,
    };
    ok(state.service.replay(&s, &name, &request).await?)
}

/// Switch an account on and clear a disablement or backoff.
#[utoipa::path(post, path = "/v1/accounts/{name}/enable", tag = "accounts",
    params(("name" = String, Path, description = "Account name")),
    responses((status = 200, body = AccountView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn enable_account(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Out<AccountView> {
    state.service.enable_account(&s, &name).await?;
    ok(state.service.account(&s, &name).await?)
}

/// The tenant's credentials: names and user names, never secrets.
#[utoipa::path(get, path = "/v1/credentials", tag = "credentials",
    responses((status = 200, body = Vec<CredentialInfo>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_credentials(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
) -> Out<Vec<CredentialInfo>> {
    ok(state.service.credentials(&s).await?)
}

/// Store a credential, encrypted with the engine's master key.
#[utoipa::path(post, path = "/v1/credentials", tag = "credentials", request_body = NewCredential,
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn create_credential(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Json(body): Json<NewCredential>,
) -> ApiResult<StatusCode> {
    state
        .service
        .add_credential(&s, &body.name, &body.username, &Secret::new(&body.secret))
        .await?;
    no_content()
}

/// Replace a credential's user name and secret (a password change);
/// accounts disabled for a wrong password are tried again.
#[utoipa::path(put, path = "/v1/credentials/{name}", tag = "credentials", request_body = CredentialUpdate,
    params(("name" = String, Path, description = "Credential name")),
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn set_credential(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
    Json(body): Json<CredentialUpdate>,
) -> ApiResult<StatusCode> {
    state
        .service
        .set_credential(&s, &name, &body.username, &Secret::new(&body.secret))
        .await?;
    no_content()
}

/// Remove a credential no account uses.
#[utoipa::path(delete, path = "/v1/credentials/{name}", tag = "credentials",
    params(("name" = String, Path, description = "Credential name")),
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn delete_credential(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    state.service.remove_credential(&s, &name).await?;
    no_content()
}

// ---- directory --------------------------------------------------------------

/// Parties to create or update.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyBatch {
    /// At most 10,000. One with `external_id` is the party the CRM knows by
    /// it; one without is found by kind and address.
    pub parties: Vec<NewParty>,
}

/// Create or update contacts and leads, all or nothing.
#[utoipa::path(post, path = "/v1/parties/bulk", tag = "directory", request_body = PartyBatch,
    responses((status = 200, body = ImportSummary),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn upsert_parties(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Json(body): Json<PartyBatch>,
) -> Out<ImportSummary> {
    ok(state.service.upsert_parties(&s, &body.parties).await?)
}

/// Contacts and leads, in id order, filtered.
#[utoipa::path(get, path = "/v1/parties", tag = "directory", params(PartyQuery),
    responses((status = 200, body = PartyPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_parties(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Query(query): Query<PartyQuery>,
) -> Out<PartyPage> {
    ok(state.service.parties(&s, &query).await?)
}

/// One contact or lead.
#[utoipa::path(get, path = "/v1/parties/{id}", tag = "directory",
    params(("id" = i64, Path, description = "Party id")),
    responses((status = 200, body = Party),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn get_party(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(party): axum::extract::Path<String>,
) -> Out<Party> {
    ok(state.service.party(&s, id(&party, "party")?).await?)
}

/// Remove a contact or lead and its links (the messages stay).
#[utoipa::path(delete, path = "/v1/parties/{id}", tag = "directory",
    params(("id" = i64, Path, description = "Party id")),
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn delete_party(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(party): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    state.service.delete_party(&s, id(&party, "party")?).await?;
    no_content()
}

/// Remove the party the CRM knows by this external id.
#[utoipa::path(delete, path = "/v1/parties/external/{external_id}", tag = "directory",
    params(("external_id" = String, Path, description = "The CRM's id")),
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn delete_party_by_external_id(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(external): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    state
        .service
        .delete_party_by_external_id(&s, &external)
        .await?;
    no_content()
}

// ---- plugins ------------------------------------------------------------------

/// Where to put a component, and its settings.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PluginUpload {
    /// Name in the chain.
    pub name: String,
    /// `matcher` or `unknown-sender`.
    pub role: String,
    /// Configuration passed to `init`, JSON (default `{}`).
    pub config: Option<String>,
    /// Deadline per message, milliseconds (default 100).
    pub deadline_ms: Option<u64>,
    /// Memory cap, MiB (default 64).
    pub memory_mb: Option<usize>,
    /// `quarantine` (default) or `skip`.
    pub on_error: Option<String>,
}

/// A change to a binding.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginChange {
    /// New configuration (checked by the component's `init` first).
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    /// Deadline per message, milliseconds.
    pub deadline_ms: Option<u64>,
    /// Memory cap, MiB.
    pub memory_mb: Option<usize>,
    /// `quarantine` or `skip`.
    pub on_error: Option<String>,
    /// Switched on.
    pub enabled: Option<bool>,
    /// Replaces the outbound HTTP allow-list: `scheme://host[:port]`
    /// entries (`https://crm.example.com`, `http://127.0.0.1:8080`,
    /// `https://*.example.com:443`); `[]` revokes the grant.
    pub allowed_outbound_hosts: Option<Vec<String>>,
    /// Time one outbound request may take, milliseconds (default 5000;
    /// never past what is left of the deadline).
    pub http_timeout_ms: Option<u64>,
    /// Cap on one outbound request's body, KiB (default 64).
    pub http_request_kb: Option<usize>,
    /// Cap on one outbound response's body, KiB (default 1024).
    pub http_response_kb: Option<usize>,
    /// Secrets to set, name → value (`CRM_TOKEN`): stored encrypted, the
    /// plugin's environment variables, never shown back.
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub set_secrets: Option<std::collections::BTreeMap<String, crate::domain::Secret>>,
    /// Secrets to remove, by name.
    pub remove_secrets: Option<Vec<String>>,
}

/// The chain's new order.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginOrder {
    /// Every binding's name, once, in the new order.
    pub names: Vec<String>,
}

/// The tenant's plugin chain, in order.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, body = Vec<PluginView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_plugins(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
) -> Out<Vec<PluginView>> {
    ok(state.service.plugins(&s).await?)
}

/// Upload a component (admin scope): checked before it is stored (it
/// loads, has the role, accepts the configuration), then added at the end
/// of the chain.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", params(PluginUpload),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The component (.wasm)"),
    responses((status = 201, body = PluginView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn add_plugin(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Query(upload): Query<PluginUpload>,
    Wasm(wasm): Wasm,
) -> ApiResult<Response> {
    let settings = PluginSettings {
        role: Some(upload.role),
        deadline_ms: upload.deadline_ms,
        memory_mb: upload.memory_mb,
        on_error: upload.on_error,
    };
    let config = upload.config.as_deref().unwrap_or("{}");
    created(
        state
            .service
            .add_plugin(&s, &upload.name, wasm, config, &settings)
            .await?,
    )
}

/// One binding.
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "Binding name")),
    responses((status = 200, body = PluginView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn get_plugin(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Out<PluginView> {
    ok(state.service.plugin(&s, &name).await?)
}

/// Configure a binding, change its limits, switch it on or off; grant
/// outbound HTTP (`allowed_outbound_hosts`, with its caps) and set or remove
/// its secrets (stored encrypted, shown back by name only; setting one needs
/// the service's master key).
#[utoipa::path(patch, path = "/v1/plugins/{name}", tag = "plugins", request_body = PluginChange,
    params(("name" = String, Path, description = "Binding name")),
    responses((status = 200, body = PluginView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn configure_plugin(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
    Json(change): Json<PluginChange>,
) -> Out<PluginView> {
    let config = change.config.as_ref().map(|c| c.to_string());
    let settings = PluginSettings {
        role: None,
        deadline_ms: change.deadline_ms,
        memory_mb: change.memory_mb,
        on_error: change.on_error,
    };
    let outbound = OutboundSettings {
        allowed_outbound_hosts: change.allowed_outbound_hosts,
        http_timeout_ms: change.http_timeout_ms,
        http_request_kb: change.http_request_kb,
        http_response_kb: change.http_response_kb,
        set_secrets: change.set_secrets,
        remove_secrets: change.remove_secrets,
    };
    ok(state
        .service
        .configure_plugin(
            &s,
            &name,
            config.as_deref(),
            &settings,
            &outbound,
            change.enabled,
        )
        .await?)
}

/// Remove a binding.
#[utoipa::path(delete, path = "/v1/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "Binding name")),
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn remove_plugin(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    state.service.remove_plugin(&s, &name).await?;
    no_content()
}

/// Put the chain in a new order.
#[utoipa::path(put, path = "/v1/chain/order", tag = "plugins", request_body = PluginOrder,
    responses((status = 200, body = Vec<PluginView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn order_plugins(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Json(order): Json<PluginOrder>,
) -> Out<Vec<PluginView>> {
    ok(state.service.order_plugins(&s, &order.names).await?)
}

/// A new version's settings (what is not given is the active version's).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionUpload {
    /// Configuration passed to `init`, JSON.
    pub config: Option<String>,
    /// Deadline per message, milliseconds.
    pub deadline_ms: Option<u64>,
    /// Memory cap, MiB.
    pub memory_mb: Option<usize>,
}

/// Which version to promote.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PromoteQuery {
    /// The version to make active; by default the canary's candidate.
    pub version: Option<u32>,
}

/// A plugin's versions: which is active, which is a canary and for whom.
#[utoipa::path(get, path = "/v1/plugins/{name}/versions", tag = "plugins",
    params(("name" = String, Path, description = "Binding name")),
    responses((status = 200, body = PluginVersions),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_plugin_versions(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Out<PluginVersions> {
    ok(state.service.plugin_versions(&s, &name).await?)
}

/// Add a version beside the running one (admin scope): the component in
/// the body (an empty body keeps the active version's component), settings
/// in the query (what is not given is the active version's). Checked as an
/// upload is; it decides nothing until a canary or a promote.
#[utoipa::path(post, path = "/v1/plugins/{name}/versions", tag = "plugins",
    params(("name" = String, Path, description = "Binding name"), VersionUpload),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The component (.wasm), or nothing"),
    responses((status = 201, body = PluginVersionView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn add_plugin_version(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
    Query(upload): Query<VersionUpload>,
    Wasm(wasm): Wasm,
) -> ApiResult<Response> {
    let settings = PluginSettings {
        deadline_ms: upload.deadline_ms,
        memory_mb: upload.memory_mb,
        ..PluginSettings::default()
    };
    let wasm = (!wasm.is_empty()).then_some(wasm);
    created(
        state
            .service
            .add_plugin_version(&s, &name, wasm, upload.config.as_deref(), &settings)
            .await?,
    )
}

/// Start or change a canary (admin scope): the version decides every
/// message of the named accounts and `share_percent` of the rest (chosen by
/// a hash of each message, so the same message always goes the same way),
/// from each account's next run on; the active version decides the rest.
#[utoipa::path(post, path = "/v1/plugins/{name}/canary", tag = "plugins", request_body = CanaryRequest,
    params(("name" = String, Path, description = "Binding name")),
    responses((status = 200, body = PluginVersions),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn start_canary(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
    Json(request): Json<CanaryRequest>,
) -> Out<PluginVersions> {
    ok(state.service.start_canary(&s, &name, &request).await?)
}

/// Make a version active for all mail (admin scope): `version`, or the
/// canary's candidate; from each account's next run on, without a restart.
#[utoipa::path(post, path = "/v1/plugins/{name}/promote", tag = "plugins",
    params(("name" = String, Path, description = "Binding name"), PromoteQuery),
    responses((status = 200, body = PluginVersions),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn promote_plugin(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
    Query(query): Query<PromoteQuery>,
) -> Out<PluginVersions> {
    ok(state
        .service
        .promote_plugin(&s, &name, query.version)
        .await?)
}

/// Roll back (admin scope): stop the canary, or when none runs, return to
/// the version that was active before the current one.
#[utoipa::path(post, path = "/v1/plugins/{name}/rollback", tag = "plugins",
    params(("name" = String, Path, description = "Binding name")),
    responses((status = 200, body = RollbackView),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn rollback_plugin(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Out<RollbackView> {
    ok(state.service.rollback_plugin(&s, &name).await?)
}

// ---- inbox and quarantine ---------------------------------------------------

/// The inbox: stored and quarantined messages, newest stored first, with
/// their parties and the plugin that decided. Page with `next`.
#[utoipa::path(get, path = "/v1/messages", tag = "messages", params(MessageQuery),
    responses((status = 200, body = MessagePage),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_messages(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Query(query): Query<MessageQuery>,
) -> Out<MessagePage> {
    ok(state.service.messages(&s, &query).await?)
}

/// One message with its parties and the plugin that decided.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = i64, Path, description = "Stored message id")),
    responses((status = 200, body = MessageItem),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn get_message(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(message): axum::extract::Path<String>,
) -> Out<MessageItem> {
    ok(state.service.message(&s, id(&message, "message")?).await?)
}

/// How the plugin chain decided the message: each plugin as it ran (its
/// answer and time, component SHA-256 and configuration version) and who
/// decided.
#[utoipa::path(get, path = "/v1/messages/{id}/explain", tag = "messages",
    params(("id" = i64, Path, description = "Stored message id")),
    responses((status = 200, body = Explanation),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn explain_message(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(message): axum::extract::Path<String>,
) -> Out<Explanation> {
    ok(state.service.explain(&s, id(&message, "message")?).await?)
}

/// The message's exact bytes, as the server sent them.
#[utoipa::path(get, path = "/v1/messages/{id}/raw", tag = "messages",
    params(("id" = i64, Path, description = "Stored message id")),
    responses((status = 200, content_type = "message/rfc822", body = Vec<u8>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn raw_message(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(message): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let message = id(&message, "message")?;
    let raw = state.service.raw_message(&s, message).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "message/rfc822".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"message-{message}.eml\""),
            ),
        ],
        raw,
    )
        .into_response())
}

/// What is held in quarantine, newest first, with why and which plugin.
/// Page with `next`.
#[utoipa::path(get, path = "/v1/quarantine", tag = "quarantine", params(QuarantineQuery),
    responses((status = 200, body = QuarantinePage),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_quarantine(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Query(query): Query<QuarantineQuery>,
) -> Out<QuarantinePage> {
    ok(state.service.quarantined(&s, &query).await?)
}

/// Release a held message: attach it to parties, re-run today's chain on
/// it, or store it unlinked.
#[utoipa::path(post, path = "/v1/quarantine/{id}/release", tag = "quarantine", request_body = Release,
    params(("id" = i64, Path, description = "Stored message id")),
    responses((status = 200, body = Released),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn release_quarantined(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(message): axum::extract::Path<String>,
    Json(how): Json<Release>,
) -> Out<Released> {
    ok(state
        .service
        .release(&s, id(&message, "message")?, &how)
        .await?)
}

/// Drop a held message: only its keys stay, so it is not ingested again.
#[utoipa::path(delete, path = "/v1/quarantine/{id}", tag = "quarantine",
    params(("id" = i64, Path, description = "Stored message id")),
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn drop_quarantined(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(message): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    state
        .service
        .drop_quarantined(&s, id(&message, "message")?)
        .await?;
    no_content()
}

// ---- webhooks -----------------------------------------------------------------

/// An endpoint to register.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are POSTed (http or https).
    pub url: String,
    /// `message.stored`, `lead.created`, `message.quarantined`,
    /// `account.disabled`, `account.recovered`; empty or absent: all.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Switched on (default true).
    pub enabled: Option<bool>,
}

/// A change to an endpoint (only the fields given).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChange {
    /// New URL.
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// Switched on or off.
    pub enabled: Option<bool>,
    /// New description; `null` removes it.
    #[serde(default, deserialize_with = "crate::service::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// A new signing secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    /// The `whsec_…` secret deliveries are signed with from now on.
    pub secret: String,
}

/// How many deliveries were queued again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Redelivered {
    /// Deliveries queued.
    pub queued: u64,
}

/// Which deliveries to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// Only this endpoint's.
    pub endpoint: Option<i64>,
    /// `pending`, `delivered` or `dead`.
    pub state: Option<String>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
    /// At most this many (default 50, at most 200).
    pub limit: Option<u64>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    /// The deliveries.
    pub items: Vec<WebhookDelivery>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<String>,
}

/// The tenant's webhook endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<WebhookEndpoint>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_webhooks(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
) -> Out<Vec<WebhookEndpoint>> {
    ok(state.service.webhooks(&s).await?)
}

/// Register an endpoint (admin scope). The signing secret is in the
/// answer, and only there.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn create_webhook(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Json(body): Json<NewWebhook>,
) -> ApiResult<Response> {
    let input = WebhookInput {
        url: body.url,
        event_types: body.event_types,
        description: body.description,
        enabled: body.enabled.unwrap_or(true),
    };
    created(state.service.create_webhook(&s, &input).await?)
}

/// One endpoint, with its state (`ok` or `failing`).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id")),
    responses((status = 200, body = WebhookEndpoint),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn get_webhook(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(endpoint): axum::extract::Path<String>,
) -> Out<WebhookEndpoint> {
    let endpoint = WebhookEndpointId(id(&endpoint, "webhook endpoint")?);
    ok(state.service.webhook(&s, endpoint).await?)
}

/// Change an endpoint's URL, event types, switch or description.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = WebhookChange,
    params(("id" = i64, Path, description = "Endpoint id")),
    responses((status = 200, body = WebhookEndpoint),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn update_webhook(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(endpoint): axum::extract::Path<String>,
    Json(change): Json<WebhookChange>,
) -> Out<WebhookEndpoint> {
    let endpoint = WebhookEndpointId(id(&endpoint, "webhook endpoint")?);
    let changes = EndpointChanges {
        url: change.url,
        event_types: change.event_types,
        enabled: change.enabled,
        description: change.description,
    };
    ok(state.service.update_webhook(&s, endpoint, &changes).await?)
}

/// Remove an endpoint and its deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id")),
    responses((status = 204),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn delete_webhook(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(endpoint): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    let endpoint = WebhookEndpointId(id(&endpoint, "webhook endpoint")?);
    state.service.delete_webhook(&s, endpoint).await?;
    no_content()
}

/// Give an endpoint a new signing secret (shown this once).
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id")),
    responses((status = 200, body = RotatedSecret),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn rotate_webhook_secret(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(endpoint): axum::extract::Path<String>,
) -> Out<RotatedSecret> {
    let endpoint = WebhookEndpointId(id(&endpoint, "webhook endpoint")?);
    let secret = state.service.rotate_webhook_secret(&s, endpoint).await?;
    ok(RotatedSecret {
        secret: secret.expose().to_owned(),
    })
}

/// Send every dead-lettered delivery of an endpoint again.
#[utoipa::path(post, path = "/v1/webhooks/{id}/redeliver-dead", tag = "webhooks",
    params(("id" = i64, Path, description = "Endpoint id")),
    responses((status = 200, body = Redelivered),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn redeliver_dead_webhooks(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(endpoint): axum::extract::Path<String>,
) -> Out<Redelivered> {
    let endpoint = WebhookEndpointId(id(&endpoint, "webhook endpoint")?);
    let queued = state.service.redeliver_dead_webhooks(&s, endpoint).await?;
    ok(Redelivered { queued })
}

/// Deliveries, newest first: pending ones with their next attempt,
/// delivered ones, and dead letters with their last error.
#[utoipa::path(get, path = "/v1/webhook-deliveries", tag = "webhooks", params(DeliveryFilter),
    responses((status = 200, body = DeliveryPage),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_webhook_deliveries(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Query(filter): Query<DeliveryFilter>,
) -> Out<DeliveryPage> {
    let limit = filter.limit.unwrap_or(50).clamp(1, 200);
    let delivery_state = match filter.state.as_deref() {
        None => None,
        Some(text) => Some(DeliveryState::parse(text).map_err(|_| {
            ApiError::invalid(
                "state",
                format!("{text:?}: expected pending, delivered or dead"),
            )
        })?),
    };
    let before = match filter.cursor.as_deref() {
        None => None,
        Some(c) => Some(WebhookDeliveryId(
            c.parse()
                .ok()
                .filter(|n: &i64| *n > 0)
                .ok_or_else(|| ApiError::invalid("cursor", "not a cursor this API returned"))?,
        )),
    };
    let query = DeliveryQuery {
        endpoint: filter.endpoint.map(WebhookEndpointId),
        state: delivery_state,
        before,
        limit,
    };
    let items = state.service.webhook_deliveries(&s, &query).await?;
    let next = (items.len() as u64 == limit)
        .then(|| items.last().map(|d| d.id.0.to_string()))
        .flatten();
    ok(DeliveryPage { items, next })
}

/// Send a dead or delivered delivery again, with a new retry window.
#[utoipa::path(post, path = "/v1/webhook-deliveries/{id}/redeliver", tag = "webhooks",
    params(("id" = i64, Path, description = "Delivery id")),
    responses((status = 200, body = WebhookDelivery),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn redeliver_webhook(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    axum::extract::Path(delivery): axum::extract::Path<String>,
) -> Out<WebhookDelivery> {
    let delivery = WebhookDeliveryId(id(&delivery, "webhook delivery")?);
    ok(state.service.redeliver_webhook(&s, delivery).await?)
}

// ---- provider presets and discovery ------------------------------------------

/// Which address to discover.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiscoverQuery {
    /// The e-mail address whose incoming servers to find.
    pub email: Option<String>,
}

/// The bundled provider presets (Gmail, Microsoft 365, …): servers, user
/// name, OAuth2 provider, notes.
#[utoipa::path(get, path = "/v1/providers", tag = "discovery",
    responses((status = 200, body = Vec<ProviderView>),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn list_providers(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
) -> Out<Vec<ProviderView>> {
    ok(state.service.providers(&s)?)
}

/// The incoming servers of an e-mail address: the bundled table, then DNS
/// SRV records (RFC 6186), then the domain's autoconfig document, then its
/// MX records (a domain hosted by a known provider), as far as the
/// operator allows (`--discovery`). The answer says which method found
/// them and every step tried; nothing found is a 404 problem listing the
/// steps. Needs the write scope (it makes outbound requests).
#[utoipa::path(get, path = "/v1/discover", tag = "discovery", params(DiscoverQuery),
    responses((status = 200, body = Discovered),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
async fn discover_settings(
    state: axum::extract::State<ApiState>,
    TenantCaller(s): TenantCaller,
    Query(query): Query<DiscoverQuery>,
) -> Out<Discovered> {
    // An absent address is refused by the service, after the scope check.
    let email = query.email.unwrap_or_default();
    ok(state.service.discover(&s, &email).await?)
}
