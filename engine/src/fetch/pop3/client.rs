//! One POP3 session over any async byte stream: sends commands, reads the
//! replies through the bounded parser in [`super::proto`], and turns them
//! into typed results or [`FetchError`]s.
//!
//! Generic over the stream so tests drive it over `tokio::io::duplex` and the
//! fuzzer over an in-memory reader; in production it runs over a
//! [`super::super::net::MailStream`], whose idle timeout bounds every read.
//!
//! Once a reply could not be read whole (I/O error, protocol violation, a
//! body over its cap) the session is marked broken: the next bytes on the
//! wire can no longer be matched to a command, so every later call fails
//! instead of misreading them.

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::proto::{
    self, AuthReply, Capabilities, Command, MultiLine, ProtoError, Response, ResponseCode,
    ScanListing, UniqueId,
};
use crate::fetch::{FetchError, NetError, Secret};

/// Most bytes asked of the stream per read; the buffer never holds more
/// than this beyond the line being assembled.
const READ_CHUNK: usize = 16 * 1024;

/// Most `RETR` commands in flight at once with `PIPELINING`. Small enough
/// that the commands always fit the socket buffers, so the server can never
/// block on replies we are not yet reading while we block on commands it is
/// not yet reading.
const PIPELINE_WINDOW: usize = 32;

/// A batch of `RETR`s that stopped early.
#[derive(Debug)]
pub struct BatchError {
    /// Messages that arrived whole before the failure.
    pub received: usize,
    /// What went wrong.
    pub error: FetchError,
}

/// A POP3 session. Commands are methods; each waits for its reply.
pub struct Pop3Client<S> {
    stream: S,
    /// Bytes received and not yet parsed.
    buf: BytesMut,
    /// The last `CAPA` answer in this session (and on this stream: it is
    /// dropped with the stream at STLS).
    capabilities: Option<Capabilities>,
    /// Why the session can no longer be used, after a failure that left the
    /// wire out of step.
    broken: Option<String>,
}

impl<S> std::fmt::Debug for Pop3Client<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Client")
            .field("buffered", &self.buf.len())
            .field("capabilities", &self.capabilities)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

fn protocol(context: &str, e: ProtoError) -> FetchError {
    FetchError::Protocol(format!("{context}: {e}"))
}

/// The error for a server that hung up: `UnexpectedEof`, so callers can
/// tell a lost connection from a refusal.
fn closed(during: &str) -> FetchError {
    NetError::from(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the server closed the connection during {during}"),
    ))
    .into()
}

