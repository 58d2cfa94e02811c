//! Pipeline: source batch → parse → plugin chain → one transaction per batch
//! → only then the server actions.
//!
//! Exactly-once rests on three rules:
//! 1. Nothing is changed on the server before the batch that holds the
//!    message is committed; the actions are queued in that same transaction.
//! 2. The store refuses duplicates (the message's server key, the
//!    Message-ID and the content key per account), so a batch
//!    fetched again after a crash between commit and acknowledgement, a
//!    re-imported file or a reset mailbox stores nothing twice.
//! 3. A queued action is marked done only once the server made it true (at
//!    a clean close, for sources whose actions take effect only then);
//!    failed ones are retried on the next run, never re-ingested.
//!
//! Memory is bounded: messages are fetched in batches capped by count and
//! by listed bytes, and each batch is dropped after its commit.

mod actions;
pub mod decide;

use actions::Done;
use decide::{DecideJob, decide_parallel};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::directory::{Directory, RunDirectory};
use crate::domain::{AccountSettings, Acknowledge, FolderCursor, MessageKey, Outcome};
use crate::fetch::{self, FetchError, Listed, Listing, MailSource};
use crate::parse::Origin;
use crate::parse::{self, Envelope};
use crate::plugin::{Chain, Disposition, LoadError, LoadedPlugin, PluginRuntime};
use crate::store::{
    self, AccountId, BatchCommit, BindingRole, CommitSummary, MasterKey, PendingActionId, Store,
    TenantId,
};

/// Why a run could not proceed. A failed *message* is never an error here:
/// it is quarantined; these are failures of the account or the store.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed (the batch was not committed; nothing was acked).
    #[error("store: {0}")]
    Store(#[from] store::Error),
    /// Retrieval failed (nothing of the failed batch was committed).
    #[error("retrieval: {0}")]
    Fetch(#[from] FetchError),
    /// A plugin of the tenant's chain could not be loaded.
    #[error("plugin: {0}")]
    Plugin(#[from] LoadError),
    /// The tenant has no plugin chain.
    #[error("tenant {0:?} has no plugins: add some with `intake plugin add`")]
    NoPlugins(String),
    /// No valid OAuth2 access token could be had for the account.
    #[error("authorization: {0}")]
    Authorization(#[from] crate::oauth::OAuthError),
}

/// Batch and parsing limits.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Most messages per batch (and per transaction).
    pub batch_messages: usize,
    /// Most listed bytes per batch.
    pub batch_bytes: u64,
    /// Body cap for the plugin view.
    pub max_body_bytes: usize,
    /// Tasks that decide (parse + chain) the messages of a batch at once;
    /// by default one per core.
    pub decide_workers: usize,
    /// When deferred messages are decided again, and for how long.
    pub retry: RetryPolicy,
}

/// How deferred messages (a plugin failed temporarily) are retried.
///
/// A deferred message is due at once: the account's next run decides it
/// again. Each further temporary failure waits longer — `first_delay`,
/// doubling, at most `max_delay` — and runs before the due time leave it
/// alone. After `max_attempts` decisions, or once it was first deferred
/// `max_age` ago, a temporary failure holds it in quarantine for good like a
/// permanent one. The defaults: 5 min, 10 min, 20 min … 6 h, 10 attempts
/// (about 17 hours of retrying plus the account's check intervals), 2 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the second attempt fails.
    pub first_delay: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
    /// Decisions tried (the first included) before it is held for good.
    pub max_attempts: u32,
    /// How long after it was first deferred it is held for good.
    pub max_age: Duration,
    /// Most deferred messages one run decides again (the rest wait for the
    /// next run), so a long outage does not stall fetching.
    pub per_run: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(5 * 60),
            max_delay: Duration::from_secs(6 * 60 * 60),
            max_attempts: 10,
            max_age: Duration::from_secs(2 * 24 * 60 * 60),
            per_run: 200,
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt, once `attempts` decisions (the
    /// first included, at least 2) have failed temporarily.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(2).min(30);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// Whether a message first deferred `age` ago, with `attempts`
    /// decisions made, is out of retries.
    pub fn exhausted(&self, attempts: u32, age: Duration) -> bool {
        attempts >= self.max_attempts || age >= self.max_age
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_messages: 100,
            batch_bytes: 16 << 20,
            max_body_bytes: parse::DEFAULT_MAX_BODY_BYTES,
            decide_workers: std::thread::available_parallelism().map_or(1, usize::from),
            retry: RetryPolicy::default(),
        }
    }
}

/// What one run over an account did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Account name.
    pub account: String,
    /// Messages fetched from the source.
    pub fetched: usize,
    /// Stored and linked to existing parties (including a lead that an
    /// unknown-sender decision found already made).
    pub attached: usize,
    /// Leads created.
    pub new_leads: usize,
    /// Quarantined (plugin decision, plugin failure or unparseable).
    pub quarantined: usize,
    /// Discarded (only the log line is kept).
    pub discarded: usize,
    /// Stored without links.
    pub unlinked: usize,
    /// Stored and deferred: a plugin failed temporarily (contract 0.2.0);
    /// a later run decides them again.
    pub deferred: usize,
    /// Deferred messages (of earlier runs) decided again in this run.
    pub retried: usize,
    /// … of which the chain decided now: stored (and linked).
    pub retried_stored: usize,
    /// … of which are now held in quarantine for good (a permanent failure
    /// or verdict, or out of attempts).
    pub retried_held: usize,
    /// Listed but over the size limit: not fetched.
    pub skipped_too_large: usize,
    /// Already ingested (fetched again after an interruption).
    pub duplicates: usize,
    /// Server actions carried out.
    pub actions_done: usize,
    /// Server actions that failed (retried next run).
    pub actions_failed: usize,
    /// Folders whose UIDVALIDITY changed (re-listed).
    pub uid_validity_changes: Vec<String>,
    /// The run was asked to stop before it was through: what was committed
    /// stays, the rest is left on the server for the next run.
    pub interrupted: bool,
}

