//! The POP3 wire format without I/O: the bounded response parser and the
//! command encoder (RFC 1939, RFC 2449 CAPA and response codes, RFC 5034
//! SASL, RFC 4616 PLAIN).
//!
//! Nothing here touches a socket, so every rule can be unit-tested and fuzzed
//! on plain byte slices; [`super::client`] moves the bytes. Every parser is
//! bounded because the server is not trusted: a line longer than the caller's
//! limit, or a multi-line response larger than the caller's cap, is a
//! [`ProtoError`], never unbounded buffering. No input can make a function
//! here panic or loop without consuming bytes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use base64::Engine as _;

/// Longest status or listing line accepted, terminator included. RFC 2449
/// caps responses at 512 octets; 8 KiB leaves room for chatty servers while
/// keeping what a hostile one can make us buffer small.
pub const MAX_LINE: usize = 8 * 1024;

/// Cap for the multi-line listings (`LIST`, `UIDL`): room for roughly
/// 200 000 messages, far beyond any mailbox POP3 is used for.
pub const MAX_LISTING_BYTES: usize = 16 << 20;

/// Cap for the `CAPA` listing, which is a handful of short lines.
pub const MAX_CAPA_BYTES: usize = 64 * 1024;

/// Longest unique-id RFC 1939 allows.
pub const MAX_UIDL_LEN: usize = 70;

/// Longest command line RFC 2449 allows, CRLF included. Decides whether
/// `AUTH PLAIN` may carry its initial response on the same line (RFC 5034).
pub const MAX_COMMAND_LINE: usize = 255;

/// Why bytes from the server are not acceptable POP3, or why a command
/// cannot be sent. Server content quoted in a message is shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// No line end within the line limit.
    #[error("response line longer than {limit} bytes")]
    LineTooLong {
        /// The limit, terminator included.
        limit: usize,
    },
    /// A multi-line response grew past its cap.
    #[error("multi-line response larger than {limit} bytes")]
    TooLarge {
        /// The cap on the decoded body.
        limit: usize,
    },
    /// A NUL byte where POP3 allows only text.
    #[error("NUL byte in a response line")]
    Nul,
    /// The line is neither `+OK` nor `-ERR`.
    #[error("expected +OK or -ERR, got {0:?}")]
    NotStatus(String),
    /// Not a message number (1 to 4294967295, decimal digits only).
    #[error("invalid message number {0:?}")]
    BadNumber(String),
    /// Not a size (decimal digits only, fitting 64 bits).
    #[error("invalid message size {0:?}")]
    BadSize(String),
    /// Not an RFC 1939 unique-id.
    #[error("invalid unique-id {0:?} (RFC 1939 allows 1 to 70 printable ASCII characters)")]
    BadUidl(String),
    /// A listing line with the wrong shape.
    #[error("malformed {what} line {line:?}")]
    BadLine {
        /// `LIST`, `UIDL`, `STAT`…
        what: &'static str,
        /// The line.
        line: String,
    },
    /// The same message number twice in one listing.
    #[error("message {0} listed twice")]
    DuplicateNumber(u32),
    /// Two messages with the same unique-id: either could be taken for the
    /// other, so neither can be tracked safely.
    #[error("unique-id {uidl:?} is given to both message {first} and message {second}")]
    DuplicateUidl {
        /// The unique-id.
        uidl: String,
        /// First message carrying it.
        first: u32,
        /// Second message carrying it.
        second: u32,
    },
    /// A command argument would break the command line (or, for SASL PLAIN,
    /// the NUL-separated message).
    #[error("the {0} contains a line break or NUL byte and cannot be sent")]
    BadArgument(&'static str),
}

/// Quotes at most 64 characters of server bytes for an error message, so a
/// hostile server cannot flood logs through our errors.
fn preview(bytes: &[u8]) -> String {
    const KEEP: usize = 64;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(KEEP)]).into_owned();
    if bytes.len() > KEEP {
        format!("{text}…")
    } else {
        text
    }
}

/// Finds the first complete line in `buf`. Returns the line without its
/// terminator (CRLF, or a bare LF from sloppy servers) and the number of
/// bytes it occupies, or `None` if more bytes are needed. Only the first
/// `max` bytes are searched; a line that does not end within them is
/// [`ProtoError::LineTooLong`], so the caller never buffers more than `max`.
pub fn split_line(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, ProtoError> {
    let window = &buf[..buf.len().min(max)];
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let line = &buf[..lf];
            Ok(Some((line.strip_suffix(b"\r").unwrap_or(line), lf + 1)))
        }
        None if buf.len() >= max => Err(ProtoError::LineTooLong { limit: max }),
        None => Ok(None),
    }
}

/// `+OK` or `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `+OK`.
    Ok,
    /// `-ERR`.
    Err,
}

/// An extended response code (RFC 2449 §8, RFC 3206), e.g. `[IN-USE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseCode {
    /// `[AUTH]`: the credentials are wrong (RFC 3206).
    Auth,
    /// `[SYS/TEMP]`: a temporary server problem (RFC 3206).
    SysTemp,
    /// `[SYS/PERM]`: a permanent server problem (RFC 3206).
    SysPerm,
    /// `[IN-USE]`: another session holds the maildrop lock.
    InUse,
    /// `[LOGIN-DELAY]`: logged in too recently.
    LoginDelay,
    /// Any other code, upper-cased, e.g. `UTF8`.
    Other(String),
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResponseCode::Auth => "AUTH",
            ResponseCode::SysTemp => "SYS/TEMP",
            ResponseCode::SysPerm => "SYS/PERM",
            ResponseCode::InUse => "IN-USE",
            ResponseCode::LoginDelay => "LOGIN-DELAY",
            ResponseCode::Other(code) => code,
        })
    }
}

