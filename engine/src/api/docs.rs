//! The API's description: the OpenAPI 3.1 document generated from the
//! handlers, served at `/v1/openapi.json`, and a documentation page at
//! `/v1/docs` that renders it. The page and its script are in the binary
//! (`engine/assets/api-docs/`); nothing is loaded from elsewhere.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};

use super::ApiState;

const INDEX: &str = include_str!("../../assets/api-docs/index.html");
const SCRIPT: &str = include_str!("../../assets/api-docs/docs.js");
const STYLE: &str = include_str!("../../assets/api-docs/docs.css");

/// Adds what the handlers do not say: title, version, the bearer scheme.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("Intake API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "E-mail ingestion for CRMs: tenants and tokens, accounts, the directory of contacts \
             and leads, plugins, the inbox and the quarantine. Authenticate with \
             `Authorization: Bearer itk_…`; the operator acts in a tenant by naming it in \
             `Intake-Tenant`. Errors are RFC 9457 problem documents.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("itk_<lookup>_<secret>")
                .build(),
        ),
    );
    doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
        "token",
        Vec::<String>::new(),
    )]);
    doc
}

/// `/v1/openapi.json` and `/v1/docs`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/openapi.json", get(document))
        .route(
            "/v1/docs",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/v1/docs/docs.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/v1/docs/docs.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
}

async fn document(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_str().to_owned(),
    )
        .into_response()
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Headers every API response carries: nothing is sniffed, framed or
/// cached, and only the documentation page may run its own script.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let docs = req.uri().path().starts_with("/v1/docs");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let policy = if docs {
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'"
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    if !docs {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
