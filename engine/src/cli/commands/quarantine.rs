//! `intake quarantine`: list, release (attach by hand or re-run the chain), drop.

use super::*;
use crate::service::messages::Release;
use crate::service::{Scope, Service, ServiceError};

#[derive(Debug, Subcommand)]
pub(crate) enum QuarantineCommand {
    /// Unreleased quarantined messages, with reasons.
    List,
    /// Release a message: it becomes a stored message, unlinked, attached by
    /// hand (`--attach`), or decided again by the tenant's chain (`--rerun`).
    Release {
        /// The stored message's id.
        id: i64,
        /// Link it to the contact or lead with this address.
        #[arg(long, conflicts_with = "rerun")]
        attach: Option<String>,
        /// Run the tenant's plugin chain on it again and link what it decides.
        #[arg(long)]
        rerun: bool,
    },
    /// Drop a message's bytes; its keys stay so it is never ingested again.
    Drop {
        /// The stored message's id.
        id: i64,
    },
}

pub(super) async fn quarantine_list(
    store: &Store,
    tenant: TenantId,
    account: Option<crate::store::AccountId>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let accounts = store.accounts(tenant).await?;
    writeln!(
        out,
        "{:<6} {:<16} {:<16} {:<30} {:<18} {:<28} REASON",
        "ID", "QUARANTINED", "ACCOUNT", "FROM", "PLUGIN", "STATE"
    )?;
    for q in store.quarantined(tenant, account).await? {
        let account = q.message.account.map_or("(removed)", |id| {
            accounts
                .iter()
                .find(|a| a.id == id)
                .map_or("(removed)", |a| a.config.name.as_str())
        });
        // A deferred message (a plugin failed temporarily) is retried by
        // the account's runs; a held one waits for release or drop.
        let state = match q.next_attempt_at {
            Some(at) if q.kind == crate::store::deferred::TEMPORARY => format!(
                "retry {} at {}",
                q.attempts + 1,
                at.format("%Y-%m-%d %H:%M")
            ),
            _ => "held".to_string(),
        };
        writeln!(
            out,
            "{:<6} {:<16} {:<16} {:<30} {:<18} {:<28} {}",
            q.message.id,
            q.quarantined_at.format("%Y-%m-%d %H:%M"),
            clip(account, 16),
            clip(q.message.from.as_deref().unwrap_or(""), 30),
            clip(q.plugin.as_deref().unwrap_or("-"), 18),
            state,
            safe(&q.reason)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn quarantine(
    c: &Config,
    cmd: QuarantineCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        QuarantineCommand::List => OpenMode::Existing,
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    match cmd {
        QuarantineCommand::List => return quarantine_list(&store, tenant, None, out).await,
        QuarantineCommand::Release { id, attach, rerun } => {
            let how = match (attach, rerun) {
                (Some(email), _) => Release::Attach {
                    party_ids: Vec::new(),
                    emails: vec![email],
                },
                (None, true) => Release::Rerun,
                (None, false) => Release::Unlinked,
            };
            let scope = Scope::local(tenant, &c.tenant);
            let released = Service::admin(store.clone())
                .release(&scope, id, &how)
                .await
                .map_err(|e| match e {
                    ServiceError::Invalid { reason, .. } => anyhow::anyhow!(reason),
                    other => other.into(),
                })?;
            if let Some(by) = &released.decided_by {
                writeln!(out, "chain decided (by {})", safe(by))?;
            }
            let linked = match released.message.summary.parties.len() {
                0 => " (unlinked)".to_string(),
                1 => ", linked to 1 party".to_string(),
                n => format!(", linked to {n} parties"),
            };
            writeln!(out, "released {id}{linked}")?;
        }
        QuarantineCommand::Drop { id } => {
            Service::admin(store.clone())
                .drop_quarantined(&Scope::local(tenant, &c.tenant), id)
                .await?;
            writeln!(out, "dropped {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
