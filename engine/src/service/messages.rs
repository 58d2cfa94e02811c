//! The inbox and the quarantine: what was ingested, with its parties and
//! the plugin that decided; and the admin actions on held messages —
//! release (attach by hand or re-run the chain) and drop.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::directory::{not_found, parse_cursor};
use super::scope::Scope;
use super::{Result, Service, ServiceError, invalid};
use crate::directory::Party;
use crate::domain::DecisionRecord;
use crate::plugin::Disposition;
use crate::store::{
    MessageFilter, MessageStatus, MessageSummary, PartyId, QuarantineEntry, StoredMessageId,
    TokenScope,
};

/// The most messages one page lists.
pub const PAGE_MAX: u64 = 200;

/// Which messages to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// Only this account's (by name).
    pub account: Option<String>,
    /// Only those linked to this party (by id).
    pub party: Option<i64>,
    /// `stored` or `quarantined` (default both).
    pub status: Option<String>,
    /// Only those dated at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only those dated before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
    /// At most this many (default 50, at most 200).
    pub limit: Option<u64>,
}

/// A message as the inbox lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageItem {
    /// What the store keeps.
    #[serde(flatten)]
    pub summary: MessageSummary,
    /// The account's name (`null` once the account is removed).
    pub account_name: Option<String>,
}

/// A page of messages, newest stored first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub items: Vec<MessageItem>,
    /// The cursor of the next page, if there may be one. Stable while new
    /// mail arrives: new messages come before the first page, never inside
    /// a later one.
    pub next: Option<String>,
}

/// Which held messages to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuarantineQuery {
    /// Only this account's (by name).
    pub account: Option<String>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
    /// At most this many (default 50, at most 200).
    pub limit: Option<u64>,
}

/// A page of held messages, newest held first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QuarantinePage {
    /// The held messages, with why and which plugin.
    pub items: Vec<QuarantineEntry>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<String>,
}

/// How to release a held message.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Release {
    /// Link it to these parties (by id or by address).
    Attach {
        /// Party ids.
        #[serde(default)]
        party_ids: Vec<i64>,
        /// Party addresses.
        #[serde(default)]
        emails: Vec<String>,
    },
    /// Run today's plugin chain on it again and apply what it decides.
    Rerun,
    /// Store it without links.
    Unlinked,
}

/// What a release did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Released {
    /// The message, as stored now.
    pub message: MessageItem,
    /// The plugin that decided, on a re-run.
    pub decided_by: Option<String>,
}

/// How the chain decided a stored message (`intake message explain`,
/// `GET /v1/messages/{id}/explain`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// The stored message.
    pub id: i64,
    /// The account's name (`null` once the account is removed).
    pub account_name: Option<String>,
    /// Its status now (a release or a replay may have changed it since).
    pub status: MessageStatus,
    /// Whether the decision was recorded; messages stored before the
    /// engine recorded decisions have only `decided_by`.
    pub recorded: bool,
    /// The disposition the chain chose: `attach`, `create-lead`,
    /// `quarantine`, `discard` or `keep-unlinked`.
    pub disposition: Option<String>,
    /// The plugin that decided; `null` when none did (kept unlinked by
    /// default, or bytes that did not parse).
    pub decided_by: Option<String>,
    /// The version of that plugin that decided (`intake plugin versions`);
    /// `null` when none did or for decisions recorded before versions.
    pub decided_version: Option<u32>,
    /// Whether that version decided as a canary's candidate.
    pub decided_by_candidate: bool,
    /// Why it is held, if it is in quarantine.
    pub quarantine_reason: Option<String>,
    /// Every plugin of the chain as it ran, in order.
    pub steps: Vec<ExplainedStep>,
    /// The parties it is linked to now.
    pub parties: Vec<Party>,
}

