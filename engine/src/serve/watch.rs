//! IDLE watches: one connection per watched folder of each IMAP account
//! that is checked automatically and healthy. A change the server reports
//! wakes the scheduler, which checks the account from its stored cursor; the
//! interval check still runs, so an account whose server has no IDLE, or
//! whose watch keeps failing, is polled as before.
//!
//! [`Watches::reconcile`] runs every few seconds: it starts a watch for each
//! folder that should have one — accounts checked successfully at least
//! once, so that a first sweep is not doubled by the watches' logins — and
//! stops those that should not (account switched off, disabled, backing
//! off, removed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::scheduler::Wake;
use crate::fetch::watch::{Change, FolderWatch};
use crate::fetch::{FailureClass, FetchError, Protocol};
use crate::service::Service;
use crate::store::{AccountId, DueAccount, HealthState, MasterKey};

/// How recent a worker's heartbeat must be for it to get a share of the
/// watches.
const LIVE_WORKER: Duration = Duration::from_secs(35);

/// How long a watch that ended by itself (the server has no IDLE, the login
/// was refused) is not tried again.
const GIVE_UP: Duration = Duration::from_secs(30 * 60);

/// The longest pause between attempts of a failing watch.
const MAX_RETRY: Duration = Duration::from_secs(30 * 60);

