//! Deferred messages: a message a plugin could not decide for now (contract
//! 0.2.0's temporary error) is committed like a quarantined one — its exact
//! bytes stored, its cursor advanced — with a quarantine entry of kind
//! `temporary`, an attempt count and the time of its next attempt. The
//! account's next runs decide it again (the pipeline, through the same
//! `decide()` as quarantine release `--rerun`) and settle it here: stored and
//! linked, deferred once more, held for good, or discarded.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::entity::{discard_log, message_links, messages, quarantine};
use super::inbox::MessageStatus;
use super::{
    AccountId, PartyId, Result, Store, StoredMessageId, TenantId, lock_tenant, not_found, now,
};
use crate::domain::DecisionRecord;

/// A quarantine entry's kind: held until an admin acts.
pub const HELD: &str = "held";
/// A quarantine entry's kind: deferred, decided again when due.
pub const TEMPORARY: &str = "temporary";

/// A deferred message due for another attempt.
#[derive(Debug, Clone)]
pub struct DueDeferred {
    /// The stored message.
    pub id: StoredMessageId,
    /// Attempts made so far (the first decision included).
    pub attempts: u32,
    /// When it was first deferred.
    pub deferred_at: DateTime<Utc>,
    /// Its exact bytes.
    pub raw: Vec<u8>,
}

/// How a deferred message's new attempt ends.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// Decided: stored, linked to these parties (the tenant's).
    Stored {
        /// The parties to link.
        parties: Vec<PartyId>,
    },
    /// Failed temporarily again: try once more at `next_attempt_at`.
    Again {
        /// Attempts made now.
        attempts: u32,
        /// When the next is due.
        next_attempt_at: DateTime<Utc>,
        /// The latest failure.
        reason: String,
        /// The plugin that failed.
        plugin: Option<String>,
    },
    /// Held in quarantine for good (a permanent failure, a quarantine
    /// verdict, or out of attempts): an admin releases or drops it.
    Hold {
        /// Why.
        reason: String,
        /// The plugin that decided or failed.
        plugin: Option<String>,
    },
    /// The chain discards it now: the bytes go, the keys stay.
    Discard {
        /// Why.
        reason: String,
        /// The plugin that decided.
        plugin: Option<String>,
    },
}

