//! Per-binding limits and the Store limiter that enforces the memory cap.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