/// Progress of a run, for a progress bar.
pub trait Progress: Send + Sync {
    /// `total` messages are about to be fetched from `folder`.
    fn listed(&self, account: &str, folder: &str, total: usize);
    /// `n` more messages were committed.
    fn committed(&self, n: usize);
}

/// A progress sink that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn listed(&self, _: &str, _: &str, _: usize) {}
    fn committed(&self, _: usize) {}
}

/// The ingest pipeline over one store and plugin runtime.
pub struct Pipeline {
    store: Store,
    runtime: Arc<PluginRuntime>,
    options: Options,
    /// Cancelled when the process is asked to stop: a run then fetches
    /// nothing more, finishes the commit in flight, carries out its server
    /// actions and closes the session (`LOGOUT` / `QUIT`).
    shutdown: CancellationToken,
    /// Loaded chains per tenant, with the stored chain's signature they
    /// were loaded from.
    chains: tokio::sync::Mutex<HashMap<TenantId, (String, Chain)>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline.
    pub fn new(store: Store, runtime: Arc<PluginRuntime>, options: Options) -> Self {
        Pipeline {
            store,
            runtime,
            options,
            shutdown: CancellationToken::new(),
            chains: tokio::sync::Mutex::default(),
        }
    }

    /// The same pipeline, stopped by `shutdown`: once it is cancelled, a run
    /// fetches nothing more, finishes the commit in flight, carries out the
    /// server actions of what was committed, closes the session (`LOGOUT` /
    /// `QUIT`, which makes POP3 deletions take effect) and returns its
    /// summary with `interrupted` set.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The plugin runtime (for a chain of components given by hand, as
    /// replay takes them).
    pub fn runtime(&self) -> &Arc<PluginRuntime> {
        &self.runtime
    }