/// A status line: `+OK` or `-ERR`, an optional response code, the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `+OK` or `-ERR`.
    pub status: Status,
    /// The RFC 2449 response code, if the server gave one.
    pub code: Option<ResponseCode>,
    /// The rest of the line, trimmed (lossy UTF-8).
    pub text: String,
}

impl Response {
    /// True for `+OK`.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.status {
            Status::Ok => "+OK",
            Status::Err => "-ERR",
        })?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Parses a status line (without its terminator). The keyword is matched
/// case-insensitively and must end the line or be followed by a space.
pub fn parse_status(line: &[u8]) -> Result<Response, ProtoError> {
    if line.contains(&0) {
        return Err(ProtoError::Nul);
    }
    let (status, rest) = if starts_with_ignore_case(line, b"+OK") {
        (Status::Ok, &line[3..])
    } else if starts_with_ignore_case(line, b"-ERR") {
        (Status::Err, &line[4..])
    } else {
        return Err(ProtoError::NotStatus(preview(line)));
    };
    let rest = match rest.first() {
        None => rest,
        Some(b' ' | b'\t') => &rest[1..],
        Some(_) => return Err(ProtoError::NotStatus(preview(line))),
    };
    let (code, text) = split_response_code(rest);
    Ok(Response {
        status,
        code,
        text: String::from_utf8_lossy(text).trim().to_string(),
    })
}

/// Splits `[CODE/SUB] text` into the code and the text. Anything in brackets
/// that is not RFC 2449 `resp-code` syntax stays part of the text.
fn split_response_code(rest: &[u8]) -> (Option<ResponseCode>, &[u8]) {
    let Some(inner_and_rest) = rest.strip_prefix(b"[") else {
        return (None, rest);
    };
    let Some(close) = inner_and_rest.iter().position(|&b| b == b']') else {
        return (None, rest);
    };
    let inner = &inner_and_rest[..close];
    let well_formed = !inner.is_empty()
        && inner.split(|&b| b == b'/').all(|level| {
            !level.is_empty()
                && level
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        });
    if !well_formed {
        return (None, rest);
    }
    // Checked above: ASCII only, so this conversion is exact.
    let name = String::from_utf8_lossy(inner).to_ascii_uppercase();
    let code = match name.as_str() {
        "AUTH" => ResponseCode::Auth,
        "SYS/TEMP" => ResponseCode::SysTemp,
        "SYS/PERM" => ResponseCode::SysPerm,
        "IN-USE" => ResponseCode::InUse,
        "LOGIN-DELAY" => ResponseCode::LoginDelay,
        _ => ResponseCode::Other(name),
    };
    (Some(code), inner_and_rest[close + 1..].trim_ascii_start())
}

/// What the server answers during `AUTH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// `+ <base64 challenge>` (RFC 5034): the server waits for a response.
    Continue(String),
    /// The exchange is over.
    Done(Response),
}

/// Parses a line received during `AUTH`: a `+ ` continuation or a status.
pub fn parse_auth_reply(line: &[u8]) -> Result<AuthReply, ProtoError> {
    if line == b"+" {
        return Ok(AuthReply::Continue(String::new()));
    }
    if let Some(challenge) = line.strip_prefix(b"+ ") {
        if challenge.contains(&0) {
            return Err(ProtoError::Nul);
        }
        return Ok(AuthReply::Continue(
            String::from_utf8_lossy(challenge).trim().to_string(),
        ));
    }
    parse_status(line).map(AuthReply::Done)
}

/// Where [`MultiLine`] is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// At the first byte of a line.
    Start,
    /// A line began with `.`: stuffing, or the terminator.
    Dot,
    /// A line began with `.\r`: the terminator if LF follows.
    DotCr,
    /// Inside a line.
    Middle,
    /// The terminating `.` line was read.
    Done,
}

/// How far a [`MultiLine::feed`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input used. Everything is used unless `done`, so bytes
    /// after the terminator (the next pipelined response) are left alone.
    pub consumed: usize,
    /// The terminating `.` line was seen.
    pub done: bool,
}

/// Incremental decoder for a multi-line response body (RFC 1939 §3): ends at
/// a line holding only `.`, removes the stuffed leading dot of other lines,
/// and otherwise keeps the bytes exactly as sent (CRLF stays CRLF, a bare LF
/// stays a bare LF). Fed in any chunks; never holds more than `limit` bytes
/// of body.
#[derive(Debug, Clone)]
pub struct MultiLine {
    body: Vec<u8>,
    limit: usize,
    /// Per-line cap for listings, where any long line is an attack; message
    /// bodies have none (real mail breaks the RFC 5322 line limit).
    max_line: Option<usize>,
    /// Bytes received so far in the current line, for `max_line`.
    line_len: usize,
    state: LineState,
}

impl MultiLine {
    /// A decoder that fails with [`ProtoError::TooLarge`] once the body
    /// would exceed `limit` bytes.
    pub fn new(limit: usize) -> Self {
        MultiLine {
            body: Vec::new(),
            limit,
            max_line: None,
            line_len: 0,
            state: LineState::Start,
        }
    }

