//! `intake account discover` and `intake account providers`, and the
//! `--provider` / `--email … --discover` options of `intake account add`:
//! the server settings from a preset or from discovery, through the
//! service layer's [`Discovery`]. None of them opens the store.

use super::*;
use crate::discover::{Authentication, Discovered, DiscoveryConfig, DiscoveryMode, ServerSettings};
use crate::service::ServiceError;
use crate::service::accounts::AccountPatch;
use crate::service::discover::{self, Discovery};

/// `intake account discover`.
#[derive(Debug, Args)]
pub(crate) struct DiscoverArgs {
    /// The e-mail address whose incoming servers to find.
    email: String,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

/// Where `intake account add` takes the server from, besides its own
/// options (which win).
#[derive(Debug, Args)]
pub(crate) struct ServerFrom {
    /// The account's e-mail address (for --discover, and the user name a
    /// provider expects).
    #[arg(long)]
    email: Option<String>,
    /// Fill protocol, host, port and security from the address: the
    /// bundled provider table, DNS SRV records, the domain's autoconfig
    /// document, then its MX records.
    #[arg(long, requires = "email")]
    discover: bool,
    /// Fill them from a provider preset (`intake account providers`
    /// lists them: gmail, microsoft, yahoo, icloud, …).
    #[arg(long, conflicts_with = "discover")]
    provider: Option<String>,
}

/// Discovery as the command line runs it: the network too, and private
/// networks allowed (the user's own machine and intranet).
fn discovery() -> Discovery {
    Discovery::new(
        DiscoveryMode::Network,
        DiscoveryConfig {
            allow_private_networks: true,
            ..DiscoveryConfig::default()
        },
    )
}

impl ServerFrom {
    /// Fills what `patch` leaves open from the preset or discovery, and
    /// says on stderr what was filled and from where.
    pub(crate) async fn fill(&self, patch: &mut AccountPatch) -> anyhow::Result<()> {
        let discovery = discovery();
        let found: Discovered = if let Some(id) = &self.provider {
            let preset = discovery.preset(id).map_err(|e| match e {
                ServiceError::Invalid { reason, .. } => {
                    anyhow::anyhow!("--provider {}: {reason}", safe(id))
                }
                other => other.into(),
            })?;
            crate::discover::from_preset(
                preset,
                self.email.clone().unwrap_or_default(),
                String::new(),
                Vec::new(),
            )
        } else if self.discover {
            let email = self.email.as_deref().unwrap_or_default();
            discovery
                .discover(email)
                .await
                .with_context(|| format!("discovering the servers of {}", safe(email)))?
        } else {
            return Ok(());
        };
        let Some(filled) = discover::fill(patch, &found.servers) else {
            bail!(
                "{} offers no {} server; leave out --protocol or give --host",
                found.provider_name.as_deref().unwrap_or(&found.domain),
                patch
                    .protocol
                    .map(|p| format!("{p:?}").to_lowercase())
                    .unwrap_or_default()
            );
        };
        let how = match &self.provider {
            Some(_) => format!("from the preset {}", safe_opt(found.provider.as_deref())),
            None => format!(
                "discovered by {} ({})",
                found.method.describe(),
                safe(&found.source)
            ),
        };
        eprintln!("{how}: {}", server_line(&filled.server));
        if filled.fields.is_empty() {
            eprintln!("  (nothing filled: the options given set every server setting)");
        } else {
            let options: Vec<String> = filled.fields.iter().map(|f| format!("--{f}")).collect();
            eprintln!("  filled {}", options.join(", "));
        }
        if let Some(user) = filled.server.username.as_deref().filter(|u| !u.is_empty()) {
            eprintln!(
                "  the server expects the user name {} (the credential's --user)",
                safe(user)
            );
        }
        for note in &found.notes {
            eprintln!("  note: {}", safe(note));
        }
        Ok(())
    }
}

/// One server in a line: `imap imap.example.com:993 tls`.
fn server_line(s: &ServerSettings) -> String {
    format!(
        "{} {}:{} {}",
        format!("{:?}", s.protocol).to_lowercase(),
        safe(&s.host),
        s.port,
        format!("{:?}", s.security).to_lowercase()
    )
}

fn sign_in(methods: &[Authentication]) -> String {
    methods
        .iter()
        .map(|m| match m {
            Authentication::Password => "password",
            Authentication::OAuth2 => "oauth2",
            Authentication::Other => "other",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `intake account discover EMAIL`: what was found, how, and what was
/// tried; exits non-zero when nothing was found.
pub(crate) async fn discover_command(
    args: &DiscoverArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let found = discovery().discover(&args.email).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&found)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let provider = match (&found.provider_name, &found.provider) {
        (Some(name), Some(id)) => format!(" — {} (preset {})", safe(name), safe(id)),
        (Some(name), None) => format!(" — {}", safe(name)),
        _ => String::new(),
    };
    writeln!(out, "{}{provider}", safe(&found.email))?;
    writeln!(
        out,
        "found by {}: {}",
        found.method.describe(),
        safe(&found.source)
    )?;
    for (i, s) in found.servers.iter().enumerate() {
        writeln!(
            out,
            "  {:<5} {:<36} {:<9} user {:<28} sign-in {}{}",
            format!("{:?}", s.protocol).to_lowercase(),
            format!("{}:{}", safe(&s.host), s.port),
            format!("{:?}", s.security).to_lowercase(),
            safe_opt(s.username.as_deref()),
            sign_in(&s.authentication),
            if i == 0 { "  (preferred)" } else { "" }
        )?;
    }
    if let Some(p) = found.oauth2 {
        writeln!(out, "OAuth2 provider: {}", p.as_str())?;
    }
    for note in &found.notes {
        writeln!(out, "note: {}", safe(note))?;
    }
    writeln!(out, "tried:")?;
    for attempt in &found.tried {
        writeln!(out, "  {}", safe(&attempt.to_string()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `intake account providers`: the bundled presets.
pub(crate) fn providers_command(out: &mut (dyn Write + Send)) -> anyhow::Result<ExitCode> {
    writeln!(
        out,
        "{:<14} {:<40} {:<32} {:<30} {:<9} DOMAINS",
        "ID", "NAME", "IMAP", "POP3", "OAUTH2"
    )?;
    for p in discovery().providers() {
        let of = |protocol: Protocol| {
            p.servers
                .iter()
                .find(|s| s.protocol == protocol)
                .map(|s| {
                    format!(
                        "{}:{} {}",
                        s.host,
                        s.port,
                        format!("{:?}", s.security).to_lowercase()
                    )
                })
                .unwrap_or_else(|| "-".into())
        };
        writeln!(
            out,
            "{:<14} {:<40} {:<32} {:<30} {:<9} {}",
            p.id,
            p.name,
            of(Protocol::Imap),
            of(Protocol::Pop3),
            p.oauth2.map_or("-", |o| o.as_str()),
            p.domains.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