/// One plugin's part in a recorded decision.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExplainedStep {
    /// Binding name.
    pub plugin: String,
    /// `matcher` or `unknown-sender`.
    pub role: String,
    /// Its answer: `no-opinion`, `attach`, `end-chain`, `decided`,
    /// `failed` or `skipped`.
    pub result: String,
    /// Whether this step decided.
    pub decided: bool,
    /// Wall time of the call, microseconds.
    pub micros: u64,
    /// SHA-256 of the component's bytes, hex (as `intake plugin list`
    /// shows it).
    pub component_sha256: String,
    /// The binding's configuration version (as `intake plugin list` shows
    /// it): changes with its component, configuration, limits or failure
    /// policy.
    pub config_version: String,
    /// The binding's version number that ran (`intake plugin versions`);
    /// `null` in decisions recorded before versions.
    pub version: Option<u32>,
    /// Whether that version ran as the binding's candidate (a canary).
    pub candidate: bool,
    /// The failure's kind, if it failed.
    pub error_kind: Option<String>,
    /// The failure, if it failed.
    pub error: Option<String>,
}

impl Explanation {
    fn steps(record: &DecisionRecord) -> Vec<ExplainedStep> {
        // The deciding step is the last one of the plugin that decided
        // (a chain stops there).
        let deciding = record.decided_by.as_ref().and_then(|by| {
            record
                .steps
                .iter()
                .rposition(|s| &s.plugin == by && !matches!(s.result.as_str(), "skipped"))
        });
        record
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| ExplainedStep {
                plugin: s.plugin.clone(),
                role: s.role.clone(),
                result: s.result.clone(),
                decided: Some(i) == deciding,
                micros: s.micros,
                component_sha256: s.component_sha256.clone(),
                config_version: s.config_version.clone(),
                version: s.version,
                candidate: s.candidate,
                error_kind: s.error_kind.clone(),
                error: s.error.clone(),
            })
            .collect()
    }
}

impl Service {
    /// How the chain decided a message of the tenant: each plugin's answer
    /// and time, its component and configuration version, and who decided.
    pub async fn explain(&self, scope: &Scope, id: i64) -> Result<Explanation> {
        scope.require(TokenScope::Read)?;
        let message_id = StoredMessageId(id);
        let found = self
            .store
            .message(scope.tenant(), message_id)
            .await?
            .ok_or_else(|| not_found("message", id))?;
        let record = self
            .store
            .decision_record(scope.tenant(), message_id)
            .await?;
        let quarantine_reason = match found.summary.status {
            MessageStatus::Quarantined => self
                .store
                .quarantine_reason(scope.tenant(), message_id)
                .await?
                .map(|(reason, _)| reason),
            _ => None,
        };
        let names = self.account_names(scope).await?;
        let summary = found.summary;
        let steps = record.as_ref().map(Explanation::steps).unwrap_or_default();
        let deciding = steps.iter().find(|s| s.decided);
        Ok(Explanation {
            decided_version: deciding.and_then(|s| s.version),
            decided_by_candidate: deciding.is_some_and(|s| s.candidate),
            id,
            account_name: summary.account.and_then(|a| names.get(&a.0).cloned()),
            status: summary.status,
            recorded: record.is_some(),
            disposition: record.as_ref().map(|r| r.disposition.clone()),
            decided_by: match &record {
                Some(r) => r.decided_by.clone(),
                None => summary.decided_by,
            },
            quarantine_reason,
            steps,
            parties: summary.parties,
        })
    }