    /// Batch and parsing limits.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The tenant's chain, loaded from its stored bindings (compiled
    /// components come from the on-disk cache). `key` opens the bindings'
    /// secrets; a tenant whose bindings hold secrets needs it. A chain this
    /// pipeline already loaded (the stored chain and secrets unchanged) is
    /// reused as it is.
    pub async fn chain(
        &self,
        tenant: TenantId,
        tenant_name: &str,
        key: Option<&MasterKey>,
    ) -> Result<Chain, PipelineError> {
        // The chain as stored now: a change through the command line or the
        // API (here or in another engine) is picked up at the next run.
        let signature = self.store.chain_signature(tenant).await?;
        let mut chains = self.chains.lock().await;
        if let Some((loaded, chain)) = chains.get(&tenant)
            && *loaded == signature
        {
            return Ok(chain.clone());
        }
        let mut matchers: Vec<Arc<LoadedPlugin>> = Vec::new();
        let mut policy = None;
        let mut candidates = Vec::new();
        let secrets = self.store.plugin_secrets(tenant, key).await?;
        for stored in self
            .store
            .bindings(tenant)
            .await?
            .into_iter()
            .filter(|b| b.enabled)
        {
            let mut binding = stored.to_binding();
            binding.secrets = secrets.get(&stored.name).cloned().unwrap_or_default();
            let plugin = self.runtime.load_async(binding).await?;
            let plugin = Arc::new(plugin.with_version(stored.version, false));
            match stored.role {
                BindingRole::Matcher => matchers.push(plugin),
                BindingRole::UnknownSender => policy = Some(plugin),
            }
            // A canary: its candidate is loaded beside the active version;
            // each message picks one (`Chain::for_message`).
            if let Some(canary) = &stored.canary {
                let (version, wasm) = self
                    .store
                    .binding_version(tenant, &stored.name, canary.version)
                    .await?;
                let mut binding = stored.version_binding(&version, wasm);
                binding.secrets = secrets.get(&stored.name).cloned().unwrap_or_default();
                let candidate = self.runtime.load_async(binding).await?;
                candidates.push((
                    Arc::new(candidate.with_version(canary.version, true)),
                    canary.rollout.clone(),
                ));
            }
        }
        if matchers.is_empty() && policy.is_none() {
            return Err(PipelineError::NoPlugins(tenant_name.to_string()));
        }
        let mut chain = Chain::new(matchers, policy)?;
        for (candidate, rollout) in candidates {
            chain = chain.with_candidate(candidate, rollout)?;
        }
        chains.insert(tenant, (signature, chain.clone()));
        Ok(chain)
    }

    /// Decides a stored message again with the tenant's current chain (for
    /// quarantine release `--rerun`), through the same [`decide::decide`]
    /// as ingestion.
    pub async fn decide_stored(
        &self,
        tenant: TenantId,
        tenant_name: &str,
        id: store::StoredMessageId,
        raw: bytes::Bytes,
        key: Option<&MasterKey>,
    ) -> Result<decide::Decided, PipelineError> {
        let chain = self.chain(tenant, tenant_name, key).await?;
        let envelope = Envelope {
            tenant_id: tenant_name.to_string(),
            account_id: "quarantine".into(),
            origin: Origin::File(format!("stored message {id}")),
        };
        Ok(decide::decide(
            &chain,
            Arc::new(self.store.directory()),
            &envelope,
            raw,
            self.options.max_body_bytes,
        )
        .await)
    }

    /// One pass over a mail account: connect, retry queued server actions,
    /// list, fetch, decide, commit, acknowledge, close.
    #[tracing::instrument(name = "pipeline.run", skip_all, fields(tenant = %tenant_name, account = %account))]
    pub async fn run_account(
        &self,
        tenant_name: &str,
        account: &str,
        key: &MasterKey,
        progress: &dyn Progress,
    ) -> Result<Summary, PipelineError> {
        let tenant = self.store.ensure_tenant(tenant_name).await?;
        let account_id = self.store.account_id(tenant, account).await?;
        let settings = crate::oauth::fresh_settings(&self.store, tenant, account, key).await?;
        let chain = self.chain(tenant, tenant_name, Some(key)).await?;
        let source = fetch::open(&settings).await?;
        let ctx = Run {
            tenant,
            tenant_name,
            account_id,
            settings: &settings,
            chain: &chain,
        };
        self.ingest(&ctx, source, progress).await
    }

    /// Backfill: runs `source` (local files) through the same pipeline for
    /// `account`. Files carry no server key: duplicates are caught by
    /// Message-ID and content key.
    pub async fn import(
        &self,
        tenant_name: &str,
        account: &str,
        key: &MasterKey,
        source: fetch::files::FileSource,
        progress: &dyn Progress,
    ) -> Result<Summary, PipelineError> {
        self.run_source(tenant_name, account, key, Box::new(source), progress)
            .await
    }

