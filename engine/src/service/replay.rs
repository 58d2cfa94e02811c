//! Replay: an account's stored mail through a plugin chain — the tenant's
//! chain as stored now, or components given by hand — and what that would
//! change (a dry run) or changes (apply): links added and removed, new
//! leads, dispositions.
//!
//! Every message is decided by the pipeline's one
//! [`decide`](crate::pipeline::decide::decide), against the store's
//! directory as the run leaves it (a reply threads to what its parent was
//! decided now, as ingestion threads to what was committed). The mail
//! server is never contacted: replay reads the stored bytes, a page at a
//! time, and queues no server action.
//!
//! **What counts as a change.** A message's effect is its status and its
//! links. Replay changes a message when the new decision's effect differs,
//! and then also records the new decision (`intake message explain`). A
//! message whose effect stays is left as it is — its record still says how
//! its state came about — except that a message stored before decisions
//! were recorded gets its record.
//!
//! **Passes.** Decisions depend on the directory, and apply changes it: a
//! message decided before a lead the replay created existed may decide
//! otherwise once it does (a matcher that attaches every party it knows
//! among the recipients). So apply goes over the account again while a
//! pass created leads (at most [`MAX_PASSES`]), and reports each message's
//! change against how it was before the first pass. What it leaves is what
//! the chain decides with the directory as replay leaves it, and a second
//! apply with the same chain finds nothing to do. A dry run creates no
//! leads and makes one pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::scope::Scope;
use super::{Result, Service, ServiceError, invalid};
use crate::directory::{Directory, RunDirectory};
use crate::parse::{Envelope, Origin};
use crate::pipeline::decide::decide;
use crate::pipeline::{Options, Pipeline};
use crate::plugin::{Binding, Chain, Disposition, LoadedPlugin, PluginRuntime, RuntimeConfig};
use crate::store::{MessageStatus, PartyId, ReplayRow, ReplayUpdate, StoredMessageId, TokenScope};

/// Messages read (with their bytes) and decided per page; with apply, one
/// transaction each.
pub const REPLAY_PAGE: u64 = 100;

/// Which chain replay runs.
#[derive(Debug, Clone)]
pub enum ReplayChain {
    /// The tenant's chain as stored now, each binding's active version (no
    /// canary runs).
    Stored,
    /// The tenant's chain as stored now with its canaries: each message is
    /// decided by the versions live mail would get (`intake plugin
    /// canary`).
    Rollout,
    /// These components, in chain order, each for every role it exports
    /// (as `intake plugin test` takes them).
    Components(Vec<Binding>),
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// Only messages dated at or after this (by `Date:`, else by when they
    /// were stored).
    pub since: Option<DateTime<Utc>>,
    /// The chain.
    pub chain: ReplayChain,
    /// Record the new decisions; without it, nothing is written.
    pub apply: bool,
}

/// A message as a replay change names it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartyLabel {
    /// Party id.
    pub id: i64,
    /// `contact` or `lead`.
    pub kind: String,
    /// Address.
    pub email: String,
}

/// What replay changes (or would change) for one message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReplayChange {
    /// The stored message.
    pub id: i64,
    /// Sender.
    pub from: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// How it is stored now: `linked`, `unlinked`, `quarantined` or
    /// `discarded`.
    pub was: String,
    /// How it is stored after the new decision, in the same terms.
    pub now: String,
    /// The new decision's disposition (`attach`, `create-lead`, …).
    pub decision: String,
    /// The plugin that decides now.
    pub decided_by: Option<String>,
    /// Links the new decision adds.
    pub links_added: Vec<PartyLabel>,
    /// Links it removes.
    pub links_removed: Vec<PartyLabel>,
    /// The address of a lead it creates (no lead has it yet).
    pub new_lead: Option<String>,
}

/// What a replay found, and with `applied`, did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    /// The account.
    pub account: String,
    /// Whether the changes were recorded (apply) or only reported.
    pub applied: bool,
    /// The chain that ran: `name@config-version`, in order.
    pub chain: Vec<String>,
    /// Messages decided again (stored and quarantined ones; discarded ones
    /// keep no bytes).
    pub messages: u64,
    /// Messages whose status or links change.
    pub changed: u64,
    /// Links added, over all messages.
    pub links_added: u64,
    /// Links removed.
    pub links_removed: u64,
    /// Leads created (the addresses, once each).
    pub new_leads: Vec<String>,
    /// Messages whose disposition changes (`was` ≠ `now`).
    pub dispositions_changed: u64,
    /// Messages stored before decisions were recorded that get a record
    /// (with apply) or would.
    pub records_added: u64,
    /// Messages left alone on apply because their status changed while
    /// the replay ran (an admin released one, say).
    pub skipped: u64,
    /// Passes over the account: a dry run makes one; apply makes another
    /// when it created leads, since messages decided before a lead existed
    /// may decide otherwise with it (at most [`MAX_PASSES`]).
    pub passes: u32,
    /// The changed messages, in the order they were stored.
    pub changes: Vec<ReplayChange>,
}

