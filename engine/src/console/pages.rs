//! The console's pages: one handler per page or form, each a thin layer
//! over the service (parse the form, call the service with the session's
//! scope, render). Templates are in `engine/templates/console/`.

use std::collections::BTreeMap;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{ConsoleState, Posted, Signed, cleared_cookie, session_cookie};
use crate::domain::{Auth, FetchMode, Protocol, Security};
use crate::fetch::check;
use crate::service::accounts::{AccountPatch, AccountView};
use crate::service::messages::{MessageItem, MessageQuery, QuarantineQuery, Release};
use crate::service::{Principal, ServiceError};
use crate::store::ProxyConfig;

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/accounts") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/{file}", get(asset))
        .route("/accounts", get(accounts))
        .route("/accounts/new", get(new_account).post(create_account))
        .route(
            "/accounts/{name}/edit",
            get(edit_account).post(update_account),
        )
        .route("/accounts/{name}/check", post(check_now))
        .route("/accounts/{name}/enable", post(enable))
        .route("/accounts/{name}/disable", post(disable))
        .route("/accounts/{name}/test", get(test_page).post(run_test))
        .route("/accounts/{name}/test/{run}", get(test_progress))
        .route("/accounts/{name}/inbox", get(inbox))
        .route("/messages/{id}", get(message))
        .route("/messages/{id}/body", get(message_body))
        .route("/credentials", get(credentials).post(add_credential))
        .route("/credentials/authorize", post(authorize))
        .route("/oauth/callback", get(oauth_callback))
        .route("/contacts", get(contacts))
        .route("/contacts/import", post(import_contacts))
        .route("/plugins", get(plugins).post(upload_plugin))
        .route("/plugins/{name}/configure", post(configure_plugin))
        .route("/plugins/{name}/move", post(move_plugin))
        .route("/plugins/{name}/remove", post(remove_plugin))
        .route("/webhooks", get(webhooks).post(add_webhook))
        .route("/webhooks/deliveries/{id}/redeliver", post(redeliver))
        .route("/quarantine", get(quarantine))
        .route("/quarantine/{id}/release", post(release))
        .route("/quarantine/{id}/drop", post(drop_held))
}

// ---------------------------------------------------------------- helpers

