//! The plugin chain: matchers in order, then the unknown-sender policy.
//!
//! Rule: the first matcher that attaches or ends the chain decides; a matcher
//! with no opinion passes the message on. If no matcher attached anything,
//! the unknown-sender policy decides; without one, the message is kept
//! unlinked. A failing plugin either ends the chain with a quarantine (the
//! default) or is skipped, per its binding; a plugin's *temporary* error
//! (contract 0.2.0) ends the chain with a deferral instead of a quarantine,
//! so the message is decided again later. Every party a plugin names is
//! checked against the tenant's directory before it is trusted.
//!
//! A binding may have a candidate version beside its active one (a canary):
//! [`Chain::for_message`] picks, per message, the candidate wherever its
//! rollout takes the message, before the chain runs.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use intake_plugin_sdk as sdk;
use intake_plugin_sdk::rules::Violation;

use super::binding::{FailurePolicy, LoadedPlugin};
use super::error::{CallError, LoadError};
use super::host::{CallContext, PluginLog};
use crate::directory::{Directory, Party, PartyKind, PartyRef};
use crate::domain::{Rollout, RolloutKey, ServerAction};
use crate::parse::ParsedMessage;

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Disposition {
    /// Store and link to these (existing) parties.
    Attach {
        /// The parties, as found in the directory.
        parties: Vec<Party>,
    },
    /// Create a lead, store, and link to it.
    CreateLead {
        /// The lead to create.
        lead: NewLead,
    },
    /// Store the raw message in quarantine.
    Quarantine {
        /// Why.
        reason: String,
    },
    /// Do not store; log the reason.
    Discard {
        /// Why.
        reason: String,
    },
    /// Store without links.
    KeepUnlinked,
    /// Keep the raw message and decide it again later: a plugin failed
    /// temporarily (contract 0.2.0's `plugin-error.temporary`).
    Defer {
        /// Why: the plugin and its message.
        reason: String,
    },
}

impl Disposition {
    /// Its kind, as reports and the decision record name it: `attach`,
    /// `create-lead`, `quarantine`, `discard`, `keep-unlinked` or `defer`.
    pub fn kind(&self) -> &'static str {
        match self {
            Disposition::Attach { .. } => "attach",
            Disposition::CreateLead { .. } => "create-lead",
            Disposition::Quarantine { .. } => "quarantine",
            Disposition::Discard { .. } => "discard",
            Disposition::KeepUnlinked => "keep-unlinked",
            Disposition::Defer { .. } => "defer",
        }
    }
}

/// A lead an unknown-sender policy asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewLead {
    /// Lower-case address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Company.
    pub company: Option<String>,
}

/// One plugin's part in a decision.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Binding name.
    pub plugin: String,
    /// `matcher` or `unknown-sender`.
    pub role: &'static str,
    /// `no-opinion`, `attach`, `end-chain`, `decided`, `failed`,
    /// `deferred` (failed temporarily) or `skipped`.
    pub result: &'static str,
    /// The failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// Wall time of the call, microseconds (instantiate + init + call).
    pub micros: u64,
    /// SHA-256 of the component's bytes, hex.
    pub component_sha256: String,
    /// The binding's configuration version ([`super::config_version`]).
    pub config_version: String,
    /// The binding's version number that ran, for a chain loaded from the
    /// store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Whether that version ran as the binding's candidate (a canary).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub candidate: bool,
    /// The contract version the component targets (`0.1.0`, `0.2.0`).
    pub contract: &'static str,
    /// What the plugin logged during the call (also sent to the log).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<PluginLog>,
}

/// A failed step, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct StepError {
    /// Stable kind, e.g. `timeout`.
    pub kind: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// The chain's answer for one message.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// What to do.
    pub disposition: Disposition,
    /// Suggested server action from the deciding plugin, if any.
    pub server_action: Option<ServerAction>,
    /// The plugin that decided; none when nothing did (kept unlinked).
    pub decided_by: Option<String>,
    /// Every plugin that ran, in order.
    pub steps: Vec<Step>,
}

/// An ordered set of matchers and an optional unknown-sender policy.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    matchers: Vec<Arc<LoadedPlugin>>,
    policy: Option<Arc<LoadedPlugin>>,
    /// Candidate versions of some of the bindings above, by name, each
    /// with the messages it takes.
    candidates: Vec<(Arc<LoadedPlugin>, Rollout)>,
}

