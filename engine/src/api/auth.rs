//! The caller of a request, as extractors: a handler that takes
//! [`TenantCaller`] cannot run without a tenant scope, one that takes
//! [`OperatorCaller`] without the operator. Each request spends from its
//! token's budget ([`RateLimiter`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::{ApiError, ApiState};
use crate::service::{Principal, Scope, ServiceError};

/// The header the operator names a tenant with, to act in it.
pub const TENANT_HEADER: &str = "intake-tenant";

/// Requests per token: a steady rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests at once after a quiet spell.
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 50.0,
            burst: 200.0,
        }
    }
}

/// Token buckets, one per credential.
#[derive(Debug)]
pub struct RateLimiter {
    /// The limit.
    limit: RateLimit,
    /// Tokens left and when they were counted, per credential.
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before full ones are forgotten.
const BUCKETS_MAX: usize = 10_000;

impl RateLimiter {
    /// Buckets with `limit`.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one request of `key`'s budget, or says in how many seconds
    /// one is available.
    pub fn spend(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let RateLimit { per_second, burst } = self.limit;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= BUCKETS_MAX && !buckets.contains_key(key) {
            // A bucket that has refilled holds nothing worth keeping.
            buckets.retain(|_, (left, at)| {
                *left + now.duration_since(*at).as_secs_f64() * per_second < burst
            });
        }
        let (left, at) = buckets.entry(key.to_owned()).or_insert((burst, now));
        *left = (*left + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *left >= 1.0 {
            *left -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *left) / per_second).ceil().max(1.0) as u64)
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ServiceError::Unauthorized)?;
    let (kind, token) = value.split_once(' ').ok_or(ServiceError::Unauthorized)?;
    if !kind.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ServiceError::Unauthorized.into());
    }
    Ok(token.trim())
}

/// Whoever presented a valid credential.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let act_in = parts
            .headers
            .get(TENANT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let principal = state
            .service
            .authenticate(token, state.config.operator.as_ref(), act_in)
            .await?;
        let key = match &principal {
            Principal::Tenant(scope) => match scope.token() {
                Some(id) => format!("token:{id}"),
                None => "operator".into(),
            },
            Principal::Operator => "operator".into(),
        };
        state.limiter.spend(&key).map_err(ApiError::rate_limited)?;
        Ok(Caller(principal))
    }
}

/// A caller in a tenant: a tenant's token, or the operator acting in the
/// tenant its `Intake-Tenant` header names.
#[derive(Debug, Clone)]
pub struct TenantCaller(pub Scope);

impl FromRequestParts<ApiState> for TenantCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await?.0 {
            Principal::Tenant(scope) => Ok(TenantCaller(scope)),
            Principal::Operator => Err(ApiError::invalid(
                "Intake-Tenant",
                "the operator acts in a tenant by naming it in the Intake-Tenant header",
            )),
        }
    }
}

/// The operator, not acting in a tenant (tenant management). A tenant's
/// token is refused here; the service checks it again.
#[derive(Debug, Clone)]
pub struct OperatorCaller(pub Principal);

impl FromRequestParts<ApiState> for OperatorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await?.0 {
            Principal::Operator => Ok(OperatorCaller(Principal::Operator)),
            Principal::Tenant(_) => Err(ServiceError::Forbidden {
                needed: crate::store::TokenScope::Admin,
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_burst_and_says_when_to_retry() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 3.0,
        });
        for _ in 0..3 {
            assert!(limiter.spend("a").is_ok());
        }
        assert_eq!(limiter.spend("a"), Err(1));
        // Another token has its own budget.
        assert!(limiter.spend("b").is_ok());
    }
}
