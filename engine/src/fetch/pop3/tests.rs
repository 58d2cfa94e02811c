//! [`Pop3Source`] against a scripted fake server over `tokio::io::duplex`:
//! each test's server task asserts every line the client sends, so a command
//! sent when it must not be (a `DELE` in keep-copy mode, `STLS` skipped…)
//! fails the test.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, duplex};
use tokio::task::JoinHandle;

use super::*;
use crate::fetch::{Auth, Protocol, Secret};

/// The server's end of the connection.
struct Server {
    io: BufReader<DuplexStream>,
}

impl Server {
    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = self.io.read_line(&mut line).await.unwrap();
        (n > 0).then_some(line)
    }

    /// Asserts the client's next command.
    async fn expect(&mut self, command: &str) {
        assert_eq!(
            self.line().await.as_deref(),
            Some(format!("{command}\r\n").as_str())
        );
    }

    /// Asserts the client sends nothing more and hangs up.
    async fn expect_eof(&mut self) {
        assert_eq!(self.line().await, None, "the client sent more");
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    async fn reply(&mut self, command: &str, reply: &[u8]) {
        self.expect(command).await;
        self.send(reply).await;
    }

    /// Greeting and CAPA with the given capability lines.
    async fn greet(&mut self, caps: &str) {
        self.send(b"+OK POP3 ready\r\n").await;
        self.expect("CAPA").await;
        self.send(format!("+OK\r\n{caps}.\r\n").as_bytes()).await;
    }

    /// Greeting, CAPA (UIDL, USER) and a successful USER/PASS as alice.
    async fn login(&mut self) {
        self.login_with("UIDL\r\nUSER\r\n").await;
    }

    async fn login_with(&mut self, caps: &str) {
        self.greet(caps).await;
        self.reply("USER alice", b"+OK\r\n").await;
        self.reply("PASS s3cret", b"+OK maildrop locked and ready\r\n")
            .await;
    }

    /// `UIDL` and `LIST` for `(uidl, size)` messages numbered from 1.
    async fn listing(&mut self, messages: &[(&str, u64)]) {
        let mut uidl = String::from("+OK\r\n");
        let mut list = format!("+OK {} messages\r\n", messages.len());
        for (i, (id, size)) in messages.iter().enumerate() {
            uidl.push_str(&format!("{} {id}\r\n", i + 1));
            list.push_str(&format!("{} {size}\r\n", i + 1));
        }
        self.reply("UIDL", format!("{uidl}.\r\n").as_bytes()).await;
        self.reply("LIST", format!("{list}.\r\n").as_bytes()).await;
    }

    async fn quit(&mut self) {
        self.reply("QUIT", b"+OK bye\r\n").await;
        self.expect_eof().await;
    }
}

fn settings() -> AccountSettings {
    AccountSettings::new(
        "test account",
        Protocol::Pop3,
        "pop.example",
        Security::None,
        "alice",
        Secret::new("s3cret"),
    )
}

/// Starts the scripted server; the client gets the other end.
fn serve<F, Fut>(script: F) -> (DuplexStream, JoinHandle<()>)
where
    F: FnOnce(Server) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (client, server) = duplex(1 << 20);
    (
        client,
        tokio::spawn(script(Server {
            io: BufReader::new(server),
        })),
    )
}

/// Runs a test body with a deadline, so a client waiting for a reply the
/// script never sends fails instead of hanging.
async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), test)
        .await
        .expect("test timed out")
}

async fn connect(
    client: DuplexStream,
    settings: &AccountSettings,
) -> Result<Pop3Source<DuplexStream>, FetchError> {
    Pop3Source::over_stream(client, settings).await
}

fn pop3(uidl: &str) -> MessageKey {
    MessageKey::Pop3 { uidl: uidl.into() }
}