impl Chain {
    /// A chain; every matcher must export the matcher role and the policy the
    /// unknown-sender role.
    pub fn new(
        matchers: Vec<Arc<LoadedPlugin>>,
        policy: Option<Arc<LoadedPlugin>>,
    ) -> Result<Self, LoadError> {
        for m in &matchers {
            if !m.roles().matcher {
                return Err(LoadError::MissingRole {
                    name: m.name().into(),
                    wanted: "matcher",
                    exports: "unknown-sender only".into(),
                });
            }
        }
        if let Some(p) = &policy
            && !p.roles().unknown_sender
        {
            return Err(LoadError::MissingRole {
                name: p.name().into(),
                wanted: "unknown-sender",
                exports: "matcher only".into(),
            });
        }
        Ok(Chain {
            matchers,
            policy,
            candidates: Vec::new(),
        })
    }

    /// The same chain with `candidate`, another version of the binding of
    /// the same name, deciding the messages `rollout` takes. It must export
    /// the role that binding has in the chain.
    pub fn with_candidate(
        mut self,
        candidate: Arc<LoadedPlugin>,
        rollout: Rollout,
    ) -> Result<Self, LoadError> {
        let name = candidate.name();
        let is_matcher = self.matchers.iter().any(|m| m.name() == name);
        let is_policy = self.policy.as_ref().is_some_and(|p| p.name() == name);
        let (wanted, has) = match (is_matcher, is_policy) {
            (true, _) => ("matcher", candidate.roles().matcher),
            (false, true) => ("unknown-sender", candidate.roles().unknown_sender),
            (false, false) => {
                return Err(LoadError::Engine(format!(
                    "{name}: a candidate version of a binding that is not in the chain"
                )));
            }
        };
        if !has {
            return Err(LoadError::MissingRole {
                name: name.into(),
                wanted,
                exports: if wanted == "matcher" {
                    "unknown-sender only".into()
                } else {
                    "matcher only".into()
                },
            });
        }
        self.candidates.retain(|(c, _)| c.name() != name);
        self.candidates.push((candidate, rollout));
        Ok(self)
    }

    /// The candidate versions and their rollouts.
    pub fn candidates(&self) -> &[(Arc<LoadedPlugin>, Rollout)] {
        &self.candidates
    }

