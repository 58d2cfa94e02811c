//! Building messages and running a plugin natively, for a plugin's own unit
//! tests (`cargo test` on the host, no engine needed).
//!
//! For end-to-end checks on real `.eml` files use `intake plugin test`.

use crate::{Datetime, Directory, Header, Mailbox, Matcher, Message, Origin, PolicyVerdict};
use crate::{UnknownSenderPolicy, Verdict};

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
/// runs its matcher role on `message` against `directory`.
pub fn run_matcher<P: Matcher>(
    config: &str,
    message: &Message,
    directory: &dyn Directory,
) -> Result<Verdict, String> {
    let plugin = crate::__private::build::<P>(config)?;
    plugin
        .match_message(message, directory)
        .map_err(|e| e.to_string())
}

/// Builds `P` from a JSON configuration and runs its unknown-sender role.
pub fn run_policy<P: UnknownSenderPolicy>(
    config: &str,
    message: &Message,
    directory: &dyn Directory,
) -> Result<PolicyVerdict, String> {
    let plugin = crate::__private::build::<P>(config)?;
    plugin.decide(message, directory).map_err(|e| e.to_string())
}