/// The set of running watches.
pub struct Watches {
    service: Arc<Service>,
    key: Option<MasterKey>,
    wakes: mpsc::Sender<Wake>,
    renew: Duration,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    running: HashMap<(AccountId, String), CancellationToken>,
    /// Watches that ended by themselves (no IDLE on the server, refused
    /// login), with when: not tried again for [`GIVE_UP`].
    ended: HashMap<(AccountId, String), std::time::Instant>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl Watches {
    /// No watches yet; [`reconcile`](Self::reconcile) starts them.
    pub fn new(
        service: Arc<Service>,
        key: Option<MasterKey>,
        wakes: mpsc::Sender<Wake>,
        renew: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Watches {
            service,
            key,
            wakes,
            renew,
            shutdown,
            tracker: TaskTracker::new(),
            running: HashMap::new(),
            ended: HashMap::new(),
        }
    }

    /// Starts and stops watches to match the accounts as they are now.
    pub async fn reconcile(&mut self) -> Result<(), crate::store::Error> {
        let Some(key) = self.key.clone() else {
            return Ok(());
        };
        let store = self.service.store();
        // With several workers, each watches its share: account ids spread
        // over the live workers in id order. When one dies, the others
        // take its share once its heartbeat is stale.
        let me = &self.service.options().worker_id;
        let mut live: Vec<String> = self
            .service
            .live_workers(LIVE_WORKER)
            .await
            .map_err(|e| match e {
                crate::service::ServiceError::Store(e) => e,
                other => crate::store::Error::Invalid {
                    what: "workers",
                    reason: other.to_string(),
                },
            })?
            .into_iter()
            .map(|w| w.id)
            .collect();
        if !live.contains(me) {
            live.push(me.clone());
        }
        live.sort();
        let share = (live.len(), live.iter().position(|w| w == me).unwrap_or(0));
        let mine = |id: AccountId| id.0.rem_euclid(share.0 as i64) as usize == share.1;
        let mut wanted: HashMap<(AccountId, String), DueAccount> = HashMap::new();
        for tenant in store.tenants().await? {
            let health = store.health_of_tenant(tenant.0).await?;
            for account in store.accounts(tenant.0).await? {
                let c = &account.config;
                // Watched once checked successfully: the first check is the
                // schedule's, and the watches' logins then spread over the
                // first sweep instead of doubling it.
                let healthy = health
                    .get(&account.id)
                    .is_some_and(|h| h.state == HealthState::Ok && h.last_success_at.is_some());
                if !(c.enabled
                    && c.auto_check
                    && c.protocol == Protocol::Imap
                    && healthy
                    && mine(account.id))
                {
                    continue;
                }
                for folder in &c.folders {
                    wanted.insert(
                        (account.id, folder.clone()),
                        DueAccount {
                            account: account.id,
                            tenant: tenant.0,
                            tenant_name: tenant.1.clone(),
                            name: c.name.clone(),
                            host: c.host.clone(),
                            due_at: None,
                            requested: true,
                        },
                    );
                }
            }
        }
        let ended = &mut self.ended;
        self.running.retain(|k, stop| {
            if stop.is_cancelled() {
                ended.insert(k.clone(), std::time::Instant::now());
                return false;
            }
            let keep = wanted.contains_key(k);
            if !keep {
                stop.cancel();
            }
            keep
        });
        self.ended.retain(|_, at| at.elapsed() < GIVE_UP);
        for (k, account) in wanted {
            if self.running.contains_key(&k) || self.ended.contains_key(&k) {
                continue;
            }
            let stop = self.shutdown.child_token();
            self.running.insert(k.clone(), stop.clone());
            let watch = Watch {
                service: self.service.clone(),
                key: key.clone(),
                account,
                folder: k.1,
                wakes: self.wakes.clone(),
                renew: self.renew,
                stop,
            };
            self.tracker.spawn(watch.run());
        }
        Ok(())
    }

    /// Stops every watch (they send `DONE` and `LOGOUT`) and waits for them.
    pub async fn stop(self) {
        for stop in self.running.values() {
            stop.cancel();
        }
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// One folder's watch.
struct Watch {
    service: Arc<Service>,
    key: MasterKey,
    account: DueAccount,
    folder: String,
    wakes: mpsc::Sender<Wake>,
    renew: Duration,
    stop: CancellationToken,
}

impl Watch {
    #[tracing::instrument(name = "serve.watch", skip_all, fields(tenant = %self.account.tenant_name, account = %self.account.name, folder = %self.folder))]
    async fn run(self) {
        let mut retry = Duration::from_secs(5);
        let mut reconnected = false;
        loop {
            let settings = match crate::oauth::fresh_settings(
                self.service.store(),
                self.account.tenant,
                &self.account.name,
                &self.key,
            )
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("IDLE: cannot read the account: {e}");
                    break;
                }
            };
            let opened = tokio::select! {
                () = self.stop.cancelled() => break,
                opened = FolderWatch::open(&settings, &self.folder, self.renew) => opened,
            };
            let mut watch = match opened {
                Ok(Some(w)) => w,
                Ok(None) => {
                    tracing::info!(
                        "the server does not offer IDLE: the account is polled at its interval"
                    );
                    // Nothing will change that until the settings do.
                    self.stop.cancel();
                    return;
                }
                Err(e) => {
                    if permanent(&e) {
                        // The scheduled check will meet the same error and
                        // handle it (backoff, disable); no hammering here.
                        tracing::info!("IDLE: {e}; watch stopped");
                        self.wake().await;
                        self.stop.cancel();
                        return;
                    }
                    tracing::info!(
                        "IDLE: cannot connect ({e}); retrying in {} s",
                        retry.as_secs()
                    );
                    tokio::select! {
                        () = self.stop.cancelled() => break,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(MAX_RETRY);
                    continue;
                }
            };
            metrics::gauge!("intake_idle_connections").increment(1.0);
            // Mail may have come while the watch was down (the first time,
            // the account has just been checked).
            if reconnected {
                self.wake().await;
            }
            reconnected = true;
            let ended = loop {
                let change = tokio::select! {
                    () = self.stop.cancelled() => break None,
                    change = watch.wait() => change,
                };
                match change {
                    Ok(Change::Reported) => {
                        retry = Duration::from_secs(5);
                        self.wake().await;
                    }
                    Ok(Change::Quiet) => retry = Duration::from_secs(5),
                    Err(e) => break Some(e),
                }
            };
            watch.close().await;
            metrics::gauge!("intake_idle_connections").decrement(1.0);
            match ended {
                None => return,
                Some(e) => {
                    tracing::info!(
                        "IDLE connection lost ({e}); reconnecting in {} s",
                        retry.as_secs()
                    );
                    tokio::select! {
                        () = self.stop.cancelled() => break,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }

    async fn wake(&self) {
        let _ = self
            .wakes
            .send(Wake {
                account: self.account.clone(),
            })
            .await;
    }
}

fn permanent(e: &FetchError) -> bool {
    matches!(e.class(), FailureClass::Auth | FailureClass::Tls)
}
