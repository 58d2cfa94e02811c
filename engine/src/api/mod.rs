//! The HTTP API under `/v1`, served by `intake serve`: JSON over the
//! service layer, which enforces tenancy and access; handlers only read the
//! request, call the service and map its error ([`error`]) to
//! `application/problem+json`.
//!
//! - [`auth`]: the caller, from `Authorization: Bearer …` — a tenant's token,
//!   or the operator's credential (optionally acting in the tenant named by
//!   `Intake-Tenant`) — and a rate limit per token;
//! - [`extract`]: request bodies and queries with size limits and errors
//!   that name the field;
//! - [`routes`]: the handlers, each with its OpenAPI description;
//! - [`docs`]: `/v1/openapi.json` (generated from the handlers: a route and
//!   its description are registered together, so neither can miss one) and
//!   the documentation page, bundled in the binary.

pub mod auth;
pub mod docs;
pub mod error;
pub mod extract;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crate::service::{OperatorKey, Service};
pub use auth::RateLimit;
pub use error::{ApiError, Problem};

/// Settings of the API, validated once at start.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The operator's credential, if the operator may use the API.
    pub operator: Option<OperatorKey>,
    /// Requests per token.
    pub rate: RateLimit,
    /// The largest JSON body accepted.
    pub body_limit: usize,
    /// The largest plugin component accepted.
    pub upload_limit: usize,
    /// The longest a request may take, body included.
    pub request_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            operator: None,
            rate: RateLimit::default(),
            body_limit: 4 << 20,
            upload_limit: 32 << 20,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The service layer.
    pub service: Arc<Service>,
    /// The settings.
    pub config: Arc<ApiConfig>,
    /// Request budgets per token.
    pub limiter: Arc<auth::RateLimiter>,
    /// The OpenAPI document, serialised once.
    pub openapi: Arc<String>,
}

/// The API's routes (`/v1/...`), ready to merge into the service's router.
pub fn router(service: Arc<Service>, config: ApiConfig) -> Router {
    let (routes, openapi) = routes::routes().split_for_parts();
    let openapi = docs::finish(openapi);
    let state = ApiState {
        service,
        limiter: Arc::new(auth::RateLimiter::new(config.rate)),
        config: Arc::new(config),
        openapi: Arc::new(openapi.to_pretty_json().unwrap_or_default()),
    };
    let timeout = state.config.request_timeout;
    routes
        .merge(docs::routes())
        .fallback(|| async { ApiError::not_found("no such resource") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                use axum::response::IntoResponse;
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(response) => response,
                    Err(_) => ApiError::bad_request(
                        format!("the request took longer than {} s", timeout.as_secs()),
                        None,
                    )
                    .into_response(),
                }
            },
        ))
        .layer(axum::middleware::from_fn(docs::security_headers))
        .with_state(state)
}

/// The OpenAPI document, as the running service serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    docs::finish(routes::routes().split_for_parts().1)
}
