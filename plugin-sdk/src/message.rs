//! Conveniences on the message view: header look-up, participants, threading
//! ids and auto-reply detection.

use std::fmt;

use crate::{Mailbox, Message};

impl Message {
    /// The first header with this name (case-insensitive), as written.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every header with this name (case-insensitive), in message order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The address that sent the message: the first `From:` mailbox, else
    /// `Sender:`.
    pub fn sender_address(&self) -> Option<&str> {
        self.from
            .first()
            .or(self.sender.as_ref())
            .map(|m| m.address.as_str())
    }

    /// The first `From:` mailbox, else `Sender:`.
    pub fn sender_mailbox(&self) -> Option<&Mailbox> {
        self.from.first().or(self.sender.as_ref())
    }

    /// `To:` and `Cc:` mailboxes.
    pub fn recipients(&self) -> impl Iterator<Item = &Mailbox> {
        self.to.iter().chain(self.cc.iter())
    }

    /// Everyone on the message: From, Sender, Reply-To, To, Cc.
    pub fn participants(&self) -> impl Iterator<Item = &Mailbox> {
        self.from
            .iter()
            .chain(self.sender.iter())
            .chain(self.reply_to.iter())
            .chain(self.recipients())
    }

    /// Ids of earlier messages in the thread, nearest first: In-Reply-To, then
    /// References from the newest back. Duplicates are removed.
    pub fn thread_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for id in self.in_reply_to.iter().chain(self.references.iter().rev()) {
            if !ids.contains(&id.as_str()) {
                ids.push(id);
            }
        }
        ids
    }

    /// A parameter of the `Content-Type` header (case-insensitive name),
    /// unquoted, e.g. `report-type` of a delivery report.
    pub fn content_type_param(&self, param: &str) -> Option<String> {
        header_param(self.header("Content-Type")?, param)
    }

    /// Why this message looks machine-generated (auto-reply, bulk mail,
    /// mailing list, delivery report, robot sender), or none for mail that
    /// looks written by a person.
    pub fn auto_reply_reason(&self) -> Option<AutoReply> {
        if let Some(v) = self.header("Auto-Submitted").map(str::trim)
            && !v.eq_ignore_ascii_case("no")
            && !v.is_empty()
        {
            return Some(AutoReply::AutoSubmitted(v.to_string()));
        }
        if self.content_type.eq_ignore_ascii_case("multipart/report")
            && self
                .content_type_param("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
        {
            return Some(AutoReply::DeliveryReport);
        }
        if let Some(v) = self.header("Precedence") {
            let v = v.trim().to_ascii_lowercase();
            if matches!(v.as_str(), "bulk" | "junk" | "list") {
                return Some(AutoReply::Precedence(v));
            }
        }
        for name in ["X-Autoreply", "X-Autorespond", "X-Auto-Reply"] {
            if self.header(name).is_some() {
                return Some(AutoReply::AutoReplyHeader(name.to_string()));
            }
        }
        if let Some(id) = self.header("List-Id") {
            return Some(AutoReply::MailingList(id.trim().to_string()));
        }
        if let Some(address) = self
            .sender_address()
            .filter(|a| crate::address::is_robot(a))
        {
            return Some(AutoReply::RobotSender(address.to_string()));
        }
        None
    }
}

/// Why a message was judged machine-generated; see
/// [`Message::auto_reply_reason`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoReply {
    /// RFC 3834 `Auto-Submitted` with a value other than `no`.
    AutoSubmitted(String),
    /// A delivery status notification (`multipart/report;
    /// report-type=delivery-status`).
    DeliveryReport,
    /// `Precedence: bulk`, `junk` or `list`.
    Precedence(String),
    /// A vendor auto-reply header such as `X-Autoreply`.
    AutoReplyHeader(String),
    /// A `List-Id` header: mail from a mailing list.
    MailingList(String),
    /// A sender such as `MAILER-DAEMON` or `no-reply`.
    RobotSender(String),
}

impl fmt::Display for AutoReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutoReply::AutoSubmitted(v) => write!(f, "Auto-Submitted: {v}"),
            AutoReply::DeliveryReport => f.write_str("delivery status notification"),
            AutoReply::Precedence(v) => write!(f, "Precedence: {v}"),
            AutoReply::AutoReplyHeader(name) => write!(f, "{name} header"),
            AutoReply::MailingList(id) => write!(f, "mailing list {id}"),
            AutoReply::RobotSender(a) => write!(f, "robot sender {a}"),
        }
    }
}

/// Extracts `param` from a structured header value such as
/// `multipart/report; report-type="delivery-status"`.
fn header_param(value: &str, param: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|part| {
        let (name, v) = part.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case(param)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

impl Mailbox {
    /// The domain of this mailbox's address.
    pub fn domain(&self) -> Option<&str> {
        crate::address::domain(&self.address)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::MessageBuilder;

    use super::*;

    #[test]
    fn finds_headers_case_insensitively() {
        let m = MessageBuilder::new()
            .header("X-Thing", "1")
            .header("x-thing", "2")
            .build();
        assert_eq!(m.header("X-THING"), Some("1"));
        assert_eq!(m.headers_named("x-thing").collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn detects_machine_mail() {
        let person = MessageBuilder::new().from("Ann <ann@acme.example>").build();
        assert_eq!(person.auto_reply_reason(), None);

        let ooo = MessageBuilder::new()
            .from("ann@acme.example")
            .header("Auto-Submitted", "auto-replied")
            .build();
        assert_eq!(
            ooo.auto_reply_reason(),
            Some(AutoReply::AutoSubmitted("auto-replied".into()))
        );

        let not_auto = MessageBuilder::new()
            .from("a@b.c")
            .header("Auto-Submitted", "No")
            .build();
        assert_eq!(not_auto.auto_reply_reason(), None);

        let dsn = MessageBuilder::new()
            .from("ann@acme.example")
            .content_type("multipart/report; report-type=\"delivery-status\"; boundary=x")
            .build();
        assert_eq!(dsn.auto_reply_reason(), Some(AutoReply::DeliveryReport));

        let bulk = MessageBuilder::new()
            .from("a@b.c")
            .header("Precedence", "Bulk")
            .build();
        assert_eq!(
            bulk.auto_reply_reason(),
            Some(AutoReply::Precedence("bulk".into()))
        );

        let list = MessageBuilder::new()
            .from("a@b.c")
            .header("List-Id", "<dev.lists.example>")
            .build();
        assert!(matches!(
            list.auto_reply_reason(),
            Some(AutoReply::MailingList(_))
        ));

        let daemon = MessageBuilder::new()
            .from("MAILER-DAEMON@mx.example")
            .build();
        assert!(matches!(
            daemon.auto_reply_reason(),
            Some(AutoReply::RobotSender(_))
        ));
    }

    #[test]
    fn thread_ids_nearest_first_without_duplicates() {
        let m = MessageBuilder::new()
            .in_reply_to("c@x")
            .references(&["a@x", "b@x", "c@x"])
            .build();
        assert_eq!(m.thread_ids(), ["c@x", "b@x", "a@x"]);
    }
}
