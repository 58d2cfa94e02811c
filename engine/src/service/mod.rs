//! The service layer: what the command line, the scheduler of
//! `intake serve`, the HTTP API (and, next, the console) call. Every tenant
//! operation takes a [`Scope`], which only an authenticated token or the
//! command line's `--tenant` can produce, and states the access it needs;
//! the rules of each resource are written once here:
//!
//! - [`accounts`]: accounts and credentials, Test settings;
//! - [`directory`]: contacts and leads, bulk upsert by external id;
//! - [`plugins`]: the tenant's chain, components checked before storing;
//! - [`scaffold`]: a new plugin project for `intake plugin new`;
//! - [`messages`]: the inbox and the quarantine;
//! - [`tenants`]: tenants (the operator's) and API tokens;
//! - [`webhooks`]: webhook endpoints and deliveries;
//! - [`discover`]: provider presets and discovery of an address's servers;
//! - [`scope`]: who is asking.
//!
//! It owns the rules around a check — one worker at a time per
//! account (a lease in the store), the outcome recorded as the account's
//! state, backoff and disabling ([`policy`]) — so every caller gets the same
//! behaviour.
//!
//! A check is the unit of work: lease the account, run the pipeline over
//! it, record what happened, give the lease back. The lease is renewed while
//! the run lasts; a worker that dies stops renewing, and its accounts are
//! free again when the lease runs out.

pub mod accounts;
pub mod directory;
pub mod discover;
pub mod messages;
pub mod oauth;
pub mod plugins;
pub mod policy;
pub mod replay;
pub mod scaffold;
pub mod scope;
pub mod tenants;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::pipeline::{Pipeline, PipelineError, Progress, Quiet, Summary};
use crate::store::{
    self, Account, AccountHealth, AccountId, HealthState, MasterKey, Store, TenantId,
};
use policy::chrono_duration;
pub use policy::{CheckOutcome, ErrorClass, RetryPolicy};
pub use scope::{OperatorKey, Principal, Scope};

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// No master key was given, and a check needs one to open credentials.
    #[error(
        "no master key: the service cannot open stored credentials (set INTAKE_MASTER_KEY or --key-file)"
    )]
    NoKey,
    /// This service was built to administer accounts, not to check them.
    #[error("this service runs no checks")]
    NoPipeline,
    /// The account is disabled.
    #[error("account {0:?} is disabled; fix what disabled it, then `intake account enable {0}`")]
    Disabled(String),
    /// No valid credential was presented (missing, malformed, unknown or
    /// revoked: one answer for all).
    #[error("a valid API token is needed (Authorization: Bearer itk_…)")]
    Unauthorized,
    /// The credential may not do this.
    #[error("this needs a token with the {} scope", needed.as_str())]
    Forbidden {
        /// The scope it needs.
        needed: store::TokenScope,
    },
    /// A field of the request was refused.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, as the request names it (`host`, `parties[3].email`).
        field: String,
        /// Why.
        reason: String,
    },
    /// The request was understood but cannot be carried out now.
    #[error("{0}")]
    Refused(String),
    /// A fault of the engine, not of the request.
    #[error("internal error: {0}")]
    Internal(String),
    /// Nothing was found for a query that is not about a stored thing
    /// (discovery of an address's servers); the text says what was tried.
    #[error("{0}")]
    NothingFound(String),
}

