//! Account health: what `intake serve` knows of each account's checks — its
//! state (ok, backing off, disabled), the last check and its error, when the
//! next one is due, a check a person asked for — and the lease that lets
//! exactly one worker at a time work an account, whichever machine it runs
//! on. Also the table of running workers and their heartbeats.
//!
//! The store only keeps these facts; the policy that decides them (backoff,
//! when to disable) lives in the service layer.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, Set,
    TransactionTrait,
};
use serde::Serialize;

use super::entity::{account_health as health, accounts, tenants, workers};
use super::{AccountId, Result, Store, TenantId, corrupt, not_found, now};

/// Whether an account is being checked normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HealthState {
    /// Checked at its interval.
    Ok,
    /// Failing for a reason that may pass: retried later and later.
    BackingOff,
    /// Failed for a reason only a person can fix: left alone until someone
    /// enables it or changes its settings.
    Disabled,
}

impl HealthState {
    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Ok => "ok",
            HealthState::BackingOff => "backing-off",
            HealthState::Disabled => "disabled",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "ok" => HealthState::Ok,
            "backing-off" => HealthState::BackingOff,
            "disabled" => HealthState::Disabled,
            other => return Err(corrupt("account state", format!("unknown value {other:?}"))),
        })
    }
}

/// What is known of an account's checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AccountHealth {
    /// The state.
    pub state: HealthState,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Backing off until then.
    pub retry_at: Option<DateTime<Utc>>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// When the last check started.
    pub last_check_at: Option<DateTime<Utc>>,
    /// When the last successful check started.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The class of the last error (`auth`, `tls`, `network`, …).
    pub last_error_class: Option<String>,
    /// The last error, as a user reads it.
    pub last_error: Option<String>,
    /// Messages ingested by the last check.
    pub last_ingested: Option<u64>,
    /// When the next scheduled check is due (`None`: at once).
    pub next_check_at: Option<DateTime<Utc>>,
    /// A person asked for a check at this time; cleared when one starts.
    pub check_requested_at: Option<DateTime<Utc>>,
    /// The worker working the account now, if any.
    pub lease_owner: Option<String>,
    /// Until when that lease holds unless renewed.
    pub lease_until: Option<DateTime<Utc>>,
    /// How far the running check has got, when it has run long enough to
    /// say (see [`Store::record_progress`]).
    pub progress: Option<CheckProgress>,
}

/// How far a running check has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CheckProgress {
    /// Messages committed so far.
    pub done: u64,
    /// Messages listed so far (a large folder is listed a window at a
    /// time, so this can grow while the check runs).
    pub total: u64,
    /// When the worker wrote these figures.
    pub at: DateTime<Utc>,
}

impl Default for AccountHealth {
    fn default() -> Self {
        AccountHealth {
            state: HealthState::Ok,
            consecutive_failures: 0,
            retry_at: None,
            disabled_reason: None,
            disabled_at: None,
            last_check_at: None,
            last_success_at: None,
            last_error_class: None,
            last_error: None,
            last_ingested: None,
            next_check_at: None,
            check_requested_at: None,
            lease_owner: None,
            lease_until: None,
            progress: None,
        }
    }
}

impl AccountHealth {
    /// True while a worker holds an unexpired lease on the account.
    pub fn is_leased(&self, at: DateTime<Utc>) -> bool {
        self.lease_owner.is_some() && self.lease_until.is_some_and(|until| until > at)
    }
}

/// An account whose check is due, with what the scheduler needs to place it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAccount {
    /// The account.
    pub account: AccountId,
    /// Its tenant.
    pub tenant: TenantId,
    /// The tenant's name.
    pub tenant_name: String,
    /// The account's name.
    pub name: String,
    /// The mail server, for the per-host connection cap.
    pub host: String,
    /// When it became due (`None`: never checked).
    pub due_at: Option<DateTime<Utc>>,
    /// A person asked for this check.
    pub requested: bool,
}

/// A running (or recently stopped) `intake serve` process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerInfo {
    /// Its id, `host:pid:random`.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

fn from_row(row: health::Model) -> Result<AccountHealth> {
    Ok(AccountHealth {
        state: HealthState::parse(&row.state)?,
        consecutive_failures: u32::try_from(row.consecutive_failures).unwrap_or(0),
        retry_at: row.retry_at,
        disabled_reason: row.disabled_reason,
        disabled_at: row.disabled_at,
        last_check_at: row.last_check_at,
        last_success_at: row.last_success_at,
        last_error_class: row.last_error_class,
        last_error: row.last_error,
        last_ingested: row.last_ingested.and_then(|n| u64::try_from(n).ok()),
        next_check_at: row.next_check_at,
        check_requested_at: row.check_requested_at,
        lease_owner: row.lease_owner,
        lease_until: row.lease_until,
        progress: match (row.progress_done, row.progress_total, row.progress_at) {
            (Some(done), Some(total), Some(at)) => Some(CheckProgress {
                done: u64::try_from(done).unwrap_or(0),
                total: u64::try_from(total).unwrap_or(0),
                at,
            }),
            _ => None,
        },
    })
}

