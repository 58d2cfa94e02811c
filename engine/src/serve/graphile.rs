//! The scheduler for several engines on one PostgreSQL, on graphile_worker
//! (its tokio-postgres driver, in the database's `graphile_worker` schema).
//!
//! - **A job per account** (`intake_check_account`, job key
//!   `intake:account:<id>`) in **a queue of its own** (the same name), so at
//!   most one worker anywhere runs an account at a time. The job checks the
//!   account through the service layer, then schedules its own next run at
//!   the time the account's state says (interval, or backoff); a disabled
//!   account gets no next job.
//! - **Its crontab** re-creates missing jobs: every minute
//!   `intake_reconcile_accounts` adds a job for every due account that has
//!   none (job key mode `preserve_run_at`, so a job already waiting keeps its
//!   time). Every worker also does this once at start.
//! - **Its worker recovery**: workers beat every third of the lease; one
//!   whose heartbeat is a lease old is dead, and its jobs and queue locks
//!   are released for the others. With the default 60 s lease an account of
//!   a dead worker runs again within about 1.5 leases.
//! - Checks asked for by a person, and IDLE wake-ups, become a job due now
//!   (key mode `replace`).
//!
//! The per-host connection cap holds per process here (each worker has its
//! own), and fairness across tenants comes from the jitter on every next run
//! rather than from an explicit round-robin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use graphile_worker::tokio_postgres::TokioPostgresDatabase;
use graphile_worker::{
    Cron, CronJobKeyMode, IntoTaskHandlerResult, JobKeyMode, JobSpec, TaskHandler, WorkerContext,
    WorkerContextExt, WorkerOptions, WorkerRecoveryConfig, WorkerUtils,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::scheduler::{Limits, Scheduler, Wake};
use crate::service::Service;
use crate::store::{AccountId, DueAccount, HealthState, TenantId};

/// The schema graphile_worker keeps its tables in.
pub const SCHEMA: &str = "graphile_worker";

/// The scheduler on graphile_worker.
#[derive(Debug, Clone)]
pub struct GraphileScheduler {
    url: String,
    limits: Limits,
    lease: Duration,
    grace: Duration,
}

impl GraphileScheduler {
    /// A scheduler on the PostgreSQL at `url`. `lease` sets the recovery
    /// timing: heartbeat and sweep every third of it, a worker silent for
    /// a lease is dead.
    pub fn new(url: &str, limits: Limits, lease: Duration, grace: Duration) -> Self {
        GraphileScheduler {
            url: url.to_string(),
            limits,
            lease,
            grace,
        }
    }
}

/// What every job handler gets.
#[derive(Clone)]
struct Shared {
    service: Arc<Service>,
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    fn host_slots(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .entry(host.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host.max(1))))
            .clone()
    }
}

/// The job: check one account.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckAccount {
    account: i64,
    tenant: i64,
    tenant_name: String,
    name: String,
    host: String,
}

impl CheckAccount {
    fn of(d: &DueAccount) -> Self {
        CheckAccount {
            account: d.account.0,
            tenant: d.tenant.0,
            tenant_name: d.tenant_name.clone(),
            name: d.name.clone(),
            host: d.host.clone(),
        }
    }

    fn key(&self) -> String {
        format!("intake:account:{}", self.account)
    }

    fn spec(&self, run_at: DateTime<Utc>, mode: JobKeyMode) -> JobSpec {
        JobSpec {
            queue_name: Some(self.key()),
            run_at: Some(run_at),
            job_key: Some(self.key()),
            job_key_mode: Some(mode),
            max_attempts: Some(10),
            ..JobSpec::default()
        }
    }

    async fn run(self, ctx: WorkerContext) -> Result<(), String> {
        let shared = ctx
            .get_ext::<Shared>()
            .ok_or("the worker was built without its state")?
            .clone();
        let lag = (Utc::now() - *ctx.job().run_at())
            .to_std()
            .unwrap_or_default();
        metrics::histogram!("intake_check_lag_seconds").record(lag.as_secs_f64());
        let slots = shared.host_slots(&self.host);
        let _slot = slots.acquire().await.map_err(|e| e.to_string())?;
        let report = shared
            .service
            .check_account(
                TenantId(self.tenant),
                &self.tenant_name,
                AccountId(self.account),
                &self.name,
            )
            .await
            .map_err(|e| e.to_string())?;
        let next = match &report {
            Some(r) if r.health.state == HealthState::Disabled => None,
            Some(r) => Some(r.health.next_check_at.unwrap_or_else(Utc::now)),
            // Someone else (an `intake fetch`) holds the account: later.
            None => Some(Utc::now() + chrono::Duration::seconds(30)),
        };
        if let Some(at) = next {
            // `preserve_run_at`: a wake-up queued while this run went on
            // (a job due now) keeps its time and runs next.
            ctx.add_job(self.clone(), self.spec(at, JobKeyMode::PreserveRunAt))
                .await
                .map_err(|e| format!("cannot schedule the next check: {e}"))?;
        }
        Ok(())
    }
}

impl TaskHandler for CheckAccount {
    const IDENTIFIER: &'static str = "intake_check_account";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        CheckAccount::run(self, ctx).await
    }
}

/// The crontab's job: a job for every due account that has none.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReconcileAccounts;

