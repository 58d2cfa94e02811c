//! [`Store::commit_batch`]: one transaction per fetched batch, and the
//! cursors it leaves behind.
//!
//! A batch commits its messages (exact raw bytes), their outcome (links,
//! new leads, quarantine and discard entries), the folder cursors, the POP3
//! UIDLs seen and the server actions to carry out — all or nothing. Only
//! after it returns may the pipeline touch the server, and what it does
//! there is in `pending_actions` until the server confirms.
//!
//! **Idempotency.** A message is already ingested when the account has a
//! message with the same IMAP key (folder, UIDVALIDITY, UID), the same POP3
//! UIDL, the same Message-ID, or the same bytes (the content key, a SHA-256:
//! the backstop for mail without a Message-ID or that does not parse, when
//! a file is imported again or a mailbox was reset). Unique indexes carry
//! all four, and messages are inserted with `ON CONFLICT DO NOTHING`, so
//! a batch committed twice (a crash between commit and acknowledge, a
//! UIDVALIDITY reset, the same message in two folders, the same file
//! imported twice) stores nothing twice and never fails for it.
//! A duplicate's outcome is dropped: it was acted on when first stored. Its
//! cursor, UIDL and server action are still recorded, since they concern the
//! copy on the server that was just fetched.
//!
//! **Statements.** A batch is a few multi-row statements, not one per
//! message: the messages go in a few dozen per `INSERT … RETURNING` (which
//! says which were new), then the new ones' leads, links, quarantine and
//! discard rows, the server actions and the cursors, each kind in one
//! statement. On PostgreSQL every statement is a round trip, and on SQLite
//! a hop to the driver's thread.
//!
//! **Discarded messages** get a key-only `messages` row: status `discarded`,
//! the keys, Message-ID, sender, date and size, but no raw bytes and no
//! subject. That row is what makes a re-run skip the message; the reason is
//! in `discard_log`, which points at it. Inbox views leave such rows out.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, TransactionTrait, TryInsertResult,
};
use serde::Serialize;

use super::actions::{delete_actions, key_of};
use super::entity::{
    accounts, discard_log, folder_cursors, message_links, messages, parties, pending_actions,
    pop3_seen, quarantine,
};
use super::inbox::MessageStatus;
use super::parties::{NewParty, insert as insert_party};
use super::{
    AccountId, PartyId, PendingActionId, Result, Store, StoredMessageId, TenantId, lock_tenant,
    normalise_email, normalise_message_id, not_found, now,
};
use crate::directory::PartyKind;
use crate::domain::{
    Acknowledge, CursorAdvance, DecisionRecord, FolderCursor, INBOX, MessageKey, Outcome,
};

/// What the parser found in the headers; all optional, since a message that
/// does not parse is still stored (quarantined) with its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageMeta {
    /// `Message-ID`, with or without angle brackets.
    pub message_id: Option<String>,
    /// `Subject`.
    pub subject: Option<String>,
    /// The sender's address.
    pub from: Option<String>,
    /// The `Date` header.
    pub date: Option<DateTime<Utc>>,
}

/// The status a message is stored with.
pub(super) fn status_of(outcome: &Outcome) -> MessageStatus {
    match outcome {
        Outcome::Quarantine { .. } | Outcome::Defer { .. } => MessageStatus::Quarantined,
        Outcome::Discard { .. } => MessageStatus::Discarded,
        _ => MessageStatus::Stored,
    }
}

/// One fetched message and what to do with it.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    /// Which message: where it is on the server (a file has no server key).
    pub key: MessageKey,
    /// Exactly the bytes the server sent.
    pub raw: bytes::Bytes,
    /// Parsed header fields.
    pub meta: MessageMeta,
    /// What the chain decided.
    pub outcome: Outcome,
    /// What to do on the server once committed; `None` and
    /// [`Acknowledge::Leave`] queue nothing.
    pub action: Option<Acknowledge>,
    /// The plugin that decided, if one did.
    pub decided_by: Option<String>,
    /// How the chain came to it (kept as `messages.decision`).
    pub decision: Option<DecisionRecord>,
}

