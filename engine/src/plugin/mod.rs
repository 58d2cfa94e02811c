//! Plugin: the sandboxed WebAssembly host.
//!
//! - [`runtime`]: one wasmtime `Engine` + `Linker`, epoch ticker, on-disk
//!   component cache, pooling allocator.
//! - [`binding`]: a configured plugin, run as a fresh instance per message
//!   with a memory limiter and a deadline.
//! - [`bindings`]: one `bindgen!` per released contract version (0.1.0,
//!   0.2.0), loaded side by side; the version a component targets is found
//!   from its `lifecycle` export.
//! - `host`: the imports (directory, raw message, log), tenant-scoped;
//!   `host_v0_2` serves 0.2.0's by delegating to them.
//! - [`outbound`]: `wasi:http` requests judged by the binding's allow-list,
//!   with capped bodies and a time budget inside the deadline.
//! - `view`: the engine's message view → the contract's record (the only
//!   place generated message types are built).
//! - `rules`: verdicts checked by the SDK's rules (`intake_plugin_sdk::rules`),
//!   the same functions a plugin's unit tests run.
//! - [`schema`]: the configuration schema a component declares.
//! - [`chain`]: matchers, then the unknown-sender policy → a [`Decision`].
//!
//! The contract is `wit/v0.1.0/plugin.wit` and `wit/v0.2.0/plugin.wit`.

pub mod binding;
pub mod bindings;
mod cache;
pub mod chain;
pub mod error;
mod host;
mod host_v0_2;
pub mod limits;
pub mod outbound;
mod output;
mod rules;
pub mod runtime;
pub mod schema;
mod view;

pub use crate::domain::ServerAction;
pub use binding::{
    Binding, FailurePolicy, LoadedPlugin, Roles, VersionTag, WasmSource, config_version,
};
pub use bindings::ContractVersion;
pub use chain::{Chain, Decision, Disposition, NewLead, Step};
pub use error::{CallError, LoadError};
pub use host::{CallContext, PluginLog};
pub use limits::Limits;
pub use outbound::{AllowedHost, AllowedHostError, parse_allow_list};
pub use runtime::{PluginRuntime, RuntimeConfig};
