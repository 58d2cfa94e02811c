//! Request bodies and queries: read within a size limit, parsed so that a
//! refused value names its field (`parties[3].email`, `port`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, ApiState};

/// Reads the body, at most `limit` bytes.
async fn read(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return ApiError::too_large(limit);
                }
                source = err.source();
            }
            ApiError::bad_request(format!("cannot read the body: {e}"), None)
        })
}

fn content_type(req: &Request) -> &str {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Parses JSON; data errors name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let field = (path != ".").then_some(path);
            return Err(match inner.classify() {
                serde_json::error::Category::Data => {
                    ApiError::invalid(field.unwrap_or_else(|| "body".into()), inner.to_string())
                }
                _ => ApiError::bad_request(format!("the body is not valid JSON: {inner}"), field),
            });
        }
    };
    de.end()
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"), None))?;
    Ok(value)
}

/// A JSON body, at most the API's body limit.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<ApiState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        let ct = content_type(&req).to_ascii_lowercase();
        let media = ct.split(';').next().unwrap_or("").trim();
        if media != "application/json" && !media.ends_with("+json") {
            return Err(ApiError::unsupported_media("application/json"));
        }
        let bytes = read(req, state.config.body_limit).await?;
        parse_json(&bytes).map(Json)
    }
}

/// A plugin component's bytes, at most the API's upload limit.
#[derive(Debug)]
pub struct Wasm(pub Vec<u8>);

impl FromRequest<ApiState> for Wasm {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        let ct = content_type(&req).to_ascii_lowercase();
        let media = ct.split(';').next().unwrap_or("").trim();
        if media != "application/wasm" && media != "application/octet-stream" {
            return Err(ApiError::unsupported_media("application/wasm"));
        }
        Ok(Wasm(read(req, state.config.upload_limit).await?.to_vec()))
    }
}

/// A query string; a refused parameter is named.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError::invalid(
                    if path == "." { "query".into() } else { path },
                    e.into_inner().to_string(),
                )
            })
    }
}

/// A numeric id from the path; anything else is not found.
pub fn id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::not_found(format!("{what} {text:?} not found")))
}
