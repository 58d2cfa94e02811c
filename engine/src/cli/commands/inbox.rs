//! `intake inbox` and `intake message`: the view inbox and one message in full.

use super::*;
use crate::service::messages::Explanation;
use crate::service::{Scope, Service};

/// `intake inbox`.
#[derive(Debug, Args)]
pub(crate) struct InboxArgs {
    /// Account name.
    account: String,
    /// Only messages linked to this contact or lead.
    #[arg(long)]
    contact: Option<String>,
    /// Show the quarantine instead.
    #[arg(long)]
    quarantined: bool,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u64,
}

pub(crate) async fn inbox(
    c: &Config,
    args: InboxArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(c, OpenMode::Existing).await?;
    let account = store.account_id(tenant, &args.account).await?;
    if args.quarantined {
        return quarantine_list(&store, tenant, Some(account), out).await;
    }
    let query = MessageQuery {
        account: Some(account),
        party_email: args.contact.clone(),
        before: None,
        limit: args.limit,
    };
    writeln!(
        out,
        "{:<6} {:<16} {:<30} {:<36} {:<11} LINKED TO",
        "ID", "DATE", "FROM", "SUBJECT", "STATUS"
    )?;
    for m in store.messages(tenant, &query).await? {
        let date = m
            .date
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        let parties: Vec<String> = m
            .parties
            .iter()
            .map(|p| {
                format!(
                    "{} ({})",
                    safe(p.name.as_deref().unwrap_or(&p.email)),
                    format!("{:?}", p.kind).to_lowercase()
                )
            })
            .collect();
        writeln!(
            out,
            "{:<6} {:<16} {:<30} {:<36} {:<11} {}",
            m.id,
            date,
            clip(m.from.as_deref().unwrap_or(""), 30),
            clip(m.subject.as_deref().unwrap_or(""), 36),
            m.status.as_str(),
            parties.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub(crate) enum MessageCommand {
    /// Headers, status and links of a stored message (or its raw bytes).
    Show {
        /// The stored message's id (from `intake inbox`).
        id: i64,
        /// Write the exact raw bytes instead.
        #[arg(long)]
        raw: bool,
    },
    /// How the plugin chain decided a stored message: each plugin as it
    /// ran (its answer and time, component SHA-256 and configuration
    /// version) and who decided.
    Explain {
        /// The stored message's id (from `intake inbox`).
        id: i64,
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn message(
    c: &Config,
    cmd: MessageCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(c, OpenMode::Existing).await?;
    let (id, raw) = match cmd {
        MessageCommand::Show { id, raw } => (id, raw),
        MessageCommand::Explain { id, json } => {
            let explained = Service::admin(store)
                .explain(&Scope::local(tenant, &c.tenant), id)
                .await?;
            return print_explanation(out, &explained, json);
        }
    };
    let m = store
        .message(tenant, StoredMessageId(id))
        .await?
        .with_context(|| format!("no message {id} in tenant {:?}", c.tenant))?;
    if raw {
        out.write_all(
            m.raw
                .as_deref()
                .context("no raw bytes are kept for this message (discarded or dropped)")?,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &m.summary;
    let account = match s.account {
        Some(account) => store
            .accounts(tenant)
            .await?
            .into_iter()
            .find(|a| a.id == account)
            .map_or_else(|| account.to_string(), |a| a.config.name),
        None => "(removed)".into(),
    };
    let details = m
        .raw
        .as_deref()
        .map(MessageDetails::read)
        .unwrap_or_default();
    let from = match (&details.from_name, &s.from) {
        (Some(name), Some(address)) => format!("{} <{}>", safe(name), safe(address)),
        (_, from) => safe_opt(from.as_deref()).into_owned(),
    };
    writeln!(out, "id:          {}", s.id)?;
    writeln!(out, "account:     {}", safe(&account))?;
    writeln!(out, "status:      {}", s.status.as_str())?;
    if let Some((reason, plugin)) = store.quarantine_reason(tenant, s.id).await? {
        writeln!(out, "reason:      {}", safe(&reason))?;
        writeln!(
            out,
            "decided by:  {}",
            safe_opt(plugin.as_deref().or(Some("the engine")))
        )?;
    } else if let Some(plugin) = &s.decided_by {
        writeln!(out, "decided by:  {}", safe(plugin))?;
    }
    writeln!(out, "folder:      {}", safe_opt(s.folder.as_deref()))?;
    writeln!(out, "message-id:  {}", safe_opt(s.message_id.as_deref()))?;
    writeln!(out, "from:        {from}")?;
    writeln!(out, "subject:     {}", safe_opt(s.subject.as_deref()))?;
    writeln!(
        out,
        "date:        {}",
        s.date.map(|d| d.to_rfc3339()).unwrap_or_default()
    )?;
    writeln!(out, "stored:      {}", s.created_at.to_rfc3339())?;
    writeln!(out, "size:        {} bytes", s.size)?;
    for a in &details.attachments {
        writeln!(
            out,
            "attachment:  {} ({}, {} bytes)",
            safe(&a.name),
            safe(&a.content_type),
            a.size
        )?;
    }
    for p in &s.parties {
        writeln!(
            out,
            "linked:      {} {} <{}>",
            format!("{:?}", p.kind).to_lowercase(),
            safe_opt(p.name.as_deref()),
            safe(&p.email)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `intake message explain`: one line per plugin, then who decided.
fn print_explanation(
    out: &mut (dyn Write + Send),
    e: &Explanation,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(e)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "message:     {}", e.id)?;
    writeln!(out, "account:     {}", safe_opt(e.account_name.as_deref()))?;
    writeln!(out, "status:      {}", e.status.as_str())?;
    if !e.recorded {
        writeln!(
            out,
            "decided by:  {} (stored before decisions were recorded: no chain to show)",
            safe_opt(e.decided_by.as_deref())
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "decision:    {}", safe_opt(e.disposition.as_deref()))?;
    let nobody = if e.steps.is_empty() {
        "the engine (the message did not parse)"
    } else {
        "no plugin (kept unlinked: the chain's default)"
    };
    writeln!(
        out,
        "decided by:  {}{}",
        safe_opt(e.decided_by.as_deref().or(Some(nobody))),
        match (e.decided_version, e.decided_by_candidate) {
            (Some(v), true) => format!(" version {v} (canary)"),
            (Some(v), false) => format!(" version {v}"),
            (None, _) => String::new(),
        }
    )?;
    if let Some(reason) = &e.quarantine_reason {
        writeln!(out, "held for:    {}", safe(reason))?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "  {:<2} {:<20} {:<7} {:<15} {:<11} {:>9}  {:<14} CONFIG",
        "#", "PLUGIN", "VERSION", "ROLE", "ANSWER", "TIME", "COMPONENT"
    )?;
    for (i, s) in e.steps.iter().enumerate() {
        let version = match (s.version, s.candidate) {
            (Some(v), true) => format!("{v}*"),
            (Some(v), false) => v.to_string(),
            (None, _) => "-".into(),
        };
        writeln!(
            out,
            "{} {:<2} {:<20} {:<7} {:<15} {:<11} {:>7}µs  {:<14} {}",
            if s.decided { "→" } else { " " },
            i + 1,
            clip(&s.plugin, 20),
            version,
            s.role,
            s.result,
            s.micros,
            // Enough of the hash to tell components apart; --json has it all.
            s.component_sha256.get(..12).unwrap_or(&s.component_sha256),
            s.config_version
        )?;
        if let Some(error) = &s.error {
            writeln!(
                out,
                "       {}: {}",
                safe_opt(s.error_kind.as_deref()),
                safe(error)
            )?;
        }
    }
    if e.steps.is_empty() {
        writeln!(out, "  (no plugin ran: the message did not parse)")?;
    }
    for p in &e.parties {
        writeln!(
            out,
            "linked:      {} {} <{}>",
            format!("{:?}", p.kind).to_lowercase(),
            safe_opt(p.name.as_deref()),
            safe(&p.email)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `message show` reads from the raw bytes that the store keeps no
/// column for.
#[derive(Debug, Default)]
struct MessageDetails {
    /// The sender's display name.
    from_name: Option<String>,
    /// The attachments.
    attachments: Vec<AttachmentInfo>,
}

/// One attachment as `message show` lists it.
#[derive(Debug)]
struct AttachmentInfo {
    /// File name, or `(unnamed)`.
    name: String,
    /// MIME type.
    content_type: String,
    /// Decoded size in bytes.
    size: usize,
}

impl MessageDetails {
    fn read(raw: &[u8]) -> MessageDetails {
        use mail_parser::MimeHeaders;
        let Some(message) = mail_parser::MessageParser::default().parse(raw) else {
            return MessageDetails::default();
        };
        let from_name = message
            .from()
            .and_then(|from| from.first())
            .and_then(|a| a.name())
            .map(str::to_owned);
        let attachments = message
            .attachments()
            .map(|part| AttachmentInfo {
                name: part.attachment_name().unwrap_or("(unnamed)").to_owned(),
                content_type: part.content_type().map_or_else(
                    || "application/octet-stream".to_owned(),
                    |t| match t.subtype() {
                        Some(sub) => format!("{}/{sub}", t.ctype()),
                        None => t.ctype().to_owned(),
                    },
                ),
                size: part.contents().len(),
            })
            .collect();
        MessageDetails {
            from_name,
            attachments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_details_name_the_sender_and_the_attachments() {
        let raw = b"From: \"Ann Lee\" <ann@acme.example>\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"q.pdf\"\r\n\r\n\
PDFDATA\r\n--b--\r\n";
        let d = MessageDetails::read(raw);
        assert_eq!(d.from_name.as_deref(), Some("Ann Lee"));
        assert_eq!(d.attachments.len(), 1);
        assert_eq!(d.attachments[0].name, "q.pdf");
        assert_eq!(d.attachments[0].content_type, "application/pdf");
    }
}