/// A message's status and links: what replay compares.
fn effect_label(status: MessageStatus, linked: bool) -> &'static str {
    match status {
        MessageStatus::Quarantined => "quarantined",
        MessageStatus::Discarded | MessageStatus::Dropped => "discarded",
        MessageStatus::Stored if linked => "linked",
        MessageStatus::Stored => "unlinked",
    }
}

impl Service {
    /// The pipeline this service runs, or one over its store with default
    /// options (an admin service: quarantine re-runs, replay).
    pub(super) fn pipeline_or_default(&self) -> Result<Arc<Pipeline>> {
        if let Some(p) = &self.pipeline {
            return Ok(p.clone());
        }
        let runtime = PluginRuntime::new(RuntimeConfig::default())
            .map_err(|e| ServiceError::Internal(format!("plugin runtime: {e}")))?;
        Ok(Arc::new(Pipeline::new(
            self.store.clone(),
            Arc::new(runtime),
            Options::default(),
        )))
    }

    /// Runs the stored mail of `account` through a chain and reports what
    /// changes; with `request.apply`, records it. See the module docs.
    pub async fn replay(
        &self,
        scope: &Scope,
        account: &str,
        request: &ReplayRequest,
    ) -> Result<ReplayReport> {
        scope.require(if request.apply {
            TokenScope::Write
        } else {
            TokenScope::Read
        })?;
        let tenant = scope.tenant();
        let account_id = self.store.account_id(tenant, account).await?;
        let pipeline = self.pipeline_or_default()?;
        // The directory as this run leaves it: replayed links override
        // the stored ones for threading, and leads created by an applied
        // page are seen by the next.
        let overlay = Arc::new(RunDirectory::new(Arc::new(self.store.directory())));
        let directory: Arc<dyn Directory> = overlay.clone();
        let stored = || async {
            pipeline
                .chain(tenant, scope.tenant_name(), self.key.as_ref())
                .await
                .map_err(|e| ServiceError::Refused(format!("the chain could not load: {e}")))
        };
        let chain = match &request.chain {
            ReplayChain::Stored => stored().await?.without_candidates(),
            ReplayChain::Rollout => stored().await?,
            ReplayChain::Components(bindings) => {
                components_chain(
                    pipeline.runtime(),
                    bindings,
                    scope.tenant_name(),
                    &directory,
                )
                .await?
            }
        };
        let mut report = ReplayReport {
            account: account.to_owned(),
            applied: request.apply,
            chain: chain
                .matchers()
                .iter()
                .chain(chain.policy())
                .map(|p| match p.version() {
                    Some(v) => format!("{} v{}@{}", p.name(), v.number, p.config_version()),
                    None => format!("{}@{}", p.name(), p.config_version()),
                })
                .chain(chain.candidates().iter().map(|(p, r)| {
                    format!(
                        "{} v{}@{} (canary: {} %{})",
                        p.name(),
                        p.version().map_or(0, |v| v.number),
                        p.config_version(),
                        r.share_percent(),
                        if r.accounts.is_empty() {
                            String::new()
                        } else {
                            format!(", accounts {}", r.accounts.join(","))
                        }
                    )
                }))
                .collect(),
            ..ReplayReport::default()
        };
        let mut run = Run {
            service: self,
            scope,
            chain: &chain,
            overlay: &overlay,
            directory,
            max_body_bytes: pipeline.options().max_body_bytes,
            new_leads: BTreeSet::new(),
            parties: HashMap::new(),
        };
        // Changed messages by id, merged over passes.
        let mut changes: Vec<ReplayChange> = Vec::new();
        let mut seq = 0;
        for pass in 0..MAX_PASSES {
            let mut after: Option<StoredMessageId> = None;
            let mut created_leads = 0;
            loop {
                let page = self
                    .store
                    .replay_page(tenant, account_id, request.since, after, REPLAY_PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                let mut updates = Vec::new();
                for row in page {
                    if pass == 0 {
                        report.messages += 1;
                    }
                    let (change, update) = run.message(account, seq, row, &mut report).await?;
                    if let Some(change) = change {
                        merge(&mut changes, change);
                    }
                    updates.extend(update);
                }
                if request.apply && !updates.is_empty() {
                    let applied = self
                        .store
                        .apply_replay(tenant, account_id, &updates)
                        .await?;
                    report.skipped += applied.skipped as u64;
                    created_leads += applied.created_leads.len();
                    overlay.parties_added(&applied.created_leads);
                }
                if request.apply {
                    // The page's links are in the store now: the overlay
                    // need not hold them (a dry run keeps them all).
                    overlay.forget(seq);
                }
                seq += 1;
            }
            report.passes = pass + 1;
            // Messages decided before a lead this pass created existed may
            // decide otherwise now (a matcher that attaches every party it
            // knows): apply goes on until the directory stays as it is, so
            // a second apply finds nothing to do.
            if !request.apply || created_leads == 0 {
                break;
            }
        }
        changes.retain(ReplayChange::changes_anything);
        for c in &changes {
            report.changed += 1;
            report.links_added += c.links_added.len() as u64;
            report.links_removed += c.links_removed.len() as u64;
            if c.was != c.now {
                report.dispositions_changed += 1;
            }
        }
        report.changes = changes;
        report.new_leads = run.new_leads.into_iter().collect();
        Ok(report)
    }
}

/// Most passes an apply makes over the account (see [`Service::replay`]).
pub const MAX_PASSES: u32 = 3;

/// Adds a pass's change of one message to the changes so far: against the
/// message as it was before the first pass.
fn merge(changes: &mut Vec<ReplayChange>, next: ReplayChange) {
    let Some(first) = changes.iter_mut().find(|c| c.id == next.id) else {
        changes.push(next);
        return;
    };
    let has = |list: &[PartyLabel], p: &PartyLabel| list.iter().any(|q| q.id == p.id);
    // Net of both passes: added = (a.added ∪ (b.added − a.removed)) − b.removed,
    // removed = (a.removed ∪ (b.removed − a.added)) − b.added.
    let mut added: Vec<PartyLabel> = first.links_added.clone();
    added.extend(
        next.links_added
            .iter()
            .filter(|p| !has(&first.links_removed, p))
            .cloned(),
    );
    added.retain(|p| !has(&next.links_removed, p));
    let mut removed: Vec<PartyLabel> = first.links_removed.clone();
    removed.extend(
        next.links_removed
            .iter()
            .filter(|p| !has(&first.links_added, p))
            .cloned(),
    );
    removed.retain(|p| !has(&next.links_added, p));
    first.links_added = added;
    first.links_removed = removed;
    first.now = next.now;
    first.decision = next.decision;
    first.decided_by = next.decided_by;
    first.new_lead = first.new_lead.take().or(next.new_lead);
}

impl ReplayChange {
    /// Whether the message ends up other than it was.
    fn changes_anything(&self) -> bool {
        self.was != self.now
            || !self.links_added.is_empty()
            || !self.links_removed.is_empty()
            || self.new_lead.is_some()
    }
}

/// A chain of components given by hand, as `intake plugin test` builds it:
/// in the order given, each for every role it exports, at most one
/// unknown-sender policy; each must accept its configuration.
async fn components_chain(
    runtime: &Arc<PluginRuntime>,
    bindings: &[Binding],
    tenant_name: &str,
    directory: &Arc<dyn Directory>,
) -> Result<Chain> {
    if bindings.is_empty() {
        return Err(invalid("chain", "give at least one component"));
    }
    let mut matchers: Vec<Arc<LoadedPlugin>> = Vec::new();
    let mut policy: Option<Arc<LoadedPlugin>> = None;
    for binding in bindings {
        let plugin = runtime
            .load_async(binding.clone())
            .await
            .map_err(|e| invalid("chain", e.to_string()))?;
        plugin
            .check_init(tenant_name, directory.clone())
            .await
            .map_err(|e| invalid("chain", e.to_string()))?;
        let plugin = Arc::new(plugin);
        let roles = plugin.roles();
        if roles.matcher {
            matchers.push(plugin.clone());
        }
        if roles.unknown_sender {
            if let Some(existing) = &policy {
                return Err(invalid(
                    "chain",
                    format!(
                        "both {} and {} export the unknown-sender role; pass only one",
                        existing.name(),
                        plugin.name()
                    ),
                ));
            }
            policy = Some(plugin);
        }
    }
    Chain::new(matchers, policy).map_err(|e| invalid("chain", e.to_string()))
}

/// One replay's state across pages.
struct Run<'a> {
    service: &'a Service,
    scope: &'a Scope,
    chain: &'a Chain,
    overlay: &'a Arc<RunDirectory>,
    directory: Arc<dyn Directory>,
    max_body_bytes: usize,
    /// Addresses of the leads the run creates (or would).
    new_leads: BTreeSet<String>,
    /// Parties named in changes, by id.
    parties: HashMap<i64, PartyLabel>,
}

