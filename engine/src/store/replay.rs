//! Replay's part of the store: an account's stored mail in pages (never
//! all of its bytes at once), and applying a new decision to a stored
//! message — its status, links and decision record — in one transaction
//! per page.
//!
//! A new decision is applied as ingestion would have applied it: links
//! follow the outcome, a create-lead outcome links to the tenant's lead
//! with that address or a new one made by the same [`super::batch`] code
//! ingestion and quarantine release use, a quarantine outcome holds the
//! message, a discard outcome keeps only its keys. Nothing is queued for
//! the mail server: replay never touches it.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};

use super::batch::{MessageMeta, OutcomeRows, decision_json, lead_for, link};
use super::entity::{message_links, messages, parties, quarantine};
use super::inbox::MessageStatus;
use super::{
    AccountId, PartyId, Result, Store, StoredMessageId, TenantId, corrupt, lock_tenant,
    normalise_email, now,
};
use crate::domain::{DecisionRecord, MessageKey, Outcome};

/// One stored message as replay reads it: its bytes, how it is stored now
/// and how it was decided.
#[derive(Debug, Clone)]
pub struct ReplayRow {
    /// Its key.
    pub id: StoredMessageId,
    /// Where it came from on the server (a file import has no server key:
    /// [`MessageKey::File`] naming the stored message).
    pub key: MessageKey,
    /// Stored or quarantined (rows without bytes are not replayed).
    pub status: MessageStatus,
    /// The exact bytes.
    pub raw: Vec<u8>,
    /// Subject, for reports.
    pub subject: Option<String>,
    /// Sender, for reports.
    pub from: Option<String>,
    /// The recorded decision, if one was recorded.
    pub decision: Option<DecisionRecord>,
    /// The parties it is linked to now.
    pub links: BTreeSet<PartyId>,
}

/// A new decision for a stored message, to apply.
#[derive(Debug, Clone)]
pub struct ReplayUpdate {
    /// The message.
    pub id: StoredMessageId,
    /// Its status when it was read (the update is skipped if it changed
    /// since, e.g. an admin released it meanwhile).
    pub status: MessageStatus,
    /// What the chain decided now.
    pub outcome: Outcome,
    /// The plugin that decided.
    pub decided_by: Option<String>,
    /// How.
    pub record: DecisionRecord,
}

/// What applying a page of updates did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayApplied {
    /// Messages updated.
    pub updated: usize,
    /// Messages skipped because their status changed since they were read.
    pub skipped: usize,
    /// Links added.
    pub linked: usize,
    /// Links removed.
    pub unlinked: usize,
    /// The addresses of the leads created.
    pub created_leads: Vec<String>,
}