/// A batch to commit in one transaction.
#[derive(Debug, Clone, Default)]
pub struct BatchCommit {
    /// The messages, in fetch order.
    pub messages: Vec<IncomingMessage>,
    /// Extra cursor advances; the messages' own IMAP keys advance their
    /// folders anyway.
    pub cursor_advances: Vec<CursorAdvance>,
    /// Queued actions the server has since confirmed: deleted in the same
    /// transaction, so confirming them costs no commit of its own.
    pub completed_actions: Vec<PendingActionId>,
}

/// A server action queued by a batch commit, to carry out once it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueuedAction {
    /// The message's index in the batch.
    pub message: usize,
    /// The queued row (delete it with [`BatchCommit::completed_actions`] or
    /// [`Store::complete_actions`] once the server confirmed).
    pub id: PendingActionId,
}

/// What happened to one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MessageResult {
    /// Stored now, with this key.
    Inserted(StoredMessageId),
    /// Already ingested for this account; nothing stored.
    Duplicate,
}

/// What a batch commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CommitSummary {
    /// Messages stored now (including key-only rows for discarded ones).
    pub inserted: usize,
    /// Messages skipped as already ingested.
    pub duplicates: usize,
    /// Links created.
    pub linked: usize,
    /// Leads created.
    pub leads_created: usize,
    /// The addresses of the leads created (lower case).
    pub created_leads: Vec<String>,
    /// The batch indexes of the messages that created those leads (any
    /// other `CreateLead` message was linked to a lead that existed).
    pub lead_creators: Vec<usize>,
    /// Quarantine entries created.
    pub quarantined: usize,
    /// Discard-log entries created.
    pub discarded: usize,
    /// Parties an `Attach` named that are not (or no longer) in the tenant;
    /// the message is stored without those links.
    pub missing_parties: usize,
    /// Server actions queued.
    pub actions_queued: usize,
    /// The actions to carry out now, per message: the ones queued here and
    /// any already queued for the same server key.
    pub queued: Vec<QueuedAction>,
    /// Per message, in batch order.
    pub results: Vec<MessageResult>,
}

impl Store {
    /// Commits a batch for `account` in one transaction; see the module
    /// docs. Duplicates are skipped and counted, never an error.
    #[tracing::instrument(
        name = "store.commit_batch",
        skip_all,
        fields(tenant = %tenant, account = %account, messages = batch.messages.len())
    )]
    pub async fn commit_batch(
        &self,
        tenant: TenantId,
        account: AccountId,
        batch: &BatchCommit,
    ) -> Result<CommitSummary> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        let (summary, deliveries) = commit(&txn, tenant, account, batch).await?;
        txn.commit().await?;
        if deliveries > 0 {
            self.wake_webhooks();
        }
        tracing::debug!(
            inserted = summary.inserted,
            duplicates = summary.duplicates,
            "batch committed"
        );
        Ok(summary)
    }

    /// The account's cursors by folder; POP3 seen UIDLs are under
    /// [`INBOX`].
    pub async fn cursors(
        &self,
        tenant: TenantId,
        account: AccountId,
    ) -> Result<BTreeMap<String, FolderCursor>> {
        let mut cursors: BTreeMap<String, FolderCursor> = BTreeMap::new();
        let rows = folder_cursors::Entity::find()
            .filter(folder_cursors::Column::TenantId.eq(tenant.0))
            .filter(folder_cursors::Column::AccountId.eq(account.0))
            .all(&self.db)
            .await?;
        for row in rows {
            let cursor = cursors.entry(row.folder).or_default();
            cursor.uid_validity = u32::try_from(row.uid_validity).ok();
            cursor.last_uid = u32::try_from(row.last_uid).unwrap_or(0);
        }
        let seen = pop3_seen::Entity::find()
            .filter(pop3_seen::Column::TenantId.eq(tenant.0))
            .filter(pop3_seen::Column::AccountId.eq(account.0))
            .order_by_asc(pop3_seen::Column::Id)
            .all(&self.db)
            .await?;
        if !seen.is_empty() {
            let cursor = cursors.entry(INBOX.into()).or_default();
            cursor.seen_uidls.extend(seen.into_iter().map(|s| s.uidl));
        }
        Ok(cursors)
    }

    /// The cursor of one folder (empty if nothing was ingested from it).
    pub async fn cursor(
        &self,
        tenant: TenantId,
        account: AccountId,
        folder: &str,
    ) -> Result<FolderCursor> {
        Ok(self
            .cursors(tenant, account)
            .await?
            .remove(folder)
            .unwrap_or_default())
    }
}

