//! A plugin binding (which component, its config, limits and failure policy)
//! and the loaded plugin that runs one fresh instance per message.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap, UpdateDeadline};

use intake_plugin_sdk::rules::ConfigSchema;

use super::bindings::types::Message;
use super::bindings::{ContractVersion, matcher, unknown_sender, v0_1, v0_2};
use super::error::{CallError, LoadError};
use super::host::{CallContext, HostState, PluginLog};
use super::limits::{Limits, MAX_MEMORY_BYTES};
use super::runtime::EPOCH_TICK;
use crate::parse::MessageView;
use crate::text;

/// Where a component's bytes come from.
#[derive(Debug, Clone)]
pub enum WasmSource {
    /// A `.wasm` file.
    File(PathBuf),
    /// Bytes already in memory (e.g. from the database).
    Bytes(Arc<[u8]>),
}

/// What the engine does when a plugin call fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Keep the message: quarantine it with the plugin's name and the reason.
    #[default]
    Quarantine,
    /// Ignore this plugin for the message and go on with the chain.
    Skip,
}

impl std::str::FromStr for FailurePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "quarantine" => Ok(FailurePolicy::Quarantine),
            "skip" => Ok(FailurePolicy::Skip),
            other => Err(format!(
                "unknown failure policy {other:?} (expected quarantine or skip)"
            )),
        }
    }
}

/// One plugin as configured for a tenant.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Name shown in logs, reports and quarantine reasons.
    pub name: String,
    /// The component.
    pub wasm: WasmSource,
    /// JSON configuration passed to `init`.
    pub config: String,
    /// Deadline, memory and output caps.
    pub limits: Limits,
    /// What a failure does.
    pub on_error: FailurePolicy,
    /// Secrets for this binding's instances only, as `(NAME, value)`: each
    /// is an environment variable of every instance of this binding and of
    /// no other. Not part of the configuration version; never printed.
    pub secrets: Vec<(String, crate::domain::Secret)>,
}

impl Binding {
    /// A binding for `path` with default limits, `{}` config and the
    /// quarantine policy; named after the file stem.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_stem()
            .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
        Binding {
            name,
            wasm: WasmSource::File(path),
            config: "{}".into(),
            limits: Limits::default(),
            on_error: FailurePolicy::default(),
            secrets: Vec::new(),
        }
    }
}

/// A binding's configuration version: the first 12 hex digits of a SHA-256
/// over its component's hash, its configuration JSON, its limits and its
/// failure policy. Any change to one of them is a new version, and the same
/// settings give the same version wherever they are loaded (the store's
/// chain, `intake plugin test`, replay), so a recorded decision says which
/// settings decided without a counter to keep.
pub fn config_version(
    component_sha256: &str,
    config: &str,
    limits: &Limits,
    on_error: FailurePolicy,
) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(component_sha256.as_bytes());
    hash.update([0]);
    hash.update(config.len().to_le_bytes());
    hash.update(config.as_bytes());
    hash.update([0]);
    hash.update(serde_json::to_string(limits).unwrap_or_default().as_bytes());
    hash.update([0]);
    hash.update(match on_error {
        FailurePolicy::Quarantine => b"quarantine".as_slice(),
        FailurePolicy::Skip => b"skip".as_slice(),
    });
    let mut version = hex::encode(hash.finalize());
    version.truncate(12);
    version
}

/// A compiled, linked plugin ready to run. Cheap to call concurrently: each
/// call instantiates into its own Store.
pub struct LoadedPlugin {
    /// The binding it was loaded from.
    binding: Binding,
    /// Limits shared with every Store.
    limits: Arc<Limits>,
    /// Name as shared string for log fields.
    name: Arc<str>,
    /// Pre-linked component; instantiation is a pooled-slot copy.
    pre: InstancePre<HostState>,
    /// The settings the component declares (`intake:config-schema`).
    schema: Option<ConfigSchema>,
    /// SHA-256 of the component's bytes, hex: which code ran, in every
    /// recorded decision.
    component_sha256: String,
    /// [`config_version`] of this binding, in every recorded decision.
    config_version: String,
    /// Which of its binding's stored versions this is, when it is one
    /// (a chain loaded from the store), in every recorded decision.
    version: Option<VersionTag>,
    /// Export indices of the contract version it targets, looked up once.
    exports: Exports,
}

