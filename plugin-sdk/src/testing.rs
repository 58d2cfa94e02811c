//! Building messages and running a plugin natively, for a plugin's own unit
//! tests (`cargo test` on the host, no engine needed).
//!
//! [`run_matcher`] and [`run_policy`] apply the engine's checks
//! ([`crate::rules`], the same functions the engine calls) to everything
//! the plugin does, so a test fails where the engine would refuse:
//!
//! - the configuration against the plugin's declared schema
//!   ([`crate::Plugin::CONFIG_SCHEMA`]), then the plugin's own parsing;
//! - each directory look-up's argument (1 to 998 bytes after trimming,
//!   otherwise `invalid-argument`), with results capped at 100 parties;
//! - the verdict: size, text caps, `move-to` folder, a new lead's address;
//! - every attached party must be one a look-up of this call returned (the
//!   engine requires that it exists in the tenant).
//!
//! The lines the plugin logs are collected: [`logs`] returns those of the
//! last run on the calling thread.
//!
//! For end-to-end checks on real `.eml` files use `intake plugin test`.

use std::cell::RefCell;

use crate::log::LogLine;
use crate::rules::{self, Violation};
use crate::{
    Datetime, Directory, Error, Header, LookupError, LookupResult, Mailbox, Matcher, Message,
};
use crate::{Origin, Plugin, PolicyVerdict, UnknownSenderPolicy, Verdict};

/// Builds a [`Message`] field by field. Address setters accept
/// `Name <addr>` or a bare address, and also add the matching header so
/// header look-ups agree with the parsed fields.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    message: Message,
}

impl Default for MessageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses `Name <addr>` or `addr` into a mailbox.
pub fn mailbox(spec: &str) -> Mailbox {
    let spec = spec.trim();
    match (spec.rfind('<'), spec.ends_with('>')) {
        (Some(open), true) => {
            let name = spec[..open].trim().trim_matches('"').trim();
            Mailbox {
                name: (!name.is_empty()).then(|| name.to_string()),
                address: spec[open + 1..spec.len() - 1].trim().to_string(),
            }
        }
        _ => Mailbox {
            name: None,
            address: spec.to_string(),
        },
    }
}

impl MessageBuilder {
    /// A message from tenant `test`, account `test`, with no fields set.
    pub fn new() -> Self {
        MessageBuilder {
            message: Message {
                tenant_id: "test".into(),
                account_id: "test".into(),
                origin: Origin::File("test".into()),
                message_id: None,
                in_reply_to: Vec::new(),
                references: Vec::new(),
                subject: None,
                date: None,
                from: Vec::new(),
                sender: None,
                reply_to: Vec::new(),
                to: Vec::new(),
                cc: Vec::new(),
                headers: Vec::new(),
                content_type: "text/plain".into(),
                text_body: None,
                html_body: None,
                bodies_truncated: false,
                attachments: Vec::new(),
                size: 0,
            },
        }
    }

    /// Adds a raw header (also used by the typed setters).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.message.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a `From:` mailbox.
    pub fn from(mut self, spec: &str) -> Self {
        self.message.from.push(mailbox(spec));
        self.header("From", spec)
    }

    /// Sets the `Sender:` mailbox.
    pub fn sender(mut self, spec: &str) -> Self {
        self.message.sender = Some(mailbox(spec));
        self.header("Sender", spec)
    }

    /// Adds a `Reply-To:` mailbox.
    pub fn reply_to(mut self, spec: &str) -> Self {
        self.message.reply_to.push(mailbox(spec));
        self.header("Reply-To", spec)
    }

    /// Adds a `To:` mailbox.
    pub fn to(mut self, spec: &str) -> Self {
        self.message.to.push(mailbox(spec));
        self.header("To", spec)
    }

    /// Adds a `Cc:` mailbox.
    pub fn cc(mut self, spec: &str) -> Self {
        self.message.cc.push(mailbox(spec));
        self.header("Cc", spec)
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: &str) -> Self {
        self.message.subject = Some(subject.into());
        self.header("Subject", subject)
    }

    /// Sets the Message-ID (without angle brackets).
    pub fn message_id(mut self, id: &str) -> Self {
        self.message.message_id = Some(id.into());
        self.header("Message-ID", &format!("<{id}>"))
    }

    /// Adds an In-Reply-To id (without angle brackets).
    pub fn in_reply_to(mut self, id: &str) -> Self {
        self.message.in_reply_to.push(id.into());
        self.header("In-Reply-To", &format!("<{id}>"))
    }

