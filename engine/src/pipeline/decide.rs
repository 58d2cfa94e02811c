//! One `decide()`: raw bytes → parse → the tenant's chain → a decision, the
//! same for every caller — the ingest pipeline, `intake plugin test` (over
//! `.eml` files) and quarantine release `--rerun`. A message that does not
//! parse is decided too: it is quarantined with its bytes, never dropped.

use std::sync::Arc;

use crate::directory::{Directory, Party};
use crate::parse::{self, Envelope, MessageView};
use crate::plugin::{Chain, Decision, Disposition};
use crate::store::{MessageMeta, Outcome};

/// What the chain made of one message.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The parsed view; `None` when the bytes did not parse.
    pub view: Option<MessageView>,
    /// The chain's decision (for unparseable bytes: quarantine, decided by
    /// no plugin, no steps).
    pub decision: Decision,
}

impl Decided {
    /// The header fields the store keeps beside the message.
    pub fn meta(&self) -> MessageMeta {
        let Some(view) = &self.view else {
            return MessageMeta::default();
        };
        MessageMeta {
            message_id: view.message_id.clone(),
            subject: view.subject.clone(),
            from: view.from.first().map(|m| m.address.clone()),
            date: view
                .date
                .as_ref()
                .and_then(|d| chrono::DateTime::from_timestamp(d.unix_seconds, 0)),
        }
    }

    /// The decision in the store's terms.
    pub fn outcome(&self) -> Outcome {
        Outcome::from_decision(&self.decision)
    }

    /// The Message-ID and the parties it was attached to, for threading
    /// replies decided before this message is committed.
    pub fn thread_links(&self) -> Option<(String, Vec<Party>)> {
        match (
            self.view.as_ref().and_then(|v| v.message_id.as_ref()),
            &self.decision.disposition,
        ) {
            (Some(id), Disposition::Attach { parties }) => Some((id.clone(), parties.clone())),
            _ => None,
        }
    }
}

/// Parses `raw` and runs `chain` on it against `directory`.
pub async fn decide(
    chain: &Chain,
    directory: Arc<dyn Directory>,
    envelope: &Envelope,
    raw: bytes::Bytes,
    max_body_bytes: usize,
) -> Decided {
    match parse::parse(raw, envelope, max_body_bytes) {
        Err(e) => Decided {
            view: None,
            decision: Decision {
                disposition: Disposition::Quarantine {
                    reason: format!("unparseable: {e}"),
                },
                server_action: None,
                decided_by: None,
                steps: Vec::new(),
            },
        },
        Ok(parsed) => {
            let decision = chain.run(&parsed, directory).await;
            Decided {
                view: Some(parsed.view),
                decision,
            }
        }
    }
}
