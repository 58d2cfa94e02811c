//! IMAP: async-imap on tokio, over the [`MailStream`] from [`super::net`].
//!
//! Before login this module speaks the few lines itself (greeting,
//! `CAPABILITY`, `STARTTLS`) so that "Test settings" can report each step and
//! STARTTLS can be refused when not offered; from login on, async-imap does
//! the work.
//!
//! Read-only until acknowledged: listing uses `UID FETCH … (UID RFC822.SIZE)`
//! or `UID SEARCH UNSEEN`, fetching uses `BODY.PEEK[]` (never sets `\Seen`),
//! in UID ranges per command. async-imap ends a FETCH stream quietly on EOF
//! or on a tagged `NO`; this module counts what arrived against what it asked
//! for, so a connection lost mid-FETCH is an error, never a short batch, and
//! reports the server's own words when it refused.
//!
//! Listing comes in windows of at most [`LIST_WINDOW`] messages, so memory
//! and every response line stay bounded however large the folder (or the
//! server's claims): mode `new` asks for sizes in UID ranges that widen over
//! sparse stretches; searches (`UNSEEN`, `SINCE`) run over message-number
//! ranges, so a `SEARCH` answer never holds more than a window of UIDs.
//! Everything async-imap parses passes through [`super::imap_guard`] first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::imap_guard::{self, Guarded, Seen};
use super::net::{self, MailStream, NetError, TlsInfo};
use super::sasl;
use super::{
    AccountSettings, Acknowledge, Auth, CursorAdvance, FetchError, FetchMode, Fetched,
    FolderCursor, Listed, Listing, MailSource, MessageKey, Security,
};

/// Longest line accepted before login (greeting, capability, STARTTLS).
const MAX_PRELOGIN_LINE: usize = 16 * 1024;

pub(crate) type Session = async_imap::Session<Guarded<MailStream>>;

/// Most messages one listing window holds (and so the most UIDs one
/// `SEARCH` answer can carry: about 55 KB).
pub const LIST_WINDOW: u32 = 5_000;

/// What the server said before login.
#[derive(Debug, Clone, Default)]
pub struct Greeting {
    /// The greeting line, without the leading `* OK`.
    pub text: String,
    /// Capabilities advertised before login (after STARTTLS, if used).
    pub capabilities: Vec<String>,
    /// TLS details if the connection is encrypted.
    pub tls: Option<TlsInfo>,
}

/// An authenticated IMAP session.
pub struct ImapSource {
    session: Session,
    settings: AccountSettings,
    /// Capabilities after login (UIDPLUS, MOVE…).
    capabilities: Vec<String>,
    /// Currently selected folder and its UIDVALIDITY.
    selected: Option<(String, u32)>,
    /// What the framing guard saw last (the tagged status line), for errors.
    seen: Arc<Mutex<Seen>>,
    /// Where the listing in progress stands, between windows.
    window: Option<Window>,
    /// `EXPUNGE`s seen since the last look: they shift message numbers.
    expunged: u32,
}

/// A listing in progress.
#[derive(Debug, Clone)]
struct Window {
    folder: String,
    validity: u32,
    /// `None`: every UID above `after` (mode `new`). `Some(criteria)`: a
    /// `SEARCH` over message numbers.
    search: Option<String>,
    /// Only UIDs above this are listed.
    after: u32,
    /// Next UID (mode `new`) or message number (search) to look at.
    next: u32,
    /// Last UID or message number to look at.
    end: u32,
    /// UIDs per `UID FETCH` range (mode `new`).
    span: u32,
}

impl std::fmt::Debug for ImapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSource")
            .field("account", &self.settings.name)
            .field("selected", &self.selected)
            .finish_non_exhaustive()
    }
}

/// Reads one CRLF-terminated line, bounded, byte by byte so that nothing past
/// the line is consumed (the stream is handed on afterwards).
async fn read_line(stream: &mut MailStream) -> Result<String, FetchError> {
    let mut line = Vec::with_capacity(128);
    loop {
        let byte = match stream.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(FetchError::Protocol(
                    "the server closed the connection".into(),
                ));
            }
            Err(e) => return Err(NetError::from(e).into()),
        };
        line.push(byte);
        if line.ends_with(b"\r\n") {
            line.truncate(line.len() - 2);
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        if line.len() > MAX_PRELOGIN_LINE {
            return Err(FetchError::Protocol(format!(
                "server line longer than {MAX_PRELOGIN_LINE} bytes"
            )));
        }
    }
}

async fn send(stream: &mut MailStream, command: &str) -> Result<(), FetchError> {
    stream
        .write_all(command.as_bytes())
        .await
        .map_err(NetError::from)?;
    stream.write_all(b"\r\n").await.map_err(NetError::from)?;
    stream.flush().await.map_err(NetError::from)?;
    Ok(())
}

