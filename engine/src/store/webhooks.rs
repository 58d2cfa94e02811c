//! Webhooks in the store: each tenant's endpoints, the outbox of events and
//! one delivery per (event, endpoint).
//!
//! **Events are written in the transaction of what they report.**
//! [`Store::commit_batch`] writes `message.stored`, `lead.created` and
//! `message.quarantined`, and [`Store::finish_check`] writes
//! `account.disabled` and `account.recovered`, with the rows they describe:
//! a commit without its event, or an event without its commit, cannot
//! happen. A duplicate (skipped) message reports nothing.
//!
//! **Who gets an event.** The transaction reads the tenant's enabled
//! endpoints and writes a delivery for each one subscribed to the event's
//! type. A tenant without a subscribed endpoint writes nothing at all (no
//! event row), so it pays one indexed read per commit. The rule that makes
//! this exact: an endpoint receives the events of every transaction that
//! commits after the endpoint's creation (or enabling, or change of event
//! types) committed, and of none before. On SQLite writers take turns, so
//! the read sees every endpoint committed before the transaction began. On
//! PostgreSQL the writing transaction holds a shared advisory lock on the
//! tenant's webhook key while it reads the endpoints, and every change of a
//! tenant's endpoints takes that lock exclusively, so a change waits for the
//! commits that already read the old set, and commits wait for the change.
//!
//! **Delivery state.** A delivery is `pending` (with `next_attempt_at`, and a
//! lease while a worker is sending it), `delivered`, or `dead` (retries gave
//! up; redelivering makes it pending again with a new retry window from
//! `retry_from`). The delivery loop (`serve::webhooks`) claims due
//! deliveries with a lease — `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
//! workers on one database never send the same delivery at once — and
//! records each attempt's outcome here, with the endpoint's failure count.
//!
//! Every tenant-facing function takes the tenant and filters by it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set, Statement, TransactionTrait, Value,
};
use serde::Serialize;
use serde_json::json;

use super::batch::IncomingMessage;
use super::entity::{account_health, accounts, message_links, messages, parties};
use super::key::MasterKey;
use super::{
    AccountId, Error, PartyId, Result, Store, TenantId, WebhookDeliveryId, WebhookEndpointId,
    corrupt, invalid, not_found, now,
};
use crate::domain::{Outcome, Secret};

/// Rows per multi-row insert.
const ROWS_PER_STATEMENT: usize = 500;
/// Most characters of an attempt's error kept.
const MAX_ERROR_CHARS: usize = 300;

mod rows {
    //! The webhook tables' rows (private to this module).

    pub mod endpoints {
        //! `webhook_endpoints`.
        use sea_orm::entity::prelude::*;

        /// An endpoint; the secret is sealed.
        #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "webhook_endpoints")]
        pub struct Model {
            /// Surrogate key.
            #[sea_orm(primary_key)]
            pub id: i64,
            /// Owner.
            pub tenant_id: i64,
            /// Where events are POSTed.
            pub url: String,
            /// The sealed `whsec_…` signing secret.
            pub secret: Vec<u8>,
            /// JSON array of event types; empty: all.
            pub event_types: String,
            /// Switched on.
            pub enabled: bool,
            /// Free text.
            pub description: Option<String>,
            /// `ok` or `failing`.
            pub state: String,
            /// Failed attempts since the last success.
            pub consecutive_failures: i32,
            /// When it was marked failing.
            pub failing_since: Option<DateTimeUtc>,
            /// When it was registered.
            pub created_at: DateTimeUtc,
            /// Last change of its settings.
            pub updated_at: DateTimeUtc,
        }

        // Hand-written so a stray `{:?}` never prints the sealed secret.
        impl std::fmt::Debug for Model {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("webhook_endpoints::Model")
                    .field("id", &self.id)
                    .field("tenant_id", &self.tenant_id)
                    .finish_non_exhaustive()
            }
        }

        /// No relations are navigated through the ORM.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod events {
        //! `webhook_events`: the outbox.
        use sea_orm::entity::prelude::*;

        /// One event.
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "webhook_events")]
        pub struct Model {
            /// Surrogate key.
            #[sea_orm(primary_key)]
            pub id: i64,
            /// Owner.
            pub tenant_id: i64,
            /// `evt_…`, the `webhook-id` receivers dedupe by.
            pub event_id: String,
            /// `message.stored`, …
            pub event_type: String,
            /// The JSON body sent.
            pub payload: String,
            /// When it was committed.
            pub created_at: DateTimeUtc,
        }

        /// No relations are navigated through the ORM.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod deliveries {
        //! `webhook_deliveries`.
        use sea_orm::entity::prelude::*;

        /// One event for one endpoint.
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "webhook_deliveries")]
        pub struct Model {
            /// Surrogate key.
            #[sea_orm(primary_key)]
            pub id: i64,
            /// Owner.
            pub tenant_id: i64,
            /// The event's row.
            pub event_id: i64,
            /// The endpoint.
            pub endpoint_id: i64,
            /// `pending`, `delivered` or `dead`.
            pub state: String,
            /// Attempts so far.
            pub attempts: i32,
            /// When the next attempt is due (pending only).
            pub next_attempt_at: Option<DateTimeUtc>,
            /// Retries give up counting from here: the event's creation,
            /// or the last redelivery.
            pub retry_from: DateTimeUtc,
            /// The worker sending it now.
            pub lease_owner: Option<String>,
            /// Until when that worker holds it.
            pub lease_until: Option<DateTimeUtc>,
            /// The last attempt.
            pub last_attempt_at: Option<DateTimeUtc>,
            /// The last HTTP status.
            pub last_status: Option<i32>,
            /// The last error, short.
            pub last_error: Option<String>,
            /// When a 2xx came back.
            pub delivered_at: Option<DateTimeUtc>,
            /// When it was written.
            pub created_at: DateTimeUtc,
        }

        /// No relations are navigated through the ORM.
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

use rows::{deliveries, endpoints, events};

