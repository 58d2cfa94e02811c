//! The WIT edge for messages: the engine's [`MessageView`] converted to the
//! `intake:plugin@0.1.0` `types.message` record. This is the only place the
//! generated message types are built; a new contract version adds a
//! conversion beside this one.

use super::bindings::types;
use crate::parse::view::{Attachment, Datetime, Header, Mailbox, MessageView, Origin};

/// The v0.1.0 record for `view`.
pub(crate) fn to_wit(view: &MessageView) -> types::Message {
    types::Message {
        tenant_id: view.tenant_id.clone(),
        account_id: view.account_id.clone(),
        origin: origin(&view.origin),
        message_id: view.message_id.clone(),
        in_reply_to: view.in_reply_to.clone(),
        references: view.references.clone(),
        subject: view.subject.clone(),
        date: view.date.map(datetime),
        from: view.from.iter().map(mailbox).collect(),
        sender: view.sender.as_ref().map(mailbox),
        reply_to: view.reply_to.iter().map(mailbox).collect(),
        to: view.to.iter().map(mailbox).collect(),
        cc: view.cc.iter().map(mailbox).collect(),
        headers: view.headers.iter().map(header).collect(),
        content_type: view.content_type.clone(),
        text_body: view.text_body.clone(),
        html_body: view.html_body.clone(),
        bodies_truncated: view.bodies_truncated,
        attachments: view.attachments.iter().map(attachment).collect(),
        size: view.size,
    }
}

fn origin(origin: &Origin) -> types::Origin {
    match origin {
        Origin::Imap {
            folder,
            uid_validity,
            uid,
        } => types::Origin::Imap(types::ImapOrigin {
            folder: folder.clone(),
            uid_validity: *uid_validity,
            uid: *uid,
        }),
        Origin::Pop3(uidl) => types::Origin::Pop3(uidl.clone()),
        Origin::File(name) => types::Origin::File(name.clone()),
    }
}

fn datetime(d: Datetime) -> types::Datetime {
    types::Datetime {
        unix_seconds: d.unix_seconds,
        offset_minutes: d.offset_minutes,
    }
}

fn mailbox(m: &Mailbox) -> types::Mailbox {
    types::Mailbox {
        name: m.name.clone(),
        address: m.address.clone(),
    }
}

fn header(h: &Header) -> types::Header {
    types::Header {
        name: h.name.clone(),
        value: h.value.clone(),
    }
}

fn attachment(a: &Attachment) -> types::Attachment {
    types::Attachment {
        filename: a.filename.clone(),
        content_type: a.content_type.clone(),
        size: a.size,
        inline: a.inline,
    }
}