/// Sends a tagged command and collects untagged lines until its completion;
/// returns (untagged lines, completion text) or the server's refusal.
async fn command(
    stream: &mut MailStream,
    tag: &str,
    text: &str,
) -> Result<Vec<String>, FetchError> {
    send(stream, &format!("{tag} {text}")).await?;
    let mut untagged = Vec::new();
    loop {
        let line = read_line(stream).await?;
        if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            let (status, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            return match status.to_ascii_uppercase().as_str() {
                "OK" => Ok(untagged),
                _ => Err(FetchError::Protocol(format!(
                    "{text} refused: {status} {detail}"
                ))),
            };
        }
        untagged.push(line);
        if untagged.len() > 1000 {
            return Err(FetchError::Protocol(format!(
                "too many responses to {text}"
            )));
        }
    }
}

fn parse_capabilities(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("* ")?;
            let (word, caps) = rest.split_once(' ')?;
            word.eq_ignore_ascii_case("CAPABILITY").then_some(caps)
        })
        .flat_map(|caps| caps.split_whitespace().map(|c| c.to_ascii_uppercase()))
        .collect()
}

fn has(caps: &[String], name: &str) -> bool {
    caps.iter().any(|c| c.eq_ignore_ascii_case(name))
}

/// Reads the greeting and capabilities, and does STARTTLS when the account
/// asks for it (refusing if the server does not offer it). For implicit TLS
/// the stream is already encrypted.
pub async fn greet(
    mut stream: MailStream,
    settings: &AccountSettings,
    tls: Option<TlsInfo>,
) -> Result<(MailStream, Greeting), FetchError> {
    let line = read_line(&mut stream).await?;
    let text = match line.split_once(' ') {
        Some(("*", rest)) if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("OK") => {
            rest[2..].trim().to_string()
        }
        Some(("*", rest)) if rest.to_ascii_uppercase().starts_with("BYE") => {
            return Err(FetchError::Busy(format!(
                "the server refused the connection: {}",
                short(rest[3..].trim())
            )));
        }
        Some(("*", rest)) if rest.to_ascii_uppercase().starts_with("PREAUTH") => {
            return Err(FetchError::Protocol(
                "the server pre-authenticated the connection; Intake always logs in".into(),
            ));
        }
        _ => {
            return Err(FetchError::Protocol(format!(
                "not an IMAP server greeting: {:?}",
                short(&line)
            )));
        }
    };
    let mut capabilities = parse_capabilities(&command(&mut stream, "i1", "CAPABILITY").await?);
    let mut tls = tls;
    if settings.security == Security::Starttls {
        if !has(&capabilities, "STARTTLS") {
            return Err(NetError::StartTlsNotOffered {
                command: "STARTTLS",
            }
            .into());
        }
        command(&mut stream, "i2", "STARTTLS").await?;
        let (secured, info) = stream.start_tls(settings).await?;
        stream = secured;
        tls = Some(info);
        // Capabilities before TLS must not be trusted (RFC 3501 §6.2.1).
        capabilities = parse_capabilities(&command(&mut stream, "i3", "CAPABILITY").await?);
    }
    Ok((
        stream,
        Greeting {
            text,
            capabilities,
            tls,
        },
    ))
}

/// Answers async-imap's SASL continuations: the first with the
/// mechanism's message, a later one (a bearer mechanism's error report)
/// with the reply [`sasl::bearer_failure_reply`] prescribes, keeping the
/// report so the refusal can say what the server said.
struct SaslAuth {
    first: Option<Vec<u8>>,
    auth: Auth,
    report: Arc<Mutex<Option<String>>>,
}

impl async_imap::Authenticator for SaslAuth {
    type Response = Vec<u8>;
    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if let Some(first) = self.first.take() {
            return first;
        }
        if let (Some(report), Ok(mut slot)) = (sasl::bearer_error(challenge), self.report.lock()) {
            *slot = Some(report);
        }
        sasl::bearer_failure_reply(self.auth)
            .unwrap_or_default()
            .to_vec()
    }
}

/// At most 200 characters of server text, for messages.
fn short(text: &str) -> String {
    const KEEP: usize = 200;
    if text.chars().count() > KEEP {
        format!("{}…", text.chars().take(KEEP).collect::<String>())
    } else {
        text.to_string()
    }
}