    /// Also fails with [`ProtoError::LineTooLong`] on a line longer than
    /// `max` bytes (terminator included).
    pub fn with_max_line(mut self, max: usize) -> Self {
        self.max_line = Some(max);
        self
    }

    /// True once the terminator was read.
    pub fn is_done(&self) -> bool {
        self.state == LineState::Done
    }

    /// The body decoded so far.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The decoded body.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// Decodes as much of `input` as belongs to this response.
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, ProtoError> {
        let mut i = 0;
        while i < input.len() && self.state != LineState::Done {
            match self.state {
                LineState::Start => {
                    let b = input[i];
                    i += 1;
                    self.count_line_bytes(1)?;
                    if b == b'.' {
                        self.state = LineState::Dot;
                    } else {
                        self.push(&[b])?;
                        self.state = self.after(b);
                    }
                }
                LineState::Dot => {
                    let b = input[i];
                    i += 1;
                    self.count_line_bytes(1)?;
                    match b {
                        b'\r' => self.state = LineState::DotCr,
                        // Sloppy servers end with `.\n`.
                        b'\n' => self.state = LineState::Done,
                        // The dot was stuffing: drop it, keep the rest.
                        _ => {
                            self.push(&[b])?;
                            self.state = LineState::Middle;
                        }
                    }
                }
                LineState::DotCr => {
                    if input[i] == b'\n' {
                        i += 1;
                        self.state = LineState::Done;
                    } else {
                        // `.\r` then more: a stuffed line starting with CR.
                        // The CR was counted already; the next byte is
                        // handled as ordinary line content.
                        self.push(b"\r")?;
                        self.state = LineState::Middle;
                    }
                }
                LineState::Middle => {
                    let rest = &input[i..];
                    let (chunk, line_ends) = match rest.iter().position(|&b| b == b'\n') {
                        Some(lf) => (&rest[..=lf], true),
                        None => (rest, false),
                    };
                    self.count_line_bytes(chunk.len())?;
                    self.push(chunk)?;
                    i += chunk.len();
                    if line_ends {
                        self.state = LineState::Start;
                        self.line_len = 0;
                    }
                }
                LineState::Done => {}
            }
        }
        Ok(Fed {
            consumed: i,
            done: self.state == LineState::Done,
        })
    }

    fn after(&mut self, byte: u8) -> LineState {
        if byte == b'\n' {
            self.line_len = 0;
            LineState::Start
        } else {
            LineState::Middle
        }
    }

    fn count_line_bytes(&mut self, n: usize) -> Result<(), ProtoError> {
        self.line_len = self.line_len.saturating_add(n);
        match self.max_line {
            Some(max) if self.line_len > max => Err(ProtoError::LineTooLong { limit: max }),
            _ => Ok(()),
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), ProtoError> {
        if bytes.len() > self.limit - self.body.len() {
            return Err(ProtoError::TooLarge { limit: self.limit });
        }
        self.body.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes a complete multi-line body in one go (tests, fuzzing, and
/// callers that already hold the whole response). Returns the body and the
/// bytes used, or `None` if the terminator is missing.
pub fn decode_multiline(
    input: &[u8],
    limit: usize,
    max_line: Option<usize>,
) -> Result<Option<(Vec<u8>, usize)>, ProtoError> {
    let mut decoder = MultiLine::new(limit);
    if let Some(max) = max_line {
        decoder = decoder.with_max_line(max);
    }
    let fed = decoder.feed(input)?;
    Ok(fed.done.then(|| (decoder.into_body(), fed.consumed)))
}

/// The lines of a decoded body, without terminators. Each must be at most
/// [`MAX_LINE`] bytes and free of NUL.
fn body_lines(body: &[u8]) -> impl Iterator<Item = Result<&[u8], ProtoError>> {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    let mut lines = (!body.is_empty()).then(|| body.split(|&b| b == b'\n'));
    std::iter::from_fn(move || lines.as_mut()?.next()).map(|line| {
        if line.len() >= MAX_LINE {
            return Err(ProtoError::LineTooLong { limit: MAX_LINE });
        }
        if line.contains(&0) {
            return Err(ProtoError::Nul);
        }
        Ok(line.strip_suffix(b"\r").unwrap_or(line))
    })
}

/// What the server says it can do (RFC 2449 `CAPA`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Upper-cased capability name → its arguments.
    entries: BTreeMap<String, Vec<String>>,
}

impl Capabilities {
    /// Parses a decoded `CAPA` body: one capability per line, a name and
    /// optional space-separated arguments.
    pub fn parse(body: &[u8]) -> Result<Self, ProtoError> {
        let mut entries = BTreeMap::new();
        for line in body_lines(body) {
            let line = String::from_utf8_lossy(line?).into_owned();
            let mut words = line.split_ascii_whitespace();
            let Some(name) = words.next() else { continue };
            entries.insert(
                name.to_ascii_uppercase(),
                words.map(str::to_string).collect(),
            );
        }
        Ok(Capabilities { entries })
    }

    /// True if the server advertises `name` (case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(&name.to_ascii_uppercase())
    }

    /// The arguments of `name`, if advertised.
    pub fn arguments(&self, name: &str) -> Option<&[String]> {
        self.entries
            .get(&name.to_ascii_uppercase())
            .map(Vec::as_slice)
    }

    /// The advertised capability names, upper-cased.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// `STLS` (RFC 2595).
    pub fn stls(&self) -> bool {
        self.has("STLS")
    }

    /// `UIDL`.
    pub fn uidl(&self) -> bool {
        self.has("UIDL")
    }

    /// `PIPELINING`: several commands may be sent before reading replies.
    pub fn pipelining(&self) -> bool {
        self.has("PIPELINING")
    }

    /// True if `SASL` lists `mechanism` (case-insensitive).
    pub fn sasl(&self, mechanism: &str) -> bool {
        self.arguments("SASL")
            .is_some_and(|m| m.iter().any(|m| m.eq_ignore_ascii_case(mechanism)))
    }
}

/// Parses a message number: decimal digits only, 1 to `u32::MAX`.
pub fn parse_number(token: &[u8]) -> Result<u32, ProtoError> {
    let bad = || ProtoError::BadNumber(preview(token));
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    // Digits only, so this is ASCII; `parse` rejects overflow.
    let number: u32 = std::str::from_utf8(token)
        .map_err(|_| bad())?
        .parse()
        .map_err(|_| bad())?;
    if number == 0 { Err(bad()) } else { Ok(number) }
}

/// Parses an octet count: decimal digits only, fitting `u64`.
pub fn parse_size(token: &[u8]) -> Result<u64, ProtoError> {
    let bad = || ProtoError::BadSize(preview(token));
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(token)
        .map_err(|_| bad())?
        .parse()
        .map_err(|_| bad())
}

/// Checks an RFC 1939 unique-id: 1 to 70 characters in 0x21–0x7E.
pub fn parse_uidl(token: &[u8]) -> Result<String, ProtoError> {
    let valid = (1..=MAX_UIDL_LEN).contains(&token.len())
        && token.iter().all(|b| (0x21..=0x7e).contains(b));
    if !valid {
        return Err(ProtoError::BadUidl(preview(token)));
    }
    Ok(String::from_utf8_lossy(token).into_owned())
}

fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
}

/// One `LIST` entry: a message number and its size in octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanListing {
    /// Message number in this session.
    pub number: u32,
    /// Size as the server counts it.
    pub size: u64,
}

