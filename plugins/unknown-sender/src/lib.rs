//! unknown-sender: decides what happens to mail that no matcher attached to
//! anyone: create a lead (default), quarantine, discard or keep it unlinked.
//!
//! A created lead takes the sender's address, the display name (or one
//! derived from a `first.last` local part), and a company derived from the
//! domain unless it is a free-mail domain. Robot senders (`no-reply`,
//! `MAILER-DAEMON`) never become leads; their mail is kept unlinked.
//!
//! Configuration (all optional):
//! ```json
//! { "action": "create-lead",
//!   "free_mail_domains": null,
//!   "extra_free_mail_domains": [],
//!   "server_action": null }
//! ```
//! `action` is `create-lead`, `quarantine`, `discard` or `keep`.

use intake_plugin_sdk::{
    Directory, Error, Message, NewLead, Plugin, PolicyVerdict, ServerAction, UnknownSenderPolicy,
    address, log,
};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Action {
    CreateLead,
    Quarantine,
    Discard,
    Keep,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    action: Action,
    free_mail_domains: Option<Vec<String>>,
    extra_free_mail_domains: Vec<String>,
    server_action: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            action: Action::CreateLead,
            free_mail_domains: None,
            extra_free_mail_domains: Vec::new(),
            server_action: None,
        }
    }
}

struct UnknownSender {
    action: Action,
    free_mail: Vec<String>,
    server_action: Option<ServerAction>,
}

impl Plugin for UnknownSender {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        let free = match config.free_mail_domains {
            Some(list) => list,
            None => address::FREE_MAIL_DOMAINS
                .iter()
                .map(|d| d.to_string())
                .collect(),
        };
        Ok(UnknownSender {
            action: config.action,
            free_mail: free
                .into_iter()
                .chain(config.extra_free_mail_domains)
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            server_action: config
                .server_action
                .as_deref()
                .map(str::parse)
                .transpose()?,
        })
    }
}

/// `acme-widgets.co.uk` → `Acme Widgets`; `mail.acme.example` → `Acme`.
fn company_from_domain(domain: &str) -> Option<String> {
    let mut labels: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 {
        return None;
    }
    labels.pop(); // top-level domain
    if labels.len() >= 2
        && matches!(
            *labels.last()?,
            "co" | "com" | "org" | "net" | "ac" | "gov" | "ltd" | "plc"
        )
    {
        labels.pop();
    }
    let label = labels.last()?;
    let words: Vec<String> = label
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(title_case)
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn title_case(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(|c| c.to_lowercase()))
            .collect(),
        None => String::new(),
    }
}

