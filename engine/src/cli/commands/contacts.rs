//! `intake contact`: the tenant's contacts and leads (CSV import, add, list).

use super::*;

#[derive(Debug, Subcommand)]
pub(crate) enum ContactCommand {
    /// Import contacts and leads from CSV (email,name,company,kind[,external_id]);
    /// all rows or none.
    Import {
        /// The CSV file.
        csv: PathBuf,
    },
    /// Add or update one contact or lead.
    Add {
        /// Address.
        email: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Company.
        #[arg(long)]
        company: Option<String>,
        /// contact or lead.
        #[arg(long, default_value = "contact")]
        kind: String,
        /// Id in the CRM that syncs it.
        #[arg(long)]
        external_id: Option<String>,
    },
    /// List contacts and leads.
    List {
        /// Only contacts or only leads.
        #[arg(long)]
        kind: Option<String>,
    },
}

pub(crate) async fn contact(
    c: &Config,
    cmd: ContactCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        ContactCommand::List { .. } => OpenMode::Existing,
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    match cmd {
        ContactCommand::Import { csv } => {
            let bytes =
                std::fs::read(&csv).with_context(|| format!("cannot read {}", csv.display()))?;
            let summary = crate::service::Service::admin(store.clone())
                .import_parties_csv(
                    &crate::service::Scope::local(tenant, &c.tenant),
                    &csv.display().to_string(),
                    &bytes,
                )
                .await?;
            writeln!(
                out,
                "imported {}: {} created, {} updated, {} unchanged",
                csv.display(),
                summary.created,
                summary.updated,
                summary.unchanged
            )?;
        }
        ContactCommand::Add {
            email,
            name,
            company,
            kind,
            external_id,
        } => {
            let kind: PartyKind = kind.parse().map_err(anyhow::Error::msg)?;
            let done = store
                .upsert_party(
                    tenant,
                    &NewParty {
                        kind,
                        email: email.clone(),
                        name,
                        company,
                        external_id,
                    },
                )
                .await?;
            writeln!(out, "{email}: {done:?}")?;
        }
        ContactCommand::List { kind } => {
            let kind = kind
                .map(|k| k.parse::<PartyKind>())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            writeln!(
                out,
                "{:<8} {:<7} {:<36} {:<24} {:<20} EXTERNAL ID",
                "ID", "KIND", "EMAIL", "NAME", "COMPANY"
            )?;
            for p in store.parties(tenant, kind, None, 10_000).await? {
                writeln!(
                    out,
                    "{:<8} {:<7} {:<36} {:<24} {:<20} {}",
                    p.id,
                    format!("{:?}", p.kind).to_lowercase(),
                    safe(&p.email),
                    safe_opt(p.name.as_deref()),
                    safe_opt(p.company.as_deref()),
                    safe_opt(p.external_id.as_deref())
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