    /// One pass of `source` (already open) for `account`: the same list →
    /// fetch → decide → commit → acknowledge → close as
    /// [`run_account`](Self::run_account), for any [`MailSource`] — local
    /// files, or an in-memory mailbox in tests.
    #[tracing::instrument(name = "pipeline.run", skip_all, fields(tenant = %tenant_name, account = %account))]
    pub async fn run_source(
        &self,
        tenant_name: &str,
        account: &str,
        key: &MasterKey,
        source: Box<dyn MailSource>,
        progress: &dyn Progress,
    ) -> Result<Summary, PipelineError> {
        let tenant = self.store.ensure_tenant(tenant_name).await?;
        let account_id = self.store.account_id(tenant, account).await?;
        let settings = self.store.settings(tenant, account, key).await?;
        let chain = self.chain(tenant, tenant_name, Some(key)).await?;
        let ctx = Run {
            tenant,
            tenant_name,
            account_id,
            settings: &settings,
            chain: &chain,
        };
        self.ingest(&ctx, source, progress).await
    }

    /// The run over an open source: each folder in turn, then the close
    /// that makes what was acknowledged true on the server.
    async fn ingest(
        &self,
        ctx: &Run<'_>,
        mut source: Box<dyn MailSource>,
        progress: &dyn Progress,
    ) -> Result<Summary, PipelineError> {
        let overlay = Arc::new(RunDirectory::new(Arc::new(self.store.directory())));
        let mut state = RunState {
            summary: Summary {
                account: ctx.settings.name.clone(),
                ..Summary::default()
            },
            done: Done {
                at_close: source.acknowledged_at_close(),
                ..Done::default()
            },
            timings: Timings::default(),
            directory: overlay.clone(),
            overlay,
        };
        let started = Instant::now();
        // Deferred messages first: they were fetched before anything new.
        self.retry_deferred(ctx, &mut state.summary).await?;
        let mut cursors = self.store.cursors(ctx.tenant, ctx.account_id).await?;
        for folder in source.folders() {
            if self.stopping(&mut state.summary) {
                break;
            }
            let cursor = cursors.remove(&folder).unwrap_or_default();
            self.ingest_folder(ctx, &mut *source, &folder, &cursor, &mut state, progress)
                .await?;
        }
        self.close(ctx, source, &mut state.done).await?;
        let RunState {
            summary, timings, ..
        } = state;
        tracing::debug!(
            account = %ctx.settings.name,
            messages = summary.fetched,
            wall_ms = started.elapsed().as_millis() as u64,
            fetch_ms = timings.fetch.as_millis() as u64,
            decide_ms = timings.decide.as_millis() as u64,
            commit_ms = timings.commit.as_millis() as u64,
            acknowledge_ms = timings.acknowledge.as_millis() as u64,
            "run timings (fetch and decide overlap commit)"
        );
        Ok(summary)
    }

