//! When each account is checked, and by whom.
//!
//! [`Scheduler`] is the seam: the supervisor hands it the service and the
//! wake-ups from IDLE watches, and it calls
//! [`Service::check_account`] for every account whose turn has come.
//! [`LocalScheduler`] does this inside one process (the SQLite default, and
//! any single engine): every tick it asks the store which accounts are due
//! (interval passed, backoff over, or a check asked for), orders them fairly
//! across tenants, and starts each under a global limit and a per-host
//! connection cap. Several processes on one PostgreSQL each run one; the
//! lease taken by [`Service::check_account`] keeps an account to one worker
//! at a time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::service::Service;
use crate::store::{AccountId, DueAccount};

/// An account to check soon, outside its schedule (new mail reported by
/// IDLE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    /// The account.
    pub account: DueAccount,
}

/// Limits on how many checks run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Checks at once over every account.
    pub concurrent: usize,
    /// Connections at once to one mail server host.
    pub per_host: usize,
    /// How often the store is asked what is due.
    pub tick: Duration,
}

/// Decides when accounts are checked and runs the checks.
#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Runs checks until `shutdown` is cancelled, then waits for the checks
    /// in flight (each finishes its commit and closes its session).
    async fn run(
        &self,
        service: Arc<Service>,
        wakes: mpsc::Receiver<Wake>,
        shutdown: CancellationToken,
    );
}

/// The in-process scheduler.
#[derive(Debug, Clone)]
pub struct LocalScheduler {
    limits: Limits,
}

impl LocalScheduler {
    /// A scheduler with these limits.
    pub fn new(limits: Limits) -> Self {
        LocalScheduler { limits }
    }
}

/// Orders due accounts so that each tenant gets a turn before any gets a
/// second: one tenant with 500 due accounts does not starve one with 1.
/// Within a tenant, a check a person asked for comes first, then the
/// longest overdue.
pub fn fair_order(mut due: Vec<DueAccount>) -> Vec<DueAccount> {
    due.sort_by(|a, b| {
        b.requested
            .cmp(&a.requested)
            .then(a.due_at.cmp(&b.due_at))
            .then(a.account.cmp(&b.account))
    });
    let mut by_tenant: BTreeMap<_, VecDeque<DueAccount>> = BTreeMap::new();
    for d in due {
        by_tenant.entry(d.tenant).or_default().push_back(d);
    }
    let mut out = Vec::new();
    while !by_tenant.is_empty() {
        by_tenant.retain(|_, queue| {
            if let Some(d) = queue.pop_front() {
                out.push(d);
            }
            !queue.is_empty()
        });
    }
    out
}

/// A check finished.
struct Done {
    account: AccountId,
}

#[async_trait]
impl Scheduler for LocalScheduler {
    async fn run(
        &self,
        service: Arc<Service>,
        mut wakes: mpsc::Receiver<Wake>,
        shutdown: CancellationToken,
    ) {
        let limits = self.limits;
        let global = Arc::new(Semaphore::new(limits.concurrent.max(1)));
        let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let tracker = TaskTracker::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut running: HashSet<AccountId> = HashSet::new();
        // Woken while running: checked again once the run ends.
        let mut again: HashMap<AccountId, DueAccount> = HashMap::new();
        let mut woken: HashMap<AccountId, DueAccount> = HashMap::new();
        // What the last look at the store found due and is not started yet:
        // a finished check starts the next from here, without a query.
        let mut pending: Vec<DueAccount> = Vec::new();
        let mut ticks: u64 = 0;
        let mut next_look = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(next_look) => {}
                Some(wake) = wakes.recv() => {
                    woken.insert(wake.account.account, wake.account);
                }
                Some(done) = done_rx.recv() => {
                    running.remove(&done.account);
                    if let Some(d) = again.remove(&done.account) {
                        woken.insert(d.account, d);
                    }
                }
            }
            if tokio::time::Instant::now() >= next_look {
                next_look = tokio::time::Instant::now() + limits.tick;
                // New accounts get their row (due at once) every few ticks.
                if ticks.is_multiple_of(5)
                    && let Err(e) = service.store().ensure_health_rows().await
                {
                    tracing::warn!("scheduler: cannot read the accounts: {e}");
                }
                ticks += 1;
                match service.store().due_accounts(Utc::now()).await {
                    Ok(due) => pending = due,
                    Err(e) => tracing::warn!("scheduler: cannot read the accounts: {e}"),
                }
            }
            let mut due = std::mem::take(&mut pending);
            let listed: HashSet<AccountId> = due.iter().map(|d| d.account).collect();
            due.extend(
                woken
                    .drain()
                    .filter(|(id, _)| !listed.contains(id))
                    .map(|(_, d)| d),
            );
            let mut order = fair_order(due).into_iter();
            while let Some(account) = order.next() {
                if running.contains(&account.account) {
                    if account.requested {
                        again.insert(account.account, account);
                    }
                    continue;
                }
                let Ok(slot) = global.clone().try_acquire_owned() else {
                    pending.push(account);
                    pending.extend(order.by_ref());
                    break;
                };
                let host = hosts
                    .entry(account.host.to_ascii_lowercase())
                    .or_insert_with(|| Arc::new(Semaphore::new(limits.per_host.max(1))))
                    .clone();
                let Ok(host_slot) = host.try_acquire_owned() else {
                    pending.push(account);
                    continue;
                };
                running.insert(account.account);
                if let (Some(due_at), false) = (account.due_at, account.requested) {
                    let lag = (Utc::now() - due_at).to_std().unwrap_or_default();
                    metrics::histogram!("intake_check_lag_seconds").record(lag.as_secs_f64());
                }
                let service = service.clone();
                let done = done_tx.clone();
                tracker.spawn(async move {
                    let _slots = (slot, host_slot);
                    if let Err(e) = service
                        .check_account(
                            account.tenant,
                            &account.tenant_name,
                            account.account,
                            &account.name,
                        )
                        .await
                    {
                        tracing::warn!(
                            tenant = %account.tenant_name,
                            account = %account.name,
                            "check could not be recorded: {e}"
                        );
                    }
                    let _ = done.send(Done {
                        account: account.account,
                    });
                });
            }
        }
        tracker.close();
        tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TenantId;

    fn due(tenant: i64, account: i64, requested: bool) -> DueAccount {
        DueAccount {
            account: AccountId(account),
            tenant: TenantId(tenant),
            tenant_name: format!("t{tenant}"),
            name: format!("a{account}"),
            host: "mail.example".into(),
            due_at: None,
            requested,
        }
    }

    #[test]
    fn a_big_tenant_does_not_starve_a_small_one() {
        let mut all: Vec<_> = (0..500).map(|i| due(1, i, false)).collect();
        all.push(due(2, 1000, false));
        all.push(due(3, 1001, false));
        let order = fair_order(all);
        let first: Vec<i64> = order.iter().take(3).map(|d| d.tenant.0).collect();
        assert_eq!(first, [1, 2, 3]);
        assert_eq!(order.len(), 502);
    }

    #[test]
    fn a_requested_check_goes_first_in_its_tenant() {
        let order = fair_order(vec![due(1, 1, false), due(1, 2, true)]);
        assert_eq!(order[0].account, AccountId(2));
    }
}
