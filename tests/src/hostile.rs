//! A scripted, misbehaving IMAP / POP3 server on loopback, for the faults a
//! real Dovecot cannot produce: trickling bytes, endless lines, huge
//! listings, oversized or cut literals, conflicting copies of one UID,
//! unstuffed POP3 dots, refusals with response codes.
//!
//! One [`Fault`] per server; everything else behaves. The mailbox is
//! generated on the fly ([`mail`]) and listings are streamed, so the server
//! itself stays small however many messages it claims: what a measurement
//! sees is the client's cost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use intake::fetch::{AccountSettings, Protocol, Secret, Security};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpListener;

/// What the server does wrong. Exactly one per server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: a well-behaved server.
    None,
    /// After the greeting, every byte is sent one second after the last.
    Slow,
    /// IMAP: the answer to a body FETCH is one line that never ends.
    EndlessLine,
    /// IMAP: a body FETCH announces a literal of 99 999 999 999 bytes.
    HugeLiteral,
    /// IMAP: a body FETCH answers with an incomplete response, then waits.
    Garbage,
    /// IMAP: a body FETCH answers with bytes the parser rejects outright,
    /// after a message body (which must not end up in the error).
    BadFetch,
    /// IMAP: a body FETCH ends with a tagged `NO` and the server's reason.
    TaggedNo,
    /// IMAP: a body FETCH answers for UIDs nobody asked for.
    ForeignUids,
    /// IMAP: the first UID of a body FETCH comes twice, with other bytes.
    DuplicateUid,
    /// IMAP: a literal is cut short and the connection closed.
    CutLiteral,
    /// IMAP `LOGIN` / POP3 `PASS` refused (IMAP `[AUTHENTICATIONFAILED]`,
    /// POP3 `[IN-USE]`).
    LoginRefused,
    /// POP3: message 6 holds a bare `.` line that is not dot-stuffed.
    UnstuffedDot,
    /// POP3: `LIST` and `UIDL` disagree on message numbers.
    ListUidlMismatch,
    /// Nothing is ever sent, not even a greeting.
    Silent,
}

/// The server's mailbox: `messages` messages with UIDs 1..=n (IMAP) or
/// numbers 1..=n (POP3), all unseen.
#[derive(Debug, Clone)]
pub struct Script {
    /// The misbehaviour.
    pub fault: Fault,
    /// Messages the server claims.
    pub messages: u32,
}

/// A running hostile server; stops when dropped.
#[derive(Debug)]
pub struct Hostile {
    addr: SocketAddr,
    protocol: Protocol,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The bytes of message `n` (1-based): small, with a unique Message-ID, and
/// (for POP3's sake) a line starting with a dot.
pub fn mail(n: u32) -> Vec<u8> {
    format!(
        "From: Sender {n} <s{n}@hostile.example>\r\nTo: alice@ourco.example\r\nSubject: Message {n}\r\n\
Message-ID: <h{n}@hostile.example>\r\nDate: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\n\
Body of message {n}.\r\n.leading dot\r\nThe end.\r\n"
    )
    .into_bytes()
}

/// POP3 message 6 under [`Fault::UnstuffedDot`]: a bare `.` line in the
/// middle, sent without stuffing, so a client sees the message end early.
fn unstuffed(n: u32) -> Vec<u8> {
    let mut raw = format!(
        "From: Sender {n} <s{n}@hostile.example>\r\nSubject: Message {n}\r\n\
Message-ID: <h{n}@hostile.example>\r\n\r\nFirst part of the body, long enough to matter.\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(
        b".\r\n+OK this line is body text, not a reply\r\nSecond part of the body.\r\n",
    );
    raw
}

impl Hostile {
    /// Starts a server speaking `protocol` with `script`.
    pub async fn start(protocol: Protocol, script: Script) -> Self {
        Self::start_with(protocol, script, None).await
    }

