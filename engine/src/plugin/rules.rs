//! What a plugin returns, checked by the rules the SDK's test harness uses
//! too (`intake_plugin_sdk::rules`), so a plugin's unit tests and the engine
//! refuse the same verdicts.
//!
//! The verdict records generated here (wasmtime) and in the SDK
//! (wit-bindgen) come from the same WIT; they are moved across once, at
//! this edge, and everything after works on the SDK's types.

use intake_plugin_sdk as sdk;
use intake_plugin_sdk::rules::Violation;

use super::bindings::{matcher, types, unknown_sender};
use super::error::CallError;

/// A matcher's verdict, checked for size, text caps and server action.
/// The attached parties still have to be found in the tenant (the chain
/// does that, with the directory).
pub(crate) fn matcher_verdict(
    verdict: matcher::Verdict,
    max_output_bytes: usize,
) -> Result<sdk::Verdict, CallError> {
    let verdict = sdk::Verdict {
        outcome: match verdict.outcome {
            matcher::Outcome::NoOpinion => sdk::Outcome::NoOpinion,
            matcher::Outcome::Attach(refs) => {
                sdk::Outcome::Attach(refs.into_iter().map(party_ref).collect())
            }
            matcher::Outcome::EndChain(matcher::Terminal::Discard(r)) => {
                sdk::Outcome::EndChain(sdk::Terminal::Discard(r))
            }
            matcher::Outcome::EndChain(matcher::Terminal::Quarantine(r)) => {
                sdk::Outcome::EndChain(sdk::Terminal::Quarantine(r))
            }
            matcher::Outcome::EndChain(matcher::Terminal::KeepUnlinked) => {
                sdk::Outcome::EndChain(sdk::Terminal::KeepUnlinked)
            }
        },
        server_action: verdict.server_action.map(server_action),
    };
    sdk::rules::check_verdict(&verdict, max_output_bytes).map_err(refused)?;
    Ok(verdict)
}

/// An unknown-sender policy's verdict, checked for size, text caps, server
/// action and the new lead's address.
pub(crate) fn policy_verdict(
    verdict: unknown_sender::PolicyVerdict,
    max_output_bytes: usize,
) -> Result<sdk::PolicyVerdict, CallError> {
    let verdict = sdk::PolicyVerdict {
        decision: match verdict.decision {
            unknown_sender::Decision::CreateLead(lead) => sdk::Decision::CreateLead(sdk::NewLead {
                email: lead.email,
                name: lead.name,
                company: lead.company,
            }),
            unknown_sender::Decision::Quarantine(r) => sdk::Decision::Quarantine(r),
            unknown_sender::Decision::Discard(r) => sdk::Decision::Discard(r),
            unknown_sender::Decision::KeepUnlinked => sdk::Decision::KeepUnlinked,
        },
        server_action: verdict.server_action.map(server_action),
    };
    sdk::rules::check_policy_verdict(&verdict, max_output_bytes).map_err(refused)?;
    Ok(verdict)
}

/// The call error for a refused verdict. The text is the plugin's in part
/// (ids, addresses), so it is bounded and made inert here.
pub(crate) fn refused(violation: Violation) -> CallError {
    match violation {
        Violation::OutputTooLarge { size, cap } => CallError::OutputTooLarge { size, cap },
        other => CallError::Malformed(crate::text::from_plugin(&other.to_string())),
    }
}

fn party_ref(r: types::PartyRef) -> sdk::PartyRef {
    sdk::PartyRef {
        kind: match r.kind {
            types::PartyKind::Contact => sdk::PartyKind::Contact,
            types::PartyKind::Lead => sdk::PartyKind::Lead,
        },
        id: r.id,
    }
}

fn server_action(action: types::ServerAction) -> sdk::ServerAction {
    match action {
        types::ServerAction::Leave => sdk::ServerAction::Leave,
        types::ServerAction::MarkSeen => sdk::ServerAction::MarkSeen,
        types::ServerAction::Delete => sdk::ServerAction::Delete,
        types::ServerAction::MoveTo(folder) => sdk::ServerAction::MoveTo(folder),
    }
}