/// The server's words from async-imap's `NO`/`BAD` text, which is Rust debug
/// output (`code: Some(Unavailable), info: Some("…")`).
fn server_words(raw: &str) -> String {
    let code = raw
        .strip_prefix("code: Some(")
        .and_then(|r| r.split_once("), info:").map(|(c, _)| c))
        .map(|c| match c.split_once('"') {
            // `Other("X", None)`: the quoted name.
            Some((_, rest)) => rest.split('"').next().unwrap_or(rest).to_ascii_uppercase(),
            None => c.split('(').next().unwrap_or(c).to_ascii_uppercase(),
        });
    let info = raw
        .split_once("info: Some(\"")
        .map(|(_, rest)| rest.strip_suffix("\")").unwrap_or(rest))
        .map(|i| i.replace("\\\"", "\""));
    match (code, info) {
        (Some(code), Some(info)) => short(&format!("[{code}] {info}")),
        (None, Some(info)) => short(&info),
        (Some(code), None) => format!("[{code}]"),
        (None, None) if raw.starts_with("code: None") => "(no reason given)".into(),
        (None, None) => short(raw),
    }
}

/// True when the server's refusal says "not now" rather than "wrong"
/// (RFC 5530 codes, and the usual words for connection limits).
fn is_busy(words: &str) -> bool {
    let upper = words.to_ascii_uppercase();
    ["[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "TOO MANY"]
        .iter()
        .any(|w| upper.contains(w))
}

/// async-imap's error for `step`, in words: short, naming the step, and
/// never quoting message content (its parse errors embed the whole buffer).
pub(crate) fn imap_error(e: async_imap::error::Error, step: &str) -> FetchError {
    use async_imap::error::Error;
    match e {
        Error::Io(io) => {
            if let Some(v) = imap_guard::violation(&io) {
                return match v {
                    // A lost connection, not a protocol breach: the network
                    // class, and the next run may well succeed.
                    imap_guard::Violation::CutLiteral { .. } | imap_guard::Violation::CutLine => {
                        NetError::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("{step}: {v}"),
                        ))
                        .into()
                    }
                    _ => FetchError::Protocol(format!("{step}: {v}")),
                };
            }
            let text = io.to_string();
            if text.contains(" during parsing of ") {
                return FetchError::Protocol(format!(
                    "{step}: the server sent a response that is not valid IMAP"
                ));
            }
            if text.contains("bytes remaining in stream") {
                return FetchError::Protocol(format!(
                    "{step}: the connection closed in the middle of a response"
                ));
            }
            NetError::from(io).into()
        }
        Error::ConnectionLost => {
            FetchError::Protocol(format!("{step}: the server closed the connection"))
        }
        Error::No(m) => {
            let words = server_words(&m);
            if is_busy(&words) {
                FetchError::Busy(format!("{step} refused: NO {words}"))
            } else {
                FetchError::Protocol(format!("{step} refused: NO {words}"))
            }
        }
        Error::Bad(m) => FetchError::Protocol(format!("{step} refused: BAD {}", server_words(&m))),
        Error::Parse(_) => FetchError::Protocol(format!(
            "{step}: the server sent a response Intake cannot parse"
        )),
        other => FetchError::Protocol(format!("{step}: {}", short(&other.to_string()))),
    }
}

/// Logs in on a greeted stream.
pub async fn login(
    stream: MailStream,
    greeting: &Greeting,
    settings: &AccountSettings,
) -> Result<ImapSource, FetchError> {
    if settings.auth == Auth::Login && has(&greeting.capabilities, "LOGINDISABLED") {
        return Err(FetchError::Auth(
            "the server disables LOGIN on this connection (LOGINDISABLED): use STARTTLS or TLS, or SASL PLAIN".into(),
        ));
    }
    let max_literal = settings
        .max_message_bytes
        .saturating_add(settings.max_message_bytes / 8 + 64 * 1024);
    let (stream, seen) = Guarded::new(stream, max_literal);
    let client = async_imap::Client::new(stream);
    let user = settings.username.as_str();
    let password = settings.password.expose();
    let report = Arc::new(Mutex::new(None));
    let result = match sasl::initial(settings)
        .map_err(|e| FetchError::Auth(format!("cannot send these credentials: {e}")))?
    {
        None => client.login(user, password).await,
        Some((mechanism, first)) => {
            if !has(&greeting.capabilities, &format!("AUTH={mechanism}")) {
                tracing::info!(
                    mechanism,
                    "the server does not advertise this SASL mechanism; trying it anyway"
                );
            }
            client
                .authenticate(
                    mechanism,
                    SaslAuth {
                        first: Some(first),
                        auth: settings.auth,
                        report: report.clone(),
                    },
                )
                .await
        }
    };
    let mut session = match result {
        Ok(session) => session,
        Err((async_imap::error::Error::No(m), _)) => {
            let mut words = server_words(&m);
            if let Some(report) = report.lock().ok().and_then(|mut r| r.take()) {
                words = format!("{report}: {words}");
            }
            return Err(if is_busy(&words) {
                FetchError::Busy(format!("login refused: {words}"))
            } else {
                FetchError::Auth(words)
            });
        }
        Err((e, _)) => return Err(imap_error(e, "login")),
    };
    let capabilities = session
        .capabilities()
        .await
        .map_err(|e| imap_error(e, "CAPABILITY"))?
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>();
    let capabilities = normalize_caps(capabilities);
    Ok(ImapSource {
        session,
        settings: settings.clone(),
        capabilities,
        selected: None,
        seen,
        window: None,
        expunged: 0,
    })
}

