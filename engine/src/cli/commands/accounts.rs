//! `intake account`: add, list, show, edit, remove, enable, check now
//! (Test settings is in `cli`; discovery and presets in `discover`).
//! State, enable and check go through the service layer, as the service
//! itself does.

use super::*;
use crate::domain::CertificatePin;
use crate::service::accounts::AccountPatch;
use crate::service::{AccountStatus, Scope, Service, ServiceError};

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Add an account. `--provider gmail` or `--email a@b.example
    /// --discover` fill the server settings not given.
    Add(AccountAdd),
    /// The tenant's accounts.
    List,
    /// One account's settings.
    Show {
        /// Account name.
        name: String,
    },
    /// Change settings of an account (only the options given).
    Edit(AccountSpec),
    /// Remove an account (its stored messages stay).
    Remove {
        /// Account name.
        name: String,
    },
    /// Switch an account on and clear a disablement (after too many
    /// authentication or certificate failures) or a backoff: it is checked
    /// again at once.
    Enable {
        /// Account name.
        name: String,
    },
    /// Check now: ask the running `intake serve` to check the account
    /// soon, wait for it, and show the result.
    Check {
        /// Account name.
        name: String,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 120)]
        wait_secs: u64,
    },
    /// Test settings: resolve, connect, TLS, capabilities, login and
    /// folders, one line per step; on failure, the step that failed and what
    /// to change. Exits non-zero if any step fails.
    Test(crate::cli::AccountTest),
    /// Find an e-mail address's incoming servers: the bundled provider
    /// table, DNS SRV records (RFC 6186), the domain's autoconfig document,
    /// then its MX records; says what was found, how, and what was tried.
    Discover(DiscoverArgs),
    /// The bundled provider presets (for `account add --provider`).
    Providers,
}

/// `intake account add`: the settings, and where to take the server from.
#[derive(Debug, Args)]
pub(crate) struct AccountAdd {
    #[command(flatten)]
    spec: AccountSpec,
    #[command(flatten)]
    from: ServerFrom,
}

/// An account as CRM admins describe it.
#[derive(Debug, Args)]
pub(crate) struct AccountSpec {
    /// Account name (unique in the tenant).
    name: String,
    /// imap or pop3.
    #[arg(long, value_enum)]
    protocol: Option<Protocol>,
    /// Server host name.
    #[arg(long)]
    host: Option<String>,
    /// Port (default by protocol and security).
    #[arg(long)]
    port: Option<u16>,
    /// none, starttls or tls (default tls).
    #[arg(long, value_enum)]
    security: Option<Security>,
    /// Name of the stored credential to log in with.
    #[arg(long)]
    credential: Option<String>,
    /// login or plain (SASL PLAIN).
    #[arg(long, value_enum)]
    auth: Option<Auth>,
    /// Extra CA certificate(s), PEM.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Verify the server certificate (default true; false is warned about).
    #[arg(long)]
    verify_certificate: Option<bool>,
    /// Accept exactly this server certificate, by the SHA-256 fingerprint
    /// `account test` prints (sha256:…), and no other; `none` removes the
    /// pin. The safe choice for a server with a self-signed certificate.
    #[arg(long, value_name = "sha256:…|none")]
    pin_certificate: Option<String>,
    /// Keep a copy on the server (default true: mark seen instead of delete).
    #[arg(long)]
    keep_on_server: Option<bool>,
    /// Folders to read (repeatable; default INBOX).
    #[arg(long = "folder")]
    folders: Vec<String>,
    /// new (UIDs above the cursor) or unseen.
    #[arg(long, value_enum)]
    mode: Option<FetchMode>,
    /// Larger messages are skipped (listed, not fetched).
    #[arg(long)]
    max_message_mb: Option<u64>,
    /// On the first sync, only the newest N messages (IMAP).
    #[arg(long)]
    first_sync_count: Option<u32>,
    /// On the first sync, only mail since this day, YYYY-MM-DD (IMAP).
    #[arg(long)]
    first_sync_since: Option<chrono::NaiveDate>,
    /// Check automatically.
    #[arg(long)]
    auto_check: Option<bool>,
    /// Automatic check interval, seconds.
    #[arg(long)]
    interval_secs: Option<u32>,
    /// Enabled (fetched by `intake fetch`).
    #[arg(long)]
    enabled: Option<bool>,
    /// SOCKS5 proxy as HOST:PORT ("network connector"); `none` removes it.
    #[arg(long)]
    proxy: Option<String>,
    /// Stored credential for the proxy, if it needs one.
    #[arg(long)]
    proxy_credential: Option<String>,
    /// Messages per fetch command and per transaction.
    #[arg(long)]
    batch_size: Option<u32>,
}

