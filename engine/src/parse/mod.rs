//! Parse: raw RFC 5322 bytes → the read-only message view plugins receive.
//!
//! Parsing never loses a message: a failure (or a panic inside the MIME
//! parser) is a [`ParseError`] the pipeline turns into a quarantine entry with
//! the raw bytes. The raw bytes travel beside the view, untouched, so what is
//! stored is exactly what the server sent. The view is the engine's own type
//! ([`view::MessageView`]); the plugin host converts it at the WIT edge.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};

pub mod view;

pub use view::{Attachment, Datetime, Header, Mailbox, MessageView, Origin};

/// Default cap on each body passed to plugins (64 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Who a message belongs to and where it came from; not in the bytes.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Owning tenant.
    pub tenant_id: String,
    /// Account the message was fetched for.
    pub account_id: String,
    /// Server location or file.
    pub origin: Origin,
}

/// A parsed message: the view plugins receive plus the exact raw bytes.
#[derive(Debug, Clone)]
pub struct ParsedMessage {
    /// The read-only view (bodies capped).
    pub view: MessageView,
    /// The raw bytes as received.
    pub raw: bytes::Bytes,
}

/// Why a message could not be parsed; the message is quarantined raw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No header could be read: this is not an e-mail message.
    #[error("not an e-mail message: no RFC 5322 header found")]
    NoHeaders,
    /// The MIME parser panicked on this input (a parser bug; the message is
    /// kept raw so it can be re-processed after an upgrade).
    #[error("the MIME parser failed on this message: {0}")]
    ParserPanic(String),
}

/// Parses `raw` into a view with bodies capped at `max_body_bytes` each.
pub fn parse(
    raw: bytes::Bytes,
    envelope: &Envelope,
    max_body_bytes: usize,
) -> Result<ParsedMessage, ParseError> {
    let view = catch_unwind(AssertUnwindSafe(|| {
        build_view(&raw, envelope, max_body_bytes)
    }))
    .map_err(|panic| {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        ParseError::ParserPanic(text)
    })??;
    Ok(ParsedMessage { view, raw })
}

fn build_view(raw: &[u8], envelope: &Envelope, max_body: usize) -> Result<MessageView, ParseError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(ParseError::NoHeaders)?;
    if message.headers().is_empty() {
        return Err(ParseError::NoHeaders);
    }

    let headers: Vec<Header> = message
        .headers()
        .iter()
        .map(|h| {
            let (start, end) = (h.offset_start as usize, h.offset_end as usize);
            let value = raw
                .get(start..end.max(start))
                .map(unfold)
                .unwrap_or_default();
            Header {
                name: h.name.as_str().to_string(),
                value,
            }
        })
        .collect();
    // The raw values of an address header, for repairing what the parser
    // lost (see `repair_local_part`).
    let raw_values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
            .collect()
    };

    let root = message.root_part();
    let content_type = root
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "text/plain".into())
        .to_ascii_lowercase();

    let mut truncated = false;
    let mut text_body = join_bodies(message.text_bodies().filter_map(|p| match &p.body {
        PartType::Text(t) => Some(t),
        _ => None,
    }));
    let mut html_body = join_bodies(message.html_bodies().filter_map(|p| match &p.body {
        PartType::Html(t) => Some(t),
        _ => None,
    }));
    for body in [&mut text_body, &mut html_body].into_iter().flatten() {
        truncated |= cap_at_char_boundary(body, max_body);
    }

    let attachments = message
        .attachments()
        .map(|part| Attachment {
            filename: part.attachment_name().map(str::to_string),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase(),
            size: part.len() as u64,
            inline: part.content_disposition().is_some_and(|d| d.is_inline()),
        })
        .collect();

    Ok(MessageView {
        tenant_id: envelope.tenant_id.clone(),
        account_id: envelope.account_id.clone(),
        origin: envelope.origin.clone(),
        message_id: message
            .message_id()
            .map(|id| id.trim_matches(['<', '>']).to_string()),
        in_reply_to: text_list(message.in_reply_to()),
        references: text_list(message.references()),
        subject: message.subject().map(str::to_string),
        date: message.date().map(|d| Datetime {
            unix_seconds: d.to_timestamp(),
            offset_minutes: {
                let minutes = i16::from(d.tz_hour) * 60 + i16::from(d.tz_minute);
                if d.tz_before_gmt { -minutes } else { minutes }
            },
        }),
        from: mailboxes(message.from(), &raw_values("From")),
        sender: mailboxes(message.sender(), &raw_values("Sender"))
            .into_iter()
            .next(),
        reply_to: mailboxes(message.reply_to(), &raw_values("Reply-To")),
        to: mailboxes(message.to(), &raw_values("To")),
        cc: mailboxes(message.cc(), &raw_values("Cc")),
        headers,
        content_type,
        text_body,
        html_body,
        bodies_truncated: truncated,
        attachments,
        size: raw.len() as u64,
    })
}