/// async-imap's `Capability` Debug is `Atom("UIDPLUS")`, `Imap4rev1`,
/// `Auth("PLAIN")`; keep the names only.
fn normalize_caps(raw: Vec<String>) -> Vec<String> {
    raw.into_iter()
        .map(|c| {
            let c = c.trim_end_matches(')');
            let c = c.rsplit_once('(').map_or(c, |(_, inner)| inner);
            c.trim_matches('"').to_ascii_uppercase()
        })
        .collect()
}

/// Compresses UIDs into an IMAP sequence set: `1:3,7,9:10`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Message counts of a folder, for "Test settings".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderStatus {
    /// Messages in the folder.
    pub messages: u32,
    /// Messages without `\Seen`.
    pub unseen: u32,
}

impl ImapSource {
    /// Connects, secures, greets and logs in.
    pub async fn connect(settings: &AccountSettings) -> Result<Self, FetchError> {
        let (stream, tls) = net::connect(settings).await?;
        let (stream, greeting) = greet(stream, settings, tls).await?;
        login(stream, &greeting, settings).await
    }

    /// Capabilities after login.
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// Selects `folder` and hands over the session, for a watch on it
    /// ([`super::watch`]): `None` when the server does not offer IDLE.
    pub(crate) async fn into_idle_session(
        mut self,
        folder: &str,
    ) -> Result<Option<Session>, FetchError> {
        if !has(&self.capabilities, "IDLE") {
            let _ = self.session.logout().await;
            return Ok(None);
        }
        self.select(folder).await?;
        self.drain_unsolicited();
        Ok(Some(self.session))
    }

    /// Message and unseen counts (`STATUS`), without selecting.
    pub async fn status(&mut self, folder: &str) -> Result<FolderStatus, FetchError> {
        let mailbox =
            self.session
                .status(folder, "(MESSAGES UNSEEN)")
                .await
                .map_err(|e| match e {
                    async_imap::error::Error::No(detail)
                    | async_imap::error::Error::Bad(detail) => FetchError::NoSuchFolder {
                        folder: folder.into(),
                        detail: server_words(&detail),
                    },
                    other => imap_error(other, "STATUS"),
                })?;
        Ok(FolderStatus {
            messages: mailbox.exists,
            unseen: mailbox.unseen.unwrap_or(0),
        })
    }

    /// Selects `folder` (unless it is selected); returns its UIDVALIDITY and
    /// message count (0 when it was selected already: callers that need the
    /// count re-select).
    async fn select(&mut self, folder: &str) -> Result<(u32, u32), FetchError> {
        if let Some((name, validity)) = &self.selected
            && name == folder
        {
            return Ok((*validity, 0));
        }
        let mailbox = self.session.select(folder).await.map_err(|e| match e {
            async_imap::error::Error::No(detail) | async_imap::error::Error::Bad(detail) => {
                FetchError::NoSuchFolder {
                    folder: folder.into(),
                    detail: server_words(&detail),
                }
            }
            other => imap_error(other, "SELECT"),
        })?;
        let validity = mailbox.uid_validity.ok_or_else(|| {
            FetchError::Protocol(format!("the server gave no UIDVALIDITY for {folder:?}"))
        })?;
        self.drain_unsolicited();
        self.expunged = 0;
        self.selected = Some((folder.to_string(), validity));
        Ok((validity, mailbox.exists))
    }

    /// Unsolicited responses are not needed (listing asks the server
    /// afresh), except `EXPUNGE`, which shifts message numbers under a
    /// search window: count those, drop the rest so the channel never fills.
    fn drain_unsolicited(&mut self) {
        while let Ok(r) = self.session.unsolicited_responses.try_recv() {
            if matches!(r, async_imap::types::UnsolicitedResponse::Expunge(_)) {
                self.expunged = self.expunged.saturating_add(1);
            }
        }
    }

    /// The server's last tagged status line, if it was not `OK`: why a
    /// command async-imap ended quietly was refused.
    fn last_refusal(&self) -> Option<String> {
        let seen = self.seen.lock().ok()?;
        let line = seen.last_tagged.as_deref()?;
        let (_, status) = line.split_once(' ')?;
        let upper = status.to_ascii_uppercase();
        (upper.starts_with("NO") || upper.starts_with("BAD")).then(|| short(status))
    }

