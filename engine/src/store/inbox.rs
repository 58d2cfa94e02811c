//! Inbox views: what was stored (with the parties it is linked to), what is
//! held in quarantine, what was discarded — and the two admin actions on
//! quarantine, release and drop.
//!
//! Key-only rows (discarded, dropped) exist for idempotency and stay out of
//! the message views; the discard log is their view.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::Serialize;

use super::entity::{discard_log, message_links, messages, parties, quarantine};
use super::parties::party_from_row;
use super::{
    AccountId, PartyId, Result, Store, StoredMessageId, TenantId, corrupt, lock_tenant, not_found,
    now,
};
use crate::directory::Party;
use crate::domain::DecisionRecord;

/// A stored message's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Stored normally (linked or not).
    Stored,
    /// Held in quarantine with its raw bytes.
    Quarantined,
    /// Not stored: only its keys remain, so it is not ingested again.
    Discarded,
    /// Dropped from quarantine by an admin: only its keys remain.
    Dropped,
}

impl MessageStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Stored => "stored",
            MessageStatus::Quarantined => "quarantined",
            MessageStatus::Discarded => "discarded",
            MessageStatus::Dropped => "dropped",
        }
    }

    pub(super) fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "stored" => MessageStatus::Stored,
            "quarantined" => MessageStatus::Quarantined,
            "discarded" => MessageStatus::Discarded,
            "dropped" => MessageStatus::Dropped,
            other => {
                return Err(corrupt(
                    "message status",
                    format!("unknown value {other:?}"),
                ));
            }
        })
    }
}

/// A message as the inbox lists it (no raw bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MessageSummary {
    /// Its key.
    pub id: StoredMessageId,
    /// The account it came from (`None` once that account is removed).
    pub account: Option<AccountId>,
    /// IMAP folder, if any.
    pub folder: Option<String>,
    /// Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Sender address.
    pub from: Option<String>,
    /// `Date` header.
    pub date: Option<DateTime<Utc>>,
    /// Raw size in bytes.
    pub size: u64,
    /// Stored or quarantined.
    pub status: MessageStatus,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
    /// The plugin that decided, if one did (unrecorded for messages stored
    /// before the engine kept it).
    pub decided_by: Option<String>,
    /// The parties it is linked to.
    pub parties: Vec<Party>,
}

/// A message with its exact raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// What the inbox shows.
    pub summary: MessageSummary,
    /// The bytes as the server sent them; `None` for key-only rows.
    pub raw: Option<Vec<u8>>,
}

/// Which messages to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageQuery {
    /// Only this account's.
    pub account: Option<AccountId>,
    /// Only those linked to a party with this address.
    pub party_email: Option<String>,
    /// Only those older than this one (for paging, newest first).
    pub before: Option<StoredMessageId>,
    /// At most this many.
    pub limit: u64,
}

impl Default for MessageQuery {
    fn default() -> Self {
        MessageQuery {
            account: None,
            party_email: None,
            before: None,
            limit: 100,
        }
    }
}

/// Which messages to list, for the API's inbox: every filter applies, and
/// the order is the order of ingestion, newest first, so the cursor (the
/// last id of a page) is stable while new mail arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only this account's.
    pub account: Option<AccountId>,
    /// Only those linked to this party.
    pub party: Option<PartyId>,
    /// Only stored, or only quarantined (default: both).
    pub status: Option<MessageStatus>,
    /// Only those whose `Date` (or, without one, time of storing) is at or
    /// after this.
    pub since: Option<DateTime<Utc>>,
    /// … and before this.
    pub until: Option<DateTime<Utc>>,
    /// Only those older than this one (the paging cursor).
    pub before: Option<StoredMessageId>,
    /// At most this many.
    pub limit: u64,
}

