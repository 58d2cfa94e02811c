//! One `decide()`: raw bytes → parse → the tenant's chain → a decision, the
//! same for every caller — the ingest pipeline, `intake plugin test` (over
//! `.eml` files), quarantine release `--rerun` and `intake replay`. The
//! decision's record ([`Decided::record`]) is what the store keeps for
//! `intake message explain`. A message that does not
//! parse is decided too: it is quarantined with its bytes, never dropped.

use std::sync::Arc;

use crate::directory::{Directory, Party};
use crate::domain::{
    AccountSettings, DecisionRecord, DecisionStep, MessageKey, Outcome, RolloutKey, capped_action,
    default_action,
};
use crate::fetch;
use crate::parse::{self, Envelope, MessageView, Origin};
use crate::plugin::{Chain, Decision, Disposition};
use crate::store::{IncomingMessage, MessageMeta};

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

    /// The decision in the store's terms (the deciding plugin's name goes
    /// with a quarantine or discard).
    pub fn outcome(&self) -> Outcome {
        let plugin = self.decision.decided_by.clone();
        match &self.decision.disposition {
            Disposition::Attach { parties } => {
                Outcome::Attach(parties.iter().map(|p| p.to_ref()).collect())
            }
            Disposition::CreateLead { lead } => Outcome::CreateLead {
                email: lead.email.clone(),
                name: lead.name.clone(),
                company: lead.company.clone(),
            },
            Disposition::Quarantine { reason } => Outcome::Quarantine {
                reason: reason.clone(),
                plugin,
            },
            Disposition::Discard { reason } => Outcome::Discard {
                reason: reason.clone(),
                plugin,
            },
            Disposition::KeepUnlinked => Outcome::KeepUnlinked,
            Disposition::Defer { reason } => Outcome::Defer {
                reason: reason.clone(),
                plugin,
            },
        }
    }

    /// How the decision came about, as the store keeps it beside the
    /// message (`intake message explain`): each step without its log lines,
    /// a failure's text cut to [`RECORDED_ERROR_CHARS`].
    pub fn record(&self) -> DecisionRecord {
        record(&self.decision)
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

/// Most characters of a step's failure kept in a decision record: enough
/// to read what failed, not a plugin's whole output.
pub const RECORDED_ERROR_CHARS: usize = 300;

/// A chain's decision as the store records it.
pub fn record(decision: &Decision) -> DecisionRecord {
    DecisionRecord {
        disposition: decision.disposition.kind().to_owned(),
        decided_by: decision.decided_by.clone(),
        steps: decision
            .steps
            .iter()
            .map(|step| DecisionStep {
                plugin: step.plugin.clone(),
                role: step.role.to_owned(),
                result: step.result.to_owned(),
                micros: step.micros,
                component_sha256: step.component_sha256.clone(),
                config_version: step.config_version.clone(),
                version: step.version,
                candidate: step.candidate,
                error_kind: step.error.as_ref().map(|e| e.kind.to_owned()),
                error: step
                    .error
                    .as_ref()
                    .map(|e| e.message.chars().take(RECORDED_ERROR_CHARS).collect()),
            })
            .collect(),
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
            // A canary's candidate or the active version, per binding, by a
            // key that stays with the message: its Message-ID, else its
            // bytes' hash.
            let content_key;
            let message_key = match &parsed.view.message_id {
                Some(id) => id.as_str(),
                None => {
                    content_key = crate::store::batch::content_key(&parsed.raw);
                    content_key.as_str()
                }
            };
            let chain = chain.for_message(&RolloutKey {
                tenant: &parsed.view.tenant_id,
                account: &parsed.view.account_id,
                message: message_key,
            });
            let decision = chain.run(&parsed, directory).await;
            Decided {
                view: Some(parsed.view),
                decision,
            }
        }
    }
}

/// What deciding needs, owned, so a batch can be decided on several worker
/// threads at once.
pub(super) struct DecideJob {
    pub(super) chain: Chain,
    pub(super) tenant_name: String,
    pub(super) settings: AccountSettings,
    pub(super) max_body_bytes: usize,
}

/// One message decided, in the store's terms.
pub(super) struct DecidedMessage {
    /// What to commit.
    pub(super) incoming: IncomingMessage,
    /// Its Message-ID and the parties it was attached to, for threading.
    pub(super) links: Option<(String, Vec<Party>)>,
    /// The ids it answers (In-Reply-To, References).
    pub(super) parents: Vec<String>,
}

