//! `intake account`: add, list, show, edit, remove, enable, check now
//! (Test settings is in `cli`). State, enable and check go through the
//! service layer, as the service itself does.

use super::*;
use crate::service::{AccountStatus, Service};

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Add an account.
    Add(AccountSpec),
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
    /// Whether any setting was given (besides the name).
    fn changes_anything(&self) -> bool {
        let AccountSpec {
            name: _,
            protocol,
            host,
            port,
            security,
            credential,
            auth,
            ca_file,
            verify_certificate,
            keep_on_server,
            folders,
            mode,
            max_message_mb,
            first_sync_count,
            first_sync_since,
            auto_check,
            interval_secs,
            enabled,
            proxy,
            proxy_credential,
            batch_size,
        } = self;
        protocol.is_some()
            || host.is_some()
            || port.is_some()
            || security.is_some()
            || credential.is_some()
            || auth.is_some()
            || ca_file.is_some()
            || verify_certificate.is_some()
            || keep_on_server.is_some()
            || !folders.is_empty()
            || mode.is_some()
            || max_message_mb.is_some()
            || first_sync_count.is_some()
            || first_sync_since.is_some()
            || auto_check.is_some()
            || interval_secs.is_some()
            || enabled.is_some()
            || proxy.is_some()
            || proxy_credential.is_some()
            || batch_size.is_some()
    }

    fn apply(&self, c: &mut AccountConfig) -> anyhow::Result<()> {
        if let Some(v) = self.protocol {
            c.protocol = v;
        }
        if let Some(v) = &self.host {
            c.host = v.clone();
        }
        if self.port.is_some() {
            c.port = self.port;
        }
        if let Some(v) = self.security {
            c.security = v;
        }
        if let Some(v) = &self.credential {
            c.credential = v.clone();
        }
        if let Some(v) = self.auth {
            c.auth = v;
        }
        if self.ca_file.is_some() {
            c.ca_file = self.ca_file.clone();
        }
        if let Some(v) = self.verify_certificate {
            c.verify_certificate = v;
        }
        if let Some(v) = self.keep_on_server {
            c.keep_on_server = v;
        }
        if !self.folders.is_empty() {
            c.folders = self.folders.clone();
        }
        if let Some(v) = self.mode {
            c.mode = v;
        }
        if let Some(v) = self.max_message_mb {
            c.max_message_bytes = v << 20;
        }
        if self.first_sync_count.is_some() {
            c.first_sync.max_messages = self.first_sync_count;
        }
        if let Some(day) = self.first_sync_since {
            c.first_sync.since = Some(day.and_time(chrono::NaiveTime::MIN).and_utc());
        }
        if let Some(v) = self.auto_check {
            c.auto_check = v;
        }
        if let Some(v) = self.interval_secs {
            c.check_interval_secs = v;
        }
        if let Some(v) = self.enabled {
            c.enabled = v;
        }
        if let Some(v) = self.batch_size {
            c.batch_size = v;
        }
        if c.protocol == Protocol::Pop3 && !self.folders.is_empty() {
            bail!(
                "--folder is for IMAP: a POP3 account has one mailbox and no folders \
                 (account {} is POP3)",
                c.name
            );
        }
        if c.protocol == Protocol::Pop3 {
            c.folders = vec!["INBOX".into()];
        }
        match self.proxy.as_deref() {
            None => {}
            Some("none") => c.proxy = None,
            Some(p) => {
                let (host, port) = p.rsplit_once(':').context("--proxy must be HOST:PORT")?;
                c.proxy = Some(ProxyConfig {
                    host: host.into(),
                    port: port.parse().context("--proxy port must be a number")?,
                    credential: self.proxy_credential.clone(),
                });
            }
        }
        Ok(())
    }
}

pub(crate) async fn account(
    c: &Config,
    cmd: AccountCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match &cmd {
        AccountCommand::List | AccountCommand::Show { .. } | AccountCommand::Check { .. } => {
            OpenMode::Existing
        }
        AccountCommand::Edit(spec) if !spec.changes_anything() => bail!(
            "nothing to change: give the settings to change, e.g. `intake account edit {} --host NEW` \
             (see `intake account edit --help`)",
            spec.name
        ),
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    match cmd {
        AccountCommand::Add(spec) => {
            let (Some(protocol), Some(host), Some(credential)) =
                (spec.protocol, &spec.host, &spec.credential)
            else {
                bail!("a new account needs --protocol, --host and --credential");
            };
            let mut config = AccountConfig::new(
                &spec.name,
                protocol,
                host,
                spec.security.unwrap_or(Security::Tls),
                credential,
            );
            spec.apply(&mut config)?;
            if !config.verify_certificate {
                eprintln!(
                    "warning: certificate verification is off for {}: anyone on the path could read the password",
                    spec.name
                );
            }
            store.add_account(tenant, &config).await?;
            writeln!(out, "added account {}", spec.name)?;
        }
        AccountCommand::Edit(spec) => {
            let before = store.account(tenant, &spec.name).await?.config;
            let mut config = before.clone();
            spec.apply(&mut config)?;
            if config == before {
                writeln!(out, "account {}: nothing changed", spec.name)?;
            } else {
                store.update_account(tenant, &spec.name, &config).await?;
                writeln!(out, "updated account {}", spec.name)?;
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
                .account_statuses(tenant)
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
                        s.state_line(),
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
                .account_status(tenant, &name)
                .await?;
            // The settings as before, with the service's view beside them.
            let mut shown = serde_json::to_value(&account.config)?;
            if let Some(object) = shown.as_object_mut() {
                object.insert("state".into(), status.state_line().into());
                object.insert("health".into(), serde_json::to_value(&status.health)?);
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
        }
        AccountCommand::Enable { name } => {
            let status = Service::admin(store.clone())
                .enable_account(tenant, &name)
                .await?;
            writeln!(
                out,
                "account {}: enabled, state {}; the service checks it at its next tick",
                safe(&name),
                safe(&status.state_line())
            )?;
        }
        AccountCommand::Check { name, wait_secs } => {
            return check_now(&store, tenant, &name, Duration::from_secs(wait_secs), out).await;
        }
        AccountCommand::Remove { name } => {
            store.remove_account(tenant, &name).await?;
            writeln!(out, "removed account {name}")?;
        }
        AccountCommand::Test(_) => unreachable!("dispatched in cli::run"),
    }
    Ok(ExitCode::SUCCESS)
}

/// How recent a worker's heartbeat must be for it to count as running.
const LIVE_WORKER: Duration = Duration::from_secs(35);

/// `intake account check`: a request the running service picks up at its
/// next tick; the result is read back from the account's state.
async fn check_now(
    store: &Store,
    tenant: TenantId,
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
    let requested = service.request_check(tenant, name).await?;
    eprintln!(
        "asked the service to check {name}; waiting (at most {} s)",
        wait.as_secs()
    );
    let deadline = tokio::time::Instant::now() + wait;
    let status = loop {
        if let Some(status) = service.check_result(tenant, name, requested).await? {
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