#[tokio::test]
async fn user_pass_login_then_quit() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.quit().await;
        });
        let source = connect(io, &settings()).await.unwrap();
        assert!(source.capabilities().unwrap().uidl());
        assert_eq!(source.folders(), ["INBOX"]);
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn refused_password_is_an_auth_error() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.greet("USER\r\n").await;
            s.reply("USER alice", b"+OK\r\n").await;
            s.reply("PASS s3cret", b"-ERR [AUTH] Authentication failed.\r\n")
                .await;
            s.expect_eof().await;
        });
        let err = connect(io, &settings()).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Auth(m) if m.contains("Authentication failed")),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cret"));
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn refused_user_is_an_auth_error() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.greet("").await;
            s.reply(
                "USER alice",
                b"-ERR [AUTH] Plaintext authentication disallowed\r\n",
            )
            .await;
            s.expect_eof().await;
        });
        let err = connect(io, &settings()).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Auth(m) if m.contains("disallowed")),
            "{err}"
        );
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_locked_mailbox_is_not_reported_as_bad_credentials() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.greet("").await;
            s.reply("USER alice", b"+OK\r\n").await;
            s.reply(
                "PASS s3cret",
                b"-ERR [IN-USE] Mailbox locked by another session\r\n",
            )
            .await;
        });
        let err = connect(io, &settings()).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Busy(m) if m.contains("in use")),
            "{err}"
        );
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn auth_plain_sends_the_initial_response_inline() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.greet("SASL PLAIN\r\nUIDL\r\n").await;
            // base64("\0alice\0s3cret"), computed by hand.
            s.reply("AUTH PLAIN AGFsaWNlAHMzY3JldA==", b"+OK welcome\r\n")
                .await;
            s.quit().await;
        });
        let mut settings = settings();
        settings.auth = Auth::Plain;
        let source = connect(io, &settings).await.unwrap();
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn auth_plain_uses_a_continuation_when_the_line_would_be_too_long() {
    within(async {
        let password = "p".repeat(300);
        let expected =
            base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{password}"));
        let (io, server) = serve(|mut s| async move {
            s.greet("SASL PLAIN\r\n").await;
            s.reply("AUTH PLAIN", b"+ \r\n").await;
            s.reply(&expected, b"+OK\r\n").await;
            s.quit().await;
        });
        let mut settings = settings();
        settings.auth = Auth::Plain;
        settings.password = Secret::new(password);
        let source = connect(io, &settings).await.unwrap();
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn auth_plain_not_advertised_is_tried_and_the_answer_reported() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.greet("USER\r\n").await;
            s.reply(
                "AUTH PLAIN AGFsaWNlAHMzY3JldA==",
                b"-ERR Unknown AUTH mechanism\r\n",
            )
            .await;
            s.expect_eof().await;
        });
        let mut settings = settings();
        settings.auth = Auth::Plain;
        let err = connect(io, &settings).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Auth(m) if m.contains("Unknown AUTH mechanism")),
            "{err}"
        );
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn stls_not_offered_is_refused_without_falling_back() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.greet("USER\r\nUIDL\r\n").await;
            // No STLS, no USER/PASS in clear text: the client just leaves.
            s.expect_eof().await;
        });
        let upgraded = AtomicBool::new(false);
        let result = starttls(io, |plain| {
            upgraded.store(true, Ordering::SeqCst);
            async move { Ok::<_, NetError>(plain) }
        })
        .await;
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Net(NetError::StartTlsNotOffered { command: "STLS" })
            ),
            "{err}"
        );
        assert!(!upgraded.load(Ordering::SeqCst));
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn stls_refused_by_the_server_is_an_error() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.greet("STLS\r\n").await;
            s.reply("STLS", b"-ERR TLS not available right now\r\n")
                .await;
            s.expect_eof().await;
        });
        let result = starttls(io, |plain| async move { Ok::<_, NetError>(plain) }).await;
        assert!(matches!(result, Err(FetchError::Protocol(m)) if m.contains("without TLS")));
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn stls_upgrades_discards_clear_text_leftovers_and_asks_capa_again() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.greet("STLS\r\nUSER\r\n").await;
            s.expect("STLS").await;
            // One write: the injected line arrives with the +OK, before the
            // hand-shake, and must not be read as the next reply.
            s.send(b"+OK Begin TLS negotiation\r\n+OK\r\nINJECTED\r\n.\r\n")
                .await;
            s.reply("CAPA", b"+OK\r\nUSER\r\nUIDL\r\nX-AFTER-TLS\r\n.\r\n")
                .await;
            s.expect_eof().await;
        });
        let upgraded = Arc::new(AtomicBool::new(false));
        let flag = upgraded.clone();
        let client = starttls(io, move |plain| async move {
            flag.store(true, Ordering::SeqCst);
            Ok::<_, NetError>(plain)
        })
        .await
        .unwrap();
        assert!(upgraded.load(Ordering::SeqCst));
        let caps: Vec<&str> = client.capabilities().unwrap().names().collect();
        assert_eq!(caps, ["UIDL", "USER", "X-AFTER-TLS"]);
        drop(client);
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn listing_skips_seen_uidls_and_sorts_out_large_messages() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            // The server's order is not number order.
            s.reply(
                "UIDL",
                b"+OK\r\n3 ccc\r\n1 aaa\r\n2 bbb\r\n4 ddd\r\n5 eee\r\n.\r\n",
            )
            .await;
            s.reply(
                "LIST",
                b"+OK 5 messages\r\n1 100\r\n2 5000\r\n3 200\r\n4 1000\r\n5 1001\r\n.\r\n",
            )
            .await;
            s.quit().await;
        });
        let mut settings = settings();
        settings.max_message_bytes = 1000;
        let mut source = connect(io, &settings).await.unwrap();
        let cursor = FolderCursor {
            seen_uidls: BTreeSet::from(["ccc".to_string()]),
            ..FolderCursor::default()
        };
        let listing = source.list("INBOX", &cursor).await.unwrap();
        assert_eq!(listing.folder, "INBOX");
        assert_eq!(listing.uid_validity, None);
        assert!(!listing.uid_validity_changed);
        assert_eq!(
            listing.new,
            [
                Listed {
                    message: pop3("aaa"),
                    size: 100
                },
                Listed {
                    message: pop3("ddd"),
                    size: 1000
                }
            ]
        );
        assert_eq!(
            listing.too_large,
            [
                Listed {
                    message: pop3("bbb"),
                    size: 5000
                },
                Listed {
                    message: pop3("eee"),
                    size: 1001
                }
            ]
        );
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn listing_only_inbox() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.quit().await;
        });
        let mut source = connect(io, &settings()).await.unwrap();
        let err = source
            .list("Sent", &FolderCursor::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::NoSuchFolder { ref folder, .. } if folder == "Sent"),
            "{err}"
        );
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn listing_without_uidl_is_unsupported() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login_with("USER\r\n").await;
            s.reply("UIDL", b"-ERR unknown command\r\n").await;
            s.quit().await;
        });
        let mut source = connect(io, &settings()).await.unwrap();
        let err = source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::Unsupported(m) if m.contains("already ingested")),
            "{err}"
        );
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn listing_with_mismatched_uidl_and_list_is_refused() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.reply("UIDL", b"+OK\r\n1 aaa\r\n2 bbb\r\n.\r\n").await;
            s.reply("LIST", b"+OK\r\n1 100\r\n3 100\r\n.\r\n").await;
            s.quit().await;
        });
        let mut source = connect(io, &settings()).await.unwrap();
        assert!(matches!(
            source.list("INBOX", &FolderCursor::default()).await,
            Err(FetchError::Protocol(_))
        ));
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn listing_with_duplicate_uidls_is_refused() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.reply("UIDL", b"+OK\r\n1 aaa\r\n2 aaa\r\n.\r\n").await;
            s.quit().await;
        });
        let mut source = connect(io, &settings()).await.unwrap();
        let err = source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::Protocol(m) if m.contains("\"aaa\"")),
            "{err}"
        );
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

