//! The Store data of one plugin call, and the host side of the imports
//! (directory, message data, log). Every import is scoped to the tenant of
//! the message in [`CallContext`]; a plugin has no way to name another.
//! Outbound HTTP goes through the binding's grant ([`super::outbound`]);
//! the binding's secrets are the instance's environment, and nothing else is.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{directory, log, message_data, types};
use super::limits::{Limiter, Limits};
use super::outbound::Outbound;
use super::output::CappedOutput;
use crate::directory::{Directory, DirectoryError, Page, Party, PartyKind};
use crate::domain::Secret;

/// One raw read returns at most this much (the WIT says 1 MiB).
const MAX_RAW_READ: u32 = 1 << 20;

/// One line a plugin logged during a call, kept for reports (`intake
/// plugin test` prints them in each step) as well as sent to the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginLog {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The line, cut to 2048 bytes and made inert.
    pub message: String,
}

/// What every plugin call for one message shares: who it belongs to, the
/// tenant's directory and the raw bytes.
#[derive(Clone)]
pub struct CallContext {
    /// The tenant every look-up is scoped to.
    pub tenant_id: String,
    /// The account, for log fields.
    pub account_id: String,
    /// The tenant's directory.
    pub directory: Arc<dyn Directory>,
    /// The exact raw message, for `message-data.read-raw`.
    pub raw: bytes::Bytes,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("tenant_id", &self.tenant_id)
            .field("account_id", &self.account_id)
            .field("raw_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// The data of one plugin Store: WASI with nothing granted, the limiter, and
/// the message context.
pub(crate) struct HostState {
    /// WASI context: no preopened directories, no network sockets; clocks
    /// and random; the environment holds the binding's secrets only.
    /// Stdout/stderr go to capped buffers.
    wasi: WasiCtx,
    /// `wasi:http` state (field size limits).
    http: WasiHttpCtx,
    /// The binding's outbound grant, caps and the call's deadline: judges
    /// and sends every `wasi:http` request.
    outbound: Outbound,
    /// Resources the WASI streams and HTTP handles live in.
    table: ResourceTable,
    /// Enforces the memory cap and remembers a refusal.
    pub(crate) limiter: Limiter,
    /// The message this call is about.
    call: Arc<CallContext>,
    /// Plugin name, for log fields.
    plugin: Arc<str>,
    /// Look-up and log caps of the binding.
    limits: Arc<Limits>,
    /// Log lines written so far in this call.
    log_lines: u32,
    /// The lines kept (up to the binding's cap), for the call's report.
    logs: Vec<PluginLog>,
    /// Captured guest stdout.
    pub(crate) stdout: CappedOutput,
    /// Captured guest stderr.
    pub(crate) stderr: CappedOutput,
}

impl HostState {
    /// The state of one call of `plugin`, whose deadline runs out at
    /// `deadline_at`; `secrets` become its environment variables.
    pub(crate) fn new(
        plugin: Arc<str>,
        limits: Arc<Limits>,
        call: Arc<CallContext>,
        secrets: &[(String, Secret)],
        deadline_at: Instant,
    ) -> Self {
        let stdout = CappedOutput::new(limits.max_stdio_bytes);
        let stderr = CappedOutput::new(limits.max_stdio_bytes);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        for (name, value) in secrets {
            wasi.env(name, value.expose());
        }
        let outbound = Outbound::new(
            plugin.clone(),
            call.tenant_id.clone(),
            limits.clone(),
            deadline_at,
        );
        HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_cap: limits.memory_bytes,
                denied_growth: None,
            },
            call,
            plugin,
            limits,
            log_lines: 0,
            logs: Vec::new(),
            stdout,
            stderr,
        }
    }

    /// Whether an outbound request was cut short by the call's deadline.
    pub(crate) fn deadline_hit(&self) -> bool {
        self.outbound.deadline_hit()
    }

    /// The lines the plugin logged in this call.
    pub(crate) fn take_logs(&mut self) -> Vec<PluginLog> {
        std::mem::take(&mut self.logs)
    }