impl Run<'_> {
    /// Decides one stored message again and compares: its change, if it
    /// changes, and the update to apply if it changes (or has no record
    /// yet).
    async fn message(
        &mut self,
        account: &str,
        seq: usize,
        row: ReplayRow,
        report: &mut ReplayReport,
    ) -> Result<(Option<ReplayChange>, Option<ReplayUpdate>)> {
        let tenant_name = self.scope.tenant_name();
        let envelope = Envelope {
            tenant_id: tenant_name.to_owned(),
            account_id: account.to_owned(),
            origin: Origin::from(&row.key),
        };
        let decided = decide(
            self.chain,
            self.directory.clone(),
            &envelope,
            row.raw.into(),
            self.max_body_bytes,
        )
        .await;
        // A plugin failed temporarily: no decision to compare, so the
        // message stays as stored (a later replay decides it).
        if let Disposition::Defer { reason } = &decided.decision.disposition {
            tracing::warn!(account, message = %row.id, %reason, "replay: a plugin failed temporarily; message left as it is");
            return Ok((None, None));
        }
        // What later replies thread to: this decision, not the stored one.
        if let Some(message_id) = decided.view.as_ref().and_then(|v| v.message_id.clone()) {
            match (decided.thread_links(), &decided.decision.disposition) {
                (Some((_, parties)), _) => {
                    self.overlay.remember(tenant_name, seq, message_id, parties)
                }
                // Linked to a lead: the store answers once it exists.
                (None, Disposition::CreateLead { .. }) => {}
                (None, _) => self
                    .overlay
                    .remember(tenant_name, seq, message_id, Vec::new()),
            }
        }
        let tenant = self.scope.tenant();
        let mut links: BTreeSet<PartyId> = BTreeSet::new();
        let mut new_lead = None;
        let status = match &decided.decision.disposition {
            Disposition::Attach { parties } => {
                links.extend(
                    parties
                        .iter()
                        .filter_map(|p| p.id.parse().ok().map(PartyId)),
                );
                MessageStatus::Stored
            }
            Disposition::CreateLead { lead } => {
                match self
                    .service
                    .store
                    .lead_by_email(tenant, &lead.email)
                    .await?
                {
                    Some(id) => {
                        links.insert(id);
                    }
                    None => new_lead = Some(lead.email.clone()),
                }
                MessageStatus::Stored
            }
            Disposition::KeepUnlinked => MessageStatus::Stored,
            Disposition::Quarantine { .. } => MessageStatus::Quarantined,
            Disposition::Discard { .. } => MessageStatus::Discarded,
            // Returned above: a deferral leaves the message as it is.
            Disposition::Defer { .. } => row.status,
        };
        let was = effect_label(row.status, !row.links.is_empty());
        let now = effect_label(status, !links.is_empty() || new_lead.is_some());
        let added: Vec<PartyId> = links.difference(&row.links).copied().collect();
        let removed: Vec<PartyId> = row.links.difference(&links).copied().collect();
        let changed = was != now || !added.is_empty() || !removed.is_empty() || new_lead.is_some();
        let unrecorded = row.decision.is_none();
        if unrecorded {
            report.records_added += 1;
        }
        let update = (changed || unrecorded).then(|| ReplayUpdate {
            id: row.id,
            status: row.status,
            outcome: decided.outcome(),
            decided_by: decided.decision.decided_by.clone(),
            record: decided.record(),
        });
        if !changed {
            return Ok((None, update));
        }
        if let Some(email) = &new_lead {
            self.new_leads.insert(email.clone());
        }
        let change = ReplayChange {
            id: row.id.0,
            from: row.from,
            subject: row.subject,
            was: was.to_owned(),
            now: now.to_owned(),
            decision: decided.decision.disposition.kind().to_owned(),
            decided_by: decided.decision.decided_by.clone(),
            links_added: self.labels(&added).await?,
            links_removed: self.labels(&removed).await?,
            new_lead,
        };
        Ok((Some(change), update))
    }

    /// The parties `ids` as a change names them.
    async fn labels(&mut self, ids: &[PartyId]) -> Result<Vec<PartyLabel>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(known) = self.parties.get(&id.0) {
                out.push(known.clone());
                continue;
            }
            let label = match self.service.store.party(self.scope.tenant(), *id).await? {
                Some(p) => PartyLabel {
                    id: id.0,
                    kind: format!("{:?}", p.kind).to_lowercase(),
                    email: p.email,
                },
                None => PartyLabel {
                    id: id.0,
                    kind: "removed".into(),
                    email: String::new(),
                },
            };
            self.parties.insert(id.0, label.clone());
            out.push(label);
        }
        Ok(out)
    }
}