/// A message whose text holds every dot-stuffing trap: dots at line starts,
/// a line that is only a dot, `.\r` not followed by LF, a bare LF line, and
/// dots after CRLF inside a line's content.
const TRICKY_ON_WIRE: &[u8] = concat!(
    "+OK 160 octets\r\n",
    "From: a@example.com\r\n",
    "Subject: dots\r\n",
    "\r\n",
    "..leading dot\r\n",
    "..\r\n",
    "...\r\n",
    " .\r\n",
    "..\rnot the end\r\n",
    "bare lf\n",
    "..\n",
    "a.\r\n",
    "last line\r\n",
    ".\r\n",
)
.as_bytes();

const TRICKY_MESSAGE: &[u8] = concat!(
    "From: a@example.com\r\n",
    "Subject: dots\r\n",
    "\r\n",
    ".leading dot\r\n",
    ".\r\n",
    "..\r\n",
    " .\r\n",
    ".\rnot the end\r\n",
    "bare lf\n",
    ".\n",
    "a.\r\n",
    "last line\r\n",
)
.as_bytes();

#[tokio::test]
async fn fetch_returns_the_exact_unstuffed_bytes() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.listing(&[("aaa", TRICKY_MESSAGE.len() as u64), ("bbb", 7)])
                .await;
            s.reply("RETR 1", TRICKY_ON_WIRE).await;
            s.reply("RETR 2", b"+OK\r\nshort\r\n.\r\n").await;
            s.quit().await;
        });
        let mut source = connect(io, &settings()).await.unwrap();
        let listing = source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        let refs: Vec<MessageKey> = listing.new.iter().map(|l| l.message.clone()).collect();
        let fetched = source.fetch(&refs).await.unwrap();
        assert_eq!(fetched.len(), 2);
        assert_eq!(fetched[0].message, pop3("aaa"));
        assert_eq!(&fetched[0].raw[..], TRICKY_MESSAGE);
        assert_eq!(&fetched[1].raw[..], b"short\r\n");
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn fetch_pipelines_when_the_server_allows() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login_with("UIDL\r\nUSER\r\nPIPELINING\r\n").await;
            s.listing(&[("aaa", 5), ("bbb", 5), ("ccc", 5)]).await;
            // Replies only once all three commands are in: a client waiting
            // for each reply would time out here.
            s.expect("RETR 1").await;
            s.expect("RETR 2").await;
            s.expect("RETR 3").await;
            s.send(b"+OK\r\none\r\n.\r\n+OK\r\ntwo\r\n.\r\n+OK\r\nthree\r\n.\r\n")
                .await;
            s.quit().await;
        });
        let mut source = connect(io, &settings()).await.unwrap();
        let listing = source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        let refs: Vec<MessageKey> = listing.new.iter().map(|l| l.message.clone()).collect();
        let fetched = source.fetch(&refs).await.unwrap();
        let bodies: Vec<&[u8]> = fetched.iter().map(|f| &f.raw[..]).collect();
        assert_eq!(bodies, [&b"one\r\n"[..], b"two\r\n", b"three\r\n"]);
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn connection_lost_mid_retr_is_incomplete_not_short() {
    for cut_after in [
        &b"+OK\r\npartial line\r\n"[..],
        b"+OK\r\ntext\r\n.",
        b"+OK\r\ntext\r\n.\r",
        b"+OK 12 octets",
    ] {
        within(async {
            let (io, server) = serve(move |mut s| async move {
                s.login().await;
                s.listing(&[("aaa", 5), ("bbb", 5)]).await;
                s.reply("RETR 1", b"+OK\r\nfirst\r\n.\r\n").await;
                s.reply("RETR 2", cut_after).await;
                // Dropping the server end closes the connection.
            });
            let mut source = connect(io, &settings()).await.unwrap();
            source
                .list("INBOX", &FolderCursor::default())
                .await
                .unwrap();
            let err = source.fetch(&[pop3("aaa"), pop3("bbb")]).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    FetchError::Incomplete {
                        during: "RETR",
                        received: 1,
                        expected: 2
                    }
                ),
                "{:?}: {err}",
                String::from_utf8_lossy(cut_after)
            );
            server.await.unwrap();
            // Nothing was deleted, and closing reports the broken session.
            assert!(Box::new(source).close().await.is_err());
        })
        .await;
    }
}