    /// UIDs and sizes from a `UID FETCH set (UID RFC822.SIZE)`, keeping at
    /// most `keep` of those within `lo..=hi` and above `after`.
    ///
    /// Each response is dropped as soon as it is read: async-imap gives
    /// every response a buffer of its own (4 KiB at least), so collecting
    /// them would cost memory in proportion to the mailbox.
    async fn sizes_in(
        &mut self,
        set: &str,
        lo: u32,
        hi: u32,
        keep: usize,
    ) -> Result<(Vec<(u32, u64)>, bool), FetchError> {
        let mut out: Vec<(u32, u64)> = Vec::new();
        let mut full = false;
        {
            let mut fetches = self
                .session
                .uid_fetch(set, "(UID RFC822.SIZE)")
                .await
                .map_err(|e| imap_error(e, "UID FETCH (sizes)"))?;
            while let Some(f) = fetches
                .try_next()
                .await
                .map_err(|e| imap_error(e, "UID FETCH (sizes)"))?
            {
                if let Some(uid) = f.uid
                    && (lo..=hi).contains(&uid)
                {
                    if out.len() < keep {
                        out.push((uid, u64::from(f.size.unwrap_or(0))));
                    } else {
                        // Read on (the answer must be consumed) but keep
                        // nothing more: the next window starts here.
                        full = true;
                    }
                }
            }
        }
        self.drain_unsolicited();
        out.sort_unstable();
        out.dedup_by_key(|(uid, _)| *uid);
        Ok((out, full))
    }

    /// The UID of the last message, or `None` for an empty folder.
    async fn highest_uid(&mut self, exists: u32) -> Result<Option<u32>, FetchError> {
        if exists == 0 {
            return Ok(None);
        }
        let mut highest = None;
        {
            let mut fetches = self
                .session
                .fetch(exists.to_string(), "(UID)")
                .await
                .map_err(|e| imap_error(e, "FETCH (UID)"))?;
            while let Some(f) = fetches
                .try_next()
                .await
                .map_err(|e| imap_error(e, "FETCH (UID)"))?
            {
                highest = highest.max(f.uid);
            }
        }
        self.drain_unsolicited();
        Ok(highest)
    }