impl Store {
    /// The account's deferred messages due at `at`, oldest due first, at
    /// most `limit`.
    pub async fn due_deferred(
        &self,
        tenant: TenantId,
        account: AccountId,
        at: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<DueDeferred>> {
        let entries = quarantine::Entity::find()
            .filter(quarantine::Column::TenantId.eq(tenant.0))
            .filter(quarantine::Column::AccountId.eq(account.0))
            .filter(quarantine::Column::Kind.eq(TEMPORARY))
            .filter(quarantine::Column::ReleasedAt.is_null())
            .filter(quarantine::Column::NextAttemptAt.lte(at))
            .order_by_asc(quarantine::Column::NextAttemptAt)
            .order_by_asc(quarantine::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut due = Vec::with_capacity(entries.len());
        for entry in entries {
            let raw: Option<Option<Vec<u8>>> = messages::Entity::find()
                .select_only()
                .column(messages::Column::Raw)
                .filter(messages::Column::TenantId.eq(tenant.0))
                .filter(messages::Column::Id.eq(entry.stored_message_id))
                .into_tuple()
                .one(&self.db)
                .await?;
            let Some(Some(raw)) = raw else { continue };
            due.push(DueDeferred {
                id: StoredMessageId(entry.stored_message_id),
                attempts: u32::try_from(entry.attempts).unwrap_or(0),
                deferred_at: entry.created_at,
                raw,
            });
        }
        Ok(due)
    }

    /// Settles a deferred message's new attempt, in one transaction, with
    /// the chain's new decision record. Not found if it is no longer
    /// deferred (an admin released or dropped it meanwhile).
    pub async fn settle_deferred(
        &self,
        tenant: TenantId,
        id: StoredMessageId,
        settlement: &Settlement,
        record: &DecisionRecord,
    ) -> Result<()> {
        let stamp = now();
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let deferred = || {
            quarantine::Entity::update_many()
                .filter(quarantine::Column::TenantId.eq(tenant.0))
                .filter(quarantine::Column::StoredMessageId.eq(id.0))
                .filter(quarantine::Column::Kind.eq(TEMPORARY))
                .filter(quarantine::Column::ReleasedAt.is_null())
        };
        let touched = match settlement {
            Settlement::Stored { .. } => {
                deferred()
                    .col_expr(quarantine::Column::ReleasedAt, Expr::value(Some(stamp)))
                    .col_expr(
                        quarantine::Column::NextAttemptAt,
                        Expr::value(None::<DateTime<Utc>>),
                    )
                    .exec(&txn)
                    .await?
                    .rows_affected
            }
            Settlement::Again {
                attempts,
                next_attempt_at,
                reason,
                plugin,
            } => {
                deferred()
                    .col_expr(quarantine::Column::Attempts, Expr::value(*attempts as i32))
                    .col_expr(
                        quarantine::Column::NextAttemptAt,
                        Expr::value(Some(*next_attempt_at)),
                    )
                    .col_expr(quarantine::Column::Reason, Expr::value(reason.clone()))
                    .col_expr(quarantine::Column::Plugin, Expr::value(plugin.clone()))
                    .exec(&txn)
                    .await?
                    .rows_affected
            }
            Settlement::Hold { reason, plugin } => {
                deferred()
                    .col_expr(quarantine::Column::Kind, Expr::value(HELD))
                    .col_expr(
                        quarantine::Column::NextAttemptAt,
                        Expr::value(None::<DateTime<Utc>>),
                    )
                    .col_expr(quarantine::Column::Reason, Expr::value(reason.clone()))
                    .col_expr(quarantine::Column::Plugin, Expr::value(plugin.clone()))
                    .exec(&txn)
                    .await?
                    .rows_affected
            }
            Settlement::Discard { .. } => {
                quarantine::Entity::delete_many()
                    .filter(quarantine::Column::TenantId.eq(tenant.0))
                    .filter(quarantine::Column::StoredMessageId.eq(id.0))
                    .filter(quarantine::Column::Kind.eq(TEMPORARY))
                    .filter(quarantine::Column::ReleasedAt.is_null())
                    .exec(&txn)
                    .await?
                    .rows_affected
            }
        };
        if touched == 0 {
            return Err(not_found("deferred message", &id.to_string()));
        }
        let decision = super::batch::decision_json(record);
        let update = messages::Entity::update_many()
            .col_expr(
                messages::Column::DecidedBy,
                Expr::value(record.decided_by.clone()),
            )
            .col_expr(messages::Column::Decision, Expr::value(decision))
            .filter(messages::Column::TenantId.eq(tenant.0))
            .filter(messages::Column::Id.eq(id.0));
        let mut deliveries = 0;
        match settlement {
            Settlement::Stored { parties } => {
                update
                    .col_expr(
                        messages::Column::Status,
                        Expr::value(MessageStatus::Stored.as_str()),
                    )
                    .exec(&txn)
                    .await?;
                for party in parties {
                    if self.party(tenant, *party).await?.is_none() {
                        return Err(not_found("party", &party.to_string()));
                    }
                    super::batch::link(&txn, tenant, id.0, *party, stamp).await?;
                }
                // The CRM hears of it as of any stored message.
                deliveries = super::webhooks::release_events(&txn, tenant, id.0, stamp).await?;
            }
            Settlement::Again { .. } | Settlement::Hold { .. } => {
                update.exec(&txn).await?;
            }
            Settlement::Discard { reason, plugin } => {
                let row = messages::Entity::find()
                    .filter(messages::Column::TenantId.eq(tenant.0))
                    .filter(messages::Column::Id.eq(id.0))
                    .one(&txn)
                    .await?
                    .ok_or_else(|| not_found("message", &id.to_string()))?;
                update
                    .col_expr(
                        messages::Column::Status,
                        Expr::value(MessageStatus::Discarded.as_str()),
                    )
                    .col_expr(messages::Column::Raw, Expr::value(None::<Vec<u8>>))
                    .col_expr(messages::Column::Subject, Expr::value(None::<String>))
                    .exec(&txn)
                    .await?;
                message_links::Entity::delete_many()
                    .filter(message_links::Column::TenantId.eq(tenant.0))
                    .filter(message_links::Column::StoredMessageId.eq(id.0))
                    .exec(&txn)
                    .await?;
                discard_log::Entity::insert(discard_log::ActiveModel {
                    tenant_id: Set(tenant.0),
                    account_id: Set(row.account_id),
                    stored_message_id: Set(Some(id.0)),
                    message_id: Set(row.message_id),
                    sender: Set(row.from_address),
                    reason: Set(reason.clone()),
                    plugin: Set(plugin.clone()),
                    created_at: Set(stamp),
                    ..Default::default()
                })
                .exec(&txn)
                .await?;
            }
        }
        txn.commit().await?;
        if deliveries > 0 {
            self.wake_webhooks();
        }
        Ok(())
    }
}
