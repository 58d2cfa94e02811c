//! exact-match: attaches a message to the contacts and leads whose address
//! appears on it (sender and recipients), compared case-insensitively, with
//! optional plus-address folding (`ann+news@x` → `ann@x`).
//!
//! Configuration (all optional):
//! ```json
//! { "fields": ["from", "sender", "reply-to", "to", "cc"],
//!   "fold_plus": false,
//!   "ignore": ["sales@our-company.example"] }
//! ```
//! `ignore` lists addresses never matched, typically the mailbox's own.

use intake_plugin_sdk::{
    Directory, Error, Mailbox, Matcher, Message, PartyRef, Plugin, Verdict, address,
};
use serde::Deserialize;

/// Which address fields to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Field {
    From,
    Sender,
    ReplyTo,
    To,
    Cc,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    fields: Vec<Field>,
    fold_plus: bool,
    ignore: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fields: vec![
                Field::From,
                Field::Sender,
                Field::ReplyTo,
                Field::To,
                Field::Cc,
            ],
            fold_plus: false,
            ignore: Vec::new(),
        }
    }
}

struct ExactMatch {
    config: Config,
}

impl Plugin for ExactMatch {
    type Config = Config;

    fn new(mut config: Config) -> Result<Self, Error> {
        if config.fields.is_empty() {
            return Err(Error::new("`fields` is empty: nothing would ever match"));
        }
        config.ignore = config
            .ignore
            .iter()
            .map(|a| address::normalize(a))
            .collect();
        Ok(ExactMatch { config })
    }
}

impl ExactMatch {
    fn addresses<'m>(&self, message: &'m Message) -> Vec<&'m Mailbox> {
        let mut out = Vec::new();
        for field in &self.config.fields {
            match field {
                Field::From => out.extend(&message.from),
                Field::Sender => out.extend(&message.sender),
                Field::ReplyTo => out.extend(&message.reply_to),
                Field::To => out.extend(&message.to),
                Field::Cc => out.extend(&message.cc),
            }
        }
        out
    }
}

impl Matcher for ExactMatch {
    fn match_message(
        &self,
        message: &Message,
        directory: &dyn Directory,
    ) -> Result<Verdict, Error> {
        let mut seen: Vec<String> = Vec::new();
        let mut parties: Vec<PartyRef> = Vec::new();
        for mailbox in self.addresses(message) {
            let addr = address::normalize(&mailbox.address);
            if addr.is_empty() || seen.contains(&addr) || self.config.ignore.contains(&addr) {
                continue;
            }
            let mut found = directory.find_by_address(&addr)?.parties;
            if found.is_empty() && self.config.fold_plus {
                let folded = address::fold_plus(&addr);
                if folded != addr && !self.config.ignore.contains(&folded) {
                    found = directory.find_by_address(&folded)?.parties;
                }
            }
            seen.push(addr);
            for party in found {
                let r = party.to_ref();
                if !parties.contains(&r) {
                    parties.push(r);
                }
            }
        }
        Ok(Verdict::attach(parties))
    }
}

intake_plugin_sdk::export_plugin!(ExactMatch: matcher);

#[cfg(test)]
mod tests {
    use intake_plugin_sdk::testing::{MessageBuilder, run_matcher};
    use intake_plugin_sdk::{MemoryDirectory, Outcome, PartyKind};

    use super::*;

    fn directory() -> MemoryDirectory {
        MemoryDirectory::new()
            .with_party(PartyKind::Contact, "ann@acme.example", Some("Ann"))
            .with_party(PartyKind::Lead, "lee@prospect.example", None)
            .with_party(PartyKind::Contact, "sales@us.example", None)
    }

    fn attached(v: &Verdict) -> Vec<String> {
        match &v.outcome {
            Outcome::Attach(p) => p.iter().map(|r| r.id.clone()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn matches_sender_and_recipients_case_insensitively() {
        let m = MessageBuilder::new()
            .from("ANN@Acme.Example")
            .cc("Lee <lee@prospect.example>")
            .build();
        let v = run_matcher::<ExactMatch>("{}", &m, &directory()).unwrap();
        assert_eq!(attached(&v), ["1", "2"]);
    }

    #[test]
    fn no_opinion_for_strangers() {
        let m = MessageBuilder::new().from("who@else.example").build();
        let v = run_matcher::<ExactMatch>("{}", &m, &directory()).unwrap();
        assert_eq!(v.outcome, Outcome::NoOpinion);
    }

    #[test]
    fn plus_folding_is_opt_in() {
        let m = MessageBuilder::new().from("ann+news@acme.example").build();
        let off = run_matcher::<ExactMatch>("{}", &m, &directory()).unwrap();
        assert_eq!(off.outcome, Outcome::NoOpinion);
        let on = run_matcher::<ExactMatch>(r#"{"fold_plus": true}"#, &m, &directory()).unwrap();
        assert_eq!(attached(&on), ["1"]);
    }

    #[test]
    fn ignores_own_mailbox_and_respects_fields() {
        let m = MessageBuilder::new()
            .from("who@else.example")
            .to("sales@us.example")
            .build();
        let v = run_matcher::<ExactMatch>(r#"{"ignore": ["Sales@us.example"]}"#, &m, &directory())
            .unwrap();
        assert_eq!(v.outcome, Outcome::NoOpinion);
        let m = MessageBuilder::new()
            .from("who@else.example")
            .to("ann@acme.example")
            .build();
        let v = run_matcher::<ExactMatch>(r#"{"fields": ["from"]}"#, &m, &directory()).unwrap();
        assert_eq!(v.outcome, Outcome::NoOpinion);
    }

    #[test]
    fn rejects_bad_config() {
        let m = MessageBuilder::new().build();
        let err = run_matcher::<ExactMatch>(r#"{"feilds": []}"#, &m, &directory()).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = run_matcher::<ExactMatch>(r#"{"fields": []}"#, &m, &directory()).unwrap_err();
        assert!(err.contains("empty"), "{err}");
    }
}
