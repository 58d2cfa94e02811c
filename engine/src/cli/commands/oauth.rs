//! `intake oauth`: the operator's OAuth2 providers (add, list, remove), and
//! `intake credential authorize`: "Sign in with …" from a terminal, with a
//! one-shot listener on loopback for the provider's redirect (the way
//! command-line tools sign in to Google and Microsoft).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::service::oauth::{PendingAuthorization, ProviderSpec};
use crate::service::{Scope, Service};
use crate::store::ProviderKind;

#[derive(Debug, Subcommand)]
pub(crate) enum OAuthCommand {
    /// Add or replace a provider: the OAuth2 client the operator registered
    /// with Google, Microsoft or another provider. Endpoints and scopes
    /// default to the kind's. The client secret comes from
    /// --client-secret-env (none for a public client).
    Add {
        /// Name credentials refer to (e.g. google).
        name: String,
        /// google, microsoft or generic.
        #[arg(long, value_enum)]
        kind: ProviderKind,
        /// The client id the provider issued.
        #[arg(long)]
        client_id: String,
        /// Read the client secret from this environment variable.
        #[arg(long, value_name = "VAR")]
        client_secret_env: Option<String>,
        /// Authorization endpoint (default: the kind's).
        #[arg(long)]
        auth_url: Option<String>,
        /// Token endpoint (default: the kind's).
        #[arg(long)]
        token_url: Option<String>,
        /// Scope to ask for (repeatable; default: the kind's mail scopes).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// The providers (never secrets).
    List,
    /// Remove a provider; credentials authorized with it stop working.
    Remove {
        /// Provider name.
        name: String,
    },
}

pub(crate) async fn oauth(
    c: &Config,
    cmd: OAuthCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        OAuthCommand::List => OpenMode::Existing,
        _ => OpenMode::Create,
    };
    let (store, _) = open(c, mode).await?;
    match cmd {
        OAuthCommand::Add {
            name,
            kind,
            client_id,
            client_secret_env,
            auth_url,
            token_url,
            scopes,
        } => {
            let client_secret = client_secret_env
                .as_deref()
                .map(secret_from_env)
                .transpose()?;
            let key = master_key_for_storing(c, &store).await?;
            let info = Service::admin(store)
                .with_master_key(key)
                .put_oauth_provider(ProviderSpec {
                    name,
                    kind,
                    client_id,
                    client_secret,
                    auth_url,
                    token_url,
                    scopes,
                })
                .await?;
            writeln!(
                out,
                "stored OAuth2 provider {} ({}, client {}{}); scopes: {}",
                info.name,
                info.kind.as_str(),
                info.client_id,
                if info.has_secret {
                    ", secret encrypted"
                } else {
                    ", public client"
                },
                info.scopes.join(" ")
            )?;
        }
        OAuthCommand::List => {
            writeln!(
                out,
                "{:<16} {:<10} {:<40} TOKEN ENDPOINT",
                "NAME", "KIND", "CLIENT ID"
            )?;
            for p in store.oauth_providers().await? {
                writeln!(
                    out,
                    "{:<16} {:<10} {:<40} {}",
                    safe(&p.name),
                    p.kind.as_str(),
                    safe(&p.client_id),
                    safe(&p.token_url)
                )?;
            }
        }
        OAuthCommand::Remove { name } => {
            store.remove_oauth_provider(&name).await?;
            writeln!(out, "removed OAuth2 provider {name}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `intake credential authorize`.
#[derive(Debug, Args)]
pub(crate) struct Authorize {
    /// Credential name (new, or one to authorize again).
    name: String,
    /// The provider to sign in with (`intake oauth list`).
    #[arg(long)]
    provider: String,
    /// The mailbox's address (its login name).
    #[arg(long)]
    user: String,
    /// Port of the one-shot listener on 127.0.0.1 the provider redirects
    /// to (0: any free port; some providers want a registered one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Give up waiting for the sign-in after this many seconds.
    #[arg(long, default_value_t = 300)]
    wait_secs: u64,
}

/// Longest request the redirect listener reads.
const MAX_REDIRECT_REQUEST: usize = 16 * 1024;

pub(crate) async fn authorize(
    c: &Config,
    args: Authorize,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(c, OpenMode::Create).await?;
    let key = master_key_for_storing(c, &store).await?;
    let service = Service::admin(store).with_master_key(key);
    let scope = Scope::local(tenant, &c.tenant);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let redirect_uri = format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr()?.port()
    );
    let pending = service
        .begin_authorization(
            &scope,
            &args.name,
            &args.user,
            &args.provider,
            &redirect_uri,
        )
        .await?;
    writeln!(
        out,
        "open this address in a browser and sign in as {}:\n{}",
        args.user, pending.url
    )?;
    out.flush()?;
    let (code, state) = tokio::time::timeout(
        Duration::from_secs(args.wait_secs),
        wait_for_redirect(&listener, &pending),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "no sign-in came back within {} s: run the command again",
            args.wait_secs
        )
    })??;
    let info = service
        .complete_authorization(&scope, &pending, &code, &state)
        .await?;
    writeln!(
        out,
        "stored credential {} for {} (OAuth2 with {}, refresh token encrypted{})",
        info.name,
        safe(&info.username),
        args.provider,
        info.access_expires_at
            .map(|at| format!(
                "; access token valid until {}",
                at.format("%Y-%m-%d %H:%M UTC")
            ))
            .unwrap_or_default()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Serves the redirect listener until a request brings `code` and `state`
/// (or the provider's `error`); anything else gets a 404 and is ignored.
async fn wait_for_redirect(
    listener: &tokio::net::TcpListener,
    pending: &PendingAuthorization,
) -> anyhow::Result<(String, String)> {
    loop {
        let (mut socket, _) = listener.accept().await?;
        let mut request = Vec::new();
        let mut buf = [0u8; 2048];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await?;
                if n == 0 || request.len() + n > MAX_REDIRECT_REQUEST {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            std::io::Result::Ok(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            continue;
        }
        let line = String::from_utf8_lossy(&request);
        let target = line
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let Some(query) = target.strip_prefix("/callback?") else {
            let _ = socket
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        };
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let (status, page, result) = match (get("code"), get("state"), get("error")) {
            (_, _, Some(error)) => (
                "400 Bad Request",
                "The sign-in was not completed. You can close this tab.",
                Err(anyhow::anyhow!(
                    "{} refused the sign-in: {}",
                    pending.provider,
                    safe(&crate::text::bounded(&error, 200))
                )),
            ),
            (Some(code), Some(state), None) => (
                "200 OK",
                "Intake has the authorization. You can close this tab.",
                Ok((code, state)),
            ),
            _ => (
                "400 Bad Request",
                "This is not a sign-in answer.",
                Err(anyhow::anyhow!(
                    "the redirect carried neither a code nor an error"
                )),
            ),
        };
        let body = format!("<!doctype html><title>Intake</title><p>{page}</p>\n");
        let _ = socket
            .write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        let _ = socket.shutdown().await;
        return result;
    }
}