/// A refused field, named as the request names it.
pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`),
/// for changes where `null` clears a setting.
pub(crate) fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// `Result` with [`ServiceError`].
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// An account as the list and show views present it: its settings and how
/// its checks are going.
#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    /// The account's name.
    pub name: String,
    /// Switched on by its settings.
    pub enabled: bool,
    /// Checked on a schedule.
    pub auto_check: bool,
    /// What the service knows of its checks.
    pub health: AccountHealth,
}

impl AccountStatus {
    /// The state in words: `ok`, `backing off (until …)`, `disabled: why
    /// (since …)`, or `off` for an account switched off in its settings.
    pub fn state_line(&self) -> String {
        if !self.enabled {
            return "off (disabled in its settings)".into();
        }
        let h = &self.health;
        match h.state {
            HealthState::Ok => "ok".into(),
            HealthState::BackingOff => match h.retry_at {
                Some(at) => format!("backing off (until {})", at.format("%Y-%m-%d %H:%M:%S UTC")),
                None => "backing off".into(),
            },
            HealthState::Disabled => format!(
                "disabled: {} (since {})",
                h.disabled_reason.as_deref().unwrap_or("unknown reason"),
                h.disabled_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "?".into())
            ),
        }
    }

    /// What is happening now, when a worker is checking the account: how
    /// far a long check has got (`checking: 1,200 of 5,000 messages
    /// stored`), or just `checking now`.
    pub fn activity_line(&self) -> Option<String> {
        let h = &self.health;
        if !h.is_leased(Utc::now()) {
            return None;
        }
        Some(match &h.progress {
            Some(p) => format!(
                "checking: {} of {} messages stored{}",
                thousands(p.done),
                thousands(p.total),
                (p.done.min(p.total) * 100)
                    .checked_div(p.total)
                    .map(|pct| format!(" ({pct}%)"))
                    .unwrap_or_default()
            ),
            None => "checking now".into(),
        })
    }
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What one check did.
#[derive(Debug)]
pub struct CheckReport {
    /// The account.
    pub account: String,
    /// How it ended.
    pub outcome: CheckOutcome,
    /// The run's summary, when it went through.
    pub summary: Option<Summary>,
    /// The run's error, when it failed.
    pub error: Option<PipelineError>,
    /// The account's health afterwards.
    pub health: AccountHealth,
    /// When it started.
    pub started: DateTime<Utc>,
}

/// Settings of the service layer.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// This process's worker id (lease owner).
    pub worker_id: String,
    /// How long a lease holds without renewal; renewed every third of it.
    pub lease: Duration,
    /// Backoff and disabling.
    pub retry: RetryPolicy,
    /// How often a running check records how far it has got (the
    /// console's progress display); a shorter check records nothing.
    pub progress_every: Duration,
}

/// The service layer over one store and pipeline.
pub struct Service {
    store: Store,
    /// `None` for a service that only reads and administers accounts (the
    /// command line's list, show, enable, check-now requests).
    pipeline: Option<Arc<Pipeline>>,
    key: Option<MasterKey>,
    options: ServiceOptions,
    /// Where the bundled plugins come from when not from the binary (a
    /// development build's `plugins/target`).
    plugin_dir: Option<std::path::PathBuf>,
    /// Where webhooks may be aimed (see [`webhooks::WebhookPolicy`]).
    webhooks: webhooks::WebhookPolicy,
    /// Tenants seen with a plugin chain, so a check asks the store only
    /// for a tenant's first check in this process.
    chained: std::sync::Mutex<std::collections::HashSet<TenantId>>,
    /// Provider discovery, as far as the operator lets it reach.
    discovery: discover::Discovery,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A random number in [0, 1), for jitter.
pub(crate) fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

impl Service {
    /// A service over `store` and `pipeline`; `key` opens credentials.
    pub fn new(
        store: Store,
        pipeline: Arc<Pipeline>,
        key: Option<MasterKey>,
        options: ServiceOptions,
    ) -> Self {
        Service {
            store,
            pipeline: Some(pipeline),
            key,
            options,
            plugin_dir: None,
            webhooks: webhooks::WebhookPolicy::default(),
            chained: Default::default(),
            discovery: discover::Discovery::default(),
        }
    }

    /// The same service, taking the bundled plugins from `dir` when set.
    pub fn with_plugin_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.plugin_dir = dir;
        self
    }

    /// A service that reads and administers accounts but runs no checks.
    pub fn admin(store: Store) -> Self {
        Service {
            store,
            pipeline: None,
            key: None,
            options: ServiceOptions {
                worker_id: String::new(),
                lease: Duration::from_secs(60),
                retry: RetryPolicy::default(),
                progress_every: PROGRESS_EVERY,
            },
            plugin_dir: None,
            webhooks: webhooks::WebhookPolicy::default(),
            chained: Default::default(),
            discovery: discover::Discovery::default(),
        }
    }