/// A raw header value, unfolded and trimmed, lossily decoded as UTF-8.
fn unfold(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if i > 0 && !out.is_empty() && !line.is_empty() {
            // A folded line starts with white space; keep one separator.
            out.push(' ');
        }
        out.push_str(line.trim_start_matches([' ', '\t']).trim_end_matches('\r'));
    }
    out.trim().to_string()
}

fn text_list(value: &HeaderValue<'_>) -> Vec<String> {
    let clean = |s: &str| s.trim().trim_matches(['<', '>']).to_string();
    match value {
        HeaderValue::Text(t) => vec![clean(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| clean(t)).collect(),
        _ => Vec::new(),
    }
}

fn mailboxes(address: Option<&Address<'_>>, raw_values: &[&str]) -> Vec<Mailbox> {
    let Some(address) = address else {
        return Vec::new();
    };
    address
        .iter()
        .filter_map(|a| {
            let addr = a.address()?.trim();
            if addr.is_empty() {
                return None;
            }
            let address = repair_local_part(addr, raw_values);
            let mut name = a.name().map(str::trim).unwrap_or_default();
            if address != addr {
                // The parser that dropped the local part also appended its
                // decoded text to the display name ("Björnbjörn").
                let local = address.rsplit_once('@').map_or("", |(l, _)| l);
                let decoded = decode_words(local).unwrap_or_else(|| local.to_string());
                if let Some(kept) = name.strip_suffix(decoded.as_str())
                    && !kept.trim().is_empty()
                {
                    name = kept.trim();
                }
            }
            Some(Mailbox {
                name: (!name.is_empty()).then(|| name.to_string()),
                address,
            })
        })
        .collect()
}

/// Some mailers write a non-ASCII local part as an RFC 2047 encoded-word
/// (`<=?utf-8?q?bj=C3=B6rn?=@acme.com>`), which RFC 2047 forbids there and
/// mail-parser drops, leaving `@acme.com`. When the parsed local part is
/// empty or still encoded, the address is found again in the raw header by
/// its domain: the encoded local part is decoded when the result is a
/// valid local part (`björn@acme.com`), and kept as written otherwise — an
/// address is never reduced to its domain.
fn repair_local_part(parsed: &str, raw_values: &[&str]) -> String {
    let Some((local, domain)) = parsed.rsplit_once('@') else {
        return parsed.to_string();
    };
    if !local.is_empty() && !local.contains("=?") {
        return parsed.to_string();
    }
    for value in raw_values {
        for candidate in addr_specs(value) {
            let Some((written, d)) = candidate.rsplit_once('@') else {
                continue;
            };
            if written.is_empty() || !d.eq_ignore_ascii_case(domain) {
                continue;
            }
            let decoded = decode_words(written);
            return match decoded {
                Some(local) if valid_local_part(&local) => format!("{local}@{d}"),
                _ => candidate.to_string(),
            };
        }
    }
    parsed.to_string()
}

/// The address-like tokens of a raw header value: what is inside `<…>`, and
/// bare words with an `@`.
fn addr_specs(value: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        match after.find('>') {
            Some(close) => {
                found.push(after[..close].trim());
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    if found.is_empty() {
        found.extend(
            value
                .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .map(|w| w.trim_matches(['"', '(', ')']))
                .filter(|w| w.contains('@')),
        );
    }
    found
}

/// Decodes RFC 2047 encoded-words with the same decoder the headers use;
/// `None` when nothing was encoded.
fn decode_words(text: &str) -> Option<String> {
    if !text.contains("=?") {
        return None;
    }
    let header = format!("Subject: {text}\r\n\r\n");
    let decoded = MessageParser::default()
        .parse(header.as_bytes())?
        .subject()?
        .trim()
        .to_string();
    (decoded != text).then_some(decoded)
}

/// A local part a mail system can use as written: no white space, control
/// or structural characters, at most 64 bytes.
fn valid_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 64
        && !local.contains("=?")
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "@<>\",;:()[]\\".contains(c))
}

fn join_bodies<'a>(parts: impl Iterator<Item = &'a Cow<'a, str>>) -> Option<String> {
    let mut out: Option<String> = None;
    for part in parts {
        match &mut out {
            None => out = Some(part.to_string()),
            Some(s) => {
                s.push('\n');
                s.push_str(part);
            }
        }
    }
    out
}

