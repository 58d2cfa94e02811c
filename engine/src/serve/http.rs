//! The service's HTTP side: `/metrics` (Prometheus text format), `/healthz`
//! (the process answers) and `/readyz` (the store answers and the scheduler
//! runs). The HTTP API and the console will be mounted here too.

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

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Binds the listen address, with an error that says which.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
