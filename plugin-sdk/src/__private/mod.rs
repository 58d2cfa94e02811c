//! Glue used by the `export_plugin!` macro. Not public API: names here may
//! change in any release.

pub mod bindings;

use std::any::Any;
use std::cell::RefCell;

pub use bindings::lifecycle::exports::intake::plugin::lifecycle::Guest as LifecycleGuest;
pub use bindings::matcher::exports::intake::plugin::matcher::Guest as MatcherGuest;
pub use bindings::unknown_sender::exports::intake::plugin::unknown_sender::Guest as UnknownSenderGuest;

pub use bindings::errors_v0_2::intake::plugin::errors::PluginError as PluginErrorV0_2;
pub use bindings::lifecycle_v0_2::exports::intake::plugin::lifecycle::Guest as LifecycleGuestV0_2;
pub use bindings::matcher_v0_2::exports::intake::plugin::matcher::{
    Guest as MatcherGuestV0_2, Verdict as VerdictV0_2,
};
pub use bindings::unknown_sender_v0_2::exports::intake::plugin::unknown_sender::{
    Guest as UnknownSenderGuestV0_2, PolicyVerdict as PolicyVerdictV0_2,
};

use crate::{
    Directory, Error, HostDirectory, Matcher, Message, Plugin, PolicyVerdict, UnknownSenderPolicy,
    Verdict,
};

thread_local! {
    /// The plugin value built by `init`. The engine makes a fresh instance per
    /// message and calls `init` first, so this lives for one message.
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// The schema's bytes as a fixed-size array, for the custom section
/// [`crate::export_plugin!`] emits.
pub const fn schema_bytes<const N: usize>(schema: &str) -> [u8; N] {
    let bytes = schema.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Parses the binding's JSON configuration and builds the plugin
/// (contract 0.1.0: every error is a string, which the engine treats as
/// permanent).
pub fn init<P: Plugin>(config: String) -> Result<(), String> {
    init_typed::<P>(config).map_err(|e| e.to_string())
}

/// [`init`] for contract 0.2.0: the error keeps its kind.
pub fn init_v0_2<P: Plugin>(config: String) -> Result<(), PluginErrorV0_2> {
    init_typed::<P>(config).map_err(Error::into_v0_2)
}

fn init_typed<P: Plugin>(config: String) -> Result<(), Error> {
    let plugin = build_typed::<P>(&config)?;
    INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
    Ok(())
}

/// Builds a plugin from a JSON configuration string (empty means `{}`); shared
/// by `init` and the SDK's native test helpers.
pub fn build<P: Plugin>(config: &str) -> Result<P, String> {
    build_typed::<P>(config).map_err(|e| e.to_string())
}

/// [`build`], keeping the error's kind.
pub fn build_typed<P: Plugin>(config: &str) -> Result<P, Error> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let parsed: P::Config = serde_json::from_str(config)
        .map_err(|e| Error::permanent(format!("invalid configuration: {e}")))?;
    P::new(parsed)
}

fn with_instance<P: Plugin, R>(f: impl FnOnce(&P) -> Result<R, Error>) -> Result<R, Error> {
    INSTANCE.with(|slot| {
        let slot = slot.borrow();
        let plugin = slot
            .as_ref()
            .and_then(|p| p.downcast_ref::<P>())
            .ok_or_else(|| Error::permanent("plugin used before init"))?;
        f(plugin)
    })
}

fn match_typed<P: Matcher>(message: Message) -> Result<Verdict, Error> {
    with_instance::<P, _>(|plugin| plugin.match_message(&message, &HostDirectory as &dyn Directory))
}

fn decide_typed<P: UnknownSenderPolicy>(message: Message) -> Result<PolicyVerdict, Error> {
    with_instance::<P, _>(|plugin| plugin.decide(&message, &HostDirectory as &dyn Directory))
}

/// Runs the matcher role on one message.
pub fn match_message<P: Matcher>(message: Message) -> Result<Verdict, String> {
    match_typed::<P>(message).map_err(|e| e.to_string())
}

/// Runs the unknown-sender policy role on one message.
pub fn decide<P: UnknownSenderPolicy>(message: Message) -> Result<PolicyVerdict, String> {
    decide_typed::<P>(message).map_err(|e| e.to_string())
}

/// [`match_message`] for contract 0.2.0.
pub fn match_message_v0_2<P: Matcher>(message: Message) -> Result<VerdictV0_2, PluginErrorV0_2> {
    match_typed::<P>(message)
        .map(v0_2::verdict)
        .map_err(Error::into_v0_2)
}

/// [`decide`] for contract 0.2.0.
pub fn decide_v0_2<P: UnknownSenderPolicy>(
    message: Message,
) -> Result<PolicyVerdictV0_2, PluginErrorV0_2> {
    decide_typed::<P>(message)
        .map(v0_2::policy_verdict)
        .map_err(Error::into_v0_2)
}

/// The SDK's verdicts (0.1.0's records) as 0.2.0's, which are the same
/// records under a new interface version.
mod v0_2 {
    use super::bindings::matcher_v0_2::exports::intake::plugin::matcher as m;
    use super::bindings::unknown_sender_v0_2::exports::intake::plugin::unknown_sender as u;
    use crate::{Decision, Outcome, PolicyVerdict, Terminal, Verdict};

    pub(super) fn verdict(v: Verdict) -> m::Verdict {
        m::Verdict {
            outcome: match v.outcome {
                Outcome::NoOpinion => m::Outcome::NoOpinion,
                Outcome::Attach(refs) => m::Outcome::Attach(refs),
                Outcome::EndChain(Terminal::Discard(r)) => {
                    m::Outcome::EndChain(m::Terminal::Discard(r))
                }
                Outcome::EndChain(Terminal::Quarantine(r)) => {
                    m::Outcome::EndChain(m::Terminal::Quarantine(r))
                }
                Outcome::EndChain(Terminal::KeepUnlinked) => {
                    m::Outcome::EndChain(m::Terminal::KeepUnlinked)
                }
            },
            server_action: v.server_action,
        }
    }

    pub(super) fn policy_verdict(v: PolicyVerdict) -> u::PolicyVerdict {
        u::PolicyVerdict {
            decision: match v.decision {
                Decision::CreateLead(lead) => u::Decision::CreateLead(u::NewLead {
                    email: lead.email,
                    name: lead.name,
                    company: lead.company,
                }),
                Decision::Quarantine(r) => u::Decision::Quarantine(r),
                Decision::Discard(r) => u::Decision::Discard(r),
                Decision::KeepUnlinked => u::Decision::KeepUnlinked,
            },
            server_action: v.server_action,
        }
    }
}
