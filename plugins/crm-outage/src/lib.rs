//! crm-outage: a contract 0.2.0 test plugin for deferred messages (not
//! bundled). It attaches a message to its sender when the directory knows
//! them; otherwise it acts as if the CRM had not synced the sender yet and
//! fails, temporarily or permanently as configured. Tests add the contact
//! between runs to end the "outage".
//!
//! Configuration:
//! ```json
//! { "unknown": "temporary" | "permanent" | "no-opinion", "init": "ok" | "temporary" }
//! ```
//! `init: "temporary"` fails `init` itself temporarily, for every message.

use intake_plugin_sdk::{Directory, Error, Matcher, Message, Plugin, Verdict};
use serde::Deserialize;

/// What an unknown sender gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Unknown {
    #[default]
    Temporary,
    Permanent,
    NoOpinion,
}

/// How `init` ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Init {
    #[default]
    Ok,
    Temporary,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    unknown: Unknown,
    init: Init,
}

struct CrmOutage {
    unknown: Unknown,
}

impl Plugin for CrmOutage {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if config.init == Init::Temporary {
            return Err(Error::temporary("the CRM's token service is down"));
        }
        Ok(CrmOutage {
            unknown: config.unknown,
        })
    }
}

impl Matcher for CrmOutage {
    fn match_message(
        &self,
        message: &Message,
        directory: &dyn Directory,
    ) -> Result<Verdict, Error> {
        let Some(sender) = message.sender_address() else {
            return Ok(Verdict::no_opinion());
        };
        // An unavailable directory is a temporary error through `?`.
        let found = directory.find_by_address(sender)?;
        if !found.parties.is_empty() {
            return Ok(Verdict::attach(
                found.parties.iter().map(|p| p.to_ref()).collect(),
            ));
        }
        match self.unknown {
            Unknown::Temporary => Err(Error::temporary(format!(
                "the CRM has not synced {sender} yet"
            ))),
            Unknown::Permanent => Err(Error::permanent(format!("{sender} is not in the CRM"))),
            Unknown::NoOpinion => Ok(Verdict::no_opinion()),
        }
    }
}

intake_plugin_sdk::export_plugin!(CrmOutage: matcher; contract = "0.2.0");

#[cfg(test)]
mod tests {
    use super::*;
    use intake_plugin_sdk::testing::{MessageBuilder, try_matcher};
    use intake_plugin_sdk::{LookupError, LookupResult, MemoryDirectory, Outcome, PartyKind};

    #[test]
    fn unknown_senders_fail_as_configured_and_known_ones_attach() {
        let message = MessageBuilder::new().from("bob@new.example").build();
        let empty = MemoryDirectory::new();
        let error = try_matcher::<CrmOutage>("{}", &message, &empty).unwrap_err();
        assert!(error.is_temporary(), "{error}");
        let error =
            try_matcher::<CrmOutage>(r#"{"unknown":"permanent"}"#, &message, &empty).unwrap_err();
        assert!(!error.is_temporary(), "{error}");
        let known = MemoryDirectory::new().with_party(PartyKind::Contact, "bob@new.example", None);
        let verdict = try_matcher::<CrmOutage>("{}", &message, &known).unwrap();
        assert!(matches!(verdict.outcome, Outcome::Attach(ref p) if p.len() == 1));
        let error =
            try_matcher::<CrmOutage>(r#"{"init":"temporary"}"#, &message, &known).unwrap_err();
        assert!(error.is_temporary(), "{error}");
    }

    /// A directory that is down: `?` makes its `unavailable` temporary.
    struct Down;

    impl Directory for Down {
        fn find_by_address(&self, _: &str) -> Result<LookupResult, LookupError> {
            Err(LookupError::Unavailable("database down".into()))
        }
        fn find_by_domain(&self, _: &str) -> Result<LookupResult, LookupError> {
            Err(LookupError::Unavailable("database down".into()))
        }
        fn parties_for_message_id(&self, _: &str) -> Result<LookupResult, LookupError> {
            Err(LookupError::Unavailable("database down".into()))
        }
    }

    #[test]
    fn an_unavailable_directory_is_a_temporary_error() {
        let message = MessageBuilder::new().from("bob@new.example").build();
        let error =
            try_matcher::<CrmOutage>(r#"{"unknown":"no-opinion"}"#, &message, &Down).unwrap_err();
        assert!(error.is_temporary());
        assert_eq!(error.to_string(), "directory unavailable: database down");
    }
}