/// The kinds of event Intake reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum WebhookEventType {
    /// A message was stored (with its linked parties).
    #[serde(rename = "message.stored")]
    MessageStored,
    /// A lead was created for an unknown sender.
    #[serde(rename = "lead.created")]
    LeadCreated,
    /// A message was quarantined.
    #[serde(rename = "message.quarantined")]
    MessageQuarantined,
    /// An account was disabled after permanent failures.
    #[serde(rename = "account.disabled")]
    AccountDisabled,
    /// A check succeeded after the account was failing or disabled.
    #[serde(rename = "account.recovered")]
    AccountRecovered,
}

impl WebhookEventType {
    /// Every type, in documentation order.
    pub const ALL: [WebhookEventType; 5] = [
        WebhookEventType::MessageStored,
        WebhookEventType::LeadCreated,
        WebhookEventType::MessageQuarantined,
        WebhookEventType::AccountDisabled,
        WebhookEventType::AccountRecovered,
    ];

    /// Its name, as sent in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventType::MessageStored => "message.stored",
            WebhookEventType::LeadCreated => "lead.created",
            WebhookEventType::MessageQuarantined => "message.quarantined",
            WebhookEventType::AccountDisabled => "account.disabled",
            WebhookEventType::AccountRecovered => "account.recovered",
        }
    }

    /// The type named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// Whether an endpoint is being delivered to normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointState {
    /// Its last attempt succeeded, or it failed fewer times in a row than
    /// the threshold.
    Ok,
    /// It failed the threshold's number of attempts in a row; deliveries go
    /// on (with backoff), and one success makes it `ok` again.
    Failing,
}

impl EndpointState {
    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Ok => "ok",
            EndpointState::Failing => "failing",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "ok" => Ok(EndpointState::Ok),
            "failing" => Ok(EndpointState::Failing),
            other => Err(corrupt("webhook endpoint state", other)),
        }
    }
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryState {
    /// Waiting for its next attempt (or being sent).
    Pending,
    /// An attempt got a 2xx.
    Delivered,
    /// Retries gave up; it can be redelivered.
    Dead,
}

impl DeliveryState {
    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    /// The state named `text`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "dead" => Ok(DeliveryState::Dead),
            other => Err(invalid(
                "delivery state",
                format!("{other:?}: expected pending, delivered or dead"),
            )),
        }
    }
}

/// An endpoint as it is shown: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: WebhookEndpointId,
    /// Where events are POSTed.
    pub url: String,
    /// The event types it receives; empty: all.
    pub event_types: Vec<String>,
    /// Switched on.
    pub enabled: bool,
    /// Free text.
    pub description: Option<String>,
    /// `ok` or `failing`.
    pub state: EndpointState,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// When it was marked failing.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Last change of its settings.
    pub updated_at: DateTime<Utc>,
}

/// An endpoint to register (checked by the service layer).
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Where events are POSTed.
    pub url: String,
    /// Event types; empty: all.
    pub event_types: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Switched on.
    pub enabled: bool,
    /// The `whsec_…` signing secret, sealed before it is stored.
    pub secret: Secret,
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    /// A new URL.
    pub url: Option<String>,
    /// New event types (empty: all).
    pub event_types: Option<Vec<String>>,
    /// Switch on or off.
    pub enabled: Option<bool>,
    /// A new description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

/// A delivery as it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    /// Its id.
    pub id: WebhookDeliveryId,
    /// The endpoint.
    pub endpoint: WebhookEndpointId,
    /// The event's id (`evt_…`, the `webhook-id` header).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The state.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The last HTTP status.
    pub last_status: Option<u16>,
    /// The last error, short.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the event was committed.
    pub created_at: DateTime<Utc>,
}

/// Which deliveries to list: newest first, a page at a time.
#[derive(Debug, Clone)]
pub struct DeliveryQuery {
    /// Only this endpoint's.
    pub endpoint: Option<WebhookEndpointId>,
    /// Only in this state.
    pub state: Option<DeliveryState>,
    /// Only older than this one (the last id of the previous page).
    pub before: Option<WebhookDeliveryId>,
    /// At most this many.
    pub limit: u64,
}

impl Default for DeliveryQuery {
    fn default() -> Self {
        DeliveryQuery {
            endpoint: None,
            state: None,
            before: None,
            limit: 100,
        }
    }
}

/// An event as the delivery loop sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// `evt_…`.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The JSON body.
    pub payload: String,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
}

/// Where and how to send a claimed endpoint's deliveries.
#[derive(Debug, Clone)]
pub struct EndpointTarget {
    /// The endpoint.
    pub id: WebhookEndpointId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its URL.
    pub url: String,
    /// Its `whsec_…` secret, opened.
    pub secret: Secret,
}

/// A delivery the loop holds the lease of.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub id: WebhookDeliveryId,
    /// Attempts before this one.
    pub attempts: u32,
    /// Retries give up counting from here.
    pub retry_from: DateTime<Utc>,
    /// What to send.
    pub event: OutboxEvent,
}

/// What comes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptNext {
    /// It got a 2xx: done.
    Delivered,
    /// It failed: try again then.
    RetryAt(DateTime<Utc>),
    /// It failed and retries gave up: dead-lettered.
    Dead,
}

/// One attempt's outcome, to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The delivery.
    pub delivery: WebhookDeliveryId,
    /// Its endpoint.
    pub endpoint: WebhookEndpointId,
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// The HTTP status, if a response came.
    pub status: Option<u16>,
    /// What went wrong, short and without secrets.
    pub error: Option<String>,
    /// What comes next.
    pub next: AttemptNext,
}

/// An endpoint whose state changed while recording attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointTransition {
    /// The endpoint.
    pub endpoint: WebhookEndpointId,
    /// Its new state.
    pub state: EndpointState,
}

/// What the seal of an endpoint's secret is bound to.
fn secret_context(tenant: TenantId, endpoint: i64) -> Vec<u8> {
    format!("intake/webhook-secret/v1/{tenant}/{endpoint}").into_bytes()
}