    /// Sets the References ids, oldest first (without angle brackets).
    pub fn references(mut self, ids: &[&str]) -> Self {
        self.message.references = ids.iter().map(|s| s.to_string()).collect();
        let value = ids
            .iter()
            .map(|id| format!("<{id}>"))
            .collect::<Vec<_>>()
            .join(" ");
        self.header("References", &value)
    }

    /// Sets the `Content-Type` header; the message's `content-type` field
    /// takes its MIME type.
    pub fn content_type(mut self, value: &str) -> Self {
        let mime = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        self.message.content_type = mime;
        self.header("Content-Type", value)
    }

    /// Sets the plain-text body.
    pub fn text(mut self, body: &str) -> Self {
        self.message.text_body = Some(body.into());
        self
    }

    /// Sets the HTML body.
    pub fn html(mut self, body: &str) -> Self {
        self.message.html_body = Some(body.into());
        self
    }

    /// Sets the date.
    pub fn date(mut self, unix_seconds: i64, offset_minutes: i16) -> Self {
        self.message.date = Some(Datetime {
            unix_seconds,
            offset_minutes,
        });
        self
    }

    /// Sets the tenant and account ids.
    pub fn account(mut self, tenant_id: &str, account_id: &str) -> Self {
        self.message.tenant_id = tenant_id.into();
        self.message.account_id = account_id.into();
        self
    }

    /// The finished message.
    pub fn build(self) -> Message {
        self.message
    }
}

/// Builds `P` from a JSON configuration, as the engine's `init` would, and
/// runs its matcher role on `message` against `directory`, with the
/// engine's checks (see the [module documentation](self)). The error is
/// the text the engine would report; [`try_matcher`] keeps its kind.
pub fn run_matcher<P: Matcher>(
    config: &str,
    message: &Message,
    directory: &dyn Directory,
) -> Result<Verdict, String> {
    try_matcher::<P>(config, message, directory).map_err(|e| e.to_string())
}

/// Builds `P` from a JSON configuration and runs its unknown-sender role,
/// with the engine's checks; [`try_policy`] keeps the error's kind.
pub fn run_policy<P: UnknownSenderPolicy>(
    config: &str,
    message: &Message,
    directory: &dyn Directory,
) -> Result<PolicyVerdict, String> {
    try_policy::<P>(config, message, directory).map_err(|e| e.to_string())
}

/// [`run_matcher`], with the plugin's [`Error`] as it returned it, so a
/// test can check [`Error::is_temporary`] (what a contract 0.2.0 plugin
/// tells the engine). A verdict the engine would refuse is a permanent
/// error.
pub fn try_matcher<P: Matcher>(
    config: &str,
    message: &Message,
    directory: &dyn Directory,
) -> Result<Verdict, Error> {
    crate::log::clear_collected();
    let plugin = build::<P>(config)?;
    let checked = CheckedDirectory::new(directory);
    let verdict = plugin.match_message(message, &checked)?;
    let attached = rules::check_verdict(&verdict, rules::DEFAULT_MAX_OUTPUT_BYTES)
        .map_err(|v| Error::permanent(refused(&v)))?;
    let returned = checked.returned.borrow();
    for party in attached {
        if !returned.contains(party) {
            return Err(Error::permanent(refused(&Violation::PartyNotReturned {
                kind: party.kind,
                id: party.id.clone(),
            })));
        }
    }
    Ok(verdict)
}

/// [`run_policy`], with the plugin's [`Error`] as it returned it.
pub fn try_policy<P: UnknownSenderPolicy>(
    config: &str,
    message: &Message,
    directory: &dyn Directory,
) -> Result<PolicyVerdict, Error> {
    crate::log::clear_collected();
    let plugin = build::<P>(config)?;
    let checked = CheckedDirectory::new(directory);
    let verdict = plugin.decide(message, &checked)?;
    rules::check_policy_verdict(&verdict, rules::DEFAULT_MAX_OUTPUT_BYTES)
        .map_err(|v| Error::permanent(refused(&v)))?;
    Ok(verdict)
}

/// The lines the plugin logged during the last [`run_matcher`] or
/// [`run_policy`] on this thread (at most 50, each cut to 2048 bytes, as
/// the engine keeps them).
pub fn logs() -> Vec<LogLine> {
    crate::log::collected()
}

/// Checks the configuration against the declared schema, then builds the
/// plugin as `init` does.
fn build<P: Plugin>(config: &str) -> Result<P, Error> {
    let schema =
        rules::ConfigSchema::parse(P::CONFIG_SCHEMA.as_bytes()).map_err(Error::permanent)?;
    if let Some(schema) = schema {
        rules::check_config(&schema, config).map_err(|errors| {
            Error::permanent(format!(
                "invalid configuration: {}",
                rules::describe(&errors)
            ))
        })?;
    }
    crate::__private::build_typed::<P>(config)
}