impl TaskHandler for ReconcileAccounts {
    const IDENTIFIER: &'static str = "intake_reconcile_accounts";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        let Some(shared) = ctx.get_ext::<Shared>().cloned() else {
            return Err("the worker was built without its state".to_string());
        };
        reconcile(&shared.service, &ctx.utils()).await
    }
}

/// Adds a job (keeping the time of one already waiting) for every account
/// that is due.
async fn reconcile(service: &Service, utils: &WorkerUtils) -> Result<(), String> {
    // New accounts get their row, due at once.
    service
        .store()
        .ensure_health_rows()
        .await
        .map_err(|e| e.to_string())?;
    let due = service
        .store()
        .due_accounts(Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    for account in due {
        let job = CheckAccount::of(&account);
        let mode = if account.requested {
            JobKeyMode::Replace
        } else {
            JobKeyMode::PreserveRunAt
        };
        utils
            .add_job(job.clone(), job.spec(Utc::now(), mode))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[async_trait]
impl Scheduler for GraphileScheduler {
    async fn run(
        &self,
        service: Arc<Service>,
        mut wakes: mpsc::Receiver<Wake>,
        shutdown: CancellationToken,
    ) {
        let shared = Shared {
            service: service.clone(),
            per_host: self.limits.per_host,
            hosts: Arc::default(),
        };
        let third = (self.lease / 3).max(Duration::from_secs(1));
        loop {
            let database = match TokioPostgresDatabase::from_url(
                &self.url,
                self.limits.concurrent.clamp(2, 32) + 2,
            ) {
                Ok(db) => db,
                Err(e) => {
                    tracing::error!(
                        "graphile_worker: cannot use {}: {e}",
                        crate::store::redact(&self.url)
                    );
                    return;
                }
            };
            let stop = shutdown.clone();
            let cron = Cron::every_minute::<ReconcileAccounts>()
                .id("intake_reconcile_accounts")
                .job_key("intake:reconcile")
                .job_key_mode(CronJobKeyMode::Replace)
                .payload(ReconcileAccounts)
                .map(|c| c.build());
            let mut options = WorkerOptions::default()
                .database(database)
                .schema(SCHEMA)
                .concurrency(self.limits.concurrent.max(1))
                .poll_interval(self.limits.tick.max(Duration::from_millis(100)))
                .define_job::<CheckAccount>()
                .define_job::<ReconcileAccounts>()
                .add_extension(shared.clone())
                .worker_recovery(
                    WorkerRecoveryConfig::default()
                        .enabled(true)
                        .heartbeat_interval(third)
                        .sweep_interval(third)
                        .sweep_threshold(self.lease)
                        .recovery_delay(Duration::from_secs(1)),
                )
                .listen_os_shutdown_signals(false)
                .shutdown_signal(async move { stop.cancelled().await })
                .shutdown_grace_period(self.grace);
            match cron {
                Ok(cron) => options = options.with_cron(cron),
                Err(e) => tracing::error!("graphile_worker: the reconcile crontab: {e}"),
            }
            let worker = match options.init().await {
                Ok(worker) => Arc::new(worker),
                Err(e) => {
                    tracing::error!("graphile_worker: cannot start: {e}; retrying in 5 s");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            };
            let utils = worker.create_utils();
            if let Err(e) = reconcile(&service, &utils).await {
                tracing::warn!("graphile_worker: cannot add the accounts' jobs: {e}");
            }
            let running = {
                let worker = worker.clone();
                tokio::spawn(async move { worker.run().await })
            };
            // Wake-ups and checks asked for become jobs due now; new
            // accounts are picked up every few seconds.
            let mut running = running;
            let mut ticks: u64 = 0;
            let result = loop {
                ticks += 1;
                tokio::select! {
                    result = &mut running => break result,
                    Some(wake) = wakes.recv() => {
                        let job = CheckAccount::of(&wake.account);
                        if let Err(e) = utils.add_job(job.clone(), job.spec(Utc::now(), JobKeyMode::Replace)).await {
                            tracing::warn!("graphile_worker: cannot queue a wake-up: {e}");
                        }
                    }
                    () = tokio::time::sleep(self.limits.tick) => {
                        let done = if ticks.is_multiple_of(25) {
                            reconcile(&service, &utils).await
                        } else {
                            requested(&service, &utils).await
                        };
                        if let Err(e) = done {
                            tracing::warn!("graphile_worker: cannot queue requested checks: {e}");
                        }
                    }
                }
            };
            match result {
                Ok(Ok(())) => return,
                Ok(Err(e)) if !shutdown.is_cancelled() => {
                    tracing::error!("graphile_worker stopped: {e}; restarting in 5 s");
                }
                Ok(Err(e)) => {
                    tracing::warn!("graphile_worker stopped while stopping: {e}");
                    return;
                }
                Err(e) => {
                    tracing::error!("graphile_worker task failed: {e}");
                    return;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }
}

/// Checks asked for by a person: a job due now.
async fn requested(service: &Service, utils: &WorkerUtils) -> Result<(), String> {
    let due = service
        .store()
        .due_accounts(Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    for account in due.into_iter().filter(|d| d.requested) {
        let job = CheckAccount::of(&account);
        utils
            .add_job(job.clone(), job.spec(Utc::now(), JobKeyMode::Replace))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