/// A component's exports, per the contract version it targets (found at
/// load from its `lifecycle` export). Everything past the call converts
/// into one set of types, so nothing else cares about the version.
enum Exports {
    /// `intake:plugin@0.1.0`.
    V0_1 {
        lifecycle: v0_1::lifecycle::GuestIndices,
        matcher: Option<v0_1::matcher::GuestIndices>,
        policy: Option<v0_1::unknown_sender::GuestIndices>,
    },
    /// `intake:plugin@0.2.0`.
    V0_2 {
        lifecycle: v0_2::lifecycle::GuestIndices,
        matcher: Option<v0_2::matcher::GuestIndices>,
        policy: Option<v0_2::unknown_sender::GuestIndices>,
    },
}

impl Exports {
    /// The version's exports in `pre`: the newest version whose `lifecycle`
    /// the component exports, with the roles it exports of that version.
    fn find(pre: &InstancePre<HostState>) -> Option<Self> {
        if let Ok(lifecycle) = v0_2::lifecycle::GuestIndices::new(pre) {
            return Some(Exports::V0_2 {
                lifecycle,
                matcher: v0_2::matcher::GuestIndices::new(pre).ok(),
                policy: v0_2::unknown_sender::GuestIndices::new(pre).ok(),
            });
        }
        let lifecycle = v0_1::lifecycle::GuestIndices::new(pre).ok()?;
        Some(Exports::V0_1 {
            lifecycle,
            matcher: v0_1::matcher::GuestIndices::new(pre).ok(),
            policy: v0_1::unknown_sender::GuestIndices::new(pre).ok(),
        })
    }

    fn version(&self) -> ContractVersion {
        match self {
            Exports::V0_1 { .. } => ContractVersion::V0_1,
            Exports::V0_2 { .. } => ContractVersion::V0_2,
        }
    }

    fn roles(&self) -> Roles {
        match self {
            Exports::V0_1 {
                matcher, policy, ..
            } => Roles {
                matcher: matcher.is_some(),
                unknown_sender: policy.is_some(),
            },
            Exports::V0_2 {
                matcher, policy, ..
            } => Roles {
                matcher: matcher.is_some(),
                unknown_sender: policy.is_some(),
            },
        }
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("contract", &self.exports.version())
            .field("roles", &self.exports.roles())
            .finish_non_exhaustive()
    }
}

/// Which stored version of a binding a loaded plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VersionTag {
    /// The version's number, 1, 2, … within the binding.
    pub number: u32,
    /// Whether it runs as the binding's candidate (a canary) rather than
    /// its active version.
    pub candidate: bool,
}

/// Which roles a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Roles {
    /// Exports `intake:plugin/matcher`.
    pub matcher: bool,
    /// Exports `intake:plugin/unknown-sender`.
    pub unknown_sender: bool,
}

