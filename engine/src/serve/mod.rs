//! `intake serve`: the engine running by itself.
//!
//! One supervisor ([`run`]) owns every background task and the shutdown
//! token:
//! - the [`scheduler`], which checks each account at its interval (and when
//!   asked), through the service layer, under global and per-host limits;
//! - the IDLE [`watch`]es, which wake the scheduler when a server reports
//!   new mail;
//! - the heartbeat, which tells other workers and `intake account check`
//!   that this one is alive;
//! - the [`http`] endpoints: `/metrics`, `/healthz`, `/readyz`, and the
//!   HTTP API under `/v1` ([`crate::api`]);
//! - the [`webhooks`] delivery loop, which sends the outbox's events to the
//!   tenants' endpoints.
//!
//! On shutdown (SIGTERM, Ctrl-C) nothing new starts; checks in flight finish
//! the commit they are in, carry out its server actions and close their
//! session (`LOGOUT` / `QUIT`); IDLE connections send `DONE` and `LOGOUT`.
//! The supervisor waits for all of it at most [`ServeConfig::grace`].

pub mod graphile;
pub mod http;
pub mod scheduler;
pub mod watch;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::service::Service;
use crate::store::MasterKey;
use scheduler::{Limits, LocalScheduler, Scheduler};

/// Which scheduler decides when accounts are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedulerKind {
    /// In this process only (SQLite, or a single engine).
    Local,
    /// graphile_worker on the PostgreSQL at this URL, shared by every
    /// engine on it.
    Graphile(String),
}