    /// The store (for the scheduler's queries).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The options.
    pub fn options(&self) -> &ServiceOptions {
        &self.options
    }

    /// Checks one account now, unless another worker holds it (then
    /// `Ok(None)`). The outcome is recorded as the account's state.
    pub async fn check_account(
        &self,
        tenant: TenantId,
        tenant_name: &str,
        account: AccountId,
        name: &str,
    ) -> Result<Option<CheckReport>> {
        self.check_account_with(tenant, tenant_name, account, name, &Quiet)
            .await
    }

    /// [`check_account`](Self::check_account), reporting progress (the
    /// command line's progress bar).
    #[tracing::instrument(name = "service.check", skip_all, fields(tenant = %tenant_name, account = %name))]
    pub async fn check_account_with(
        &self,
        tenant: TenantId,
        tenant_name: &str,
        account: AccountId,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<Option<CheckReport>> {
        if self.pipeline.is_none() {
            return Err(ServiceError::NoPipeline);
        }
        // A tenant that has no plugins gets the bundled chain at its first
        // check, as with `intake fetch` (a tenant made through the API
        // already has it); asked once per tenant and process.
        let known = self
            .chained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&tenant);
        if !known {
            if let Some(origin) = self.ensure_default_chain(tenant).await? {
                tracing::info!(tenant = %tenant_name, "installed the default plugin chain ({origin})");
            }
            self.chained
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(tenant);
        }
        let owner = self.options.worker_id.as_str();
        let lease = chrono_duration(self.options.lease);
        if !self
            .store
            .try_lease(tenant, account, owner, Utc::now() + lease)
            .await?
        {
            // A worker of this machine that was killed holds it: no need to
            // wait for the lease to run out.
            let holder = self.store.health(account).await?.lease_owner;
            let stale = holder.filter(|h| is_dead_local_worker(h));
            let taken = match &stale {
                Some(stale) => {
                    self.store
                        .take_stale_lease(account, stale, owner, Utc::now() + lease)
                        .await?
                }
                None => false,
            };
            if !taken {
                tracing::debug!("held by another worker");
                return Ok(None);
            }
            tracing::info!(stale = ?stale, "took over the lease of a dead process");
        }
        let previous = self.store.health(account).await?;
        let started = Utc::now();
        let renewer = {
            let store = self.store.clone();
            let owner = owner.to_string();
            let every = self.options.lease / 3;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match store.renew_lease(account, &owner, Utc::now() + lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(%account, "lost the lease on the account");
                            return;
                        }
                        Err(e) => tracing::warn!(%account, "cannot renew the lease: {e}"),
                    }
                }
            })
        };
        let counted = Counted {
            inner: progress,
            counts: Arc::default(),
        };
        let reporter = tokio::spawn(report_progress(
            self.store.clone(),
            account,
            owner.to_string(),
            counted.counts.clone(),
            self.options.progress_every,
        ));
        let result = match (&self.pipeline, &self.key) {
            (Some(pipeline), Some(key)) => {
                pipeline.run_account(tenant_name, name, key, &counted).await
            }
            _ => Err(PipelineError::Store(store::Error::Invalid {
                what: "master key",
                reason: ServiceError::NoKey.to_string(),
            })),
        };
        renewer.abort();
        reporter.abort();
        let interval = match self.store.account(tenant, name).await {
            Ok(a) => Duration::from_secs(u64::from(a.config.check_interval_secs.max(1))),
            Err(_) => Duration::from_secs(300),
        };
        let (outcome, summary, error) = match result {
            Ok(summary) => {
                record_summary(&summary);
                let ingested = (summary.attached
                    + summary.new_leads
                    + summary.quarantined
                    + summary.discarded
                    + summary.unlinked
                    + summary.deferred) as u64;
                (
                    CheckOutcome::Succeeded {
                        ingested,
                        interrupted: summary.interrupted,
                    },
                    Some(summary),
                    None,
                )
            }
            Err(e) => {
                let class = ErrorClass::of(&e);
                metrics::counter!("intake_fetch_errors_total", "class" => class.as_str())
                    .increment(1);
                let hint = crate::fetch::diagnosis::hint_in_chain(&e)
                    .map(|h| format!(" — hint: {h}"))
                    .unwrap_or_default();
                let message = format!("{e}{hint}");
                tracing::warn!(class = class.as_str(), "check failed: {e}");
                (CheckOutcome::Failed { class, message }, None, Some(e))
            }
        };
        let health = policy::after_check(
            &previous,
            &outcome,
            started,
            Utc::now(),
            interval,
            &self.options.retry,
            unit_random(),
        );
        if health.state == HealthState::Disabled && previous.state != HealthState::Disabled {
            tracing::warn!(
                reason = health.disabled_reason.as_deref().unwrap_or(""),
                "account disabled"
            );
        }
        self.store.finish_check(account, owner, &health).await?;
        Ok(Some(CheckReport {
            account: name.to_string(),
            outcome,
            summary,
            error,
            health,
            started,
        }))
    }

    /// The tenant's accounts with their state, by name.
    pub async fn account_statuses(&self, scope: &Scope) -> Result<Vec<AccountStatus>> {
        scope.require(store::TokenScope::Read)?;
        let tenant = scope.tenant();
        let accounts = self.store.accounts(tenant).await?;
        let mut health = self.store.health_of_tenant(tenant).await?;
        Ok(accounts
            .into_iter()
            .map(|a| status(a.clone(), health.remove(&a.id).unwrap_or_default()))
            .collect())
    }

    /// One account with its state.
    pub async fn account_status(&self, scope: &Scope, name: &str) -> Result<AccountStatus> {
        scope.require(store::TokenScope::Read)?;
        let tenant = scope.tenant();
        let account = self.store.account(tenant, name).await?;
        let health = self.store.health(account.id).await?;
        Ok(status(account, health))
    }

    /// Clears a disablement (and any backoff), switches the account on, and
    /// makes it due at once.
    pub async fn enable_account(&self, scope: &Scope, name: &str) -> Result<AccountStatus> {
        scope.require(store::TokenScope::Write)?;
        let tenant = scope.tenant();
        let mut account = self.store.account(tenant, name).await?;
        if !account.config.enabled {
            account.config.enabled = true;
            // Changing the settings clears the health too.
            self.store
                .update_account(tenant, name, &account.config)
                .await?;
        } else {
            self.store.reset_health(tenant, account.id).await?;
        }
        self.account_status(scope, name).await
    }

    /// Asks the running service to check `name` soon. Returns the time of
    /// the request; [`check_result`](Self::check_result) says when it ran.
    pub async fn request_check(&self, scope: &Scope, name: &str) -> Result<DateTime<Utc>> {
        scope.require(store::TokenScope::Write)?;
        let tenant = scope.tenant();
        let status = self.account_status(scope, name).await?;
        if status.health.state == HealthState::Disabled {
            return Err(ServiceError::Disabled(name.to_string()));
        }
        Ok(self.store.request_check(tenant, name).await?)
    }

    /// The account's status once a check that started at or after
    /// `requested` has finished; `None` while it has not.
    pub async fn check_result(
        &self,
        scope: &Scope,
        name: &str,
        requested: DateTime<Utc>,
    ) -> Result<Option<AccountStatus>> {
        let status = self.account_status(scope, name).await?;
        let h = &status.health;
        let ran = h.last_check_at.is_some_and(|t| t >= requested)
            && h.check_requested_at.is_none()
            && !h.is_leased(Utc::now());
        Ok(ran.then_some(status))
    }

    /// Workers that gave a heartbeat within `within`.
    pub async fn live_workers(&self, within: Duration) -> Result<Vec<store::WorkerInfo>> {
        Ok(self
            .store
            .live_workers(Utc::now() - chrono_duration(within))
            .await?)
    }
}

