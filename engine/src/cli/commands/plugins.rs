//! `intake plugin` on the store: add (checked before it is stored), list, configure (outbound HTTP grant and secrets included), order, remove, and the bundled default chain;
//! a plugin's versions, canary, promote and rollback (through the service layer).

use super::*;
use crate::service::plugins::{CanaryRequest, PluginSettings, PluginVersions};
use crate::service::{Scope, Service, ServiceError};

/// `intake plugin version …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PluginVersionCommand {
    /// Add a version beside the running one: another component, another
    /// configuration, or both. What is not given is the active version's.
    /// It is checked as `plugin add` checks (it loads, has the role,
    /// accepts the configuration) and decides nothing until `plugin canary`
    /// or `plugin promote`.
    Add(PluginVersionAdd),
}

/// `intake plugin version add`.
#[derive(Debug, Args)]
pub(crate) struct PluginVersionAdd {
    /// The plugin's name in the chain.
    name: String,
    /// The component (.wasm); default: the active version's.
    file: Option<PathBuf>,
    /// Configuration: JSON, or @file.json; default: the active version's.
    #[arg(long)]
    config: Option<String>,
    /// Deadline per message, milliseconds; default: the active version's.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory cap, MiB; default: the active version's.
    #[arg(long)]
    memory_mb: Option<usize>,
    /// Print the new version as JSON.
    #[arg(long)]
    json: bool,
}

/// `intake plugin canary`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).multiple(true).args(["share", "accounts"])))]
pub(crate) struct PluginCanary {
    /// The plugin's name in the chain.
    name: String,
    /// The version to roll out.
    #[arg(long)]
    version: u32,
    /// Share of messages, per cent (e.g. 10 or 2.5).
    #[arg(long, value_name = "PERCENT")]
    share: Option<f64>,
    /// Accounts whose every message gets the version, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    accounts: Vec<String>,
}

/// A service error as the command line reports it: a refused field is its
/// reason.
fn service_error(error: ServiceError) -> anyhow::Error {
    match error {
        ServiceError::Invalid { reason, .. } => anyhow::anyhow!(reason),
        other => other.into(),
    }
}

/// The versions, one line each, then the canary.
fn print_versions(out: &mut (dyn Write + Send), p: &PluginVersions) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:<8} {:<12} {:<12} {:<12} {:<20} CONFIG",
        "VERSION", "STATE", "SHA-256", "CONFIG VER", "ADDED"
    )?;
    for v in &p.versions {
        writeln!(
            out,
            "{:<8} {:<12} {:<12} {:<12} {:<20} {}",
            v.version,
            v.state,
            &v.sha256[..12.min(v.sha256.len())],
            v.config_version,
            v.created_at.format("%Y-%m-%d %H:%M:%S"),
            safe(&v.config.to_string())
        )?;
    }
    match &p.canary {
        None => writeln!(out, "active: version {}; no canary", p.active)?,
        Some(c) => writeln!(
            out,
            "active: version {}; canary: version {} for {} % of messages{}",
            p.active,
            c.version,
            c.share_percent,
            if c.accounts.is_empty() {
                String::new()
            } else {
                format!(
                    " and every message of {}",
                    c.accounts
                        .iter()
                        .map(|a| safe(a))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )?,
    }
    Ok(())
}

/// The versions commands, through the service layer.
async fn plugin_versions(
    store: Store,
    scope: &Scope,
    cmd: PluginCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let service = Service::admin(store);
    match cmd {
        PluginCommand::Version(PluginVersionCommand::Add(a)) => {
            let wasm = a
                .file
                .as_ref()
                .map(|f| std::fs::read(f).with_context(|| format!("cannot read {}", f.display())))
                .transpose()?;
            let config = a.config.as_deref().map(read_config).transpose()?;
            let settings = PluginSettings {
                deadline_ms: a.deadline_ms,
                memory_mb: a.memory_mb,
                ..PluginSettings::default()
            };
            let added = service
                .add_plugin_version(scope, &a.name, wasm, config.as_deref(), &settings)
                .await
                .map_err(service_error)?;
            if a.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&added)?)?;
            } else {
                writeln!(
                    out,
                    "added {} version {} (component {}, configuration version {}); it decides \
                     nothing yet: `intake plugin canary {} --version {} --share 10` or \
                     `intake plugin promote {} --version {}`",
                    a.name,
                    added.version,
                    &added.sha256[..12],
                    added.config_version,
                    a.name,
                    added.version,
                    a.name,
                    added.version
                )?;
            }
        }
        PluginCommand::Versions { name, json } => {
            let versions = service
                .plugin_versions(scope, &name)
                .await
                .map_err(service_error)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&versions)?)?;
            } else {
                print_versions(out, &versions)?;
            }
        }
        PluginCommand::Canary(a) => {
            let request = CanaryRequest {
                version: a.version,
                share_percent: a.share,
                accounts: a.accounts,
            };
            let versions = service
                .start_canary(scope, &a.name, &request)
                .await
                .map_err(service_error)?;
            writeln!(out, "canary started; from the next run on:")?;
            print_versions(out, &versions)?;
        }
        PluginCommand::Promote { name, version } => {
            let versions = service
                .promote_plugin(scope, &name, version)
                .await
                .map_err(service_error)?;
            writeln!(
                out,
                "{name}: version {} is active for all mail from the next run on",
                versions.active
            )?;
        }
        PluginCommand::Rollback { name } => {
            let done = service
                .rollback_plugin(scope, &name)
                .await
                .map_err(service_error)?;
            if done.undid == "canary" {
                writeln!(
                    out,
                    "{name}: canary of version {} stopped; version {} decides all mail",
                    done.from, done.to
                )?;
            } else {
                writeln!(
                    out,
                    "{name}: rolled back from version {} to version {}",
                    done.from, done.to
                )?;
            }
        }
        _ => unreachable!("only the versions commands come here"),
    }
    Ok(())
}

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
    /// Let the plugin send HTTP requests to this scheme://host[:port]
    /// (repeatable), e.g. https://crm.example.com; nowhere by default.
    #[arg(long, value_name = "URL")]
    allow_outbound: Vec<String>,
}

