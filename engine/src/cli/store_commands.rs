//! The commands that work on the store: accounts, credentials, contacts,
//! the tenant's plugin chain, fetch and import, inbox, messages and
//! quarantine. Each one opens the store at `--database-url` (SQLite
//! `intake.db` by default) for `--tenant`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::{Global, PluginCommand, secret_from_env};
use crate::directory::PartyKind;
use crate::fetch::files::{FileSet, FileSource};
use crate::fetch::{AccountSettings, Auth, FetchMode, Protocol, Secret, Security};
use crate::pipeline::{Options, Pipeline, Progress, Quiet, Summary};
use crate::plugin::{FailurePolicy, Limits, PluginRuntime, RuntimeConfig};
use crate::store::{
    AccountConfig, BindingRole, MasterKey, MessageQuery, NewBinding, NewParty, ProxyConfig, Store,
    StoredMessageId, TenantId,
};

/// The reference plugins installed as the default chain on a fresh tenant:
/// (file stem, role, configuration).
const DEFAULT_CHAIN: &[(&str, BindingRole, &str)] = &[
    ("auto_reply_guard", BindingRole::Matcher, "{}"),
    ("thread_match", BindingRole::Matcher, "{}"),
    ("exact_match", BindingRole::Matcher, "{}"),
    ("domain_match", BindingRole::Matcher, "{}"),
    ("unknown_sender", BindingRole::UnknownSender, "{}"),
];

async fn open(g: &Global) -> anyhow::Result<(Store, TenantId)> {
    let url = g.database_url.clone().unwrap_or_else(Store::default_url);
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    let tenant = store.ensure_tenant(&g.tenant).await?;
    Ok((store, tenant))
}

/// The master key: `--key-file`, else `$INTAKE_MASTER_KEY`, else
/// `./intake.key`. With `create`, a missing default key file is generated.
fn master_key(g: &Global, create: bool) -> anyhow::Result<MasterKey> {
    if g.key_file.is_some() || std::env::var_os(crate::store::MASTER_KEY_ENV).is_some() {
        return Ok(MasterKey::from_env_or_file(g.key_file.as_deref())?);
    }
    let path = Path::new("intake.key");
    if path.exists() {
        return Ok(MasterKey::from_env_or_file(Some(path))?);
    }
    if !create {
        bail!(
            "no master key: set {} or --key-file (stored passwords were encrypted with it)",
            crate::store::MASTER_KEY_ENV
        );
    }
    let key = MasterKey::generate()?;
    write_private(path, key.to_base64().as_bytes())?;
    eprintln!(
        "created the master key file {}: back it up; without it stored passwords cannot be read",
        path.display()
    );
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// A secret from an environment variable, the first line of standard input,
/// or — on a terminal, when neither is given — a prompt without echo. Never
/// from an argument (shell history, `ps`).
pub(crate) fn read_secret(env: Option<&str>, stdin: bool, what: &str) -> anyhow::Result<Secret> {
    match (env, stdin) {
        (Some(var), _) => secret_from_env(var),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .with_context(|| format!("cannot read the {what} from standard input"))?;
            Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
        }
        (None, false) if std::io::stdin().is_terminal() => {
            let typed = rpassword::prompt_password(format!("{what}: "))
                .with_context(|| format!("cannot read the {what} at the prompt"))?;
            Ok(Secret::new(typed))
        }
        (None, false) => bail!(
            "give the {what} from an environment variable or standard input (never as an argument)"
        ),
    }
}

/// A JSON value given inline or as `@file`.
pub(crate) fn read_config(value: &str) -> anyhow::Result<String> {
    let json = match value.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => value.to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&json)
        .context("the configuration is not valid JSON")?;
    Ok(json)
}

/// The settings of a stored account, credentials decrypted.
pub(crate) async fn stored_settings(g: &Global, name: &str) -> anyhow::Result<AccountSettings> {
    let (store, tenant) = open(g).await?;
    let key = master_key(g, false)?;
    Ok(store.settings(tenant, name, &key).await?)
}