    /// Like [`Self::start`], with implicit TLS presenting `cert` (DER) with
    /// its `key` (PKCS#8 DER).
    pub async fn start_tls(
        protocol: Protocol,
        script: Script,
        cert: Vec<u8>,
        key: Vec<u8>,
    ) -> Self {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert)],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .expect("server certificate");
        Self::start_with(
            protocol,
            script,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_with(
        protocol: Protocol,
        script: Script,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(script);
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let script = script.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = match tls {
                        None => session(protocol, sock, &script).await,
                        Some(acceptor) => match acceptor.accept(sock).await {
                            Ok(sock) => session(protocol, sock, &script).await,
                            Err(_) => Ok(()),
                        },
                    };
                });
            }
        });
        Hostile {
            addr,
            protocol,
            task,
        }
    }

    /// Shorthand: `messages` messages and one fault.
    pub async fn imap(fault: Fault, messages: u32) -> Self {
        Self::start(Protocol::Imap, Script { fault, messages }).await
    }

    /// Shorthand: `messages` messages and one fault.
    pub async fn pop3(fault: Fault, messages: u32) -> Self {
        Self::start(Protocol::Pop3, Script { fault, messages }).await
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A plain-text account for this server (keep a copy), with the given
    /// idle timeout.
    pub fn account(&self, io_timeout: Duration) -> AccountSettings {
        let mut a = AccountSettings::new(
            "hostile",
            self.protocol,
            "127.0.0.1",
            Security::None,
            "alice",
            Secret::new("pw"),
        );
        a.port = Some(self.addr.port());
        a.timeouts.io = io_timeout;
        a.timeouts.connect = Duration::from_secs(2);
        a
    }
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    protocol: Protocol,
    sock: S,
    script: &Script,
) -> std::io::Result<()> {
    match protocol {
        Protocol::Imap => imap_session(sock, script).await,
        Protocol::Pop3 => pop3_session(sock, script).await,
    }
}

/// Writes replies, at once or one byte per second.
struct Out<W> {
    w: BufWriter<W>,
    slow: bool,
}

impl<W: AsyncWrite + Unpin> Out<W> {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.slow {
            for b in bytes {
                self.w.write_all(&[*b]).await?;
                self.w.flush().await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(())
        } else {
            self.w.write_all(bytes).await
        }
    }

    async fn line(&mut self, text: &str) -> std::io::Result<()> {
        self.send(text.as_bytes()).await?;
        self.send(b"\r\n").await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush().await
    }
}

/// Parses an IMAP sequence set (`1:3,7,9:*`) into inclusive ranges, `*`
/// being `max`.
fn ranges(set: &str, max: u32) -> Vec<(u32, u32)> {
    set.split(',')
        .filter_map(|part| {
            let num = |s: &str| {
                if s == "*" { Some(max) } else { s.parse().ok() }
            };
            let (a, b) = match part.split_once(':') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(part)?, num(part)?),
            };
            Some((a.min(b), a.max(b)))
        })
        .collect()
}

fn in_ranges(ranges: &[(u32, u32)], max: u32) -> impl Iterator<Item = u32> + '_ {
    ranges.iter().flat_map(move |&(a, b)| a.max(1)..=b.min(max))
}

