//! The commands that work on the store: accounts, credentials, contacts,
//! the tenant's plugin chain, fetch and import, inbox, messages and
//! quarantine, and the master key. Each one opens the store of its
//! [`Config`] (by default `intake.db` in the data directory) for `--tenant`:
//! a command that changes data may create it, and names it on stderr; a
//! command that only reads never creates one.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::config::KeySource;
use super::text::{clip, safe, safe_opt};
use super::{Config, PluginCommand, secret_from_env};
use crate::bundled;
use crate::directory::PartyKind;
use crate::fetch::files::{FileSet, FileSource};
use crate::fetch::{AccountSettings, Auth, FetchMode, Protocol, Secret, Security};
use crate::pipeline::{Options, Pipeline, Progress, Quiet, Summary};
use crate::plugin::{FailurePolicy, Limits, PluginRuntime, RuntimeConfig};
use crate::store::{
    AccountConfig, BindingRole, MasterKey, MessageQuery, NewBinding, NewParty, OpenMode,
    ProxyConfig, Store, StoredMessageId, TenantId,
};

/// Opens the store. With [`OpenMode::Create`] (commands that change data)
/// a missing SQLite store is created, and the store in use is named on
/// stderr, so an operator always knows which data a change went to.
async fn open(c: &Config, mode: OpenMode) -> anyhow::Result<(Store, TenantId)> {
    let store = Store::open(&c.store, mode).await.map_err(|e| {
        // Earlier versions kept the store in the current directory.
        let here = Path::new(crate::home::STORE_FILE);
        match e {
            crate::store::Error::NoStore { .. } if here.is_file() => anyhow::Error::from(e)
                .context(format!(
                    "there is an {} in the current directory (where earlier versions kept the \
                     store): use it with --database-url {}, or move it and intake.key to {}",
                    crate::home::STORE_FILE,
                    crate::home::STORE_FILE,
                    c.home.display()
                )),
            e => e.into(),
        }
    })?;
    let tenant = match mode {
        OpenMode::Create => {
            eprintln!("store: {}", c.store.display());
            store.ensure_tenant(&c.tenant).await?
        }
        // Reading never creates a tenant either: a misspelt --tenant is an
        // error, not an empty table.
        OpenMode::Existing => store.tenant(&c.tenant).await?.with_context(|| {
            format!(
                "no tenant {:?} in the store {} (a tenant is created by the first command \
                 that stores something for it)",
                c.tenant,
                c.store.display()
            )
        })?,
    };
    Ok((store, tenant))
}

/// The master key for storing a secret: the configured one, or — when the
/// default key file does not exist yet — a new key written there (0600).
///
/// A store that already holds credentials was used with a key: a new one
/// would seal this secret differently from the others, so the missing key
/// is an error instead.
async fn master_key_for_storing(c: &Config, store: &Store) -> anyhow::Result<MasterKey> {
    match &c.key {
        KeySource::File {
            path,
            explicit: false,
        } if !path.exists() && !store.has_credentials().await? => {
            let key = MasterKey::generate()?;
            write_private(path, key.to_base64().as_bytes())?;
            eprintln!(
                "created the master key file {}: back it up; without it stored passwords cannot be read",
                path.display()
            );
            Ok(key)
        }
        _ => c.master_key(),
    }
}

/// A store error, with where the key came from when the key was wrong.
fn key_hint(c: &Config, e: crate::store::Error) -> anyhow::Error {
    match e {
        crate::store::Error::WrongKey { .. } => anyhow::Error::from(e).context(format!(
            "the master key in use came from {}",
            c.key.describe()
        )),
        e => e.into(),
    }
}