    /// Sends captured stdout/stderr to the log and returns the tail of
    /// stderr: its last two meaningful lines, which for a Rust guest are the
    /// panic location and message.
    pub(crate) fn flush_stdio(&self) -> Option<String> {
        let mut last = None;
        for (stream, out) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (text, dropped) = out.take();
            if text.is_empty() && dropped == 0 {
                continue;
            }
            tracing::info!(plugin = %self.plugin, tenant = %self.call.tenant_id, stream, dropped, "{}", crate::text::neutralize(text.trim_end()));
            if stream == "stderr" {
                let meaningful: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
                    .collect();
                let tail = meaningful[meaningful.len().saturating_sub(2)..].join(" ");
                last = (!tail.is_empty()).then_some(tail);
            }
        }
        last
    }

    async fn lookup<F>(
        &mut self,
        arg: String,
        what: &'static str,
        f: F,
    ) -> Result<types::LookupResult, types::LookupError>
    where
        F: for<'a> FnOnce(
            &'a dyn Directory,
            &'a str,
            &'a str,
            usize,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<Page, DirectoryError>> + Send + 'a>,
        >,
    {
        let arg = intake_plugin_sdk::rules::lookup_argument(&arg, what)
            .map_err(types::LookupError::InvalidArgument)?;
        let limit = self.limits.max_lookup_results as usize;
        let call = self.call.clone();
        let page = f(call.directory.as_ref(), &call.tenant_id, arg, limit).await;
        tracing::debug!(plugin = %self.plugin, tenant = %call.tenant_id, what, ok = page.is_ok(), "directory look-up");
        match page {
            Ok(page) => Ok(types::LookupResult {
                parties: page.parties.into_iter().map(party_to_wit).collect(),
                truncated: page.truncated,
            }),
            Err(DirectoryError::Unavailable(m)) => Err(types::LookupError::Unavailable(m)),
            Err(DirectoryError::InvalidArgument(m)) => Err(types::LookupError::InvalidArgument(m)),
        }
    }
}

fn party_to_wit(p: Party) -> types::Party {
    types::Party {
        kind: match p.kind {
            PartyKind::Contact => types::PartyKind::Contact,
            PartyKind::Lead => types::PartyKind::Lead,
        },
        id: p.id,
        email: p.email,
        name: p.name,
        company: p.company,
        external_id: p.external_id,
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl types::Host for HostState {}

impl directory::Host for HostState {
    async fn find_by_address(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<types::LookupResult, types::LookupError>> {
        Ok(self
            .lookup(address, "address", |d, tenant, arg, limit| {
                Box::pin(d.find_by_address(tenant, arg, limit))
            })
            .await)
    }

    async fn find_by_domain(
        &mut self,
        domain: String,
    ) -> wasmtime::Result<Result<types::LookupResult, types::LookupError>> {
        Ok(self
            .lookup(domain, "domain", |d, tenant, arg, limit| {
                Box::pin(d.find_by_domain(tenant, arg, limit))
            })
            .await)
    }

    async fn parties_for_message_id(
        &mut self,
        message_id: String,
    ) -> wasmtime::Result<Result<types::LookupResult, types::LookupError>> {
        Ok(self
            .lookup(message_id, "message id", |d, tenant, arg, limit| {
                Box::pin(d.parties_for_message_id(tenant, arg.trim_matches(['<', '>']), limit))
            })
            .await)
    }
}

impl message_data::Host for HostState {
    async fn read_raw(&mut self, offset: u64, max_len: u32) -> wasmtime::Result<Vec<u8>> {
        let raw = &self.call.raw;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(raw.len());
        let end = start
            .saturating_add(max_len.min(MAX_RAW_READ) as usize)
            .min(raw.len());
        Ok(raw[start..end].to_vec())
    }
}

impl log::Host for HostState {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        if self.log_lines > self.limits.max_log_lines {
            if self.log_lines == self.limits.max_log_lines + 1 {
                tracing::warn!(plugin = %self.plugin, tenant = %self.call.tenant_id, "log line cap reached; further lines from this call are dropped");
            }
            return Ok(());
        }
        let message =
            crate::text::neutralize(&intake_plugin_sdk::rules::log_line(&message)).into_owned();
        let (plugin, tenant, account) =
            (&*self.plugin, &self.call.tenant_id, &self.call.account_id);
        let level = match level {
            log::Level::Trace => {
                tracing::trace!(plugin, tenant, account, "{message}");
                "trace"
            }
            log::Level::Debug => {
                tracing::debug!(plugin, tenant, account, "{message}");
                "debug"
            }
            log::Level::Info => {
                tracing::info!(plugin, tenant, account, "{message}");
                "info"
            }
            log::Level::Warn => {
                tracing::warn!(plugin, tenant, account, "{message}");
                "warn"
            }
            log::Level::Error => {
                tracing::error!(plugin, tenant, account, "{message}");
                "error"
            }
        };
        self.logs.push(PluginLog { level, message });
        Ok(())
    }
}