    /// The next non-empty window of the listing in progress, or `None` when
    /// it is done.
    async fn next_window(&mut self) -> Result<Option<Vec<(u32, u64)>>, FetchError> {
        let Some(mut w) = self.window.take() else {
            return Ok(None);
        };
        let keep = LIST_WINDOW as usize;
        while w.next <= w.end && w.next != 0 {
            let found = match &w.search {
                None => {
                    let hi = w.next.saturating_add(w.span - 1).min(w.end);
                    let lo = w.next.max(w.after.saturating_add(1));
                    let (found, full) = self
                        .sizes_in(&format!("{}:{hi}", w.next), lo, hi, keep)
                        .await?;
                    w.next = match (full, found.last()) {
                        (true, Some((last, _))) => last.saturating_add(1),
                        _ => hi.saturating_add(1),
                    };
                    // Widen over sparse stretches, narrow when a window
                    // overflowed: round trips stay few, answers bounded.
                    if full {
                        w.span = (w.span / 2).max(LIST_WINDOW);
                    } else if found.len() < keep / 4 {
                        w.span = w.span.saturating_mul(2).min(1 << 30);
                    }
                    found
                }
                Some(criteria) => {
                    let hi = w.next.saturating_add(LIST_WINDOW - 1).min(w.end);
                    let query = format!("{}:{hi} {criteria}", w.next);
                    self.expunged = 0;
                    let uids: Vec<u32> = self
                        .session
                        .uid_search(&query)
                        .await
                        .map_err(|e| imap_error(e, "UID SEARCH"))?
                        .into_iter()
                        .filter(|uid| *uid > w.after)
                        .collect();
                    self.drain_unsolicited();
                    // Messages expunged meanwhile moved the rest down: step
                    // back as many (UIDs already listed are filtered out).
                    // (At most half a window, so a server that keeps
                    // claiming expunges cannot stall the listing.)
                    let back = self.expunged.min(LIST_WINDOW / 2);
                    w.next = hi.saturating_add(1).saturating_sub(back).max(1);
                    w.end = w.end.saturating_sub(self.expunged);
                    if uids.is_empty() {
                        Vec::new()
                    } else {
                        let (found, _) = self
                            .sizes_in(&uid_set(&uids), w.after.saturating_add(1), u32::MAX, keep)
                            .await?;
                        found
                    }
                }
            };
            if let Some((last, _)) = found.last()
                && w.search.is_some()
            {
                w.after = w.after.max(*last);
            }
            if !found.is_empty() {
                if w.next <= w.end {
                    self.window = Some(w);
                }
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Turns a window's UIDs and sizes into a listing; the cursor may skip
    /// past its messages over the size limit once the rest is committed.
    fn listing(
        &self,
        folder: &str,
        validity: u32,
        changed: bool,
        found: Vec<(u32, u64)>,
    ) -> Listing {
        let mut listing = Listing {
            folder: folder.to_string(),
            uid_validity: Some(validity),
            uid_validity_changed: changed,
            ..Listing::default()
        };
        for (uid, size) in found {
            let item = Listed {
                message: MessageKey::Imap {
                    folder: folder.to_string(),
                    uid_validity: validity,
                    uid,
                },
                size,
            };
            if size > self.settings.max_message_bytes {
                listing.too_large.push(item);
            } else {
                listing.new.push(item);
            }
        }
        listing.skip_to = skip_past(folder, validity, &listing.too_large);
        listing
    }

    /// A first sync keeps only the newest `limit` messages: gathers every
    /// window into `listing` (holding a tail of `limit + 1`), drops the
    /// older ones and lets the cursor skip past them.
    async fn keep_newest(
        &mut self,
        folder: &str,
        validity: u32,
        listing: &mut Listing,
        limit: u32,
    ) -> Result<(), FetchError> {
        while let Some(more) = self.list_more(folder).await? {
            listing.new.extend(more.new);
            listing.too_large.extend(more.too_large);
            let excess = listing.new.len().saturating_sub(limit as usize + 1);
            listing.new.drain(..excess);
        }
        let cut = listing.new.len().saturating_sub(limit as usize);
        let older: Vec<Listed> = listing.new.drain(..cut).collect();
        listing.skip_to = skip_past(folder, validity, older.iter().chain(&listing.too_large));
        Ok(())
    }

    /// Runs a UID STORE and waits for its completion.
    async fn store(&mut self, set: &str, flags: &str) -> Result<(), FetchError> {
        let stream = self
            .session
            .uid_store(set, flags)
            .await
            .map_err(|e| imap_error(e, "UID STORE"))?;
        let _: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| imap_error(e, "UID STORE"))?;
        self.drain_unsolicited();
        Ok(())
    }

    async fn delete(&mut self, folder: &str, set: &str) -> Result<(), FetchError> {
        self.store(set, "+FLAGS.SILENT (\\Deleted)").await?;
        if has(&self.capabilities, "UIDPLUS") {
            let stream = self
                .session
                .uid_expunge(set)
                .await
                .map_err(|e| imap_error(e, "UID EXPUNGE"))?;
            let _: Vec<_> = stream
                .try_collect()
                .await
                .map_err(|e| imap_error(e, "UID EXPUNGE"))?;
            self.drain_unsolicited();
        } else {
            // A plain EXPUNGE would also remove messages other clients
            // flagged \Deleted; leave them flagged for the server or the
            // user's client to expunge.
            tracing::warn!(account = %self.settings.name, folder, "server lacks UIDPLUS: messages are flagged \\Deleted but not expunged");
        }
        Ok(())
    }

    /// One `UID FETCH … BODY.PEEK[]` for `chunk`, into `bodies`. All or an
    /// error: a short answer is reported with the server's words.
    async fn fetch_chunk(
        &mut self,
        folder: &str,
        chunk: &[u32],
        bodies: &mut HashMap<(String, u32), bytes::Bytes>,
    ) -> Result<(), FetchError> {
        const STEP: &str = "UID FETCH (bodies)";
        let expected = chunk.len();
        let mut received = 0;
        let mut foreign = 0usize;
        let mut conflicting = Vec::new();
        {
            let mut stream = self
                .session
                .uid_fetch(uid_set(chunk), "(UID BODY.PEEK[])")
                .await
                .map_err(|e| imap_error(e, STEP))?;
            while let Some(fetch) = stream.try_next().await.map_err(|e| imap_error(e, STEP))? {
                let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) else {
                    continue;
                };
                if !chunk.contains(&uid) {
                    foreign += 1;
                    continue;
                }
                match bodies.entry((folder.to_string(), uid)) {
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(bytes::Bytes::copy_from_slice(body));
                        received += 1;
                    }
                    // A second copy of one UID: keep the first, never swap
                    // silently; different bytes are worth a warning.
                    std::collections::hash_map::Entry::Occupied(first) => {
                        if first.get().as_ref() != body {
                            conflicting.push(uid);
                        }
                    }
                }
            }
        }
        self.drain_unsolicited();
        if !conflicting.is_empty() {
            tracing::warn!(account = %self.settings.name, folder, uids = ?conflicting,
                "the server sent two different copies of the same UID in one FETCH; kept the first");
        }
        if received < expected {
            // EOF or a tagged NO ends async-imap's stream quietly: never
            // let that pass as a complete batch, and say what the server
            // said.
            let mut why =
                format!("the server sent {received} of the {expected} messages asked for");
            if foreign > 0 {
                why.push_str(&format!(
                    ", and {foreign} answer(s) for UIDs that were not asked for"
                ));
            }
            return Err(match self.last_refusal() {
                Some(refusal) if is_busy(&refusal) => {
                    FetchError::Busy(format!("{STEP} refused: {refusal} ({why})"))
                }
                Some(refusal) => FetchError::Protocol(format!("{STEP} refused: {refusal} ({why})")),
                None => FetchError::Protocol(format!("{STEP}: {why}")),
            });
        }
        Ok(())
    }
}