fn to_endpoint(row: endpoints::Model) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: WebhookEndpointId(row.id),
        url: row.url,
        event_types: decode_types(&row.event_types)?,
        enabled: row.enabled,
        description: row.description,
        state: EndpointState::parse(&row.state)?,
        consecutive_failures: u32::try_from(row.consecutive_failures).unwrap_or(0),
        failing_since: row.failing_since,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn decode_types(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| corrupt("webhook event types", e))
}

fn encode_types(types: &[String]) -> String {
    serde_json::to_string(types).unwrap_or_else(|_| "[]".into())
}

/// Whether an endpoint subscribed to `types` receives `event`.
fn subscribed(types: &[String], event: WebhookEventType) -> bool {
    types.is_empty() || types.iter().any(|t| t == "*" || t == event.as_str())
}

/// A new event id: `evt_` and 26 Crockford base32 characters, 48 bits of
/// milliseconds then 80 random bits, so ids sort by time like ULIDs.
pub fn new_event_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = u128::try_from(Utc::now().timestamp_millis().max(0)).unwrap_or(0);
    let mut random = [0u8; 10];
    if getrandom::getrandom(&mut random).is_err() {
        // Never without randomness: the nanoseconds and the process id.
        let fallback =
            u128::from(std::process::id()) ^ u128::from(Utc::now().timestamp_subsec_nanos()) << 32;
        random.copy_from_slice(&fallback.to_le_bytes()[..10]);
    }
    let mut value = millis << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    let mut out = String::with_capacity(30);
    out.push_str("evt_");
    for i in (0..26).rev() {
        out.push(ALPHABET[((value >> (5 * i)) & 31) as usize] as char);
    }
    out
}

/// The key of a tenant's webhook advisory lock (PostgreSQL): a class of
/// its own, and the tenant id folded into 32 bits (a collision only makes
/// two tenants wait for each other).
fn lock_keys(tenant: TenantId) -> (i32, i32) {
    (0x7768_6b73, (tenant.0 % i64::from(i32::MAX)) as i32)
}

/// Takes the tenant's webhook lock: shared for a transaction that reads
/// the endpoints to write events, exclusive for a change of the endpoints.
/// Nothing on SQLite, whose writers take turns anyway.
async fn lock_endpoints<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    exclusive: bool,
) -> Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let (class, key) = lock_keys(tenant);
    let function = if exclusive {
        "pg_advisory_xact_lock"
    } else {
        "pg_advisory_xact_lock_shared"
    };
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("SELECT {function}($1, $2)::text"),
        [class.into(), key.into()],
    ))
    .await?;
    Ok(())
}

/// An enabled endpoint of the tenant, as a writing transaction sees it.
pub(super) struct Subscriber {
    id: i64,
    types: Vec<String>,
}

/// The tenant's enabled endpoints, read under the shared webhook lock (see
/// the module docs). Empty: write no events.
pub(super) async fn subscribers(
    txn: &DatabaseTransaction,
    tenant: TenantId,
) -> Result<Vec<Subscriber>> {
    lock_endpoints(txn, tenant, false).await?;
    let rows: Vec<(i64, String)> = endpoints::Entity::find()
        .select_only()
        .column(endpoints::Column::Id)
        .column(endpoints::Column::EventTypes)
        .filter(endpoints::Column::TenantId.eq(tenant.0))
        .filter(endpoints::Column::Enabled.eq(true))
        .into_tuple()
        .all(txn)
        .await?;
    rows.into_iter()
        .map(|(id, types)| {
            Ok(Subscriber {
                id,
                types: decode_types(&types)?,
            })
        })
        .collect()
}

/// An event to write: its type and its `data`.
pub(super) struct NewEvent {
    kind: WebhookEventType,
    data: serde_json::Value,
}

/// Writes `events` to the outbox with a delivery for each subscribed
/// endpoint; events no endpoint subscribed to are not written. Returns how
/// many deliveries were written.
pub(super) async fn write_events(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    subscribers: &[Subscriber],
    new: Vec<NewEvent>,
    stamp: DateTime<Utc>,
) -> Result<usize> {
    let mut event_rows = Vec::new();
    let mut fan_out: Vec<(String, Vec<i64>)> = Vec::new();
    for event in new {
        let to: Vec<i64> = subscribers
            .iter()
            .filter(|s| subscribed(&s.types, event.kind))
            .map(|s| s.id)
            .collect();
        if to.is_empty() {
            continue;
        }
        let id = new_event_id();
        let body = json!({
            "type": event.kind.as_str(),
            "timestamp": stamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": event.data,
        });
        event_rows.push(events::ActiveModel {
            tenant_id: Set(tenant.0),
            event_id: Set(id.clone()),
            event_type: Set(event.kind.as_str().to_owned()),
            payload: Set(body.to_string()),
            created_at: Set(stamp),
            ..Default::default()
        });
        fan_out.push((id, to));
    }
    if event_rows.is_empty() {
        return Ok(0);
    }
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(event_rows.len());
    for chunk in event_rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = events::Entity::insert_many(chunk.iter().cloned()).into_query();
        insert.returning(Query::returning().columns([events::Column::Id, events::Column::EventId]));
        let returned = txn
            .query_all(txn.get_database_backend().build(&insert))
            .await?;
        for row in returned {
            ids.insert(row.try_get("", "event_id")?, row.try_get("", "id")?);
        }
    }
    let mut delivery_rows = Vec::new();
    for (event_id, to) in fan_out {
        let event = *ids.get(&event_id).ok_or_else(|| {
            corrupt(
                "webhook event",
                "the database did not return an inserted event",
            )
        })?;
        for endpoint in to {
            delivery_rows.push(deliveries::ActiveModel {
                tenant_id: Set(tenant.0),
                event_id: Set(event),
                endpoint_id: Set(endpoint),
                state: Set(DeliveryState::Pending.as_str().to_owned()),
                attempts: Set(0),
                next_attempt_at: Set(Some(stamp)),
                retry_from: Set(stamp),
                created_at: Set(stamp),
                ..Default::default()
            });
        }
    }
    let written = delivery_rows.len();
    for chunk in delivery_rows.chunks(ROWS_PER_STATEMENT) {
        deliveries::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(written)
}

