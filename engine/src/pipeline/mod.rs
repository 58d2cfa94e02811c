//! Pipeline: source batch → parse → plugin chain → one transaction per batch
//! → only then the server actions.
//!
//! Exactly-once rests on three rules:
//! 1. Nothing is changed on the server before the batch that holds the
//!    message is committed; the actions are queued in that same transaction.
//! 2. The store refuses duplicates (IMAP folder + UIDVALIDITY + UID, POP3
//!    UIDL, and the Message-ID per account), so a batch fetched again after
//!    a crash between commit and acknowledgement stores nothing twice.
//! 3. A queued action is marked done only after the session closed cleanly
//!    (POP3 `DELE` takes effect at `QUIT`); failed ones are retried on the
//!    next run, never re-ingested.
//!
//! Memory is bounded: messages are fetched in batches capped by count and
//! by listed bytes, and each batch is dropped after its commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;

use crate::directory::{Directory, DirectoryError, Page, Party, PartyRef};
use crate::fetch::{
    self, AccountSettings, Acknowledge, FetchError, FolderCursor, Listed, MailSource, MessageRef,
    Protocol,
};
use crate::parse::{self, Envelope};
use crate::plugin::bindings::types::{ImapOrigin, Origin};
use crate::plugin::{Chain, LoadError, LoadedPlugin, PluginRuntime, ServerAction};
use crate::store::{
    self, AccountId, BatchCommit, BindingRole, CursorAdvance, IncomingMessage, MasterKey,
    MessageMeta, Outcome, PendingActionId, ServerKey, Store, TenantId,
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_messages: 100,
            batch_bytes: 16 << 20,
            max_body_bytes: parse::DEFAULT_MAX_BODY_BYTES,
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
    /// Stored and linked to existing parties.
    pub attached: usize,
    /// Leads created.
    pub new_leads: usize,
    /// Quarantined (plugin decision, plugin failure or unparseable).
    pub quarantined: usize,
    /// Discarded (only the log line is kept).
    pub discarded: usize,
    /// Stored without links.
    pub unlinked: usize,
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
    /// Loaded chains per tenant, for the life of the pipeline.
    chains: tokio::sync::Mutex<HashMap<TenantId, Chain>>,
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
            chains: tokio::sync::Mutex::default(),
        }
    }

    /// The tenant's chain, loaded from its stored bindings (compiled
    /// components come from the on-disk cache).
    pub async fn chain(&self, tenant: TenantId, tenant_name: &str) -> Result<Chain, PipelineError> {
        let mut chains = self.chains.lock().await;
        if let Some(chain) = chains.get(&tenant) {
            return Ok(chain.clone());
        }
        let mut matchers: Vec<Arc<LoadedPlugin>> = Vec::new();
        let mut policy = None;
        for stored in self
            .store
            .bindings(tenant)
            .await?
            .into_iter()
            .filter(|b| b.enabled)
        {
            let plugin = Arc::new(self.runtime.load(stored.to_binding())?);
            match stored.role {
                BindingRole::Matcher => matchers.push(plugin),
                BindingRole::UnknownSender => policy = Some(plugin),
            }
        }
        if matchers.is_empty() && policy.is_none() {
            return Err(PipelineError::NoPlugins(tenant_name.to_string()));
        }
        let chain = Chain::new(matchers, policy)?;
        chains.insert(tenant, chain.clone());
        Ok(chain)
    }

    /// One pass over a mail account: connect, retry queued server actions,
    /// list, fetch, decide, commit, acknowledge, close.
    pub async fn run_account(
        &self,
        tenant_name: &str,
        account: &str,
        key: &MasterKey,
        progress: &dyn Progress,
    ) -> Result<Summary, PipelineError> {
        let tenant = self.store.ensure_tenant(tenant_name).await?;
        let account_id = self.store.account_id(tenant, account).await?;
        let settings = self.store.settings(tenant, account, key).await?;
        let first_sync_limit = self
            .store
            .account(tenant, account)
            .await?
            .config
            .first_sync
            .max_messages;
        let chain = self.chain(tenant, tenant_name).await?;
        let source = fetch::open(&settings).await?;
        let ctx = Run {
            tenant,
            tenant_name,
            account_id,
            settings: &settings,
            chain: &chain,
            first_sync_limit,
        };
        self.ingest(&ctx, source, progress).await
    }

    /// Backfill: runs `source` (local files) through the same pipeline for
    /// `account`. Files carry no server key: duplicates are caught by
    /// Message-ID.
    pub async fn import(
        &self,
        tenant_name: &str,
        account: &str,
        key: &MasterKey,
        source: fetch::files::FileSource,
        progress: &dyn Progress,
    ) -> Result<Summary, PipelineError> {
        let tenant = self.store.ensure_tenant(tenant_name).await?;
        let account_id = self.store.account_id(tenant, account).await?;
        let settings = self.store.settings(tenant, account, key).await?;
        let chain = self.chain(tenant, tenant_name).await?;
        let ctx = Run {
            tenant,
            tenant_name,
            account_id,
            settings: &settings,
            chain: &chain,
            first_sync_limit: None,
        };
        self.ingest(&ctx, Box::new(source), progress).await
    }

    async fn ingest(
        &self,
        ctx: &Run<'_>,
        mut source: Box<dyn MailSource>,
        progress: &dyn Progress,
    ) -> Result<Summary, PipelineError> {
        let mut summary = Summary {
            account: ctx.settings.name.clone(),
            ..Summary::default()
        };
        let cursors = self.store.cursors(ctx.tenant, ctx.account_id).await?;
        let overlay = Arc::new(RunDirectory {
            inner: Arc::new(self.store.directory()),
            links: Mutex::default(),
        });
        let directory: Arc<dyn Directory> = overlay.clone();
        let mut done: Vec<PendingActionId> = Vec::new();

        for folder in source.folders() {
            let cursor = cursors.get(&folder).cloned().unwrap_or_default();
            let mut listing = source.list(&folder, &cursor).await?;
            if listing.uid_validity_changed {
                summary.uid_validity_changes.push(folder.clone());
            }
            summary.skipped_too_large += listing.too_large.len();
            for skipped in &listing.too_large {
                tracing::warn!(account = %ctx.settings.name, folder, message = ?skipped.message, size = skipped.size,
                    "message over the account's size limit: left on the server, not ingested");
            }

            // Queued actions from earlier runs first (for POP3, message
            // numbers change per session: map them through a full listing).
            let numbers =
                if ctx.settings.protocol == Protocol::Pop3 && !folder_is_files(&listing.new) {
                    pop3_numbers(&mut *source, &folder).await?
                } else {
                    HashMap::new()
                };
            self.act(
                ctx,
                &mut *source,
                &folder,
                &numbers,
                &mut done,
                &mut summary,
            )
            .await?;

            // First sync: only the newest N (IMAP), the rest is skipped by
            // advancing the cursor past it.
            let mut advances = Vec::new();
            if let (Some(limit), true) = (ctx.first_sync_limit, is_fresh(&cursor))
                && listing.new.len() > limit as usize
            {
                let cut = listing.new.len() - limit as usize;
                let older: Vec<Listed> = listing.new.drain(..cut).collect();
                if let Some(Listed {
                    message:
                        MessageRef::Imap {
                            folder,
                            uid_validity,
                            uid,
                        },
                    ..
                }) = older.last()
                {
                    advances.push(CursorAdvance {
                        folder: folder.clone(),
                        uid_validity: *uid_validity,
                        last_uid: *uid,
                    });
                }
            }
            // Past messages skipped as too large, too.
            if let Some(Listed {
                message:
                    MessageRef::Imap {
                        folder,
                        uid_validity,
                        uid,
                    },
                ..
            }) = listing.too_large.iter().max_by_key(|l| match l.message {
                MessageRef::Imap { uid, .. } => uid,
                _ => 0,
            }) {
                advances.push(CursorAdvance {
                    folder: folder.clone(),
                    uid_validity: *uid_validity,
                    last_uid: *uid,
                });
            }

            progress.listed(&ctx.settings.name, &folder, listing.new.len());
            let mut first = true;
            for batch in batches(
                &listing.new,
                self.options.batch_messages,
                self.options.batch_bytes,
            ) {
                let refs: Vec<MessageRef> = batch.iter().map(|l| l.message.clone()).collect();
                let fetched = source.fetch(&refs).await?;
                summary.fetched += fetched.len();
                let mut commit = BatchCommit::default();
                if first {
                    commit.cursor_advances = std::mem::take(&mut advances);
                    first = false;
                }
                for f in fetched {
                    let (incoming, links) = self.decide(ctx, &directory, f.message, f.raw).await;
                    if let Some((message_id, parties)) = links {
                        overlay.remember(ctx.tenant_name, message_id, parties);
                    }
                    commit.messages.push(incoming);
                }
                let result = self
                    .store
                    .commit_batch(ctx.tenant, ctx.account_id, &commit)
                    .await?;
                // Count what was stored now, not what was fetched again.
                for (m, r) in commit.messages.iter().zip(&result.results) {
                    if matches!(r, store::MessageResult::Inserted(_)) {
                        count(&mut summary, &m.outcome);
                    }
                }
                summary.duplicates += result.duplicates;
                summary.new_leads += result.leads_created;
                progress.committed(commit.messages.len());
                drop(commit);
                self.act(
                    ctx,
                    &mut *source,
                    &folder,
                    &numbers_for(&batch),
                    &mut done,
                    &mut summary,
                )
                .await?;
            }
            if !advances.is_empty() {
                self.store
                    .commit_batch(
                        ctx.tenant,
                        ctx.account_id,
                        &BatchCommit {
                            messages: Vec::new(),
                            cursor_advances: advances,
                        },
                    )
                    .await?;
            }
        }

        source.close().await?;
        // The session ended cleanly: what was acknowledged is now true on
        // the server (POP3 deletions happen at QUIT).
        self.store.complete_actions(ctx.tenant, &done).await?;
        Ok(summary)
    }

    /// Parses and runs the chain on one message; never fails (a failure is
    /// a quarantine outcome with the raw bytes). Also returns the message's
    /// Message-ID and the parties it was attached to, for threading later
    /// messages of the same run.
    async fn decide(
        &self,
        ctx: &Run<'_>,
        directory: &Arc<dyn Directory>,
        message: MessageRef,
        raw: bytes::Bytes,
    ) -> (IncomingMessage, Option<(String, Vec<Party>)>) {
        let envelope = Envelope {
            tenant_id: ctx.tenant_name.to_string(),
            account_id: ctx.settings.name.clone(),
            origin: origin(&message),
        };
        let key = ServerKey::from(&message);
        match parse::parse(raw.clone(), &envelope, self.options.max_body_bytes) {
            Err(e) => (
                IncomingMessage {
                    key,
                    raw,
                    meta: MessageMeta::default(),
                    outcome: Outcome::Quarantine {
                        reason: format!("unparseable: {e}"),
                        plugin: None,
                    },
                    action: Some(default_action(ctx.settings)),
                },
                None,
            ),
            Ok(parsed) => {
                let decision = ctx.chain.run(&parsed, directory.clone()).await;
                let view = &parsed.view;
                let meta = MessageMeta {
                    message_id: view.message_id.clone(),
                    subject: view.subject.clone(),
                    from: view.from.first().map(|m| m.address.clone()),
                    date: view
                        .date
                        .as_ref()
                        .and_then(|d| chrono::DateTime::from_timestamp(d.unix_seconds, 0)),
                };
                let action = capped_action(ctx.settings, decision.server_action.as_ref());
                let links = match (&view.message_id, &decision.disposition) {
                    (Some(id), crate::plugin::Disposition::Attach { parties }) => {
                        Some((id.clone(), parties.clone()))
                    }
                    _ => None,
                };
                let incoming = IncomingMessage {
                    key,
                    raw,
                    meta,
                    outcome: Outcome::from_decision(&decision),
                    action: Some(action),
                };
                (incoming, links)
            }
        }
    }

    /// Carries out the account's queued actions that belong to `folder`;
    /// successes are remembered in `done` (completed after a clean close),
    /// failures are recorded for the next run.
    async fn act(
        &self,
        ctx: &Run<'_>,
        source: &mut dyn MailSource,
        folder: &str,
        pop3_numbers: &HashMap<String, u32>,
        done: &mut Vec<PendingActionId>,
        summary: &mut Summary,
    ) -> Result<(), PipelineError> {
        let pending = self
            .store
            .pending_actions(ctx.tenant, ctx.account_id)
            .await?;
        let mut todo: Vec<(PendingActionId, MessageRef, Acknowledge)> = Vec::new();
        for p in pending {
            if done.contains(&p.id) {
                continue;
            }
            let message = match &p.key {
                ServerKey::Imap {
                    folder: f,
                    uid_validity,
                    uid,
                } if f == folder => MessageRef::Imap {
                    folder: f.clone(),
                    uid_validity: *uid_validity,
                    uid: *uid,
                },
                ServerKey::Pop3 { uidl } => match pop3_numbers.get(uidl) {
                    Some(&number) => MessageRef::Pop3 {
                        uidl: uidl.clone(),
                        number,
                    },
                    // Not on the server any more (deleted elsewhere): done.
                    None if !pop3_numbers.is_empty() => {
                        done.push(p.id);
                        continue;
                    }
                    None => continue,
                },
                _ => continue,
            };
            todo.push((p.id, message, p.action));
        }
        if todo.is_empty() {
            return Ok(());
        }
        let actions: Vec<(MessageRef, Acknowledge)> = todo
            .iter()
            .map(|(_, m, a)| (m.clone(), a.clone()))
            .collect();
        match source.acknowledge(&actions).await {
            Ok(()) => {
                summary.actions_done += todo.len();
                done.extend(todo.iter().map(|(id, _, _)| *id));
            }
            Err(e) => {
                summary.actions_failed += todo.len();
                tracing::warn!(account = %ctx.settings.name, error = %e, "server actions failed; they are retried on the next run");
                for (id, _, _) in &todo {
                    self.store
                        .record_action_failure(ctx.tenant, *id, &e.to_string())
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// The store's directory, plus the links decided earlier in this run and
/// not yet committed, so a reply later in the same batch threads correctly.
struct RunDirectory {
    inner: Arc<dyn Directory>,
    /// (tenant, Message-ID) → parties.
    links: Mutex<HashMap<(String, String), Vec<Party>>>,
}

impl RunDirectory {
    fn remember(&self, tenant: &str, message_id: String, parties: Vec<Party>) {
        self.links
            .lock()
            .expect("links lock")
            .insert((tenant.to_string(), message_id), parties);
    }
}

#[async_trait]
impl Directory for RunDirectory {
    async fn find_by_address(
        &self,
        tenant: &str,
        address: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        self.inner.find_by_address(tenant, address, limit).await
    }

    async fn find_by_domain(
        &self,
        tenant: &str,
        domain: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        self.inner.find_by_domain(tenant, domain, limit).await
    }

    async fn parties_for_message_id(
        &self,
        tenant: &str,
        message_id: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let pending = self
            .links
            .lock()
            .expect("links lock")
            .get(&(tenant.to_string(), message_id.to_string()))
            .cloned();
        match pending {
            Some(parties) => Ok(Page::capped(parties, limit)),
            None => {
                self.inner
                    .parties_for_message_id(tenant, message_id, limit)
                    .await
            }
        }
    }

    async fn get(&self, tenant: &str, party: &PartyRef) -> Result<Option<Party>, DirectoryError> {
        self.inner.get(tenant, party).await
    }
}

/// Per-run context.
struct Run<'a> {
    tenant: TenantId,
    tenant_name: &'a str,
    account_id: AccountId,
    settings: &'a AccountSettings,
    chain: &'a Chain,
    first_sync_limit: Option<u32>,
}

fn is_fresh(cursor: &FolderCursor) -> bool {
    cursor.uid_validity.is_none() && cursor.last_uid == 0 && cursor.seen_uidls.is_empty()
}

fn folder_is_files(listed: &[Listed]) -> bool {
    listed
        .first()
        .is_some_and(|l| matches!(l.message, MessageRef::File { .. }))
}

/// UIDL → message number in this POP3 session.
async fn pop3_numbers(
    source: &mut dyn MailSource,
    folder: &str,
) -> Result<HashMap<String, u32>, FetchError> {
    let all = source.list(folder, &FolderCursor::default()).await?;
    Ok(all
        .new
        .iter()
        .chain(all.too_large.iter())
        .filter_map(|l| match &l.message {
            MessageRef::Pop3 { uidl, number } => Some((uidl.clone(), *number)),
            _ => None,
        })
        .collect())
}

/// POP3 numbers of the messages of a batch (this session's).
fn numbers_for(batch: &[Listed]) -> HashMap<String, u32> {
    batch
        .iter()
        .filter_map(|l| match &l.message {
            MessageRef::Pop3 { uidl, number } => Some((uidl.clone(), *number)),
            _ => None,
        })
        .collect()
}

/// Splits listed messages into batches of at most `max` messages and about
/// `max_bytes` (a single larger message gets a batch of its own).
fn batches(listed: &[Listed], max: usize, max_bytes: u64) -> Vec<Vec<Listed>> {
    let mut out = Vec::new();
    let mut current: Vec<Listed> = Vec::new();
    let mut bytes = 0;
    for item in listed {
        if !current.is_empty() && (current.len() >= max.max(1) || bytes + item.size > max_bytes) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += item.size;
        current.push(item.clone());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn origin(message: &MessageRef) -> Origin {
    match message {
        MessageRef::Imap {
            folder,
            uid_validity,
            uid,
        } => Origin::Imap(ImapOrigin {
            folder: folder.clone(),
            uid_validity: *uid_validity,
            uid: *uid,
        }),
        MessageRef::Pop3 { uidl, .. } => Origin::Pop3(uidl.clone()),
        MessageRef::File { path, offset } => Origin::File(if *offset == 0 {
            path.clone()
        } else {
            format!("{path}@{offset}")
        }),
    }
}

/// What the account does with a message once it is stored: keep a copy →
/// mark it seen; otherwise delete it. Imports never touch their files.
fn default_action(settings: &AccountSettings) -> Acknowledge {
    if settings.keep_on_server {
        Acknowledge::MarkSeen
    } else {
        Acknowledge::Delete
    }
}

/// A plugin's suggestion, capped by the account: an account that keeps
/// copies never deletes; POP3 cannot move.
fn capped_action(settings: &AccountSettings, suggested: Option<&ServerAction>) -> Acknowledge {
    match suggested {
        None => default_action(settings),
        Some(ServerAction::Leave) => Acknowledge::Leave,
        Some(ServerAction::MarkSeen) => Acknowledge::MarkSeen,
        Some(ServerAction::Delete) if settings.keep_on_server => Acknowledge::MarkSeen,
        Some(ServerAction::Delete) => Acknowledge::Delete,
        Some(ServerAction::MoveTo(_)) if settings.protocol == Protocol::Pop3 => {
            default_action(settings)
        }
        Some(ServerAction::MoveTo(folder)) => Acknowledge::MoveTo(folder.clone()),
    }
}

fn count(summary: &mut Summary, outcome: &Outcome) {
    match outcome {
        Outcome::Attach(_) => summary.attached += 1,
        Outcome::CreateLead { .. } => {}
        Outcome::Quarantine { .. } => summary.quarantined += 1,
        Outcome::Discard { .. } => summary.discarded += 1,
        Outcome::KeepUnlinked => summary.unlinked += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(uid: u32, size: u64) -> Listed {
        Listed {
            message: MessageRef::Imap {
                folder: "INBOX".into(),
                uid_validity: 1,
                uid,
            },
            size,
        }
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let items: Vec<Listed> = (1..=7).map(|u| listed(u, 10)).collect();
        let sizes: Vec<usize> = batches(&items, 3, 1000).iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 1]);
        let sizes: Vec<usize> = batches(&items, 100, 25).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 2, 1]);
        let big = vec![listed(1, 5000), listed(2, 1)];
        assert_eq!(
            batches(&big, 100, 100).len(),
            2,
            "a large message gets a batch of its own"
        );
    }

    #[test]
    fn plugin_suggestions_are_capped_by_the_account() {
        let mut a = AccountSettings::new(
            "a",
            Protocol::Imap,
            "h",
            fetch::Security::Tls,
            "u",
            fetch::Secret::new("p"),
        );
        a.keep_on_server = true;
        assert_eq!(
            capped_action(&a, Some(&ServerAction::Delete)),
            Acknowledge::MarkSeen
        );
        assert_eq!(capped_action(&a, None), Acknowledge::MarkSeen);
        a.keep_on_server = false;
        assert_eq!(capped_action(&a, None), Acknowledge::Delete);
        assert_eq!(
            capped_action(&a, Some(&ServerAction::MoveTo("X".into()))),
            Acknowledge::MoveTo("X".into())
        );
        a.protocol = Protocol::Pop3;
        assert_eq!(
            capped_action(&a, Some(&ServerAction::MoveTo("X".into()))),
            Acknowledge::Delete
        );
    }
}
