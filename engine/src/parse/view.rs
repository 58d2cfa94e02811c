//! The engine's own read-only view of a message: what parsing produces and
//! what the pipeline, the CLI and the plugin host read. It mirrors the
//! `types.message` record of the WIT contract field for field, but it is
//! ours: a new contract version changes only the conversion at the plugin
//! edge (`plugin::view`), never this type or its users.

use crate::domain::MessageKey;

/// A display name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name, decoded from RFC 2047; none if absent.
    pub name: Option<String>,
    /// `local@domain` as written (not lower-cased), without angle brackets.
    pub address: String,
}

/// Where a message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Fetched over IMAP.
    Imap {
        /// Folder name.
        folder: String,
        /// The folder's UIDVALIDITY when fetched.
        uid_validity: u32,
        /// The message's UID.
        uid: u32,
    },
    /// Fetched over POP3: the server's UIDL.
    Pop3(String),
    /// Read from a file (import, offline plugin test); names the file.
    File(String),
}

impl From<&MessageKey> for Origin {
    fn from(message: &MessageKey) -> Self {
        match message {
            MessageKey::Imap {
                folder,
                uid_validity,
                uid,
            } => Origin::Imap {
                folder: folder.clone(),
                uid_validity: *uid_validity,
                uid: *uid,
            },
            MessageKey::Pop3 { uidl } => Origin::Pop3(uidl.clone()),
            MessageKey::File { path, offset } => Origin::File(if *offset == 0 {
                path.clone()
            } else {
                format!("{path}@{offset}")
            }),
        }
    }
}

/// A `Date:` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datetime {
    /// Seconds since the Unix epoch, UTC.
    pub unix_seconds: i64,
    /// The writer's offset from UTC in minutes.
    pub offset_minutes: i16,
}

/// One header field, unfolded, not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name as written.
    pub name: String,
    /// Value as written, unfolded and trimmed (lossy UTF-8).
    pub value: String,
}

/// A non-body MIME part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name, if any.
    pub filename: Option<String>,
    /// Lower-case MIME type.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
    /// `Content-Disposition: inline`.
    pub inline: bool,
}

/// The read-only view of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    /// The tenant that owns the account.
    pub tenant_id: String,
    /// The account the message was fetched for.
    pub account_id: String,
    /// Where it came from.
    pub origin: Origin,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// In-Reply-To ids, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// References ids, oldest first, without angle brackets.
    pub references: Vec<String>,
    /// Decoded subject.
    pub subject: Option<String>,
    /// The `Date:` header, if valid.
    pub date: Option<Datetime>,
    /// `From:` mailboxes.
    pub from: Vec<Mailbox>,
    /// `Sender:` mailbox.
    pub sender: Option<Mailbox>,
    /// `Reply-To:` mailboxes.
    pub reply_to: Vec<Mailbox>,
    /// `To:` mailboxes.
    pub to: Vec<Mailbox>,
    /// `Cc:` mailboxes.
    pub cc: Vec<Mailbox>,
    /// Every header, in order.
    pub headers: Vec<Header>,
    /// Lower-case type of the root part.
    pub content_type: String,
    /// Text body, capped.
    pub text_body: Option<String>,
    /// HTML body, capped.
    pub html_body: Option<String>,
    /// Whether a body was cut at the cap.
    pub bodies_truncated: bool,
    /// Attachments (metadata only).
    pub attachments: Vec<Attachment>,
    /// Size of the raw message in bytes.
    pub size: u64,
}