async fn imap_session<S: AsyncRead + AsyncWrite + Unpin>(
    sock: S,
    script: &Script,
) -> std::io::Result<()> {
    let (r, w) = tokio::io::split(sock);
    let mut r = BufReader::new(r);
    let mut out = Out {
        w: BufWriter::with_capacity(1 << 16, w),
        slow: false,
    };
    if script.fault == Fault::Silent {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return Ok(());
    }
    out.line("* OK hostile IMAP ready").await?;
    out.flush().await?;
    out.slow = script.fault == Fault::Slow;
    let n = script.messages;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let text = line.trim_end().to_string();
        let (tag, rest) = text.split_once(' ').unwrap_or((&text, ""));
        let upper = rest.to_ascii_uppercase();
        let words: Vec<&str> = rest.split(' ').collect();
        if upper.starts_with("CAPABILITY") {
            out.line("* CAPABILITY IMAP4rev1 AUTH=PLAIN UIDPLUS")
                .await?;
            out.line(&format!("{tag} OK done")).await?;
        } else if upper.starts_with("LOGIN") || upper.starts_with("AUTHENTICATE") {
            if upper.starts_with("AUTHENTICATE") {
                out.line("+ ").await?;
                out.flush().await?;
                let mut response = String::new();
                r.read_line(&mut response).await?;
            }
            if script.fault == Fault::LoginRefused {
                out.line(&format!(
                    "{tag} NO [AUTHENTICATIONFAILED] Authentication failed."
                ))
                .await?;
            } else {
                out.line(&format!("{tag} OK logged in")).await?;
            }
        } else if upper.starts_with("SELECT") || upper.starts_with("EXAMINE") {
            out.line(&format!("* {n} EXISTS")).await?;
            out.line("* OK [UIDVALIDITY 7] ok").await?;
            out.line(&format!("* OK [UIDNEXT {}] ok", n + 1)).await?;
            out.line(&format!("{tag} OK [READ-WRITE] selected")).await?;
        } else if upper.starts_with("STATUS") {
            out.line(&format!("* STATUS INBOX (MESSAGES {n} UNSEEN {n})"))
                .await?;
            out.line(&format!("{tag} OK done")).await?;
        } else if upper.starts_with("LOGOUT") {
            out.line("* BYE bye").await?;
            out.line(&format!("{tag} OK done")).await?;
            out.flush().await?;
            return Ok(());
        } else if upper.starts_with("UID SEARCH") || upper.starts_with("SEARCH") {
            // Criteria are ignored except a UID or sequence range: every
            // message is unseen and recent.
            let mut set = None;
            let mut iter = words
                .iter()
                .skip(if upper.starts_with("UID") { 2 } else { 1 });
            while let Some(w) = iter.next() {
                if w.eq_ignore_ascii_case("UID") {
                    set = iter.next().map(|s| ranges(s, n));
                } else if w.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    set = Some(ranges(w, n));
                }
            }
            let set = set.unwrap_or_else(|| vec![(1, n)]);
            out.send(b"* SEARCH").await?;
            for uid in in_ranges(&set, n) {
                out.send(format!(" {uid}").as_bytes()).await?;
            }
            out.send(b"\r\n").await?;
            out.line(&format!("{tag} OK done")).await?;
        } else if upper.starts_with("UID FETCH") || upper.starts_with("FETCH") {
            let skip = if upper.starts_with("UID") { 2 } else { 1 };
            let set = ranges(words.get(skip).copied().unwrap_or(""), n);
            if upper.contains("BODY") {
                imap_bodies(&mut out, tag, &set, script).await?;
                if script.fault == Fault::CutLiteral {
                    return Ok(());
                }
            } else {
                for uid in in_ranges(&set, n) {
                    out.line(&format!(
                        "* {uid} FETCH (UID {uid} RFC822.SIZE {})",
                        mail(uid).len()
                    ))
                    .await?;
                }
                out.line(&format!("{tag} OK done")).await?;
            }
        } else if upper.starts_with("NOOP") || upper.starts_with("UID STORE") {
            out.line(&format!("{tag} OK done")).await?;
        } else {
            out.line(&format!("{tag} BAD unknown command")).await?;
        }
        out.flush().await?;
    }
}

async fn imap_bodies<W: AsyncWrite + Unpin>(
    out: &mut Out<W>,
    tag: &str,
    set: &[(u32, u32)],
    script: &Script,
) -> std::io::Result<()> {
    let n = script.messages;
    let uids: Vec<u32> = in_ranges(set, n).collect();
    let first = uids.first().copied().unwrap_or(1);
    let literal = |uid: u32, raw: &[u8]| {
        let mut v = format!("* {uid} FETCH (UID {uid} BODY[] {{{}}}\r\n", raw.len()).into_bytes();
        v.extend_from_slice(raw);
        v.extend_from_slice(b")\r\n");
        v
    };
    match script.fault {
        Fault::EndlessLine => {
            out.send(format!("* {first} FETCH (UID {first} BODY[] \"").as_bytes())
                .await?;
            let chunk = vec![b'x'; 64 * 1024];
            loop {
                out.send(&chunk).await?;
                out.flush().await?;
            }
        }
        Fault::HugeLiteral => {
            out.send(format!("* {first} FETCH (UID {first} BODY[] {{99999999999}}\r\n").as_bytes())
                .await?;
            out.send(&mail(first)).await?;
            out.flush().await?;
            // Then wait: the client should not.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Fault::Garbage => {
            out.send(&literal(first, &mail(first))).await?;
            out.send(b"* 2 FETCH (UID \x01\x02 garbage ((( BODY[] 12 Subject: secret\r\n")
                .await?;
            out.line(&format!("{tag} OK done")).await?;
        }
        Fault::BadFetch => {
            out.send(&literal(first, &mail(first))).await?;
            out.send(b"* 2 FETCH (UID 2 BODY[] {12}\r\nSubject: sec ((( ]]] garbage\r\n")
                .await?;
            out.line(&format!("{tag} OK done")).await?;
        }
        Fault::TaggedNo => {
            out.send(&literal(first, &mail(first))).await?;
            out.line(&format!(
                "{tag} NO [SERVERBUG] Internal error occurred. Refer to server log for more information."
            ))
            .await?;
        }
        Fault::ForeignUids => {
            for uid in &uids {
                let other = uid + 1000;
                out.send(&literal(other, &mail(other))).await?;
            }
            out.line(&format!("{tag} OK done")).await?;
        }
        Fault::DuplicateUid => {
            for (i, uid) in uids.iter().enumerate() {
                out.send(&literal(*uid, &mail(*uid))).await?;
                if i == 0 {
                    let mut other = mail(*uid);
                    other.extend_from_slice(b"A different copy.\r\n");
                    out.send(&literal(*uid, &other)).await?;
                }
            }
            out.line(&format!("{tag} OK done")).await?;
        }
        Fault::CutLiteral => {
            let raw = mail(first);
            out.send(
                format!("* {first} FETCH (UID {first} BODY[] {{{}}}\r\n", raw.len()).as_bytes(),
            )
            .await?;
            out.send(&raw[..raw.len() / 2]).await?;
            out.flush().await?;
        }
        _ => {
            for uid in &uids {
                out.send(&literal(*uid, &mail(*uid))).await?;
            }
            out.line(&format!("{tag} OK done")).await?;
        }
    }
    Ok(())
}