impl AccountSpec {
    /// The change these options make, as the service layer takes it.
    fn patch(&self) -> anyhow::Result<AccountPatch> {
        let proxy = match self.proxy.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some(p) => {
                let (host, port) = p.rsplit_once(':').context("--proxy must be HOST:PORT")?;
                Some(Some(ProxyConfig {
                    host: host.into(),
                    port: port.parse().context("--proxy port must be a number")?,
                    credential: self.proxy_credential.clone(),
                }))
            }
        };
        let pinned_certificate = match self.pin_certificate.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some(pin) => Some(Some(
                pin.parse::<CertificatePin>().context("--pin-certificate")?,
            )),
        };
        Ok(AccountPatch {
            protocol: self.protocol,
            pinned_certificate,
            host: self.host.clone(),
            port: self.port.map(Some),
            security: self.security,
            credential: self.credential.clone(),
            auth: self.auth,
            verify_certificate: self.verify_certificate,
            keep_on_server: self.keep_on_server,
            folders: (!self.folders.is_empty()).then(|| self.folders.clone()),
            mode: self.mode,
            max_message_bytes: self.max_message_mb.map(|mb| mb << 20),
            first_sync_count: self.first_sync_count,
            first_sync_since: self.first_sync_since,
            auto_check: self.auto_check,
            check_interval_secs: self.interval_secs,
            enabled: self.enabled,
            proxy,
            batch_size: self.batch_size,
            ca_file: self.ca_file.clone(),
        })
    }
}

