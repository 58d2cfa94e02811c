//! The `intake` command line: definitions and dispatch. Each command is a thin layer over
//! the library; errors carry what failed and what to do about it.
//!
//! [`config`] resolves flags and environment once; `commands` holds the
//! commands on the store; [`text`] keeps mail and plugin text from driving
//! the terminal.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::directory::MemoryDirectory;
use crate::fetch::{AccountSettings, Auth, Protocol, ProxySettings, Secret, Security, check};
use crate::offline::{self, OfflineRun};
use crate::plugin::{Binding, Chain, FailurePolicy, LoadedPlugin, PluginRuntime, RuntimeConfig};

/// Intake: e-mail ingestion for CRMs, with sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "intake", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// Tenant whose accounts, contacts and plugins the command works on;
    /// nothing one tenant does touches another tenant's rows.
    #[arg(long, global = true, default_value = "default", env = "INTAKE_TENANT")]
    pub(crate) tenant: String,
    /// Data directory holding the store (intake.db) and the master key
    /// (intake.key). Default: $XDG_DATA_HOME/intake, else
    /// ~/.local/share/intake.
    #[arg(long, global = true, env = "INTAKE_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// The store: a SQLite file (a plain path, or `sqlite://PATH`) or
    /// `postgres://user@host/db`. Default: intake.db in the data directory.
    #[arg(
        long,
        global = true,
        env = "INTAKE_DATABASE_URL",
        value_name = "PATH|URL"
    )]
    pub(crate) database_url: Option<String>,
    /// File holding the master key that encrypts stored passwords (base64 of
    /// 32 bytes; make one with `intake key generate`). Default:
    /// $INTAKE_MASTER_KEY, else intake.key in the data directory (created
    /// when the first credential is stored).
    #[arg(long, global = true, env = "INTAKE_KEY_FILE", value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Log lines as text (default) or as JSON objects, one per line.
    #[arg(
        long,
        global = true,
        env = "INTAKE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub(crate) log_format: LogFormat,
    /// A directory of .wasm files to use instead of the plugins built into
    /// intake when a tenant's default chain is installed.
    #[arg(long, global = true, env = "INTAKE_PLUGIN_DIR", value_name = "DIR")]
    pub(crate) plugin_dir: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, spans with their fields (tenant, account).
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plugins: offline tests and the tenant's chain.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Mail accounts: add, list, show, edit, remove, test settings.
    #[command(subcommand)]
    Account(commands::AccountCommand),
    /// Credentials (stored encrypted, referenced by accounts).
    #[command(subcommand)]
    Credential(commands::CredentialCommand),
    /// The master key that encrypts stored credentials: generate, rotate.
    #[command(subcommand)]
    Key(commands::KeyCommand),
    /// Contacts and leads.
    #[command(subcommand)]
    Contact(commands::ContactCommand),
    /// One pass over the tenant's enabled accounts (or one account):
    /// fetch, decide, commit, acknowledge; prints a summary per account.
    Fetch(commands::FetchArgs),
    /// Run the engine by itself until stopped: check every tenant's enabled
    /// accounts at their interval (and through IMAP IDLE), back off and
    /// disable failing ones, and serve the HTTP API (/v1), /metrics,
    /// /healthz and /readyz.
    Serve(commands::ServeArgs),
    /// Backfill: ingest a Maildir, an mbox or .eml files into an account
    /// through the same pipeline.
    Import(commands::ImportArgs),
    /// The "view inbox" of an account: what was ingested, newest first.
    Inbox(commands::InboxArgs),
    /// One stored message.
    #[command(subcommand)]
    Message(commands::MessageCommand),
    /// Quarantined messages: list, release, drop.
    #[command(subcommand)]
    Quarantine(commands::QuarantineCommand),
    /// Run an account's stored mail through a plugin chain (the stored one
    /// or components given) and show what would change (--dry-run) or
    /// record it (--apply). Never contacts the mail server.
    Replay(commands::ReplayArgs),
    /// Tenants of a hosted engine: add, list.
    #[command(subcommand)]
    Tenant(commands::TenantCommand),
    /// OAuth2 providers (the operator's clients for Google, Microsoft, …)
    /// that credentials sign in with: add, list, remove.
    #[command(subcommand)]
    Oauth(commands::OAuthCommand),
    /// HTTP API tokens of the tenant: create, list, revoke.
    #[command(subcommand)]
    Token(commands::TokenCommand),
    /// Webhooks: endpoints (add, list, edit, remove, rotate-secret) and
    /// deliveries (list, redeliver).
    #[command(subcommand)]
    Webhook(commands::WebhookCommand),
}