/// Cuts `s` to at most `max` bytes on a character boundary; true if cut.
fn cap_at_char_boundary(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            tenant_id: "t".into(),
            account_id: "a".into(),
            origin: Origin::File("x.eml".into()),
        }
    }

    fn from_and_to(header: &str) -> (Vec<Mailbox>, Vec<Mailbox>) {
        let raw = format!("{header}Subject: x\r\n\r\nbody\r\n");
        let m = parse(bytes::Bytes::from(raw), &envelope(), 1024)
            .unwrap()
            .view;
        (m.from, m.to)
    }

    /// Issue 8: `=?utf-8?q?bj=C3=B6rn?=@acme.com` parsed as `@acme.com`.
    #[test]
    fn an_encoded_local_part_is_decoded_not_lost() {
        let (from, to) = from_and_to(
            "From: =?utf-8?q?Bj=C3=B6rn?= <=?utf-8?q?bj=C3=B6rn?=@acme.com>\r\n\
             To: =?utf-8?b?w6VzYQ==?=@x.example, plain@x.example\r\n",
        );
        assert_eq!(from[0].address, "björn@acme.com");
        assert_eq!(from[0].name.as_deref(), Some("Björn"));
        let to: Vec<&str> = to.iter().map(|m| m.address.as_str()).collect();
        assert!(to.contains(&"åsa@x.example"), "{to:?}");
        assert!(to.contains(&"plain@x.example"), "{to:?}");
    }

    #[test]
    fn an_undecodable_local_part_is_kept_as_written() {
        // Decodes to something with a space: not a usable local part.
        let (from, _) = from_and_to("From: Someone <=?utf-8?q?a_b?=@acme.com>\r\n");
        assert_eq!(from[0].address, "=?utf-8?q?a_b?=@acme.com");
        assert_eq!(from[0].name.as_deref(), Some("Someone"));
        // Raw UTF-8 and plain local parts are untouched.
        let (from, _) = from_and_to("From: Björn <björn@acme.com>\r\n");
        assert_eq!(from[0].address, "björn@acme.com");
        let (from, _) = from_and_to("From: ann@acme.com\r\n");
        assert_eq!(from[0].address, "ann@acme.com");
    }

    #[test]
    fn parses_a_multipart_message() {
        let raw = b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@acme.example>\r\n\
To: Sales <sales@us.example>, ann@us.example\r\n\
Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n\
Message-ID: <m1@acme.example>\r\n\
In-Reply-To: <m0@us.example>\r\n\
References: <a@us.example>\r\n <m0@us.example>\r\n\
Date: Tue, 3 Nov 2026 10:00:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello\r\n\
--b\r\n\
Content-Type: application/pdf; name=quote.pdf\r\n\
Content-Disposition: attachment; filename=quote.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0=\r\n\
--b--\r\n";
        let m = parse(bytes::Bytes::from_static(raw), &envelope(), 1024)
            .unwrap()
            .view;
        assert_eq!(m.from[0].name.as_deref(), Some("Jürgen"));
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.subject.as_deref(), Some("Grüße"));
        assert_eq!(m.message_id.as_deref(), Some("m1@acme.example"));
        assert_eq!(m.references, ["a@us.example", "m0@us.example"]);
        assert_eq!(m.in_reply_to, ["m0@us.example"]);
        assert_eq!(m.date.as_ref().map(|d| d.offset_minutes), Some(60));
        assert_eq!(m.content_type, "multipart/mixed");
        assert_eq!(m.text_body.as_deref().map(str::trim), Some("Hello"));
        assert_eq!(m.html_body, None);
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].filename.as_deref(), Some("quote.pdf"));
        assert_eq!(m.attachments[0].size, 5);
        let refs = m.headers.iter().find(|h| h.name == "References").unwrap();
        assert_eq!(refs.value, "<a@us.example> <m0@us.example>");
    }

    #[test]
    fn caps_bodies_on_char_boundaries() {
        let raw = format!(
            "From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}",
            "é".repeat(100)
        );
        let m = parse(raw.into(), &envelope(), 11).unwrap().view;
        assert!(m.bodies_truncated);
        assert_eq!(m.text_body.unwrap(), "é".repeat(5));
    }

    #[test]
    fn refuses_what_is_not_mail() {
        assert_eq!(
            parse(bytes::Bytes::new(), &envelope(), 10).unwrap_err(),
            ParseError::NoHeaders
        );
    }
}