impl Store {
    /// The account's stored and quarantined messages with their bytes,
    /// in the order they were stored: at most `limit`, after `after`, and
    /// (with `since`) only those dated at or after it (by `Date:`, else by
    /// when they were stored).
    pub async fn replay_page(
        &self,
        tenant: TenantId,
        account: AccountId,
        since: Option<DateTime<Utc>>,
        after: Option<StoredMessageId>,
        limit: u64,
    ) -> Result<Vec<ReplayRow>> {
        let mut query = messages::Entity::find()
            .filter(messages::Column::TenantId.eq(tenant.0))
            .filter(messages::Column::AccountId.eq(account.0))
            .filter(messages::Column::Status.is_in([
                MessageStatus::Stored.as_str(),
                MessageStatus::Quarantined.as_str(),
            ]))
            .filter(messages::Column::Raw.is_not_null());
        if let Some(after) = after {
            query = query.filter(messages::Column::Id.gt(after.0));
        }
        if let Some(since) = since {
            query = query.filter(
                Condition::any().add(messages::Column::Date.gte(since)).add(
                    Condition::all()
                        .add(messages::Column::Date.is_null())
                        .add(messages::Column::CreatedAt.gte(since)),
                ),
            );
        }
        let rows = query
            .order_by_asc(messages::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut links: HashMap<i64, BTreeSet<PartyId>> = HashMap::new();
        if !ids.is_empty() {
            let found: Vec<(i64, i64)> = message_links::Entity::find()
                .select_only()
                .column(message_links::Column::StoredMessageId)
                .column(message_links::Column::PartyId)
                .filter(message_links::Column::TenantId.eq(tenant.0))
                .filter(message_links::Column::StoredMessageId.is_in(ids))
                .into_tuple()
                .all(&self.db)
                .await?;
            for (message, party) in found {
                links.entry(message).or_default().insert(PartyId(party));
            }
        }
        rows.into_iter()
            .map(|row| {
                let decision = row
                    .decision
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| corrupt("decision record", e))?;
                let key = match (row.folder, row.uid_validity, row.uid, row.pop3_uidl) {
                    (Some(folder), Some(validity), Some(uid), _) => MessageKey::Imap {
                        folder,
                        uid_validity: u32::try_from(validity).unwrap_or_default(),
                        uid: u32::try_from(uid).unwrap_or_default(),
                    },
                    (_, _, _, Some(uidl)) => MessageKey::Pop3 { uidl },
                    _ => MessageKey::File {
                        path: format!("stored message {}", row.id),
                        offset: 0,
                    },
                };
                Ok(ReplayRow {
                    id: StoredMessageId(row.id),
                    key,
                    status: MessageStatus::parse(&row.status)?,
                    raw: row.raw.unwrap_or_default(),
                    subject: row.subject,
                    from: row.from_address,
                    decision,
                    links: links.remove(&row.id).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The tenant's lead with this address, if it has one (the lead a
    /// create-lead decision would link to).
    pub async fn lead_by_email(&self, tenant: TenantId, email: &str) -> Result<Option<PartyId>> {
        let email = normalise_email(email)?;
        let id: Option<i64> = parties::Entity::find()
            .select_only()
            .column(parties::Column::Id)
            .filter(parties::Column::TenantId.eq(tenant.0))
            .filter(parties::Column::Kind.eq("lead"))
            .filter(parties::Column::Email.eq(&email))
            .order_by_asc(parties::Column::Id)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(id.map(PartyId))
    }

    /// Applies new decisions to stored messages of `account`, in one
    /// transaction: status, links (a create-lead outcome through the same
    /// lead look-up as ingestion), quarantine and discard rows, and the
    /// decision record. Nothing is queued for the server.
    pub async fn apply_replay(
        &self,
        tenant: TenantId,
        account: AccountId,
        updates: &[ReplayUpdate],
    ) -> Result<ReplayApplied> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        // Lead creation and links take the tenant lock, as a batch commit
        // with new leads and a quarantine release do.
        lock_tenant(&txn, tenant).await?;
        let mut applied = ReplayApplied::default();
        let stamp = now();
        for update in updates {
            apply_one(&txn, tenant, account, update, stamp, &mut applied).await?;
        }
        txn.commit().await?;
        Ok(applied)
    }
}

async fn apply_one(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    account: AccountId,
    update: &ReplayUpdate,
    stamp: DateTime<Utc>,
    applied: &mut ReplayApplied,
) -> Result<()> {
    let Some(row) = messages::Entity::find()
        .filter(messages::Column::TenantId.eq(tenant.0))
        .filter(messages::Column::AccountId.eq(account.0))
        .filter(messages::Column::Id.eq(update.id.0))
        .one(txn)
        .await?
    else {
        applied.skipped += 1;
        return Ok(());
    };
    let status = MessageStatus::parse(&row.status)?;
    if status != update.status || row.raw.is_none() {
        applied.skipped += 1;
        return Ok(());
    }
    let target_status = super::batch::status_of(&update.outcome);
    // The links the outcome asks for: named parties that are the tenant's,
    // or the create-lead's lead.
    let mut wanted: BTreeSet<PartyId> = BTreeSet::new();
    match &update.outcome {
        Outcome::Attach(refs) => {
            for r in refs {
                let Ok(id) = r.id.trim().parse::<i64>() else {
                    continue;
                };
                let exists = parties::Entity::find()
                    .filter(parties::Column::TenantId.eq(tenant.0))
                    .filter(parties::Column::Id.eq(id))
                    .filter(parties::Column::Kind.eq(super::parties::kind_name(r.kind)))
                    .one(txn)
                    .await?
                    .is_some();
                if exists {
                    wanted.insert(PartyId(id));
                } else {
                    tracing::warn!(tenant = %tenant, party = %r.id, "attached party not in the tenant; not linked");
                }
            }
        }
        Outcome::CreateLead {
            email,
            name,
            company,
        } => {
            let (lead, created) = lead_for(txn, tenant, email, name, company).await?;
            applied.created_leads.extend(created);
            wanted.insert(lead);
        }
        Outcome::Quarantine { .. }
        | Outcome::Discard { .. }
        | Outcome::KeepUnlinked
        | Outcome::Defer { .. } => {}
    }
    let current: BTreeSet<PartyId> = message_links::Entity::find()
        .select_only()
        .column(message_links::Column::PartyId)
        .filter(message_links::Column::TenantId.eq(tenant.0))
        .filter(message_links::Column::StoredMessageId.eq(row.id))
        .into_tuple::<i64>()
        .all(txn)
        .await?
        .into_iter()
        .map(PartyId)
        .collect();
    let removed: Vec<i64> = current.difference(&wanted).map(|p| p.0).collect();
    if !removed.is_empty() {
        let done = message_links::Entity::delete_many()
            .filter(message_links::Column::TenantId.eq(tenant.0))
            .filter(message_links::Column::StoredMessageId.eq(row.id))
            .filter(message_links::Column::PartyId.is_in(removed))
            .exec(txn)
            .await?;
        applied.unlinked += usize::try_from(done.rows_affected).unwrap_or(0);
    }
    for party in wanted.difference(&current) {
        if link(txn, tenant, row.id, *party, stamp).await? {
            applied.linked += 1;
        }
    }

    let rows = OutcomeRows {
        tenant,
        account,
        stamp,
        message: row.id,
    };
    match (&update.outcome, status) {
        (Outcome::Quarantine { reason, plugin }, _) => {
            // One quarantine row per message: a held one gets the new
            // reason, a released one is held again.
            quarantine::Entity::delete_many()
                .filter(quarantine::Column::StoredMessageId.eq(row.id))
                .exec(txn)
                .await?;
            quarantine::Entity::insert(rows.quarantine(reason, plugin))
                .exec(txn)
                .await?;
        }
        (Outcome::Discard { reason, plugin }, _) => {
            quarantine::Entity::delete_many()
                .filter(quarantine::Column::StoredMessageId.eq(row.id))
                .exec(txn)
                .await?;
            let meta = MessageMeta {
                message_id: row.message_id.clone(),
                subject: None,
                from: row.from_address.clone(),
                date: row.date,
            };
            super::entity::discard_log::Entity::insert(rows.discard(&meta, reason, plugin))
                .exec(txn)
                .await?;
        }
        (_, MessageStatus::Quarantined) => {
            // Released, as an admin's release would.
            quarantine::Entity::update_many()
                .col_expr(quarantine::Column::ReleasedAt, Expr::value(Some(stamp)))
                .filter(quarantine::Column::StoredMessageId.eq(row.id))
                .filter(quarantine::Column::ReleasedAt.is_null())
                .exec(txn)
                .await?;
        }
        _ => {}
    }

    let discard = target_status == MessageStatus::Discarded;
    let mut change = messages::ActiveModel {
        status: Set(target_status.as_str().to_owned()),
        decided_by: Set(update.decided_by.clone()),
        decision: Set(Some(decision_json(&update.record))),
        ..Default::default()
    };
    if discard {
        // As ingestion keeps a discarded message: its keys, no content.
        change.raw = Set(None);
        change.subject = Set(None);
    }
    messages::Entity::update_many()
        .set(change)
        .filter(messages::Column::TenantId.eq(tenant.0))
        .filter(messages::Column::Id.eq(row.id))
        .exec(txn)
        .await?;
    applied.updated += 1;
    Ok(())
}
