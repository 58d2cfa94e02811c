//! `intake serve`: the engine checking every tenant's accounts by itself
//! until it is stopped, delivering webhooks, with `/metrics`, `/healthz`,
//! `/readyz` and the HTTP API under `/v1`.

use super::*;
use crate::api::{ApiConfig, RateLimit};
use crate::discover::{DiscoveryConfig, DiscoveryMode};
use crate::serve::http::TlsFiles;
use crate::serve::scheduler::Limits;
use crate::serve::webhooks::WebhookConfig;
use crate::serve::{self, SchedulerKind, ServeConfig};
use crate::service::discover::Discovery;
use crate::service::webhooks::WebhookPolicy;
use crate::service::{OperatorKey, RetryPolicy, Service, ServiceOptions};

/// `intake serve`. Every flag has an `INTAKE_*` variable; flags win.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address for the HTTP API, /metrics, /healthz and /readyz, or `none`.
    #[arg(long, env = "INTAKE_LISTEN", default_value = "127.0.0.1:9465")]
    listen: String,
    /// Account checks running at once, over all tenants.
    #[arg(long, env = "INTAKE_CONCURRENCY", default_value_t = 32)]
    concurrency: usize,
    /// Connections at once to one mail server host (servers limit logins
    /// per address; Dovecot's default is 10 per user and address).
    #[arg(long, env = "INTAKE_PER_HOST", default_value_t = 8)]
    per_host: usize,
    /// Keep an IMAP IDLE connection per folder for new mail (where the
    /// server offers IDLE; every account is also checked at its interval).
    #[arg(long, env = "INTAKE_IDLE", default_value_t = true, action = clap::ArgAction::Set)]
    idle: bool,
    /// Renew each IDLE command at least this often, seconds.
    #[arg(long, env = "INTAKE_IDLE_RENEW_SECS", default_value_t = 300)]
    idle_renew_secs: u64,
    /// On SIGTERM / Ctrl-C, wait at most this long for the checks in
    /// flight to commit and log out, seconds.
    #[arg(long, env = "INTAKE_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    grace_secs: u64,
    /// Authentication or certificate failures in a row that disable an
    /// account (transient failures only back off, never disable).
    #[arg(long, env = "INTAKE_DISABLE_AFTER", default_value_t = 3)]
    disable_after: u32,
    /// First wait after a failure, seconds; it doubles up to --backoff-max-secs.
    #[arg(long, env = "INTAKE_BACKOFF_SECS", default_value_t = 60)]
    backoff_secs: u64,
    /// Longest wait between attempts of a failing account, seconds.
    #[arg(long, env = "INTAKE_BACKOFF_MAX_SECS", default_value_t = 3600)]
    backoff_max_secs: u64,
    /// How long an account stays with a worker that stopped answering,
    /// seconds (renewed every third of it while a check runs).
    #[arg(long, env = "INTAKE_LEASE_SECS", default_value_t = 60)]
    lease_secs: u64,
    /// How often the store is asked which accounts are due, milliseconds.
    #[arg(long, env = "INTAKE_TICK_MS", default_value_t = 1000)]
    tick_ms: u64,
    /// How often a running check records how far it has got (shown by the
    /// console and `account show` during a long first sync), milliseconds.
    #[arg(long, env = "INTAKE_PROGRESS_MS", default_value_t = 2000)]
    progress_ms: u64,
    /// Who decides when accounts are checked: `local` (this process), or
    /// `graphile` (graphile_worker on the PostgreSQL store, shared by every
    /// engine on it). Default: graphile on PostgreSQL, else local.
    #[arg(long, env = "INTAKE_SCHEDULER", default_value = "auto")]
    scheduler: String,
    /// Messages of a batch decided at once. Default: one per core.
    #[arg(long, env = "INTAKE_DECIDE_WORKERS")]
    decide_workers: Option<usize>,
    /// A file holding the operator's API credential (at least 24
    /// characters), which manages tenants and their tokens. Or set
    /// INTAKE_ADMIN_TOKEN; never on the command line. Without either, only
    /// tenant tokens (`intake token create`) reach the API.
    #[arg(long, env = "INTAKE_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM), with --tls-key.
    #[arg(long, env = "INTAKE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "INTAKE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// API requests per second per token, sustained.
    #[arg(long, env = "INTAKE_API_RATE", default_value_t = 50.0)]
    api_rate: f64,
    /// API requests per token at once after a quiet spell.
    #[arg(long, env = "INTAKE_API_BURST", default_value_t = 200.0)]
    api_burst: f64,
    /// The largest JSON request body, KiB.
    #[arg(long, env = "INTAKE_API_BODY_KIB", default_value_t = 4096)]
    api_body_kib: usize,
    /// The largest plugin upload, MiB.
    #[arg(long, env = "INTAKE_API_UPLOAD_MIB", default_value_t = 32)]
    api_upload_mib: usize,
    /// Webhooks: the wait after a failed delivery attempt, seconds; it
    /// doubles (with jitter) up to --webhook-retry-max-secs.
    #[arg(long, env = "INTAKE_WEBHOOK_RETRY_SECS", default_value_t = 5)]
    webhook_retry_secs: u64,
    /// Webhooks: the longest wait between attempts, seconds.
    #[arg(long, env = "INTAKE_WEBHOOK_RETRY_MAX_SECS", default_value_t = 3600)]
    webhook_retry_max_secs: u64,
    /// Webhooks: retries stop this long after the event (or a redelivery),
    /// seconds; the delivery is then dead-lettered.
    #[arg(long, env = "INTAKE_WEBHOOK_GIVE_UP_SECS", default_value_t = 86_400)]
    webhook_give_up_secs: u64,
    /// Webhooks: limit on one request, connection included, seconds.
    #[arg(long, env = "INTAKE_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    webhook_timeout_secs: u64,
    /// Webhooks: requests in flight at once, over all endpoints.
    #[arg(long, env = "INTAKE_WEBHOOK_CONCURRENCY", default_value_t = 32)]
    webhook_concurrency: usize,
    /// Webhooks: requests in flight at once to one endpoint.
    #[arg(long, env = "INTAKE_WEBHOOK_PER_ENDPOINT", default_value_t = 4)]
    webhook_per_endpoint: usize,
    /// Webhooks: failed attempts in a row that mark an endpoint failing.
    #[arg(long, env = "INTAKE_WEBHOOK_FAILING_AFTER", default_value_t = 5)]
    webhook_failing_after: u32,
    /// Webhooks: allow loopback, private and link-local destinations (off:
    /// in hosted use a tenant cannot aim webhooks at the internal network).
    #[arg(long, env = "INTAKE_WEBHOOK_ALLOW_PRIVATE_NETWORKS")]
    webhook_allow_private_networks: bool,
    /// Provider discovery for the API (`GET /v1/discover`): `network` (the
    /// bundled table, then DNS SRV, autoconfig over HTTPS and MX: outbound
    /// requests on a tenant's behalf), `table` (the bundled table only, no
    /// outbound request) or `off`.
    #[arg(long, env = "INTAKE_DISCOVERY", default_value = "network")]
    discovery: String,
}