/// Whether a lease owner id (`[kind:]host:pid:random`, see
/// [`crate::serve::worker_id`]) names a process of this machine that no
/// longer runs. Anything else (another machine, a live process, an id of
/// another shape) is left to the lease's expiry.
pub(crate) fn is_dead_local_worker(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(_random), Some(pid), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let host = rest.rsplit(':').next().unwrap_or(rest);
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == crate::serve::host_name()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

pub(crate) fn status(account: Account, health: AccountHealth) -> AccountStatus {
    AccountStatus {
        name: account.config.name,
        enabled: account.config.enabled,
        auto_check: account.config.auto_check,
        health,
    }
}

/// Counts a run's messages by disposition.
/// How often a running check writes how far it has got, by default: a
/// check shorter than this writes nothing.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Messages a check has listed and committed so far.
#[derive(Debug, Default)]
struct Counts {
    listed: std::sync::atomic::AtomicU64,
    committed: std::sync::atomic::AtomicU64,
}

/// Passes a run's progress on, counting it for [`report_progress`].
struct Counted<'a> {
    inner: &'a dyn Progress,
    counts: Arc<Counts>,
}

impl Progress for Counted<'_> {
    fn listed(&self, account: &str, folder: &str, total: usize) {
        self.counts
            .listed
            .fetch_add(total as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.listed(account, folder, total);
    }

    fn committed(&self, n: usize) {
        self.counts
            .committed
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.committed(n);
    }
}