/// One `UIDL` entry: a message number and its unique-id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueId {
    /// Message number in this session.
    pub number: u32,
    /// The server's stable id for the message.
    pub uidl: String,
}

/// Parses `n size` (a `LIST` line, or the text of `+OK` to `LIST n`).
/// RFC 1939 lets servers add information after the size; it is ignored.
pub fn parse_scan_line(line: &[u8]) -> Result<ScanListing, ProtoError> {
    let mut parts = words(line);
    let (Some(number), Some(size)) = (parts.next(), parts.next()) else {
        return Err(ProtoError::BadLine {
            what: "LIST",
            line: preview(line),
        });
    };
    Ok(ScanListing {
        number: parse_number(number)?,
        size: parse_size(size)?,
    })
}

/// Parses `n unique-id` (a `UIDL` line, or the text of `+OK` to `UIDL n`).
/// Nothing may follow: an id with a space in it would be ambiguous.
pub fn parse_uidl_line(line: &[u8]) -> Result<UniqueId, ProtoError> {
    let mut parts = words(line);
    let (Some(number), Some(uidl), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ProtoError::BadLine {
            what: "UIDL",
            line: preview(line),
        });
    };
    Ok(UniqueId {
        number: parse_number(number)?,
        uidl: parse_uidl(uidl)?,
    })
}

/// Parses the text of `+OK` to `STAT`: message count and total size.
pub fn parse_stat(text: &[u8]) -> Result<(u32, u64), ProtoError> {
    let mut parts = words(text);
    let (Some(count), Some(size)) = (parts.next(), parts.next()) else {
        return Err(ProtoError::BadLine {
            what: "STAT",
            line: preview(text),
        });
    };
    // Unlike a message number, a count may be zero.
    let count = match parse_size(count) {
        Ok(n) => u32::try_from(n).map_err(|_| ProtoError::BadNumber(preview(count)))?,
        Err(_) => return Err(ProtoError::BadNumber(preview(count))),
    };
    Ok((count, parse_size(size)?))
}

