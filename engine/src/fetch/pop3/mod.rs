//! POP3 (RFC 1939): the [`Pop3Source`] the pipeline drives.
//!
//! - [`proto`]: the wire format without I/O, the bounded parser. Public so
//!   the fuzz targets in `fuzz/` can feed it arbitrary bytes.
//! - [`client`]: one session over any async stream.
//!
//! POP3 has one folder, no flags, and message numbers that are only valid in
//! the session that listed them. So this source:
//! - requires `UIDL`: unique-ids are what the cursor remembers and what
//!   identifies a message ([`MessageKey::Pop3`]) everywhere outside this
//!   module, and in keep-copy mode ids already ingested are skipped;
//! - maps ids to this session's message numbers itself, from its own
//!   listing (made first if nothing was listed yet in this session, e.g.
//!   for deletions queued by an earlier run), so a number never leaves the
//!   session that listed it;
//! - deletes only through `DELE` after the pipeline's commit, which the
//!   server applies at a clean `QUIT` and only then: a session that breaks,
//!   or is dropped without [`MailSource::close`], deletes nothing;
//! - never hands on a message a desync may have cut short: a body far
//!   shorter than `LIST` announced, or bytes left over after the last reply
//!   of a batch, fail the whole batch before anything is committed (an
//!   unstuffed `.` line ends a body early and leaves its rest on the wire).

pub mod client;
pub mod proto;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

pub use client::{BatchError, Pop3Client};
use proto::Capabilities;

use super::net::{self, MailStream};
use super::{
    AccountSettings, Acknowledge, FetchError, Fetched, FolderCursor, Listed, Listing, MailSource,
    MessageKey, NetError, Security,
};

/// The only POP3 folder.
const INBOX: &str = "INBOX";

/// How much larger than the account's size limit a `RETR` body may be.
/// Servers often count a message's size as stored (LF line ends) and send
/// it with CRLF, so the body can outgrow its `LIST` size by one byte per
/// line; an eighth plus 64 KiB covers lines of eight bytes or more.
fn retr_limit(max_message_bytes: u64) -> usize {
    let slack = max_message_bytes / 8 + 64 * 1024;
    usize::try_from(max_message_bytes.saturating_add(slack)).unwrap_or(usize::MAX)
}

/// An authenticated POP3 session, as a [`MailSource`].
///
/// `S` is the transport: a [`MailStream`] from [`Pop3Source::connect`], or
/// any stream given to [`Pop3Source::over_stream`] (tests, fuzzing).
pub struct Pop3Source<S = MailStream> {
    client: Pop3Client<S>,
    /// Account name, for messages.
    account: String,
    /// Larger messages are listed as too large and never retrieved.
    max_message_bytes: u64,
    /// Keep-copy mode: `Delete` acknowledgements are skipped.
    keep_on_server: bool,
    /// Number → unique-id and size from the last listing in this session.
    /// Numbers are only meaningful here.
    listed: BTreeMap<u32, (String, u64)>,
    /// Unique-id → number, the reverse of `listed`: every `RETR` and `DELE`
    /// takes its number from here. `None` until this session listed.
    numbers: Option<HashMap<String, u32>>,
    /// Numbers the server accepted `DELE` for. They are removed only by a
    /// successful `QUIT`.
    marked_for_deletion: BTreeSet<u32>,
    /// `pop3{account, host, port}`: every operation runs inside it.
    span: tracing::Span,
}

impl<S> std::fmt::Debug for Pop3Source<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Source")
            .field("account", &self.account)
            .field("listed", &self.listed.len())
            .field("marked_for_deletion", &self.marked_for_deletion.len())
            .finish_non_exhaustive()
    }
}

fn session_span(settings: &AccountSettings) -> tracing::Span {
    tracing::info_span!("pop3", account = %settings.name, host = %settings.host, port = settings.effective_port())
}

/// How many bytes a `RETR` body may fall short of its `LIST` size before it
/// counts as cut short: 2 % plus 8 bytes. `LIST` gives the exact size as
/// sent (RFC 1939 §11); servers storing LF line ends under-count, never
/// over-count, so a body much shorter than announced means the reply ended
/// early — typically at a `.` line the server did not stuff.
fn short_by_too_much(received: usize, listed: u64) -> bool {
    let tolerance = listed / 50 + 8;
    (received as u64).saturating_add(tolerance) < listed
}