/// The server key columns of a message key: IMAP folder, UIDVALIDITY and
/// UID, or the POP3 UIDL; none for a file.
fn imap_columns(key: &MessageKey) -> (Option<String>, Option<i64>, Option<i64>, Option<String>) {
    match key {
        MessageKey::Imap {
            folder,
            uid_validity,
            uid,
        } => (
            Some(folder.clone()),
            Some(i64::from(*uid_validity)),
            Some(i64::from(*uid)),
            None,
        ),
        MessageKey::Pop3 { uidl } => (None, None, None, Some(uidl.clone())),
        MessageKey::File { .. } => (None, None, None, None),
    }
}

/// How an action is stored: `mark-seen`, `delete`, `move:FOLDER`; `None`
/// for nothing to do.
pub(super) fn action_text(action: &Acknowledge) -> Option<String> {
    match action {
        Acknowledge::Leave => None,
        Acknowledge::MarkSeen => Some("mark-seen".into()),
        Acknowledge::Delete => Some("delete".into()),
        Acknowledge::MoveTo(folder) => Some(format!("move:{folder}")),
    }
}

async fn commit(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    account: AccountId,
    batch: &BatchCommit,
) -> Result<(CommitSummary, usize)> {
    let creates_leads = batch
        .messages
        .iter()
        .any(|m| matches!(m.outcome, Outcome::CreateLead { .. }));
    // Lock order: tenant, then account, in every transaction that takes both.
    if creates_leads && txn.get_database_backend() == DbBackend::Postgres {
        lock_tenant(txn, tenant).await?;
    }
    // The first statement writes: it makes a SQLite transaction the writer
    // from the start, row-locks the account on PostgreSQL (so commits for one
    // account take turns over its cursors), and checks that the account
    // belongs to the tenant.
    let stamp = now();
    let touched = accounts::Entity::update_many()
        .set(accounts::ActiveModel {
            last_commit_at: Set(Some(stamp)),
            ..Default::default()
        })
        .filter(accounts::Column::TenantId.eq(tenant.0))
        .filter(accounts::Column::Id.eq(account.0))
        .exec(txn)
        .await?;
    if touched.rows_affected == 0 {
        return Err(not_found("account", &account.to_string()));
    }

    delete_actions(txn, tenant, Some(account), &batch.completed_actions).await?;

    let mut summary = CommitSummary::default();
    // Every kind of row goes in a few multi-row statements, not one per
    // message: the messages first (learning which are new), then what the
    // new ones' outcomes add.
    let ids = insert_messages(txn, tenant, account, &batch.messages, stamp).await?;
    let known = named_parties(txn, tenant, &batch.messages).await?;
    let leads = leads_for(txn, tenant, &batch.messages, &ids).await?;
    let mut links: Vec<(i64, PartyId)> = Vec::new();
    let mut quarantined: Vec<quarantine::ActiveModel> = Vec::new();
    let mut discarded: Vec<discard_log::ActiveModel> = Vec::new();
    let mut uidls: Vec<&str> = Vec::new();
    let mut actions: Vec<(usize, &MessageKey, String)> = Vec::new();
    // (folder, uid_validity) → highest UID, in first-seen order.
    let mut advances: Vec<CursorAdvance> = Vec::new();
    let mut advance = |folder: &str, uid_validity: u32, uid: u32| match advances
        .iter_mut()
        .find(|a| a.folder == folder && a.uid_validity == uid_validity)
    {
        Some(a) => a.last_uid = a.last_uid.max(uid),
        None => advances.push(CursorAdvance {
            folder: folder.to_owned(),
            uid_validity,
            last_uid: uid,
        }),
    };
    for (index, (message, id)) in batch.messages.iter().zip(&ids).enumerate() {
        // A duplicate's outcome is dropped: it was acted on when first
        // stored. Its cursor, UIDL and action still count.
        match id {
            Some(id) => {
                summary.inserted += 1;
                summary
                    .results
                    .push(MessageResult::Inserted(StoredMessageId(*id)));
                let rows = OutcomeRows {
                    tenant,
                    account,
                    stamp,
                    message: *id,
                };
                match &message.outcome {
                    Outcome::Attach(refs) => {
                        for r in refs {
                            let named = r.id.trim().parse::<i64>().ok().filter(|party| {
                                known.contains(&(
                                    *party,
                                    super::parties::kind_name(r.kind).to_owned(),
                                ))
                            });
                            match named {
                                Some(party) => links.push((*id, PartyId(party))),
                                None => {
                                    tracing::warn!(tenant = %tenant, party = %r.id, "attached party not in the tenant; not linked");
                                    summary.missing_parties += 1;
                                }
                            }
                        }
                    }
                    Outcome::CreateLead { email, .. } => {
                        let lead = &leads[&normalise_email(email)?];
                        if lead.creator == Some(index) {
                            summary.leads_created += 1;
                            summary.created_leads.push(lead.email.clone());
                            summary.lead_creators.push(index);
                        }
                        links.push((*id, lead.id));
                    }
                    Outcome::Quarantine { reason, plugin } => {
                        quarantined.push(rows.quarantine(reason, plugin));
                    }
                    Outcome::Defer { reason, plugin } => {
                        quarantined.push(rows.deferred(reason, plugin));
                    }
                    Outcome::Discard { reason, plugin } => {
                        discarded.push(rows.discard(&message.meta, reason, plugin));
                    }
                    Outcome::KeepUnlinked => {}
                }
            }
            None => {
                summary.duplicates += 1;
                summary.results.push(MessageResult::Duplicate);
            }
        }

        match &message.key {
            MessageKey::Imap {
                folder,
                uid_validity,
                uid,
            } => advance(folder, *uid_validity, *uid),
            MessageKey::Pop3 { uidl } => uidls.push(uidl),
            MessageKey::File { .. } => {}
        }
        let action = message.action.as_ref().and_then(action_text);
        if let (Some(action), true) = (action, message.key.is_on_server()) {
            actions.push((index, &message.key, action));
        }
    }

    summary.quarantined += quarantined.len();
    for chunk in quarantined.chunks(ROWS_PER_STATEMENT) {
        quarantine::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(txn)
            .await?;
    }
    summary.discarded += discarded.len();
    for chunk in discarded.chunks(ROWS_PER_STATEMENT) {
        discard_log::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(txn)
            .await?;
    }

    for chunk in links.chunks(ROWS_PER_STATEMENT) {
        let inserted = message_links::Entity::insert_many(chunk.iter().map(|(message, party)| {
            message_links::ActiveModel {
                tenant_id: Set(tenant.0),
                stored_message_id: Set(*message),
                party_id: Set(party.0),
                created_at: Set(stamp),
                ..Default::default()
            }
        }))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .do_nothing()
        .exec_without_returning(txn)
        .await?;
        if let TryInsertResult::Inserted(n) = inserted {
            summary.linked += usize::try_from(n).unwrap_or(0);
        }
    }
    for chunk in uidls.chunks(ROWS_PER_STATEMENT) {
        pop3_seen::Entity::insert_many(chunk.iter().map(|uidl| pop3_seen::ActiveModel {
            tenant_id: Set(tenant.0),
            account_id: Set(account.0),
            uidl: Set((*uidl).to_owned()),
            created_at: Set(stamp),
            ..Default::default()
        }))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .do_nothing()
        .exec_without_returning(txn)
        .await?;
    }
    for chunk in actions.chunks(ROWS_PER_STATEMENT) {
        queue_actions(txn, tenant, account, chunk, stamp, &mut summary).await?;
    }

    for extra in &batch.cursor_advances {
        advance(&extra.folder, extra.uid_validity, extra.last_uid);
    }
    for a in advances {
        advance_cursor(txn, tenant, account, &a, stamp).await?;
    }
    // Last, so the shared webhook lock (PostgreSQL) is held only briefly.
    let created_leads: Vec<(usize, PartyId)> = leads
        .values()
        .filter_map(|lead| lead.creator.map(|index| (index, lead.id)))
        .collect();
    let deliveries = super::webhooks::batch_events(
        txn,
        tenant,
        account,
        super::webhooks::BatchFacts {
            messages: &batch.messages,
            ids: &ids,
            links: &links,
            created_leads: &created_leads,
        },
        stamp,
    )
    .await?;
    Ok((summary, deliveries))
}