/// Parses a decoded multi-line `LIST` body. Each message number may appear
/// once; the server's order is kept.
pub fn parse_scan_listing(body: &[u8]) -> Result<Vec<ScanListing>, ProtoError> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for line in body_lines(body) {
        let entry = parse_scan_line(line?)?;
        if seen.insert(entry.number, ()).is_some() {
            return Err(ProtoError::DuplicateNumber(entry.number));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Parses a decoded multi-line `UIDL` body. Message numbers and unique-ids
/// must each be unique: a repeated id would make two messages
/// indistinguishable to the cursor. The server's order is kept.
pub fn parse_uidl_listing(body: &[u8]) -> Result<Vec<UniqueId>, ProtoError> {
    let mut numbers = HashMap::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    for line in body_lines(body) {
        let entry = parse_uidl_line(line?)?;
        if numbers.insert(entry.number, ()).is_some() {
            return Err(ProtoError::DuplicateNumber(entry.number));
        }
        if let Some(first) = ids.insert(entry.uidl.clone(), entry.number) {
            return Err(ProtoError::DuplicateUidl {
                uidl: entry.uidl,
                first,
                second: entry.number,
            });
        }
        out.push(entry);
    }
    Ok(out)
}

/// A command the client sends.
///
/// `Debug` never shows a password or SASL response, so commands can be
/// logged as they are.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `CAPA`.
    Capa,
    /// `STLS`.
    Stls,
    /// `USER name`.
    User(&'a str),
    /// `PASS secret`.
    Pass(&'a str),
    /// `AUTH mechanism`, with the base64 initial response if it fits the
    /// line.
    Auth {
        /// `PLAIN`, `XOAUTH2`, `OAUTHBEARER`.
        mechanism: &'static str,
        /// From [`sasl_response`]: a secret.
        initial_response: Option<&'a str>,
    },
    /// A line answering a `+ ` continuation: a secret.
    SaslResponse(&'a str),
    /// `*`: abandons a SASL exchange (RFC 5034).
    SaslCancel,
    /// `STAT`.
    Stat,
    /// `LIST` or `LIST n`.
    List(Option<u32>),
    /// `UIDL` or `UIDL n`.
    Uidl(Option<u32>),
    /// `RETR n`.
    Retr(u32),
    /// `DELE n`.
    Dele(u32),
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
}

impl fmt::Debug for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::User(name) => write!(f, "USER {name}"),
            Command::Pass(_) => f.write_str("PASS ***"),
            Command::Auth {
                mechanism,
                initial_response: Some(_),
            } => write!(f, "AUTH {mechanism} ***"),
            Command::Auth {
                mechanism,
                initial_response: None,
            } => write!(f, "AUTH {mechanism}"),
            Command::SaslResponse(_) => f.write_str("***"),
            Command::List(Some(n))
            | Command::Uidl(Some(n))
            | Command::Retr(n)
            | Command::Dele(n) => {
                write!(f, "{} {n}", self.name())
            }
            _ => f.write_str(self.name()),
        }
    }
}

impl Command<'_> {
    /// The command keyword, safe to log.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Auth { .. } => "AUTH",
            Command::SaslResponse(_) => "SASL response",
            Command::SaslCancel => "SASL cancel",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
        }
    }

    /// The command line, CRLF included. An argument holding CR, LF or NUL
    /// is refused: it would smuggle a second command onto the wire.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        fn checked<'s>(value: &'s str, what: &'static str) -> Result<&'s str, ProtoError> {
            if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                Err(ProtoError::BadArgument(what))
            } else {
                Ok(value)
            }
        }
        let line = match *self {
            Command::User(name) => format!("USER {}", checked(name, "user name")?),
            Command::Pass(secret) => format!("PASS {}", checked(secret, "password")?),
            Command::Auth {
                mechanism,
                initial_response: Some(ir),
            } => {
                format!("AUTH {mechanism} {}", checked(ir, "SASL response")?)
            }
            Command::Auth {
                mechanism,
                initial_response: None,
            } => format!("AUTH {mechanism}"),
            Command::SaslResponse(response) => checked(response, "SASL response")?.to_string(),
            Command::SaslCancel => "*".to_string(),
            Command::List(Some(n))
            | Command::Uidl(Some(n))
            | Command::Retr(n)
            | Command::Dele(n) => {
                format!("{} {n}", self.name())
            }
            Command::Capa
            | Command::Stls
            | Command::Stat
            | Command::List(None)
            | Command::Uidl(None)
            | Command::Noop
            | Command::Quit => self.name().to_string(),
        };
        let mut bytes = line.into_bytes();
        bytes.extend_from_slice(b"\r\n");
        Ok(bytes)
    }
}