/// A message held in quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuarantineEntry {
    /// The message (its bytes: [`Store::message`]).
    pub message: MessageSummary,
    /// Why it is held.
    pub reason: String,
    /// The plugin that decided or failed, if any.
    pub plugin: Option<String>,
    /// When it was held.
    pub quarantined_at: DateTime<Utc>,
    /// `held` (an admin releases or drops it) or `temporary` (deferred: a
    /// plugin failed temporarily; the account's next runs decide it again).
    pub kind: String,
    /// For a deferred message: the attempts made so far.
    pub attempts: u32,
    /// For a deferred message: when the next attempt is due (at the
    /// account's first run from then on).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A discarded message, as logged (no content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscardEntry {
    /// The account it came from.
    pub account: Option<AccountId>,
    /// Message-ID.
    pub message_id: Option<String>,
    /// Sender address.
    pub sender: Option<String>,
    /// Why.
    pub reason: String,
    /// The plugin that decided, if any.
    pub plugin: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Statuses the message views show.
const VISIBLE: [&str; 2] = ["stored", "quarantined"];

impl Store {
    /// Stored and quarantined messages, newest first (by `Date`, else by
    /// when they were stored), with their parties.
    pub async fn messages(
        &self,
        tenant: TenantId,
        query: &MessageQuery,
    ) -> Result<Vec<MessageSummary>> {
        let mut select = messages::Entity::find()
            .select_only()
            .columns(summary_columns())
            .filter(messages::Column::TenantId.eq(tenant.0))
            .filter(messages::Column::Status.is_in(VISIBLE));
        if let Some(account) = query.account {
            select = select.filter(messages::Column::AccountId.eq(account.0));
        }
        if let Some(before) = query.before {
            select = select.filter(messages::Column::Id.lt(before.0));
        }
        if let Some(email) = &query.party_email {
            let matching = Query::select()
                .column(parties::Column::Id)
                .from(parties::Entity)
                .and_where(parties::Column::TenantId.eq(tenant.0))
                .and_where(parties::Column::Email.eq(email.trim().to_lowercase()))
                .to_owned();
            let linked = Query::select()
                .column(message_links::Column::StoredMessageId)
                .from(message_links::Entity)
                .and_where(message_links::Column::TenantId.eq(tenant.0))
                .and_where(message_links::Column::PartyId.in_subquery(matching))
                .to_owned();
            select = select.filter(messages::Column::Id.in_subquery(linked));
        }
        // Newest first by the message's date, or when it was stored if it
        // has none; the id breaks ties (and orders one batch's messages).
        let rows = select
            .order_by_desc(Expr::cust("COALESCE(date, created_at)"))
            .order_by_desc(messages::Column::Id)
            .limit(query.limit)
            .into_model::<SummaryRow>()
            .all(&self.db)
            .await?;
        self.with_parties(tenant, rows).await
    }

    /// Stored and quarantined messages that pass `filter`, newest stored
    /// first, with their parties.
    pub async fn message_page(
        &self,
        tenant: TenantId,
        filter: &MessageFilter,
    ) -> Result<Vec<MessageSummary>> {
        let mut select = messages::Entity::find()
            .select_only()
            .columns(summary_columns())
            .filter(messages::Column::TenantId.eq(tenant.0));
        select = match filter.status {
            Some(status) => select.filter(messages::Column::Status.eq(status.as_str())),
            None => select.filter(messages::Column::Status.is_in(VISIBLE)),
        };
        if let Some(account) = filter.account {
            select = select.filter(messages::Column::AccountId.eq(account.0));
        }
        if let Some(before) = filter.before {
            select = select.filter(messages::Column::Id.lt(before.0));
        }
        // The message's `Date`, or when it was stored if it has none: two
        // branches, each a range on the index (tenant, date, created_at).
        if filter.since.is_some() || filter.until.is_some() {
            let mut dated = sea_orm::Condition::all().add(messages::Column::Date.is_not_null());
            let mut undated = sea_orm::Condition::all().add(messages::Column::Date.is_null());
            if let Some(since) = filter.since {
                dated = dated.add(messages::Column::Date.gte(since));
                undated = undated.add(messages::Column::CreatedAt.gte(since));
            }
            if let Some(until) = filter.until {
                dated = dated.add(messages::Column::Date.lt(until));
                undated = undated.add(messages::Column::CreatedAt.lt(until));
            }
            select = select.filter(sea_orm::Condition::any().add(dated).add(undated));
        }
        if let Some(party) = filter.party {
            let linked = Query::select()
                .column(message_links::Column::StoredMessageId)
                .from(message_links::Entity)
                .and_where(message_links::Column::TenantId.eq(tenant.0))
                .and_where(message_links::Column::PartyId.eq(party.0))
                .to_owned();
            select = select.filter(messages::Column::Id.in_subquery(linked));
        }
        let rows = select
            .order_by(
                if filter.since.is_some() || filter.until.is_some() {
                    // `+id`: not the id order's index, so SQLite reads the
                    // date range from its index and sorts that, instead of
                    // walking every message newest first to find the day.
                    Expr::cust("+\"messages\".\"id\"")
                } else {
                    Expr::col((messages::Entity, messages::Column::Id)).into()
                },
                sea_orm::Order::Desc,
            )
            .limit(filter.limit)
            .into_model::<SummaryRow>()
            .all(&self.db)
            .await?;
        self.with_parties(tenant, rows).await
    }