/// How the service runs: one struct, validated once at start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The scheduler.
    pub scheduler: SchedulerKind,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None`: not
    /// at all.
    pub listen: Option<SocketAddr>,
    /// Checks at once, and per mail server host.
    pub limits: Limits,
    /// Keep IMAP IDLE connections for new mail.
    pub idle: bool,
    /// Renew each IDLE command at least this often.
    pub idle_renew: Duration,
    /// How long to wait for checks in flight on shutdown.
    pub grace: Duration,
    /// How often this worker says it is alive.
    pub heartbeat: Duration,
    /// The HTTP API, served beside `/metrics` on `listen`.
    pub api: crate::api::ApiConfig,
    /// TLS for the listener; `None`: plain HTTP (on loopback, or behind a
    /// reverse proxy that terminates TLS).
    pub tls: Option<http::TlsFiles>,
    /// Webhook delivery: retries, limits, private networks.
    pub webhooks: webhooks::WebhookConfig,
}

impl ServeConfig {
    /// Refuses settings that cannot work, with what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.limits.concurrent == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if self.limits.per_host == 0 {
            return Err("--per-host must be at least 1".into());
        }
        if self.idle_renew < Duration::from_secs(10)
            || self.idle_renew > Duration::from_secs(29 * 60)
        {
            return Err("--idle-renew must be between 10 s and 29 min (RFC 2177)".into());
        }
        if self.limits.tick.is_zero() || self.heartbeat.is_zero() {
            return Err("the tick and the heartbeat must be positive".into());
        }
        self.webhooks.validate()?;
        Ok(())
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error(transparent)]
    Listen(std::io::Error),
    /// The store failed at start.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The webhook HTTP client could not be set up.
    #[error(transparent)]
    Webhooks(#[from] webhooks::ClientError),
}

/// This process's worker id: host, process id and a random part, so that a
/// restarted process never inherits a dead one's leases.
pub fn worker_id() -> String {
    let mut bytes = [0u8; 4];
    let _ = getrandom::getrandom(&mut bytes);
    format!(
        "{}:{}:{}",
        host_name(),
        std::process::id(),
        hex::encode(bytes)
    )
}

/// The machine's name, as the kernel knows it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Runs the service until `shutdown` is cancelled, then stops it within
/// the grace period. `ready` is called once the listener is bound (with its
/// address) and the scheduler is about to start.
pub async fn run(
    config: ServeConfig,
    service: Arc<Service>,
    key: Option<MasterKey>,
    shutdown: CancellationToken,
    ready: impl FnOnce(Option<SocketAddr>),
) -> Result<(), ServeError> {
    config.validate().map_err(ServeError::Config)?;
    let metrics = http::recorder();
    let store = service.store().clone();
    store.ping().await?;
    let worker = service.options().worker_id.clone();
    let started = Utc::now();
    store
        .worker_heartbeat(&worker, &host_name(), started)
        .await?;

    let tasks = TaskTracker::new();
    let scheduling = Arc::new(AtomicBool::new(false));
    let mut bound = None;
    if let Some(addr) = config.listen {
        let tls = match &config.tls {
            Some(files) => Some(files.acceptor().map_err(ServeError::Config)?),
            None => None,
        };
        let listener = http::bind(addr).await.map_err(ServeError::Listen)?;
        bound = listener.local_addr().ok();
        let router = http::router(http::HttpState {
            store: store.clone(),
            metrics,
            scheduling: scheduling.clone(),
        })
        .merge(crate::api::router(service.clone(), config.api.clone()))
        .merge(crate::console::router(
            service.clone(),
            crate::console::ConsoleConfig {
                operator: config.api.operator.clone(),
                tls: config.tls.is_some(),
            },
        ));
        let stop = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = http::serve(listener, router, tls, stop).await {
                tracing::error!("HTTP server stopped: {e}");
            }
        });
    }

    // Heartbeat.
    {
        let store = store.clone();
        let worker = worker.clone();
        let stop = shutdown.clone();
        let every = config.heartbeat;
        tasks.spawn(async move {
            let host = host_name();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(e) = store.worker_heartbeat(&worker, &host, started).await {
                    tracing::warn!("heartbeat: {e}");
                }
            }
        });
    }

    // Webhook delivery.
    {
        let deliverer = webhooks::Deliverer::new(
            store.clone(),
            key.clone(),
            config.webhooks.clone(),
            worker.clone(),
        )?;
        tasks.spawn(deliverer.run(shutdown.clone()));
    }

    let (wake_tx, wake_rx) = mpsc::channel(1024);
    // IDLE watches, reconciled with the accounts every few seconds.
    if config.idle {
        let mut watches = watch::Watches::new(
            service.clone(),
            key,
            wake_tx.clone(),
            config.idle_renew,
            shutdown.clone(),
        );
        let stop = shutdown.clone();
        tasks.spawn(async move {
            loop {
                if let Err(e) = watches.reconcile().await {
                    tracing::warn!("IDLE watches: cannot read the accounts: {e}");
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
            watches.stop().await;
        });
    }
    drop(wake_tx);

    let scheduler: Box<dyn Scheduler> = match &config.scheduler {
        SchedulerKind::Local => Box::new(LocalScheduler::new(config.limits)),
        SchedulerKind::Graphile(url) => Box::new(graphile::GraphileScheduler::new(
            url,
            config.limits,
            service.options().lease,
            config.grace,
        )),
    };
    {
        let service = service.clone();
        let stop = shutdown.clone();
        let scheduling = scheduling.clone();
        scheduling.store(true, Ordering::Relaxed);
        tasks.spawn(async move {
            scheduler.run(service, wake_rx, stop).await;
            scheduling.store(false, Ordering::Relaxed);
        });
    }
    tracing::info!(worker = %worker, listen = ?bound, "intake serve: running");
    ready(bound);

    shutdown.cancelled().await;
    tracing::info!(
        "stopping: finishing the commits in flight (at most {} s)",
        config.grace.as_secs()
    );
    tasks.close();
    if tokio::time::timeout(config.grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "gave up waiting after {} s; what was not committed stays on the server for the next run",
            config.grace.as_secs()
        );
    }
    if let Err(e) = store.worker_stopped(&worker).await {
        tracing::warn!("cannot record the stop: {e}");
    }
    Ok(())
}