/// A SASL message (from [`crate::fetch::sasl`]) as a POP3 line carries it,
/// base64-encoded. The result is a secret.
pub fn sasl_response(message: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Response {
        Response {
            status: Status::Ok,
            code: None,
            text: text.into(),
        }
    }

    #[test]
    fn split_line_accepts_crlf_and_bare_lf() {
        assert_eq!(
            split_line(b"+OK hi\r\nrest", MAX_LINE).unwrap(),
            Some((&b"+OK hi"[..], 8))
        );
        assert_eq!(
            split_line(b"+OK hi\nrest", MAX_LINE).unwrap(),
            Some((&b"+OK hi"[..], 7))
        );
        assert_eq!(split_line(b"+OK partial", MAX_LINE).unwrap(), None);
        assert_eq!(split_line(b"", MAX_LINE).unwrap(), None);
    }

    #[test]
    fn split_line_refuses_overlong_lines_without_waiting_for_more() {
        let long = vec![b'a'; MAX_LINE];
        assert_eq!(
            split_line(&long, MAX_LINE),
            Err(ProtoError::LineTooLong { limit: MAX_LINE })
        );
        // The LF just past the window does not rescue it.
        let mut long_then_lf = vec![b'a'; MAX_LINE];
        long_then_lf.push(b'\n');
        assert!(split_line(&long_then_lf, MAX_LINE).is_err());
        // A line whose LF is the last byte of the window fits.
        let mut fits = vec![b'a'; MAX_LINE - 1];
        fits.push(b'\n');
        assert_eq!(split_line(&fits, MAX_LINE).unwrap().unwrap().1, MAX_LINE);
        // A short line followed by lots of buffered data is fine.
        let mut short_first = b"+OK\r\n".to_vec();
        short_first.extend(vec![b'x'; 3 * MAX_LINE]);
        assert_eq!(split_line(&short_first, MAX_LINE).unwrap().unwrap().1, 5);
    }

    #[test]
    fn status_lines_are_case_insensitive() {
        assert_eq!(parse_status(b"+OK POP3 ready").unwrap(), ok("POP3 ready"));
        assert_eq!(parse_status(b"+ok").unwrap(), ok(""));
        let err = parse_status(b"-err nope").unwrap();
        assert_eq!((err.status, err.text.as_str()), (Status::Err, "nope"));
        assert!(!err.is_ok());
    }

    #[test]
    fn status_keyword_must_stand_alone() {
        assert!(matches!(
            parse_status(b"+OKAY"),
            Err(ProtoError::NotStatus(_))
        ));
        assert!(matches!(
            parse_status(b"-ERROR"),
            Err(ProtoError::NotStatus(_))
        ));
        assert!(matches!(
            parse_status(b"* OK imap"),
            Err(ProtoError::NotStatus(_))
        ));
        assert!(matches!(parse_status(b""), Err(ProtoError::NotStatus(_))));
        assert!(matches!(parse_status(b"+ "), Err(ProtoError::NotStatus(_))));
    }

    #[test]
    fn status_lines_with_nul_are_refused() {
        assert_eq!(parse_status(b"+OK a\0b"), Err(ProtoError::Nul));
    }

    #[test]
    fn response_codes_are_parsed_out() {
        let r = parse_status(b"-ERR [AUTH] Authentication failed.").unwrap();
        assert_eq!(r.code, Some(ResponseCode::Auth));
        assert_eq!(r.text, "Authentication failed.");
        assert_eq!(r.to_string(), "-ERR [AUTH] Authentication failed.");
        assert_eq!(
            parse_status(b"-ERR [in-use] locked").unwrap().code,
            Some(ResponseCode::InUse)
        );
        assert_eq!(
            parse_status(b"-ERR [SYS/TEMP] later").unwrap().code,
            Some(ResponseCode::SysTemp)
        );
        assert_eq!(
            parse_status(b"-ERR [SYS/PERM] never").unwrap().code,
            Some(ResponseCode::SysPerm)
        );
        assert_eq!(
            parse_status(b"-ERR [LOGIN-DELAY] wait").unwrap().code,
            Some(ResponseCode::LoginDelay)
        );
        assert_eq!(
            parse_status(b"-ERR [x-vendor/sub] hmm").unwrap().code,
            Some(ResponseCode::Other("X-VENDOR/SUB".into()))
        );
        // Not resp-code syntax: kept as text.
        for line in [
            &b"-ERR [] x"[..],
            b"-ERR [a b] x",
            b"-ERR [AUTH x",
            b"-ERR [A//B] x",
            b"-ERR [\xff] x",
        ] {
            let r = parse_status(line).unwrap();
            assert_eq!(r.code, None, "{line:?}");
            assert!(r.text.starts_with('['), "{line:?}");
        }
    }

    #[test]
    fn auth_replies_distinguish_continuation_from_status() {
        assert_eq!(
            parse_auth_reply(b"+ ").unwrap(),
            AuthReply::Continue(String::new())
        );
        assert_eq!(
            parse_auth_reply(b"+").unwrap(),
            AuthReply::Continue(String::new())
        );
        assert_eq!(
            parse_auth_reply(b"+ Zm9v").unwrap(),
            AuthReply::Continue("Zm9v".into())
        );
        assert_eq!(
            parse_auth_reply(b"+OK welcome").unwrap(),
            AuthReply::Done(ok("welcome"))
        );
        assert!(
            matches!(parse_auth_reply(b"-ERR [AUTH] no").unwrap(), AuthReply::Done(r) if !r.is_ok())
        );
        assert_eq!(parse_auth_reply(b"+ a\0"), Err(ProtoError::Nul));
        assert!(parse_auth_reply(b"+x").is_err());
    }

    fn decode(input: &[u8]) -> Vec<u8> {
        decode_multiline(input, 1 << 20, None)
            .unwrap()
            .expect("terminated")
            .0
    }

    #[test]
    fn multiline_unstuffs_dots_and_keeps_line_endings() {
        assert_eq!(decode(b".\r\n"), b"");
        assert_eq!(decode(b"a\r\nb\r\n.\r\n"), b"a\r\nb\r\n");
        assert_eq!(decode(b"..\r\n...x\r\n.y\r\n.\r\n"), b".\r\n..x\r\ny\r\n");
        // A stuffed line starting with CR (`.\r` not followed by LF).
        assert_eq!(decode(b".\rx\r\n.\r\n"), b"\rx\r\n");
        assert_eq!(decode(b".\r\r\n.\r\n"), b"\r\r\n");
        // Bare LF from sloppy servers, kept as sent, `.\n` terminates.
        assert_eq!(decode(b"a\nb\r\n\n.\n"), b"a\nb\r\n\n");
        // Dots not at a line start are content.
        assert_eq!(decode(b"a.\r\n a\r\n.\r\n"), b"a.\r\n a\r\n");
        // NUL bytes in a message body are passed on untouched.
        assert_eq!(decode(b"a\0b\r\n.\r\n"), b"a\0b\r\n");
    }

    #[test]
    fn multiline_stops_at_the_terminator_and_leaves_the_rest() {
        let input = b"x\r\n.\r\n+OK next\r\n";
        let (body, used) = decode_multiline(input, 100, None).unwrap().unwrap();
        assert_eq!(body, b"x\r\n");
        assert_eq!(&input[used..], b"+OK next\r\n");
    }

    #[test]
    fn multiline_gives_the_same_result_in_any_chunking() {
        let input: &[u8] = b"..a\r\n.\rb\n.\r\r\nplain\r\n.\r\n";
        let whole = decode(input);
        for size in 1..input.len() {
            let mut decoder = MultiLine::new(1 << 20);
            let mut used = 0;
            for chunk in input.chunks(size) {
                let fed = decoder.feed(chunk).unwrap();
                used += fed.consumed;
                if fed.done {
                    break;
                }
                assert_eq!(
                    fed.consumed,
                    chunk.len(),
                    "an unfinished body uses all input"
                );
            }
            assert!(decoder.is_done(), "chunk size {size}");
            assert_eq!(used, input.len());
            assert_eq!(decoder.into_body(), whole, "chunk size {size}");
        }
    }

    #[test]
    fn multiline_without_terminator_is_unfinished() {
        assert_eq!(decode_multiline(b"a\r\nb\r\n", 100, None).unwrap(), None);
        assert_eq!(decode_multiline(b"a\r\n.", 100, None).unwrap(), None);
        assert_eq!(decode_multiline(b"a\r\n.\r", 100, None).unwrap(), None);
        // `.` at the very end of input is not a terminator yet.
        let mut d = MultiLine::new(100);
        assert!(!d.feed(b"a\r\n.").unwrap().done);
        assert!(d.feed(b"\r\n").unwrap().done);
        assert_eq!(d.body(), b"a\r\n");
    }

    #[test]
    fn multiline_refuses_bodies_over_the_limit() {
        assert_eq!(
            decode_multiline(b"12345\r\n.\r\n", 7, None)
                .unwrap()
                .unwrap()
                .0,
            b"12345\r\n"
        );
        assert_eq!(
            decode_multiline(b"123456\r\n.\r\n", 7, None),
            Err(ProtoError::TooLarge { limit: 7 })
        );
        // An endless unterminated stream stops at the limit, fed in pieces.
        let mut d = MultiLine::new(1000);
        let err = (0..100).find_map(|_| d.feed(&[b'x'; 64]).err());
        assert_eq!(err, Some(ProtoError::TooLarge { limit: 1000 }));
        assert!(d.body().len() <= 1000);
        // Endless empty lines count too.
        let mut d = MultiLine::new(10);
        assert!((0..20).any(|_| d.feed(b"\r\n").is_err()));
    }

    #[test]
    fn multiline_line_limit_applies_when_asked() {
        let mut long = vec![b'7'; 100];
        long.extend_from_slice(b"\r\n.\r\n");
        assert!(decode_multiline(&long, 1 << 20, None).unwrap().is_some());
        assert_eq!(
            decode_multiline(&long, 1 << 20, Some(50)),
            Err(ProtoError::LineTooLong { limit: 50 })
        );
        // Stuffed dots count towards the line.
        assert!(
            decode_multiline(b"..ab\r\n.\r\n", 100, Some(6))
                .unwrap()
                .is_some()
        );
        assert!(decode_multiline(b"..abc\r\n.\r\n", 100, Some(6)).is_err());
    }

    #[test]
    fn capabilities_are_parsed() {
        let caps = Capabilities::parse(
            b"TOP\r\nuidl\r\nSASL PLAIN login\r\nPIPELINING\r\nIMPLEMENTATION x y\r\n\r\n",
        )
        .unwrap();
        assert!(caps.uidl() && caps.pipelining() && caps.has("top") && !caps.stls());
        assert!(caps.sasl("plain") && caps.sasl("LOGIN") && !caps.sasl("CRAM-MD5"));
        assert_eq!(
            caps.arguments("implementation"),
            Some(&["x".to_string(), "y".to_string()][..])
        );
        assert_eq!(
            caps.names().collect::<Vec<_>>(),
            ["IMPLEMENTATION", "PIPELINING", "SASL", "TOP", "UIDL"]
        );
        assert_eq!(Capabilities::parse(b"").unwrap(), Capabilities::default());
        assert_eq!(Capabilities::parse(b"STLS\0\r\n"), Err(ProtoError::Nul));
    }

    #[test]
    fn numbers_sizes_and_uidls_are_validated() {
        assert_eq!(parse_number(b"1"), Ok(1));
        assert_eq!(parse_number(b"4294967295"), Ok(u32::MAX));
        for bad in [
            &b"0"[..],
            b"4294967296",
            b"99999999999999999999999",
            b"-1",
            b"+1",
            b"1a",
            b"",
            b" 1",
        ] {
            assert!(
                matches!(parse_number(bad), Err(ProtoError::BadNumber(_))),
                "{bad:?}"
            );
        }
        assert_eq!(parse_size(b"0"), Ok(0));
        assert_eq!(parse_size(b"18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size(b"18446744073709551616").is_err());
        assert!(parse_size(b"12k").is_err());
        assert_eq!(
            parse_uidl(b"whqtswO00WBw418f9t5JxYwZ").as_deref(),
            Ok("whqtswO00WBw418f9t5JxYwZ")
        );
        assert!(parse_uidl(&[b'a'; 70]).is_ok());
        assert!(parse_uidl(&[b'a'; 71]).is_err());
        for bad in [&b""[..], b"a b", b"a\0", b"\x7f", b"caf\xc3\xa9", b"\x20"] {
            assert!(
                matches!(parse_uidl(bad), Err(ProtoError::BadUidl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn listing_lines_are_parsed() {
        assert_eq!(
            parse_scan_line(b"3 1200").unwrap(),
            ScanListing {
                number: 3,
                size: 1200
            }
        );
        assert_eq!(parse_scan_line(b"3 1200 extra info").unwrap().size, 1200);
        assert!(matches!(
            parse_scan_line(b"3"),
            Err(ProtoError::BadLine { .. })
        ));
        assert!(parse_scan_line(b"0 10").is_err());
        assert!(parse_scan_line(b"3 -5").is_err());
        assert_eq!(
            parse_uidl_line(b"2 QhdPYR:00WBw1Ph7x7").unwrap().uidl,
            "QhdPYR:00WBw1Ph7x7"
        );
        assert!(matches!(
            parse_uidl_line(b"2 a b"),
            Err(ProtoError::BadLine { .. })
        ));
        assert!(parse_uidl_line(b"2").is_err());
        assert!(parse_uidl_line(b"x abc").is_err());
        assert_eq!(parse_stat(b"2 320").unwrap(), (2, 320));
        assert_eq!(parse_stat(b"0 0").unwrap(), (0, 0));
        assert!(parse_stat(b"4294967296 0").is_err());
        assert!(parse_stat(b"two 0").is_err());
    }

    #[test]
    fn listings_are_parsed_and_duplicates_refused() {
        let list = parse_scan_listing(b"1 120\r\n2 200\n").unwrap();
        assert_eq!(
            list,
            [
                ScanListing {
                    number: 1,
                    size: 120
                },
                ScanListing {
                    number: 2,
                    size: 200
                }
            ]
        );
        assert_eq!(parse_scan_listing(b"").unwrap(), []);
        assert_eq!(
            parse_scan_listing(b"1 1\r\n1 2\r\n"),
            Err(ProtoError::DuplicateNumber(1))
        );
        let ids = parse_uidl_listing(b"1 aaa\r\n2 bbb\r\n").unwrap();
        assert_eq!(
            ids[1],
            UniqueId {
                number: 2,
                uidl: "bbb".into()
            }
        );
        assert_eq!(
            parse_uidl_listing(b"1 aaa\r\n2 aaa\r\n"),
            Err(ProtoError::DuplicateUidl {
                uidl: "aaa".into(),
                first: 1,
                second: 2
            })
        );
        assert_eq!(
            parse_uidl_listing(b"1 aaa\r\n1 bbb\r\n"),
            Err(ProtoError::DuplicateNumber(1))
        );
        // A blank line, or a status line inside a listing, is malformed.
        assert!(parse_scan_listing(b"1 1\r\n\r\n2 2\r\n").is_err());
        assert!(parse_uidl_listing(b"1 aaa\r\n-ERR gone\r\n").is_err());
        assert_eq!(parse_uidl_listing(b"1 a\0\r\n"), Err(ProtoError::Nul));
    }

    #[test]
    fn error_messages_quote_server_text_shortened() {
        let err = parse_status(&[b'x'; 5000]).unwrap_err().to_string();
        assert!(err.len() < 120, "{err}");
    }

    #[test]
    fn commands_are_encoded() {
        assert_eq!(Command::Capa.encode().unwrap(), b"CAPA\r\n");
        assert_eq!(Command::User("alice").encode().unwrap(), b"USER alice\r\n");
        assert_eq!(Command::Pass("p w").encode().unwrap(), b"PASS p w\r\n");
        assert_eq!(Command::List(None).encode().unwrap(), b"LIST\r\n");
        assert_eq!(Command::Uidl(Some(4)).encode().unwrap(), b"UIDL 4\r\n");
        assert_eq!(Command::Retr(12).encode().unwrap(), b"RETR 12\r\n");
        assert_eq!(Command::Dele(3).encode().unwrap(), b"DELE 3\r\n");
        assert_eq!(
            Command::Auth {
                mechanism: "PLAIN",
                initial_response: None
            }
            .encode()
            .unwrap(),
            b"AUTH PLAIN\r\n"
        );
        assert_eq!(
            Command::Auth {
                mechanism: "PLAIN",
                initial_response: Some("AGE=")
            }
            .encode()
            .unwrap(),
            b"AUTH PLAIN AGE=\r\n"
        );
        assert_eq!(Command::SaslCancel.encode().unwrap(), b"*\r\n");
        assert_eq!(Command::Quit.encode().unwrap(), b"QUIT\r\n");
    }

    #[test]
    fn command_injection_is_refused() {
        assert_eq!(
            Command::User("bob\r\nDELE 1").encode(),
            Err(ProtoError::BadArgument("user name"))
        );
        assert_eq!(
            Command::Pass("x\nQUIT").encode(),
            Err(ProtoError::BadArgument("password"))
        );
        assert_eq!(
            Command::Pass("x\0").encode(),
            Err(ProtoError::BadArgument("password"))
        );
        assert!(Command::SaslResponse("a\rb").encode().is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let shown = format!(
            "{:?} {:?} {:?}",
            Command::Pass("hunter2"),
            Command::Auth {
                mechanism: "XOAUTH2",
                initial_response: Some("hunter2")
            },
            Command::SaslResponse("hunter2")
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(format!("{:?}", Command::Retr(7)), "RETR 7");
    }

    #[test]
    fn sasl_responses_are_base64() {
        // base64("\0alice\0s3cret"), computed independently.
        assert_eq!(
            sasl_response(&crate::fetch::sasl::plain("alice", "s3cret").unwrap()),
            "AGFsaWNlAHMzY3JldA=="
        );
        assert_eq!(sasl_response(b""), "");
    }
}
