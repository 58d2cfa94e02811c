//! The service's HTTP side: `/metrics` (Prometheus text format), `/healthz`
//! (the process answers) and `/readyz` (the store answers and the scheduler
//! runs), with the HTTP API ([`crate::api`]) merged in by the supervisor.
//! Plain HTTP by default (on loopback unless told otherwise); TLS through
//! rustls when a certificate and key are given ([`TlsFiles`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::store::{HealthState, Store};

/// The process's Prometheus recorder, installed once (the `metrics` facade
/// has one global recorder).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 300.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&seconds)
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "intake_messages_total",
        "Messages ingested, by disposition (attached, create-lead, quarantined, discarded, unlinked, duplicate)"
    );
    metrics::describe_histogram!(
        "intake_plugin_call_seconds",
        metrics::Unit::Seconds,
        "Duration of one plugin call, by plugin and role"
    );
    metrics::describe_counter!(
        "intake_fetch_errors_total",
        "Failed account checks, by class (auth, tls, network, busy, protocol, plugin, store)"
    );
    metrics::describe_gauge!("intake_accounts", "Enabled accounts, by state");
    metrics::describe_histogram!(
        "intake_check_lag_seconds",
        metrics::Unit::Seconds,
        "How late scheduled checks start after they are due"
    );
    metrics::describe_gauge!("intake_idle_connections", "Open IMAP IDLE connections");
}

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The store (for `/readyz` and the account gauges).
    pub store: Store,
    /// The metrics.
    pub metrics: PrometheusHandle,
    /// Set while the scheduler runs.
    pub scheduling: Arc<AtomicBool>,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    // Accounts by state are read when scraped, so the gauge is never stale.
    match state.store.accounts_by_state().await {
        Ok(counts) => {
            for s in [
                HealthState::Ok,
                HealthState::BackingOff,
                HealthState::Disabled,
            ] {
                let n = counts.get(&s).copied().unwrap_or(0);
                metrics::gauge!("intake_accounts", "state" => s.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!("/metrics: cannot count accounts: {e}"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    if !state.scheduling.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "scheduler not running\n".to_string(),
        );
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store not answering: {e}\n"),
        ),
    }
}

/// How long a client has to send a request's head (and, on a kept-alive
/// connection, the next one) before the connection is closed.
const HEADER_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Connections served at once; more are closed as they arrive.
const MAX_CONNECTIONS: usize = 1024;

/// Serves `router` on `listener` until `shutdown`, over TLS when `tls` is
/// given. Each connection is its own task, so a slow or silent client
/// holds up nobody: it has [`HANDSHAKE_LIMIT`] for TLS and
/// [`HEADER_LIMIT`] for each request head (the API bounds the rest of a
/// request), and at most [`MAX_CONNECTIONS`] are open at once. On
/// shutdown, connections finish the request in flight and close.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let connections = tokio_util::task::TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait, not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "{MAX_CONNECTIONS} connections open: refusing one");
            continue;
        };
        let (router, tls, stop) = (router.clone(), tls.clone(), shutdown.clone());
        connections.spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(tcp, router, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => connection(stream, router, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves one connection (HTTP/1.1) until it closes or `stop`.
async fn connection<S>(stream: S, router: Router, stop: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_LIMIT)
        .keep_alive(true);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("HTTP connection ended: {e}");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// The private key.
    pub key: std::path::PathBuf,
}

impl TlsFiles {
    /// The acceptor for these files, with errors that name the file.
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| format!("cannot read the certificate {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!("no certificate in {}", self.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("cannot read the private key {}: {e}", self.key.display()))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                format!(
                    "the key {} does not fit the certificate {}: {e}",
                    self.key.display(),
                    self.cert.display()
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
    }
}

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds the listen address, with an error that says which.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