/// The engine's words for a refused verdict.
fn refused(violation: &Violation) -> String {
    match violation {
        Violation::OutputTooLarge { .. } => violation.to_string(),
        other => format!("returned an invalid result: {other}"),
    }
}

/// A directory that applies the host's argument and result rules and
/// remembers every party it returned.
struct CheckedDirectory<'a> {
    inner: &'a dyn Directory,
    returned: RefCell<Vec<crate::PartyRef>>,
}

impl<'a> CheckedDirectory<'a> {
    fn new(inner: &'a dyn Directory) -> Self {
        CheckedDirectory {
            inner,
            returned: RefCell::new(Vec::new()),
        }
    }

    fn keep(&self, result: Result<LookupResult, LookupError>) -> Result<LookupResult, LookupError> {
        let mut result = result?;
        if result.parties.len() > rules::DEFAULT_MAX_LOOKUP_RESULTS {
            result.parties.truncate(rules::DEFAULT_MAX_LOOKUP_RESULTS);
            result.truncated = true;
        }
        self.returned
            .borrow_mut()
            .extend(result.parties.iter().map(crate::Party::to_ref));
        Ok(result)
    }
}

impl Directory for CheckedDirectory<'_> {
    fn find_by_address(&self, address: &str) -> Result<LookupResult, LookupError> {
        let address =
            rules::lookup_argument(address, "address").map_err(LookupError::InvalidArgument)?;
        self.keep(self.inner.find_by_address(address))
    }
    fn find_by_domain(&self, domain: &str) -> Result<LookupResult, LookupError> {
        let domain =
            rules::lookup_argument(domain, "domain").map_err(LookupError::InvalidArgument)?;
        self.keep(self.inner.find_by_domain(domain))
    }
    fn parties_for_message_id(&self, message_id: &str) -> Result<LookupResult, LookupError> {
        let id = rules::lookup_argument(message_id, "message id")
            .map_err(LookupError::InvalidArgument)?;
        self.keep(
            self.inner
                .parties_for_message_id(id.trim_matches(['<', '>'])),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, MemoryDirectory, NoConfig, PartyKind, PartyRef};

    /// Attaches to whatever id its configuration names, without a look-up.
    struct Blind;
    impl Plugin for Blind {
        type Config = NoConfig;
        fn new(_: NoConfig) -> Result<Self, Error> {
            Ok(Blind)
        }
    }
    impl Matcher for Blind {
        fn match_message(&self, m: &Message, d: &dyn Directory) -> Result<Verdict, Error> {
            crate::log::info("looking up the sender");
            let found = d.find_by_address(m.sender_address().unwrap_or_default())?;
            let mut refs: Vec<PartyRef> = found.parties.iter().map(|p| p.to_ref()).collect();
            refs.push(PartyRef {
                kind: PartyKind::Contact,
                id: "made-up".into(),
            });
            Ok(Verdict::attach(refs))
        }
    }

    /// Requires a setting.
    struct Needy;
    impl Plugin for Needy {
        type Config = serde_json::Value;
        const CONFIG_SCHEMA: &'static str = crate::config_schema! {
            domains: array required "our domains",
        };
        fn new(_: serde_json::Value) -> Result<Self, Error> {
            Ok(Needy)
        }
    }
    impl Matcher for Needy {
        fn match_message(&self, _: &Message, d: &dyn Directory) -> Result<Verdict, Error> {
            d.find_by_domain("  ")?;
            Ok(Verdict::no_opinion())
        }
    }

    #[test]
    fn a_party_the_directory_never_returned_is_refused_and_logs_are_kept() {
        let dir = MemoryDirectory::new().with_party(PartyKind::Contact, "ann@acme.example", None);
        let m = MessageBuilder::new().from("ann@acme.example").build();
        let err = run_matcher::<Blind>("{}", &m, &dir).unwrap_err();
        assert!(
            err.starts_with("returned an invalid result: contact \"made-up\""),
            "{err}"
        );
        let logs = logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].message, "looking up the sender");
        assert_eq!(logs[0].level, crate::log::Level::Info);
    }

    #[test]
    fn the_schema_and_the_lookup_rules_apply() {
        let m = MessageBuilder::new().build();
        let dir = MemoryDirectory::new();
        let err = run_matcher::<Needy>("{}", &m, &dir).unwrap_err();
        assert!(err.contains("`domains` is required"), "{err}");
        let err = run_matcher::<Needy>(r#"{"domains": []}"#, &m, &dir).unwrap_err();
        assert!(err.contains("domain must be 1 to 998 bytes"), "{err}");
    }
}
