//! `intake replay`: an account's stored mail through a chain, and what that
//! would change (`--dry-run`) or changes (`--apply`). The work is the
//! service's ([`crate::service::replay`]); this parses and prints.

use super::*;
use crate::plugin::Binding;
use crate::service::replay::{ReplayChain, ReplayReport, ReplayRequest};
use crate::service::{Scope, Service, ServiceError};

/// `intake replay`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["dry_run", "apply"])))]
pub(crate) struct ReplayArgs {
    /// The account whose stored mail to replay.
    #[arg(long)]
    account: String,
    /// Only mail dated on or after this day (YYYY-MM-DD) or time (RFC 3339).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Run these components (.wasm, in chain order, as `intake plugin
    /// test` takes them) instead of the tenant's stored chain.
    #[arg(long, value_name = "X.wasm", num_args = 1..)]
    chain: Vec<PathBuf>,
    /// Run the stored chain with its canaries, each message through the
    /// versions live mail would get (`intake plugin canary`); without it,
    /// every binding's active version.
    #[arg(long, conflicts_with = "chain")]
    with_canary: bool,
    /// Configuration of a --chain component, NAME=JSON or NAME=@file.json
    /// (NAME is the file stem). Repeatable.
    #[arg(long = "config", value_name = "NAME=JSON", requires = "chain")]
    configs: Vec<String>,
    /// Report what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Record the new decisions: links, new leads, dispositions and
    /// decision records. A second apply with the same chain changes
    /// nothing. The mail server is never contacted.
    #[arg(long)]
    apply: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// A `--since` value: a day (midnight UTC) or an RFC 3339 time.
fn parse_since(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("--since {text:?}: expected YYYY-MM-DD or an RFC 3339 time"))?;
    Ok(day.and_time(chrono::NaiveTime::MIN).and_utc())
}

pub(crate) async fn replay(
    c: &Config,
    args: ReplayArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let chain = if args.with_canary {
        ReplayChain::Rollout
    } else if args.chain.is_empty() {
        ReplayChain::Stored
    } else {
        let mut configs = super::super::parse_configs(&args.configs)?;
        let mut bindings = Vec::new();
        for path in &args.chain {
            let mut binding = Binding::from_file(path);
            if let Some(config) = configs.remove(&binding.name) {
                binding.config = config;
            }
            bindings.push(binding);
        }
        if let Some(name) = configs.keys().next() {
            bail!("--config {name}: no component named {name:?} (names are file stems)");
        }
        ReplayChain::Components(bindings)
    };
    let (store, tenant) = open(c, OpenMode::Existing).await?;
    let request = ReplayRequest {
        since,
        chain,
        apply: args.apply,
    };
    let report = Service::admin(store)
        .replay(&Scope::local(tenant, &c.tenant), &args.account, &request)
        .await
        .map_err(|e| match e {
            ServiceError::Invalid { reason, .. } => anyhow::anyhow!(reason),
            other => other.into(),
        })?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_report(out, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(out: &mut (dyn Write + Send), r: &ReplayReport) -> anyhow::Result<()> {
    writeln!(
        out,
        "replay of {} ({}) with {}",
        safe(&r.account),
        if r.applied { "applied" } else { "dry run" },
        r.chain.join(" → ")
    )?;
    for m in &r.changes {
        let mut parts = Vec::new();
        if m.was != m.now {
            parts.push(format!("{} → {}", m.was, m.now));
        }
        for p in &m.links_added {
            parts.push(format!("+link {} {} ({})", p.kind, safe(&p.email), p.id));
        }
        for p in &m.links_removed {
            parts.push(format!("-link {} {} ({})", p.kind, safe(&p.email), p.id));
        }
        if let Some(lead) = &m.new_lead {
            parts.push(format!("+lead {}", safe(lead)));
        }
        writeln!(
            out,
            "{:<6} {:<28} {:<30} {} [{} by {}]",
            m.id,
            clip(m.from.as_deref().unwrap_or(""), 28),
            clip(m.subject.as_deref().unwrap_or(""), 30),
            parts.join(", "),
            m.decision,
            safe_opt(m.decided_by.as_deref().or(Some("no plugin")))
        )?;
    }
    let verb = if r.applied { "changed" } else { "would change" };
    writeln!(
        out,
        "{} messages replayed; {verb} {}: {} links added, {} removed, {} new leads, {} dispositions changed",
        r.messages,
        r.changed,
        r.links_added,
        r.links_removed,
        r.new_leads.len(),
        r.dispositions_changed
    )?;
    if r.records_added > 0 {
        writeln!(
            out,
            "{} messages stored before decisions were recorded {}",
            r.records_added,
            if r.applied {
                "got their decision record"
            } else {
                "would get a decision record"
            }
        )?;
    }
    if r.skipped > 0 {
        writeln!(
            out,
            "{} messages left alone: their status changed while the replay ran",
            r.skipped
        )?;
    }
    Ok(())
}