/// `intake plugin configure`.
#[derive(Debug, Args)]
pub(crate) struct PluginConfigure {
    /// The plugin's name in the chain.
    name: String,
    /// New configuration: JSON, or @file.json (checked by its `init`).
    #[arg(long)]
    config: Option<String>,
    /// Deadline per message, milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory cap, MiB.
    #[arg(long)]
    memory_mb: Option<usize>,
    /// quarantine or skip.
    #[arg(long)]
    on_error: Option<String>,
    /// Allow HTTP requests to this scheme://host[:port] (repeatable; the
    /// list given replaces the current one), e.g. https://crm.example.com,
    /// http://127.0.0.1:8080, https://*.example.com:443.
    #[arg(long, value_name = "URL", conflicts_with = "no_outbound")]
    allow_outbound: Vec<String>,
    /// Revoke the outbound HTTP grant.
    #[arg(long)]
    no_outbound: bool,
    /// Time one HTTP request may take, milliseconds (default 5000; never
    /// past what is left of the deadline).
    #[arg(long)]
    http_timeout_ms: Option<u64>,
    /// Cap on one HTTP request's body, KiB (default 64).
    #[arg(long)]
    http_request_kb: Option<usize>,
    /// Cap on one HTTP response's body, KiB (default 1024).
    #[arg(long)]
    http_response_kb: Option<usize>,
    /// Set the secret NAME to the value of the environment variable VAR
    /// (repeatable): stored encrypted, the plugin's environment variable
    /// NAME, never shown back.
    #[arg(long, value_name = "NAME=VAR")]
    secret_env: Vec<String>,
    /// Set the secret NAME to the first line of standard input.
    #[arg(long, value_name = "NAME")]
    secret_stdin: Option<String>,
    /// Remove the secret NAME (repeatable).
    #[arg(long, value_name = "NAME")]
    remove_secret: Vec<String>,
    /// Switch the plugin on.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Switch the plugin off.
    #[arg(long)]
    disable: bool,
}