/// `intake account test`: a stored account by name, or one given by flags.
#[derive(Debug, Args)]
pub(crate) struct AccountTest {
    /// A stored account; omit it to give the account with the flags below.
    #[arg(value_name = "NAME")]
    account_name: Option<String>,
    #[command(flatten)]
    account: AccountArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// An account given on the command line, for `account test` without a
/// stored account. The password never goes in an
/// argument (shell history, `ps`): it comes from an environment variable or
/// standard input.
#[derive(Debug, Args)]
pub(crate) struct AccountArgs {
    /// Account name shown in logs.
    #[arg(long, default_value = "account")]
    name: String,
    /// imap or pop3.
    #[arg(long, value_enum)]
    protocol: Option<Protocol>,
    /// Server host name.
    #[arg(long)]
    host: Option<String>,
    /// Port (default: 143/993 for IMAP, 110/995 for POP3, by security).
    #[arg(long)]
    port: Option<u16>,
    /// none, starttls or tls.
    #[arg(long, value_enum, default_value = "tls")]
    security: Security,
    /// Login name.
    #[arg(long)]
    user: Option<String>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "password_stdin")]
    password_env: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// login (IMAP LOGIN / POP3 USER+PASS) or plain (SASL PLAIN).
    #[arg(long, value_enum, default_value = "login")]
    auth: Auth,
    /// Extra CA certificate(s), PEM, to trust for this account.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Do not verify the server certificate (an explicit, warned choice).
    #[arg(long)]
    skip_cert_verify: bool,
    /// Accept exactly this server certificate (sha256:… as the tls step
    /// prints it), and no other.
    #[arg(long, value_name = "sha256:…", conflicts_with = "skip_cert_verify")]
    pin_certificate: Option<crate::domain::CertificatePin>,
    /// Folder to check (repeatable; default INBOX).
    #[arg(long = "folder")]
    folders: Vec<String>,
    /// SOCKS5 proxy as HOST:PORT.
    #[arg(long)]
    proxy: Option<String>,
    /// SOCKS5 proxy user name.
    #[arg(long, requires = "proxy")]
    proxy_user: Option<String>,
    /// Environment variable holding the SOCKS5 proxy password.
    #[arg(long, value_name = "VAR", requires = "proxy_user")]
    proxy_password_env: Option<String>,
    /// Connect timeout, seconds.
    #[arg(long, default_value_t = 15)]
    connect_timeout: u64,
}

fn secret_from_env(var: &str) -> anyhow::Result<Secret> {
    std::env::var(var).map(Secret::new).with_context(|| {
        format!("environment variable {var} is not set (it should hold the secret)")
    })
}