impl LoadedPlugin {
    pub(crate) fn new(
        binding: Binding,
        pre: InstancePre<HostState>,
        schema: Option<ConfigSchema>,
        component_sha256: String,
    ) -> Result<Self, LoadError> {
        let name = binding.name.clone();
        if binding.limits.memory_bytes > MAX_MEMORY_BYTES {
            return Err(LoadError::Engine(format!(
                "{name}: memory cap {} MiB is over the engine's maximum of {} MiB",
                binding.limits.memory_bytes >> 20,
                MAX_MEMORY_BYTES >> 20
            )));
        }
        let exports = || {
            let ty = pre.component().component_type();
            let names: Vec<String> = ty
                .exports(pre.engine())
                .map(|(n, _)| n.to_string())
                .collect();
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        };
        let found = Exports::find(&pre).ok_or_else(|| LoadError::MissingRole {
            name: name.clone(),
            wanted: "lifecycle (intake:plugin/lifecycle@0.1.0 or @0.2.0)",
            exports: exports(),
        })?;
        let roles = found.roles();
        if !roles.matcher && !roles.unknown_sender {
            return Err(LoadError::MissingRole {
                name,
                wanted: match found.version() {
                    ContractVersion::V0_1 => "matcher or unknown-sender (@0.1.0, as its lifecycle)",
                    ContractVersion::V0_2 => "matcher or unknown-sender (@0.2.0, as its lifecycle)",
                },
                exports: exports(),
            });
        }
        let config_version = config_version(
            &component_sha256,
            &binding.config,
            &binding.limits,
            binding.on_error,
        );
        Ok(LoadedPlugin {
            component_sha256,
            config_version,
            limits: Arc::new(binding.limits.clone()),
            name: binding.name.clone().into(),
            binding,
            version: None,
            pre,
            schema,
            exports: found,
        })
    }

    /// The same plugin, known as version `number` of its binding (its
    /// candidate when `candidate`).
    pub fn with_version(mut self, number: u32, candidate: bool) -> Self {
        self.version = Some(VersionTag { number, candidate });
        self
    }

    /// Which stored version of its binding this is, if it is one.
    pub fn version(&self) -> Option<VersionTag> {
        self.version
    }

    /// The binding's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The binding.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// SHA-256 of the component's bytes, hex.
    pub fn component_sha256(&self) -> &str {
        &self.component_sha256
    }

    /// The binding's configuration version (see [`config_version`]).
    pub fn config_version(&self) -> &str {
        &self.config_version
    }

    /// Which roles the component exports.
    pub fn roles(&self) -> Roles {
        self.exports.roles()
    }

    /// The contract version the component targets.
    pub fn contract(&self) -> ContractVersion {
        self.exports.version()
    }

    /// The settings the component declares, if it declares any.
    pub fn config_schema(&self) -> Option<&ConfigSchema> {
        self.schema.as_ref()
    }

    /// Checks the binding's configuration against the declared schema, then
    /// runs `init` on a throw-away instance, so a bad configuration is
    /// reported when the plugin is added or tested, not on the first message.
    pub async fn check_init(
        &self,
        tenant_id: &str,
        directory: Arc<dyn crate::directory::Directory>,
    ) -> Result<(), LoadError> {
        if let Some(schema) = &self.schema {
            intake_plugin_sdk::rules::check_config(schema, &self.binding.config).map_err(
                |errors| LoadError::Config {
                    name: self.name.to_string(),
                    errors,
                },
            )?;
        }
        let call = Arc::new(CallContext {
            tenant_id: tenant_id.to_string(),
            account_id: "init-check".into(),
            directory,
            raw: bytes::Bytes::new(),
        });
        match self.with_instance(&call, RoleCall::InitOnly).await.0 {
            Ok(_) => Ok(()),
            Err(e) => Err(LoadError::Init {
                name: self.name.to_string(),
                reason: match e {
                    CallError::Init(m) => m,
                    CallError::Temporary {
                        during_init: true,
                        message,
                    } => format!("{message} (a temporary error: try again later)"),
                    other => other.to_string(),
                },
            }),
        }
    }

    /// Runs the matcher role on one message in a fresh instance. The
    /// verdict has passed the size, text and server-action rules; its
    /// parties are not yet checked against the directory (the chain does).
    pub async fn run_matcher(
        &self,
        message: &MessageView,
        call: &Arc<CallContext>,
    ) -> Result<intake_plugin_sdk::Verdict, CallError> {
        self.run_matcher_wit(&super::view::to_wit(message), call)
            .await
            .0
    }

