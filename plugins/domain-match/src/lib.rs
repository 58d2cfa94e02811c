//! domain-match: attaches a message to the one contact of the sender's
//! company, found by e-mail domain, when the sender is not in the directory
//! themselves. Free-mail domains (gmail.com, outlook.com, …) never match by
//! domain: they say nothing about a company.
//!
//! What it does, by default: among the sender's domains (From, Sender,
//! Reply-To; free-mail and ignored domains left out), it counts the
//! *contacts* at each domain. When exactly one contact shares a domain, the
//! message is attached to that contact (a new colleague writing to the
//! account manager's one contact at a company). With none, or several, it
//! gives no opinion, and the unknown-sender policy decides — by default it
//! creates a lead of the sender's own, with the company filled in from the
//! domain.
//!
//! Why contacts only: leads are created by the engine itself as mail
//! arrives, so counting them would make the outcome depend on the order in
//! which mail arrives (the first stranger at a company gets a lead, the
//! next is attached to that lead, the one after to nobody…). Contacts come
//! from the CRM, so the same mail gets the same links on every run.
//!
//! Configuration (all optional):
//! ```json
//! { "fields": ["from", "sender", "reply-to"],
//!   "kinds": ["contact"],
//!   "max_parties": 1,
//!   "free_mail_domains": null,
//!   "extra_free_mail_domains": ["mail.example"],
//!   "ignore_domains": ["our-company.example"] }
//! ```
//! `kinds` says which parties count (`contact`, `lead`); `max_parties` is
//! how many of them a domain may have for the message to be attached to all
//! of them (more: no opinion). `free_mail_domains` replaces the SDK's
//! built-in list when given; `ignore_domains` lists domains never matched
//! (your own company's).

use intake_plugin_sdk::{
    Directory, Error, Matcher, Message, PartyKind, PartyRef, Plugin, Verdict, address, log,
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

/// A kind of party that counts, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Contact,
    Lead,
}

impl Kind {
    fn matches(self, kind: PartyKind) -> bool {
        matches!(
            (self, kind),
            (Kind::Contact, PartyKind::Contact) | (Kind::Lead, PartyKind::Lead)
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    fields: Vec<Field>,
    kinds: Vec<Kind>,
    free_mail_domains: Option<Vec<String>>,
    extra_free_mail_domains: Vec<String>,
    ignore_domains: Vec<String>,
    max_parties: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fields: vec![Field::From, Field::Sender, Field::ReplyTo],
            kinds: vec![Kind::Contact],
            free_mail_domains: None,
            extra_free_mail_domains: Vec::new(),
            ignore_domains: Vec::new(),
            max_parties: 1,
        }
    }
}

struct DomainMatch {
    fields: Vec<Field>,
    /// Which parties count.
    kinds: Vec<Kind>,
    /// Lower-case domains that never match.
    excluded: Vec<String>,
    max_parties: usize,
}

impl Plugin for DomainMatch {
    type Config = Config;

    // Checked by the engine when the plugin is added, checked or tested, so
    // a mistyped setting is named before any mail is matched.
    const CONFIG_SCHEMA: &'static str = intake_plugin_sdk::config_schema! {
        ignore_domains: array optional "Your own domains: without them every colleague's mail matches your company",
        kinds: array optional "Which parties count: contact, lead",
        max_parties: integer optional "Attach to all parties of a domain that has at most this many",
        fields: array optional "Address fields to take domains from: from, sender, reply-to, to, cc",
        free_mail_domains: array optional "Replaces the built-in list of free-mail domains",
        extra_free_mail_domains: array optional "Added to the built-in list of free-mail domains",
    };

    fn new(config: Config) -> Result<Self, Error> {
        if config.max_parties == 0 {
            return Err(Error::new("`max_parties` must be at least 1"));
        }
        if config.kinds.is_empty() {
            return Err(Error::new(
                "`kinds` is empty: list `contact`, `lead` or both",
            ));
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
            kinds: config.kinds,
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
            if found.truncated {
                log::info(&format!(
                    "domain {domain} has too many parties to count; not matching by domain"
                ));
                return Ok(Verdict::no_opinion());
            }
            let counted: Vec<PartyRef> = found
                .parties
                .iter()
                .filter(|p| self.kinds.iter().any(|k| k.matches(p.kind)))
                .map(|p| p.to_ref())
                .collect();
            if counted.len() > self.max_parties {
                // Several people at the company: which one the sender
                // writes about is a guess, so the policy decides.
                log::info(&format!(
                    "domain {domain} has {} parties (more than {}); not matching by domain",
                    counted.len(),
                    self.max_parties
                ));
                return Ok(Verdict::no_opinion());
            }
            for r in counted {
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
    fn attaches_to_the_one_contact_of_a_company() {
        let m = MessageBuilder::new()
            .from("new.person@ACME.example")
            .build();
        // One contact (ann) and one lead (bo): only the contact counts.
        let v = run_matcher::<DomainMatch>("{}", &m, &directory()).unwrap();
        assert_eq!(count(&v), 1);
        // Counting leads too makes two: no opinion, the policy decides.
        let v = run_matcher::<DomainMatch>(r#"{"kinds": ["contact", "lead"]}"#, &m, &directory())
            .unwrap();
        assert_eq!(v.outcome, Outcome::NoOpinion);
        let v = run_matcher::<DomainMatch>(
            r#"{"kinds": ["contact", "lead"], "max_parties": 2}"#,
            &m,
            &directory(),
        )
        .unwrap();
        assert_eq!(count(&v), 2);
    }

    #[test]
    fn several_contacts_or_only_leads_give_no_opinion() {
        let dir = directory().with_party(PartyKind::Contact, "cy@acme.example", None);
        let m = MessageBuilder::new().from("x@acme.example").build();
        let v = run_matcher::<DomainMatch>("{}", &m, &dir).unwrap();
        assert_eq!(v.outcome, Outcome::NoOpinion);
        let leads_only = MemoryDirectory::new()
            .with_party(PartyKind::Lead, "a@soylent.example", None)
            .with_party(PartyKind::Lead, "b@soylent.example", None);
        let m = MessageBuilder::new().from("eve@soylent.example").build();
        let v = run_matcher::<DomainMatch>("{}", &m, &leads_only).unwrap();
        assert_eq!(v.outcome, Outcome::NoOpinion);
        assert!(run_matcher::<DomainMatch>(r#"{"kinds": []}"#, &m, &leads_only).is_err());
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
    fn the_declared_schema_names_a_mistyped_setting() {
        let m = MessageBuilder::new().from("x@acme.example").build();
        let err =
            run_matcher::<DomainMatch>(r#"{"ignore_domains": "ourco.example"}"#, &m, &directory())
                .unwrap_err();
        assert!(err.contains("`ignore_domains` must be an array"), "{err}");
        let err =
            run_matcher::<DomainMatch>(r#"{"max_parties": "2"}"#, &m, &directory()).unwrap_err();
        assert!(err.contains("`max_parties` must be an integer"), "{err}");
    }

    #[test]
    fn honours_ignore() {
        let m = MessageBuilder::new().from("x@acme.example").build();
        let v =
            run_matcher::<DomainMatch>(r#"{"ignore_domains": ["acme.example"]}"#, &m, &directory())
                .unwrap();
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
        assert_eq!(count(&v), 1);
    }
}