    /// The account a listing is filtered by, by name; an unknown name is a
    /// refused `account` parameter.
    async fn account_filter(
        &self,
        scope: &Scope,
        name: Option<&str>,
    ) -> Result<Option<crate::store::AccountId>> {
        let Some(name) = name else { return Ok(None) };
        match self.store.account_id(scope.tenant(), name).await {
            Ok(id) => Ok(Some(id)),
            Err(crate::store::Error::NotFound { .. }) => {
                Err(invalid("account", format!("no account {name:?}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn account_names(&self, scope: &Scope) -> Result<std::collections::HashMap<i64, String>> {
        Ok(self
            .store
            .accounts(scope.tenant())
            .await?
            .into_iter()
            .map(|a| (a.id.0, a.config.name))
            .collect())
    }

    fn item(
        names: &std::collections::HashMap<i64, String>,
        summary: MessageSummary,
    ) -> MessageItem {
        MessageItem {
            account_name: summary.account.and_then(|a| names.get(&a.0).cloned()),
            summary,
        }
    }

    /// A page of the inbox.
    pub async fn messages(&self, scope: &Scope, query: &MessageQuery) -> Result<MessagePage> {
        scope.require(TokenScope::Read)?;
        let limit = query.limit.unwrap_or(50).clamp(1, PAGE_MAX);
        let account = self.account_filter(scope, query.account.as_deref()).await?;
        let status = match query.status.as_deref() {
            None => None,
            Some("stored") => Some(MessageStatus::Stored),
            Some("quarantined") => Some(MessageStatus::Quarantined),
            Some(other) => {
                return Err(invalid(
                    "status",
                    format!("{other:?}: expected stored or quarantined"),
                ));
            }
        };
        if let (Some(since), Some(until)) = (query.since, query.until)
            && since >= until
        {
            return Err(invalid("until", "must be after since"));
        }
        let filter = MessageFilter {
            account,
            party: query.party.map(PartyId),
            status,
            since: query.since,
            until: query.until,
            before: parse_cursor(query.cursor.as_deref())?.map(StoredMessageId),
            limit,
        };
        let rows = self.store.message_page(scope.tenant(), &filter).await?;
        let next = (rows.len() as u64 == limit)
            .then(|| rows.last().map(|m| m.id.0.to_string()))
            .flatten();
        let names = self.account_names(scope).await?;
        Ok(MessagePage {
            items: rows.into_iter().map(|m| Self::item(&names, m)).collect(),
            next,
        })
    }

    /// One stored or quarantined message, with its parties.
    pub async fn message(&self, scope: &Scope, id: i64) -> Result<MessageItem> {
        scope.require(TokenScope::Read)?;
        let found = self
            .store
            .message(scope.tenant(), StoredMessageId(id))
            .await?
            .filter(|m| {
                matches!(
                    m.summary.status,
                    MessageStatus::Stored | MessageStatus::Quarantined
                )
            })
            .ok_or_else(|| not_found("message", id))?;
        let names = self.account_names(scope).await?;
        Ok(Self::item(&names, found.summary))
    }

    /// A message's exact bytes, as the server sent them.
    pub async fn raw_message(&self, scope: &Scope, id: i64) -> Result<Vec<u8>> {
        scope.require(TokenScope::Read)?;
        self.store
            .message(scope.tenant(), StoredMessageId(id))
            .await?
            .and_then(|m| m.raw)
            .ok_or_else(|| not_found("message", id))
    }

    /// A page of what is held in quarantine, newest first, optionally of
    /// one account.
    pub async fn quarantined(
        &self,
        scope: &Scope,
        query: &QuarantineQuery,
    ) -> Result<QuarantinePage> {
        scope.require(TokenScope::Read)?;
        let account = self.account_filter(scope, query.account.as_deref()).await?;
        let limit = query.limit.unwrap_or(50).clamp(1, PAGE_MAX);
        let rows = self
            .store
            .quarantine_page(
                scope.tenant(),
                account,
                parse_cursor(query.cursor.as_deref())?,
                limit,
            )
            .await?;
        let next = (rows.len() as u64 == limit)
            .then(|| rows.last().map(|(id, _)| id.to_string()))
            .flatten();
        Ok(QuarantinePage {
            items: rows.into_iter().map(|(_, entry)| entry).collect(),
            next,
        })
    }

    /// Releases a held message: linked to the parties given, or to what
    /// the chain decides now, or to nobody.
    pub async fn release(&self, scope: &Scope, id: i64, how: &Release) -> Result<Released> {
        scope.require(TokenScope::Write)?;
        let id = StoredMessageId(id);
        if self
            .store
            .quarantine_reason(scope.tenant(), id)
            .await?
            .is_none()
        {
            return Err(not_found("quarantined message", id));
        }
        let (parties, rerun) = match how {
            Release::Attach { party_ids, emails } => {
                if party_ids.is_empty() && emails.is_empty() {
                    return Err(invalid(
                        "party_ids",
                        "give party_ids or emails (or release unlinked)",
                    ));
                }
                let mut parties = Vec::new();
                for &pid in party_ids {
                    if self
                        .store
                        .party(scope.tenant(), PartyId(pid))
                        .await?
                        .is_none()
                    {
                        return Err(invalid("party_ids", format!("no party {pid}")));
                    }
                    parties.push(PartyId(pid));
                }
                for email in emails {
                    let found = self
                        .store
                        .find_parties(
                            scope.tenant(),
                            &crate::store::PartyFilter {
                                email: Some(email.clone()),
                                limit: 1,
                                ..Default::default()
                            },
                        )
                        .await?;
                    let party = found.first().ok_or_else(|| {
                        invalid("emails", format!("no contact or lead with address {email}"))
                    })?;
                    parties.push(PartyId(party.id.parse().unwrap_or_default()));
                }
                (parties, None)
            }
            Release::Rerun => self.rerun(scope, id).await?,
            Release::Unlinked => (Vec::new(), None),
        };
        self.store
            .release_quarantined_to(scope.tenant(), id, &parties, rerun.as_ref())
            .await?;
        Ok(Released {
            message: self.message(scope, id.0).await?,
            decided_by: rerun.and_then(|r| r.decided_by),
        })
    }

    /// Runs today's chain on a held message: the parties to link it to.
    async fn rerun(
        &self,
        scope: &Scope,
        id: StoredMessageId,
    ) -> Result<(Vec<PartyId>, Option<DecisionRecord>)> {
        let raw = self
            .store
            .message(scope.tenant(), id)
            .await?
            .and_then(|m| m.raw)
            .ok_or_else(|| {
                ServiceError::Refused("no raw bytes are kept for this message".into())
            })?;
        let pipeline = self.pipeline_or_default()?;
        let decided = pipeline
            .decide_stored(
                scope.tenant(),
                scope.tenant_name(),
                id,
                raw.into(),
                self.key.as_ref(),
            )
            .await
            .map_err(|e| ServiceError::Refused(format!("the chain could not run: {e}")))?;
        let record = decided.record();
        let decision = decided.decision;
        if decided.view.is_none() {
            let reason = match &decision.disposition {
                Disposition::Quarantine { reason } => reason.clone(),
                _ => String::new(),
            };
            return Err(ServiceError::Refused(format!("still held: {reason}")));
        }
        let parties = match decision.disposition {
            Disposition::Attach { parties } => parties
                .iter()
                .map(|p| p.id.parse().map(PartyId))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| ServiceError::Refused("the chain returned a bad party id".into()))?,
            // The same lead the pipeline would link to: an existing lead
            // with that address is linked as it is, never renamed.
            Disposition::CreateLead { lead } => vec![
                self.store
                    .lead_for(scope.tenant(), &lead.email, &lead.name, &lead.company)
                    .await?,
            ],
            Disposition::Quarantine { reason } => {
                return Err(ServiceError::Refused(format!(
                    "the chain quarantines it again: {reason}"
                )));
            }
            Disposition::Discard { reason } => {
                return Err(ServiceError::Refused(format!(
                    "the chain would discard it ({reason}); drop it instead"
                )));
            }
            Disposition::Defer { reason } => {
                return Err(ServiceError::Refused(format!(
                    "a plugin failed temporarily ({reason}); try again later"
                )));
            }
            Disposition::KeepUnlinked => Vec::new(),
        };
        Ok((parties, Some(record)))
    }

    /// Drops a held message: only its keys stay, so it is not ingested
    /// again.
    pub async fn drop_quarantined(&self, scope: &Scope, id: i64) -> Result<()> {
        scope.require(TokenScope::Write)?;
        let id = StoredMessageId(id);
        if self
            .store
            .quarantine_reason(scope.tenant(), id)
            .await?
            .is_none()
        {
            return Err(not_found("quarantined message", id));
        }
        Ok(self.store.drop_quarantined(scope.tenant(), id).await?)
    }
}