/// `intake plugin configure`: through the service, as the API does.
async fn plugin_configure(
    c: &Config,
    store: Store,
    tenant: TenantId,
    a: PluginConfigure,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut secrets = std::collections::BTreeMap::new();
    for spec in &a.secret_env {
        let (name, var) = spec
            .split_once('=')
            .with_context(|| format!("--secret-env {spec:?}: give NAME=VAR (the value is read from the environment variable VAR)"))?;
        secrets.insert(name.to_owned(), read_secret(Some(var), false, name)?);
    }
    if let Some(name) = &a.secret_stdin {
        secrets.insert(name.clone(), read_secret(None, true, name)?);
    }
    let outbound = crate::service::plugins::OutboundSettings {
        allowed_outbound_hosts: if a.no_outbound {
            Some(Vec::new())
        } else {
            (!a.allow_outbound.is_empty()).then(|| a.allow_outbound.clone())
        },
        http_timeout_ms: a.http_timeout_ms,
        http_request_kb: a.http_request_kb,
        http_response_kb: a.http_response_kb,
        set_secrets: (!secrets.is_empty()).then_some(secrets),
        remove_secrets: (!a.remove_secret.is_empty()).then(|| a.remove_secret.clone()),
    };
    let settings = crate::service::plugins::PluginSettings {
        role: None,
        deadline_ms: a.deadline_ms,
        memory_mb: a.memory_mb,
        on_error: a.on_error.clone(),
    };
    let config = a.config.as_deref().map(read_config).transpose()?;
    let mut service = crate::service::Service::admin(store.clone());
    if outbound.set_secrets.is_some() {
        service = service.with_master_key(master_key_for_storing(c, &store).await?);
    }
    let enabled = match (a.enable, a.disable) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let view = service
        .configure_plugin(
            &crate::service::Scope::local(tenant, &c.tenant),
            &a.name,
            config.as_deref(),
            &settings,
            &outbound,
            enabled,
        )
        .await
        .map_err(|e| match e {
            crate::service::ServiceError::Invalid { reason, .. } => anyhow::anyhow!(reason),
            other => other.into(),
        })?;
    writeln!(
        out,
        "configured {} (version {}); it applies from the next check",
        view.name, view.config_version
    )?;
    if !view.allowed_outbound_hosts.is_empty() {
        writeln!(
            out,
            "outbound HTTP: {} (each request {} ms at most, within the {} ms deadline)",
            view.allowed_outbound_hosts.join(", "),
            view.http_timeout_ms,
            view.deadline_ms
        )?;
    }
    if !view.secrets.is_empty() {
        writeln!(out, "secrets: {}", view.secrets.join(", "))?;
    }
    Ok(())
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
    crate::service::plugins::check_plugin(binding, tenant)
        .await
        .map_err(|e| match e {
            crate::service::ServiceError::Invalid { reason, .. } => anyhow::anyhow!(reason),
            other => other.into(),
        })
}