/// A page rendered, or the error page.
fn page<T: Template>(template: T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("console template: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// A service error as a page: not found, refused, or a fault.
fn failure(user: &Signed, e: ServiceError) -> Response {
    let status = match &e {
        ServiceError::Store(crate::store::Error::NotFound { .. }) => StatusCode::NOT_FOUND,
        ServiceError::Forbidden { .. } => StatusCode::FORBIDDEN,
        ServiceError::Invalid { .. }
        | ServiceError::Refused(_)
        | ServiceError::Disabled(_)
        | ServiceError::Store(
            crate::store::Error::Invalid { .. }
            | crate::store::Error::AlreadyExists { .. }
            | crate::store::Error::InUse { .. },
        ) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("console: {e}");
        "something went wrong in the engine; the log has the details".to_string()
    } else {
        e.to_string()
    };
    page_with(
        status,
        ErrorPage {
            tenant: user.scope.tenant_name().to_owned(),
            csrf: user.csrf.clone(),
            message,
        },
    )
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "—".into())
}

/// Bounded, control-free text from mail or servers, for display.
fn shown(text: &str, cap: usize) -> String {
    crate::text::neutralize(&crate::text::bounded(text, cap)).into_owned()
}

/// Back to `path` with a notice shown at its top.
fn done(path: &str, notice: &str) -> Response {
    see_other(&format!("{path}?notice={}", seg(notice)))
}

/// A page with another status than 200 (a refused form shown again).
fn page_with<T: Template>(status: StatusCode, template: T) -> Response {
    let mut response = page(template);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A path segment (an account name) for a link.
fn seg(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    tenant: String,
    csrf: String,
    message: String,
}

// ---------------------------------------------------------------- assets

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "console.css" => (
            include_bytes!("../../assets/console/console.css"),
            "text/css",
        ),
        "console.js" => (
            include_bytes!("../../assets/console/console.js"),
            "text/javascript",
        ),
        "htmx.min.js" => (
            include_bytes!("../../assets/console/htmx-2.0.11.min.js"),
            "text/javascript",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(kind).unwrap_or(HeaderValue::from_static("text/plain")),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    error: Option<String>,
    operator: bool,
}

async fn login_page(State(state): State<ConsoleState>) -> Response {
    page(LoginPage {
        error: None,
        operator: state.config.operator.is_some(),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    tenant: String,
}

async fn login(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let refused = |message: &str| {
        page_with(
            StatusCode::UNAUTHORIZED,
            LoginPage {
                error: Some(message.to_owned()),
                operator: state.config.operator.is_some(),
            },
        )
    };
    if !super::same_origin(&headers) {
        return refused("this sign-in was posted from another site");
    }
    let tenant = form.tenant.trim();
    let principal = state
        .service
        .authenticate(
            form.token.trim(),
            state.config.operator.as_ref(),
            (!tenant.is_empty()).then_some(tenant),
        )
        .await;
    let scope = match principal {
        Ok(Principal::Tenant(scope)) => scope,
        Ok(Principal::Operator) => {
            return refused("the admin credential signs in to a tenant: name the tenant too");
        }
        Err(ServiceError::Store(crate::store::Error::NotFound { .. })) => {
            return refused("no such tenant");
        }
        Err(_) => return refused("that token is not valid (unknown, revoked or mistyped)"),
    };
    let (id, _) = state.sessions.open(scope);
    let mut response = see_other("/accounts");
    if let Ok(cookie) = HeaderValue::from_str(&session_cookie(&id, state.config.tls)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(State(state): State<ConsoleState>, posted: Posted<Empty>) -> Response {
    state.sessions.close(&posted.user.session);
    let mut response = see_other("/login");
    if let Ok(cookie) = HeaderValue::from_str(&cleared_cookie(state.config.tls)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

// ---------------------------------------------------------------- accounts

struct AccountRow {
    name: String,
    link: String,
    protocol: String,
    host: String,
    state: String,
    state_class: &'static str,
    last_check: String,
    last_error: String,
    next_check: String,
    enabled: bool,
    disabled: bool,
    /// Disabled because the OAuth2 grant was revoked: offer signing in.
    reauthorize: bool,
    credential: String,
    /// A check under way, in words (with how far it has got).
    activity: String,
    /// How far that check has got, for a progress bar: (done, total).
    progress: Option<(u64, u64)>,
    /// A check is under way or asked for: the page refreshes itself.
    busy: bool,
}

fn account_row(view: &AccountView) -> AccountRow {
    use crate::store::HealthState;
    let c = &view.config;
    let h = &view.health;
    let disabled = h.state == HealthState::Disabled;
    AccountRow {
        name: c.name.clone(),
        link: seg(&c.name),
        protocol: format!("{:?}", c.protocol).to_uppercase(),
        host: format!(
            "{}:{}",
            c.host,
            c.port.map_or_else(|| "default".into(), |p| p.to_string())
        ),
        state: shown(&view.state, 300),
        state_class: match (c.enabled, &h.state) {
            (false, _) => "off",
            (true, HealthState::Ok) => "ok",
            (true, HealthState::BackingOff) => "warn",
            (true, HealthState::Disabled) => "bad",
        },
        last_check: when(h.last_check_at),
        last_error: h
            .last_error
            .as_deref()
            .map(|e| {
                format!(
                    "{}: {}",
                    h.last_error_class.as_deref().unwrap_or("error"),
                    shown(e, 300)
                )
            })
            .unwrap_or_default(),
        next_check: if c.enabled && c.auto_check && !disabled {
            when(h.next_check_at.or(Some(Utc::now())))
        } else {
            "—".into()
        },
        enabled: c.enabled,
        reauthorize: disabled
            && h.disabled_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("re-authorize")),
        credential: c.credential.clone(),
        activity: view.activity.clone().unwrap_or_default(),
        progress: h
            .progress
            .filter(|_| view.activity.is_some())
            .map(|p| (p.done.min(p.total), p.total)),
        busy: view.activity.is_some() || (h.check_requested_at.is_some() && c.enabled && !disabled),
        disabled,
    }
}

#[derive(Template)]
#[template(path = "console/accounts.html")]
struct AccountsPage {
    tenant: String,
    csrf: String,
    accounts: Vec<AccountRow>,
    notice: Option<String>,
    /// Some account is being checked: the table refreshes itself.
    checking: bool,
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    notice: Option<String>,
}

async fn accounts(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(q): Query<Notice>,
) -> Response {
    match state.service.accounts(&user.scope).await {
        Ok(views) => {
            let accounts: Vec<AccountRow> = views.iter().map(account_row).collect();
            page(AccountsPage {
                tenant: user.scope.tenant_name().to_owned(),
                csrf: user.csrf.clone(),
                checking: accounts.iter().any(|a| a.busy),
                accounts,
                notice: q.notice.map(|n| shown(&n, 300)),
            })
        }
        Err(e) => failure(&user, e),
    }
}

/// The account form's fields, as text (what the user typed stays on a
/// refused form).
#[derive(Deserialize, Default, Clone)]
struct AccountFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    security: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    auth: String,
    #[serde(default)]
    verify_certificate: Option<String>,
    #[serde(default)]
    pinned_certificate: String,
    #[serde(default)]
    keep_on_server: Option<String>,
    #[serde(default)]
    auto_check: Option<String>,
    #[serde(default)]
    check_interval_secs: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    proxy_host: String,
    #[serde(default)]
    proxy_port: String,
    #[serde(default)]
    proxy_credential: String,
    #[serde(default)]
    folders: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    max_message_mb: String,
    #[serde(default)]
    batch_size: String,
}

impl AccountFields {
    fn from_view(view: &AccountView) -> Self {
        let c = &view.config;
        let on = |b: bool| b.then(|| "on".to_string());
        AccountFields {
            name: c.name.clone(),
            protocol: enum_text(c.protocol),
            host: c.host.clone(),
            port: c.port.map(|p| p.to_string()).unwrap_or_default(),
            security: enum_text(c.security),
            credential: c.credential.clone(),
            auth: enum_text(c.auth),
            verify_certificate: on(c.verify_certificate),
            pinned_certificate: c
                .pinned_certificate
                .map(|p| p.to_string())
                .unwrap_or_default(),
            keep_on_server: on(c.keep_on_server),
            auto_check: on(c.auto_check),
            check_interval_secs: c.check_interval_secs.to_string(),
            enabled: on(c.enabled),
            proxy_host: c.proxy.as_ref().map(|p| p.host.clone()).unwrap_or_default(),
            proxy_port: c
                .proxy
                .as_ref()
                .map(|p| p.port.to_string())
                .unwrap_or_default(),
            proxy_credential: c
                .proxy
                .as_ref()
                .and_then(|p| p.credential.clone())
                .unwrap_or_default(),
            folders: c.folders.join("\n"),
            mode: enum_text(c.mode),
            max_message_mb: (c.max_message_bytes >> 20).to_string(),
            batch_size: c.batch_size.to_string(),
        }
    }

    fn blank() -> Self {
        AccountFields {
            protocol: "imap".into(),
            security: "tls".into(),
            auth: "login".into(),
            verify_certificate: Some("on".into()),
            keep_on_server: Some("on".into()),
            auto_check: Some("on".into()),
            enabled: Some("on".into()),
            check_interval_secs: "300".into(),
            folders: "INBOX".into(),
            mode: "new".into(),
            max_message_mb: "50".into(),
            batch_size: "100".into(),
            ..AccountFields::default()
        }
    }

    /// The change these fields make; the first unreadable field is named.
    fn patch(&self) -> Result<AccountPatch, (String, String)> {
        fn choice<T: clap::ValueEnum>(field: &str, text: &str) -> Result<T, (String, String)> {
            T::from_str(text, true).map_err(|_| {
                (
                    field.to_owned(),
                    format!("choose one of the listed values, not {text:?}"),
                )
            })
        }
        fn number<T: std::str::FromStr>(field: &str, text: &str) -> Result<T, (String, String)> {
            text.trim().parse().map_err(|_| {
                (
                    field.to_owned(),
                    format!("a whole number, not {:?}", text.trim()),
                )
            })
        }
        let port = if self.port.trim().is_empty() {
            None
        } else {
            Some(number::<u16>("port", &self.port)?)
        };
        let proxy = if self.proxy_host.trim().is_empty() {
            None
        } else {
            Some(ProxyConfig {
                host: self.proxy_host.trim().to_owned(),
                port: if self.proxy_port.trim().is_empty() {
                    1080
                } else {
                    number("proxy.port", &self.proxy_port)?
                },
                credential: (!self.proxy_credential.trim().is_empty())
                    .then(|| self.proxy_credential.trim().to_owned()),
            })
        };
        let pin = if self.pinned_certificate.trim().is_empty() {
            None
        } else {
            Some(
                self.pinned_certificate
                    .parse()
                    .map_err(|e: crate::domain::BadPin| {
                        ("pinned_certificate".to_owned(), e.to_string())
                    })?,
            )
        };
        let protocol: Protocol = choice("protocol", &self.protocol)?;
        Ok(AccountPatch {
            protocol: Some(protocol),
            host: Some(self.host.trim().to_owned()),
            port: Some(port),
            security: Some(choice::<Security>("security", &self.security)?),
            credential: Some(self.credential.trim().to_owned()),
            auth: Some(choice::<Auth>("auth", &self.auth)?),
            verify_certificate: Some(self.verify_certificate.is_some()),
            pinned_certificate: Some(pin),
            keep_on_server: Some(self.keep_on_server.is_some()),
            folders: (protocol == Protocol::Imap).then(|| {
                self.folders
                    .split(['\n', ','])
                    .map(|f| f.trim().to_owned())
                    .filter(|f| !f.is_empty())
                    .collect()
            }),
            mode: Some(choice::<FetchMode>("mode", &self.mode)?),
            max_message_bytes: Some(
                number::<u64>("max_message_mb", &self.max_message_mb)?.saturating_mul(1 << 20),
            ),
            first_sync_count: None,
            first_sync_since: None,
            auto_check: Some(self.auto_check.is_some()),
            check_interval_secs: Some(number("check_interval_secs", &self.check_interval_secs)?),
            enabled: Some(self.enabled.is_some()),
            proxy: Some(proxy),
            batch_size: Some(number("batch_size", &self.batch_size)?),
            ca_file: None,
        })
    }
}

fn enum_text<T: clap::ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "console/account_form.html")]
struct AccountForm {
    tenant: String,
    csrf: String,
    /// `None` for a new account; else its current name.
    editing: Option<String>,
    action: String,
    f: AccountFields,
    errors: BTreeMap<String, String>,
    credentials: Vec<String>,
}

impl AccountForm {
    fn error(&self, field: &str) -> &str {
        self.errors.get(field).map(String::as_str).unwrap_or("")
    }

    fn checked(&self, value: &Option<String>) -> bool {
        value.is_some()
    }
}

async fn credential_names(state: &ConsoleState, user: &Signed) -> Vec<String> {
    state
        .service
        .credentials(&user.scope)
        .await
        .map(|c| c.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

/// How a new account's form is filled before the user edits it.
#[derive(Deserialize, Default)]
struct FillFrom {
    /// A preset's id.
    #[serde(default)]
    provider: Option<String>,
    /// An address to discover the servers of.
    #[serde(default)]
    email: Option<String>,
}

/// The form's protocol, host, port, security (and name, sign-in) from the
/// best of `servers`.
fn fill_fields(f: &mut AccountFields, servers: &[crate::discover::ServerSettings], oauth2: bool) {
    let mut patch = AccountPatch::default();
    if crate::service::discover::fill(&mut patch, servers).is_some() {
        if let Some(p) = patch.protocol {
            f.protocol = enum_text(p);
        }
        if let Some(h) = patch.host {
            f.host = h;
        }
        if let Some(Some(port)) = patch.port {
            f.port = port.to_string();
        }
        if let Some(sec) = patch.security {
            f.security = enum_text(sec);
        }
    }
    if oauth2 {
        f.auth = "xoauth2".into();
    }
}

async fn new_account(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(from): Query<FillFrom>,
) -> Response {
    let credentials = credential_names(&state, &user).await;
    let mut f = AccountFields::blank();
    let mut found: Vec<String> = Vec::new();
    let mut errors = BTreeMap::new();
    let providers = state.service.providers(&user.scope).unwrap_or_default();
    if let Some(id) = from.provider.as_deref().filter(|p| !p.is_empty()) {
        match providers.iter().find(|p| p.id == id) {
            Some(p) => {
                fill_fields(&mut f, &p.servers, false);
                found.push(format!("Filled from the {} preset.", p.name));
                if let Some(oauth) = p.oauth2 {
                    found.push(format!(
                        "{} signs in with OAuth2 ({}): sign the mailbox in on the Credentials page, then choose that credential and OAuth2.",
                        p.name,
                        oauth.as_str()
                    ));
                }
                found.extend(p.notes.iter().map(|n| shown(n, 500)));
            }
            None => {
                errors.insert("provider".to_string(), "unknown provider".to_string());
            }
        }
    } else if let Some(email) = from.email.as_deref().filter(|e| !e.trim().is_empty()) {
        f.name = email.trim().to_owned();
        match state.service.discover(&user.scope, email.trim()).await {
            Ok(d) => {
                fill_fields(&mut f, &d.servers, false);
                found.push(format!(
                    "Found by {} ({}).",
                    d.method.describe(),
                    shown(&d.source, 300)
                ));
                if let Some(user_name) = d.servers.first().and_then(|s| s.username.clone()) {
                    found.push(format!(
                        "The server expects the user name {}.",
                        shown(&user_name, 200)
                    ));
                }
                if let Some(oauth) = d.oauth2 {
                    found.push(format!(
                        "This mailbox signs in with OAuth2 ({}): sign it in on the Credentials page.",
                        oauth.as_str()
                    ));
                }
                found.extend(d.notes.iter().map(|n| shown(n, 500)));
            }
            Err(ServiceError::Invalid { reason, .. }) => {
                errors.insert("email".to_string(), reason);
            }
            Err(e) => {
                errors.insert("email".to_string(), shown(&e.to_string(), 1000));
            }
        }
    }
    page(NewAccountPage {
        tenant: user.scope.tenant_name().to_owned(),
        csrf: user.csrf.clone(),
        editing: None,
        action: "/accounts/new".into(),
        f,
        errors: BTreeMap::new(),
        credentials,
        providers: providers
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect(),
        chosen: from.provider.unwrap_or_default(),
        email: from.email.unwrap_or_default(),
        found,
        fill_errors: errors,
    })
}

#[derive(Template)]
#[template(path = "console/account_new.html")]
struct NewAccountPage {
    tenant: String,
    csrf: String,
    editing: Option<String>,
    action: String,
    f: AccountFields,
    errors: BTreeMap<String, String>,
    credentials: Vec<String>,
    providers: Vec<(String, String)>,
    chosen: String,
    email: String,
    found: Vec<String>,
    fill_errors: BTreeMap<String, String>,
}

impl NewAccountPage {
    fn fill_error(&self, field: &str) -> &str {
        self.fill_errors
            .get(field)
            .map(String::as_str)
            .unwrap_or("")
    }

    fn error(&self, field: &str) -> &str {
        self.errors.get(field).map(String::as_str).unwrap_or("")
    }

    fn checked(&self, value: &Option<String>) -> bool {
        value.is_some()
    }
}

async fn edit_account(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(name): Path<String>,
) -> Response {
    let view = match state.service.account(&user.scope, &name).await {
        Ok(v) => v,
        Err(e) => return failure(&user, e),
    };
    let credentials = credential_names(&state, &user).await;
    page(AccountForm {
        tenant: user.scope.tenant_name().to_owned(),
        csrf: user.csrf.clone(),
        action: format!("/accounts/{}/edit", seg(&name)),
        editing: Some(name),
        f: AccountFields::from_view(&view),
        errors: BTreeMap::new(),
        credentials,
    })
}

async fn refused_form(
    state: &ConsoleState,
    user: &Signed,
    editing: Option<String>,
    f: AccountFields,
    field: String,
    reason: String,
) -> Response {
    let credentials = credential_names(state, user).await;
    let action = match &editing {
        Some(name) => format!("/accounts/{}/edit", seg(name)),
        None => "/accounts/new".into(),
    };
    let mut errors = BTreeMap::new();
    // Nested fields (`proxy.port`) are shown at their input.
    errors.insert(field.replace('.', "_"), reason);
    page_with(
        StatusCode::UNPROCESSABLE_ENTITY,
        AccountForm {
            tenant: user.scope.tenant_name().to_owned(),
            csrf: user.csrf.clone(),
            editing,
            action,
            f,
            errors,
            credentials,
        },
    )
}

async fn save_account(
    state: ConsoleState,
    posted: Posted<AccountFields>,
    editing: Option<String>,
) -> Response {
    let Posted { user, form } = posted;
    let patch = match form.patch() {
        Ok(p) => p,
        Err((field, reason)) => {
            return refused_form(&state, &user, editing, form, field, reason).await;
        }
    };
    let result = match &editing {
        None => {
            state
                .service
                .create_account(&user.scope, form.name.trim(), &patch)
                .await
        }
        Some(name) => {
            state
                .service
                .update_account(&user.scope, name, &patch)
                .await
        }
    };
    match result {
        Ok(change) => {
            let mut notice = format!("saved {}", change.account.config.name);
            for w in &change.warnings {
                notice.push_str("; ");
                notice.push_str(w);
            }
            done("/accounts", &notice)
        }
        Err(ServiceError::Invalid { field, reason }) => {
            refused_form(&state, &user, editing, form, field, reason).await
        }
        Err(ServiceError::Store(e @ crate::store::Error::AlreadyExists { .. })) => {
            refused_form(&state, &user, editing, form, "name".into(), e.to_string()).await
        }
        Err(ServiceError::Store(e @ crate::store::Error::NotFound { .. }))
            if e.to_string().contains("credential") =>
        {
            refused_form(
                &state,
                &user,
                editing,
                form,
                "credential".into(),
                e.to_string(),
            )
            .await
        }
        Err(e) => failure(&user, e),
    }
}

async fn create_account(
    State(state): State<ConsoleState>,
    posted: Posted<AccountFields>,
) -> Response {
    save_account(state, posted, None).await
}

async fn update_account(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    posted: Posted<AccountFields>,
) -> Response {
    save_account(state, posted, Some(name)).await
}

async fn check_now(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    posted: Posted<Empty>,
) -> Response {
    let user = posted.user;
    match state.service.request_check(&user.scope, &name).await {
        Ok(_) => done(
            "/accounts",
            &format!("{name}: a check was asked for; it runs within seconds"),
        ),
        Err(e) => failure(&user, e),
    }
}

async fn enable(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    posted: Posted<Empty>,
) -> Response {
    let user = posted.user;
    match state.service.enable_account(&user.scope, &name).await {
        Ok(_) => done("/accounts", &format!("{name} is on")),
        Err(e) => failure(&user, e),
    }
}

async fn disable(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    posted: Posted<Empty>,
) -> Response {
    let user = posted.user;
    let patch = AccountPatch {
        enabled: Some(false),
        ..AccountPatch::default()
    };
    match state
        .service
        .update_account(&user.scope, &name, &patch)
        .await
    {
        Ok(_) => done("/accounts", &format!("{name} is off")),
        Err(e) => failure(&user, e),
    }
}

// ---------------------------------------------------------------- test settings

struct StepRow {
    name: String,
    class: &'static str,
    mark: &'static str,
    detail: String,
    hint: String,
}

impl StepRow {
    fn of(s: &check::Step) -> StepRow {
        StepRow {
            name: s.name.to_owned(),
            class: match (s.ok, s.hint.is_some()) {
                (false, _) => "bad",
                (true, true) => "warn",
                (true, false) => "ok",
            },
            mark: match (s.ok, s.hint.is_some()) {
                (false, _) => "failed",
                (true, true) => "warning",
                (true, false) => "passed",
            },
            detail: shown(&s.detail, 2000),
            hint: s
                .hint
                .as_deref()
                .map(|h| shown(h, 2000))
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/test.html")]
struct TestPage {
    tenant: String,
    csrf: String,
    name: String,
    link: String,
    steps: Vec<StepRow>,
    /// The step under way, while the run is shown as it goes.
    running: Option<&'static str>,
    /// The run being shown as it goes (polled until it is over).
    run: Option<String>,
    ran: bool,
    ok: bool,
}

impl TestPage {
    fn new(user: &Signed, name: String) -> TestPage {
        TestPage {
            tenant: user.scope.tenant_name().to_owned(),
            csrf: user.csrf.clone(),
            link: seg(&name),
            name,
            steps: Vec::new(),
            running: None,
            run: None,
            ran: false,
            ok: false,
        }
    }

    /// The page for a run as far as it has got.
    fn live(mut self, live: &check::Live, run: String) -> TestPage {
        self.steps = live.steps.iter().map(StepRow::of).collect();
        self.running = live.running;
        self.ok = live.done && live.steps.iter().all(|s| s.ok);
        self.ran = live.done;
        self.run = (!live.done).then_some(run);
        self
    }
}

async fn test_page(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(name): Path<String>,
) -> Response {
    if let Err(e) = state.service.account(&user.scope, &name).await {
        return failure(&user, e);
    }
    page(TestPage::new(&user, name))
}

/// Runs Test settings. From the page's script (htmx), the check runs on a
/// task of its own and the answer shows its first steps, then polls
/// [`test_progress`] until it is over, so each step shows as it is made.
/// Without the script, the form waits for the whole report.
async fn run_test(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    posted: Posted<Empty>,
) -> Response {
    let user = posted.user;
    if !headers.contains_key("hx-request") {
        return match state.service.test_account(&user.scope, &name).await {
            Ok(report) => {
                let mut page_ = TestPage::new(&user, name);
                page_.steps = report.steps.iter().map(StepRow::of).collect();
                page_.ran = true;
                page_.ok = report.ok();
                page(page_)
            }
            Err(e) => failure(&user, e),
        };
    }
    // Refusals (no such account, a read-only token) answer at once.
    if let Err(e) = state.service.account(&user.scope, &name).await {
        return failure(&user, e);
    }
    if let Err(e) = user.scope.require(crate::store::TokenScope::Write) {
        return failure(&user, e);
    }
    let (sender, receiver) = tokio::sync::watch::channel(check::Live::default());
    let Some(run) = state
        .sessions
        .begin_test(&user.session, &name, receiver.clone())
    else {
        return failure(
            &user,
            ServiceError::Refused(
                "Test settings is already running several times for this session: wait for one to end"
                    .into(),
            ),
        );
    };
    {
        let service = state.service.clone();
        let scope = user.scope.clone();
        let name = name.clone();
        tokio::spawn(async move {
            if let Err(e) = service
                .test_account_live(&scope, &name, sender.clone())
                .await
            {
                let report = check::Report::failed_at(
                    "settings",
                    e.to_string(),
                    "the account could not be read: reload the page",
                );
                check::finish_live(&sender, &report);
            }
        });
    }
    // The first steps (resolving the host) usually take a moment.
    let mut first = receiver;
    let _ = tokio::time::timeout(Duration::from_millis(300), first.changed()).await;
    let live = first.borrow().clone();
    page(TestPage::new(&user, name).live(&live, run))
}

/// The steps a Test settings run has made so far; the page polls it.
async fn test_progress(
    State(state): State<ConsoleState>,
    user: Signed,
    Path((name, run)): Path<(String, String)>,
) -> Response {
    match state.sessions.test_progress(&user.session, &name, &run) {
        Some(live) => page(TestPage::new(&user, name).live(&live, run)),
        None => failure(
            &user,
            ServiceError::Store(crate::store::Error::NotFound {
                what: "test run",
                name: run,
            }),
        ),
    }
}

// ---------------------------------------------------------------- inbox

struct MessageRow {
    id: i64,
    date: String,
    from: String,
    subject: String,
    parties: String,
    disposition: &'static str,
    decided_by: String,
}

fn message_row(item: &MessageItem) -> MessageRow {
    use crate::store::MessageStatus;
    let m = &item.summary;
    MessageRow {
        id: m.id.0,
        date: when(m.date.or(Some(m.created_at))),
        from: shown(m.from.as_deref().unwrap_or("(no sender)"), 200),
        subject: shown(m.subject.as_deref().unwrap_or("(no subject)"), 300),
        parties: m
            .parties
            .iter()
            .map(|p| {
                let name = p.name.as_deref().unwrap_or("");
                let kind = format!("{:?}", p.kind).to_lowercase();
                shown(
                    &if name.is_empty() {
                        format!("{} ({kind})", p.email)
                    } else {
                        format!("{name} <{}> ({kind})", p.email)
                    },
                    200,
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        disposition: match (&m.status, m.parties.is_empty()) {
            (MessageStatus::Quarantined, _) => "quarantined",
            (_, false) => "linked",
            (_, true) => "unlinked",
        },
        decided_by: m.decided_by.clone().unwrap_or_else(|| "—".into()),
    }
}

#[derive(Template)]
#[template(path = "console/inbox.html")]
struct InboxPage {
    tenant: String,
    csrf: String,
    account: String,
    link: String,
    messages: Vec<MessageRow>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct PageQuery {
    #[serde(default)]
    cursor: Option<String>,
}

async fn inbox(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    // An account the tenant does not have is not found, not empty.
    if let Err(e) = state.service.account(&user.scope, &name).await {
        return failure(&user, e);
    }
    let query = MessageQuery {
        account: Some(name.clone()),
        cursor: q.cursor,
        limit: Some(50),
        ..MessageQuery::default()
    };
    match state.service.messages(&user.scope, &query).await {
        Ok(found) => page(InboxPage {
            tenant: user.scope.tenant_name().to_owned(),
            csrf: user.csrf.clone(),
            link: seg(&name),
            account: name,
            messages: found.items.iter().map(message_row).collect(),
            next: found.next,
        }),
        Err(e) => failure(&user, e),
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    tenant: String,
    csrf: String,
    row: MessageRow,
    account: String,
    link: String,
    headers: Vec<(String, String)>,
    text: String,
    has_html: bool,
    attachments: Vec<(String, String, String)>,
    /// How the chain decided it, one row per plugin (`message explain`).
    steps: Vec<ChainStepRow>,
}

/// A plugin's part in a message's decision, as the message page shows it.
struct ChainStepRow {
    plugin: String,
    role: String,
    result: String,
    time: String,
    component: String,
    config_version: String,
    decided: bool,
}

/// Longest text body shown.
const MAX_TEXT_CHARS: usize = 200_000;

async fn message(State(state): State<ConsoleState>, user: Signed, Path(id): Path<i64>) -> Response {
    let item = match state.service.message(&user.scope, id).await {
        Ok(m) => m,
        Err(e) => return failure(&user, e),
    };
    let raw = match state.service.raw_message(&user.scope, id).await {
        Ok(r) => r,
        Err(e) => return failure(&user, e),
    };
    let steps = match state.service.explain(&user.scope, id).await {
        Ok(e) => e
            .steps
            .into_iter()
            .map(|s| ChainStepRow {
                time: format!("{} µs", s.micros),
                component: s.component_sha256.chars().take(12).collect(),
                plugin: s.plugin,
                role: s.role,
                result: match s.error {
                    Some(error) => shown(&format!("{}: {error}", s.result), 300),
                    None => s.result,
                },
                config_version: s.config_version,
                decided: s.decided,
            })
            .collect(),
        Err(e) => return failure(&user, e),
    };
    let parsed = mail_parser::MessageParser::default().parse(&raw);
    let mut headers = Vec::new();
    let mut text = String::new();
    let mut has_html = false;
    let mut attachments = Vec::new();
    if let Some(m) = &parsed {
        for h in m.headers().iter().take(100) {
            let name = h.name.as_str();
            if [
                "from",
                "to",
                "cc",
                "date",
                "subject",
                "reply-to",
                "message-id",
            ]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
            {
                let value = m
                    .header_raw(name)
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default();
                headers.push((name.to_owned(), shown(&value, 1000)));
            }
        }
        text = m
            .body_text(0)
            .map(|t| shown(&t, MAX_TEXT_CHARS))
            .unwrap_or_default();
        // mail-parser offers the text body as HTML when there is none; only
        // a real text/html part gets the frame.
        has_html = m.html_part(0).is_some_and(|p| p.is_text_html());
        for part in m.attachments().take(200) {
            use mail_parser::MimeHeaders;
            let name = part.attachment_name().unwrap_or("(unnamed)");
            let kind = part
                .content_type()
                .map(|c| match c.subtype() {
                    Some(sub) => format!("{}/{sub}", c.ctype()),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_default();
            attachments.push((shown(name, 200), shown(&kind, 100), human_size(part.len())));
        }
    }
    let account = item.account_name.clone().unwrap_or_default();
    page(MessagePage {
        tenant: user.scope.tenant_name().to_owned(),
        csrf: user.csrf.clone(),
        row: message_row(&item),
        link: seg(&account),
        account,
        headers,
        text,
        has_html,
        attachments,
        steps,
    })
}

fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The policy of the frame a message's HTML is shown in: no scripts, no
/// requests at all (remote images stay blocked), inline styles only, and
/// the frame is sandboxed even if opened on its own.
const MESSAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                           frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox";

/// Largest HTML body sanitised and shown.
const MAX_HTML_BYTES: usize = 2 << 20;

async fn message_body(
    State(state): State<ConsoleState>,
    user: Signed,
    Path(id): Path<i64>,
) -> Response {
    let raw = match state.service.raw_message(&user.scope, id).await {
        Ok(r) => r,
        Err(e) => return failure(&user, e),
    };
    let html = mail_parser::MessageParser::default()
        .parse(&raw)
        .filter(|m| m.html_part(0).is_some_and(|p| p.is_text_html()))
        .and_then(|m| m.body_html(0).map(|h| h.into_owned()))
        .unwrap_or_default();
    let html = crate::text::bounded(&html, MAX_HTML_BYTES);
    let clean = sanitize(&html);
    let document = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"></head><body>{clean}</body></html>"
    );
    (
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(MESSAGE_CSP),
            ),
            (
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("SAMEORIGIN"),
            ),
        ],
        Html(document),
    )
        .into_response()
}

/// A message's HTML with everything active removed: scripts, event
/// handlers, `javascript:` links, styles (CSS can hide or fake content),
/// forms, frames; links open nothing of ours.
pub(crate) fn sanitize(html: &str) -> String {
    let mut builder = ammonia::Builder::default();
    builder
        .url_schemes(
            ["http", "https", "mailto", "cid", "data"]
                .into_iter()
                .collect(),
        )
        .link_rel(Some("noopener noreferrer nofollow"))
        // Remote images (trackers) are removed, not only blocked by the
        // frame's policy: no request is even attempted.
        .attribute_filter(|element, attribute, value| {
            let remote = element == "img"
                && attribute == "src"
                && !(value.starts_with("data:") || value.starts_with("cid:"));
            (!remote).then(|| value.into())
        })
        .strip_comments(true);
    builder.clean(html).to_string()
}

// ---------------------------------------------------------------- credentials

struct CredentialRow {
    name: String,
    user: String,
    kind: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/credentials.html")]
struct CredentialsPage {
    tenant: String,
    csrf: String,
    rows: Vec<CredentialRow>,
    providers: Vec<String>,
    notice: Option<String>,
    problem: Option<String>,
    /// Prefilled sign-in fields (re-authorizing a credential).
    again: Option<(String, String, String)>,
}

#[derive(Deserialize, Default)]
struct CredentialsQuery {
    #[serde(default)]
    notice: Option<String>,
    /// A credential to sign in again.
    #[serde(default)]
    reauthorize: Option<String>,
}

async fn credentials_page(
    state: &ConsoleState,
    user: &Signed,
    notice: Option<String>,
    problem: Option<String>,
    again: Option<String>,
) -> Response {
    let infos = match state.service.credentials(&user.scope).await {
        Ok(c) => c,
        Err(e) => return failure(user, e),
    };
    let providers = state
        .service
        .oauth_providers(&user.scope)
        .await
        .map(|p| p.into_iter().map(|p| p.name).collect())
        .unwrap_or_default();
    let again = again.and_then(|name| {
        infos.iter().find(|i| i.name == name).map(|i| {
            (
                i.name.clone(),
                i.username.clone(),
                i.oauth_provider.clone().unwrap_or_default(),
            )
        })
    });
    let rows = infos
        .into_iter()
        .map(|i| CredentialRow {
            kind: match &i.oauth_provider {
                Some(p) => format!("OAuth2 ({p})"),
                None => "password".into(),
            },
            detail: i
                .access_expires_at
                .map(|t| format!("access token valid until {}", when(Some(t))))
                .unwrap_or_default(),
            name: i.name,
            user: shown(&i.username, 200),
        })
        .collect();
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page_with(
        status,
        CredentialsPage {
            tenant: user.scope.tenant_name().to_owned(),
            csrf: user.csrf.clone(),
            rows,
            providers,
            notice: notice.map(|n| shown(&n, 500)),
            problem: problem.map(|p| shown(&p, 1000)),
            again,
        },
    )
}

async fn credentials(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(q): Query<CredentialsQuery>,
) -> Response {
    credentials_page(&state, &user, q.notice, None, q.reauthorize).await
}

#[derive(Deserialize)]
struct NewCredential {
    name: String,
    username: String,
    secret: String,
}

async fn add_credential(
    State(state): State<ConsoleState>,
    posted: Posted<NewCredential>,
) -> Response {
    let Posted { user, form } = posted;
    let secret = crate::domain::Secret::new(form.secret);
    match state
        .service
        .add_credential(&user.scope, form.name.trim(), form.username.trim(), &secret)
        .await
    {
        Ok(()) => done(
            "/credentials",
            &format!("stored credential {} (encrypted)", form.name.trim()),
        ),
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::Store(_))) => {
            credentials_page(&state, &user, None, Some(e.to_string()), None).await
        }
        Err(e) => failure(&user, e),
    }
}

#[derive(Deserialize)]
struct SignInForm {
    provider: String,
    name: String,
    username: String,
}

/// Where the provider sends the browser back: this engine's own address,
/// as the browser reached it.
fn callback_uri(state: &ConsoleState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = if state.config.tls { "https" } else { "http" };
    format!("{scheme}://{host}/oauth/callback")
}

async fn authorize(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    posted: Posted<SignInForm>,
) -> Response {
    let Posted { user, form } = posted;
    let redirect = callback_uri(&state, &headers);
    match state
        .service
        .begin_authorization(
            &user.scope,
            form.name.trim(),
            form.username.trim(),
            form.provider.trim(),
            &redirect,
        )
        .await
    {
        Ok(pending) => {
            let url = pending.url.clone();
            state.sessions.begin_sign_in(user.scope.clone(), pending);
            see_other(&url)
        }
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::Store(_))) => {
            credentials_page(&state, &user, None, Some(e.to_string()), None).await
        }
        Err(e) => failure(&user, e),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/signed_in.html")]
struct SignedInPage {
    ok: bool,
    message: String,
}

/// The provider's answer. The browser arrives from the provider's site,
/// so the session cookie is not sent: the `state` finds the sign-in (and
/// its tenant), once.
async fn oauth_callback(
    State(state): State<ConsoleState>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let answer = |ok: bool, message: String| {
        let mut r = page(SignedInPage { ok, message });
        if !ok {
            *r.status_mut() = StatusCode::BAD_REQUEST;
        }
        r
    };
    let Some(sign_in) = q
        .state
        .as_deref()
        .and_then(|s| state.sessions.finish_sign_in(s))
    else {
        return answer(
            false,
            "This answer belongs to no sign-in in progress (it expired, was used, or was not started here): start again from the Credentials page.".into(),
        );
    };
    if let Some(error) = q.error {
        return answer(
            false,
            format!(
                "{} did not sign the mailbox in: {}",
                sign_in.pending.provider,
                shown(&error, 200)
            ),
        );
    }
    let Some(code) = q.code else {
        return answer(false, "The provider's answer carries no code.".into());
    };
    let presented = sign_in.pending.state.clone();
    match state
        .service
        .complete_authorization(&sign_in.scope, &sign_in.pending, &code, &presented)
        .await
    {
        Ok(info) => answer(
            true,
            format!(
                "{} is signed in with {}: credential {} is stored, encrypted, and its accounts are switched back on.",
                shown(&info.username, 200),
                sign_in.pending.provider,
                info.name
            ),
        ),
        Err(e) => answer(false, shown(&e.to_string(), 1000)),
    }
}

// ---------------------------------------------------------------- plugins

struct PluginRow {
    name: String,
    link: String,
    role: String,
    enabled: bool,
    config: String,
    deadline_ms: u64,
    memory_mb: usize,
    on_error: String,
    size: String,
    /// The active version, and the canary if one runs.
    version: String,
    first: bool,
    last: bool,
    /// The outbound HTTP allow-list, shown (changed by the CLI or API).
    outbound: Vec<String>,
    /// The secrets' names (never their values).
    secrets: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/plugins.html")]
struct PluginsPage {
    tenant: String,
    csrf: String,
    plugins: Vec<PluginRow>,
    notice: Option<String>,
    problem: Option<String>,
}

async fn plugins_page(
    state: &ConsoleState,
    user: &Signed,
    notice: Option<String>,
    problem: Option<String>,
) -> Response {
    let views = match state.service.plugins(&user.scope).await {
        Ok(v) => v,
        Err(e) => return failure(user, e),
    };
    let count = views.len();
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page_with(
        status,
        PluginsPage {
            tenant: user.scope.tenant_name().to_owned(),
            csrf: user.csrf.clone(),
            plugins: views
                .into_iter()
                .enumerate()
                .map(|(i, v)| PluginRow {
                    link: seg(&v.name),
                    role: v.role,
                    enabled: v.enabled,
                    config: serde_json::to_string_pretty(&v.config).unwrap_or_default(),
                    deadline_ms: v.deadline_ms,
                    memory_mb: v.memory_mb,
                    on_error: v.on_error,
                    size: human_size(v.size),
                    version: match &v.canary {
                        None => format!("version {}", v.version),
                        Some(c) => format!(
                            "version {}; canary: version {} for {} % of the mail{}",
                            v.version,
                            c.version,
                            c.share_percent,
                            if c.accounts.is_empty() {
                                String::new()
                            } else {
                                format!(" and all of {}", c.accounts.join(", "))
                            }
                        ),
                    },
                    first: i == 0,
                    last: i + 1 == count,
                    outbound: v.allowed_outbound_hosts,
                    secrets: v.secrets,
                    name: v.name,
                })
                .collect(),
            notice: notice.map(|n| shown(&n, 500)),
            problem: problem.map(|p| shown(&p, 2000)),
        },
    )
}

async fn plugins(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(q): Query<Notice>,
) -> Response {
    plugins_page(&state, &user, q.notice, None).await
}

/// Largest component accepted from the console (the API's default).
const MAX_COMPONENT_BYTES: usize = 32 << 20;

/// A component uploaded as `multipart/form-data`: the CSRF token and origin
/// are checked before anything is stored.
async fn upload_plugin(
    State(state): State<ConsoleState>,
    user: Signed,
    headers: HeaderMap,
    form: axum::extract::Multipart,
) -> Response {
    let (fields, wasm) =
        match multipart_form(&user, &headers, form, "component", MAX_COMPONENT_BYTES).await {
            Ok(read) => read,
            Err(response) => return response,
        };
    let name = fields
        .get("name")
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    let config = fields
        .get("config")
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "{}".into());
    let settings = crate::service::plugins::PluginSettings {
        role: fields.get("role").cloned(),
        ..Default::default()
    };
    if wasm.is_empty() {
        return plugins_page(
            &state,
            &user,
            None,
            Some("choose a component file (.wasm)".into()),
        )
        .await;
    }
    match state
        .service
        .add_plugin(&user.scope, &name, wasm, &config, &settings)
        .await
    {
        Ok(view) => done(
            "/plugins",
            &format!("added {} at the end of the chain", view.name),
        ),
        Err(
            e @ (ServiceError::Invalid { .. } | ServiceError::Store(_) | ServiceError::Refused(_)),
        ) => plugins_page(&state, &user, None, Some(e.to_string())).await,
        Err(e) => failure(&user, e),
    }
}

#[derive(Deserialize)]
struct ConfigureForm {
    config: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    deadline_ms: String,
    #[serde(default)]
    memory_mb: String,
    #[serde(default)]
    on_error: String,
}

async fn configure_plugin(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    posted: Posted<ConfigureForm>,
) -> Response {
    let Posted { user, form } = posted;
    let number = |field: &str, text: &str| -> Result<Option<u64>, String> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            text.trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("invalid {field}: a whole number, not {:?}", text.trim()))
        }
    };
    let (deadline_ms, memory_mb) = match (
        number("deadline_ms", &form.deadline_ms),
        number("memory_mb", &form.memory_mb),
    ) {
        (Ok(d), Ok(m)) => (d, m.map(|m| m as usize)),
        (Err(e), _) | (_, Err(e)) => return plugins_page(&state, &user, None, Some(e)).await,
    };
    let settings = crate::service::plugins::PluginSettings {
        role: None,
        deadline_ms,
        memory_mb,
        on_error: Some(form.on_error.trim().to_owned()).filter(|o| !o.is_empty()),
    };
    match state
        .service
        .configure_plugin(
            &user.scope,
            &name,
            Some(form.config.trim()),
            &settings,
            // The outbound grant and secrets are set with the command line
            // or the API; the console shows them (names only).
            &crate::service::plugins::OutboundSettings::default(),
            Some(form.enabled.is_some()),
        )
        .await
    {
        Ok(_) => done(
            "/plugins",
            &format!("saved {name}; it applies from the next check"),
        ),
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::Refused(_))) => {
            plugins_page(&state, &user, None, Some(format!("{name}: {e}"))).await
        }
        Err(e) => failure(&user, e),
    }
}

#[derive(Deserialize)]
struct MoveForm {
    direction: String,
}

async fn move_plugin(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    posted: Posted<MoveForm>,
) -> Response {
    let Posted { user, form } = posted;
    let mut names: Vec<String> = match state.service.plugins(&user.scope).await {
        Ok(v) => v.into_iter().map(|p| p.name).collect(),
        Err(e) => return failure(&user, e),
    };
    let Some(at) = names.iter().position(|n| *n == name) else {
        return failure(
            &user,
            ServiceError::Store(crate::store::Error::NotFound {
                what: "plugin",
                name: name.clone(),
            }),
        );
    };
    match form.direction.as_str() {
        "up" if at > 0 => names.swap(at, at - 1),
        "down" if at + 1 < names.len() => names.swap(at, at + 1),
        _ => {}
    }
    match state.service.order_plugins(&user.scope, &names).await {
        Ok(_) => done("/plugins", &format!("moved {name}")),
        Err(e) => failure(&user, e),
    }
}

async fn remove_plugin(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    posted: Posted<Empty>,
) -> Response {
    let user = posted.user;
    match state.service.remove_plugin(&user.scope, &name).await {
        Ok(()) => done("/plugins", &format!("removed {name}")),
        Err(e) => failure(&user, e),
    }
}

// ---------------------------------------------------------------- contacts

struct PartyRow {
    id: String,
    kind: String,
    name: String,
    email: String,
    company: String,
    external_id: String,
}

#[derive(Template)]
#[template(path = "console/contacts.html")]
struct ContactsPage {
    tenant: String,
    csrf: String,
    notice: Option<String>,
    problem: Option<String>,
    q: String,
    kind: String,
    parties: Vec<PartyRow>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct ContactsQuery {
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

async fn contacts(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(q): Query<ContactsQuery>,
) -> Response {
    use crate::directory::PartyKind;
    let kind = match q.kind.as_deref() {
        Some("contact") => Some(PartyKind::Contact),
        Some("lead") => Some(PartyKind::Lead),
        _ => None,
    };
    let query = crate::service::directory::PartyQuery {
        kind,
        q: q.q.clone().filter(|t| !t.trim().is_empty()),
        cursor: q.cursor.clone(),
        limit: Some(100),
        ..Default::default()
    };
    match state.service.parties(&user.scope, &query).await {
        Ok(found) => page(ContactsPage {
            tenant: user.scope.tenant_name().to_owned(),
            csrf: user.csrf.clone(),
            notice: q.notice.map(|n| shown(&n, 500)),
            problem: None,
            q: q.q.unwrap_or_default(),
            kind: q.kind.unwrap_or_default(),
            parties: found
                .items
                .into_iter()
                .map(|p| PartyRow {
                    id: p.id,
                    kind: format!("{:?}", p.kind).to_lowercase(),
                    name: shown(p.name.as_deref().unwrap_or(""), 200),
                    email: shown(&p.email, 200),
                    company: shown(p.company.as_deref().unwrap_or(""), 200),
                    external_id: shown(p.external_id.as_deref().unwrap_or(""), 200),
                })
                .collect(),
            next: found.next,
        }),
        Err(e) => failure(&user, e),
    }
}

/// Reads a multipart form whose CSRF token matches the session's: the
/// text fields, and the bytes of the file field `file_field` (at most
/// `max` bytes). An error is the response to send.
async fn multipart_form(
    user: &Signed,
    headers: &HeaderMap,
    mut form: axum::extract::Multipart,
    file_field: &str,
    max: usize,
) -> Result<(BTreeMap<String, String>, Vec<u8>), Response> {
    if !super::same_origin(headers) {
        return Err((
            StatusCode::FORBIDDEN,
            "this form was posted from another site",
        )
            .into_response());
    }
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        (StatusCode::BAD_REQUEST, format!("unreadable upload: {e}")).into_response()
    };
    let mut fields = BTreeMap::new();
    let mut file = Vec::new();
    while let Some(mut field) = form.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            if bytes.len() + chunk.len() > max {
                return Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the upload is larger than {} KiB", max / 1024),
                )
                    .into_response());
            }
            bytes.extend_from_slice(&chunk);
        }
        if name == file_field {
            file = bytes;
        } else if bytes.len() <= 256 * 1024 {
            fields.insert(name, String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    let token = fields.get("csrf").map(String::as_str).unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        token.as_bytes(),
        user.csrf.as_bytes(),
    )) {
        return Err((
            StatusCode::FORBIDDEN,
            "this form has expired or was not sent by the console: reload the page",
        )
            .into_response());
    }
    Ok((fields, file))
}

/// Largest CSV accepted from the console.
const MAX_CSV_BYTES: usize = 16 << 20;

async fn import_contacts(
    State(state): State<ConsoleState>,
    user: Signed,
    headers: HeaderMap,
    form: axum::extract::Multipart,
) -> Response {
    let (_, csv) = match multipart_form(&user, &headers, form, "csv", MAX_CSV_BYTES).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    match state
        .service
        .import_parties_csv(&user.scope, "the uploaded file", &csv)
        .await
    {
        Ok(summary) => done(
            "/contacts",
            &format!(
                "imported: {} created, {} updated, {} unchanged",
                summary.created, summary.updated, summary.unchanged
            ),
        ),
        Err(e @ ServiceError::Invalid { .. }) => page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            ContactsPage {
                tenant: user.scope.tenant_name().to_owned(),
                csrf: user.csrf.clone(),
                notice: None,
                problem: Some(shown(&e.to_string(), 1000)),
                q: String::new(),
                kind: String::new(),
                parties: Vec::new(),
                next: None,
            },
        ),
        Err(e) => failure(&user, e),
    }
}

// ---------------------------------------------------------------- webhooks

struct EndpointRow {
    id: i64,
    url: String,
    events: String,
    state: String,
    state_class: &'static str,
    failing: String,
}

struct DeliveryRow {
    id: i64,
    endpoint: i64,
    event_type: String,
    state: String,
    attempts: u32,
    last: String,
    next: String,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    tenant: String,
    csrf: String,
    endpoints: Vec<EndpointRow>,
    deliveries: Vec<DeliveryRow>,
    notice: Option<String>,
    problem: Option<String>,
}

async fn webhooks_page(
    state: &ConsoleState,
    user: &Signed,
    notice: Option<String>,
    problem: Option<String>,
) -> Response {
    use crate::store::webhooks::{DeliveryQuery, DeliveryState, EndpointState};
    let endpoints = match state.service.webhooks(&user.scope).await {
        Ok(e) => e,
        Err(e) => return failure(user, e),
    };
    // What needs attention: deliveries not (yet) delivered.
    let mut deliveries = Vec::new();
    for wanted in [DeliveryState::Dead, DeliveryState::Pending] {
        let query = DeliveryQuery {
            endpoint: None,
            state: Some(wanted),
            before: None,
            limit: 50,
        };
        match state.service.webhook_deliveries(&user.scope, &query).await {
            Ok(found) => deliveries.extend(found),
            Err(e) => return failure(user, e),
        }
    }
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page_with(
        status,
        WebhooksPage {
            tenant: user.scope.tenant_name().to_owned(),
            csrf: user.csrf.clone(),
            endpoints: endpoints
                .into_iter()
                .map(|e| EndpointRow {
                    id: e.id.0,
                    url: shown(&e.url, 500),
                    events: if e.event_types.is_empty() {
                        "all".into()
                    } else {
                        e.event_types.join(", ")
                    },
                    state: if e.enabled {
                        e.state.as_str().to_owned()
                    } else {
                        "off".into()
                    },
                    state_class: match (e.enabled, e.state) {
                        (false, _) => "off",
                        (true, EndpointState::Ok) => "ok",
                        (true, EndpointState::Failing) => "bad",
                    },
                    failing: e
                        .failing_since
                        .map(|t| {
                            format!(
                                "{} failures in a row since {}",
                                e.consecutive_failures,
                                when(Some(t))
                            )
                        })
                        .unwrap_or_default(),
                })
                .collect(),
            deliveries: deliveries
                .into_iter()
                .map(|d| DeliveryRow {
                    id: d.id.0,
                    endpoint: d.endpoint.0,
                    event_type: d.event_type,
                    state: d.state.as_str().to_owned(),
                    attempts: d.attempts,
                    last: match (d.last_status, d.last_error) {
                        (Some(status), _) => format!("HTTP {status}"),
                        (None, Some(e)) => shown(&e, 300),
                        (None, None) => "—".into(),
                    },
                    next: when(d.next_attempt_at),
                })
                .collect(),
            notice: notice.map(|n| shown(&n, 500)),
            problem: problem.map(|p| shown(&p, 1000)),
        },
    )
}

async fn webhooks(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(q): Query<Notice>,
) -> Response {
    webhooks_page(&state, &user, q.notice, None).await
}

#[derive(Deserialize)]
struct NewWebhook {
    url: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
}

async fn add_webhook(State(state): State<ConsoleState>, posted: Posted<NewWebhook>) -> Response {
    let Posted { user, form } = posted;
    let input = crate::service::webhooks::WebhookInput {
        url: form.url.trim().to_owned(),
        event_types: form
            .events
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        description: Some(form.description.trim().to_owned()).filter(|d| !d.is_empty()),
        enabled: true,
    };
    match state.service.create_webhook(&user.scope, &input).await {
        // The signing secret is shown once, on this page only.
        Ok(created) => {
            webhooks_page(
                &state,
                &user,
                Some(format!(
                    "added {}; its signing secret, shown only now: {}",
                    created.endpoint.url,
                    created.secret.expose()
                )),
                None,
            )
            .await
        }
        Err(
            e @ (ServiceError::Invalid { .. }
            | ServiceError::Store(crate::store::Error::Invalid { .. })),
        ) => webhooks_page(&state, &user, None, Some(e.to_string())).await,
        Err(e) => failure(&user, e),
    }
}

async fn redeliver(
    State(state): State<ConsoleState>,
    Path(id): Path<i64>,
    posted: Posted<Empty>,
) -> Response {
    let user = posted.user;
    let id = crate::store::WebhookDeliveryId(id);
    match state.service.redeliver_webhook(&user.scope, id).await {
        Ok(_) => done("/webhooks", &format!("delivery {} queued again", id.0)),
        Err(e) => failure(&user, e),
    }
}

// ---------------------------------------------------------------- quarantine

struct HeldRow {
    row: MessageRow,
    reason: String,
    plugin: String,
    held: String,
    /// For a deferred message (a plugin failed temporarily): when the
    /// account's runs try it again, and which attempt that is.
    retry: Option<String>,
}

#[derive(Template)]
#[template(path = "console/quarantine.html")]
struct QuarantinePage {
    tenant: String,
    csrf: String,
    held: Vec<HeldRow>,
    notice: Option<String>,
}

async fn quarantine(
    State(state): State<ConsoleState>,
    user: Signed,
    Query(q): Query<Notice>,
) -> Response {
    let query = QuarantineQuery {
        limit: Some(100),
        ..QuarantineQuery::default()
    };
    match state.service.quarantined(&user.scope, &query).await {
        Ok(found) => page(QuarantinePage {
            tenant: user.scope.tenant_name().to_owned(),
            csrf: user.csrf.clone(),
            held: found
                .items
                .iter()
                .map(|e| HeldRow {
                    row: message_row(&MessageItem {
                        summary: e.message.clone(),
                        account_name: None,
                    }),
                    reason: shown(&e.reason, 500),
                    plugin: e.plugin.clone().unwrap_or_else(|| "—".into()),
                    held: when(Some(e.quarantined_at)),
                    retry: e
                        .next_attempt_at
                        .filter(|_| e.kind == crate::store::deferred::TEMPORARY)
                        .map(|at| format!("attempt {} from {}", e.attempts + 1, when(Some(at)))),
                })
                .collect(),
            notice: q.notice.map(|n| shown(&n, 300)),
        }),
        Err(e) => failure(&user, e),
    }
}

#[derive(Deserialize)]
struct ReleaseForm {
    action: String,
    #[serde(default)]
    emails: String,
}

async fn release(
    State(state): State<ConsoleState>,
    Path(id): Path<i64>,
    posted: Posted<ReleaseForm>,
) -> Response {
    let Posted { user, form } = posted;
    let how = match form.action.as_str() {
        "rerun" => Release::Rerun,
        "unlinked" => Release::Unlinked,
        "attach" => Release::Attach {
            party_ids: Vec::new(),
            emails: form
                .emails
                .split([',', '\n', ' '])
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect(),
        },
        _ => {
            return failure(
                &user,
                ServiceError::Invalid {
                    field: "action".into(),
                    reason: "attach, rerun or unlinked".into(),
                },
            );
        }
    };
    match state.service.release(&user.scope, id, &how).await {
        Ok(released) => done(
            "/quarantine",
            &format!(
                "message {id} released{}",
                released
                    .decided_by
                    .map(|p| format!(" (decided by {p})"))
                    .unwrap_or_default()
            ),
        ),
        Err(e) => failure(&user, e),
    }
}

async fn drop_held(
    State(state): State<ConsoleState>,
    Path(id): Path<i64>,
    posted: Posted<Empty>,
) -> Response {
    let user = posted.user;
    match state.service.drop_quarantined(&user.scope, id).await {
        Ok(()) => done("/quarantine", &format!("message {id} dropped")),
        Err(e) => failure(&user, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_html_is_inert() {
        let dirty = r#"<p onclick="x()">hi<script>alert(1)</script>
            <a href="javascript:alert(2)">a</a><img src="x" onerror="alert(3)">
            <style>body{display:none}</style><iframe src="https://evil.example"></iframe>
            <form action="https://evil.example"><input name=p></form>
            <div style="position:fixed;top:0">fake</div></p>"#;
        let clean = sanitize(dirty);
        for bad in [
            "script",
            "onclick",
            "onerror",
            "javascript:",
            "<style",
            "iframe",
            "<form",
            "style=",
        ] {
            assert!(!clean.contains(bad), "{bad} in {clean}");
        }
        assert!(clean.contains("hi") && clean.contains("fake"), "{clean}");
        let images = sanitize(
            r#"<img src="https://tracker.example/p.png" alt="t"><img src="data:image/png;base64,AA==">"#,
        );
        assert!(
            !images.contains("tracker.example") && images.contains("data:image/png"),
            "{images}"
        );
    }
}
