//! domain-match: attaches a message to the contacts and leads of the
//! sender's company, found by e-mail domain. Free-mail domains (gmail.com,
//! outlook.com, …) never match by domain: they say nothing about a company.
//!
//! Configuration (all optional):
//! ```json
//! { "fields": ["from", "sender", "reply-to"],
//!   "free_mail_domains": null,
//!   "extra_free_mail_domains": ["mail.example"],
//!   "ignore_domains": ["our-company.example"],
//!   "max_parties": 10 }
//! ```
//! `free_mail_domains` replaces the SDK's built-in list when given;
//! `ignore_domains` lists domains never matched (your own company's). When a
//! domain yields more than `max_parties` parties the plugin gives no opinion:
//! linking a message to a whole company is noise.

use intake_plugin_sdk::{
    Directory, Error, Matcher, Message, PartyRef, Plugin, Verdict, address, log,
};
use serde::Deserialize;

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
    free_mail_domains: Option<Vec<String>>,
    extra_free_mail_domains: Vec<String>,
    ignore_domains: Vec<String>,
    max_parties: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fields: vec![Field::From, Field::Sender, Field::ReplyTo],
            free_mail_domains: None,
            extra_free_mail_domains: Vec::new(),
            ignore_domains: Vec::new(),
            max_parties: 10,
        }
    }
}

struct DomainMatch {
    fields: Vec<Field>,
    /// Lower-case domains that never match.
    excluded: Vec<String>,
    max_parties: usize,
}

impl Plugin for DomainMatch {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if config.max_parties == 0 {
            return Err(Error::new("`max_parties` must be at least 1"));
        }
        let free = match config.free_mail_domains {
            Some(list) => list,
            None => address::FREE_MAIL_DOMAINS
                .iter()
                .map(|d| d.to_string())
                .collect(),
        };
        let excluded = free
            .into_iter()
            .chain(config.extra_free_mail_domains)
            .chain(config.ignore_domains)
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        Ok(DomainMatch {
            fields: config.fields,
            excluded,
            max_parties: config.max_parties,
        })
    }
}

impl Matcher for DomainMatch {
    fn match_message(
        &self,
        message: &Message,
        directory: &dyn Directory,
    ) -> Result<Verdict, Error> {
        let mut domains: Vec<String> = Vec::new();
        for field in &self.fields {
            let boxes: Vec<_> = match field {
                Field::From => message.from.iter().collect(),
                Field::Sender => message.sender.iter().collect(),
                Field::ReplyTo => message.reply_to.iter().collect(),
                Field::To => message.to.iter().collect(),
                Field::Cc => message.cc.iter().collect(),
            };
            for mailbox in boxes {
                if let Some(domain) = mailbox.domain().map(str::to_ascii_lowercase)
                    && !self.excluded.contains(&domain)
                    && !domains.contains(&domain)
                {
                    domains.push(domain);
                }
            }
        }
        let mut parties: Vec<PartyRef> = Vec::new();
        for domain in &domains {
            let found = directory.find_by_domain(domain)?;
            if found.truncated || found.parties.len() > self.max_parties {
                log::info(&format!(
                    "domain {domain} has more than {} parties; not matching by domain",
                    self.max_parties
                ));
                continue;
            }
            for party in &found.parties {
                let r = party.to_ref();
                if !parties.contains(&r) {
                    parties.push(r);
                }
            }
        }
        if parties.len() > self.max_parties {
            return Ok(Verdict::no_opinion());
        }
        Ok(Verdict::attach(parties))
    }
}

intake_plugin_sdk::export_plugin!(DomainMatch: matcher);

#[cfg(test)]
mod tests {
    use intake_plugin_sdk::testing::{MessageBuilder, run_matcher};
    use intake_plugin_sdk::{MemoryDirectory, Outcome, PartyKind};

    use super::*;

    fn directory() -> MemoryDirectory {
        MemoryDirectory::new()
            .with_party(PartyKind::Contact, "ann@acme.example", None)
            .with_party(PartyKind::Lead, "bo@acme.example", None)
            .with_party(PartyKind::Contact, "friend@gmail.com", None)
    }

    fn count(v: &Verdict) -> usize {
        match &v.outcome {
            Outcome::Attach(p) => p.len(),
            _ => 0,
        }
    }

    #[test]
    fn matches_colleagues_by_domain() {
        let m = MessageBuilder::new()
            .from("new.person@ACME.example")
            .build();
        assert_eq!(
            count(&run_matcher::<DomainMatch>("{}", &m, &directory()).unwrap()),
            2
        );
    }

    #[test]
    fn never_matches_free_mail() {
        let m = MessageBuilder::new().from("stranger@gmail.com").build();
        let v = run_matcher::<DomainMatch>("{}", &m, &directory()).unwrap();
        assert_eq!(v.outcome, Outcome::NoOpinion);
        // Replacing the list makes gmail.com an ordinary domain again.
        let v =
            run_matcher::<DomainMatch>(r#"{"free_mail_domains": []}"#, &m, &directory()).unwrap();
        assert_eq!(count(&v), 1);
    }

    #[test]
    fn honours_ignore_and_max() {
        let m = MessageBuilder::new().from("x@acme.example").build();
        let v =
            run_matcher::<DomainMatch>(r#"{"ignore_domains": ["acme.example"]}"#, &m, &directory())
                .unwrap();
        assert_eq!(v.outcome, Outcome::NoOpinion);
        let v = run_matcher::<DomainMatch>(r#"{"max_parties": 1}"#, &m, &directory()).unwrap();
        assert_eq!(v.outcome, Outcome::NoOpinion);
    }

    #[test]
    fn recipients_only_when_asked() {
        let m = MessageBuilder::new()
            .from("me@ours.example")
            .to("ann@acme.example")
            .build();
        assert_eq!(
            run_matcher::<DomainMatch>("{}", &m, &directory())
                .unwrap()
                .outcome,
            Outcome::NoOpinion
        );
        let v = run_matcher::<DomainMatch>(r#"{"fields": ["to"]}"#, &m, &directory()).unwrap();
        assert_eq!(count(&v), 2);
    }
}