pub(crate) async fn plugin(
    c: &Config,
    cmd: PluginCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        PluginCommand::List { bundled: true } => return bundled_list(c, out),
        PluginCommand::List { bundled: false } | PluginCommand::Versions { .. } => {
            OpenMode::Existing
        }
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    match cmd {
        cmd @ (PluginCommand::Version(_)
        | PluginCommand::Versions { .. }
        | PluginCommand::Canary(_)
        | PluginCommand::Promote { .. }
        | PluginCommand::Rollback { .. }) => {
            plugin_versions(store, &Scope::local(tenant, &c.tenant), cmd, out).await?;
        }
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
                allowed_outbound_hosts: crate::plugin::parse_allow_list(&a.allow_outbound)?,
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
        PluginCommand::Configure(a) => plugin_configure(c, store, tenant, a, out).await?,
        PluginCommand::List { .. } => {
            writeln!(
                out,
                "{:<4} {:<20} {:<15} {:<8} {:<10} {:<10} {:<12} {:<12} {:<4} {:<8} CONFIG",
                "POS",
                "NAME",
                "ROLE",
                "ENABLED",
                "DEADLINE",
                "ON ERROR",
                "SHA-256",
                "VERSION",
                "V",
                "CONTRACT"
            )?;
            let secret_names = store.plugin_secret_names(tenant).await?;
            for b in store.bindings(tenant).await? {
                let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b.wasm[..]));
                let version =
                    crate::plugin::config_version(&sha256, &b.config, &b.limits, b.on_error);
                let number = match &b.canary {
                    Some(c) => format!("{}+{}", b.version, c.version),
                    None => b.version.to_string(),
                };
                let contract = crate::plugin::ContractVersion::of_component(&b.wasm)
                    .map_or("?", |v| v.as_str());
                writeln!(
                    out,
                    "{:<4} {:<20} {:<15} {:<8} {:<10} {:<10} {:<12} {:<12} {:<4} {:<8} {}",
                    b.position,
                    safe(&b.name),
                    b.role.as_str(),
                    b.enabled,
                    format!("{} ms", b.limits.deadline.as_millis()),
                    format!("{:?}", b.on_error).to_lowercase(),
                    // The first 12 digits, as `message explain` shows them.
                    &sha256[..12],
                    version,
                    number,
                    contract,
                    safe(&b.config)
                )?;
                // The grant and the secrets' names (never their values).
                if !b.limits.allowed_outbound_hosts.is_empty() {
                    let hosts: Vec<String> = b
                        .limits
                        .allowed_outbound_hosts
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    writeln!(
                        out,
                        "     outbound HTTP: {} (request ≤ {} KiB, response ≤ {} KiB, {} ms each)",
                        hosts.join(", "),
                        b.limits.http_request_bytes >> 10,
                        b.limits.http_response_bytes >> 10,
                        b.limits.http_timeout.as_millis()
                    )?;
                }
                if let Some(names) = secret_names.get(&b.name) {
                    writeln!(out, "     secrets: {}", safe(&names.join(", ")))?;
                }
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
        PluginCommand::Test(_) | PluginCommand::Check(_) | PluginCommand::New(_) => {
            unreachable!("dispatched in cli::run")
        }
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
pub(super) async fn ensure_default_chain(
    c: &Config,
    store: &Store,
    tenant: TenantId,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let service =
        crate::service::Service::admin(store.clone()).with_plugin_dir(c.plugin_dir.clone());
    if let Some(origin) = service.ensure_default_chain(tenant).await? {
        writeln!(out, "installed the default plugin chain ({origin})")?;
    }
    Ok(())
}

/// `intake plugin check`.
#[derive(Debug, Args)]
pub(crate) struct PluginCheck {
    /// The component (.wasm).
    file: PathBuf,
    /// Configuration: JSON, or @file.json.
    #[arg(long, default_value = "{}")]
    config: String,
}

/// Checks a component as `plugin add` would, without a store: loads it,
/// checks the configuration against its schema, runs `init`.
pub(crate) async fn plugin_check(
    tenant: &str,
    args: PluginCheck,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let name = args
        .file
        .file_stem()
        .map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
    let config = read_config(&args.config)?;
    let check =
        crate::service::plugins::check_component(&name, &wasm, &config, &Limits::default(), tenant)
            .await
            .map_err(|e| match e {
                crate::service::ServiceError::Invalid { reason, .. } => anyhow::anyhow!(reason),
                other => other.into(),
            })?;
    let roles: Vec<&str> = [
        (check.roles.matcher, "matcher"),
        (check.roles.unknown_sender, "unknown-sender"),
    ]
    .into_iter()
    .filter_map(|(has, role)| has.then_some(role))
    .collect();
    writeln!(
        out,
        "{name}: ok, exports {} (contract intake:plugin@{})",
        roles.join(" and "),
        check.contract
    )?;
    match &check.schema {
        None => writeln!(out, "declares no configuration schema")?,
        Some(schema) => {
            writeln!(out, "configuration:")?;
            for field in &schema.fields {
                let kind = serde_json::to_value(field.kind)?;
                writeln!(
                    out,
                    "  {:<24} {:<8} {:<9} {}",
                    safe(&field.name),
                    kind.as_str().unwrap_or_default(),
                    if field.required {
                        "required"
                    } else {
                        "optional"
                    },
                    safe(&field.description)
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `intake plugin new`.
#[derive(Debug, Args)]
pub(crate) struct PluginNew {
    /// The plugin's name: lower-case letters, digits, `-` or `_`
    /// (`vip-match` builds `vip_match.wasm`).
    name: String,
    /// rust, python (componentize-py) or js (componentize-js).
    #[arg(long, default_value = "rust", value_parser = ["rust", "python", "js"])]
    lang: String,
    /// Where to write the project (default: ./NAME). Created; must be empty.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    /// The plugin SDK to depend on, by path (default: the plugin-sdk of
    /// the Intake checkout this binary was built from; the SDK is not on
    /// crates.io yet).
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

/// Writes a new plugin project.
pub(crate) fn plugin_new(
    args: PluginNew,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    use crate::service::scaffold;
    let language: scaffold::Language = args.lang.parse().map_err(anyhow::Error::msg)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let sdk = args.sdk.unwrap_or_else(scaffold::default_sdk_path);
    let project = scaffold::new_project(&args.name, language, &dir, &sdk)?;
    writeln!(out, "created {}:", project.dir.display())?;
    for file in &project.files {
        writeln!(out, "  {}", file.display())?;
    }
    writeln!(out, "next:")?;
    writeln!(out, "  cd {}", project.dir.display())?;
    for step in &project.steps {
        writeln!(out, "  {step}")?;
    }
    Ok(ExitCode::SUCCESS)
}