pub(crate) async fn account(
    c: &Config,
    cmd: AccountCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    // Discovery and presets need no store.
    let cmd = match cmd {
        AccountCommand::Discover(args) => return discover_command(&args, out).await,
        AccountCommand::Providers => return providers_command(out),
        cmd => cmd,
    };
    let mode = match &cmd {
        AccountCommand::List | AccountCommand::Show { .. } | AccountCommand::Check { .. } => {
            OpenMode::Existing
        }
        AccountCommand::Edit(spec) if spec.patch()?.is_empty() => bail!(
            "nothing to change: give the settings to change, e.g. `intake account edit {} --host NEW` \
             (see `intake account edit --help`)",
            spec.name
        ),
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    match cmd {
        AccountCommand::Add(AccountAdd { spec, from }) => {
            let mut patch = spec.patch()?;
            from.fill(&mut patch).await?;
            if patch.protocol.is_none() || patch.host.is_none() || patch.credential.is_none() {
                bail!(
                    "a new account needs --protocol, --host and --credential (or --provider \
                     NAME, or --email ADDRESS --discover, for the server)"
                );
            }
            let scope = Scope::local(tenant, &c.tenant);
            let change = Service::admin(store.clone())
                .create_account(&scope, &spec.name, &patch)
                .await
                .map_err(cli_field_error)?;
            for warning in &change.warnings {
                eprintln!("warning: {warning}");
            }
            writeln!(out, "added account {}", spec.name)?;
        }
        AccountCommand::Edit(spec) => {
            let scope = Scope::local(tenant, &c.tenant);
            let change = Service::admin(store.clone())
                .update_account(&scope, &spec.name, &spec.patch()?)
                .await
                .map_err(cli_field_error)?;
            if change.changed {
                for warning in &change.warnings {
                    eprintln!("warning: {warning}");
                }
                writeln!(out, "updated account {}", spec.name)?;
            } else {
                writeln!(out, "account {}: nothing changed", spec.name)?;
            }
        }
        AccountCommand::List => {
            let service = Service::admin(store.clone());
            writeln!(
                out,
                "{:<16} {:<5} {:<28} {:<9} {:<14} {:<7} {:<20} {:<16} STATE",
                "NAME",
                "PROTO",
                "SERVER",
                "SECURITY",
                "KEEP ON SERVER",
                "ENABLED",
                "FOLDERS",
                "LAST CHECK"
            )?;
            let statuses: std::collections::HashMap<String, AccountStatus> = service
                .account_statuses(&Scope::local(tenant, &c.tenant))
                .await?
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect();
            for a in store.accounts(tenant).await? {
                let c = &a.config;
                let mut settings = AccountSettings::new(
                    &c.name,
                    c.protocol,
                    &c.host,
                    c.security,
                    "",
                    Secret::new(""),
                );
                settings.port = c.port;
                let server = format!("{}:{}", c.host, settings.effective_port());
                let folders = match c.protocol {
                    Protocol::Pop3 => "-".to_owned(),
                    Protocol::Imap => c.folders.join(","),
                };
                let (last, state) = match statuses.get(&c.name) {
                    Some(s) => (
                        s.health
                            .last_check_at
                            .map(|t| t.format("%m-%d %H:%M:%S").to_string())
                            .unwrap_or_else(|| "never".into()),
                        match s.activity_line() {
                            Some(now) => format!("{}; {now}", s.state_line()),
                            None => s.state_line(),
                        },
                    ),
                    None => ("never".into(), "ok".into()),
                };
                writeln!(
                    out,
                    "{:<16} {:<5} {:<28} {:<9} {:<14} {:<7} {:<20} {:<16} {}",
                    safe(&c.name),
                    format!("{:?}", c.protocol).to_lowercase(),
                    safe(&server),
                    format!("{:?}", c.security).to_lowercase(),
                    c.keep_on_server,
                    c.enabled,
                    safe(&folders),
                    last,
                    safe(&state)
                )?;
            }
        }
        AccountCommand::Show { name } => {
            let account = store.account(tenant, &name).await?;
            let status = Service::admin(store.clone())
                .account_status(&Scope::local(tenant, &c.tenant), &name)
                .await?;
            // The settings as before, with the service's view beside them.
            let mut shown = serde_json::to_value(&account.config)?;
            if let Some(object) = shown.as_object_mut() {
                object.insert("state".into(), status.state_line().into());
                if let Some(now) = status.activity_line() {
                    object.insert("activity".into(), now.into());
                }
                object.insert("health".into(), serde_json::to_value(&status.health)?);
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
        }
        AccountCommand::Enable { name } => {
            let status = Service::admin(store.clone())
                .enable_account(&Scope::local(tenant, &c.tenant), &name)
                .await?;
            writeln!(
                out,
                "account {}: enabled, state {}; the service checks it at its next tick",
                safe(&name),
                safe(&status.state_line())
            )?;
        }
        AccountCommand::Check { name, wait_secs } => {
            let scope = Scope::local(tenant, &c.tenant);
            return check_now(&store, &scope, &name, Duration::from_secs(wait_secs), out).await;
        }
        AccountCommand::Remove { name } => {
            Service::admin(store.clone())
                .remove_account(&Scope::local(tenant, &c.tenant), &name)
                .await?;
            writeln!(out, "removed account {name}")?;
        }
        AccountCommand::Test(_) => unreachable!("dispatched in cli::run"),
        AccountCommand::Discover(_) | AccountCommand::Providers => {
            unreachable!("answered before the store is opened")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How recent a worker's heartbeat must be for it to count as running.
const LIVE_WORKER: Duration = Duration::from_secs(35);

/// `intake account check`: a request the running service picks up at its
/// next tick; the result is read back from the account's state.
async fn check_now(
    store: &Store,
    scope: &Scope,
    name: &str,
    wait: Duration,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let service = Service::admin(store.clone());
    if service.live_workers(LIVE_WORKER).await?.is_empty() {
        bail!(
            "no `intake serve` is running on this store (none gave a sign of life in the last {} s); \
             start one, or check once from here with `intake fetch --account {name}`",
            LIVE_WORKER.as_secs()
        );
    }
    let requested = service.request_check(scope, name).await?;
    eprintln!(
        "asked the service to check {name}; waiting (at most {} s)",
        wait.as_secs()
    );
    let deadline = tokio::time::Instant::now() + wait;
    let status = loop {
        if let Some(status) = service.check_result(scope, name, requested).await? {
            break status;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the service has not checked {name} within {} s (it may be busy: the check stays \
                 queued); see `intake account show {name}` later",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    print_check(out, &status)?;
    Ok(if status.health.last_error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_check(out: &mut (dyn Write + Send), s: &AccountStatus) -> std::io::Result<()> {
    let h = &s.health;
    writeln!(out, "account     {}", safe(&s.name))?;
    writeln!(out, "state       {}", safe(&s.state_line()))?;
    if let Some(now) = s.activity_line() {
        writeln!(out, "now         {now}")?;
    }
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into())
    };
    writeln!(out, "last check  {}", at(h.last_check_at))?;
    writeln!(out, "last ok     {}", at(h.last_success_at))?;
    match (&h.last_error_class, &h.last_error) {
        (Some(class), Some(error)) => writeln!(out, "error       {class}: {}", safe(error))?,
        _ => writeln!(
            out,
            "ingested    {} message(s)",
            h.last_ingested.unwrap_or(0)
        )?,
    }
    writeln!(out, "next check  {}", at(h.next_check_at))
}

/// A refused field, named as the command line's option.
fn cli_field_error(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::Invalid { field, reason } => {
            let option = match field.as_str() {
                "folders" => "--folder".to_owned(),
                "check_interval_secs" => "--interval-secs".to_owned(),
                "max_message_bytes" => "--max-message-mb".to_owned(),
                "first_sync_count" => "--first-sync-count".to_owned(),
                other => format!("--{}", other.replace(['_', '.'], "-")),
            };
            anyhow::anyhow!("{option}: {reason}")
        }
        other => other.into(),
    }
}