/// The name of an account, for payloads.
async fn account_name<C: ConnectionTrait>(db: &C, account: i64) -> Result<String> {
    Ok(accounts::Entity::find()
        .select_only()
        .column(accounts::Column::Name)
        .filter(accounts::Column::Id.eq(account))
        .into_tuple::<String>()
        .one(db)
        .await?
        .unwrap_or_default())
}

/// A party as payloads show it.
fn party_json(row: &parties::Model) -> serde_json::Value {
    json!({
        "id": row.id,
        "kind": row.kind,
        "email": row.email,
        "name": row.name,
        "company": row.company,
        "external_id": row.external_id,
    })
}

/// How a stored message's outcome is named in `message.stored`.
fn disposition(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Attach(_) => "attach",
        Outcome::CreateLead { .. } => "create-lead",
        Outcome::KeepUnlinked => "keep-unlinked",
        Outcome::Quarantine { .. } => "quarantine",
        Outcome::Discard { .. } => "discard",
        Outcome::Defer { .. } => "defer",
    }
}

/// What a batch commit stored, for its events.
pub(super) struct BatchFacts<'a> {
    /// The batch's messages.
    pub messages: &'a [IncomingMessage],
    /// Per message, its new stored id (`None`: a duplicate).
    pub ids: &'a [Option<i64>],
    /// (stored message, party) links written.
    pub links: &'a [(i64, PartyId)],
    /// (batch index, lead) of the leads the batch created.
    pub created_leads: &'a [(usize, PartyId)],
}

/// Writes the events of a batch commit: per stored message, `lead.created`
/// for a lead it created, then `message.stored` or `message.quarantined`.
/// Discarded messages and duplicates report nothing. Returns the number of
/// deliveries written.
pub(super) async fn batch_events(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    account: AccountId,
    facts: BatchFacts<'_>,
    stamp: DateTime<Utc>,
) -> Result<usize> {
    if facts.ids.iter().all(Option::is_none) {
        return Ok(0);
    }
    let subscribers = subscribers(txn, tenant).await?;
    if subscribers.is_empty() {
        return Ok(0);
    }
    let account_name = account_name(txn, account.0).await?;
    let mut party_ids: Vec<i64> = facts.links.iter().map(|(_, p)| p.0).collect();
    party_ids.sort_unstable();
    party_ids.dedup();
    let mut known: HashMap<i64, parties::Model> = HashMap::new();
    for chunk in party_ids.chunks(ROWS_PER_STATEMENT) {
        for row in parties::Entity::find()
            .filter(parties::Column::TenantId.eq(tenant.0))
            .filter(parties::Column::Id.is_in(chunk.iter().copied()))
            .all(txn)
            .await?
        {
            known.insert(row.id, row);
        }
    }
    let mut linked: HashMap<i64, Vec<serde_json::Value>> = HashMap::new();
    for (message, party) in facts.links {
        if let Some(row) = known.get(&party.0) {
            linked.entry(*message).or_default().push(party_json(row));
        }
    }
    let created: HashMap<usize, PartyId> = facts.created_leads.iter().copied().collect();
    let mut new = Vec::new();
    for (index, (message, id)) in facts.messages.iter().zip(facts.ids).enumerate() {
        let Some(id) = id else { continue };
        let meta = &message.meta;
        let message_id = meta
            .message_id
            .as_deref()
            .and_then(super::normalise_message_id);
        if let Some(lead) = created.get(&index)
            && let Some(row) = known.get(&lead.0)
        {
            let mut data = party_json(row);
            data["account"] = json!(account_name);
            data["message"] = json!(id);
            new.push(NewEvent {
                kind: WebhookEventType::LeadCreated,
                data,
            });
        }
        match &message.outcome {
            // A deferred message is not decided yet: the CRM hears of it
            // once it is (`message.stored` when a later attempt stores it).
            Outcome::Discard { .. } | Outcome::Defer { .. } => {}
            Outcome::Quarantine { reason, plugin } => new.push(NewEvent {
                kind: WebhookEventType::MessageQuarantined,
                data: json!({
                    "id": id,
                    "account": account_name,
                    "message_id": message_id,
                    "subject": meta.subject,
                    "from": meta.from,
                    "date": meta.date,
                    "reason": reason,
                    "plugin": plugin,
                }),
            }),
            outcome => new.push(NewEvent {
                kind: WebhookEventType::MessageStored,
                data: json!({
                    "id": id,
                    "account": account_name,
                    "message_id": message_id,
                    "subject": meta.subject,
                    "from": meta.from,
                    "date": meta.date,
                    "disposition": disposition(outcome),
                    "decided_by": message.decided_by,
                    "parties": linked.remove(id).unwrap_or_default(),
                }),
            }),
        }
    }
    write_events(txn, tenant, &subscribers, new, stamp).await
}

/// Writes `message.stored` for a message released from quarantine, with
/// the parties it is linked to now and `"released": true`. Returns the
/// deliveries written.
pub(super) async fn release_events(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    message: i64,
    stamp: DateTime<Utc>,
) -> Result<usize> {
    let subscribers = subscribers(txn, tenant).await?;
    if subscribers.is_empty() {
        return Ok(0);
    }
    let Some(row) = messages::Entity::find()
        .filter(messages::Column::TenantId.eq(tenant.0))
        .filter(messages::Column::Id.eq(message))
        .one(txn)
        .await?
    else {
        return Ok(0);
    };
    let account = match row.account_id {
        Some(account) => Some(account_name(txn, account).await?),
        None => None,
    };
    let party_ids: Vec<i64> = message_links::Entity::find()
        .select_only()
        .column(message_links::Column::PartyId)
        .filter(message_links::Column::TenantId.eq(tenant.0))
        .filter(message_links::Column::StoredMessageId.eq(message))
        .into_tuple()
        .all(txn)
        .await?;
    let linked: Vec<serde_json::Value> = parties::Entity::find()
        .filter(parties::Column::TenantId.eq(tenant.0))
        .filter(parties::Column::Id.is_in(party_ids))
        .order_by_asc(parties::Column::Id)
        .all(txn)
        .await?
        .iter()
        .map(party_json)
        .collect();
    let data = json!({
        "id": message,
        "account": account,
        "message_id": row.message_id,
        "subject": row.subject,
        "from": row.from_address,
        "date": row.date,
        "disposition": if linked.is_empty() { "keep-unlinked" } else { "attach" },
        "decided_by": row.decided_by,
        "parties": linked,
        "released": true,
    });
    let event = NewEvent {
        kind: WebhookEventType::MessageStored,
        data,
    };
    write_events(txn, tenant, &subscribers, vec![event], stamp).await
}