impl DecideJob {
    /// Decides one message with the shared [`decide::decide`]: the outcome,
    /// the server action (the plugin's suggestion capped by the account),
    /// and what later messages need to thread to it.
    pub(super) async fn decide(
        &self,
        directory: &Arc<dyn Directory>,
        message: MessageKey,
        raw: bytes::Bytes,
    ) -> DecidedMessage {
        let envelope = Envelope {
            tenant_id: self.tenant_name.clone(),
            account_id: self.settings.name.clone(),
            origin: Origin::from(&message),
        };
        let decided = decide(
            &self.chain,
            directory.clone(),
            &envelope,
            raw.clone(),
            self.max_body_bytes,
        )
        .await;
        let action = match (&decided.view, &decided.decision.disposition) {
            // Unparseable: the account's default, like any stored message.
            (None, _) => default_action(&self.settings),
            (Some(_), Disposition::Defer { .. }) => deferred_action(&self.settings),
            (Some(_), _) => capped_action(&self.settings, decided.decision.server_action.as_ref()),
        };
        let parents = decided
            .view
            .as_ref()
            .map(|v| v.in_reply_to.iter().chain(&v.references).cloned().collect())
            .unwrap_or_default();
        DecidedMessage {
            incoming: IncomingMessage {
                key: message,
                raw,
                meta: decided.meta(),
                outcome: decided.outcome(),
                action: Some(action),
                decided_by: decided.decision.decided_by.clone(),
                decision: Some(decided.record()),
            },
            links: decided.thread_links(),
            parents,
        }
    }
}

/// What a deferred message's first commit does on the server. An account
/// that keeps copies leaves it exactly as it is (not even `\Seen`): it is
/// not decided yet, and the server's copy stays as a person left it. An
/// account that deletes after fetching deletes it, as it does a quarantined
/// message: the stored bytes are the durable copy from the commit on, and a
/// POP3 server would otherwise hand it over again on every run.
pub(super) fn deferred_action(settings: &AccountSettings) -> crate::domain::Acknowledge {
    if settings.keep_on_server {
        crate::domain::Acknowledge::Leave
    } else {
        default_action(settings)
    }
}

/// Decides `fetched` on up to `workers` tasks (contiguous chunks, so the
/// results come back in fetch order).
pub(super) async fn decide_parallel(
    job: &Arc<DecideJob>,
    directory: &Arc<dyn Directory>,
    fetched: Vec<fetch::Fetched>,
    workers: usize,
) -> Vec<DecidedMessage> {
    let workers = workers.clamp(1, fetched.len().max(1));
    if workers == 1 {
        let mut out = Vec::with_capacity(fetched.len());
        for f in fetched {
            out.push(job.decide(directory, f.message, f.raw).await);
        }
        return out;
    }
    let chunk = fetched.len().div_ceil(workers);
    let mut fetched = fetched.into_iter();
    let mut tasks = Vec::with_capacity(workers);
    loop {
        let part: Vec<fetch::Fetched> = fetched.by_ref().take(chunk).collect();
        if part.is_empty() {
            break;
        }
        let (job, directory) = (job.clone(), directory.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(part.len());
            for f in part {
                out.push(job.decide(&directory, f.message, f.raw).await);
            }
            out
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        match task.await {
            Ok(part) => out.extend(part),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(decision: Decision) -> Outcome {
        Decided {
            view: None,
            decision,
        }
        .outcome()
    }

    #[test]
    fn outcomes_follow_chain_decisions() {
        use crate::directory::PartyKind;
        use crate::plugin::NewLead;
        let decided = |disposition| Decision {
            disposition,
            server_action: None,
            decided_by: Some("unknown-sender".into()),
            steps: Vec::new(),
        };
        let ann = Party {
            kind: PartyKind::Contact,
            id: "7".into(),
            email: "ann@acme.example".into(),
            name: None,
            company: None,
            external_id: None,
        };
        assert_eq!(
            outcome(decided(Disposition::Attach {
                parties: vec![ann.clone()]
            })),
            Outcome::Attach(vec![ann.to_ref()])
        );
        assert_eq!(
            outcome(decided(Disposition::CreateLead {
                lead: NewLead {
                    email: "new@x.example".into(),
                    name: Some("N".into()),
                    company: None,
                },
            })),
            Outcome::CreateLead {
                email: "new@x.example".into(),
                name: Some("N".into()),
                company: None,
            }
        );
        assert_eq!(
            outcome(decided(Disposition::Quarantine { reason: "r".into() })),
            Outcome::Quarantine {
                reason: "r".into(),
                plugin: Some("unknown-sender".into())
            }
        );
        assert_eq!(
            outcome(decided(Disposition::Discard { reason: "d".into() })),
            Outcome::Discard {
                reason: "d".into(),
                plugin: Some("unknown-sender".into())
            }
        );
        assert_eq!(
            outcome(decided(Disposition::KeepUnlinked)),
            Outcome::KeepUnlinked
        );
    }
}