    /// [`Self::run_matcher`] on a message already converted for the
    /// contract (the chain converts once for all its plugins), with the
    /// lines the plugin logged.
    pub(crate) async fn run_matcher_wit(
        &self,
        message: &Message,
        call: &Arc<CallContext>,
    ) -> (
        Result<intake_plugin_sdk::Verdict, CallError>,
        Vec<PluginLog>,
    ) {
        if !self.roles().matcher {
            let error = CallError::Host(format!("{} is not a matcher", self.name));
            return (Err(error), Vec::new());
        }
        let (result, logs) = self.with_instance(call, RoleCall::Matcher(message)).await;
        let result = match result {
            Ok(RoleResult::Matcher(verdict)) => {
                super::rules::matcher_verdict(verdict, self.limits.max_output_bytes)
            }
            Ok(_) => Err(CallError::Host("role result mismatch".into())),
            Err(e) => Err(e),
        };
        (result, logs)
    }

    /// Runs the unknown-sender role on one message in a fresh instance; the
    /// verdict has passed the SDK's rules.
    pub async fn run_policy(
        &self,
        message: &MessageView,
        call: &Arc<CallContext>,
    ) -> Result<intake_plugin_sdk::PolicyVerdict, CallError> {
        self.run_policy_wit(&super::view::to_wit(message), call)
            .await
            .0
    }

    /// [`Self::run_policy`] on a message already converted for the
    /// contract, with the lines the plugin logged.
    pub(crate) async fn run_policy_wit(
        &self,
        message: &Message,
        call: &Arc<CallContext>,
    ) -> (
        Result<intake_plugin_sdk::PolicyVerdict, CallError>,
        Vec<PluginLog>,
    ) {
        if !self.roles().unknown_sender {
            let error = CallError::Host(format!("{} is not an unknown-sender policy", self.name));
            return (Err(error), Vec::new());
        }
        let (result, logs) = self.with_instance(call, RoleCall::Policy(message)).await;
        let result = match result {
            Ok(RoleResult::Policy(verdict)) => {
                super::rules::policy_verdict(verdict, self.limits.max_output_bytes)
            }
            Ok(_) => Err(CallError::Host("role result mismatch".into())),
            Err(e) => Err(e),
        };
        (result, logs)
    }

