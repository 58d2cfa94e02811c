//! The plugin chain: matchers in order, then the unknown-sender policy.
//!
//! Rule: the first matcher that attaches or ends the chain decides; a matcher
//! with no opinion passes the message on. If no matcher attached anything,
//! the unknown-sender policy decides; without one, the message is kept
//! unlinked. A failing plugin either ends the chain with a quarantine (the
//! default) or is skipped, per its binding. Every party a plugin names is
//! checked against the tenant's directory before it is trusted.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::binding::{FailurePolicy, LoadedPlugin};
use super::bindings::{matcher, types, unknown_sender};
use super::error::{CallError, LoadError};
use super::host::CallContext;
use crate::directory::{Directory, Party, PartyKind, PartyRef};
use crate::domain::ServerAction;
use crate::parse::ParsedMessage;

/// Longest reason, name, company or folder a plugin may return (bytes).
const MAX_TEXT: usize = crate::text::MAX_PLUGIN_TEXT;

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
    /// `no-opinion`, `attach`, `end-chain`, `decided`, `failed` or `skipped`.
    pub result: &'static str,
    /// The failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// Wall time of the call, microseconds (instantiate + init + call).
    pub micros: u64,
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
        Ok(Chain { matchers, policy })
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
            let result = match plugin.run_matcher_wit(&view, &call).await {
                Ok(verdict) => self.check_matcher_verdict(verdict, &call).await,
                Err(e) => Err(e),
            };
            let micros = started.elapsed().as_micros() as u64;
            match result {
                Ok(None) => steps.push(step(plugin, "matcher", "no-opinion", None, micros)),
                Ok(Some((disposition, action))) => {
                    let label = if matches!(disposition, Disposition::Attach { .. }) {
                        "attach"
                    } else {
                        "end-chain"
                    };
                    steps.push(step(plugin, "matcher", label, None, micros));
                    return decided(disposition, action, plugin, steps);
                }
                Err(error) => {
                    if let Some(d) = on_failure(plugin, "matcher", error, micros, &mut steps) {
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
        let result = match policy.run_policy_wit(&view, &call).await {
            Ok(verdict) => check_policy_verdict(verdict),
            Err(e) => Err(e),
        };
        let micros = started.elapsed().as_micros() as u64;
        match result {
            Ok((disposition, action)) => {
                steps.push(step(policy, "unknown-sender", "decided", None, micros));
                decided(disposition, action, policy, steps)
            }
            Err(error) => on_failure(policy, "unknown-sender", error, micros, &mut steps)
                .unwrap_or(Decision {
                    disposition: Disposition::KeepUnlinked,
                    server_action: None,
                    decided_by: None,
                    steps,
                }),
        }
    }

    /// Validates a matcher's verdict: size caps, and every party must exist
    /// in the message's tenant. `None` means no opinion.
    async fn check_matcher_verdict(
        &self,
        verdict: matcher::Verdict,
        call: &CallContext,
    ) -> Result<Option<(Disposition, Option<ServerAction>)>, CallError> {
        let action = verdict.server_action.map(server_action).transpose()?;
        let disposition = match verdict.outcome {
            matcher::Outcome::NoOpinion => return Ok(None),
            matcher::Outcome::Attach(refs) if refs.is_empty() => return Ok(None),
            matcher::Outcome::Attach(refs) => {
                let mut parties: Vec<Party> = Vec::new();
                for r in refs {
                    let r = PartyRef {
                        kind: match r.kind {
                            types::PartyKind::Contact => PartyKind::Contact,
                            types::PartyKind::Lead => PartyKind::Lead,
                        },
                        id: r.id,
                    };
                    match call.directory.get(&call.tenant_id, &r).await {
                        Ok(Some(party)) => {
                            if !parties.contains(&party) {
                                parties.push(party);
                            }
                        }
                        Ok(None) => {
                            return Err(CallError::Malformed(format!(
                                "{} {:?} does not exist in tenant {:?}",
                                kind_name(r.kind),
                                crate::text::bounded(&r.id, 100),
                                call.tenant_id
                            )));
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
            matcher::Outcome::EndChain(matcher::Terminal::Discard(reason)) => {
                Disposition::Discard {
                    reason: text(reason, "reason")?,
                }
            }
            matcher::Outcome::EndChain(matcher::Terminal::Quarantine(reason)) => {
                Disposition::Quarantine {
                    reason: text(reason, "reason")?,
                }
            }
            matcher::Outcome::EndChain(matcher::Terminal::KeepUnlinked) => {
                Disposition::KeepUnlinked
            }
        };
        Ok(Some((disposition, action)))
    }
}

fn check_policy_verdict(
    verdict: unknown_sender::PolicyVerdict,
) -> Result<(Disposition, Option<ServerAction>), CallError> {
    let action = verdict.server_action.map(server_action).transpose()?;
    let disposition = match verdict.decision {
        unknown_sender::Decision::CreateLead(lead) => {
            let email = lead.email.trim().to_lowercase();
            if !crate::directory::normalise::is_valid_address(&email) {
                return Err(CallError::Malformed(format!(
                    "create-lead with invalid address {:?}",
                    crate::text::bounded(&lead.email, 300)
                )));
            }
            Disposition::CreateLead {
                lead: NewLead {
                    email,
                    name: lead.name.map(|n| text(n, "lead name")).transpose()?,
                    company: lead.company.map(|c| text(c, "lead company")).transpose()?,
                },
            }
        }
        unknown_sender::Decision::Quarantine(reason) => Disposition::Quarantine {
            reason: text(reason, "reason")?,
        },
        unknown_sender::Decision::Discard(reason) => Disposition::Discard {
            reason: text(reason, "reason")?,
        },
        unknown_sender::Decision::KeepUnlinked => Disposition::KeepUnlinked,
    };
    Ok((disposition, action))
}

/// A text field of a verdict: over the cap it makes the result malformed;
/// within it, control characters are neutralized before it is kept.
fn text(value: String, what: &str) -> Result<String, CallError> {
    if value.len() > MAX_TEXT {
        return Err(CallError::Malformed(format!(
            "{what} is {} bytes, over the {MAX_TEXT}-byte limit",
            value.len()
        )));
    }
    Ok(crate::text::neutralize(&value).into_owned())
}

fn server_action(action: types::ServerAction) -> Result<ServerAction, CallError> {
    Ok(match action {
        types::ServerAction::Leave => ServerAction::Leave,
        types::ServerAction::MarkSeen => ServerAction::MarkSeen,
        types::ServerAction::Delete => ServerAction::Delete,
        types::ServerAction::MoveTo(folder) => {
            if folder.trim().is_empty() {
                return Err(CallError::Malformed(
                    "move-to with an empty folder name".into(),
                ));
            }
            ServerAction::MoveTo(text(folder, "folder")?)
        }
    })
}

fn kind_name(kind: PartyKind) -> &'static str {
    match kind {
        PartyKind::Contact => "contact",
        PartyKind::Lead => "lead",
    }
}

fn step(
    plugin: &LoadedPlugin,
    role: &'static str,
    result: &'static str,
    error: Option<StepError>,
    micros: u64,
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

/// Records a failed step; returns the final decision if the policy is to
/// quarantine, or `None` to go on (skip).
fn on_failure(
    plugin: &LoadedPlugin,
    role: &'static str,
    error: CallError,
    micros: u64,
    steps: &mut Vec<Step>,
) -> Option<Decision> {
    tracing::warn!(plugin = plugin.name(), role, kind = error.kind(), error = %error, "plugin call failed");
    let policy = plugin.binding().on_error;
    let message = error.to_string();
    let result = if policy == FailurePolicy::Skip {
        "skipped"
    } else {
        "failed"
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
    ));
    match policy {
        FailurePolicy::Skip => None,
        FailurePolicy::Quarantine => Some(Decision {
            disposition: Disposition::Quarantine {
                reason: format!("plugin {} {message}", plugin.name()),
            },
            server_action: None,
            decided_by: Some(plugin.name().to_string()),
            steps: std::mem::take(steps),
        }),
    }
}