/// The cursor move past `skipped` (listed, not to be fetched): to the
/// highest UID among them.
fn skip_past<'a>(
    folder: &str,
    validity: u32,
    skipped: impl IntoIterator<Item = &'a Listed>,
) -> Option<CursorAdvance> {
    skipped
        .into_iter()
        .filter_map(|l| match l.message {
            MessageKey::Imap { uid, .. } => Some(uid),
            _ => None,
        })
        .max()
        .map(|uid| CursorAdvance {
            folder: folder.to_string(),
            uid_validity: validity,
            last_uid: uid,
        })
}

#[async_trait]
impl MailSource for ImapSource {
    fn folders(&self) -> Vec<String> {
        self.settings.folders.clone()
    }

    #[tracing::instrument(name = "imap.list", skip_all, fields(account = %self.settings.name, host = %self.settings.host, folder = %folder))]
    async fn list(&mut self, folder: &str, cursor: &FolderCursor) -> Result<Listing, FetchError> {
        self.selected = None; // re-SELECT so the counts and UIDVALIDITY are fresh
        self.window = None;
        let (validity, exists) = self.select(folder).await?;
        let changed = cursor.uid_validity.is_some_and(|v| v != validity);
        if changed {
            tracing::warn!(account = %self.settings.name, folder, old = cursor.uid_validity, new = validity,
                "UIDVALIDITY changed: re-listing the whole folder (duplicates are caught by Message-ID)");
        }
        let after = if changed { 0 } else { cursor.last_uid };
        // IMAP dates are days: SINCE d-Mon-yyyy (RFC 3501 §6.4.4).
        let since = self
            .settings
            .first_sync_since
            .map(|d| d.format("%d-%b-%Y").to_string());
        let fresh = cursor.uid_validity.is_none() && cursor.last_uid == 0 || changed;
        let search = match (self.settings.mode, since) {
            (FetchMode::New, Some(day)) if fresh => Some(format!("SINCE {day}")),
            (FetchMode::New, _) => None,
            (FetchMode::Unseen, Some(day)) => Some(format!("UNSEEN SINCE {day}")),
            (FetchMode::Unseen, None) => Some("UNSEEN".to_string()),
        };
        let (next, end) = match &search {
            Some(_) => (1, exists),
            None => match self.highest_uid(exists).await? {
                Some(highest) if highest > after => (after.saturating_add(1), highest),
                _ => (0, 0),
            },
        };
        self.window = Some(Window {
            folder: folder.to_string(),
            validity,
            search,
            after: if self.settings.mode == FetchMode::Unseen {
                0
            } else {
                after
            },
            next,
            end,
            span: LIST_WINDOW,
        });
        let found = self.next_window().await?.unwrap_or_default();
        let mut listing = self.listing(folder, validity, changed, found);
        if let Some(limit) = self.settings.first_sync_max_messages
            && cursor.is_fresh()
        {
            self.keep_newest(folder, validity, &mut listing, limit)
                .await?;
        }
        Ok(listing)
    }

    #[tracing::instrument(name = "imap.list_more", skip_all, fields(account = %self.settings.name, host = %self.settings.host, folder = %folder))]
    async fn list_more(&mut self, folder: &str) -> Result<Option<Listing>, FetchError> {
        let Some(w) = &self.window else {
            return Ok(None);
        };
        if w.folder != folder {
            return Ok(None);
        }
        let validity = w.validity;
        let (now, _) = self.select(folder).await?;
        if now != validity {
            self.window = None;
            return Err(FetchError::Protocol(format!(
                "UIDVALIDITY of {folder:?} changed while listing ({validity} → {now}); the next run lists again"
            )));
        }
        Ok(self
            .next_window()
            .await?
            .map(|found| self.listing(folder, validity, false, found)))
    }