/// Rows per multi-row insert, and ids per `IN (…)` list: well under
/// SQLite's and PostgreSQL's limits on bound values.
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// The parties the batch's `Attach` outcomes name that are in the tenant
/// with that kind, in one query per few hundred ids.
async fn named_parties(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    messages: &[IncomingMessage],
) -> Result<HashSet<(i64, String)>> {
    let mut ids: Vec<i64> = messages
        .iter()
        .filter_map(|m| match &m.outcome {
            Outcome::Attach(refs) => Some(refs),
            _ => None,
        })
        .flatten()
        .filter_map(|r| r.id.trim().parse::<i64>().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut known = HashSet::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<(i64, String)> = parties::Entity::find()
            .select_only()
            .column(parties::Column::Id)
            .column(parties::Column::Kind)
            .filter(parties::Column::TenantId.eq(tenant.0))
            .filter(parties::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await?;
        known.extend(rows);
    }
    Ok(known)
}

/// Queues server actions, one statement for the lot; each message's action
/// id (new, or the one already queued for its key) goes to `summary.queued`.
async fn queue_actions(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    account: AccountId,
    actions: &[(usize, &MessageKey, String)],
    stamp: DateTime<Utc>,
    summary: &mut CommitSummary,
) -> Result<()> {
    let mut insert =
        pending_actions::Entity::insert_many(actions.iter().map(|(_, key, action)| {
            let (folder, uid_validity, uid, uidl) = imap_columns(key);
            pending_actions::ActiveModel {
                tenant_id: Set(tenant.0),
                account_id: Set(account.0),
                folder: Set(folder),
                uid_validity: Set(uid_validity),
                uid: Set(uid),
                pop3_uidl: Set(uidl),
                action: Set(action.clone()),
                created_at: Set(stamp),
                attempts: Set(0),
                last_error: Set(None),
                ..Default::default()
            }
        }))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .into_query();
    insert.returning(Query::returning().all());
    let rows = txn
        .query_all(txn.get_database_backend().build(&insert))
        .await?;
    let mut queued: HashMap<MessageKey, i64> = HashMap::with_capacity(rows.len());
    for row in rows {
        let row = pending_actions::Model::from_query_result(&row, "")?;
        queued.insert(key_of(&row)?, row.id);
    }
    summary.actions_queued += queued.len();
    for (index, key, _) in actions {
        let id = match queued.get(*key) {
            Some(id) => Some(*id),
            // Already queued for this key (an earlier run's, not yet
            // carried out): carry that one out now.
            None => queued_for(txn, account, key).await?,
        };
        if let Some(id) = id {
            summary.queued.push(QueuedAction {
                message: *index,
                id: PendingActionId(id),
            });
        }
    }
    Ok(())
}

/// The id of the action queued for a server key, if any.
async fn queued_for(
    txn: &DatabaseTransaction,
    account: AccountId,
    key: &MessageKey,
) -> Result<Option<i64>> {
    let query =
        pending_actions::Entity::find().filter(pending_actions::Column::AccountId.eq(account.0));
    let query = match key {
        MessageKey::Imap {
            folder,
            uid_validity,
            uid,
        } => query
            .filter(pending_actions::Column::Folder.eq(folder))
            .filter(pending_actions::Column::UidValidity.eq(i64::from(*uid_validity)))
            .filter(pending_actions::Column::Uid.eq(i64::from(*uid))),
        MessageKey::Pop3 { uidl } => query.filter(pending_actions::Column::Pop3Uidl.eq(uidl)),
        MessageKey::File { .. } => return Ok(None),
    };
    Ok(query.one(txn).await?.map(|row| row.id))
}

/// Most messages per multi-row insert. A statement holds copies of what it
/// inserts (the query's values, the driver's), so it is kept to about a
/// MiB of raw bytes: a batch is a few statements, a large message one of
/// its own. A fixed count keeps to a few distinct statements, which the
/// driver prepares once.
const MESSAGES_PER_STATEMENT: usize = 32;
/// Most raw bytes per multi-row insert (one larger message goes alone).
const MESSAGE_BYTES_PER_STATEMENT: usize = 1 << 20;

/// A stored row's identity within one insert: content key and server key
/// columns, which tell which message of the batch a returned row is.
type RowKey = (
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// Inserts the batch's messages, a few per statement, skipping any the
/// account already has (any idempotency index); per message, its new id or
/// `None` for a duplicate.
///
/// Rows go in in batch order, so of two messages of the batch that collide
/// (the same bytes twice) the first is stored, as one insert per message
/// would do. Which message a returned row is follows from its content key
/// and server key: two messages with all of those equal cannot both be
/// stored, and the first is.
async fn insert_messages(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    account: AccountId,
    messages: &[IncomingMessage],
    stamp: DateTime<Utc>,
) -> Result<Vec<Option<i64>>> {
    let mut ids = vec![None; messages.len()];
    let mut start = 0;
    while start < messages.len() {
        let mut end = start + 1;
        let mut bytes = messages[start].raw.len();
        while end < messages.len()
            && end - start < MESSAGES_PER_STATEMENT
            && bytes + messages[end].raw.len() <= MESSAGE_BYTES_PER_STATEMENT
        {
            bytes += messages[end].raw.len();
            end += 1;
        }
        let mut waiting: HashMap<RowKey, VecDeque<usize>> = HashMap::new();
        let mut rows = Vec::with_capacity(end - start);
        for (index, message) in messages.iter().enumerate().take(end).skip(start) {
            let (key, row) = message_row(tenant, account, message, stamp);
            waiting.entry(key).or_default().push_back(index);
            rows.push(row);
        }
        let mut insert = messages::Entity::insert_many(rows)
            // No target: any of the idempotency indexes makes it a duplicate.
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .into_query();
        insert.returning(Query::returning().columns([
            messages::Column::Id,
            messages::Column::ContentSha256,
            messages::Column::Folder,
            messages::Column::UidValidity,
            messages::Column::Uid,
            messages::Column::Pop3Uidl,
        ]));
        let returned = txn
            .query_all(txn.get_database_backend().build(&insert))
            .await?;
        for row in returned {
            let key: RowKey = (
                row.try_get("", "content_sha256")?,
                row.try_get("", "folder")?,
                row.try_get("", "uid_validity")?,
                row.try_get("", "uid")?,
                row.try_get("", "pop3_uidl")?,
            );
            let index = waiting
                .get_mut(&key)
                .and_then(VecDeque::pop_front)
                .ok_or_else(|| super::Error::Corrupt {
                    what: "inserted message",
                    reason: "the database returned a row the batch did not insert".into(),
                })?;
            ids[index] = Some(row.try_get::<i64>("", "id")?);
        }
        start = end;
    }
    Ok(ids)
}

/// A message's row: the keys, the header fields, and the raw bytes unless
/// it is discarded.
fn message_row(
    tenant: TenantId,
    account: AccountId,
    message: &IncomingMessage,
    stamp: DateTime<Utc>,
) -> (RowKey, messages::ActiveModel) {
    let (folder, uid_validity, uid, uidl) = imap_columns(&message.key);
    let status = status_of(&message.outcome);
    let discarded = status == MessageStatus::Discarded;
    let content = Some(content_key(&message.raw));
    let key = (
        content.clone(),
        folder.clone(),
        uid_validity,
        uid,
        uidl.clone(),
    );
    let row = messages::ActiveModel {
        tenant_id: Set(tenant.0),
        account_id: Set(Some(account.0)),
        folder: Set(folder),
        uid_validity: Set(uid_validity),
        uid: Set(uid),
        pop3_uidl: Set(uidl),
        message_id: Set(message_id_of(&message.meta)),
        subject: Set(if discarded {
            None
        } else {
            message.meta.subject.clone()
        }),
        from_address: Set(sender_of(&message.meta)),
        date: Set(message.meta.date),
        size: Set(i64::try_from(message.raw.len()).unwrap_or(i64::MAX)),
        raw: Set((!discarded).then(|| message.raw.to_vec())),
        status: Set(status.as_str().to_owned()),
        created_at: Set(stamp),
        content_sha256: Set(content),
        decided_by: Set(message.decided_by.clone()),
        decision: Set(message.decision.as_ref().map(decision_json)),
        ..Default::default()
    };
    (key, row)
}

/// A decision record as stored: compact JSON.
pub(super) fn decision_json(record: &DecisionRecord) -> String {
    // Plain strings and numbers: serialising cannot fail.
    serde_json::to_string(record).unwrap_or_default()
}

/// The Message-ID as stored.
fn message_id_of(meta: &MessageMeta) -> Option<String> {
    meta.message_id.as_deref().and_then(normalise_message_id)
}

/// The sender as stored: lower case, none if blank.
fn sender_of(meta: &MessageMeta) -> Option<String> {
    meta.from
        .as_deref()
        .map(|f| f.trim().to_lowercase())
        .filter(|f| !f.is_empty())
}

/// The rows a stored message's outcome adds besides its links.
pub(super) struct OutcomeRows {
    pub(super) tenant: TenantId,
    pub(super) account: AccountId,
    pub(super) stamp: DateTime<Utc>,
    /// The stored message.
    pub(super) message: i64,
}

impl OutcomeRows {
    pub(super) fn quarantine(
        &self,
        reason: &str,
        plugin: &Option<String>,
    ) -> quarantine::ActiveModel {
        quarantine::ActiveModel {
            tenant_id: Set(self.tenant.0),
            account_id: Set(Some(self.account.0)),
            stored_message_id: Set(self.message),
            reason: Set(reason.to_owned()),
            plugin: Set(plugin.clone()),
            created_at: Set(self.stamp),
            released_at: Set(None),
            kind: Set(super::deferred::HELD.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(None),
            ..Default::default()
        }
    }

    /// A deferred message's entry: one attempt made, the next due at once
    /// (the account's next run decides it again; backoff starts after that).
    pub(super) fn deferred(
        &self,
        reason: &str,
        plugin: &Option<String>,
    ) -> quarantine::ActiveModel {
        quarantine::ActiveModel {
            kind: Set(super::deferred::TEMPORARY.to_owned()),
            attempts: Set(1),
            next_attempt_at: Set(Some(self.stamp)),
            ..self.quarantine(reason, plugin)
        }
    }

    pub(super) fn discard(
        &self,
        meta: &MessageMeta,
        reason: &str,
        plugin: &Option<String>,
    ) -> discard_log::ActiveModel {
        discard_log::ActiveModel {
            tenant_id: Set(self.tenant.0),
            account_id: Set(Some(self.account.0)),
            stored_message_id: Set(Some(self.message)),
            message_id: Set(message_id_of(meta)),
            sender: Set(sender_of(meta)),
            reason: Set(reason.to_owned()),
            plugin: Set(plugin.clone()),
            created_at: Set(self.stamp),
            ..Default::default()
        }
    }
}

/// The lead the create-lead outcomes of a batch with one address link to.
struct BatchLead {
    id: PartyId,
    /// The address, normalised.
    email: String,
    /// The batch index of the message whose outcome created it; `None` when
    /// the tenant had it already.
    creator: Option<usize>,
}

/// The leads the batch's stored create-lead outcomes link to, by address:
/// the tenant's existing lead with that address, left as it is, or a new
/// one made from the first message asking for it. The existing ones come
/// in one query per few hundred addresses; the same rule as [`lead_for`].
/// Callers on PostgreSQL hold the tenant lock.
async fn leads_for(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    messages: &[IncomingMessage],
    ids: &[Option<i64>],
) -> Result<HashMap<String, BatchLead>> {
    let mut wanted = Vec::new();
    for (index, (message, id)) in messages.iter().zip(ids).enumerate() {
        if let (
            Some(_),
            Outcome::CreateLead {
                email,
                name,
                company,
            },
        ) = (id, &message.outcome)
        {
            wanted.push((index, normalise_email(email)?, name, company));
        }
    }
    let mut emails: Vec<&str> = wanted.iter().map(|(_, e, _, _)| e.as_str()).collect();
    emails.sort_unstable();
    emails.dedup();
    let mut leads: HashMap<String, BatchLead> = HashMap::new();
    for chunk in emails.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<(i64, String)> = parties::Entity::find()
            .select_only()
            .column(parties::Column::Id)
            .column(parties::Column::Email)
            .filter(parties::Column::TenantId.eq(tenant.0))
            .filter(parties::Column::Kind.eq("lead"))
            .filter(parties::Column::Email.is_in(chunk.iter().copied()))
            .order_by_asc(parties::Column::Id)
            .into_tuple()
            .all(txn)
            .await?;
        for (id, email) in rows {
            leads.entry(email.clone()).or_insert(BatchLead {
                id: PartyId(id),
                email,
                creator: None,
            });
        }
    }
    for (index, email, name, company) in wanted {
        if leads.contains_key(&email) {
            continue;
        }
        let lead = NewParty {
            kind: PartyKind::Lead,
            email: email.clone(),
            name: name.clone(),
            company: company.clone(),
            external_id: None,
        };
        let id = insert_party(txn, tenant, &email, &lead, None).await?;
        leads.insert(
            email.clone(),
            BatchLead {
                id,
                email,
                creator: Some(index),
            },
        );
    }
    Ok(leads)
}

/// The lead a create-lead decision links to: the tenant's existing lead
/// with that address, left as it is, or a new one. The second value is the
/// new lead's address when one was created. The pipeline, quarantine
/// release and replay share it, so a decision does the same wherever it is
/// applied. Callers on PostgreSQL hold the tenant lock.
pub(super) async fn lead_for<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    email: &str,
    name: &Option<String>,
    company: &Option<String>,
) -> Result<(PartyId, Option<String>)> {
    let email = normalise_email(email)?;
    let existing = parties::Entity::find()
        .filter(parties::Column::TenantId.eq(tenant.0))
        .filter(parties::Column::Kind.eq("lead"))
        .filter(parties::Column::Email.eq(&email))
        .order_by_asc(parties::Column::Id)
        .one(db)
        .await?;
    if let Some(lead) = existing {
        return Ok((PartyId(lead.id), None));
    }
    let lead = NewParty {
        kind: PartyKind::Lead,
        email: email.clone(),
        name: name.clone(),
        company: company.clone(),
        external_id: None,
    };
    let id = insert_party(db, tenant, &email, &lead, None).await?;
    Ok((id, Some(email)))
}

impl Store {
    /// [`lead_for`] in a transaction of its own, under the tenant lock.
    pub async fn lead_for(
        &self,
        tenant: TenantId,
        email: &str,
        name: &Option<String>,
        company: &Option<String>,
    ) -> Result<PartyId> {
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let (id, _) = lead_for(&txn, tenant, email, name, company).await?;
        txn.commit().await?;
        Ok(id)
    }
}

/// The content key of a message: the SHA-256 of its exact bytes, in hex.
pub fn content_key(raw: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(raw))
}