/// Writes a new owner-only file (and its directory, owner-only); refuses to
/// replace an existing one.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
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
pub(crate) async fn stored_settings(c: &Config, name: &str) -> anyhow::Result<AccountSettings> {
    let (store, tenant) = open(c, OpenMode::Existing).await?;
    store.account_id(tenant, name).await?;
    let key = c.master_key()?;
    store
        .settings(tenant, name, &key)
        .await
        .map_err(|e| key_hint(c, e))
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
        AccountCommand::List | AccountCommand::Show { .. } => OpenMode::Existing,
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
            writeln!(
                out,
                "{:<16} {:<5} {:<28} {:<9} {:<14} {:<7} FOLDERS",
                "NAME", "PROTO", "SERVER", "SECURITY", "KEEP ON SERVER", "ENABLED"
            )?;
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
                writeln!(
                    out,
                    "{:<16} {:<5} {:<28} {:<9} {:<14} {:<7} {}",
                    safe(&c.name),
                    format!("{:?}", c.protocol).to_lowercase(),
                    safe(&server),
                    format!("{:?}", c.security).to_lowercase(),
                    c.keep_on_server,
                    c.enabled,
                    safe(&folders)
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

/// Where a secret comes from: never an argument (shell history, `ps`).
#[derive(Debug, Args)]
pub(crate) struct SecretSource {
    /// Read the secret from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "secret_stdin")]
    secret_env: Option<String>,
    /// Read the secret from the first line of standard input.
    #[arg(long)]
    secret_stdin: bool,
}

impl SecretSource {
    fn read(&self) -> anyhow::Result<Secret> {
        read_secret(self.secret_env.as_deref(), self.secret_stdin, "secret")
    }
}

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
        #[command(flatten)]
        secret: SecretSource,
    },
    /// Change a stored credential in place (a password change): the accounts
    /// that use it use the new secret from their next run. The secret comes
    /// from --secret-env, --secret-stdin, or a prompt on a terminal.
    Set {
        /// Credential name.
        name: String,
        /// A new user name (default: keep the current one).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        secret: SecretSource,
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
    c: &Config,
    cmd: CredentialCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        CredentialCommand::List => OpenMode::Existing,
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    match cmd {
        CredentialCommand::Add { name, user, secret } => {
            let secret = secret.read()?;
            let key = master_key_for_storing(c, &store).await?;
            store
                .add_credential(tenant, &name, &user, &secret, &key)
                .await
                .map_err(|e| match e {
                    crate::store::Error::AlreadyExists { .. } => anyhow::Error::from(e).context(
                        format!("to change its secret, use `intake credential set {name}`"),
                    ),
                    e => e.into(),
                })?;
            writeln!(out, "stored credential {name} (encrypted)")?;
        }
        CredentialCommand::Set { name, user, secret } => {
            let current = store
                .credentials(tenant)
                .await?
                .into_iter()
                .find(|i| i.name == name)
                .with_context(|| {
                    format!("no credential {name:?}: add it with `intake credential add {name}`")
                })?;
            let secret = secret.read()?;
            let key = c.master_key()?;
            let user = user.unwrap_or(current.username);
            store
                .update_credential(tenant, &name, &user, &secret, &key)
                .await?;
            writeln!(
                out,
                "changed credential {name} (encrypted); accounts using it take it from their next run"
            )?;
        }
        CredentialCommand::List => {
            writeln!(out, "{:<20} {:<30} CREATED", "NAME", "USER")?;
            for i in store.credentials(tenant).await? {
                writeln!(
                    out,
                    "{:<20} {:<30} {}",
                    safe(&i.name),
                    safe(&i.username),
                    i.created_at.format("%Y-%m-%d %H:%M")
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

// ----------------------------------------------------------- the master key

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Write a new random master key (owner-only, 0600) to FILE, default the
    /// configured key file (--key-file, else intake.key in the data
    /// directory). Never overwrites a file.
    Generate {
        /// Where to write it.
        file: Option<PathBuf>,
    },
    /// Re-encrypt every stored credential (all tenants) with the key in
    /// NEW_KEY_FILE (make it with `intake key generate NEW_KEY_FILE`), in
    /// one transaction; then use that file as the key.
    Rotate {
        /// The new key file.
        new_key_file: PathBuf,
    },
}

pub(crate) async fn key(
    c: &Config,
    cmd: KeyCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::Generate { file } => {
            let path = match (file, c.key.path()) {
                (Some(file), _) => crate::home::absolute(&file)?,
                (None, Some(path)) => path.to_path_buf(),
                (None, None) => bail!(
                    "the master key comes from ${}: name the file to write, \
                     `intake key generate FILE`",
                    crate::store::MASTER_KEY_ENV
                ),
            };
            if path.exists() {
                bail!(
                    "{} exists: a key is never overwritten (credentials sealed with it would be lost); \
                     to replace it, generate a new file and run `intake key rotate NEW_FILE`",
                    path.display()
                );
            }
            let key = MasterKey::generate()?;
            write_private(&path, key.to_base64().as_bytes())?;
            writeln!(
                out,
                "wrote a new master key to {} (mode 0600): back it up apart from the store",
                path.display()
            )?;
        }
        KeyCommand::Rotate { new_key_file } => {
            let new_path = crate::home::absolute(&new_key_file)?;
            let new = MasterKey::from_env_or_file(Some(&new_path)).with_context(|| {
                format!(
                    "make the new key first: `intake key generate {}`",
                    new_path.display()
                )
            })?;
            let old = c.master_key()?;
            let (store, _) = open(c, OpenMode::Existing).await?;
            eprintln!("store: {}", c.store.display());
            let count = store
                .rotate_master_key(&old, &new)
                .await
                .map_err(|e| key_hint(c, e))?;
            writeln!(
                out,
                "re-encrypted {count} credential(s) with {}",
                new_path.display()
            )?;
            match c.key.path() {
                Some(old_path) => writeln!(
                    out,
                    "now make it the key: mv {} {}  (keep a backup of both until you have checked `intake fetch`)",
                    new_path.display(),
                    old_path.display()
                )?,
                None => writeln!(
                    out,
                    "now set {} to the contents of {}",
                    crate::store::MASTER_KEY_ENV,
                    new_path.display()
                )?,
            }
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

// ----------------------------------------------------------------- plugins

/// `intake plugin add`.
#[derive(Debug, Args)]
pub(crate) struct PluginAdd {
    /// The component (.wasm).
    #[arg(required_unless_present = "bundled")]
    file: Option<PathBuf>,
    /// A plugin built into intake instead of a file (see `plugin list
    /// --bundled`), e.g. to add it again with another configuration.
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    bundled: Option<String>,
    /// matcher or unknown-sender (default for --bundled: its role).
    #[arg(long, required_unless_present = "bundled")]
    role: Option<String>,
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
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    let plugin = runtime
        .load_async(crate::plugin::Binding {
            name: binding.name.clone(),
            wasm: crate::plugin::WasmSource::Bytes(binding.wasm.clone().into()),
            config: binding.config.clone(),
            limits: binding.limits.clone(),
            on_error: binding.on_error,
        })
        .await?;
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
    c: &Config,
    cmd: PluginCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        PluginCommand::List { bundled: true } => return bundled_list(c, out),
        PluginCommand::List { bundled: false } => OpenMode::Existing,
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    match cmd {
        PluginCommand::Add(a) => {
            let (wasm, stem, default_role) = match (&a.file, &a.bundled) {
                (Some(file), _) => (
                    std::fs::read(file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                    file.file_stem()
                        .map_or("plugin".into(), |s| s.to_string_lossy().into_owned()),
                    None,
                ),
                (None, Some(wanted)) => {
                    let (chain, _) = bundled::default_chain(c.plugin_dir.as_deref())?;
                    let p = chain
                        .into_iter()
                        .find(|p| p.name == wanted.as_str())
                        .with_context(|| {
                            format!(
                                "no bundled plugin {wanted:?} (see `intake plugin list --bundled`)"
                            )
                        })?;
                    (p.wasm.into_owned(), p.name.to_owned(), Some(p.role))
                }
                (None, None) => bail!("give a FILE or --bundled NAME"),
            };
            let role = match (&a.role, default_role) {
                (Some(text), _) => role(text)?,
                (None, Some(r)) => r,
                (None, None) => bail!("give --role matcher or --role unknown-sender"),
            };
            let name = a.name.unwrap_or(stem);
            let limits = Limits {
                deadline: Duration::from_millis(a.deadline_ms),
                memory_bytes: a.memory_mb << 20,
                ..Limits::default()
            };
            let binding = NewBinding {
                name: name.clone(),
                role,
                wasm,
                config: read_config(&a.config)?,
                limits,
                on_error: a.on_error,
                enabled: true,
            };
            check_plugin(&binding, &c.tenant).await?;
            store.add_binding(tenant, &binding).await?;
            writeln!(
                out,
                "added {name} as {} at the end of the chain",
                role.as_str()
            )?;
        }
        PluginCommand::List { .. } => {
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
                    safe(&b.name),
                    b.role.as_str(),
                    b.enabled,
                    format!("{} ms", b.limits.deadline.as_millis()),
                    format!("{:?}", b.on_error).to_lowercase(),
                    safe(&b.config)
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

/// `intake plugin list --bundled`: what a fresh tenant's default chain is
/// made of, with checksums to compare against a trusted build.
fn bundled_list(c: &Config, out: &mut (dyn Write + Send)) -> anyhow::Result<ExitCode> {
    let (chain, origin) = bundled::default_chain(c.plugin_dir.as_deref())?;
    writeln!(out, "bundled plugins ({origin}):")?;
    writeln!(
        out,
        "{:<18} {:<15} {:>10}  SHA-256",
        "NAME", "ROLE", "BYTES"
    )?;
    for p in &chain {
        writeln!(
            out,
            "{:<18} {:<15} {:>10}  {}",
            p.name,
            p.role.as_str(),
            p.wasm.len(),
            p.sha256()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// On a tenant without plugins, installs the bundled reference chain.
async fn ensure_default_chain(
    c: &Config,
    store: &Store,
    tenant: TenantId,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    if store.has_bindings(tenant).await? {
        return Ok(());
    }
    let (plugins, origin) = bundled::default_chain(c.plugin_dir.as_deref())
        .context("this tenant has no plugins yet, and the default chain is not available")?;
    let chain: Vec<NewBinding> = plugins
        .into_iter()
        .map(|p| NewBinding {
            name: p.name.into(),
            role: p.role,
            wasm: p.wasm.into_owned(),
            config: "{}".into(),
            limits: Limits::default(),
            on_error: FailurePolicy::Quarantine,
            enabled: true,
        })
        .collect();
    if !store.add_bindings(tenant, &chain, true).await? {
        return Ok(()); // another worker installed it first
    }
    writeln!(out, "installed the default plugin chain ({origin})")?;
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
        "{:<16} fetched {:>5}  attached {:>5}  new leads {:>4}  quarantined {:>4}  discarded {:>4}  unlinked {:>4}  skipped {:>3}  duplicates {:>3}  server actions {} done, {} failed{}",
        safe(&s.account),
        s.fetched,
        s.attached,
        s.new_leads,
        s.quarantined,
        s.discarded,
        s.unlinked,
        s.skipped_too_large,
        s.duplicates,
        s.actions_done,
        s.actions_failed,
        if s.actions_failed > 0 {
            " (retried next run)"
        } else {
            ""
        }
    )?;
    if s.interrupted {
        writeln!(
            out,
            "{:<16} note: stopped early on request; the rest is fetched next run",
            safe(&s.account)
        )?;
    }
    for folder in &s.uid_validity_changes {
        writeln!(
            out,
            "{:<16} note: UIDVALIDITY of {} changed; it was re-listed (duplicates skipped)",
            safe(&s.account),
            safe(folder)
        )?;
    }
    Ok(())
}

pub(crate) async fn fetch(
    c: &Config,
    args: FetchArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(c, OpenMode::Create).await?;
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
            "tenant {:?} has no enabled accounts in the store {}: add one with `intake account add`",
            c.tenant,
            c.store.display()
        );
    }
    // Only now: a store without accounts needs no key.
    let key = c.master_key()?;
    ensure_default_chain(c, &store, tenant, out).await?;
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    let shutdown = stop_on_signal();
    let pipeline = Pipeline::new(
        store,
        runtime,
        Options {
            batch_messages: args.batch.max(1),
            ..Options::default()
        },
    )
    .with_shutdown(shutdown.clone());
    let bar = progress();
    let mut failed = false;
    for name in accounts {
        if shutdown.is_cancelled() {
            writeln!(out, "{:<16} not checked: stopping", safe(&name))?;
            continue;
        }
        match pipeline
            .run_account(&c.tenant, &name, &key, bar.as_ref())
            .await
        {
            Ok(summary) if args.json => writeln!(out, "{}", serde_json::to_string(&summary)?)?,
            Ok(summary) => print_summary(out, &summary)?,
            Err(e) => {
                failed = true;
                let key_note = match &e {
                    crate::pipeline::PipelineError::Store(crate::store::Error::WrongKey {
                        ..
                    }) => format!(" (the master key in use came from {})", c.key.describe()),
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "{:<16} FAILED: {}{key_note}{}",
                    safe(&name),
                    safe(&e.to_string()),
                    crate::fetch::hint_line(&e)
                )?;
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
    c: &Config,
    args: ImportArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(c, OpenMode::Create).await?;
    store.account_id(tenant, &args.account).await?;
    let key = c.master_key()?;
    ensure_default_chain(c, &store, tenant, out).await?;
    let set = match (args.maildir, args.mbox, args.eml) {
        (Some(p), _, _) => FileSet::Maildir(p),
        (_, Some(p), _) => FileSet::Mbox(p),
        (_, _, Some(p)) => FileSet::Eml(p),
        _ => bail!("say what to import: --maildir DIR, --mbox FILE or --eml PATH"),
    };
    let settings = store
        .settings(tenant, &args.account, &key)
        .await
        .map_err(|e| key_hint(c, e))?;
    let source = FileSource::new(set, settings.max_message_bytes)?;
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    let pipeline =
        Pipeline::new(store, runtime, Options::default()).with_shutdown(stop_on_signal());
    let summary = pipeline
        .import(&c.tenant, &args.account, &key, source, progress().as_ref())
        .await?;
    print_summary(out, &summary)?;
    Ok(ExitCode::SUCCESS)
}

/// A token cancelled by the first Ctrl-C or SIGTERM: the run then finishes
/// the commit in flight, carries out its server actions, logs out and
/// prints its summary. A second signal stops at once (exit 130); what was
/// committed stays committed, and the rest is fetched again next time.
fn stop_on_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            wait_for_stop_signal().await;
            signals += 1;
            if signals > 1 {
                eprintln!("intake: stopping now");
                std::process::exit(130);
            }
            eprintln!(
                "intake: stopping after the batch in flight is committed (press Ctrl-C again to stop at once)"
            );
            cancel.cancel();
        }
    });
    token
}

/// Ctrl-C, or SIGTERM where there is one.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
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
}

pub(crate) async fn message(
    c: &Config,
    cmd: MessageCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let (store, tenant) = open(c, OpenMode::Existing).await?;
    let MessageCommand::Show { id, raw } = cmd;
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

async fn quarantine_list(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_always_shows_failed_server_actions() {
        let mut summary = Summary {
            account: "sales\x1b[2J".into(),
            actions_done: 3,
            ..Summary::default()
        };
        let mut out = Vec::new();
        print_summary(&mut out, &summary).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("server actions 3 done, 0 failed"), "{text}");
        assert!(text.starts_with("sales^[[2J"), "{text}");
        summary.actions_failed = 2;
        let mut out = Vec::new();
        print_summary(&mut out, &summary).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("3 done, 2 failed (retried next run)"),
            "{text}"
        );
    }

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