    #[tracing::instrument(name = "imap.fetch", skip_all, fields(account = %self.settings.name, host = %self.settings.host, messages = messages.len()))]
    async fn fetch(&mut self, messages: &[MessageKey]) -> Result<Vec<Fetched>, FetchError> {
        // Group by folder, keeping the caller's order within each.
        let mut by_folder: BTreeMap<(String, u32), Vec<u32>> = BTreeMap::new();
        for m in messages {
            match m {
                MessageKey::Imap {
                    folder,
                    uid_validity,
                    uid,
                } => by_folder
                    .entry((folder.clone(), *uid_validity))
                    .or_default()
                    .push(*uid),
                other => {
                    return Err(FetchError::Protocol(format!(
                        "not an IMAP message: {other:?}"
                    )));
                }
            }
        }
        let mut bodies: HashMap<(String, u32), bytes::Bytes> =
            HashMap::with_capacity(messages.len());
        for ((folder, validity), uids) in by_folder {
            let (now, _) = self.select(&folder).await?;
            if now != validity {
                return Err(FetchError::Protocol(format!(
                    "UIDVALIDITY of {folder:?} changed since listing ({validity} → {now}); list again"
                )));
            }
            for chunk in uids.chunks(self.settings.batch_size.max(1)) {
                self.fetch_chunk(&folder, chunk, &mut bodies).await?;
            }
        }
        Ok(messages
            .iter()
            .map(|m| {
                let MessageKey::Imap { folder, uid, .. } = m else {
                    unreachable!("checked above")
                };
                let raw = bodies.remove(&(folder.clone(), *uid)).unwrap_or_default();
                Fetched {
                    message: m.clone(),
                    raw,
                }
            })
            .collect())
    }

    fn can_act_on(&self, message: &MessageKey) -> bool {
        matches!(message, MessageKey::Imap { .. })
    }

    #[tracing::instrument(name = "imap.acknowledge", skip_all, fields(account = %self.settings.name, host = %self.settings.host, actions = actions.len()))]
    async fn acknowledge(
        &mut self,
        actions: &[(MessageKey, Acknowledge)],
    ) -> Result<(), FetchError> {
        // Group by (folder, validity, action) so each becomes one command.
        let mut groups: BTreeMap<(String, u32, String), (Acknowledge, Vec<u32>)> = BTreeMap::new();
        for (m, action) in actions {
            let MessageKey::Imap {
                folder,
                uid_validity,
                uid,
            } = m
            else {
                return Err(FetchError::Protocol(format!("not an IMAP message: {m:?}")));
            };
            let key = (folder.clone(), *uid_validity, format!("{action:?}"));
            groups
                .entry(key)
                .or_insert_with(|| (action.clone(), Vec::new()))
                .1
                .push(*uid);
        }
        for ((folder, validity, _), (action, uids)) in groups {
            if action == Acknowledge::Leave {
                continue;
            }
            if self.select(&folder).await?.0 != validity {
                // The UIDs no longer name the same messages: acting could hit
                // the wrong mail. The pipeline retries after re-listing.
                return Err(FetchError::Protocol(format!(
                    "UIDVALIDITY of {folder:?} changed; not acting on stale UIDs"
                )));
            }
            let set = uid_set(&uids);
            match action {
                Acknowledge::Leave => {}
                Acknowledge::MarkSeen => self.store(&set, "+FLAGS.SILENT (\\Seen)").await?,
                Acknowledge::Delete if self.settings.keep_on_server => {
                    tracing::debug!(account = %self.settings.name, "keep-on-server: not deleting");
                }
                Acknowledge::Delete => self.delete(&folder, &set).await?,
                Acknowledge::MoveTo(target) => {
                    if has(&self.capabilities, "MOVE") {
                        self.session
                            .uid_mv(&set, &target)
                            .await
                            .map_err(|e| imap_error(e, "UID MOVE"))?;
                        self.drain_unsolicited();
                    } else {
                        self.session
                            .uid_copy(&set, &target)
                            .await
                            .map_err(|e| imap_error(e, "UID COPY"))?;
                        self.delete(&folder, &set).await?;
                    }
                }
            }
        }
        Ok(())
    }

    #[tracing::instrument(name = "imap.close", skip_all, fields(account = %self.settings.name, host = %self.settings.host))]
    async fn close(mut self: Box<Self>) -> Result<(), FetchError> {
        self.session
            .logout()
            .await
            .map_err(|e| imap_error(e, "LOGOUT"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compressed() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 9, 10, 7]), "1:3,5,7,9:10");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[2, 2, 3]), "2:3");
    }

    #[test]
    fn capabilities_are_parsed_case_insensitively() {
        let caps = parse_capabilities(&[
            "* capability IMAP4rev1 starttls LOGINDISABLED".into(),
            "* OK x".into(),
        ]);
        assert!(has(&caps, "STARTTLS") && has(&caps, "logindisabled"));
        assert_eq!(
            normalize_caps(vec!["Atom(\"UIDPLUS\")".into(), "Imap4rev1".into()]),
            ["UIDPLUS", "IMAP4REV1"]
        );
    }
}