// ---------------------------------------------------------------- accounts

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
    /// Test settings: resolve, connect, TLS, capabilities, login and
    /// folders, one line per step; on failure, the step that failed and what
    /// to change. Exits non-zero if any step fails.
    Test(super::AccountTest),
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
    g: &Global,
    cmd: AccountCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(g).await?;
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
            let mut config = store.account(tenant, &spec.name).await?.config;
            spec.apply(&mut config)?;
            store.update_account(tenant, &spec.name, &config).await?;
            writeln!(out, "updated account {}", spec.name)?;
        }
        AccountCommand::List => {
            writeln!(
                out,
                "{:<16} {:<5} {:<28} {:<9} {:<8} {:<7} FOLDERS",
                "NAME", "PROTO", "SERVER", "SECURITY", "COPY", "ENABLED"
            )?;
            for a in store.accounts(tenant).await? {
                let c = &a.config;
                let server = format!(
                    "{}:{}",
                    c.host,
                    c.port.map_or_else(|| "default".into(), |p| p.to_string())
                );
                writeln!(
                    out,
                    "{:<16} {:<5} {:<28} {:<9} {:<8} {:<7} {}",
                    c.name,
                    format!("{:?}", c.protocol).to_lowercase(),
                    server,
                    format!("{:?}", c.security).to_lowercase(),
                    if c.keep_on_server { "keep" } else { "delete" },
                    c.enabled,
                    c.folders.join(",")
                )?;
            }
        }
        AccountCommand::Show { name } => {
            let account = store.account(tenant, &name).await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&account.config)?)?;
        }
        AccountCommand::Remove { name } => {
            store.remove_account(tenant, &name).await?;
            writeln!(out, "removed account {name}")?;
        }
        AccountCommand::Test(_) => unreachable!("dispatched in cli::run"),
    }
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------- credentials

#[derive(Debug, Subcommand)]
pub(crate) enum CredentialCommand {
    /// Store a credential, encrypted with the master key. The secret comes
    /// from --secret-env, --secret-stdin, or a prompt on a terminal.
    Add {
        /// Credential name (accounts refer to it).
        name: String,
        /// User name.
        #[arg(long)]
        user: String,
        /// Read the secret from this environment variable.
        #[arg(long, value_name = "VAR", conflicts_with = "secret_stdin")]
        secret_env: Option<String>,
        /// Read the secret from the first line of standard input.
        #[arg(long)]
        secret_stdin: bool,
    },
    /// Names and user names (never secrets).
    List,
    /// Remove a credential no account uses.
    Remove {
        /// Credential name.
        name: String,
    },
}