#[tokio::test]
async fn fetch_refuses_uidls_not_on_the_server() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.listing(&[("aaa", 5)]).await;
            // No RETR may reach the server.
            s.quit().await;
        });
        let mut source = connect(io, &settings()).await.unwrap();
        source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        let gone = source.fetch(&[pop3("aaa"), pop3("zzz")]).await.unwrap_err();
        assert!(
            matches!(&gone, FetchError::Protocol(m) if m.contains("zzz") && m.contains("not on the server")),
            "{gone}"
        );
        let imap = MessageKey::Imap {
            folder: "INBOX".into(),
            uid_validity: 1,
            uid: 1,
        };
        assert!(source.fetch(&[imap]).await.is_err());
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_deletion_queued_by_an_earlier_session_is_mapped_to_this_sessions_number() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            // Nothing listed yet in this session: the source lists first,
            // and "bbb", number 2 when it was fetched, is number 1 now.
            s.listing(&[("bbb", 5), ("ccc", 5)]).await;
            s.reply("DELE 1", b"+OK message 1 deleted\r\n").await;
            s.quit().await;
        });
        let mut settings = settings();
        settings.keep_on_server = false;
        let mut source = connect(io, &settings).await.unwrap();
        // "aaa" was deleted elsewhere meanwhile: nothing left to do for it.
        source
            .acknowledge(&[
                (pop3("aaa"), Acknowledge::Delete),
                (pop3("bbb"), Acknowledge::Delete),
            ])
            .await
            .unwrap();
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_body_beyond_the_size_limit_is_an_error() {
    within(async {
        let mut settings = settings();
        settings.max_message_bytes = 10;
        let limit = retr_limit(10);
        let huge = vec![b'x'; limit + 1];
        let (io, server) = serve(move |mut s| async move {
            s.login().await;
            // LIST claims 5 bytes; RETR sends more than the limit allows.
            s.listing(&[("aaa", 5)]).await;
            s.expect("RETR 1").await;
            s.send(b"+OK\r\n").await;
            s.send(&huge).await;
            s.send(b"\r\n.\r\n").await;
        });
        let mut source = connect(io, &settings).await.unwrap();
        source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        let err = source.fetch(&[pop3("aaa")]).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Protocol(m) if m.contains("larger than")),
            "{err}"
        );
        drop(source);
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn delete_sends_dele_and_quit_makes_it_effective() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.listing(&[("aaa", 5), ("bbb", 5), ("ccc", 5)]).await;
            s.reply("DELE 1", b"+OK message 1 deleted\r\n").await;
            s.reply("DELE 3", b"+OK message 3 deleted\r\n").await;
            s.quit().await;
        });
        let mut settings = settings();
        settings.keep_on_server = false;
        let mut source = connect(io, &settings).await.unwrap();
        source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        let actions = [
            (pop3("aaa"), Acknowledge::Delete),
            (pop3("bbb"), Acknowledge::MarkSeen),
            (pop3("bbb"), Acknowledge::Leave),
            (pop3("ccc"), Acknowledge::Delete),
        ];
        source.acknowledge(&actions).await.unwrap();
        // Acknowledging again sends nothing new.
        source.acknowledge(&actions[..1]).await.unwrap();
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn keep_on_server_never_sends_dele() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.listing(&[("aaa", 5)]).await;
            s.quit().await;
        });
        let settings = settings();
        assert!(settings.keep_on_server);
        let mut source = connect(io, &settings).await.unwrap();
        source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        source
            .acknowledge(&[(pop3("aaa"), Acknowledge::Delete)])
            .await
            .unwrap();
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn move_is_unsupported_and_nothing_is_sent() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.listing(&[("aaa", 5), ("bbb", 5)]).await;
            s.quit().await;
        });
        let mut settings = settings();
        settings.keep_on_server = false;
        let mut source = connect(io, &settings).await.unwrap();
        source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        let actions = [
            (pop3("aaa"), Acknowledge::Delete),
            (pop3("bbb"), Acknowledge::MoveTo("Archive".into())),
        ];
        let err = source.acknowledge(&actions).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Unsupported(m) if m.contains("Archive")),
            "{err}"
        );
        Box::new(source).close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_failed_quit_says_deletions_did_not_happen() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.listing(&[("aaa", 5)]).await;
            s.reply("DELE 1", b"+OK\r\n").await;
            s.reply("QUIT", b"-ERR some deleted messages not removed\r\n")
                .await;
        });
        let mut settings = settings();
        settings.keep_on_server = false;
        let mut source = connect(io, &settings).await.unwrap();
        source
            .list("INBOX", &FolderCursor::default())
            .await
            .unwrap();
        source
            .acknowledge(&[(pop3("aaa"), Acknowledge::Delete)])
            .await
            .unwrap();
        let err = Box::new(source).close().await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Protocol(m) if m.contains("were not deleted")),
            "{err}"
        );
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_quit_without_reply_is_an_error() {
    within(async {
        let (io, server) = serve(|mut s| async move {
            s.login().await;
            s.expect("QUIT").await;
        });
        let source = connect(io, &settings()).await.unwrap();
        assert!(Box::new(source).close().await.is_err());
        server.await.unwrap();
    })
    .await;
}

