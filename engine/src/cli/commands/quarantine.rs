//! `intake quarantine`: list, release (attach by hand or re-run the chain), drop.

use super::*;

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

/// The party (contact or lead) with this address in the tenant.
async fn party_by_email(
    store: &Store,
    tenant_name: &str,
    email: &str,
) -> anyhow::Result<crate::store::PartyId> {
    use crate::directory::Directory;
    let page = store
        .directory()
        .find_by_address(tenant_name, email, 2)
        .await?;
    let party = page
        .parties
        .first()
        .with_context(|| format!("no contact or lead with address {email}"))?;
    Ok(crate::store::PartyId(party.id.parse().context("party id")?))
}

/// Runs the tenant's chain on a stored message again; returns the parties to
/// link (creating the lead it asks for).
async fn rerun_chain(
    store: &Store,
    tenant: TenantId,
    tenant_name: &str,
    id: StoredMessageId,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Vec<crate::store::PartyId>> {
    use crate::plugin::Disposition;
    let message = store
        .message(tenant, id)
        .await?
        .with_context(|| format!("no message {id}"))?;
    let raw = message
        .raw
        .context("no raw bytes are kept for this message")?;
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    let pipeline = Pipeline::new(store.clone(), runtime, Options::default());
    let decided = pipeline
        .decide_stored(tenant, tenant_name, id, raw.into())
        .await?;
    if decided.view.is_none() {
        let reason = match &decided.decision.disposition {
            Disposition::Quarantine { reason } => reason.clone(),
            _ => String::new(),
        };
        bail!("still {}", safe(&reason));
    }
    let decision = decided.decision;
    writeln!(
        out,
        "chain decided: {} (by {})",
        safe(&serde_json::to_string(&decision.disposition)?),
        safe(decision.decided_by.as_deref().unwrap_or("nobody"))
    )?;
    Ok(match decision.disposition {
        Disposition::Attach { parties } => parties
            .iter()
            .map(|p| p.id.parse().map(crate::store::PartyId))
            .collect::<Result<_, _>>()
            .context("party id")?,
        // The same lead the pipeline would link to: an existing lead with
        // that address is linked as it is, never renamed.
        Disposition::CreateLead { lead } => {
            vec![
                store
                    .lead_for(tenant, &lead.email, &lead.name, &lead.company)
                    .await?,
            ]
        }
        Disposition::Quarantine { reason } => bail!("the chain quarantines it again: {reason}"),
        Disposition::Discard { reason } => {
            bail!("the chain would discard it ({reason}); use `quarantine drop` to drop it")
        }
        Disposition::KeepUnlinked => Vec::new(),
    })
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
        "{:<6} {:<16} {:<16} {:<30} {:<18} REASON",
        "ID", "QUARANTINED", "ACCOUNT", "FROM", "PLUGIN"
    )?;
    for q in store.quarantined(tenant, account).await? {
        let account = q.message.account.map_or("(removed)", |id| {
            accounts
                .iter()
                .find(|a| a.id == id)
                .map_or("(removed)", |a| a.config.name.as_str())
        });
        writeln!(
            out,
            "{:<6} {:<16} {:<16} {:<30} {:<18} {}",
            q.message.id,
            q.quarantined_at.format("%Y-%m-%d %H:%M"),
            clip(account, 16),
            clip(q.message.from.as_deref().unwrap_or(""), 30),
            clip(q.plugin.as_deref().unwrap_or("-"), 18),
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
            let id = StoredMessageId(id);
            let parties = match (attach, rerun) {
                (Some(email), _) => vec![party_by_email(&store, &c.tenant, &email).await?],
                (None, true) => rerun_chain(&store, tenant, &c.tenant, id, out).await?,
                (None, false) => Vec::new(),
            };
            store.release_quarantined_to(tenant, id, &parties).await?;
            let linked = match parties.len() {
                0 => " (unlinked)".to_string(),
                1 => ", linked to 1 party".to_string(),
                n => format!(", linked to {n} parties"),
            };
            writeln!(out, "released {id}{linked}")?;
        }
        QuarantineCommand::Drop { id } => {
            store.drop_quarantined(tenant, StoredMessageId(id)).await?;
            writeln!(out, "dropped {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