/// Writes `account.disabled` or `account.recovered` when a check's outcome
/// changes the account that way. `previous` is the health row before the
/// check was recorded; `next` the state, error class and reason recorded.
/// A recovery is a successful check after the account was backing off or
/// disabled, or after a failed check (an account a person enabled again
/// keeps its last error until it succeeds). Returns the deliveries written.
pub(super) async fn health_events(
    txn: &DatabaseTransaction,
    previous: &account_health::Model,
    next: &super::AccountHealth,
    stamp: DateTime<Utc>,
) -> Result<usize> {
    use super::HealthState;
    let was_disabled = previous.state == HealthState::Disabled.as_str();
    let disabled = next.state == HealthState::Disabled && !was_disabled;
    let succeeded = next.state == HealthState::Ok && next.last_error_class.is_none();
    let recovered = succeeded
        && (previous.state != HealthState::Ok.as_str() || previous.last_error_class.is_some());
    if !disabled && !recovered {
        return Ok(0);
    }
    let tenant = TenantId(previous.tenant_id);
    let subscribers = subscribers(txn, tenant).await?;
    if subscribers.is_empty() {
        return Ok(0);
    }
    let account = account_name(txn, previous.account_id).await?;
    let event = if disabled {
        NewEvent {
            kind: WebhookEventType::AccountDisabled,
            data: json!({
                "account": account,
                "reason": next.disabled_reason,
                "error_class": next.last_error_class,
                "disabled_at": next.disabled_at,
            }),
        }
    } else {
        NewEvent {
            kind: WebhookEventType::AccountRecovered,
            data: json!({
                "account": account,
                "previous_state": previous.state,
                "previous_error_class": previous.last_error_class,
                "recovered_at": stamp,
            }),
        }
    };
    write_events(txn, tenant, &subscribers, vec![event], stamp).await
}

