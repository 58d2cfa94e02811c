//! The admin console: server-rendered pages (askama) over the same service
//! layer as the CLI and the API, at `/` of `intake serve`.
//!
//! - **Signing in.** A tenant's API token (or the operator's admin
//!   credential and a tenant name) opens a session: a random id in an
//!   `HttpOnly`, `SameSite=Strict` cookie (`Secure` over TLS). Sessions live
//!   in this process for [`SESSION_TTL`]; behind a load balancer, keep a
//!   user on one engine.
//! - **Every page is the session's tenant's.** The [`Signed`] extractor
//!   yields the session's [`Scope`]; a handler cannot reach another tenant's
//!   data, by form or by URL, because every service call takes that scope.
//! - **Every form carries the session's CSRF token**, checked by the
//!   [`Posted`] extractor before the handler runs, with the `Origin` header.
//! - **Output is escaped everywhere** (askama's default for HTML); a
//!   message's HTML is sanitised (ammonia) and shown in a sandboxed frame
//!   whose own policy blocks scripts and remote images.
//! - **A strict Content-Security-Policy**: scripts, styles and frames from
//!   the engine itself only; htmx is vendored into the binary.

mod pages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::service::scope::OperatorKey;
use crate::service::{Scope, Service};

/// How long a session lasts without being used.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Sessions kept at once; the oldest go first beyond this.
const MAX_SESSIONS: usize = 10_000;

/// Largest form accepted (a plugin's JSON configuration is the largest).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// The session cookie's name.
pub const COOKIE: &str = "intake_console";

/// What the console needs to know about the service it runs in.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// The operator's admin credential, when one is configured.
    pub operator: Option<OperatorKey>,
    /// Served over TLS: cookies get `Secure`.
    pub tls: bool,
}

/// One signed-in user.
#[derive(Debug, Clone)]
struct Session {
    scope: Scope,
    csrf: String,
    last_used: Instant,
}

/// How long an OAuth2 sign-in may take, from the button to the provider's
/// answer.
const SIGN_IN_TTL: Duration = Duration::from_secs(600);

/// An OAuth2 sign-in under way, found again by its `state` when the
/// provider sends the browser back (that request is cross-site, so the
/// `SameSite=Strict` session cookie does not come with it).
#[derive(Debug, Clone)]
struct SignIn {
    scope: Scope,
    pending: crate::service::oauth::PendingAuthorization,
    started: Instant,
}

/// How long the steps of a Test settings run can be read back.
const TEST_RUN_TTL: Duration = Duration::from_secs(600);

/// Test settings runs one session may have under way at once.
const TEST_RUNS_PER_SESSION: usize = 4;

/// A Test settings run under way (or just over), whose steps the page
/// polls while they are made.
#[derive(Debug, Clone)]
struct TestRun {
    session: String,
    account: String,
    live: tokio::sync::watch::Receiver<crate::fetch::check::Live>,
    started: Instant,
}

/// The sessions of this process.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    sign_ins: Mutex<HashMap<String, SignIn>>,
    tests: Mutex<HashMap<String, TestRun>>,
}

