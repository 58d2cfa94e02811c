//! A local OAuth2 authorization server for the tests: the authorization
//! endpoint (which signs in at once as the `login_hint` and redirects with
//! a code), the token endpoint (authorization code with PKCE, refresh
//! token) and RFC 7662 introspection, which Dovecot's `oauth2` passdb asks
//! whether an access token is valid. Tokens can be expired and refresh
//! tokens revoked, to test what the engine does then.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use sha2::Digest;

/// The client the tests register.
pub const CLIENT_ID: &str = "intake-test-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "intake-test-secret";

#[derive(Default)]
struct Inner {
    /// code → (user, PKCE challenge, redirect URI).
    codes: HashMap<String, (String, String, String)>,
    /// refresh token → (user, revoked).
    refresh: HashMap<String, (String, bool)>,
    /// access token → (user, expires).
    access: HashMap<String, (String, Instant)>,
    lifetime: Duration,
    next: u64,
    refreshes: usize,
    introspections: usize,
}

impl Inner {
    fn token(&mut self, kind: &str) -> String {
        self.next += 1;
        format!("{kind}-{}-{}", self.next, std::process::id())
    }

    fn issue_access(&mut self, user: &str) -> (String, u64) {
        let token = self.token("at");
        self.access.insert(
            token.clone(),
            (user.to_owned(), Instant::now() + self.lifetime),
        );
        (token, self.lifetime.as_secs())
    }
}

/// The running server; stops when dropped.
pub struct OAuthServer {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl OAuthServer {
    /// Starts on 127.0.0.1; access tokens live an hour until
    /// [`set_lifetime`](Self::set_lifetime) says otherwise.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            lifetime: Duration::from_secs(3600),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/introspect", post(introspect))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        OAuthServer { addr, inner, task }
    }

    /// `http://127.0.0.1:port`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The introspection endpoint, for Dovecot.
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.base())
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.inner.lock().unwrap().lifetime = lifetime;
    }

    /// A refresh token for `user`, as an earlier sign-in would have left.
    pub fn grant(&self, user: &str) -> String {
        let mut inner = self.inner.lock().unwrap();
        let token = inner.token("rt");
        inner
            .refresh
            .insert(token.clone(), (user.to_owned(), false));
        token
    }

    /// An access token for `user`.
    pub fn access_token(&self, user: &str) -> String {
        self.inner.lock().unwrap().issue_access(user).0
    }

    /// Makes every access token issued so far invalid.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for (_, until) in self.inner.lock().unwrap().access.values_mut() {
            *until = now;
        }
    }

    /// Revokes every refresh token of `user` (the user removed the app's
    /// access): refreshing then fails with `invalid_grant`.
    pub fn revoke(&self, user: &str) {
        for (owner, revoked) in self.inner.lock().unwrap().refresh.values_mut() {
            if owner == user {
                *revoked = true;
            }
        }
    }

    /// How many refresh-token grants were served.
    pub fn refreshes(&self) -> usize {
        self.inner.lock().unwrap().refreshes
    }

    /// How many introspection requests Dovecot made.
    pub fn introspections(&self) -> usize {
        self.inner.lock().unwrap().introspections
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn authorize(State(inner): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let field = |name: &str| q.get(name).cloned().unwrap_or_default();
    if field("client_id") != CLIENT_ID
        || field("response_type") != "code"
        || field("code_challenge_method") != "S256"
        || field("code_challenge").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let user = q
        .get("login_hint")
        .cloned()
        .unwrap_or_else(|| "alice".into());
    let redirect = field("redirect_uri");
    let mut inner = inner.lock().unwrap();
    let code = inner.token("code");
    inner.codes.insert(
        code.clone(),
        (user, field("code_challenge"), redirect.clone()),
    );
    let mut target = url::Url::parse(&redirect).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &field("state"));
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

async fn token(State(inner): Shared, body: Bytes) -> Response {
    let f = form(&body);
    let field = |name: &str| f.get(name).cloned().unwrap_or_default();
    let error = |code: &str| {
        json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": code, "error_description": format!("test server: {code}")}),
        )
    };
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "invalid_client"}),
        );
    }
    let mut inner = inner.lock().unwrap();
    let user = match field("grant_type").as_str() {
        "authorization_code" => {
            let Some((user, challenge, redirect)) = inner.codes.remove(&field("code")) else {
                return error("invalid_grant");
            };
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(field("code_verifier").as_bytes()));
            if computed != challenge || redirect != field("redirect_uri") {
                return error("invalid_grant");
            }
            user
        }
        "refresh_token" => match inner.refresh.get(&field("refresh_token")) {
            Some((user, false)) => {
                let user = user.clone();
                inner.refreshes += 1;
                user
            }
            _ => return error("invalid_grant"),
        },
        _ => return error("unsupported_grant_type"),
    };
    let (access, lifetime) = inner.issue_access(&user);
    let mut answer = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime,
    });
    if field("grant_type") == "authorization_code" {
        let refresh = inner.token("rt");
        inner.refresh.insert(refresh.clone(), (user, false));
        answer["refresh_token"] = refresh.into();
    }
    json(StatusCode::OK, answer)
}

async fn introspect(State(inner): Shared, body: Bytes) -> Response {
    let f = form(&body);
    let mut inner = inner.lock().unwrap();
    inner.introspections += 1;
    let token = f.get("token").cloned().unwrap_or_default();
    match inner.access.get(&token) {
        Some((user, until)) if *until > Instant::now() => json(
            StatusCode::OK,
            serde_json::json!({"active": "true", "username": user}),
        ),
        _ => json(StatusCode::OK, serde_json::json!({"active": "false"})),
    }
}