/// Reads the greeting and the capabilities.
pub async fn greet<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
) -> Result<Pop3Client<S>, FetchError> {
    let mut client = Pop3Client::new(stream);
    let greeting = client.greeting().await?;
    tracing::debug!(greeting = %greeting.text, "connected");
    client.capa().await?;
    Ok(client)
}

/// Greeting, `CAPA`, `STLS`, then `upgrade` (the TLS hand-shake) and `CAPA`
/// again over the result. A server that does not advertise `STLS` is refused
/// before anything else is sent; there is no fall-back to clear text.
async fn starttls<S, T, F, Fut>(stream: S, upgrade: F) -> Result<Pop3Client<T>, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
    F: FnOnce(S) -> Fut,
    Fut: Future<Output = Result<T, NetError>>,
{
    let mut client = greet(stream).await?;
    if !client.capabilities().is_some_and(Capabilities::stls) {
        return Err(NetError::StartTlsNotOffered { command: "STLS" }.into());
    }
    client.stls().await?;
    let mut secured = Pop3Client::new(upgrade(client.into_inner()).await?);
    // What the server advertised in clear text may have been tampered with
    // (RFC 2595 §4): ask again over TLS.
    secured.capa().await?;
    Ok(secured)
}

/// Connects, secures the connection as `settings.security` says, and
/// greets: implicit TLS first, or `STLS` after the greeting (refused if the
/// server does not offer it), or clear text. Not logged in yet.
pub async fn open_client(settings: &AccountSettings) -> Result<Pop3Client<MailStream>, FetchError> {
    let (stream, _) = net::connect_tcp(settings).await?;
    match settings.security {
        Security::Tls => {
            let (stream, _) = stream.start_tls(settings).await?;
            greet(stream).await
        }
        Security::Starttls => {
            starttls(stream, |plain| async move {
                plain.start_tls(settings).await.map(|(tls, _)| tls)
            })
            .await
        }
        Security::None => greet(stream).await,
    }
}

/// `STLS` on a connected stream, as [`open_client`] does it, also
/// returning what the TLS hand-shake established (for "Test settings").
pub async fn stls_client(
    stream: MailStream,
    settings: &AccountSettings,
) -> Result<(Pop3Client<MailStream>, net::TlsInfo), FetchError> {
    let mut info = None;
    let slot = &mut info;
    let client = starttls(stream, |plain| async move {
        let (tls, established) = plain.start_tls(settings).await?;
        *slot = Some(established);
        Ok(tls)
    })
    .await?;
    Ok((client, info.unwrap_or_default()))
}