    /// Decides again the account's deferred messages that are due, with the
    /// same [`decide::decide`] as quarantine release `--rerun`, and settles
    /// each in its own transaction: stored and linked when the chain decides
    /// now, deferred once more (with backoff) on another temporary failure,
    /// held in quarantine for good on a permanent one or once out of
    /// attempts. Nothing is done on the server here: a deferred message's
    /// server copy was handled when it was first committed.
    async fn retry_deferred(
        &self,
        ctx: &Run<'_>,
        summary: &mut Summary,
    ) -> Result<(), PipelineError> {
        let policy = self.options.retry;
        let due = self
            .store
            .due_deferred(
                ctx.tenant,
                ctx.account_id,
                chrono::Utc::now(),
                policy.per_run,
            )
            .await?;
        let directory: Arc<dyn Directory> = Arc::new(self.store.directory());
        for message in due {
            if self.stopping(summary) {
                break;
            }
            let envelope = Envelope {
                tenant_id: ctx.tenant_name.to_string(),
                account_id: ctx.settings.name.clone(),
                origin: Origin::File(format!("stored message {}", message.id)),
            };
            let decided = decide::decide(
                ctx.chain,
                directory.clone(),
                &envelope,
                message.raw.into(),
                self.options.max_body_bytes,
            )
            .await;
            let plugin = decided.decision.decided_by.clone();
            let attempts = message.attempts.saturating_add(1);
            let age = (chrono::Utc::now() - message.deferred_at)
                .to_std()
                .unwrap_or_default();
            let settlement = match &decided.decision.disposition {
                _ if decided.view.is_none() => store::Settlement::Hold {
                    reason: "the stored bytes no longer parse".into(),
                    plugin,
                },
                Disposition::Attach { parties } => store::Settlement::Stored {
                    parties: parties
                        .iter()
                        .filter_map(|p| p.id.parse().ok().map(store::PartyId))
                        .collect(),
                },
                // The same lead the pipeline and a release would link to.
                Disposition::CreateLead { lead } => store::Settlement::Stored {
                    parties: vec![
                        self.store
                            .lead_for(ctx.tenant, &lead.email, &lead.name, &lead.company)
                            .await?,
                    ],
                },
                Disposition::KeepUnlinked => store::Settlement::Stored {
                    parties: Vec::new(),
                },
                Disposition::Quarantine { reason } => store::Settlement::Hold {
                    reason: reason.clone(),
                    plugin,
                },
                Disposition::Discard { reason } => store::Settlement::Discard {
                    reason: reason.clone(),
                    plugin,
                },
                Disposition::Defer { reason } if policy.exhausted(attempts, age) => {
                    store::Settlement::Hold {
                        reason: format!(
                            "{reason} (still failing temporarily after {attempts} attempts; held)"
                        ),
                        plugin,
                    }
                }
                Disposition::Defer { reason } => store::Settlement::Again {
                    attempts,
                    next_attempt_at: chrono::Utc::now()
                        + chrono::Duration::from_std(policy.delay_after(attempts))
                            .unwrap_or(chrono::Duration::MAX),
                    reason: reason.clone(),
                    plugin,
                },
            };
            match self
                .store
                .settle_deferred(ctx.tenant, message.id, &settlement, &decided.record())
                .await
            {
                Ok(()) => {}
                // Released or dropped by an admin meanwhile: theirs to say.
                Err(store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            summary.retried += 1;
            match settlement {
                store::Settlement::Stored { .. } => summary.retried_stored += 1,
                store::Settlement::Hold { .. } => summary.retried_held += 1,
                store::Settlement::Again { .. } | store::Settlement::Discard { .. } => {}
            }
            tracing::info!(account = %ctx.settings.name, message = %message.id, attempts, outcome = decided.decision.disposition.kind(), "deferred message decided again");
        }
        Ok(())
    }

    /// Whether the run was asked to stop; notes it in the summary.
    fn stopping(&self, summary: &mut Summary) -> bool {
        if self.shutdown.is_cancelled() {
            summary.interrupted = true;
        }
        summary.interrupted
    }

    /// One folder: list against its cursor, carry out the actions earlier
    /// runs left queued for it, then each listing window in turn. Windowed
    /// sources list a bounded window at a time, fetched and
    /// committed before the next, so memory does not grow with the folder.
    async fn ingest_folder(
        &self,
        ctx: &Run<'_>,
        source: &mut dyn MailSource,
        folder: &str,
        cursor: &FolderCursor,
        state: &mut RunState,
        progress: &dyn Progress,
    ) -> Result<(), PipelineError> {
        let mut listing = source.list(folder, cursor).await?;
        if listing.uid_validity_changed {
            state.summary.uid_validity_changes.push(folder.to_string());
        }
        self.retry_queued(ctx, source, folder, &mut state.done, &mut state.summary)
            .await?;
        loop {
            self.ingest_window(ctx, source, listing, state, progress)
                .await?;
            if self.stopping(&mut state.summary) {
                return Ok(());
            }
            match source.list_more(folder).await? {
                Some(more) => listing = more,
                None => return Ok(()),
            }
        }
    }

    /// One listing window: its messages in batches, then — once every one
    /// of them is committed — the cursor past what the listing skipped.
    async fn ingest_window(
        &self,
        ctx: &Run<'_>,
        source: &mut dyn MailSource,
        listing: Listing,
        state: &mut RunState,
        progress: &dyn Progress,
    ) -> Result<(), PipelineError> {
        state.summary.skipped_too_large += listing.too_large.len();
        for skipped in &listing.too_large {
            tracing::warn!(account = %ctx.settings.name, folder = %listing.folder, message = ?skipped.message, size = skipped.size,
                "message over the account's size limit: left on the server, not ingested");
        }
        progress.listed(&ctx.settings.name, &listing.folder, listing.new.len());
        let batches = batches(
            listing.new,
            self.options.batch_messages,
            self.options.batch_bytes,
        );
        self.ingest_batches(ctx, source, batches, state, progress)
            .await?;
        // Committed with an earlier batch, the skip would move the cursor
        // past messages of the same listing that a crash then leaves
        // unfetched for good; and a run asked to stop has not committed
        // them all.
        if let Some(skip) = listing.skip_to
            && !state.summary.interrupted
        {
            self.store
                .commit_batch(
                    ctx.tenant,
                    ctx.account_id,
                    &BatchCommit {
                        cursor_advances: vec![skip],
                        completed_actions: state.done.take_confirmed(),
                        ..BatchCommit::default()
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Fetches, decides, commits and acknowledges `batches` with four in
    /// flight: while batch k commits (on a task of its own, so its
    /// statements go on while this one works) and batch k+1 is decided (on
    /// tasks of its own), the server actions of batch k-1 (committed
    /// already) are carried out and batch k+2 is fetched, so the network,
    /// the plugins and the disk work at the same time. Batches are decided
    /// one after another, each against the links of those before it. Asked
    /// to stop, it fetches nothing more but decides and commits what it
    /// fetched, and carries out the server actions of what it committed.
    async fn ingest_batches(
        &self,
        ctx: &Run<'_>,
        source: &mut dyn MailSource,
        batches: Vec<Vec<Listed>>,
        state: &mut RunState,
        progress: &dyn Progress,
    ) -> Result<(), PipelineError> {
        let mut batches = batches.into_iter().enumerate();
        let mut fetched: Option<(usize, Vec<fetch::Fetched>)> = None;
        let mut waiting: Option<Decided> = None;
        let mut to_acknowledge: Vec<(PendingActionId, MessageKey, Acknowledge)> = Vec::new();
        loop {
            let next = if self.stopping(&mut state.summary) {
                None
            } else {
                batches.next()
            };
            if next.is_none() && fetched.is_none() && waiting.is_none() && to_acknowledge.is_empty()
            {
                return Ok(());
            }
            let committing = waiting
                .take()
                .map(|batch| self.start_commit(ctx, batch, &mut state.done));
            let deciding = fetched
                .take()
                .map(|(seq, messages)| self.start_decide(ctx, state, seq, messages));
            let clock = Instant::now();
            let acknowledged = self
                .carry_out(
                    ctx,
                    source,
                    std::mem::take(&mut to_acknowledge),
                    &mut state.done,
                    &mut state.summary,
                )
                .await;
            state.timings.acknowledge += clock.elapsed();
            let got = match (acknowledged, next) {
                (Err(e), _) => Err(e),
                (Ok(()), None) => Ok(None),
                (Ok(()), Some((seq, batch))) => self
                    .fetch_batch(source, state, batch)
                    .await
                    .map(|messages| Some((seq, messages))),
            };
            let decided = match deciding {
                Some(task) => match task.await {
                    Ok((batch, time)) => {
                        state.timings.decide += time;
                        Some(batch)
                    }
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                },
                None => None,
            };
            // Always wait for the commit, even when the server side
            // failed: the run ends with the store in a known state.
            if let Some(task) = committing {
                let (batch, result, time) = match task.await {
                    Ok(committed) => committed,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                state.timings.commit += time;
                to_acknowledge = record_commit(state, &batch, &result?, progress);
            }
            fetched = got?;
            if let Some(batch) = decided {
                state.summary.fetched += batch.commit.messages.len();
                waiting = Some(batch);
            }
        }
    }

    /// Commits a decided batch on a task of its own, with the queued
    /// actions the server has confirmed since the last commit.
    fn start_commit(
        &self,
        ctx: &Run<'_>,
        mut batch: Decided,
        done: &mut Done,
    ) -> tokio::task::JoinHandle<(Decided, Result<CommitSummary, store::Error>, Duration)> {
        batch.commit.completed_actions = done.take_confirmed();
        let store = self.store.clone();
        let (tenant, account) = (ctx.tenant, ctx.account_id);
        tokio::spawn(async move {
            let clock = Instant::now();
            let result = store.commit_batch(tenant, account, &batch.commit).await;
            (batch, result, clock.elapsed())
        })
    }

    /// Ends the session cleanly; only then is what was acknowledged true on
    /// the server (for sources whose actions take effect only at a clean
    /// close), and its queue rows go.
    async fn close(
        &self,
        ctx: &Run<'_>,
        source: Box<dyn MailSource>,
        done: &mut Done,
    ) -> Result<(), PipelineError> {
        source.close().await?;
        let finished: Vec<PendingActionId> = done
            .take_confirmed()
            .into_iter()
            .chain(std::mem::take(&mut done.at_close_ids))
            .collect();
        self.store.complete_actions(ctx.tenant, &finished).await?;
        Ok(())
    }

    /// Fetches a batch: exactly the messages asked for, or an error.
    async fn fetch_batch(
        &self,
        source: &mut dyn MailSource,
        state: &mut RunState,
        batch: Vec<Listed>,
    ) -> Result<Vec<fetch::Fetched>, PipelineError> {
        let keys: Vec<MessageKey> = batch.into_iter().map(|l| l.message).collect();
        let clock = Instant::now();
        let fetched = source.fetch(&keys).await?;
        state.timings.fetch += clock.elapsed();
        // A source must hand back exactly what was asked, or fail. A short
        // or mixed-up batch committed as it is would move the cursor past
        // messages never stored, so it is refused here as well.
        let asked: HashSet<&MessageKey> = keys.iter().collect();
        let got: HashSet<&MessageKey> = fetched.iter().map(|f| &f.message).collect();
        if fetched.len() != keys.len() || got != asked {
            return Err(FetchError::Incomplete {
                during: "fetch",
                received: got.intersection(&asked).count(),
                expected: keys.len(),
            }
            .into());
        }
        Ok(fetched)
    }

    /// Decides a fetched batch on a task of its own (see [`decide_batch`]),
    /// so the session can fetch the next one meanwhile.
    fn start_decide(
        &self,
        ctx: &Run<'_>,
        state: &RunState,
        seq: usize,
        fetched: Vec<fetch::Fetched>,
    ) -> tokio::task::JoinHandle<(Decided, Duration)> {
        let job = Arc::new(DecideJob {
            chain: ctx.chain.clone(),
            tenant_name: ctx.tenant_name.to_string(),
            settings: ctx.settings.clone(),
            max_body_bytes: self.options.max_body_bytes,
        });
        let (directory, overlay) = (state.directory.clone(), state.overlay.clone());
        let workers = self.options.decide_workers;
        tokio::spawn(async move {
            let clock = Instant::now();
            let decided = decide_batch(job, directory, overlay, seq, fetched, workers).await;
            (decided, clock.elapsed())
        })
    }
}

/// Decides each message of a fetched batch (parse, chain) on up to
/// `workers` tasks; the links decided are remembered for the batches after
/// it.
async fn decide_batch(
    job: Arc<DecideJob>,
    directory: Arc<dyn Directory>,
    overlay: Arc<RunDirectory>,
    seq: usize,
    fetched: Vec<fetch::Fetched>,
    workers: usize,
) -> Decided {
    let mut results = decide_parallel(&job, &directory, fetched, workers).await;
    // Threads inside the batch: the first pass decided every message
    // against the links of earlier batches only. Remember this batch's
    // links, then decide again, in order, each message that answers
    // another message of the batch, so a reply threads to a parent
    // fetched with it exactly as it would one batch later.
    let in_batch: HashSet<String> = results
        .iter()
        .filter_map(|r| r.links.as_ref().map(|(id, _)| id.clone()))
        .collect();
    for r in &results {
        if let Some((message_id, parties)) = &r.links {
            overlay.remember(&job.tenant_name, seq, message_id.clone(), parties.clone());
        }
    }
    if !in_batch.is_empty() {
        for result in &mut results {
            if !result.parents.iter().any(|p| in_batch.contains(p)) {
                continue;
            }
            let message = result.incoming.key.clone();
            let raw = result.incoming.raw.clone();
            let again = job.decide(&directory, message, raw).await;
            if let Some((message_id, parties)) = &again.links {
                overlay.remember(&job.tenant_name, seq, message_id.clone(), parties.clone());
            }
            *result = again;
        }
    }
    Decided {
        seq,
        commit: BatchCommit {
            messages: results.into_iter().map(|r| r.incoming).collect(),
            ..BatchCommit::default()
        },
    }
}

/// What a run carries from folder to folder and window to window.
struct RunState {
    summary: Summary,
    /// Server actions carried out, until their queue rows go.
    done: Done,
    timings: Timings,
    /// The store's directory plus the links of batches not yet committed.
    overlay: Arc<RunDirectory>,
    /// `overlay`, as plugins query it.
    directory: Arc<dyn Directory>,
}

/// Takes in a committed batch: its links are in the store now (with any
/// new leads), what was stored now is counted, and the actions it queued
/// are returned, to carry out next.
fn record_commit(
    state: &mut RunState,
    batch: &Decided,
    result: &CommitSummary,
    progress: &dyn Progress,
) -> Vec<(PendingActionId, MessageKey, Acknowledge)> {
    state.overlay.forget(batch.seq);
    state.overlay.parties_added(&result.created_leads);
    // Count what was stored now, not what was fetched again.
    for (i, (m, r)) in batch
        .commit
        .messages
        .iter()
        .zip(&result.results)
        .enumerate()
    {
        if matches!(r, store::MessageResult::Inserted(_)) {
            count(
                &mut state.summary,
                &m.outcome,
                result.lead_creators.contains(&i),
            );
        }
    }
    state.summary.duplicates += result.duplicates;
    state.summary.new_leads += result.leads_created;
    progress.committed(batch.commit.messages.len());
    result
        .queued
        .iter()
        .filter_map(|q| {
            let message = batch.commit.messages.get(q.message)?;
            let action = message.action.clone()?;
            Some((q.id, message.key.clone(), action))
        })
        .collect()
}

/// Time spent per stage of a run, for the debug log.
#[derive(Default)]
struct Timings {
    fetch: Duration,
    decide: Duration,
    commit: Duration,
    acknowledge: Duration,
}

/// A fetched and decided batch, waiting for its commit.
struct Decided {
    /// Its place in the folder's run (for the directory overlay).
    seq: usize,
    commit: BatchCommit,
}

/// Per-run context.
struct Run<'a> {
    tenant: TenantId,
    tenant_name: &'a str,
    account_id: AccountId,
    settings: &'a AccountSettings,
    chain: &'a Chain,
}

/// Splits listed messages into batches of at most `max` messages and about
/// `max_bytes` (a single larger message gets a batch of its own).
fn batches(listed: Vec<Listed>, max: usize, max_bytes: u64) -> Vec<Vec<Listed>> {
    let mut out = Vec::new();
    let mut current: Vec<Listed> = Vec::new();
    let mut bytes = 0;
    for item in listed {
        if !current.is_empty() && (current.len() >= max.max(1) || bytes + item.size > max_bytes) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += item.size;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Counts a stored message by its outcome; `created_lead` says whether a
/// create-lead outcome made a new lead (counted by the commit) or was linked
/// to one that existed, which is an attachment.
fn count(summary: &mut Summary, outcome: &Outcome, created_lead: bool) {
    match outcome {
        Outcome::Attach(_) => summary.attached += 1,
        Outcome::CreateLead { .. } if !created_lead => summary.attached += 1,
        Outcome::CreateLead { .. } => {}
        Outcome::Quarantine { .. } => summary.quarantined += 1,
        Outcome::Discard { .. } => summary.discarded += 1,
        Outcome::KeepUnlinked => summary.unlinked += 1,
        Outcome::Defer { .. } => summary.deferred += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(n: u64, size: u64) -> Listed {
        Listed {
            message: MessageKey::File {
                path: "a.mbox".into(),
                offset: n * 1000,
            },
            size,
        }
    }

    #[test]
    fn deferred_messages_back_off_and_run_out() {
        let policy = RetryPolicy::default();
        let minutes = |m: u64| Duration::from_secs(m * 60);
        // The second attempt is at the next run; then 5, 10, 20 … minutes.
        assert_eq!(policy.delay_after(2), minutes(5));
        assert_eq!(policy.delay_after(3), minutes(10));
        assert_eq!(policy.delay_after(4), minutes(20));
        assert_eq!(policy.delay_after(8), minutes(320));
        assert_eq!(policy.delay_after(9), minutes(360), "capped at 6 h");
        assert_eq!(policy.delay_after(u32::MAX), minutes(360));
        assert!(!policy.exhausted(9, Duration::ZERO));
        assert!(policy.exhausted(10, Duration::ZERO));
        assert!(!policy.exhausted(2, minutes(47 * 60)));
        assert!(policy.exhausted(2, minutes(48 * 60)));
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let items: Vec<Listed> = (1..=7).map(|u| listed(u, 10)).collect();
        let sizes: Vec<usize> = batches(items.clone(), 3, 1000)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [3, 3, 1]);
        let sizes: Vec<usize> = batches(items, 100, 25).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 2, 1]);
        let big = vec![listed(1, 5000), listed(2, 1)];
        assert_eq!(
            batches(big, 100, 100).len(),
            2,
            "a large message gets a batch of its own"
        );
    }
}
