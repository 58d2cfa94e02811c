//! What is done with a message: the outcome the store applies, and the
//! server action — a plugin's suggestion, capped by the account.

use serde::{Deserialize, Serialize};

use super::account::AccountSettings;
use super::message::Acknowledge;
use crate::directory::PartyRef;

/// What the chain decided for a message, as the store applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Store and link to these existing parties.
    Attach(Vec<PartyRef>),
    /// Store and link to a lead with this address: the tenant's existing
    /// lead for it, else a new one.
    CreateLead {
        /// Address.
        email: String,
        /// Display name.
        name: Option<String>,
        /// Company.
        company: Option<String>,
    },
    /// Store the raw bytes in quarantine.
    Quarantine {
        /// Why.
        reason: String,
        /// The plugin that decided or failed, if any.
        plugin: Option<String>,
    },
    /// Store no content; log the reason.
    Discard {
        /// Why.
        reason: String,
        /// The plugin that decided, if any.
        plugin: Option<String>,
    },
    /// Store without links.
    KeepUnlinked,
    /// Store the raw bytes, held as deferred: a plugin failed temporarily,
    /// and the account's next runs decide the message again.
    Defer {
        /// Why.
        reason: String,
        /// The plugin that failed.
        plugin: Option<String>,
    },
}

/// How a decision came about, kept beside the stored message: every plugin
/// of the chain as it ran, with its component and configuration, and who
/// decided. Stored as compact JSON (short keys) in `messages.decision`, in
/// the same row insert as the message, so it costs no statement of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The disposition chosen: `attach`, `create-lead`, `quarantine`,
    /// `discard`, `keep-unlinked` or `defer`.
    #[serde(rename = "d")]
    pub disposition: String,
    /// The plugin that decided; none when nothing did (kept unlinked, or
    /// bytes that did not parse).
    #[serde(rename = "by", default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Every plugin that ran, in order.
    #[serde(rename = "s", default)]
    pub steps: Vec<DecisionStep>,
}

/// One plugin's part in a recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionStep {
    /// Binding name.
    #[serde(rename = "p")]
    pub plugin: String,
    /// `matcher` or `unknown-sender`.
    #[serde(rename = "r")]
    pub role: String,
    /// `no-opinion`, `attach`, `end-chain`, `decided`, `failed` or `skipped`.
    #[serde(rename = "o")]
    pub result: String,
    /// Wall time of the call, microseconds.
    #[serde(rename = "us")]
    pub micros: u64,
    /// SHA-256 of the component's bytes, hex (as `intake plugin list`
    /// shows it).
    #[serde(rename = "c")]
    pub component_sha256: String,
    /// The binding's configuration version (see
    /// `plugin::config_version`): changes whenever its component,
    /// configuration, limits or failure policy do.
    #[serde(rename = "cv")]
    pub config_version: String,
    /// The binding's version number that ran (`intake plugin versions`);
    /// none in records from before versions.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Whether that version ran as the binding's candidate (a canary).
    #[serde(rename = "cn", default, skip_serializing_if = "std::ops::Not::not")]
    pub candidate: bool,
    /// The failure's stable kind (`timeout`, `trap`, …), if it failed.
    #[serde(rename = "ek", default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// The failure, for people.
    #[serde(rename = "em", default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A server action a plugin suggested (the account caps what is honoured).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerAction {
    /// Leave the message alone.
    Leave,
    /// Set `\Seen`.
    MarkSeen,
    /// Delete it.
    Delete,
    /// Move it to a folder.
    MoveTo(String),
}

/// What the account does with a message once it is stored: keep a copy →
/// mark it seen; otherwise delete it. Imports never touch their files.
pub fn default_action(settings: &AccountSettings) -> Acknowledge {
    if settings.keep_on_server {
        Acknowledge::MarkSeen
    } else {
        Acknowledge::Delete
    }
}

/// A plugin's suggestion, capped by the account: an account that keeps
/// copies never deletes; an account whose server has no folders (POP3)
/// cannot move.
pub fn capped_action(settings: &AccountSettings, suggested: Option<&ServerAction>) -> Acknowledge {
    match suggested {
        None => default_action(settings),
        Some(ServerAction::Leave) => Acknowledge::Leave,
        Some(ServerAction::MarkSeen) => Acknowledge::MarkSeen,
        Some(ServerAction::Delete) if settings.keep_on_server => Acknowledge::MarkSeen,
        Some(ServerAction::Delete) => Acknowledge::Delete,
        Some(ServerAction::MoveTo(_)) if !settings.can_move() => default_action(settings),
        Some(ServerAction::MoveTo(folder)) => Acknowledge::MoveTo(folder.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Protocol, Secret, Security};

    #[test]
    fn plugin_suggestions_are_capped_by_the_account() {
        let mut a = AccountSettings::new(
            "a",
            Protocol::Imap,
            "h",
            Security::Tls,
            "u",
            Secret::new("p"),
        );
        a.keep_on_server = true;
        assert_eq!(
            capped_action(&a, Some(&ServerAction::Delete)),
            Acknowledge::MarkSeen
        );
        assert_eq!(capped_action(&a, None), Acknowledge::MarkSeen);
        a.keep_on_server = false;
        assert_eq!(capped_action(&a, None), Acknowledge::Delete);
        assert_eq!(
            capped_action(&a, Some(&ServerAction::MoveTo("X".into()))),
            Acknowledge::MoveTo("X".into())
        );
        a.protocol = Protocol::Pop3;
        assert_eq!(
            capped_action(&a, Some(&ServerAction::MoveTo("X".into()))),
            Acknowledge::Delete
        );
    }

    #[test]
    fn decision_records_are_compact_and_round_trip() {
        let record = DecisionRecord {
            disposition: "attach".into(),
            decided_by: Some("exact_match".into()),
            steps: vec![DecisionStep {
                plugin: "exact_match".into(),
                role: "matcher".into(),
                result: "attach".into(),
                micros: 412,
                component_sha256: "ab".repeat(32),
                config_version: "0123456789ab".into(),
                version: Some(3),
                candidate: true,
                error_kind: None,
                error: None,
            }],
        };
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"d":"attach","by":"exact_match","s":[{{"p":"exact_match","r":"matcher","o":"attach","us":412,"c":"{}","cv":"0123456789ab","v":3,"cn":true}}]}}"#,
                "ab".repeat(32)
            )
        );
        assert_eq!(
            serde_json::from_str::<DecisionRecord>(&json).unwrap(),
            record
        );
    }
}