    /// The chain one message runs: each binding's candidate where its
    /// rollout takes the message, its active version elsewhere. The same
    /// key always gives the same chain.
    pub fn for_message(&self, key: &RolloutKey<'_>) -> Cow<'_, Chain> {
        let taken: Vec<&Arc<LoadedPlugin>> = self
            .candidates
            .iter()
            .filter(|(plugin, rollout)| rollout.takes(plugin.name(), key))
            .map(|(plugin, _)| plugin)
            .collect();
        if taken.is_empty() {
            return Cow::Borrowed(self);
        }
        let pick = |plugin: &Arc<LoadedPlugin>| {
            taken
                .iter()
                .find(|c| c.name() == plugin.name())
                .map_or_else(|| plugin.clone(), |c| Arc::clone(c))
        };
        Cow::Owned(Chain {
            matchers: self.matchers.iter().map(pick).collect(),
            policy: self.policy.as_ref().map(pick),
            candidates: Vec::new(),
        })
    }

    /// The chain of active versions only: no canary runs.
    pub fn without_candidates(&self) -> Chain {
        Chain {
            candidates: Vec::new(),
            ..self.clone()
        }
    }

    /// The matchers, in order.
    pub fn matchers(&self) -> &[Arc<LoadedPlugin>] {
        &self.matchers
    }

    /// The unknown-sender policy.
    pub fn policy(&self) -> Option<&Arc<LoadedPlugin>> {
        self.policy.as_ref()
    }

    /// Runs the chain on one message for `tenant_id`/`account_id` (taken from
    /// the message view) against `directory`.
    pub async fn run(&self, message: &ParsedMessage, directory: Arc<dyn Directory>) -> Decision {
        let call = Arc::new(CallContext {
            tenant_id: message.view.tenant_id.clone(),
            account_id: message.view.account_id.clone(),
            directory,
            raw: message.raw.clone(),
        });
        let mut steps = Vec::new();
        // The contract's record, built once for every plugin of the chain.
        let view = super::view::to_wit(&message.view);

        for plugin in &self.matchers {
            let started = Instant::now();
            let (result, logs) = plugin.run_matcher_wit(&view, &call).await;
            let result = match result {
                Ok(verdict) => self.check_matcher_verdict(verdict, &call).await,
                Err(e) => Err(e),
            };
            let micros = started.elapsed().as_micros() as u64;
            match result {
                Ok(None) => steps.push(step(plugin, "matcher", "no-opinion", None, micros, logs)),
                Ok(Some((disposition, action))) => {
                    let label = if matches!(disposition, Disposition::Attach { .. }) {
                        "attach"
                    } else {
                        "end-chain"
                    };
                    steps.push(step(plugin, "matcher", label, None, micros, logs));
                    return decided(disposition, action, plugin, steps);
                }
                Err(error) => {
                    let failed = Failed {
                        role: "matcher",
                        error,
                        micros,
                        logs,
                    };
                    if let Some(d) = on_failure(plugin, failed, &mut steps) {
                        return d;
                    }
                }
            }
        }

        let Some(policy) = &self.policy else {
            return Decision {
                disposition: Disposition::KeepUnlinked,
                server_action: None,
                decided_by: None,
                steps,
            };
        };
        let started = Instant::now();
        let (result, logs) = policy.run_policy_wit(&view, &call).await;
        let result = result.map(policy_disposition);
        let micros = started.elapsed().as_micros() as u64;
        match result {
            Ok((disposition, action)) => {
                steps.push(step(
                    policy,
                    "unknown-sender",
                    "decided",
                    None,
                    micros,
                    logs,
                ));
                decided(disposition, action, policy, steps)
            }
            Err(error) => {
                let failed = Failed {
                    role: "unknown-sender",
                    error,
                    micros,
                    logs,
                };
                on_failure(policy, failed, &mut steps).unwrap_or(Decision {
                    disposition: Disposition::KeepUnlinked,
                    server_action: None,
                    decided_by: None,
                    steps,
                })
            }
        }
    }

    /// Turns a matcher's verdict (already through the SDK's rules) into a
    /// disposition; every party must exist in the message's tenant. `None`
    /// means no opinion.
    async fn check_matcher_verdict(
        &self,
        verdict: sdk::Verdict,
        call: &CallContext,
    ) -> Result<Option<(Disposition, Option<ServerAction>)>, CallError> {
        let action = verdict.server_action.map(server_action);
        let disposition = match verdict.outcome {
            sdk::Outcome::NoOpinion => return Ok(None),
            sdk::Outcome::Attach(refs) if refs.is_empty() => return Ok(None),
            sdk::Outcome::Attach(refs) => {
                let mut parties: Vec<Party> = Vec::new();
                for r in refs {
                    let wanted = PartyRef {
                        kind: match r.kind {
                            sdk::PartyKind::Contact => PartyKind::Contact,
                            sdk::PartyKind::Lead => PartyKind::Lead,
                        },
                        id: r.id,
                    };
                    match call.directory.get(&call.tenant_id, &wanted).await {
                        Ok(Some(party)) => {
                            if !parties.contains(&party) {
                                parties.push(party);
                            }
                        }
                        Ok(None) => {
                            return Err(super::rules::refused(Violation::UnknownParty {
                                kind: r.kind,
                                id: wanted.id,
                                tenant: call.tenant_id.clone(),
                            }));
                        }
                        Err(e) => {
                            return Err(CallError::Host(format!(
                                "cannot check returned party: {e}"
                            )));
                        }
                    }
                }
                Disposition::Attach { parties }
            }
            sdk::Outcome::EndChain(sdk::Terminal::Discard(reason)) => Disposition::Discard {
                reason: inert(reason),
            },
            sdk::Outcome::EndChain(sdk::Terminal::Quarantine(reason)) => Disposition::Quarantine {
                reason: inert(reason),
            },
            sdk::Outcome::EndChain(sdk::Terminal::KeepUnlinked) => Disposition::KeepUnlinked,
        };
        Ok(Some((disposition, action)))
    }
}

/// An unknown-sender policy's verdict (already through the SDK's rules) as
/// a disposition.
fn policy_disposition(verdict: sdk::PolicyVerdict) -> (Disposition, Option<ServerAction>) {
    let action = verdict.server_action.map(server_action);
    let disposition = match verdict.decision {
        sdk::Decision::CreateLead(lead) => Disposition::CreateLead {
            lead: NewLead {
                email: lead.email.trim().to_lowercase(),
                name: lead.name.map(inert),
                company: lead.company.map(inert),
            },
        },
        sdk::Decision::Quarantine(reason) => Disposition::Quarantine {
            reason: inert(reason),
        },
        sdk::Decision::Discard(reason) => Disposition::Discard {
            reason: inert(reason),
        },
        sdk::Decision::KeepUnlinked => Disposition::KeepUnlinked,
    };
    (disposition, action)
}

/// A text field of a verdict, within its cap (the rules checked that),
/// with control characters neutralized before it is kept.
fn inert(value: String) -> String {
    match crate::text::neutralize(&value) {
        std::borrow::Cow::Borrowed(_) => value,
        std::borrow::Cow::Owned(shown) => shown,
    }
}

fn server_action(action: sdk::ServerAction) -> ServerAction {
    match action {
        sdk::ServerAction::Leave => ServerAction::Leave,
        sdk::ServerAction::MarkSeen => ServerAction::MarkSeen,
        sdk::ServerAction::Delete => ServerAction::Delete,
        sdk::ServerAction::MoveTo(folder) => ServerAction::MoveTo(inert(folder)),
    }
}

fn step(
    plugin: &LoadedPlugin,
    role: &'static str,
    result: &'static str,
    error: Option<StepError>,
    micros: u64,
    logs: Vec<PluginLog>,
) -> Step {
    // A no-op unless a recorder is installed (`intake serve`).
    metrics::histogram!(
        "intake_plugin_call_seconds",
        "plugin" => plugin.name().to_string(),
        "role" => role,
    )
    .record(micros as f64 / 1e6);
    Step {
        plugin: plugin.name().to_string(),
        role,
        result,
        error,
        micros,
        component_sha256: plugin.component_sha256().to_string(),
        config_version: plugin.config_version().to_string(),
        version: plugin.version().map(|v| v.number),
        candidate: plugin.version().is_some_and(|v| v.candidate),
        contract: plugin.contract().as_str(),
        logs,
    }
}

fn decided(
    disposition: Disposition,
    server_action: Option<ServerAction>,
    plugin: &LoadedPlugin,
    steps: Vec<Step>,
) -> Decision {
    Decision {
        disposition,
        server_action,
        decided_by: Some(plugin.name().to_string()),
        steps,
    }
}

/// A failed call, as the chain records it.
struct Failed {
    role: &'static str,
    error: CallError,
    micros: u64,
    logs: Vec<PluginLog>,
}

/// Records a failed step; returns the final decision if the policy is to
/// quarantine (a deferral, for a temporary error), or `None` to go on
/// (skip: the operator said this plugin's failures do not hold mail up).
fn on_failure(plugin: &LoadedPlugin, failed: Failed, steps: &mut Vec<Step>) -> Option<Decision> {
    let Failed {
        role,
        error,
        micros,
        logs,
    } = failed;
    tracing::warn!(plugin = plugin.name(), role, kind = error.kind(), error = %error, "plugin call failed");
    let policy = plugin.binding().on_error;
    let message = error.to_string();
    let temporary = error.is_temporary();
    let result = match (policy, temporary) {
        (FailurePolicy::Skip, _) => "skipped",
        (FailurePolicy::Quarantine, true) => "deferred",
        (FailurePolicy::Quarantine, false) => "failed",
    };
    steps.push(step(
        plugin,
        role,
        result,
        Some(StepError {
            kind: error.kind(),
            message: message.clone(),
        }),
        micros,
        logs,
    ));
    match policy {
        FailurePolicy::Skip => None,
        FailurePolicy::Quarantine => Some(Decision {
            disposition: if temporary {
                Disposition::Defer {
                    reason: format!("plugin {} {message}", plugin.name()),
                }
            } else {
                Disposition::Quarantine {
                    reason: format!("plugin {} {message}", plugin.name()),
                }
            },
            server_action: None,
            decided_by: Some(plugin.name().to_string()),
            steps: std::mem::take(steps),
        }),
    }
}
