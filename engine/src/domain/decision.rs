//! What is done with a message: the outcome the store applies, and the
//! server action — a plugin's suggestion, capped by the account.

use serde::Serialize;

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
}