impl Pop3Source<MailStream> {
    /// Connects, secures the connection, greets and authenticates.
    pub async fn connect(settings: &AccountSettings) -> Result<Self, FetchError> {
        let span = session_span(settings);
        async {
            let client = open_client(settings).await?;
            Self::login(client, settings, span.clone()).await
        }
        .instrument(span.clone())
        .await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Pop3Source<S> {
    /// Greets and authenticates over a stream the caller connected (and
    /// secured, if at all): `settings.security` is not applied here.
    pub async fn over_stream(stream: S, settings: &AccountSettings) -> Result<Self, FetchError> {
        let span = session_span(settings);
        async { Self::login(greet(stream).await?, settings, span.clone()).await }
            .instrument(span.clone())
            .await
    }

    /// Authenticates a greeted client (from [`greet`] or [`open_client`]).
    pub async fn authenticate(
        client: Pop3Client<S>,
        settings: &AccountSettings,
    ) -> Result<Self, FetchError> {
        let span = session_span(settings);
        Self::login(client, settings, span.clone())
            .instrument(span)
            .await
    }

    /// What the server advertised (after STLS, if used).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.client.capabilities()
    }

    async fn login(
        mut client: Pop3Client<S>,
        settings: &AccountSettings,
        span: tracing::Span,
    ) -> Result<Self, FetchError> {
        let initial = crate::fetch::sasl::initial(settings)
            .map_err(|e| FetchError::Auth(format!("cannot send these credentials: {e}")))?;
        let result = match initial {
            None => {
                client
                    .user_pass(&settings.username, &settings.password)
                    .await
            }
            Some((mechanism, message)) => {
                if !client.capabilities().is_some_and(|c| c.sasl(mechanism)) {
                    // Old servers answer CAPA with -ERR yet know AUTH; the
                    // server's reply says more than a guess would.
                    tracing::info!(
                        mechanism,
                        "the server does not advertise this SASL mechanism; trying it anyway"
                    );
                }
                client
                    .auth(
                        mechanism,
                        &message,
                        crate::fetch::sasl::bearer_failure_reply(settings.auth),
                    )
                    .await
            }
        };
        result?;
        tracing::debug!(user = %settings.username, "logged in");
        Ok(Pop3Source {
            client,
            account: settings.name.clone(),
            max_message_bytes: settings.max_message_bytes,
            keep_on_server: settings.keep_on_server,
            listed: BTreeMap::new(),
            numbers: None,
            marked_for_deletion: BTreeSet::new(),
            span,
        })
    }

    /// The number of the message with this unique-id in this session:
    /// `Ok(None)` if the session's listing does not have it (no longer on
    /// the server). Lists first if this session has not listed yet.
    async fn number_of(&mut self, message: &MessageKey) -> Result<Option<u32>, FetchError> {
        let MessageKey::Pop3 { uidl } = message else {
            return Err(FetchError::Protocol(format!(
                "{message:?} is not a POP3 message"
            )));
        };
        if self.numbers.is_none() {
            self.list_inbox(&FolderCursor::default()).await?;
        }
        Ok(self
            .numbers
            .as_ref()
            .and_then(|numbers| numbers.get(uidl))
            .copied())
    }

    async fn list_inbox(&mut self, cursor: &FolderCursor) -> Result<Listing, FetchError> {
        let ids = self.client.uidl().await?;
        let sizes: BTreeMap<u32, u64> = self
            .client
            .list()
            .await?
            .into_iter()
            .map(|s| (s.number, s.size))
            .collect();
        let ids: BTreeMap<u32, String> = ids.into_iter().map(|u| (u.number, u.uidl)).collect();
        // The maildrop is locked for the session, so both listings describe
        // the same messages; if they do not, the server cannot be trusted.
        if let Some(n) = ids.keys().find(|n| !sizes.contains_key(n)) {
            return Err(FetchError::Protocol(format!(
                "UIDL and LIST disagree: UIDL lists message {n}, LIST does not ({} and {} messages)",
                ids.len(),
                sizes.len()
            )));
        }
        if let Some(n) = sizes.keys().find(|n| !ids.contains_key(n)) {
            return Err(FetchError::Protocol(format!(
                "UIDL and LIST disagree: LIST lists message {n}, UIDL does not ({} and {} messages)",
                sizes.len(),
                ids.len()
            )));
        }
        let mut listing = Listing {
            folder: INBOX.into(),
            uid_validity: None,
            ..Listing::default()
        };
        for (&number, uidl) in &ids {
            if cursor.seen_uidls.contains(uidl) {
                continue;
            }
            let size = sizes[&number];
            let item = Listed {
                message: MessageKey::Pop3 { uidl: uidl.clone() },
                size,
            };
            if size > self.max_message_bytes {
                listing.too_large.push(item);
            } else {
                listing.new.push(item);
            }
        }
        tracing::debug!(
            on_server = ids.len(),
            new = listing.new.len(),
            too_large = listing.too_large.len(),
            "listed INBOX"
        );
        self.numbers = Some(ids.iter().map(|(n, uidl)| (uidl.clone(), *n)).collect());
        self.listed = ids
            .into_iter()
            .map(|(n, uidl)| {
                let size = sizes[&n];
                (n, (uidl, size))
            })
            .collect();
        Ok(listing)
    }

    async fn fetch_listed(&mut self, messages: &[MessageKey]) -> Result<Vec<Fetched>, FetchError> {
        let mut numbers = Vec::with_capacity(messages.len());
        for message in messages {
            match self.number_of(message).await? {
                Some(number) => numbers.push(number),
                None => {
                    return Err(FetchError::Protocol(format!(
                        "{message:?} is not on the server (any more): not in this session's UIDL listing"
                    )));
                }
            }
        }
        let expected = messages.len();
        let bodies = match self
            .client
            .retr_batch(&numbers, retr_limit(self.max_message_bytes))
            .await
        {
            Ok(bodies) => bodies,
            Err(BatchError { received, error }) if client::is_connection_lost(&error) => {
                tracing::warn!(received, expected, %error, "connection lost during RETR");
                return Err(FetchError::Incomplete {
                    during: "RETR",
                    received,
                    expected,
                });
            }
            Err(BatchError { error, .. }) => return Err(error),
        };
        if bodies.len() != expected {
            // retr_batch is all or an error; never hand on a short batch.
            return Err(FetchError::Incomplete {
                during: "RETR",
                received: bodies.len(),
                expected,
            });
        }
        for (number, body) in numbers.iter().zip(&bodies) {
            let listed = self.listed.get(number).map_or(0, |(_, size)| *size);
            if short_by_too_much(body.len(), listed) {
                let error = FetchError::Protocol(format!(
                    "message {number} arrived with {} bytes although LIST announced {listed}: the reply ended early \
                     (the server probably sent a '.' line without dot-stuffing), so the session is out of step; \
                     nothing of this batch is stored",
                    body.len()
                ));
                return Err(self.client.fail(error));
            }
        }
        // Bytes beyond the last reply answer nothing we asked: the server
        // and we disagree on where a reply ended.
        self.client.ensure_drained("RETR")?;
        Ok(messages
            .iter()
            .zip(bodies)
            .map(|(m, raw)| Fetched {
                message: m.clone(),
                raw: raw.into(),
            })
            .collect())
    }

    async fn apply(&mut self, actions: &[(MessageKey, Acknowledge)]) -> Result<(), FetchError> {
        // Check every action before sending anything, so a batch is never
        // half applied.
        let mut delete = Vec::new();
        for (message, action) in actions {
            match action {
                Acknowledge::Leave | Acknowledge::MarkSeen => {}
                // Not on the server any more (deleted elsewhere): nothing
                // left to delete.
                Acknowledge::Delete => delete.extend(self.number_of(message).await?),
                Acknowledge::MoveTo(folder) => {
                    return Err(FetchError::Unsupported(format!(
                        "POP3 has no folders, so messages cannot be moved to {folder:?}; use delete or leave for \
                         account {:?}",
                        self.account
                    )));
                }
            }
        }
        if delete.is_empty() {
            return Ok(());
        }
        if self.keep_on_server {
            tracing::debug!(
                messages = delete.len(),
                "keep a copy on the server: not deleting"
            );
            return Ok(());
        }
        for number in delete {
            if self.marked_for_deletion.contains(&number) {
                continue;
            }
            self.client.dele(number).await?;
            self.marked_for_deletion.insert(number);
        }
        Ok(())
    }

    async fn quit(&mut self) -> Result<(), FetchError> {
        let marked = self.marked_for_deletion.len();
        match self.client.quit().await {
            Ok(()) => {
                if marked > 0 {
                    tracing::info!(deleted = marked, "messages deleted from the server");
                }
                Ok(())
            }
            Err(e) if marked == 0 => Err(e),
            Err(e) => Err(FetchError::Protocol(format!(
                "QUIT failed, so the {marked} message(s) marked for deletion were not deleted and are still on the \
                 server: {e}"
            ))),
        }
    }
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send> MailSource for Pop3Source<S> {
    fn folders(&self) -> Vec<String> {
        vec![INBOX.into()]
    }

    async fn list(&mut self, folder: &str, cursor: &FolderCursor) -> Result<Listing, FetchError> {
        if !folder.eq_ignore_ascii_case(INBOX) {
            return Err(FetchError::NoSuchFolder {
                folder: folder.into(),
                detail: "POP3 has only INBOX".into(),
            });
        }
        let span = self.span.clone();
        self.list_inbox(cursor).instrument(span).await
    }

    async fn fetch(&mut self, messages: &[MessageKey]) -> Result<Vec<Fetched>, FetchError> {
        let span = self.span.clone();
        self.fetch_listed(messages).instrument(span).await
    }

    fn acknowledged_at_close(&self) -> bool {
        true
    }

    fn can_act_on(&self, message: &MessageKey) -> bool {
        matches!(message, MessageKey::Pop3 { .. })
    }

    async fn acknowledge(
        &mut self,
        actions: &[(MessageKey, Acknowledge)],
    ) -> Result<(), FetchError> {
        let span = self.span.clone();
        self.apply(actions).instrument(span).await
    }

    async fn close(mut self: Box<Self>) -> Result<(), FetchError> {
        let span = self.span.clone();
        self.quit().instrument(span).await
    }
}

#[cfg(test)]
mod tests;