fn pop3_body(n: u32, script: &Script) -> Vec<u8> {
    if script.fault == Fault::UnstuffedDot && n == 6 {
        unstuffed(n)
    } else {
        mail(n)
    }
}

/// The size `LIST` announces: the whole message, as the RFC asks.
fn pop3_size(n: u32, script: &Script) -> usize {
    pop3_body(n, script).len()
}

/// Dot-stuffs a body, except under [`Fault::UnstuffedDot`] for message 6.
fn stuffed(n: u32, script: &Script) -> Vec<u8> {
    let raw = pop3_body(n, script);
    if script.fault == Fault::UnstuffedDot && n == 6 {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + 8);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}

async fn pop3_session<S: AsyncRead + AsyncWrite + Unpin>(
    sock: S,
    script: &Script,
) -> std::io::Result<()> {
    let (r, w) = tokio::io::split(sock);
    let mut r = BufReader::new(r);
    let mut out = Out {
        w: BufWriter::with_capacity(1 << 16, w),
        slow: false,
    };
    if script.fault == Fault::Silent {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return Ok(());
    }
    out.line("+OK hostile POP3 ready").await?;
    out.flush().await?;
    out.slow = script.fault == Fault::Slow;
    let n = script.messages;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let text = line.trim_end().to_string();
        let (cmd, arg) = text.split_once(' ').unwrap_or((&text, ""));
        match cmd.to_ascii_uppercase().as_str() {
            "CAPA" => {
                out.send(b"+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n")
                    .await?
            }
            "USER" => out.line("+OK").await?,
            "PASS" if script.fault == Fault::LoginRefused => {
                out.line("-ERR [IN-USE] Mailbox is locked by another POP3 session")
                    .await?
            }
            "PASS" | "NOOP" | "DELE" | "RSET" => out.line("+OK").await?,
            "STAT" => out.line(&format!("+OK {n} {}", n * 300)).await?,
            "LIST" => {
                out.line("+OK").await?;
                for i in 1..=n {
                    out.line(&format!("{i} {}", pop3_size(i, script))).await?;
                }
                out.line(".").await?;
            }
            "UIDL" => {
                out.line("+OK").await?;
                let shift = u32::from(script.fault == Fault::ListUidlMismatch);
                for i in 1..=n {
                    out.line(&format!("{} uid-{i}", i + shift)).await?;
                }
                out.line(".").await?;
            }
            "RETR" => match arg.parse::<u32>() {
                Ok(i) if (1..=n).contains(&i) => {
                    out.line("+OK").await?;
                    out.send(&stuffed(i, script)).await?;
                    out.line(".").await?;
                }
                _ => out.line("-ERR no such message").await?,
            },
            "QUIT" => {
                out.line("+OK bye").await?;
                out.flush().await?;
                return Ok(());
            }
            _ => out.line("-ERR unknown command").await?,
        }
        out.flush().await?;
    }
}
