//! Server actions committed but not yet carried out.
//!
//! [`Store::commit_batch`] queues them in the same transaction as the
//! messages and returns their ids; the pipeline carries them out after the
//! commit, deletes the ones the server confirmed (with its next commit, or
//! after a clean POP3 `QUIT`) and records a failed try for the rest, which
//! are retried on the next run. The messages themselves are never fetched
//! again for it: their keys are already stored.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::batch::ROWS_PER_STATEMENT;
use super::entity::pending_actions;
use super::{AccountId, PendingActionId, Result, Store, TenantId, corrupt, not_found};
use crate::domain::{Acknowledge, MessageKey};

/// A server action waiting to be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAction {
    /// Its key, to delete or mark it failed.
    pub id: PendingActionId,
    /// The message on the server.
    pub key: MessageKey,
    /// What to do.
    pub action: Acknowledge,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Failed tries so far.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// Reads an action as stored by `batch::action_text`.
fn parse_action(text: &str) -> Result<Acknowledge> {
    Ok(match text {
        "leave" => Acknowledge::Leave,
        "mark-seen" => Acknowledge::MarkSeen,
        "delete" => Acknowledge::Delete,
        other => match other.strip_prefix("move:") {
            Some(folder) => Acknowledge::MoveTo(folder.to_owned()),
            None => {
                return Err(corrupt(
                    "pending action",
                    format!("unknown action {other:?}"),
                ));
            }
        },
    })
}

pub(super) fn key_of(row: &pending_actions::Model) -> Result<MessageKey> {
    let u32_of = |v: i64, what: &'static str| {
        u32::try_from(v).map_err(|_| corrupt(what, format!("{v} is out of range")))
    };
    Ok(
        match (&row.folder, row.uid_validity, row.uid, &row.pop3_uidl) {
            (Some(folder), Some(validity), Some(uid), None) => MessageKey::Imap {
                folder: folder.clone(),
                uid_validity: u32_of(validity, "pending action UIDVALIDITY")?,
                uid: u32_of(uid, "pending action UID")?,
            },
            (None, None, None, Some(uidl)) => MessageKey::Pop3 { uidl: uidl.clone() },
            _ => return Err(corrupt("pending action", "neither an IMAP nor a POP3 key")),
        },
    )
}

impl Store {
    /// The account's pending actions, oldest first.
    pub async fn pending_actions(
        &self,
        tenant: TenantId,
        account: AccountId,
    ) -> Result<Vec<PendingAction>> {
        pending_actions::Entity::find()
            .filter(pending_actions::Column::TenantId.eq(tenant.0))
            .filter(pending_actions::Column::AccountId.eq(account.0))
            .order_by_asc(pending_actions::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| {
                Ok(PendingAction {
                    id: PendingActionId(row.id),
                    key: key_of(&row)?,
                    action: parse_action(&row.action)?,
                    created_at: row.created_at,
                    attempts: u32::try_from(row.attempts).unwrap_or(0),
                    last_error: row.last_error,
                })
            })
            .collect()
    }

    /// Deletes actions the server confirmed. Returns how many were deleted.
    pub async fn complete_actions(&self, tenant: TenantId, ids: &[PendingActionId]) -> Result<u64> {
        delete_actions(&self.db, tenant, None, ids).await
    }

    /// Records a failed try of each of `ids`; they stay queued.
    pub async fn record_action_failures(
        &self,
        tenant: TenantId,
        ids: &[PendingActionId],
        error: &str,
    ) -> Result<()> {
        self.mark_failed(tenant, ids, error).await.map(drop)
    }

    /// Adds a failed try and the error to each of `ids`; returns how many
    /// rows were updated.
    async fn mark_failed(
        &self,
        tenant: TenantId,
        ids: &[PendingActionId],
        error: &str,
    ) -> Result<u64> {
        let mut updated = 0;
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            updated += pending_actions::Entity::update_many()
                .col_expr(
                    pending_actions::Column::Attempts,
                    Expr::col(pending_actions::Column::Attempts).add(1),
                )
                .col_expr(pending_actions::Column::LastError, Expr::value(error))
                .filter(pending_actions::Column::TenantId.eq(tenant.0))
                .filter(pending_actions::Column::Id.is_in(chunk.iter().map(|id| id.0)))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(updated)
    }

    /// Records a failed try of an action; it stays queued.
    pub async fn record_action_failure(
        &self,
        tenant: TenantId,
        id: PendingActionId,
        error: &str,
    ) -> Result<()> {
        if self.mark_failed(tenant, &[id], error).await? == 0 {
            return Err(not_found("pending action", &id.to_string()));
        }
        Ok(())
    }
}

/// Deletes the tenant's actions `ids` (only `account`'s, when given), in
/// statements of a few hundred ids; returns how many went.
pub(super) async fn delete_actions<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    account: Option<AccountId>,
    ids: &[PendingActionId],
) -> Result<u64> {
    let mut deleted = 0;
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut query = pending_actions::Entity::delete_many()
            .filter(pending_actions::Column::TenantId.eq(tenant.0))
            .filter(pending_actions::Column::Id.is_in(chunk.iter().map(|id| id.0)));
        if let Some(account) = account {
            query = query.filter(pending_actions::Column::AccountId.eq(account.0));
        }
        deleted += query.exec(db).await?.rows_affected;
    }
    Ok(deleted)
}