    /// One message with its raw bytes, if it is in the tenant.
    pub async fn message(
        &self,
        tenant: TenantId,
        id: StoredMessageId,
    ) -> Result<Option<StoredMessage>> {
        let Some(row) = messages::Entity::find()
            .filter(messages::Column::TenantId.eq(tenant.0))
            .filter(messages::Column::Id.eq(id.0))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let raw = row.raw.clone();
        let summary = SummaryRow {
            id: row.id,
            account_id: row.account_id,
            folder: row.folder,
            message_id: row.message_id,
            subject: row.subject,
            from_address: row.from_address,
            date: row.date,
            size: row.size,
            status: row.status,
            created_at: row.created_at,
            decided_by: row.decided_by,
        };
        let mut summaries = self.with_parties(tenant, vec![summary]).await?;
        Ok(summaries
            .pop()
            .map(|summary| StoredMessage { summary, raw }))
    }

    /// How the chain decided a message, as recorded when it was stored (or
    /// last re-decided); `None` for a message stored before decisions were
    /// recorded. Not found if the message is not in the tenant.
    pub async fn decision_record(
        &self,
        tenant: TenantId,
        id: StoredMessageId,
    ) -> Result<Option<DecisionRecord>> {
        let row: Option<Option<String>> = messages::Entity::find()
            .select_only()
            .column(messages::Column::Decision)
            .filter(messages::Column::TenantId.eq(tenant.0))
            .filter(messages::Column::Id.eq(id.0))
            .into_tuple()
            .one(&self.db)
            .await?;
        let Some(json) = row.ok_or_else(|| not_found("message", &id.to_string()))? else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| corrupt("decision record", e))
    }

    /// Why a message is held, if it is in quarantine and not released:
    /// the reason and the plugin that decided or failed.
    pub async fn quarantine_reason(
        &self,
        tenant: TenantId,
        id: StoredMessageId,
    ) -> Result<Option<(String, Option<String>)>> {
        Ok(quarantine::Entity::find()
            .filter(quarantine::Column::TenantId.eq(tenant.0))
            .filter(quarantine::Column::StoredMessageId.eq(id.0))
            .filter(quarantine::Column::ReleasedAt.is_null())
            .one(&self.db)
            .await?
            .map(|q| (q.reason, q.plugin)))
    }

    /// Messages held in quarantine and not released, newest first.
    pub async fn quarantined(
        &self,
        tenant: TenantId,
        account: Option<AccountId>,
    ) -> Result<Vec<QuarantineEntry>> {
        Ok(self
            // No limit: the largest the databases take as a bound value.
            .quarantine_page(tenant, account, None, i64::MAX as u64)
            .await?
            .into_iter()
            .map(|(_, entry)| entry)
            .collect())
    }

    /// At most `limit` held messages, newest held first, from before the
    /// entry `before` (the paging cursor); each with its entry's key.
    pub async fn quarantine_page(
        &self,
        tenant: TenantId,
        account: Option<AccountId>,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, QuarantineEntry)>> {
        let mut select = quarantine::Entity::find()
            .filter(quarantine::Column::TenantId.eq(tenant.0))
            .filter(quarantine::Column::ReleasedAt.is_null());
        if let Some(account) = account {
            select = select.filter(quarantine::Column::AccountId.eq(account.0));
        }
        if let Some(before) = before {
            select = select.filter(quarantine::Column::Id.lt(before));
        }
        let entries = select
            .order_by_desc(quarantine::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let ids: Vec<i64> = entries.iter().map(|q| q.stored_message_id).collect();
        let rows = messages::Entity::find()
            .select_only()
            .columns(summary_columns())
            .filter(messages::Column::TenantId.eq(tenant.0))
            .filter(messages::Column::Id.is_in(ids))
            .into_model::<SummaryRow>()
            .all(&self.db)
            .await?;
        let mut summaries = self.with_parties(tenant, rows).await?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(at) = summaries
                .iter()
                .position(|s| s.id.0 == entry.stored_message_id)
            else {
                continue;
            };
            out.push((
                entry.id,
                QuarantineEntry {
                    message: summaries.swap_remove(at),
                    reason: entry.reason,
                    plugin: entry.plugin,
                    quarantined_at: entry.created_at,
                    kind: entry.kind,
                    attempts: u32::try_from(entry.attempts).unwrap_or(0),
                    next_attempt_at: entry.next_attempt_at,
                },
            ));
        }
        Ok(out)
    }

    /// Releases a quarantined message: it becomes a stored message (without
    /// links; the admin or a re-run of the chain links it).
    pub async fn release_quarantined(&self, tenant: TenantId, id: StoredMessageId) -> Result<()> {
        self.release_quarantined_to(tenant, id, &[], None).await
    }

    /// Releases a quarantined message and links it to `parties` (which must
    /// be the tenant's), in one transaction. `rerun` is the chain's new
    /// decision, when a re-run decided: it replaces the recorded one.
    pub async fn release_quarantined_to(
        &self,
        tenant: TenantId,
        id: StoredMessageId,
        parties: &[PartyId],
        rerun: Option<&DecisionRecord>,
    ) -> Result<()> {
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let released = quarantine::Entity::update_many()
            .set(quarantine::ActiveModel {
                released_at: Set(Some(now())),
                ..Default::default()
            })
            .filter(quarantine::Column::TenantId.eq(tenant.0))
            .filter(quarantine::Column::StoredMessageId.eq(id.0))
            .filter(quarantine::Column::ReleasedAt.is_null())
            .exec(&txn)
            .await?;
        if released.rows_affected == 0 {
            return Err(not_found("quarantined message", &id.to_string()));
        }
        let mut update = messages::Entity::update_many().col_expr(
            messages::Column::Status,
            Expr::value(MessageStatus::Stored.as_str()),
        );
        if let Some(record) = rerun {
            // A re-run: the plugin that decided now is the one to show.
            update = update
                .col_expr(
                    messages::Column::DecidedBy,
                    Expr::value(record.decided_by.clone()),
                )
                .col_expr(
                    messages::Column::Decision,
                    Expr::value(super::batch::decision_json(record)),
                );
        }
        update
            .filter(messages::Column::TenantId.eq(tenant.0))
            .filter(messages::Column::Id.eq(id.0))
            .exec(&txn)
            .await?;
        for party in parties {
            if self.party(tenant, *party).await?.is_none() {
                return Err(not_found("party", &party.to_string()));
            }
            super::batch::link(&txn, tenant, id.0, *party, now()).await?;
        }
        // The CRM hears of it as of any stored message, in this transaction.
        let deliveries = super::webhooks::release_events(&txn, tenant, id.0, now()).await?;
        txn.commit().await?;
        if deliveries > 0 {
            self.wake_webhooks();
        }
        Ok(())
    }

    /// Drops a quarantined message: its bytes and subject are deleted, its
    /// keys stay (status `dropped`) so it is never ingested again.
    pub async fn drop_quarantined(&self, tenant: TenantId, id: StoredMessageId) -> Result<()> {
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let removed = quarantine::Entity::delete_many()
            .filter(quarantine::Column::TenantId.eq(tenant.0))
            .filter(quarantine::Column::StoredMessageId.eq(id.0))
            .filter(quarantine::Column::ReleasedAt.is_null())
            .exec(&txn)
            .await?;
        if removed.rows_affected == 0 {
            return Err(not_found("quarantined message", &id.to_string()));
        }
        messages::Entity::update_many()
            .set(messages::ActiveModel {
                status: Set(MessageStatus::Dropped.as_str().to_owned()),
                raw: Set(None),
                subject: Set(None),
                ..Default::default()
            })
            .filter(messages::Column::TenantId.eq(tenant.0))
            .filter(messages::Column::Id.eq(id.0))
            .exec(&txn)
            .await?;
        message_links::Entity::delete_many()
            .filter(message_links::Column::TenantId.eq(tenant.0))
            .filter(message_links::Column::StoredMessageId.eq(id.0))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// The discard log, newest first, at most `limit` entries.
    pub async fn discard_log(
        &self,
        tenant: TenantId,
        account: Option<AccountId>,
        limit: u64,
    ) -> Result<Vec<DiscardEntry>> {
        let mut select =
            discard_log::Entity::find().filter(discard_log::Column::TenantId.eq(tenant.0));
        if let Some(account) = account {
            select = select.filter(discard_log::Column::AccountId.eq(account.0));
        }
        Ok(select
            .order_by_desc(discard_log::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|d| DiscardEntry {
                account: d.account_id.map(AccountId),
                message_id: d.message_id,
                sender: d.sender,
                reason: d.reason,
                plugin: d.plugin,
                created_at: d.created_at,
            })
            .collect())
    }

    /// Attaches linked parties to summary rows (two queries for the page).
    async fn with_parties(
        &self,
        tenant: TenantId,
        rows: Vec<SummaryRow>,
    ) -> Result<Vec<MessageSummary>> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let links = if ids.is_empty() {
            Vec::new()
        } else {
            message_links::Entity::find()
                .filter(message_links::Column::TenantId.eq(tenant.0))
                .filter(message_links::Column::StoredMessageId.is_in(ids))
                .order_by_asc(message_links::Column::Id)
                .all(&self.db)
                .await?
        };
        let party_ids: Vec<i64> = links.iter().map(|l| l.party_id).collect();
        let parties: Vec<(i64, Party)> = if party_ids.is_empty() {
            Vec::new()
        } else {
            parties::Entity::find()
                .filter(parties::Column::TenantId.eq(tenant.0))
                .filter(parties::Column::Id.is_in(party_ids))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|p| Ok((p.id, party_from_row(p)?)))
                .collect::<Result<_>>()?
        };
        rows.into_iter()
            .map(|r| {
                let linked = links
                    .iter()
                    .filter(|l| l.stored_message_id == r.id)
                    .filter_map(|l| parties.iter().find(|(id, _)| *id == l.party_id))
                    .map(|(_, p)| p.clone())
                    .collect();
                Ok(MessageSummary {
                    id: StoredMessageId(r.id),
                    account: r.account_id.map(AccountId),
                    folder: r.folder,
                    message_id: r.message_id,
                    subject: r.subject,
                    from: r.from_address,
                    date: r.date,
                    size: u64::try_from(r.size).unwrap_or(0),
                    status: MessageStatus::parse(&r.status)?,
                    created_at: r.created_at,
                    decided_by: r.decided_by,
                    parties: linked,
                })
            })
            .collect()
    }
}

/// A `messages` row without the raw bytes, which a listing must not load.
#[derive(Debug, sea_orm::FromQueryResult)]
struct SummaryRow {
    /// `messages.id`.
    id: i64,
    /// `messages.account_id`.
    account_id: Option<i64>,
    /// `messages.folder`.
    folder: Option<String>,
    /// `messages.message_id`.
    message_id: Option<String>,
    /// `messages.subject`.
    subject: Option<String>,
    /// `messages.from_address`.
    from_address: Option<String>,
    /// `messages.date`.
    date: Option<DateTime<Utc>>,
    /// `messages.size`.
    size: i64,
    /// `messages.status`.
    status: String,
    /// `messages.created_at`.
    created_at: DateTime<Utc>,
    /// `messages.decided_by`.
    decided_by: Option<String>,
}

fn summary_columns() -> [messages::Column; 11] {
    use messages::Column as C;
    [
        C::Id,
        C::AccountId,
        C::Folder,
        C::MessageId,
        C::Subject,
        C::FromAddress,
        C::Date,
        C::Size,
        C::Status,
        C::CreatedAt,
        C::DecidedBy,
    ]
}
