//! Per-binding limits and the Store limiter that enforces the memory cap.
//! The binding's outbound HTTP grant (its allow-list and the caps on each
//! request) lives here too: like the caps, it says what one call may use.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::outbound::AllowedHost;

/// What one plugin binding may use on each call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Running-time budget for one message (instantiate + init + role call),
    /// measured in epoch ticks while the plugin runs; a wall-clock backstop
    /// of 4× + 250 ms catches stalled host calls.
    #[serde(with = "millis")]
    pub deadline: Duration,
    /// Linear memory cap in bytes.
    pub memory_bytes: usize,
    /// Cap on the size of a verdict (ids, reasons, names), in bytes.
    pub max_output_bytes: usize,
    /// Cap on parties in one directory look-up result.
    pub max_lookup_results: u32,
    /// Log lines a plugin may write per message; the rest are dropped.
    pub max_log_lines: u32,
    /// Bytes of stdout/stderr kept per message (sent to the log).
    pub max_stdio_bytes: usize,
    /// Where the plugin may send HTTP requests (`wasi:http/outgoing-handler`):
    /// Spin-like `scheme://host[:port]` entries. Empty (the default): every
    /// request is refused. Left out of the stored JSON when empty, so the
    /// configuration version of a binding without a grant is as before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound_hosts: Vec<AllowedHost>,
    /// Cap on one HTTP request's body, bytes.
    #[serde(skip_serializing_if = "is_default_request_bytes")]
    pub http_request_bytes: usize,
    /// Cap on one HTTP response's body, bytes.
    #[serde(skip_serializing_if = "is_default_response_bytes")]
    pub http_response_bytes: usize,
    /// Time one HTTP request may take, connect to last byte; never more
    /// than what is left of the deadline, which the wait counts against.
    #[serde(with = "millis", skip_serializing_if = "is_default_http_timeout")]
    pub http_timeout: Duration,
}

/// Default cap on an outbound request's body.
pub const DEFAULT_HTTP_REQUEST_BYTES: usize = 64 << 10;
/// Default cap on an outbound response's body.
pub const DEFAULT_HTTP_RESPONSE_BYTES: usize = 1 << 20;
/// Default time one outbound request may take.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest body cap (either way) a binding may ask for.
pub const MAX_HTTP_BODY_BYTES: usize = 64 << 20;

fn is_default_request_bytes(v: &usize) -> bool {
    *v == DEFAULT_HTTP_REQUEST_BYTES
}

fn is_default_response_bytes(v: &usize) -> bool {
    *v == DEFAULT_HTTP_RESPONSE_BYTES
}

fn is_default_http_timeout(v: &Duration) -> bool {
    *v == DEFAULT_HTTP_TIMEOUT
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            max_output_bytes: 64 << 10,
            max_lookup_results: 100,
            max_log_lines: 50,
            max_stdio_bytes: 16 << 10,
            allowed_outbound_hosts: Vec::new(),
            http_request_bytes: DEFAULT_HTTP_REQUEST_BYTES,
            http_response_bytes: DEFAULT_HTTP_RESPONSE_BYTES,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
        }
    }
}

/// The largest memory cap a binding may ask for: the pooling allocator
/// reserves slots of this size.
pub const MAX_MEMORY_BYTES: usize = 1 << 30;

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Enforces the memory cap and remembers whether it was hit, so a failed
/// allocation is reported as "memory cap" rather than a bare trap.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) memory_cap: usize,
    pub(crate) denied_growth: Option<usize>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.denied_growth = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