/// Links a message to a party; false if it already was.
pub(super) async fn link<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    message: i64,
    party: PartyId,
    stamp: DateTime<Utc>,
) -> Result<bool> {
    let done = message_links::Entity::insert(message_links::ActiveModel {
        tenant_id: Set(tenant.0),
        stored_message_id: Set(message),
        party_id: Set(party.0),
        created_at: Set(stamp),
        ..Default::default()
    })
    .on_conflict(OnConflict::new().do_nothing().to_owned())
    .do_nothing()
    .exec(db)
    .await?;
    Ok(matches!(done, TryInsertResult::Inserted(_)))
}

/// Moves a folder's cursor forward: to the highest UID under the same
/// UIDVALIDITY, or to the new UIDVALIDITY's UID when it changed (the old
/// UIDs mean nothing any more). Never backwards within one UIDVALIDITY, so
/// re-committing an old batch cannot rewind it.
async fn advance_cursor(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    account: AccountId,
    advance: &CursorAdvance,
    stamp: DateTime<Utc>,
) -> Result<()> {
    let existing = folder_cursors::Entity::find()
        .filter(folder_cursors::Column::TenantId.eq(tenant.0))
        .filter(folder_cursors::Column::AccountId.eq(account.0))
        .filter(folder_cursors::Column::Folder.eq(&advance.folder))
        .one(txn)
        .await?;
    let validity = i64::from(advance.uid_validity);
    let uid = i64::from(advance.last_uid);
    match existing {
        Some(row) => {
            let last_uid = if row.uid_validity == validity {
                row.last_uid.max(uid)
            } else {
                uid
            };
            if row.uid_validity != validity || row.last_uid != last_uid {
                folder_cursors::Entity::update_many()
                    .set(folder_cursors::ActiveModel {
                        uid_validity: Set(validity),
                        last_uid: Set(last_uid),
                        updated_at: Set(stamp),
                        ..Default::default()
                    })
                    .filter(folder_cursors::Column::Id.eq(row.id))
                    .exec(txn)
                    .await?;
            }
        }
        None => {
            folder_cursors::Entity::insert(folder_cursors::ActiveModel {
                tenant_id: Set(tenant.0),
                account_id: Set(account.0),
                folder: Set(advance.folder.clone()),
                uid_validity: Set(validity),
                last_uid: Set(uid),
                updated_at: Set(stamp),
                ..Default::default()
            })
            .exec(txn)
            .await?;
        }
    }
    Ok(())
}