/// The operator's credential, from its file or `INTAKE_ADMIN_TOKEN`.
fn operator_key(file: Option<&Path>) -> anyhow::Result<Option<OperatorKey>> {
    let secret =
        match file {
            Some(path) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if let Ok(meta) = std::fs::metadata(path)
                        && meta.permissions().mode() & 0o077 != 0
                    {
                        eprintln!(
                            "warning: {} is readable by other users; `chmod 600` it",
                            path.display()
                        );
                    }
                }
                Some(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the admin token file {}", path.display())
                })?)
            }
            None => std::env::var("INTAKE_ADMIN_TOKEN").ok(),
        };
    secret
        .map(|s| OperatorKey::new(&s).map_err(|e| anyhow::anyhow!("the admin token: {e}")))
        .transpose()
}

impl ServeArgs {
    fn config(&self, store: &crate::store::StoreLocation) -> anyhow::Result<ServeConfig> {
        let postgres = match store {
            crate::store::StoreLocation::Url(url)
                if url.starts_with("postgres://") || url.starts_with("postgresql://") =>
            {
                Some(url.clone())
            }
            _ => None,
        };
        let scheduler = match (self.scheduler.as_str(), postgres) {
            ("local", _) | ("auto", None) => SchedulerKind::Local,
            ("graphile" | "auto", Some(url)) => SchedulerKind::Graphile(url),
            ("graphile", None) => {
                bail!("--scheduler graphile needs a PostgreSQL store (--database-url postgres://…)")
            }
            (other, _) => bail!("--scheduler {other:?}: expected auto, local or graphile"),
        };
        let listen = match self.listen.trim() {
            "" | "none" => None,
            addr => Some(addr.parse().with_context(|| {
                format!("--listen {addr:?}: expected ADDRESS:PORT such as 127.0.0.1:9465, or none")
            })?),
        };
        let config = ServeConfig {
            scheduler,
            listen,
            limits: Limits {
                concurrent: self.concurrency,
                per_host: self.per_host,
                tick: Duration::from_millis(self.tick_ms),
            },
            idle: self.idle,
            idle_renew: Duration::from_secs(self.idle_renew_secs),
            grace: Duration::from_secs(self.grace_secs),
            heartbeat: Duration::from_secs(10),
            api: ApiConfig {
                operator: operator_key(self.admin_token_file.as_deref())?,
                rate: RateLimit {
                    per_second: self.api_rate,
                    burst: self.api_burst,
                },
                body_limit: self.api_body_kib << 10,
                upload_limit: self.api_upload_mib << 20,
                ..ApiConfig::default()
            },
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            webhooks: WebhookConfig {
                first_retry: Duration::from_secs(self.webhook_retry_secs),
                max_retry: Duration::from_secs(self.webhook_retry_max_secs),
                give_up: Duration::from_secs(self.webhook_give_up_secs),
                timeout: Duration::from_secs(self.webhook_timeout_secs),
                concurrency: self.webhook_concurrency,
                per_endpoint: self.webhook_per_endpoint,
                failing_after: self.webhook_failing_after.max(1),
                poll: Duration::from_secs(1),
                allow_private_networks: self.webhook_allow_private_networks,
            },
        };
        if !(self.api_rate > 0.0 && self.api_burst >= 1.0) {
            bail!("--api-rate must be positive and --api-burst at least 1");
        }
        if let Some(addr) = listen
            && !addr.ip().is_loopback()
            && config.tls.is_none()
        {
            eprintln!(
                "warning: serving plain HTTP on {addr}, beyond this machine: tokens would cross \
                 the network in the clear; give --tls-cert/--tls-key or put a TLS proxy in front"
            );
        }
        config.validate().map_err(anyhow::Error::msg)?;
        if self.backoff_secs == 0 || self.backoff_max_secs < self.backoff_secs {
            bail!("--backoff-secs must be positive and at most --backoff-max-secs");
        }
        if self.lease_secs < 3 {
            bail!("--lease-secs must be at least 3");
        }
        Ok(config)
    }
}