impl Sessions {
    fn open(&self, scope: Scope) -> (String, String) {
        let id = crate::oauth::random_token(32);
        let csrf = crate::oauth::random_token(24);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.last_used.elapsed() < SESSION_TTL);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                scope,
                csrf: csrf.clone(),
                last_used: Instant::now(),
            },
        );
        (id, csrf)
    }

    fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.get_mut(id)?;
        if session.last_used.elapsed() >= SESSION_TTL {
            map.remove(id);
            return None;
        }
        session.last_used = Instant::now();
        Some(session.clone())
    }

    fn begin_sign_in(&self, scope: Scope, pending: crate::service::oauth::PendingAuthorization) {
        let mut map = self.sign_ins.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.started.elapsed() < SIGN_IN_TTL);
        if map.len() >= MAX_SESSIONS {
            return;
        }
        map.insert(
            pending.state.clone(),
            SignIn {
                scope,
                pending,
                started: Instant::now(),
            },
        );
    }

    /// The sign-in `state` belongs to, once: a second answer with the same
    /// state finds nothing.
    fn finish_sign_in(&self, state: &str) -> Option<SignIn> {
        let mut map = self.sign_ins.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(state)
            .filter(|s| s.started.elapsed() < SIGN_IN_TTL)
    }

    /// Keeps a Test settings run of `session` for reading back; `None`
    /// when the session already has as many under way as it may.
    fn begin_test(
        &self,
        session: &str,
        account: &str,
        live: tokio::sync::watch::Receiver<crate::fetch::check::Live>,
    ) -> Option<String> {
        let mut map = self.tests.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, t| t.started.elapsed() < TEST_RUN_TTL);
        let running = map
            .values()
            .filter(|t| t.session == session && !t.live.borrow().done)
            .count();
        if running >= TEST_RUNS_PER_SESSION || map.len() >= MAX_SESSIONS {
            return None;
        }
        let id = crate::oauth::random_token(16);
        map.insert(
            id.clone(),
            TestRun {
                session: session.to_owned(),
                account: account.to_owned(),
                live,
                started: Instant::now(),
            },
        );
        Some(id)
    }

    /// The steps so far of run `id`, if it is `session`'s run of `account`.
    fn test_progress(
        &self,
        session: &str,
        account: &str,
        id: &str,
    ) -> Option<crate::fetch::check::Live> {
        let map = self.tests.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .filter(|t| {
                t.session == session && t.account == account && t.started.elapsed() < TEST_RUN_TTL
            })
            .map(|t| t.live.borrow().clone())
    }

    fn close(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    service: Arc<Service>,
    config: Arc<ConsoleConfig>,
    sessions: Arc<Sessions>,
}

/// The console's routes, ready to merge into the service's router.
pub fn router(service: Arc<Service>, config: ConsoleConfig) -> Router {
    let state = ConsoleState {
        service,
        config: Arc::new(config),
        sessions: Arc::default(),
    };
    pages::routes()
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// The signed-in user of a page: the session's tenant scope and CSRF
/// token. Without a session, the page redirects to the sign-in page.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Whose data the page may show.
    pub scope: Scope,
    /// What every form of the page must carry.
    pub csrf: String,
    session: String,
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let id = session_id(&parts.headers);
        match id.as_deref().and_then(|id| state.sessions.get(id)) {
            Some(s) => Ok(Signed {
                scope: s.scope,
                csrf: s.csrf,
                session: id.unwrap_or_default(),
            }),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// A form posted by the signed-in user, its CSRF token checked (and the
/// `Origin`, when the browser sends one) before the handler sees it.
pub struct Posted<T> {
    /// Who posted it.
    pub user: Signed,
    /// The fields.
    pub form: T,
}

/// Whether a request's `Origin` (if any) is this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

impl<T: DeserializeOwned + Send> FromRequest<ConsoleState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let user = Signed::from_request_parts(&mut parts, state).await?;
        let refused = |why: &str| (StatusCode::FORBIDDEN, why.to_owned()).into_response();
        if !same_origin(&parts.headers) {
            return Err(refused("this form was posted from another site"));
        }
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response())?;
        let token = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !bool::from(token.as_bytes().ct_eq(user.csrf.as_bytes())) {
            return Err(refused(
                "this form has expired or was not sent by the console: reload the page",
            ));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("unreadable form: {e}"),
            )
                .into_response()
        })?;
        Ok(Posted { user, form })
    }
}

/// The console's policy: everything from the engine itself, nothing
/// inline, no framing by others. A handler may set its own (the message
/// frame does).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // `same-origin`, not `no-referrer`: with `no-referrer` browsers send
    // `Origin: null` on the console's own form posts, which the origin
    // check must refuse.
    set(header::REFERRER_POLICY, "same-origin");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::CACHE_CONTROL, "no-store");
    response
}

/// The `Set-Cookie` value opening a session.
fn session_cookie(id: &str, tls: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if tls { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value ending it.
fn cleared_cookie(tls: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if tls { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; intake_console=abc; b=2"),
        );
        assert_eq!(session_id(&headers).as_deref(), Some("abc"));
        assert!(session_cookie("x", true).contains("HttpOnly; SameSite=Strict"));
        assert!(session_cookie("x", true).ends_with("; Secure"));
        assert!(!session_cookie("x", false).contains("Secure"));
    }

    #[test]
    fn a_foreign_origin_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9465"));
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9465"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }
}
