//! Typed plugin errors: what failed when loading a plugin, and what went wrong
//! in one call. A call error is data the chain acts on (quarantine or skip);
//! it never takes the engine down.

use std::time::Duration;

/// A plugin could not be loaded or initialised. Shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plugin file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a WebAssembly component this engine can compile.
    #[error(
        "{name} is not a valid WebAssembly component (build it with `cargo build --target wasm32-wasip2`): {reason}"
    )]
    Compile {
        /// Plugin name.
        name: String,
        /// Compiler message.
        reason: String,
    },
    /// The component imports something Intake does not provide.
    #[error(
        "{name} cannot be linked: {reason}. Plugins may import only intake:plugin@0.1.0 or @0.2.0 and the basic WASI CLI interfaces (no files, network or environment)"
    )]
    Link {
        /// Plugin name.
        name: String,
        /// Linker message.
        reason: String,
    },
    /// The component exports neither role, or not the one asked for.
    #[error("{name} does not export the {wanted} role; it exports: {exports}")]
    MissingRole {
        /// Plugin name.
        name: String,
        /// Role asked for.
        wanted: &'static str,
        /// What it exports.
        exports: String,
    },
    /// The configuration lacks a setting the component declares as
    /// required, or gives one with the wrong type.
    #[error("{name}: invalid configuration: {}", intake_plugin_sdk::rules::describe(.errors))]
    Config {
        /// Plugin name.
        name: String,
        /// One entry per field, naming it.
        errors: Vec<intake_plugin_sdk::rules::FieldError>,
    },
    /// The component's configuration schema section is not a schema.
    #[error("{name} declares a configuration schema the engine cannot read: {reason}")]
    Schema {
        /// Plugin name.
        name: String,
        /// Why.
        reason: String,
    },
    /// `init` rejected the configuration, or failed.
    #[error("{name} rejected its configuration: {reason}")]
    Init {
        /// Plugin name.
        name: String,
        /// The plugin's message, or the call failure.
        reason: String,
    },
    /// The engine itself could not be set up (e.g. cache directory).
    #[error("plugin engine error: {0}")]
    Engine(String),
}

/// One plugin call failed. The chain applies the binding's failure policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Ran past its deadline (epoch interruption or a stalled host call).
    #[error("exceeded its {} ms deadline", .0.as_millis())]
    Timeout(Duration),
    /// Tried to grow memory past its cap.
    #[error("exceeded its memory cap of {} MiB", .0 >> 20)]
    MemoryLimit(usize),
    /// Trapped: panic, stack overflow, unreachable code, …
    #[error("trapped: {0}")]
    Trap(String),
    /// `init` returned an error for this message's instance.
    #[error("init failed: {0}")]
    Init(String),
    /// The role function returned an error.
    #[error("returned an error: {0}")]
    Guest(String),
    /// `init` or the role function returned a temporary error (contract
    /// 0.2.0): something outside the message is down for now. The message
    /// is deferred and decided again later, not failed.
    #[error("failed temporarily{}: {message}", if *.during_init { " in init" } else { "" })]
    Temporary {
        /// Whether `init` (not the role function) returned it.
        during_init: bool,
        /// The plugin's message.
        message: String,
    },
    /// The result names parties that do not exist in the tenant, or is
    /// otherwise unusable.
    #[error("returned an invalid result: {0}")]
    Malformed(String),
    /// The result is larger than the binding allows.
    #[error("returned {size} bytes of results, over its cap of {cap}")]
    OutputTooLarge {
        /// Approximate size of the result.
        size: usize,
        /// The cap.
        cap: usize,
    },
    /// The plugin tried to hand the engine more data in one transfer (a
    /// result, an error text, a log line) than a call may copy out of it.
    #[error("tried to pass more than {cap} bytes to the engine in one transfer")]
    TransferTooLarge {
        /// The per-transfer cap, in bytes.
        cap: usize,
    },
    /// A host-side failure (a bug in the engine, not the plugin).
    #[error("engine error while running the plugin: {0}")]
    Host(String),
}

impl CallError {
    /// Whether trying again later may succeed: only a plugin's own
    /// `temporary` error says so. Traps, timeouts and refused results are
    /// permanent, as they were before contract 0.2.0.
    pub fn is_temporary(&self) -> bool {
        matches!(self, CallError::Temporary { .. })
    }

    /// A short stable name for reports and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::MemoryLimit(_) => "memory-limit",
            CallError::Trap(_) => "trap",
            CallError::Init(_) => "init",
            CallError::Guest(_) => "guest-error",
            CallError::Temporary { .. } => "temporary",
            CallError::Malformed(_) => "malformed-result",
            CallError::OutputTooLarge { .. } | CallError::TransferTooLarge { .. } => {
                "output-too-large"
            }
            CallError::Host(_) => "host-error",
        }
    }
}