pub(crate) async fn credential(
    g: &Global,
    cmd: CredentialCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(g).await?;
    match cmd {
        CredentialCommand::Add {
            name,
            user,
            secret_env,
            secret_stdin,
        } => {
            let secret = read_secret(secret_env.as_deref(), secret_stdin, "secret")?;
            let key = master_key(g, true)?;
            store
                .add_credential(tenant, &name, &user, &secret, &key)
                .await?;
            writeln!(out, "stored credential {name} (encrypted)")?;
        }
        CredentialCommand::List => {
            for c in store.credentials(tenant).await? {
                writeln!(
                    out,
                    "{:<20} {:<30} {}",
                    c.name,
                    c.username,
                    c.created_at.format("%Y-%m-%d %H:%M")
                )?;
            }
        }
        CredentialCommand::Remove { name } => {
            store.remove_credential(tenant, &name).await?;
            writeln!(out, "removed credential {name}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- contacts

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
    g: &Global,
    cmd: ContactCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(g).await?;
    match cmd {
        ContactCommand::Import { csv } => {
            // The in-memory loader checks every row and reports the line.
            let staging = crate::directory::MemoryDirectory::new();
            staging.load_csv("import", &csv)?;
            let mut parties = Vec::new();
            for kind in [PartyKind::Contact, PartyKind::Lead] {
                for p in staging.all("import", kind) {
                    parties.push(NewParty {
                        kind,
                        email: p.email,
                        name: p.name,
                        company: p.company,
                        external_id: p.external_id,
                    });
                }
            }
            let summary = store.import_parties(tenant, &parties).await?;
            writeln!(
                out,
                "imported {}: {} created, {} updated",
                csv.display(),
                summary.created,
                summary.updated
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
                    p.email,
                    p.name.unwrap_or_default(),
                    p.company.unwrap_or_default(),
                    p.external_id.unwrap_or_default()
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ----------------------------------------------------------------- plugins

/// `intake plugin add`.
#[derive(Debug, Args)]
pub(crate) struct PluginAdd {
    /// The component (.wasm).
    file: PathBuf,
    /// matcher or unknown-sender.
    #[arg(long)]
    role: String,
    /// Name in the chain (default: the file stem).
    #[arg(long)]
    name: Option<String>,
    /// Configuration: JSON, or @file.json.
    #[arg(long, default_value = "{}")]
    config: String,
    /// Deadline per message, milliseconds.
    #[arg(long, default_value_t = 100)]
    deadline_ms: u64,
    /// Memory cap, MiB.
    #[arg(long, default_value_t = 64)]
    memory_mb: usize,
    /// quarantine (default) or skip.
    #[arg(long, default_value = "quarantine")]
    on_error: FailurePolicy,
}

fn role(text: &str) -> anyhow::Result<BindingRole> {
    match text {
        "matcher" => Ok(BindingRole::Matcher),
        "unknown-sender" => Ok(BindingRole::UnknownSender),
        other => bail!("unknown role {other:?} (expected matcher or unknown-sender)"),
    }
}

/// Checks that a component loads, has the role and accepts its config.
async fn check_plugin(binding: &NewBinding, tenant: &str) -> anyhow::Result<()> {
    let runtime = PluginRuntime::new(RuntimeConfig::default())?;
    let plugin = runtime.load(crate::plugin::Binding {
        name: binding.name.clone(),
        wasm: crate::plugin::WasmSource::Bytes(binding.wasm.clone().into()),
        config: binding.config.clone(),
        limits: binding.limits.clone(),
        on_error: binding.on_error,
    })?;
    let roles = plugin.roles();
    let ok = match binding.role {
        BindingRole::Matcher => roles.matcher,
        BindingRole::UnknownSender => roles.unknown_sender,
    };
    if !ok {
        bail!(
            "{} does not export the {} role",
            binding.name,
            binding.role.as_str()
        );
    }
    plugin
        .check_init(tenant, Arc::new(crate::directory::MemoryDirectory::new()))
        .await?;
    Ok(())
}

pub(crate) async fn plugin(
    g: &Global,
    cmd: PluginCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(g).await?;
    match cmd {
        PluginCommand::Add(a) => {
            let wasm = std::fs::read(&a.file)
                .with_context(|| format!("cannot read {}", a.file.display()))?;
            let name = a.name.unwrap_or_else(|| {
                a.file
                    .file_stem()
                    .map_or("plugin".into(), |s| s.to_string_lossy().into())
            });
            let limits = Limits {
                deadline: Duration::from_millis(a.deadline_ms),
                memory_bytes: a.memory_mb << 20,
                ..Limits::default()
            };
            let binding = NewBinding {
                name: name.clone(),
                role: role(&a.role)?,
                wasm,
                config: read_config(&a.config)?,
                limits,
                on_error: a.on_error,
                enabled: true,
            };
            check_plugin(&binding, &g.tenant).await?;
            store.add_binding(tenant, &binding).await?;
            writeln!(out, "added {name} as {} at the end of the chain", a.role)?;
        }
        PluginCommand::List => {
            writeln!(
                out,
                "{:<4} {:<20} {:<15} {:<8} {:<10} {:<10} CONFIG",
                "POS", "NAME", "ROLE", "ENABLED", "DEADLINE", "ON ERROR"
            )?;
            for b in store.bindings(tenant).await? {
                writeln!(
                    out,
                    "{:<4} {:<20} {:<15} {:<8} {:<10} {:<10} {}",
                    b.position,
                    b.name,
                    b.role.as_str(),
                    b.enabled,
                    format!("{} ms", b.limits.deadline.as_millis()),
                    format!("{:?}", b.on_error).to_lowercase(),
                    b.config
                )?;
            }
        }
        PluginCommand::Remove { name } => {
            store.remove_binding(tenant, &name).await?;
            writeln!(out, "removed {name}")?;
        }
        PluginCommand::Order { names } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            store.order_bindings(tenant, &names).await?;
            writeln!(out, "chain: {}", names.join(" → "))?;
        }
        PluginCommand::Test(_) => unreachable!("dispatched in cli::run"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the bundled reference plugins are: `$INTAKE_PLUGIN_DIR`, beside the
/// binary in `plugins/`, or the source tree's build output.
fn bundled_plugin_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("INTAKE_PLUGIN_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(exe_dir.join("plugins"));
    }
    candidates.push(PathBuf::from("plugins/target/wasm32-wasip2/release"));
    candidates.into_iter().find(|d| {
        DEFAULT_CHAIN
            .iter()
            .all(|(n, _, _)| d.join(format!("{n}.wasm")).exists())
    })
}

/// On a tenant without plugins, installs the bundled reference chain.
async fn ensure_default_chain(
    store: &Store,
    tenant: TenantId,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    if store.has_bindings(tenant).await? {
        return Ok(());
    }
    let Some(dir) = bundled_plugin_dir() else {
        bail!(
            "this tenant has no plugins and the bundled ones were not found: add plugins with `intake plugin add`, \
             or build the bundled ones (./dev plugins) or point INTAKE_PLUGIN_DIR at them"
        );
    };
    let mut chain = Vec::new();
    for (name, role, config) in DEFAULT_CHAIN {
        chain.push(NewBinding {
            name: (*name).into(),
            role: *role,
            wasm: std::fs::read(dir.join(format!("{name}.wasm")))?,
            config: (*config).into(),
            limits: Limits::default(),
            on_error: FailurePolicy::Quarantine,
            enabled: true,
        });
    }
    if !store.add_bindings(tenant, &chain, true).await? {
        return Ok(()); // another worker installed it first
    }
    writeln!(
        out,
        "installed the default plugin chain from {}",
        dir.display()
    )?;
    Ok(())
}

// ------------------------------------------------------- fetch and import

/// `intake fetch`.
#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// Only this account (default: every enabled account of the tenant).
    #[arg(long)]
    account: Option<String>,
    /// Messages per batch (one transaction each).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// A progress bar on a terminal for long first syncs.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn listed(&self, account: &str, folder: &str, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(0);
        self.0.set_message(format!("{account} {folder}"));
    }
    fn committed(&self, n: usize) {
        self.0.inc(n as u64);
    }
}

fn progress() -> Box<dyn Progress> {
    if !std::io::stderr().is_terminal() {
        return Box::new(Quiet);
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>24} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    Box::new(Bar(bar))
}

fn print_summary(out: &mut (dyn Write + Send), s: &Summary) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16} fetched {:>5}  attached {:>5}  new leads {:>4}  quarantined {:>4}  discarded {:>4}  unlinked {:>4}  skipped {:>3}  duplicates {:>3}  server actions {}{}",
        s.account,
        s.fetched,
        s.attached,
        s.new_leads,
        s.quarantined,
        s.discarded,
        s.unlinked,
        s.skipped_too_large,
        s.duplicates,
        s.actions_done,
        if s.actions_failed > 0 {
            format!(" ({} failed, retried next run)", s.actions_failed)
        } else {
            String::new()
        }
    )?;
    for folder in &s.uid_validity_changes {
        writeln!(
            out,
            "{:<16} note: UIDVALIDITY of {folder} changed; it was re-listed (duplicates skipped)",
            s.account
        )?;
    }
    Ok(())
}

pub(crate) async fn fetch(
    g: &Global,
    args: FetchArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(g).await?;
    let key = master_key(g, false)?;
    ensure_default_chain(&store, tenant, out).await?;
    let accounts: Vec<String> = match &args.account {
        Some(name) => vec![name.clone()],
        None => store
            .accounts(tenant)
            .await?
            .into_iter()
            .filter(|a| a.config.enabled)
            .map(|a| a.config.name)
            .collect(),
    };
    if accounts.is_empty() {
        bail!(
            "tenant {:?} has no enabled accounts: add one with `intake account add`",
            g.tenant
        );
    }
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    let pipeline = Pipeline::new(
        store,
        runtime,
        Options {
            batch_messages: args.batch.max(1),
            ..Options::default()
        },
    );
    let bar = progress();
    let mut failed = false;
    for name in accounts {
        match pipeline
            .run_account(&g.tenant, &name, &key, bar.as_ref())
            .await
        {
            Ok(summary) if args.json => writeln!(out, "{}", serde_json::to_string(&summary)?)?,
            Ok(summary) => print_summary(out, &summary)?,
            Err(e) => {
                failed = true;
                writeln!(out, "{name:<16} FAILED: {e}{}", crate::fetch::hint_line(&e))?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `intake import`.
#[derive(Debug, Args)]
#[group(skip)]
pub(crate) struct ImportArgs {
    /// A Maildir.
    #[arg(long, conflicts_with_all = ["mbox", "eml"])]
    maildir: Option<PathBuf>,
    /// An mbox file.
    #[arg(long, conflicts_with = "eml")]
    mbox: Option<PathBuf>,
    /// An .eml file or a directory of them.
    #[arg(long)]
    eml: Option<PathBuf>,
    /// The account the messages belong to.
    #[arg(long)]
    account: String,
}

pub(crate) async fn import(
    g: &Global,
    args: ImportArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(g).await?;
    let key = master_key(g, false)?;
    ensure_default_chain(&store, tenant, out).await?;
    let set = match (args.maildir, args.mbox, args.eml) {
        (Some(p), _, _) => FileSet::Maildir(p),
        (_, Some(p), _) => FileSet::Mbox(p),
        (_, _, Some(p)) => FileSet::Eml(p),
        _ => bail!("say what to import: --maildir DIR, --mbox FILE or --eml PATH"),
    };
    let settings = store.settings(tenant, &args.account, &key).await?;
    let source = FileSource::new(set, settings.max_message_bytes)?;
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    let pipeline = Pipeline::new(store, runtime, Options::default());
    let summary = pipeline
        .import(&g.tenant, &args.account, &key, source, progress().as_ref())
        .await?;
    print_summary(out, &summary)?;
    Ok(ExitCode::SUCCESS)
}

// ----------------------------------------------------- inbox and messages

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
    g: &Global,
    args: InboxArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(g).await?;
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
                    p.name.clone().unwrap_or_else(|| p.email.clone()),
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

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
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
}

pub(crate) async fn message(
    g: &Global,
    cmd: MessageCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(g).await?;
    let MessageCommand::Show { id, raw } = cmd;
    let m = store
        .message(tenant, StoredMessageId(id))
        .await?
        .with_context(|| format!("no message {id} in tenant {:?}", g.tenant))?;
    if raw {
        out.write_all(
            m.raw
                .as_deref()
                .context("no raw bytes are kept for this message (discarded or dropped)")?,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &m.summary;
    writeln!(out, "id:         {}", s.id)?;
    writeln!(out, "status:     {}", s.status.as_str())?;
    writeln!(out, "folder:     {}", s.folder.clone().unwrap_or_default())?;
    writeln!(
        out,
        "message-id: {}",
        s.message_id.clone().unwrap_or_default()
    )?;
    writeln!(out, "from:       {}", s.from.clone().unwrap_or_default())?;
    writeln!(out, "subject:    {}", s.subject.clone().unwrap_or_default())?;
    writeln!(
        out,
        "date:       {}",
        s.date.map(|d| d.to_rfc3339()).unwrap_or_default()
    )?;
    writeln!(out, "size:       {} bytes", s.size)?;
    for p in &s.parties {
        writeln!(
            out,
            "linked:     {} {} <{}>",
            format!("{:?}", p.kind).to_lowercase(),
            p.name.clone().unwrap_or_default(),
            p.email
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

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
    let envelope = crate::parse::Envelope {
        tenant_id: tenant_name.to_string(),
        account_id: "quarantine".into(),
        origin: crate::parse::Origin::File(format!("stored message {id}")),
    };
    let parsed = crate::parse::parse(raw.into(), &envelope, crate::parse::DEFAULT_MAX_BODY_BYTES)
        .map_err(|e| anyhow::anyhow!("still unparseable: {e}"))?;
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    let pipeline = Pipeline::new(store.clone(), runtime, Options::default());
    let chain = pipeline.chain(tenant, tenant_name).await?;
    let decision = chain.run(&parsed, Arc::new(store.directory())).await;
    writeln!(
        out,
        "chain decided: {} (by {})",
        serde_json::to_string(&decision.disposition)?,
        decision.decided_by.as_deref().unwrap_or("nobody")
    )?;
    Ok(match decision.disposition {
        Disposition::Attach { parties } => parties
            .iter()
            .map(|p| p.id.parse().map(crate::store::PartyId))
            .collect::<Result<_, _>>()
            .context("party id")?,
        Disposition::CreateLead { lead } => {
            let done = store
                .upsert_party(
                    tenant,
                    &NewParty {
                        kind: PartyKind::Lead,
                        email: lead.email,
                        name: lead.name,
                        company: lead.company,
                        external_id: None,
                    },
                )
                .await?;
            vec![done.id()]
        }
        Disposition::Quarantine { reason } => bail!("the chain quarantines it again: {reason}"),
        Disposition::Discard { reason } => {
            bail!("the chain would discard it ({reason}); use `quarantine drop` to drop it")
        }
        Disposition::KeepUnlinked => Vec::new(),
    })
}

async fn quarantine_list(
    store: &Store,
    tenant: TenantId,
    account: Option<crate::store::AccountId>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    writeln!(
        out,
        "{:<6} {:<16} {:<30} {:<18} REASON",
        "ID", "QUARANTINED", "FROM", "PLUGIN"
    )?;
    for q in store.quarantined(tenant, account).await? {
        writeln!(
            out,
            "{:<6} {:<16} {:<30} {:<18} {}",
            q.message.id,
            q.quarantined_at.format("%Y-%m-%d %H:%M"),
            clip(q.message.from.as_deref().unwrap_or(""), 30),
            q.plugin.clone().unwrap_or_else(|| "-".into()),
            q.reason
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn quarantine(
    g: &Global,
    cmd: QuarantineCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(g).await?;
    match cmd {
        QuarantineCommand::List => return quarantine_list(&store, tenant, None, out).await,
        QuarantineCommand::Release { id, attach, rerun } => {
            let id = StoredMessageId(id);
            let parties = match (attach, rerun) {
                (Some(email), _) => vec![party_by_email(&store, &g.tenant, &email).await?],
                (None, true) => rerun_chain(&store, tenant, &g.tenant, id, out).await?,
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