impl AccountArgs {
    fn settings(&self) -> anyhow::Result<AccountSettings> {
        let password = commands::read_secret(
            self.password_env.as_deref(),
            self.password_stdin,
            "password",
        )?;
        let (Some(protocol), Some(host), Some(user)) = (self.protocol, &self.host, &self.user)
        else {
            bail!("give a stored account name, or --protocol, --host and --user");
        };
        let mut a = AccountSettings::new(&self.name, protocol, host, self.security, user, password);
        a.port = self.port;
        a.auth = self.auth;
        a.ca_file = self.ca_file.clone();
        a.verify_certificate = !self.skip_cert_verify;
        a.pinned_certificate = self.pin_certificate;
        if !self.folders.is_empty() {
            a.folders = self.folders.clone();
        }
        a.timeouts.connect = Duration::from_secs(self.connect_timeout);
        if let Some(proxy) = &self.proxy {
            let (host, port) = proxy
                .rsplit_once(':')
                .context("--proxy must be HOST:PORT")?;
            a.proxy = Some(ProxySettings {
                host: host.to_string(),
                port: port.parse().context("--proxy port must be a number")?,
                username: self.proxy_user.clone(),
                password: self
                    .proxy_password_env
                    .as_deref()
                    .map(secret_from_env)
                    .transpose()?,
            });
        }
        Ok(a)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// Run a plugin chain offline on .eml files and print one JSON object per
    /// message: parties, disposition, server action, who decided, timings.
    ///
    /// Components are used in the order given, for every role they export:
    /// matchers run in that order; at most one may export the unknown-sender
    /// role. Exits non-zero if a plugin fails to load or to initialise.
    Test(PluginTest),
    /// Check a component without adding it: it loads, exports a role, and
    /// accepts the configuration (its declared settings, then its `init`).
    /// Prints the roles and the settings it declares.
    Check(commands::PluginCheck),
    /// Start a new plugin project: Cargo.toml on the SDK, a matcher
    /// skeleton with a unit test, a sample message, build.sh and a README.
    New(commands::PluginNew),
    /// Add a component to the tenant's chain (appended at the end).
    Add(commands::PluginAdd),
    /// The tenant's chain, in order; with --bundled, the plugins built
    /// into intake (name, role, size, SHA-256).
    List {
        /// Show the bundled plugins instead of the tenant's chain.
        #[arg(long)]
        bundled: bool,
    },
    /// Change a plugin of the chain: its configuration, limits, failure
    /// policy, outbound HTTP grant and secrets. Secrets are read from
    /// environment variables or standard input, never from arguments.
    Configure(commands::PluginConfigure),
    /// Remove a plugin from the chain.
    Remove {
        /// Its name.
        name: String,
    },
    /// Set the chain order: names, first to last.
    Order {
        /// Every plugin's name, in the new order.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// A plugin's versions: `version add` puts a new one beside the
    /// running one (checked first; it decides nothing until a canary or a
    /// promote).
    #[command(subcommand)]
    Version(commands::PluginVersionCommand),
    /// A plugin's versions: number, state (active, candidate, previous,
    /// rolled-back, new), component SHA-256, configuration version, when
    /// added, and the canary's share and accounts.
    Versions {
        /// The plugin's name in the chain.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Roll a version out to part of the mail (a canary), from the next
    /// run on, without a restart: a share of the messages (the same message
    /// always goes the same way) and/or every message of chosen accounts.
    Canary(commands::PluginCanary),
    /// Make a version active for all mail (by default the canary's
    /// candidate), from the next run on, without a restart.
    Promote {
        /// The plugin's name in the chain.
        name: String,
        /// The version to make active (default: the canary's candidate).
        #[arg(long)]
        version: Option<u32>,
    },
    /// Stop the plugin's canary; if none runs, go back to the version that
    /// was active before the current one.
    Rollback {
        /// The plugin's name in the chain.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PluginTest {
    /// Plugin components (.wasm), in chain order.
    #[arg(required = true)]
    plugins: Vec<PathBuf>,
    /// Mail to test on: .eml or mbox files, or directories of mail (a
    /// Maildir, a folder of .eml files); in a directory, files that are not
    /// mail are skipped and listed. Several may follow one flag (`-m *.eml`), and the
    /// flag may be repeated.
    #[arg(long = "message", short = 'm', required = true, num_args = 1..)]
    messages: Vec<PathBuf>,
    /// Contacts and leads: CSV with columns email,name,company,kind.
    #[arg(long)]
    contacts: Option<PathBuf>,
    /// Plugin configuration, NAME=JSON or NAME=@file.json (NAME is the file
    /// stem, e.g. exact_match). Repeatable.
    #[arg(long = "config", value_name = "NAME=JSON")]
    configs: Vec<String>,
    /// Tenant the messages belong to.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Deadline per plugin call, in milliseconds.
    #[arg(long, default_value_t = 100)]
    deadline_ms: u64,
    /// Memory cap per plugin instance, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mb: usize,
    /// What a plugin failure does: quarantine (default) or skip.
    #[arg(long, default_value = "quarantine")]
    on_error: FailurePolicy,
    /// Cap on each body passed to plugins, in KiB.
    #[arg(long, default_value_t = 64)]
    max_body_kb: usize,
    /// Let the plugins send HTTP requests to this scheme://host[:port]
    /// (repeatable), e.g. http://127.0.0.1:8080; nowhere by default.
    #[arg(long, value_name = "URL")]
    allow_outbound: Vec<String>,
    /// Give the plugins the secret NAME, read from the environment
    /// variable VAR (repeatable), as a binding's secret would be.
    #[arg(long, value_name = "NAME=VAR")]
    secret_env: Vec<String>,
    /// Pretty-print the JSON.
    #[arg(long)]
    pretty: bool,
}

/// The `intake` process: the allocator settings, a tokio runtime, then
/// [`main`]. Both binaries (`intake`, and the tests' `intake-under-test`)
/// are this call.
pub fn run_process() -> ExitCode {
    crate::allocator::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime")
        .block_on(main())
}

/// The whole `intake` program: logging to stderr, parse arguments, run, and
/// turn errors into a message and exit status 1. The binary is this call.
pub async fn main() -> ExitCode {
    let args = parse_args();
    // Colour codes only where a terminal will interpret them; in a log file
    // or a pipe they are noise.
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let filter = tracing_subscriber::EnvFilter::try_from_env("INTAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,intake=info"));
    match args.global.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(stderr_is_terminal)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
    let mut stdout = std::io::stdout();
    let result = match run(args, &mut stdout).await {
        Ok(code) => stdout.flush().map(|()| code).map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(code) => code,
        Err(e) if text::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", text::safe(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The global options that only commands on the store use (the default
/// chain's plugin directory included): hidden from the help of the
/// commands that never open it.
const STORE_OPTIONS: [&str; 4] = ["database_url", "key_file", "home", "plugin_dir"];

/// The commands that work without the store (and their help says so).
const OFFLINE_PLUGIN_COMMANDS: [&str; 3] = ["test", "check", "new"];

/// The command-line definition, with the store's options hidden from the
/// commands that do not use them.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    // Global options reach the subcommands when the command is built; only
    // then can one subcommand's copy be changed.
    cmd.build();
    cmd.mut_subcommand("plugin", |plugin| {
        OFFLINE_PLUGIN_COMMANDS.iter().fold(plugin, |plugin, name| {
            // In place (`mut_args`, not `mut_arg`, which moves the option
            // to the end), so the lookup built with the command still
            // points at the right options.
            plugin.mut_subcommand(name, |sub| {
                sub.mut_args(|arg| {
                    let store_option = STORE_OPTIONS.contains(&arg.get_id().as_str());
                    if store_option { arg.hide(true) } else { arg }
                })
            })
        })
    })
}

/// Parses the process's arguments (exits with the usage on an error, as
/// clap does).
fn parse_args() -> Cli {
    use clap::FromArgMatches;
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Runs a parsed command line, writing results to `out` (stdout in the
/// binary; a buffer in tests). Logs go to `tracing`.
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> anyhow::Result<ExitCode> {
    // The plugin author's commands need no store.
    let command = match cli.command {
        Command::Plugin(PluginCommand::Test(args)) => return plugin_test(args, out).await,
        Command::Plugin(PluginCommand::Check(args)) => {
            return commands::plugin_check(&cli.global.tenant, args, out).await;
        }
        Command::Plugin(PluginCommand::New(args)) => return commands::plugin_new(args, out),
        other => other,
    };
    let c = Config::from_global(&cli.global)?;
    match command {
        Command::Plugin(other) => commands::plugin(&c, other, out).await,
        Command::Account(commands::AccountCommand::Test(args)) => account_test(&c, args, out).await,
        Command::Account(cmd) => commands::account(&c, cmd, out).await,
        Command::Credential(cmd) => commands::credential(&c, cmd, out).await,
        Command::Key(cmd) => commands::key(&c, cmd, out).await,
        Command::Contact(cmd) => commands::contact(&c, cmd, out).await,
        Command::Fetch(args) => commands::fetch(&c, args, out).await,
        Command::Import(args) => commands::import(&c, args, out).await,
        Command::Serve(args) => commands::serve(&c, args, out).await,
        Command::Inbox(args) => commands::inbox(&c, args, out).await,
        Command::Message(cmd) => commands::message(&c, cmd, out).await,
        Command::Quarantine(cmd) => commands::quarantine(&c, cmd, out).await,
        Command::Replay(args) => commands::replay(&c, args, out).await,
        Command::Tenant(cmd) => commands::tenant(&c, cmd, out).await,
        Command::Oauth(cmd) => commands::oauth(&c, cmd, out).await,
        Command::Token(cmd) => commands::token(&c, cmd, out).await,
        Command::Webhook(cmd) => commands::webhook(&c, cmd, out).await,
    }
}

async fn account_test(
    c: &Config,
    args: AccountTest,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let settings = match &args.account_name {
        Some(name) => commands::stored_settings(c, name).await?,
        None => args.account.settings()?,
    };
    let report = check::test_account(&settings).await;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        for step in &report.steps {
            let mark = match (step.ok, step.hint.is_some()) {
                (false, _) => "FAIL",
                (true, true) => "warn",
                (true, false) => "ok",
            };
            writeln!(
                out,
                "{mark:<4} {:<12} {}",
                step.name,
                text::safe(&step.detail)
            )?;
            if let Some(hint) = &step.hint {
                writeln!(out, "     {:<12} hint: {}", "", text::safe(hint))?;
            }
        }
        writeln!(
            out,
            "{}",
            if report.ok() {
                "settings OK"
            } else {
                "settings NOT OK"
            }
        )?;
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

mod commands;
mod config;
mod text;

use config::Config;

fn parse_configs(specs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut configs = HashMap::new();
    for spec in specs {
        let Some((name, value)) = spec.split_once('=') else {
            bail!("--config {spec:?}: expected NAME=JSON or NAME=@file.json");
        };
        let json = commands::read_config(value).with_context(|| format!("--config {name}"))?;
        configs.insert(name.to_string(), json);
    }
    Ok(configs)
}

async fn plugin_test(args: PluginTest, out: &mut (dyn Write + Send)) -> anyhow::Result<ExitCode> {
    let mut configs = parse_configs(&args.configs)?;
    let directory = Arc::new(MemoryDirectory::new());
    if let Some(csv) = &args.contacts {
        let n = directory.load_csv(&args.tenant, csv)?;
        tracing::info!(contacts = n, file = %csv.display(), "directory loaded");
    }

    let allowed = crate::plugin::parse_allow_list(&args.allow_outbound)?;
    let mut secrets = Vec::new();
    for spec in &args.secret_env {
        let (name, var) = spec.split_once('=').with_context(|| {
            format!("--secret-env {spec:?}: give NAME=VAR (the value is read from the environment variable VAR)")
        })?;
        crate::store::plugin_secrets::check_secret_name(name)?;
        secrets.push((
            name.to_owned(),
            commands::read_secret(Some(var), false, name)?,
        ));
    }

    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    let mut matchers: Vec<Arc<LoadedPlugin>> = Vec::new();
    let mut policy: Option<Arc<LoadedPlugin>> = None;
    for path in &args.plugins {
        not_wasm_hint(path)?;
        let mut binding = Binding::from_file(path);
        binding.limits.deadline = Duration::from_millis(args.deadline_ms);
        binding.limits.memory_bytes = args.memory_mb << 20;
        binding.limits.allowed_outbound_hosts = allowed.clone();
        binding.secrets = secrets.clone();
        binding.on_error = args.on_error;
        if let Some(config) = configs.remove(&binding.name) {
            binding.config = config;
        }
        let plugin = Arc::new(runtime.load_async(binding).await?);
        plugin.check_init(&args.tenant, directory.clone()).await?;
        let roles = plugin.roles();
        if roles.matcher {
            matchers.push(plugin.clone());
        }
        if roles.unknown_sender {
            if let Some(existing) = &policy {
                bail!(
                    "both {} and {} export the unknown-sender role; pass only one",
                    existing.name(),
                    plugin.name()
                );
            }
            policy = Some(plugin);
        }
    }
    if let Some(name) = configs.keys().next() {
        bail!("--config {name}: no plugin named {name:?} (names are file stems)");
    }

    let run = OfflineRun {
        chain: Chain::new(matchers, policy)?,
        directory,
        tenant: args.tenant.clone(),
        max_body_bytes: args.max_body_kb << 10,
    };
    let mut files = Vec::new();
    for path in &args.messages {
        let found = offline::message_files(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (skipped, why) in &found.skipped {
            tracing::warn!(file = %skipped.display(), "skipped: {why}");
        }
        files.extend(found.messages);
    }
    for file in files {
        let reports = run
            .run_path(&file)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        for report in reports {
            let line = if args.pretty {
                serde_json::to_string_pretty(&report)?
            } else {
                serde_json::to_string(&report)?
            };
            writeln!(out, "{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A "plugin" that is not WebAssembly is usually a message the shell
/// expanded after `--message a.eml` (older versions took one file per
/// flag): say so before the compiler's "bad magic number".
fn not_wasm_hint(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut head = [0u8; 64];
    // A file that cannot be read is the loader's to report.
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) else {
        return Ok(());
    };
    let head = &head[..n];
    if head.starts_with(b"\0asm") {
        return Ok(());
    }
    let looks_like_mail = offline::looks_like_mail(head)
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("eml"));
    if looks_like_mail {
        bail!(
            "{} is given as a plugin but is a mail message, not a WebAssembly component; \
             put the messages after --message (it takes several: `--message a.eml b.eml`) \
             and the .wasm files before it",
            path.display()
        );
    }
    bail!(
        "{} is not a WebAssembly component (it does not start with \\0asm); \
         build a plugin with `cargo build --target wasm32-wasip2 --release` and pass \
         target/wasm32-wasip2/release/NAME.wasm",
        path.display()
    );
}