pub(crate) async fn serve(
    c: &Config,
    args: ServeArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let config = args.config(&c.store)?;
    let discovery_mode: DiscoveryMode = args
        .discovery
        .parse()
        .map_err(|e| anyhow::anyhow!("--discovery {e}"))?;
    let tls = config.tls.is_some();
    let (store, _) = open(c, OpenMode::Create).await?;
    // A store with credentials needs its key now, not at the first check;
    // one without gets the default key file, as the first `credential add`
    // would, so credentials can be stored through the API.
    let key = match master_key_for_storing(c, &store).await {
        Ok(key) => Some(key),
        Err(e) if store.has_credentials().await? => return Err(e),
        Err(e) => {
            tracing::warn!("no master key: credentials cannot be stored or opened ({e:#})");
            None
        }
    };
    for (tenant, _) in store.tenants().await? {
        if !store.accounts(tenant).await?.is_empty() {
            ensure_default_chain(c, &store, tenant, out).await?;
        }
    }
    let shutdown = stop_on_signal();
    let pipeline = pipeline(&store, None, args.decide_workers, &shutdown)?;
    let policy = WebhookPolicy {
        allow_private_networks: args.webhook_allow_private_networks,
    };
    let service = Arc::new(
        Service::new(
            store,
            Arc::new(pipeline),
            key.clone(),
            ServiceOptions {
                worker_id: serve::worker_id(),
                lease: Duration::from_secs(args.lease_secs),
                retry: RetryPolicy {
                    first_backoff: Duration::from_secs(args.backoff_secs),
                    max_backoff: Duration::from_secs(args.backoff_max_secs),
                    disable_after: args.disable_after.max(1),
                },
                progress_every: Duration::from_millis(args.progress_ms.max(100)),
            },
        )
        .with_plugin_dir(c.plugin_dir.clone())
        .with_webhook_policy(policy)
        // A tenant's autoconfig requests never reach the operator's
        // private networks.
        .with_discovery(Discovery::new(discovery_mode, DiscoveryConfig::default())),
    );
    serve::run(config, service, key, shutdown, |addr| {
        if let Some(addr) = addr {
            let scheme = if tls { "https" } else { "http" };
            eprintln!("intake serve: {scheme}://{addr}/v1/ (API, docs at /v1/docs), /metrics, /healthz, /readyz");
        }
        eprintln!("intake serve: running; stop with Ctrl-C or SIGTERM");
    })
    .await?;
    writeln!(out, "intake serve: stopped")?;
    Ok(ExitCode::SUCCESS)
}
