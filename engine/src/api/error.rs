//! Every error of the API as RFC 9457 `application/problem+json`, mapped in
//! this one place. Each class has a stable `type`; a refused field is named
//! in `errors`. Faults of the engine are logged and answered without
//! detail, so no SQL or path reaches a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::service::ServiceError;
use crate::store;

/// A problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI of the error class (`urn:intake:problem:not-found`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the class.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
    /// The refused fields, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One refused field.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as the request names it (`host`, `parties[3].email`).
    pub field: String,
    /// Why.
    pub detail: String,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    status: StatusCode,
    /// The class, the last part of the type URI.
    class: &'static str,
    /// The class's title.
    title: &'static str,
    /// The detail.
    detail: String,
    /// Refused fields.
    errors: Vec<FieldError>,
    /// Seconds to wait, for 429.
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, class: &'static str, title: &'static str, detail: String) -> Self {
        ApiError {
            status,
            class,
            title,
            detail,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 400: the body or query could not be read; `field` when known.
    pub fn bad_request(detail: impl Into<String>, field: Option<String>) -> Self {
        let detail = detail.into();
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "The request could not be read",
            detail.clone(),
        );
        if let Some(field) = field {
            e.errors.push(FieldError { field, detail });
        }
        e
    }

    /// 422: a field was refused.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let (field, detail) = (field.into(), detail.into());
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "A field was refused",
            format!("{field}: {detail}"),
        );
        e.errors.push(FieldError { field, detail });
        e
    }

    /// 404, for routes and for anything outside the caller's tenant.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            detail.into(),
        )
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this resource does not take that method".into(),
        )
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Request body too large",
            format!("the body may be at most {limit} bytes here"),
        )
    }

    /// 415.
    pub fn unsupported_media(expected: &str) -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("send Content-Type: {expected}"),
        )
    }

    /// 429, with the seconds until a request is accepted again.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("this token's request rate is exceeded; retry in {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// 500, the cause logged, not shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the engine failed to answer; the operator's log has the cause".into(),
        )
    }

    /// The problem document this error answers with.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:intake:problem:{}", self.class),
            title: self.title.into(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            errors: self.errors.clone(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthorized => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication needed",
                e.to_string(),
            ),
            ServiceError::Forbidden { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed with this token",
                e.to_string(),
            ),
            ServiceError::Invalid { field, reason } => ApiError::invalid(field, reason),
            ServiceError::Refused(detail) => ApiError::new(
                StatusCode::CONFLICT,
                "refused",
                "The request cannot be carried out",
                detail,
            ),
            ServiceError::Disabled(_) => ApiError::new(
                StatusCode::CONFLICT,
                "account-disabled",
                "The account is disabled",
                e.to_string(),
            ),
            ServiceError::NoKey => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-master-key",
                "The engine cannot open credentials",
                "this engine runs without a master key, so it cannot store or open credentials; \
                 the operator must set INTAKE_MASTER_KEY or --key-file"
                    .into(),
            ),
            ServiceError::NothingFound(detail) => ApiError::not_found(detail),
            ServiceError::Store(s) => s.into(),
            ServiceError::NoPipeline | ServiceError::Internal(_) => ApiError::internal(&e),
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound { .. } => ApiError::not_found(e.to_string()),
            store::Error::AlreadyExists { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "already-exists",
                "Already exists",
                e.to_string(),
            ),
            store::Error::InUse { .. } => {
                ApiError::new(StatusCode::CONFLICT, "in-use", "In use", e.to_string())
            }
            store::Error::Invalid { what, reason } => ApiError::invalid(what, reason),
            store::Error::WrongKey { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-master-key",
                "The engine cannot open credentials",
                "a stored credential does not open with this engine's master key".into(),
            ),
            other => ApiError::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"intake\""),
            );
        }
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// `Result` of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