    /// Instantiates into a fresh Store with the limiter and deadline set,
    /// runs `init`, then the role function; classifies every failure. The
    /// whole call is also bounded by a wall-clock timeout, so a stalled host
    /// call cannot outlive the deadline either.
    async fn with_instance(
        &self,
        call: &Arc<CallContext>,
        role: RoleCall<'_>,
    ) -> (Result<RoleResult, CallError>, Vec<PluginLog>) {
        let deadline = self.limits.deadline;
        // Waiting on an outbound HTTP request counts against the deadline
        // by the wall clock: each request's budget ends here at the latest.
        let state = HostState::new(
            self.name.clone(),
            self.limits.clone(),
            call.clone(),
            &self.binding.secrets,
            std::time::Instant::now() + deadline,
        );
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        // Whatever the guest hands the host in one transfer (a verdict, an
        // error text, a log line) is copied into host memory before any
        // check of ours runs. Hostcall fuel bounds that copy, so a 60 MB
        // error string is refused inside wasmtime instead of allocated.
        store.set_hostcall_fuel(transfer_cap(&self.limits));
        // The deadline is a budget of the plugin's own running time, counted
        // in epoch ticks observed while it runs: each callback fires after
        // at least one tick of execution, then yields to the executor (a
        // spinning plugin must not hog a worker thread) with a fresh
        // one-tick deadline. Time spent waiting for the executor under load
        // is not charged to the plugin.
        let mut remaining = deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1) as u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            remaining = remaining.saturating_sub(1);
            if remaining == 0 {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });

        let config = self.binding.config.as_str();
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let result = match &self.exports {
                Exports::V0_1 {
                    lifecycle,
                    matcher,
                    policy,
                } => {
                    let lifecycle = lifecycle.load(&mut store, &instance)?;
                    if let Err(message) = lifecycle.call_init(&mut store, config).await? {
                        return Ok(Err(Failure::Init(PluginError::Permanent(message))));
                    }
                    match role {
                        RoleCall::InitOnly => Ok(RoleResult::InitOnly),
                        RoleCall::Matcher(message) => {
                            let guest = matcher.as_ref().expect("checked by caller");
                            let guest = guest.load(&mut store, &instance)?;
                            guest
                                .call_match_message(&mut store, message)
                                .await?
                                .map(RoleResult::Matcher)
                                .map_err(PluginError::Permanent)
                        }
                        RoleCall::Policy(message) => {
                            let guest = policy.as_ref().expect("checked by caller");
                            let guest = guest.load(&mut store, &instance)?;
                            guest
                                .call_decide(&mut store, message)
                                .await?
                                .map(RoleResult::Policy)
                                .map_err(PluginError::Permanent)
                        }
                    }
                }
                Exports::V0_2 {
                    lifecycle,
                    matcher,
                    policy,
                } => {
                    let lifecycle = lifecycle.load(&mut store, &instance)?;
                    if let Err(error) = lifecycle.call_init(&mut store, config).await? {
                        return Ok(Err(Failure::Init(error.into())));
                    }
                    match role {
                        RoleCall::InitOnly => Ok(RoleResult::InitOnly),
                        RoleCall::Matcher(message) => {
                            let guest = matcher.as_ref().expect("checked by caller");
                            let guest = guest.load(&mut store, &instance)?;
                            guest
                                .call_match_message(&mut store, message)
                                .await?
                                .map(|v| RoleResult::Matcher(v.into()))
                                .map_err(PluginError::from)
                        }
                        RoleCall::Policy(message) => {
                            let guest = policy.as_ref().expect("checked by caller");
                            let guest = guest.load(&mut store, &instance)?;
                            guest
                                .call_decide(&mut store, message)
                                .await?
                                .map(|v| RoleResult::Policy(v.into()))
                                .map_err(PluginError::from)
                        }
                    }
                }
            };
            wasmtime::Result::Ok(result.map_err(Failure::Guest))
        };
        // A little grace over the deadline for instantiation and host work;
        // epoch interruption normally fires first.
        let outcome =
            tokio::time::timeout(deadline + deadline / 2 + Duration::from_millis(20), run).await;
        let stderr_tail = store.data().flush_stdio();
        let logs = store.data_mut().take_logs();
        // Text the plugin supplied is bounded and neutralized here, once,
        // before it can be kept, logged or printed anywhere.
        let result = match outcome {
            // A request cut short by the deadline ends the call as a
            // timeout, whatever the plugin did with the error it got.
            _ if store.data().deadline_hit() => Err(CallError::Timeout(deadline)),
            Err(_elapsed) => Err(CallError::Timeout(deadline)),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(Failure::Init(PluginError::Permanent(m))))) => {
                Err(CallError::Init(text::from_plugin(&m)))
            }
            Ok(Ok(Err(Failure::Guest(PluginError::Permanent(m))))) => {
                Err(CallError::Guest(text::from_plugin(&m)))
            }
            Ok(Ok(Err(Failure::Init(PluginError::Temporary(m))))) => Err(CallError::Temporary {
                during_init: true,
                message: text::from_plugin(&m),
            }),
            Ok(Ok(Err(Failure::Guest(PluginError::Temporary(m))))) => Err(CallError::Temporary {
                during_init: false,
                message: text::from_plugin(&m),
            }),
            Ok(Err(error)) => Err(classify(
                &store,
                error,
                deadline,
                stderr_tail,
                transfer_cap(&self.limits),
            )),
        };
        (result, logs)
    }
}