impl Store {
    /// Gives every account a health row (new accounts are due at once).
    pub async fn ensure_health_rows(&self) -> Result<()> {
        let _turn = self.write_turn().await;
        self.db
            .execute_unprepared(
                "INSERT INTO account_health (account_id, tenant_id, state, consecutive_failures) \
                 SELECT id, tenant_id, 'ok', 0 FROM accounts \
                 WHERE id NOT IN (SELECT account_id FROM account_health)",
            )
            .await?;
        Ok(())
    }

    async fn ensure_health_row(&self, tenant: TenantId, account: AccountId) -> Result<()> {
        let _turn = self.write_turn().await;
        health::Entity::insert(health::ActiveModel {
            account_id: Set(account.0),
            tenant_id: Set(tenant.0),
            state: Set(HealthState::Ok.as_str().into()),
            consecutive_failures: Set(0),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::column(health::Column::AccountId)
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(self.books())
        .await?;
        Ok(())
    }

    /// The health of one account (the default for one never checked).
    pub async fn health(&self, account: AccountId) -> Result<AccountHealth> {
        match health::Entity::find_by_id(account.0).one(&self.db).await? {
            Some(row) => from_row(row),
            None => Ok(AccountHealth::default()),
        }
    }

    /// The health of every account of the tenant that has been seen by the
    /// service.
    pub async fn health_of_tenant(
        &self,
        tenant: TenantId,
    ) -> Result<HashMap<AccountId, AccountHealth>> {
        health::Entity::find()
            .filter(health::Column::TenantId.eq(tenant.0))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| Ok((AccountId(row.account_id), from_row(row)?)))
            .collect()
    }

    /// Accounts by state, over every tenant (enabled accounts only), for the
    /// service's gauges.
    pub async fn accounts_by_state(&self) -> Result<HashMap<HealthState, u64>> {
        let enabled: Vec<i64> = accounts::Entity::find()
            .select_only()
            .column(accounts::Column::Id)
            .filter(accounts::Column::Enabled.eq(true))
            .into_tuple()
            .all(&self.db)
            .await?;
        let states: HashMap<i64, String> = health::Entity::find()
            .select_only()
            .column(health::Column::AccountId)
            .column(health::Column::State)
            .into_tuple::<(i64, String)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        let mut counts = HashMap::new();
        for id in enabled {
            let state = match states.get(&id) {
                Some(text) => HealthState::parse(text)?,
                None => HealthState::Ok,
            };
            *counts.entry(state).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Every account, over all tenants, that is due for a check at `at`:
    /// enabled, not disabled, not leased by a live worker, and either asked
    /// for by a person or checked automatically and past its next check.
    pub async fn due_accounts(&self, at: DateTime<Utc>) -> Result<Vec<DueAccount>> {
        let rows = health::Entity::find()
            .filter(health::Column::State.ne(HealthState::Disabled.as_str()))
            .filter(
                Condition::any()
                    .add(health::Column::CheckRequestedAt.is_not_null())
                    .add(health::Column::NextCheckAt.is_null())
                    .add(health::Column::NextCheckAt.lte(at)),
            )
            .filter(
                Condition::any()
                    .add(health::Column::LeaseUntil.is_null())
                    .add(health::Column::LeaseUntil.lt(at)),
            )
            .all(&self.db)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.account_id).collect();
        let mut configs: HashMap<i64, (i64, String, String, bool)> = HashMap::new();
        for chunk in ids.chunks(500) {
            let found: Vec<(i64, i64, String, String, bool, bool)> = accounts::Entity::find()
                .select_only()
                .columns([
                    accounts::Column::Id,
                    accounts::Column::TenantId,
                    accounts::Column::Name,
                    accounts::Column::Host,
                    accounts::Column::AutoCheck,
                    accounts::Column::Enabled,
                ])
                .filter(accounts::Column::Id.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&self.db)
                .await?;
            for (id, tenant, name, host, auto, enabled) in found {
                if enabled {
                    configs.insert(id, (tenant, name, host, auto));
                }
            }
        }
        let tenant_names: HashMap<i64, String> = tenants::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        let mut due = Vec::new();
        for row in rows {
            let Some((tenant, name, host, auto)) = configs.get(&row.account_id) else {
                continue;
            };
            let requested = row.check_requested_at.is_some();
            let scheduled = *auto && row.next_check_at.is_none_or(|t| t <= at);
            if !(requested || scheduled) {
                continue;
            }
            due.push(DueAccount {
                account: AccountId(row.account_id),
                tenant: TenantId(*tenant),
                tenant_name: tenant_names.get(tenant).cloned().unwrap_or_default(),
                name: name.clone(),
                host: host.clone(),
                due_at: if requested {
                    row.check_requested_at
                } else {
                    row.next_check_at
                },
                requested,
            });
        }
        Ok(due)
    }

    /// Takes the account's lease for `owner` until `until`, if no one else
    /// holds an unexpired one. A check a person asked for is taken on with
    /// the lease (cleared), so one asked for during the run runs again.
    pub async fn try_lease(
        &self,
        tenant: TenantId,
        account: AccountId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        self.ensure_health_row(tenant, account).await?;
        let _turn = self.write_turn().await;
        let at = now();
        let taken = health::Entity::update_many()
            .col_expr(health::Column::LeaseOwner, Expr::value(owner))
            .col_expr(health::Column::LeaseUntil, Expr::value(until))
            .col_expr(
                health::Column::CheckRequestedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(health::Column::AccountId.eq(account.0))
            .filter(
                Condition::any()
                    .add(health::Column::LeaseOwner.is_null())
                    .add(health::Column::LeaseOwner.eq(owner))
                    .add(health::Column::LeaseUntil.is_null())
                    .add(health::Column::LeaseUntil.lt(at)),
            )
            .exec(self.books())
            .await?;
        Ok(taken.rows_affected == 1)
    }

    /// Takes over the lease of `stale`, a worker known to be dead (a process
    /// of this machine that no longer runs); false when `stale` no longer
    /// holds it.
    pub async fn take_stale_lease(
        &self,
        account: AccountId,
        stale: &str,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let taken = health::Entity::update_many()
            .col_expr(health::Column::LeaseOwner, Expr::value(owner))
            .col_expr(health::Column::LeaseUntil, Expr::value(until))
            .col_expr(
                health::Column::CheckRequestedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(health::Column::AccountId.eq(account.0))
            .filter(health::Column::LeaseOwner.eq(stale))
            .exec(self.books())
            .await?;
        Ok(taken.rows_affected == 1)
    }

    /// Extends `owner`'s lease; false when it is no longer theirs.
    pub async fn renew_lease(
        &self,
        account: AccountId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let renewed = health::Entity::update_many()
            .col_expr(health::Column::LeaseUntil, Expr::value(until))
            .filter(health::Column::AccountId.eq(account.0))
            .filter(health::Column::LeaseOwner.eq(owner))
            .exec(self.books())
            .await?;
        Ok(renewed.rows_affected == 1)
    }

    /// Records how far `owner`'s running check has got; false when the
    /// account is no longer theirs. The figures are cleared when the check
    /// ends ([`finish_check`](Self::finish_check)).
    pub async fn record_progress(
        &self,
        account: AccountId,
        owner: &str,
        done: u64,
        total: u64,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let written = health::Entity::update_many()
            .col_expr(
                health::Column::ProgressDone,
                Expr::value(i64::try_from(done).unwrap_or(i64::MAX)),
            )
            .col_expr(
                health::Column::ProgressTotal,
                Expr::value(i64::try_from(total).unwrap_or(i64::MAX)),
            )
            .col_expr(health::Column::ProgressAt, Expr::value(now()))
            .filter(health::Column::AccountId.eq(account.0))
            .filter(health::Column::LeaseOwner.eq(owner))
            .exec(self.books())
            .await?;
        Ok(written.rows_affected == 1)
    }

    /// Records the end of a check by `owner` and gives up its lease. When
    /// the outcome disables the account, or is a success after failures,
    /// the `account.disabled` / `account.recovered` webhook events are
    /// written in the same transaction.
    pub async fn finish_check(
        &self,
        account: AccountId,
        owner: &str,
        health: &AccountHealth,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let h = health;
        let txn = self.books().begin().await?;
        // The row as it was, for the webhook events its change reports
        // (disabled, recovered). SQLite: write first, so the transaction is
        // the writer from the start (see `lock_tenant`); PostgreSQL: lock it.
        let previous = if txn.get_database_backend() == DbBackend::Postgres {
            health::Entity::find_by_id(account.0)
                .lock_exclusive()
                .one(&txn)
                .await?
        } else {
            health::Entity::update_many()
                .col_expr(
                    health::Column::State,
                    Expr::col(health::Column::State).into(),
                )
                .filter(health::Column::AccountId.eq(account.0))
                .exec(&txn)
                .await?;
            health::Entity::find_by_id(account.0).one(&txn).await?
        };
        let recorded = health::Entity::update_many()
            .col_expr(health::Column::State, Expr::value(h.state.as_str()))
            .col_expr(
                health::Column::ConsecutiveFailures,
                Expr::value(i32::try_from(h.consecutive_failures).unwrap_or(i32::MAX)),
            )
            .col_expr(health::Column::RetryAt, Expr::value(h.retry_at))
            .col_expr(
                health::Column::DisabledReason,
                Expr::value(h.disabled_reason.clone()),
            )
            .col_expr(health::Column::DisabledAt, Expr::value(h.disabled_at))
            .col_expr(health::Column::LastCheckAt, Expr::value(h.last_check_at))
            .col_expr(
                health::Column::LastSuccessAt,
                Expr::value(h.last_success_at),
            )
            .col_expr(
                health::Column::LastErrorClass,
                Expr::value(h.last_error_class.clone()),
            )
            .col_expr(health::Column::LastError, Expr::value(h.last_error.clone()))
            .col_expr(
                health::Column::LastIngested,
                Expr::value(
                    h.last_ingested
                        .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                ),
            )
            .col_expr(health::Column::NextCheckAt, Expr::value(h.next_check_at))
            .col_expr(
                health::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                health::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                health::Column::ProgressDone,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                health::Column::ProgressTotal,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                health::Column::ProgressAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(health::Column::AccountId.eq(account.0))
            .filter(health::Column::LeaseOwner.eq(owner))
            .exec(&txn)
            .await?;
        let mut deliveries = 0;
        if let (1, Some(previous)) = (recorded.rows_affected, previous) {
            deliveries = super::webhooks::health_events(&txn, &previous, health, now()).await?;
        }
        txn.commit().await?;
        if deliveries > 0 {
            self.wake_webhooks();
        }
        Ok(())
    }

    /// Asks the service for a check of the account `name` soon; returns the
    /// time of the request.
    pub async fn request_check(&self, tenant: TenantId, name: &str) -> Result<DateTime<Utc>> {
        let account = self.account_id(tenant, name).await?;
        self.ensure_health_row(tenant, account).await?;
        let _turn = self.write_turn().await;
        let at = now();
        health::Entity::update_many()
            .col_expr(health::Column::CheckRequestedAt, Expr::value(at))
            .filter(health::Column::AccountId.eq(account.0))
            .exec(&self.db)
            .await?;
        Ok(at)
    }

    /// Clears a disablement or a backoff (a person enabled the account or
    /// changed its settings): the account is due at once.
    pub async fn reset_health(&self, tenant: TenantId, account: AccountId) -> Result<()> {
        self.ensure_health_row(tenant, account).await?;
        let _turn = self.write_turn().await;
        health::Entity::update_many()
            .col_expr(health::Column::State, Expr::value(HealthState::Ok.as_str()))
            .col_expr(health::Column::ConsecutiveFailures, Expr::value(0))
            .col_expr(
                health::Column::RetryAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                health::Column::DisabledReason,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                health::Column::DisabledAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                health::Column::NextCheckAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(health::Column::AccountId.eq(account.0))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records that worker `id` is alive.
    pub async fn worker_heartbeat(
        &self,
        id: &str,
        host: &str,
        started_at: DateTime<Utc>,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let at = now();
        workers::Entity::insert(workers::ActiveModel {
            id: Set(id.to_owned()),
            host: Set(host.to_owned()),
            pid: Set(i64::from(std::process::id())),
            started_at: Set(started_at),
            heartbeat_at: Set(at),
            stopped_at: Set(None),
        })
        .on_conflict(
            OnConflict::column(workers::Column::Id)
                .update_column(workers::Column::HeartbeatAt)
                .to_owned(),
        )
        .exec(self.books())
        .await?;
        Ok(())
    }

    /// Records that worker `id` stopped cleanly, and gives up any lease it
    /// still holds.
    pub async fn worker_stopped(&self, id: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        workers::Entity::update_many()
            .col_expr(workers::Column::StoppedAt, Expr::value(now()))
            .filter(workers::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        health::Entity::update_many()
            .col_expr(
                health::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                health::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(health::Column::LeaseOwner.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Workers that have not stopped and gave a heartbeat after `since`.
    pub async fn live_workers(&self, since: DateTime<Utc>) -> Result<Vec<WorkerInfo>> {
        Ok(workers::Entity::find()
            .filter(workers::Column::StoppedAt.is_null())
            .filter(workers::Column::HeartbeatAt.gt(since))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|w| WorkerInfo {
                id: w.id,
                host: w.host,
                pid: w.pid,
                started_at: w.started_at,
                heartbeat_at: w.heartbeat_at,
            })
            .collect())
    }

    /// The account `name`'s id and health.
    pub async fn account_health(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<(AccountId, AccountHealth)> {
        let id = self
            .account_id(tenant, name)
            .await
            .map_err(|_| not_found("account", name))?;
        Ok((id, self.health(id).await?))
    }
}