/// Writes the counts to the account's health row `every` so often while
/// they change, for the console's and `account show`'s progress display
/// during a long check. Runs until aborted.
async fn report_progress(
    store: crate::store::Store,
    account: AccountId,
    owner: String,
    counts: Arc<Counts>,
    every: Duration,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut written = (0, 0);
    loop {
        tokio::time::sleep(every).await;
        let now = (counts.committed.load(Relaxed), counts.listed.load(Relaxed));
        if now == written {
            continue;
        }
        match store.record_progress(account, &owner, now.0, now.1).await {
            Ok(true) => written = now,
            Ok(false) => return,
            Err(e) => tracing::debug!(%account, "cannot record the check's progress: {e}"),
        }
    }
}

fn record_summary(s: &Summary) {
    for (disposition, n) in [
        ("attached", s.attached),
        ("create-lead", s.new_leads),
        ("quarantined", s.quarantined),
        ("discarded", s.discarded),
        ("unlinked", s.unlinked),
        ("deferred", s.deferred),
        ("duplicate", s.duplicates),
    ] {
        if n > 0 {
            metrics::counter!("intake_messages_total", "disposition" => disposition)
                .increment(n as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_process_of_this_machine_loses_its_lease_at_once() {
        let host = crate::serve::host_name();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        assert!(is_dead_local_worker(&format!("{host}:{dead}:00ff")));
        assert!(is_dead_local_worker(&format!("fetch:{host}:{dead}:00ff")));
        assert!(!is_dead_local_worker(&format!(
            "{host}:{}:00ff",
            std::process::id()
        )));
        assert!(!is_dead_local_worker(&format!(
            "elsewhere.example:{dead}:00ff"
        )));
        assert!(!is_dead_local_worker("graphile_worker_abc"));
    }

    #[test]
    fn a_running_check_says_how_far_it_has_got() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
        let mut status = AccountStatus {
            name: "a".into(),
            enabled: true,
            auto_check: true,
            health: AccountHealth::default(),
        };
        assert_eq!(status.activity_line(), None, "not leased: idle");
        status.health.lease_owner = Some("w".into());
        status.health.lease_until = Some(Utc::now() + chrono::Duration::seconds(30));
        assert_eq!(status.activity_line().as_deref(), Some("checking now"));
        status.health.progress = Some(crate::store::CheckProgress {
            done: 1_200,
            total: 5_000,
            at: Utc::now(),
        });
        assert_eq!(
            status.activity_line().as_deref(),
            Some("checking: 1,200 of 5,000 messages stored (24%)")
        );
        status.health.lease_until = Some(Utc::now() - chrono::Duration::seconds(1));
        assert_eq!(status.activity_line(), None, "an expired lease is no check");
    }
}