/// Which function a call runs after `init`.
enum RoleCall<'m> {
    InitOnly,
    Matcher(&'m Message),
    Policy(&'m Message),
}

/// What it returned.
enum RoleResult {
    InitOnly,
    Matcher(matcher::Verdict),
    Policy(unknown_sender::PolicyVerdict),
}

/// A guest-reported failure (not a trap), from `init` or the role function.
enum Failure {
    Init(PluginError),
    Guest(PluginError),
}

/// A guest's error in every contract version's terms: 0.1.0's strings are
/// permanent; 0.2.0 says which.
enum PluginError {
    Temporary(String),
    Permanent(String),
}

impl From<v0_2::errors::PluginError> for PluginError {
    fn from(e: v0_2::errors::PluginError) -> Self {
        match e {
            v0_2::errors::PluginError::Temporary(m) => PluginError::Temporary(m),
            v0_2::errors::PluginError::Permanent(m) => PluginError::Permanent(m),
        }
    }
}

/// The most a guest may hand the host in one transfer (wasmtime's hostcall
/// fuel): a generous multiple of the verdict cap, and never under 1 MiB so
/// a long log line is cut by the host rather than refused.
fn transfer_cap(limits: &Limits) -> usize {
    limits.max_output_bytes.saturating_mul(16).max(1 << 20)
}

/// What wasmtime says when a guest tries to copy more than its hostcall
/// fuel allows (the error type itself is private to wasmtime).
const FUEL_EXHAUSTED: &str = "too much data is being copied between the host and the guest";

/// What wasmtime says when a guest breaks the canonical ABI while passing a
/// value: pointers out of bounds or misaligned, bad discriminants, bad UTF-8.
/// These are the plugin's faults, not the engine's.
const ABI_VIOLATIONS: &[&str] = &[
    "out of bounds of memory",
    "not aligned",
    "invalid discriminant",
    "invalid expected discriminant",
    "invalid option discriminant",
    "invalid utf-8",
    "realloc return",
    "invalid char",
];

/// Turns a wasmtime error into the typed call error a user can act on.
fn classify(
    store: &Store<HostState>,
    error: wasmtime::Error,
    deadline: Duration,
    stderr_tail: Option<String>,
    transfer_cap: usize,
) -> CallError {
    if let Some(_size) = store.data().limiter.denied_growth {
        return CallError::MemoryLimit(store.data().limiter.memory_cap);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout(deadline),
        Some(trap) => {
            let said = stderr_tail
                .map(|line| format!(" (plugin said: {})", text::from_plugin(&line)))
                .unwrap_or_default();
            CallError::Trap(format!("{trap}{said}"))
        }
        None => {
            let message = format!("{error:#}");
            if message.contains(FUEL_EXHAUSTED) {
                CallError::TransferTooLarge { cap: transfer_cap }
            } else if ABI_VIOLATIONS
                .iter()
                .any(|v| message.to_ascii_lowercase().contains(v))
            {
                CallError::Malformed(format!(
                    "broke the component ABI: {}",
                    text::from_plugin(&message)
                ))
            } else {
                CallError::Host(text::from_plugin(&message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_versions_change_with_every_setting_and_only_then() {
        let limits = Limits::default();
        let base = config_version("ab", "{}", &limits, FailurePolicy::Quarantine);
        assert_eq!(base.len(), 12);
        assert_eq!(
            base,
            config_version("ab", "{}", &limits, FailurePolicy::Quarantine),
            "the same settings give the same version"
        );
        let mut slower = limits.clone();
        slower.deadline = Duration::from_millis(500);
        for other in [
            config_version("cd", "{}", &limits, FailurePolicy::Quarantine),
            config_version("ab", r#"{"a":1}"#, &limits, FailurePolicy::Quarantine),
            config_version("ab", "{}", &slower, FailurePolicy::Quarantine),
            config_version("ab", "{}", &limits, FailurePolicy::Skip),
        ] {
            assert_ne!(base, other);
        }
    }
}