/// Collects everything `tracing` writes while it is alive.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_password_never_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let password = "hunter2-do-not-log";
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{password}"));
    within(async {
        for auth in [Auth::Login, Auth::Plain] {
            let expected_auth = encoded.clone();
            let (io, server) = serve(move |mut s| async move {
                s.greet("UIDL\r\nSASL PLAIN\r\n").await;
                match auth {
                    Auth::Login => {
                        s.reply("USER alice", b"+OK\r\n").await;
                        s.reply(&format!("PASS {password}"), b"-ERR [AUTH] wrong\r\n")
                            .await;
                    }
                    _ => {
                        s.reply(
                            &format!("AUTH PLAIN {expected_auth}"),
                            b"-ERR [AUTH] wrong\r\n",
                        )
                        .await
                    }
                }
            });
            let mut settings = settings();
            settings.auth = auth;
            settings.password = Secret::new(password);
            let err = connect(io, &settings).await.unwrap_err();
            assert!(matches!(err, FetchError::Auth(_)));
            tracing::error!(error = %err, "as the pipeline would log it");
            server.await.unwrap();
        }
    })
    .await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The test's own events are always captured. The account span's fields
    // and the command traces may not be: with tests running in parallel,
    // tracing may cache a callsite's interest before this test's scoped
    // subscriber exists, and those spans and events are then not captured.
    assert!(
        logs.contains("as the pipeline would log it"),
        "capture works: {logs}"
    );
    if !(logs.contains("test account") && logs.contains("pop.example")) {
        eprintln!("note: the account span was not captured (callsite interest cached)");
    }
    // Commands are traced at TRACE level; as above, the
    // password checks below hold over everything that was.
    if !(logs.contains("PASS") && logs.contains("AUTH PLAIN")) {
        eprintln!("note: command traces were not captured in this run");
    }
    assert!(!logs.contains(password), "{logs}");
    assert!(!logs.contains(&encoded), "{logs}");
}