/// Re-seals every endpoint secret from `old` to `new` (a master key
/// rotation, in its transaction).
pub(super) async fn reseal_secrets(
    txn: &DatabaseTransaction,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize> {
    let rows = endpoints::Entity::find()
        .order_by_asc(endpoints::Column::Id)
        .all(txn)
        .await?;
    let count = rows.len();
    for row in rows {
        let context = secret_context(TenantId(row.tenant_id), row.id);
        let plain = old
            .open(&row.secret, &context)
            .ok_or_else(|| Error::WrongKey {
                credential: format!("webhook endpoint {}", row.id),
            })?;
        let sealed = new.seal(&plain, &context)?;
        endpoints::Entity::update_many()
            .col_expr(endpoints::Column::Secret, Expr::value(sealed))
            .filter(endpoints::Column::Id.eq(row.id))
            .exec(txn)
            .await?;
    }
    Ok(count)
}

/// `$n` placeholders as the backend spells them (SQLite: `?n`).
fn sql(backend: DbBackend, text: &str) -> String {
    match backend {
        DbBackend::Postgres => text.to_owned(),
        _ => text.replace('$', "?"),
    }
}

impl Store {
    /// Wakes the delivery loop of this process (events were committed).
    pub(crate) fn wake_webhooks(&self) {
        self.webhook_wake.notify_one();
    }

    /// Waits until a commit of this process wrote events.
    pub async fn webhook_events_written(&self) {
        self.webhook_wake.notified().await;
    }

    /// Registers an endpoint; the secret is sealed with `key`.
    pub async fn add_webhook_endpoint(
        &self,
        tenant: TenantId,
        endpoint: &NewEndpoint,
        key: &MasterKey,
    ) -> Result<WebhookEndpoint> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_endpoints(&txn, tenant, true).await?;
        let stamp = now();
        // The seal is bound to the row's id, which the insert gives: insert
        // with a placeholder, then seal.
        let inserted = endpoints::Entity::insert(endpoints::ActiveModel {
            tenant_id: Set(tenant.0),
            url: Set(endpoint.url.clone()),
            secret: Set(Vec::new()),
            event_types: Set(encode_types(&endpoint.event_types)),
            enabled: Set(endpoint.enabled),
            description: Set(endpoint.description.clone()),
            state: Set(EndpointState::Ok.as_str().to_owned()),
            consecutive_failures: Set(0),
            failing_since: Set(None),
            created_at: Set(stamp),
            updated_at: Set(stamp),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let id = inserted.last_insert_id;
        let sealed = key.seal(
            endpoint.secret.expose().as_bytes(),
            &secret_context(tenant, id),
        )?;
        endpoints::Entity::update_many()
            .col_expr(endpoints::Column::Secret, Expr::value(sealed))
            .filter(endpoints::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        let row = endpoints::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| not_found("webhook endpoint", &id.to_string()))?;
        txn.commit().await?;
        to_endpoint(row)
    }

    /// The tenant's endpoints, oldest first.
    pub async fn webhook_endpoints(&self, tenant: TenantId) -> Result<Vec<WebhookEndpoint>> {
        endpoints::Entity::find()
            .filter(endpoints::Column::TenantId.eq(tenant.0))
            .order_by_asc(endpoints::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_endpoint)
            .collect()
    }

    /// One endpoint of the tenant.
    pub async fn webhook_endpoint(
        &self,
        tenant: TenantId,
        id: WebhookEndpointId,
    ) -> Result<WebhookEndpoint> {
        to_endpoint(self.endpoint_row(&self.db, tenant, id).await?)
    }

    async fn endpoint_row<C: ConnectionTrait>(
        &self,
        db: &C,
        tenant: TenantId,
        id: WebhookEndpointId,
    ) -> Result<endpoints::Model> {
        endpoints::Entity::find()
            .filter(endpoints::Column::TenantId.eq(tenant.0))
            .filter(endpoints::Column::Id.eq(id.0))
            .one(db)
            .await?
            .ok_or_else(|| not_found("webhook endpoint", &id.to_string()))
    }

    /// Changes an endpoint's settings.
    pub async fn update_webhook_endpoint(
        &self,
        tenant: TenantId,
        id: WebhookEndpointId,
        changes: &EndpointChanges,
    ) -> Result<WebhookEndpoint> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_endpoints(&txn, tenant, true).await?;
        let row = self.endpoint_row(&txn, tenant, id).await?;
        let mut update = endpoints::ActiveModel {
            updated_at: Set(now()),
            ..Default::default()
        };
        if let Some(url) = &changes.url {
            update.url = Set(url.clone());
        }
        if let Some(types) = &changes.event_types {
            update.event_types = Set(encode_types(types));
        }
        if let Some(enabled) = changes.enabled {
            update.enabled = Set(enabled);
        }
        if let Some(description) = &changes.description {
            update.description = Set(description.clone());
        }
        endpoints::Entity::update_many()
            .set(update)
            .filter(endpoints::Column::Id.eq(row.id))
            .exec(&txn)
            .await?;
        let row = self.endpoint_row(&txn, tenant, id).await?;
        txn.commit().await?;
        to_endpoint(row)
    }

    /// Replaces an endpoint's secret.
    pub async fn set_webhook_secret(
        &self,
        tenant: TenantId,
        id: WebhookEndpointId,
        secret: &Secret,
        key: &MasterKey,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let sealed = key.seal(secret.expose().as_bytes(), &secret_context(tenant, id.0))?;
        let updated = endpoints::Entity::update_many()
            .col_expr(endpoints::Column::Secret, Expr::value(sealed))
            .col_expr(endpoints::Column::UpdatedAt, Expr::value(now()))
            .filter(endpoints::Column::TenantId.eq(tenant.0))
            .filter(endpoints::Column::Id.eq(id.0))
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            return Err(not_found("webhook endpoint", &id.to_string()));
        }
        Ok(())
    }

    /// Removes an endpoint with its deliveries.
    pub async fn remove_webhook_endpoint(
        &self,
        tenant: TenantId,
        id: WebhookEndpointId,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_endpoints(&txn, tenant, true).await?;
        // Explicitly, not only by the foreign key's cascade (SQLite
        // connections may have foreign keys off).
        deliveries::Entity::delete_many()
            .filter(deliveries::Column::TenantId.eq(tenant.0))
            .filter(deliveries::Column::EndpointId.eq(id.0))
            .exec(&txn)
            .await?;
        let removed = endpoints::Entity::delete_many()
            .filter(endpoints::Column::TenantId.eq(tenant.0))
            .filter(endpoints::Column::Id.eq(id.0))
            .exec(&txn)
            .await?;
        if removed.rows_affected == 0 {
            return Err(not_found("webhook endpoint", &id.to_string()));
        }
        txn.commit().await?;
        Ok(())
    }

    /// The tenant's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        tenant: TenantId,
        query: &DeliveryQuery,
    ) -> Result<Vec<WebhookDelivery>> {
        let mut find = deliveries::Entity::find().filter(deliveries::Column::TenantId.eq(tenant.0));
        if let Some(endpoint) = query.endpoint {
            find = find.filter(deliveries::Column::EndpointId.eq(endpoint.0));
        }
        if let Some(state) = query.state {
            find = find.filter(deliveries::Column::State.eq(state.as_str()));
        }
        if let Some(before) = query.before {
            find = find.filter(deliveries::Column::Id.lt(before.0));
        }
        let rows = find
            .order_by_desc(deliveries::Column::Id)
            .limit(query.limit.clamp(1, 1000))
            .all(&self.db)
            .await?;
        let event_ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
        let mut events: HashMap<i64, (String, String)> = HashMap::new();
        for chunk in event_ids.chunks(ROWS_PER_STATEMENT) {
            let found: Vec<(i64, String, String)> = events::Entity::find()
                .select_only()
                .columns([
                    events::Column::Id,
                    events::Column::EventId,
                    events::Column::EventType,
                ])
                .filter(events::Column::Id.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&self.db)
                .await?;
            events.extend(found.into_iter().map(|(id, e, t)| (id, (e, t))));
        }
        rows.into_iter()
            .map(|row| {
                let (event_id, event_type) = events.remove(&row.event_id).unwrap_or_default();
                Ok(WebhookDelivery {
                    id: WebhookDeliveryId(row.id),
                    endpoint: WebhookEndpointId(row.endpoint_id),
                    event_id,
                    event_type,
                    state: DeliveryState::parse(&row.state)
                        .map_err(|_| corrupt("delivery state", &row.state))?,
                    attempts: u32::try_from(row.attempts).unwrap_or(0),
                    next_attempt_at: row.next_attempt_at,
                    last_attempt_at: row.last_attempt_at,
                    last_status: row.last_status.and_then(|s| u16::try_from(s).ok()),
                    last_error: row.last_error,
                    delivered_at: row.delivered_at,
                    created_at: row.created_at,
                })
            })
            .collect()
    }

    /// Makes a dead or delivered delivery pending again, due now, with a
    /// new retry window. Returns it.
    pub async fn redeliver_webhook(
        &self,
        tenant: TenantId,
        id: WebhookDeliveryId,
    ) -> Result<WebhookDelivery> {
        let row = deliveries::Entity::find()
            .filter(deliveries::Column::TenantId.eq(tenant.0))
            .filter(deliveries::Column::Id.eq(id.0))
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("webhook delivery", &id.to_string()))?;
        if row.state == DeliveryState::Pending.as_str() {
            return Err(invalid(
                "delivery",
                format!("{id} is still pending; it is retried by itself"),
            ));
        }
        self.requeue(
            tenant,
            deliveries::Column::Id.eq(id.0),
            &[DeliveryState::Dead, DeliveryState::Delivered],
        )
        .await?;
        let delivery = self
            .webhook_deliveries(
                tenant,
                &DeliveryQuery {
                    before: Some(WebhookDeliveryId(id.0 + 1)),
                    limit: 1,
                    ..DeliveryQuery::default()
                },
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| not_found("webhook delivery", &id.to_string()))?;
        Ok(delivery)
    }

    /// Makes every dead delivery of an endpoint pending again; returns how
    /// many.
    pub async fn redeliver_dead_webhooks(
        &self,
        tenant: TenantId,
        endpoint: WebhookEndpointId,
    ) -> Result<u64> {
        self.endpoint_row(&self.db, tenant, endpoint).await?;
        self.requeue(
            tenant,
            deliveries::Column::EndpointId.eq(endpoint.0),
            &[DeliveryState::Dead],
        )
        .await
    }

    async fn requeue(
        &self,
        tenant: TenantId,
        which: sea_orm::sea_query::SimpleExpr,
        from: &[DeliveryState],
    ) -> Result<u64> {
        let _turn = self.write_turn().await;
        let at = now();
        let done = deliveries::Entity::update_many()
            .col_expr(
                deliveries::Column::State,
                Expr::value(DeliveryState::Pending.as_str()),
            )
            .col_expr(deliveries::Column::NextAttemptAt, Expr::value(at))
            .col_expr(deliveries::Column::RetryFrom, Expr::value(at))
            .col_expr(
                deliveries::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                deliveries::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(deliveries::Column::TenantId.eq(tenant.0))
            .filter(which)
            .filter(deliveries::Column::State.is_in(from.iter().map(|s| s.as_str())))
            .exec(&self.db)
            .await?;
        drop(_turn);
        if done.rows_affected > 0 {
            self.wake_webhooks();
        }
        Ok(done.rows_affected)
    }

    /// Pending deliveries over all tenants (the service's gauge).
    pub async fn pending_webhook_deliveries(&self) -> Result<u64> {
        let count: Option<i64> = deliveries::Entity::find()
            .select_only()
            .column_as(deliveries::Column::Id.count(), "n")
            .filter(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(u64::try_from(count.unwrap_or(0)).unwrap_or(0))
    }

    /// Endpoints, over all tenants, with deliveries due at `at` that no
    /// worker holds, leaving out `busy` ones; at most `limit`.
    pub async fn due_webhook_endpoints(
        &self,
        at: DateTime<Utc>,
        busy: &[WebhookEndpointId],
        limit: u64,
    ) -> Result<Vec<WebhookEndpointId>> {
        let backend = self.db.get_database_backend();
        let mut text = String::from(
            "SELECT DISTINCT d.endpoint_id FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
             AND (d.lease_until IS NULL OR d.lease_until < $1) AND e.enabled = $2",
        );
        let mut values: Vec<Value> = vec![at.into(), true.into()];
        if !busy.is_empty() {
            let list: Vec<String> = busy.iter().map(|b| b.0.to_string()).collect();
            text.push_str(&format!(" AND d.endpoint_id NOT IN ({})", list.join(",")));
        }
        text.push_str(&format!(" LIMIT {limit}"));
        let rows = self
            .db
            .query_all(Statement::from_sql_and_values(
                backend,
                sql(backend, &text),
                values.drain(..),
            ))
            .await?;
        rows.into_iter()
            .map(|r| Ok(WebhookEndpointId(r.try_get_by_index::<i64>(0)?)))
            .collect()
    }

    /// Where to send an endpoint's deliveries (its secret opened with
    /// `key`); `None` if it is gone or switched off.
    pub async fn webhook_target(
        &self,
        endpoint: WebhookEndpointId,
        key: &MasterKey,
    ) -> Result<Option<EndpointTarget>> {
        let Some(row) = endpoints::Entity::find_by_id(endpoint.0)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        if !row.enabled {
            return Ok(None);
        }
        let tenant = TenantId(row.tenant_id);
        let plain = key
            .open(&row.secret, &secret_context(tenant, row.id))
            .ok_or_else(|| Error::WrongKey {
                credential: format!("webhook endpoint {}", row.id),
            })?;
        let secret = String::from_utf8(plain).map_err(|_| corrupt("webhook secret", "not text"))?;
        Ok(Some(EndpointTarget {
            id: endpoint,
            tenant,
            url: row.url,
            secret: Secret::new(secret),
        }))
    }

    /// Claims up to `limit` of an endpoint's due deliveries for `owner`
    /// until `until`: the oldest due first, none another worker holds.
    pub async fn claim_webhook_deliveries(
        &self,
        endpoint: WebhookEndpointId,
        owner: &str,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<ClaimedDelivery>> {
        let backend = self.db.get_database_backend();
        let lock = if backend == DbBackend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let text = format!(
            "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE endpoint_id = $3 AND state = 'pending' AND next_attempt_at <= $4 \
             AND (lease_until IS NULL OR lease_until < $4) \
             ORDER BY next_attempt_at, id LIMIT {limit}{lock}) \
             RETURNING id, event_id, attempts, retry_from"
        );
        let at = now();
        let claimed = {
            let _turn = self.write_turn().await;
            self.db
                .query_all(Statement::from_sql_and_values(
                    backend,
                    sql(backend, &text),
                    [owner.into(), until.into(), endpoint.0.into(), at.into()],
                ))
                .await?
        };
        let mut rows = Vec::with_capacity(claimed.len());
        for row in claimed {
            rows.push((
                row.try_get::<i64>("", "id")?,
                row.try_get::<i64>("", "event_id")?,
                row.try_get::<i32>("", "attempts")?,
                row.try_get::<DateTime<Utc>>("", "retry_from")?,
            ));
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let mut found: HashMap<i64, events::Model> = HashMap::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            for e in events::Entity::find()
                .filter(events::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await?
            {
                found.insert(e.id, e);
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for (id, event, attempts, retry_from) in rows {
            let Some(e) = found.get(&event) else { continue };
            out.push(ClaimedDelivery {
                id: WebhookDeliveryId(id),
                attempts: u32::try_from(attempts).unwrap_or(0),
                retry_from,
                event: OutboxEvent {
                    event_id: e.event_id.clone(),
                    event_type: e.event_type.clone(),
                    payload: e.payload.clone(),
                    created_at: e.created_at,
                },
            });
        }
        out.sort_by_key(|d| (d.event.created_at, d.id));
        Ok(out)
    }

    /// Records attempts in one transaction: each delivery's outcome, and
    /// each endpoint's failures in a row — `failing` once they reach
    /// `failing_after`, `ok` again on a success. Returns the endpoints whose
    /// state changed.
    pub async fn record_webhook_attempts(
        &self,
        attempts: &[AttemptRecord],
        failing_after: u32,
    ) -> Result<Vec<EndpointTransition>> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        // Per endpoint: whether a success came, and the failures after the
        // last success (attempts are in completion order).
        let mut per_endpoint: HashMap<i64, (bool, u32, DateTime<Utc>)> = HashMap::new();
        for a in attempts {
            let error = a
                .error
                .as_deref()
                .map(|e| crate::text::bounded(e, MAX_ERROR_CHARS));
            let mut update = deliveries::ActiveModel {
                last_attempt_at: Set(Some(a.at)),
                last_status: Set(a.status.map(i32::from)),
                last_error: Set(error),
                lease_owner: Set(None),
                lease_until: Set(None),
                ..Default::default()
            };
            match a.next {
                AttemptNext::Delivered => {
                    update.state = Set(DeliveryState::Delivered.as_str().to_owned());
                    update.delivered_at = Set(Some(a.at));
                    update.next_attempt_at = Set(None);
                }
                AttemptNext::RetryAt(at) => {
                    update.next_attempt_at = Set(Some(at));
                }
                AttemptNext::Dead => {
                    update.state = Set(DeliveryState::Dead.as_str().to_owned());
                    update.next_attempt_at = Set(None);
                }
            }
            deliveries::Entity::update_many()
                .set(update)
                .col_expr(
                    deliveries::Column::Attempts,
                    Expr::col(deliveries::Column::Attempts).add(1),
                )
                .filter(deliveries::Column::Id.eq(a.delivery.0))
                .filter(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
                .exec(&txn)
                .await?;
            let entry = per_endpoint.entry(a.endpoint.0).or_insert((false, 0, a.at));
            if a.next == AttemptNext::Delivered {
                *entry = (true, 0, a.at);
            } else {
                entry.1 += 1;
                entry.2 = a.at;
            }
        }
        let mut transitions = Vec::new();
        let mut ids: Vec<i64> = per_endpoint.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let (success, failures, at) = per_endpoint[&id];
            let Some(row) = endpoints::Entity::find_by_id(id).one(&txn).await? else {
                continue;
            };
            let before = u32::try_from(row.consecutive_failures).unwrap_or(0);
            let total = if success {
                failures
            } else {
                before.saturating_add(failures)
            };
            let was = EndpointState::parse(&row.state)?;
            let state = if total >= failing_after.max(1) {
                EndpointState::Failing
            } else {
                EndpointState::Ok
            };
            let failing_since = match (was, state) {
                (EndpointState::Failing, EndpointState::Failing) => row.failing_since,
                (_, EndpointState::Failing) => Some(at),
                _ => None,
            };
            endpoints::Entity::update_many()
                .col_expr(
                    endpoints::Column::ConsecutiveFailures,
                    Expr::value(i32::try_from(total).unwrap_or(i32::MAX)),
                )
                .col_expr(endpoints::Column::State, Expr::value(state.as_str()))
                .col_expr(endpoints::Column::FailingSince, Expr::value(failing_since))
                .filter(endpoints::Column::Id.eq(id))
                .exec(&txn)
                .await?;
            if state != was {
                transitions.push(EndpointTransition {
                    endpoint: WebhookEndpointId(id),
                    state,
                });
            }
        }
        txn.commit().await?;
        Ok(transitions)
    }

    /// The workers holding leases on pending deliveries.
    pub async fn webhook_lease_owners(&self) -> Result<Vec<String>> {
        Ok(deliveries::Entity::find()
            .select_only()
            .column(deliveries::Column::LeaseOwner)
            .distinct()
            .filter(deliveries::Column::LeaseOwner.is_not_null())
            .filter(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
            .into_tuple::<Option<String>>()
            .all(&self.db)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Gives up a worker's leases on deliveries (this one's at a clean
    /// stop, or a dead one's).
    pub async fn release_webhook_leases(&self, owner: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        deliveries::Entity::update_many()
            .col_expr(
                deliveries::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                deliveries::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(deliveries::Column::LeaseOwner.eq(owner))
            .filter(deliveries::Column::State.eq(DeliveryState::Pending.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_unique_sortable_text() {
        let a = new_event_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_event_id();
        assert_eq!(a.len(), 30);
        assert!(a.starts_with("evt_"));
        assert!(a < b, "{a} {b}");
        assert_ne!(new_event_id(), new_event_id());
    }

    #[test]
    fn empty_or_star_subscribes_to_everything() {
        assert!(subscribed(&[], WebhookEventType::LeadCreated));
        assert!(subscribed(&["*".into()], WebhookEventType::LeadCreated));
        assert!(subscribed(
            &["lead.created".into()],
            WebhookEventType::LeadCreated
        ));
        assert!(!subscribed(
            &["message.stored".into()],
            WebhookEventType::LeadCreated
        ));
    }
}