/// `john.smith` → `John Smith`; anything less name-like → none.
fn name_from_local_part(local: &str) -> Option<String> {
    let parts: Vec<&str> = local.split(['.', '_']).collect();
    if parts.len() < 2
        || parts
            .iter()
            .any(|p| p.len() < 2 || !p.chars().all(char::is_alphabetic))
    {
        return None;
    }
    Some(
        parts
            .iter()
            .map(|p| title_case(p))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

impl UnknownSenderPolicy for UnknownSender {
    fn decide(
        &self,
        message: &Message,
        _directory: &dyn Directory,
    ) -> Result<PolicyVerdict, Error> {
        let verdict = match self.action {
            Action::Quarantine => PolicyVerdict::quarantine("unknown sender"),
            Action::Discard => PolicyVerdict::discard("unknown sender"),
            Action::Keep => PolicyVerdict::keep_unlinked(),
            Action::CreateLead => match message.sender_mailbox() {
                None => PolicyVerdict::quarantine("no sender address to create a lead from"),
                Some(mailbox) if address::is_robot(&mailbox.address) => {
                    PolicyVerdict::keep_unlinked()
                }
                // The engine refuses a lead it cannot use, which would
                // quarantine the message; keep it unlinked and say why.
                Some(mailbox) if !address::is_valid(&mailbox.address) => {
                    log::warn(&format!(
                        "sender address {:?} is not usable for a lead; keeping the message unlinked",
                        mailbox.address
                    ));
                    PolicyVerdict::keep_unlinked()
                }
                Some(mailbox) => {
                    let email = address::normalize(&mailbox.address);
                    let domain = address::domain(&email).unwrap_or_default().to_string();
                    let company = if self.free_mail.contains(&domain) {
                        None
                    } else {
                        company_from_domain(&domain)
                    };
                    let name = mailbox
                        .name
                        .clone()
                        .filter(|n| !n.contains('@'))
                        .or_else(|| address::local_part(&email).and_then(name_from_local_part));
                    PolicyVerdict::create_lead(NewLead {
                        email,
                        name,
                        company,
                    })
                }
            },
        };
        Ok(match &self.server_action {
            Some(action) => verdict.with_server_action(action.clone()),
            None => verdict,
        })
    }
}

intake_plugin_sdk::export_plugin!(UnknownSender: unknown_sender);

#[cfg(test)]
mod tests {
    use intake_plugin_sdk::testing::{MessageBuilder, run_policy};
    use intake_plugin_sdk::{Decision, MemoryDirectory};

    use super::*;

    fn run(config: &str, m: &Message) -> PolicyVerdict {
        run_policy::<UnknownSender>(config, m, &MemoryDirectory::new()).unwrap()
    }

    #[test]
    fn creates_a_lead_with_name_and_company() {
        let m = MessageBuilder::new()
            .from("Jane Roe <Jane.Roe@acme-widgets.co.uk>")
            .build();
        assert_eq!(
            run("{}", &m).decision,
            Decision::CreateLead(NewLead {
                email: "jane.roe@acme-widgets.co.uk".into(),
                name: Some("Jane Roe".into()),
                company: Some("Acme Widgets".into()),
            })
        );
    }

    #[test]
    fn free_mail_has_no_company_and_names_come_from_local_part() {
        let m = MessageBuilder::new().from("john.smith@gmail.com").build();
        assert_eq!(
            run("{}", &m).decision,
            Decision::CreateLead(NewLead {
                email: "john.smith@gmail.com".into(),
                name: Some("John Smith".into()),
                company: None
            })
        );
    }

    #[test]
    fn configured_actions() {
        let m = MessageBuilder::new().from("x@y.example").build();
        assert!(matches!(
            run(r#"{"action": "quarantine"}"#, &m).decision,
            Decision::Quarantine(_)
        ));
        assert!(matches!(
            run(r#"{"action": "discard"}"#, &m).decision,
            Decision::Discard(_)
        ));
        assert_eq!(
            run(r#"{"action": "keep"}"#, &m).decision,
            Decision::KeepUnlinked
        );
    }

    /// Issue 8: a lead the host would refuse quarantined the message.
    #[test]
    fn an_unusable_address_is_kept_unlinked_not_proposed() {
        for spec in ["Björn <@acme.com>", "Odd <a b@acme.com>"] {
            let m = MessageBuilder::new().from(spec).build();
            assert_eq!(run("{}", &m).decision, Decision::KeepUnlinked, "{spec}");
        }
        let m = MessageBuilder::new().from("Björn <björn@acme.com>").build();
        assert!(matches!(run("{}", &m).decision, Decision::CreateLead(_)));
    }

    #[test]
    fn robots_and_anonymous_mail_never_become_leads() {
        let robot = MessageBuilder::new().from("no-reply@shop.example").build();
        assert_eq!(run("{}", &robot).decision, Decision::KeepUnlinked);
        let anonymous = MessageBuilder::new().build();
        assert!(matches!(
            run("{}", &anonymous).decision,
            Decision::Quarantine(_)
        ));
    }

    #[test]
    fn company_names() {
        assert_eq!(
            company_from_domain("mail.acme.example").as_deref(),
            Some("Acme")
        );
        assert_eq!(company_from_domain("localhost"), None);
        assert_eq!(name_from_local_part("j.s"), None);
    }
}