/// True if `e` means the connection went away (as opposed to a refusal or a
/// protocol violation).
pub fn is_connection_lost(e: &FetchError) -> bool {
    matches!(e, FetchError::Net(NetError::Io(io)) if matches!(
        io.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    ))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Pop3Client<S> {
    /// Wraps a connected stream. Nothing is read yet: call
    /// [`Self::greeting`] first on a new connection, but not after STLS
    /// (the server sends no second greeting).
    pub fn new(stream: S) -> Self {
        Pop3Client {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            capabilities: None,
            broken: None,
        }
    }

    /// Gives the stream back, e.g. to run the TLS hand-shake after
    /// [`Self::stls`]. Bytes already received are discarded: anything the
    /// server sent after its STLS `+OK` was not protected by TLS and must
    /// never be read as part of the encrypted session (RFC 2595 §4, the
    /// STARTTLS command-injection attack).
    pub fn into_inner(self) -> S {
        if !self.buf.is_empty() {
            tracing::warn!(
                bytes = self.buf.len(),
                "discarding data the server sent before the TLS hand-shake"
            );
        }
        self.stream
    }

    /// The last `CAPA` answer, if `CAPA` was sent on this stream.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// Reads the greeting. `-ERR` (server busy, IP blocked…) is an error.
    pub async fn greeting(&mut self) -> Result<Response, FetchError> {
        let reply = self.read_status("the greeting").await?;
        if !reply.is_ok() {
            let busy = matches!(
                reply.code,
                Some(ResponseCode::SysTemp | ResponseCode::InUse | ResponseCode::LoginDelay)
            ) || reply.text.to_ascii_lowercase().contains("too many");
            let text = format!("the server refused the connection: {reply}");
            return Err(if busy {
                FetchError::Busy(text)
            } else {
                FetchError::Protocol(text)
            });
        }
        Ok(reply)
    }

    /// Asks for the capabilities (RFC 2449). A server too old for `CAPA`
    /// answers `-ERR`, which counts as advertising nothing.
    pub async fn capa(&mut self) -> Result<Capabilities, FetchError> {
        let reply = self.command(Command::Capa).await?;
        let caps = if reply.is_ok() {
            let body = self
                .read_multiline("CAPA", proto::MAX_CAPA_BYTES, Some(proto::MAX_LINE))
                .await?;
            Capabilities::parse(&body).map_err(|e| protocol("CAPA", e))?
        } else {
            tracing::debug!(reply = %reply, "the server does not support CAPA");
            Capabilities::default()
        };
        self.capabilities = Some(caps.clone());
        Ok(caps)
    }

    /// Sends `STLS`. On `Ok` the caller must take the stream back with
    /// [`Self::into_inner`], run the TLS hand-shake, and start a new client
    /// on the encrypted stream (then `CAPA` again: what was said in clear
    /// text cannot be trusted). A refusal is an error, never a reason to go
    /// on without TLS.
    pub async fn stls(&mut self) -> Result<(), FetchError> {
        let reply = self.command(Command::Stls).await?;
        if !reply.is_ok() {
            return Err(FetchError::Protocol(format!(
                "the server refused STLS ({reply}); refusing to continue without TLS"
            )));
        }
        Ok(())
    }

    /// `USER` then `PASS`. Either refused is [`FetchError::Auth`] (unless
    /// the server's response code says the credentials are not the problem).
    pub async fn user_pass(&mut self, user: &str, password: &Secret) -> Result<(), FetchError> {
        let reply = self.command(Command::User(user)).await?;
        if !reply.is_ok() {
            return Err(login_refused(&reply));
        }
        let reply = self.command(Command::Pass(password.expose())).await?;
        if !reply.is_ok() {
            return Err(login_refused(&reply));
        }
        Ok(())
    }

    /// SASL `AUTH` (RFC 5034) with one message (`message`, from
    /// [`crate::fetch::sasl`]): PLAIN, or a bearer mechanism. The initial
    /// response goes on the command line when the line stays within RFC
    /// 2449's 255 octets (an access token rarely does); otherwise it is
    /// sent after the server's `+ ` continuation. A further challenge is a
    /// bearer mechanism's error report, answered as the mechanism asks
    /// (`failure_reply`), or, for PLAIN, cancelled with `*`. A refusal is
    /// [`FetchError::Auth`].
    pub async fn auth(
        &mut self,
        mechanism: &'static str,
        message: &[u8],
        failure_reply: Option<&[u8]>,
    ) -> Result<(), FetchError> {
        let response = proto::sasl_response(message);
        let inline =
            "AUTH  ".len() + mechanism.len() + response.len() + 2 <= proto::MAX_COMMAND_LINE;
        let mut reply = if inline {
            self.send(Command::Auth {
                mechanism,
                initial_response: Some(&response),
            })
            .await?;
            self.read_auth_reply().await?
        } else {
            self.send(Command::Auth {
                mechanism,
                initial_response: None,
            })
            .await?;
            match self.read_auth_reply().await? {
                AuthReply::Continue(_) => {
                    self.send(Command::SaslResponse(&response)).await?;
                    self.read_auth_reply().await?
                }
                done => done,
            }
        };
        let mut report = None;
        if let AuthReply::Continue(challenge) = &reply {
            let Some(answer) = failure_reply else {
                // PLAIN is one message; a further challenge means the
                // server wants something we do not have. Cancel, as RFC
                // 5034 asks.
                self.send(Command::SaslCancel).await?;
                let detail = match self.read_auth_reply().await? {
                    AuthReply::Done(r) => r.to_string(),
                    AuthReply::Continue(_) => String::from("another challenge"),
                };
                return Err(FetchError::Auth(format!(
                    "the server asked for more than SASL {mechanism} provides; cancelled ({detail})"
                )));
            };
            use base64::Engine as _;
            report = base64::engine::general_purpose::STANDARD
                .decode(challenge.trim())
                .ok()
                .and_then(|c| crate::fetch::sasl::bearer_error(&c));
            let answer = proto::sasl_response(answer);
            self.send(Command::SaslResponse(&answer)).await?;
            reply = self.read_auth_reply().await?;
        }
        match reply {
            AuthReply::Done(r) if r.is_ok() => Ok(()),
            AuthReply::Done(r) => Err(match (login_refused(&r), report) {
                (FetchError::Auth(words), Some(report)) => {
                    FetchError::Auth(format!("{report}: {words}"))
                }
                (e, _) => e,
            }),
            AuthReply::Continue(_) => Err(FetchError::Auth("unexpected SASL continuation".into())),
        }
    }

    /// `STAT`: message count and total size.
    pub async fn stat(&mut self) -> Result<(u32, u64), FetchError> {
        let reply = self.expect_ok(Command::Stat).await?;
        proto::parse_stat(reply.text.as_bytes()).map_err(|e| protocol("STAT", e))
    }

    /// `LIST`: number and size of every message, in the server's order.
    pub async fn list(&mut self) -> Result<Vec<ScanListing>, FetchError> {
        self.expect_ok(Command::List(None)).await?;
        let body = self
            .read_multiline("LIST", proto::MAX_LISTING_BYTES, Some(proto::MAX_LINE))
            .await?;
        proto::parse_scan_listing(&body).map_err(|e| protocol("LIST", e))
    }

    /// `LIST n`.
    pub async fn list_one(&mut self, number: u32) -> Result<ScanListing, FetchError> {
        let reply = self.expect_ok(Command::List(Some(number))).await?;
        let entry =
            proto::parse_scan_line(reply.text.as_bytes()).map_err(|e| protocol("LIST", e))?;
        if entry.number != number {
            return Err(FetchError::Protocol(format!(
                "LIST {number} answered for message {}",
                entry.number
            )));
        }
        Ok(entry)
    }

    /// `UIDL`: number and unique-id of every message, in the server's order.
    /// A refusal is [`FetchError::Unsupported`]: without unique-ids Intake
    /// cannot tell which messages it has already ingested.
    pub async fn uidl(&mut self) -> Result<Vec<UniqueId>, FetchError> {
        let reply = self.command(Command::Uidl(None)).await?;
        if !reply.is_ok() {
            return Err(no_uidl(&reply));
        }
        let body = self
            .read_multiline("UIDL", proto::MAX_LISTING_BYTES, Some(proto::MAX_LINE))
            .await?;
        proto::parse_uidl_listing(&body).map_err(|e| protocol("UIDL", e))
    }

    /// `UIDL n`.
    pub async fn uidl_one(&mut self, number: u32) -> Result<UniqueId, FetchError> {
        let reply = self.command(Command::Uidl(Some(number))).await?;
        if !reply.is_ok() {
            return Err(FetchError::Protocol(format!(
                "UIDL {number} refused: {reply}"
            )));
        }
        let entry =
            proto::parse_uidl_line(reply.text.as_bytes()).map_err(|e| protocol("UIDL", e))?;
        if entry.number != number {
            return Err(FetchError::Protocol(format!(
                "UIDL {number} answered for message {}",
                entry.number
            )));
        }
        Ok(entry)
    }

    /// `RETR n`: the message exactly as sent, dot-unstuffed, line endings
    /// untouched. A body over `limit` bytes is an error (never truncated),
    /// and so is a connection that ends before the terminating `.`.
    pub async fn retr(&mut self, number: u32, limit: usize) -> Result<Vec<u8>, FetchError> {
        self.send(Command::Retr(number)).await?;
        self.read_retr(number, limit).await
    }

    /// `RETR` for each of `numbers`, in order, all or an error. With
    /// `PIPELINING` (RFC 2449) up to 32 commands go out before the replies
    /// are read; without it, one at a time.
    pub async fn retr_batch(
        &mut self,
        numbers: &[u32],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, BatchError> {
        let window = if self
            .capabilities
            .as_ref()
            .is_some_and(Capabilities::pipelining)
        {
            PIPELINE_WINDOW
        } else {
            1
        };
        let mut bodies = Vec::with_capacity(numbers.len());
        for group in numbers.chunks(window) {
            let received = bodies.len();
            self.send_all(group.iter().map(|&n| Command::Retr(n)))
                .await
                .map_err(|error| BatchError { received, error })?;
            // Every reply of the group is read even after a refusal, so the
            // session stays in step; the first failure is reported.
            let mut refused = None;
            for &number in group {
                match self.read_retr(number, limit).await {
                    Ok(body) if refused.is_none() => bodies.push(body),
                    Ok(_) => {}
                    Err(error) if self.broken.is_some() => {
                        return Err(BatchError {
                            received: bodies.len(),
                            error,
                        });
                    }
                    Err(error) => {
                        refused.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = refused {
                return Err(BatchError {
                    received: bodies.len(),
                    error,
                });
            }
        }
        Ok(bodies)
    }

    /// `DELE n`: marks the message; the server removes it only at a
    /// successful `QUIT`. Anything after its `+OK` means the session is out
    /// of step, and then nothing more is sent (so no `QUIT`, so nothing is
    /// deleted).
    pub async fn dele(&mut self, number: u32) -> Result<(), FetchError> {
        self.expect_ok(Command::Dele(number)).await?;
        self.ensure_drained("DELE")
    }

    /// Fails, and marks the session broken, if bytes beyond the last reply
    /// were received: they answer nothing we asked.
    pub fn ensure_drained(&mut self, during: &str) -> Result<(), FetchError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let extra = self.buf.len();
        Err(self.fail(FetchError::Protocol(format!(
            "the server sent {extra} bytes after its reply to {during}, which answer nothing that was asked: the \
             session is out of step"
        ))))
    }

    /// `NOOP`.
    pub async fn noop(&mut self) -> Result<(), FetchError> {
        self.expect_ok(Command::Noop).await.map(drop)
    }

    /// `QUIT`: ends the session; only a `+OK` means the server removed the
    /// messages marked with `DELE`. The session is unusable afterwards.
    pub async fn quit(&mut self) -> Result<(), FetchError> {
        let reply = self.command(Command::Quit).await;
        self.broken = Some("the session was ended with QUIT".into());
        let reply = reply?;
        // The server closes the connection itself; a failed shutdown of our
        // side changes nothing.
        self.stream.shutdown().await.ok();
        if reply.is_ok() {
            Ok(())
        } else {
            Err(FetchError::Protocol(format!("QUIT refused: {reply}")))
        }
    }

    async fn read_retr(&mut self, number: u32, limit: usize) -> Result<Vec<u8>, FetchError> {
        let reply = self.read_status("RETR").await?;
        if !reply.is_ok() {
            return Err(FetchError::Protocol(format!(
                "RETR {number} refused: {reply}"
            )));
        }
        self.read_multiline("RETR", limit, None).await
    }

    /// Sends a command and reads its status line, `+OK` or `-ERR`.
    async fn command(&mut self, command: Command<'_>) -> Result<Response, FetchError> {
        self.send(command).await?;
        self.read_status(command.name()).await
    }

    /// Like [`Self::command`], with `-ERR` as [`FetchError::Protocol`].
    async fn expect_ok(&mut self, command: Command<'_>) -> Result<Response, FetchError> {
        let reply = self.command(command).await?;
        if !reply.is_ok() {
            return Err(FetchError::Protocol(format!(
                "{command:?} refused: {reply}"
            )));
        }
        Ok(reply)
    }

    async fn send(&mut self, command: Command<'_>) -> Result<(), FetchError> {
        self.send_all(std::iter::once(command)).await
    }

    /// Writes commands in one go (one for a plain exchange, a window of
    /// them when pipelining). Logs command names only: arguments can be
    /// secrets.
    async fn send_all<'c>(
        &mut self,
        commands: impl Iterator<Item = Command<'c>>,
    ) -> Result<(), FetchError> {
        if let Some(why) = &self.broken {
            return Err(FetchError::Protocol(format!(
                "the POP3 session cannot be used any more: {why}"
            )));
        }
        let mut wire = Vec::new();
        for command in commands {
            tracing::trace!(command = command.name(), "POP3 send");
            let line = command.encode().map_err(|e| match command {
                Command::User(_)
                | Command::Pass(_)
                | Command::Auth { .. }
                | Command::SaslResponse(_) => {
                    FetchError::Auth(format!("cannot send these credentials: {e}"))
                }
                _ => FetchError::Protocol(e.to_string()),
            })?;
            wire.extend_from_slice(&line);
        }
        let written = async {
            self.stream.write_all(&wire).await?;
            self.stream.flush().await
        }
        .await;
        written.map_err(|e| self.fail(NetError::from(e).into()))
    }

    async fn read_auth_reply(&mut self) -> Result<AuthReply, FetchError> {
        let line = self.read_line("AUTH").await?;
        proto::parse_auth_reply(&line).map_err(|e| self.fail(protocol("AUTH", e)))
    }

    async fn read_status(&mut self, during: &str) -> Result<Response, FetchError> {
        let line = self.read_line(during).await?;
        let reply = proto::parse_status(&line)
            .map_err(|e| self.fail(protocol(&format!("reply to {during}"), e)))?;
        tracing::trace!(ok = reply.is_ok(), "POP3 reply to {during}");
        Ok(reply)
    }

    /// One line, at most [`proto::MAX_LINE`] bytes.
    async fn read_line(&mut self, during: &str) -> Result<Vec<u8>, FetchError> {
        loop {
            match proto::split_line(&self.buf, proto::MAX_LINE) {
                Ok(Some((line, used))) => {
                    let line = line.to_vec();
                    self.buf.advance(used);
                    return Ok(line);
                }
                Ok(None) => {}
                Err(e) => return Err(self.fail(protocol(&format!("reply to {during}"), e))),
            }
            self.fill(during).await?;
        }
    }

    /// A multi-line body up to its terminator, at most `limit` bytes.
    async fn read_multiline(
        &mut self,
        during: &str,
        limit: usize,
        max_line: Option<usize>,
    ) -> Result<Vec<u8>, FetchError> {
        let mut decoder = MultiLine::new(limit);
        if let Some(max) = max_line {
            decoder = decoder.with_max_line(max);
        }
        loop {
            match decoder.feed(&self.buf) {
                Ok(fed) => {
                    self.buf.advance(fed.consumed);
                    if fed.done {
                        return Ok(decoder.into_body());
                    }
                }
                Err(e) => return Err(self.fail(protocol(during, e))),
            }
            self.fill(during).await?;
        }
    }

    /// Reads at most [`READ_CHUNK`] more bytes; the end of the stream here
    /// is always an error, since a reply is still expected.
    async fn fill(&mut self, during: &str) -> Result<(), FetchError> {
        if let Some(why) = &self.broken {
            return Err(FetchError::Protocol(format!(
                "the POP3 session cannot be used any more: {why}"
            )));
        }
        self.buf.reserve(READ_CHUNK);
        let read = self
            .stream
            .read_buf(&mut (&mut self.buf).limit(READ_CHUNK))
            .await;
        match read {
            Ok(0) => Err(self.fail(closed(during))),
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(NetError::from(e).into())),
        }
    }

    /// Marks the session out of step and passes the error on.
    pub fn fail(&mut self, error: FetchError) -> FetchError {
        self.broken.get_or_insert_with(|| error.to_string());
        error
    }
}

/// A refused `USER`, `PASS` or `AUTH`. Usually [`FetchError::Auth`]; but an
/// RFC 2449/3206 code saying the credentials are not the problem (mailbox
/// locked, server trouble) is a [`FetchError::Protocol`] with advice, so no
/// one is sent to change a password that is right.
fn login_refused(reply: &Response) -> FetchError {
    let advice = match reply.code {
        Some(ResponseCode::InUse) => {
            "the mailbox is in use by another POP3 session; try again later"
        }
        Some(ResponseCode::LoginDelay) => {
            "the server allows logins only every so often; try again later"
        }
        Some(ResponseCode::SysTemp) => "the server has a temporary problem; try again later",
        Some(ResponseCode::SysPerm) => {
            return FetchError::Protocol(format!(
                "login refused: the server has a problem its administrator must fix ({reply})"
            ));
        }
        _ => return FetchError::Auth(reply.to_string()),
    };
    FetchError::Busy(format!("login refused: {advice} ({reply})"))
}

fn no_uidl(reply: &Response) -> FetchError {
    FetchError::Unsupported(format!(
        "the server does not support UIDL ({reply}); without unique ids Intake cannot tell which messages it has \
         already ingested, so it cannot read this POP3 mailbox"
    ))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, duplex};

    use super::*;

    /// The fake server's end: reads the client's lines, writes replies.
    struct Server {
        io: BufReader<DuplexStream>,
    }

    impl Server {
        async fn expect(&mut self, command: &str) {
            let mut line = String::new();
            self.io.read_line(&mut line).await.unwrap();
            assert_eq!(line, format!("{command}\r\n"));
        }

        async fn send(&mut self, bytes: &[u8]) {
            self.io.get_mut().write_all(bytes).await.unwrap();
        }

        /// True if the client sent nothing more and closed.
        async fn at_eof(&mut self) -> bool {
            let mut line = String::new();
            self.io.read_line(&mut line).await.unwrap() == 0
        }
    }

    fn pair() -> (Pop3Client<DuplexStream>, Server) {
        let (client, server) = duplex(1 << 20);
        (
            Pop3Client::new(client),
            Server {
                io: BufReader::new(server),
            },
        )
    }

    #[tokio::test]
    async fn greeting_ok_and_refused() {
        let (mut c, mut s) = pair();
        s.send(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n")
            .await;
        assert!(
            c.greeting()
                .await
                .unwrap()
                .text
                .starts_with("POP3 server ready")
        );

        let (mut c, mut s) = pair();
        s.send(b"-ERR [SYS/TEMP] too many connections\r\n").await;
        let err = c.greeting().await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Busy(m) if m.contains("too many connections")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn capa_refused_means_no_capabilities() {
        let (mut c, mut s) = pair();
        s.send(b"-ERR unknown command\r\n").await;
        assert_eq!(c.capa().await.unwrap(), Capabilities::default());
        assert_eq!(c.capabilities(), Some(&Capabilities::default()));
        s.expect("CAPA").await;
    }

    #[tokio::test]
    async fn eof_before_a_reply_is_a_lost_connection() {
        let (mut c, s) = pair();
        drop(s);
        let err = c.greeting().await.unwrap_err();
        assert!(is_connection_lost(&err), "{err}");
    }

    #[tokio::test]
    async fn an_overlong_line_is_refused_and_breaks_the_session() {
        let (mut c, mut s) = pair();
        let mut line = b"+OK ".to_vec();
        line.extend(vec![b'a'; 3 * proto::MAX_LINE]);
        s.send(&line).await;
        let err = c.greeting().await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Protocol(m) if m.contains("longer than")),
            "{err}"
        );
        assert!(
            c.buf.len() <= proto::MAX_LINE + READ_CHUNK,
            "buffer stays bounded"
        );
        // Nothing more is sent on a session that is out of step.
        let err = c.noop().await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Protocol(m) if m.contains("cannot be used")),
            "{err}"
        );
        drop(c);
        assert!(s.at_eof().await);
    }

    #[tokio::test]
    async fn stat_is_parsed() {
        let (mut c, mut s) = pair();
        s.send(b"+OK 2 320\r\n").await;
        assert_eq!(c.stat().await.unwrap(), (2, 320));
        s.expect("STAT").await;
    }

    #[tokio::test]
    async fn single_message_list_and_uidl() {
        let (mut c, mut s) = pair();
        s.send(b"+OK 2 200\r\n+OK 2 QhdPYR:00WBw1Ph7x7\r\n-ERR no such message\r\n")
            .await;
        assert_eq!(
            c.list_one(2).await.unwrap(),
            ScanListing {
                number: 2,
                size: 200
            }
        );
        assert_eq!(c.uidl_one(2).await.unwrap().uidl, "QhdPYR:00WBw1Ph7x7");
        assert!(matches!(c.uidl_one(9).await, Err(FetchError::Protocol(_))));
        s.expect("LIST 2").await;
        s.expect("UIDL 2").await;
        s.expect("UIDL 9").await;
    }

    #[tokio::test]
    async fn err_in_the_middle_of_a_listing_is_a_protocol_error() {
        let (mut c, mut s) = pair();
        s.send(b"+OK\r\n1 aaa\r\n-ERR disk on fire\r\n.\r\n").await;
        let err = c.uidl().await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Protocol(m) if m.contains("UIDL")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn uidl_refused_is_unsupported() {
        let (mut c, mut s) = pair();
        s.send(b"-ERR command not implemented\r\n").await;
        let err = c.uidl().await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Unsupported(m) if m.contains("UIDL")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn retr_over_the_limit_is_an_error_not_a_truncation() {
        let (mut c, mut s) = pair();
        s.send(b"+OK\r\n0123456789\r\n.\r\n").await;
        let err = c.retr(1, 8).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Protocol(m) if m.contains("larger than 8")),
            "{err}"
        );
        assert!(
            c.noop().await.is_err(),
            "the rest of the body is still on the wire"
        );
    }

    #[tokio::test]
    async fn retr_refused_keeps_the_session_usable() {
        let (mut c, mut s) = pair();
        s.send(b"-ERR no such message\r\n+OK\r\n").await;
        assert!(
            matches!(c.retr(7, 100).await, Err(FetchError::Protocol(m)) if m.contains("RETR 7"))
        );
        c.noop().await.unwrap();
    }

    #[tokio::test]
    async fn retr_batch_reads_every_reply_after_a_refusal() {
        let (mut c, mut s) = pair();
        s.send(b"+OK capa\r\nPIPELINING\r\n.\r\n").await;
        c.capa().await.unwrap();
        s.send(b"+OK\r\none\r\n.\r\n-ERR gone\r\n+OK\r\nthree\r\n.\r\n+OK\r\n")
            .await;
        let err = c.retr_batch(&[1, 2, 3], 100).await.unwrap_err();
        assert_eq!(err.received, 1);
        assert!(
            matches!(&err.error, FetchError::Protocol(m) if m.contains("RETR 2")),
            "{}",
            err.error
        );
        // Still in step: the NOOP gets its own +OK.
        c.noop().await.unwrap();
    }

    #[tokio::test]
    async fn user_injection_is_refused_before_anything_is_sent() {
        let (mut c, mut s) = pair();
        let err = c
            .user_pass("bob\r\nDELE 1", &Secret::new("pw"))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Auth(_)));
        drop(c);
        assert!(s.at_eof().await);
    }

    #[tokio::test]
    async fn auth_plain_cancels_an_unexpected_second_challenge() {
        let (mut c, mut s) = pair();
        s.send(b"+ \r\n-ERR cancelled\r\n").await;
        let plain = crate::fetch::sasl::plain("alice", "s3cret").unwrap();
        let err = c.auth("PLAIN", &plain, None).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Auth(m) if m.contains("cancelled")),
            "{err}"
        );
        s.expect("AUTH PLAIN AGFsaWNlAHMzY3JldA==").await;
        s.expect("*").await;
    }

    #[tokio::test]
    async fn a_bearer_failure_challenge_is_answered_and_reported_as_auth() {
        let (mut c, mut s) = pair();
        // base64 of {"status":"401","schemes":"bearer"}
        s.send(b"+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n-ERR [AUTH] Authentication failed.\r\n")
            .await;
        let message = crate::fetch::sasl::xoauth2("alice", "expired").unwrap();
        let err = c.auth("XOAUTH2", &message, Some(b"")).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Auth(m) if m.contains("rejected the access token (status 401)")
                && m.contains("Authentication failed")),
            "{err}"
        );
        s.expect(&format!("AUTH XOAUTH2 {}", proto::sasl_response(&message)))
            .await;
        // XOAUTH2 answers the report with an empty line.
        s.expect("").await;
    }

    #[tokio::test]
    async fn stls_refused_is_an_error() {
        let (mut c, mut s) = pair();
        s.send(b"-ERR not now\r\n").await;
        let err = c.stls().await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Protocol(m) if m.contains("without TLS")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn bytes_after_the_stls_reply_are_dropped_with_the_client() {
        let (mut c, mut s) = pair();
        s.send(b"+OK begin TLS\r\n+OK injected in clear text\r\n")
            .await;
        c.stls().await.unwrap();
        assert!(!c.buf.is_empty(), "the injected line was read with the +OK");
        let mut secured = Pop3Client::new(c.into_inner());
        s.send(b"+OK from the TLS side\r\n").await;
        secured.noop().await.unwrap();
        s.expect("STLS").await;
        s.expect("NOOP").await;
        // Had the injected line survived, NOOP would have consumed it and
        // the TLS-side reply would still be waiting.
        assert!(secured.buf.is_empty());
    }

    #[tokio::test]
    async fn quit_refused_is_an_error_and_ends_the_session() {
        let (mut c, mut s) = pair();
        s.send(b"-ERR some deleted messages not removed\r\n").await;
        let err = c.quit().await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Protocol(m) if m.contains("not removed")),
            "{err}"
        );
        assert!(c.noop().await.is_err());
    }
}
