//! Fuzz target: a whole POP3 session (`Pop3Source`: greeting, CAPA, login,
//! UIDL, LIST, RETR, DELE, QUIT) against a server whose every byte comes
//! from the fuzzer, over an in-memory stream.
//!
//! Run from `fuzz/` with the stable toolchain (see README.md); no nightly
//! and no `RUSTC_BOOTSTRAP` needed:
//!
//! ```text
//! nice cargo fuzz run pop3_session --sanitizer none \
//!     corpus/pop3_session seeds/pop3_session -- -max_total_time=600 -max_len=80000
//! ```
//!
//! The session must end in a result or an error, never a panic or a hang,
//! and whatever it hands on must respect the account's limits.
#![no_main]

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use intake::fetch::pop3::Pop3Source;
use intake::fetch::{
    AccountSettings, Acknowledge, Auth, FetchError, FolderCursor, MailSource, Protocol, Secret,
    Security,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The account's size limit; small so the fuzzer can exceed it.
const MAX_MESSAGE_BYTES: u64 = 1024;

/// A server that says `script`, `chunk` bytes per read, then hangs up, and
/// swallows whatever the client sends.
struct Replay {
    script: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self
            .chunk
            .min(self.script.len() - self.at)
            .min(buf.remaining());
        buf.put_slice(&self.script[self.at..self.at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> =
        RefCell::new(tokio::runtime::Builder::new_current_thread().build().expect("runtime"));
}

async fn session(stream: Replay, settings: &AccountSettings) -> Result<(), FetchError> {
    let mut source = Pop3Source::over_stream(stream, settings).await?;
    let listing = source.list("INBOX", &FolderCursor::default()).await;
    if let Ok(listing) = &listing {
        assert!(listing.new.iter().all(|l| l.size <= MAX_MESSAGE_BYTES));
        assert!(listing.too_large.iter().all(|l| l.size > MAX_MESSAGE_BYTES));
        let refs: Vec<_> = listing.new.iter().map(|l| l.message.clone()).collect();
        if let Ok(fetched) = source.fetch(&refs).await {
            // All or an error: never a short batch.
            assert_eq!(fetched.len(), refs.len());
            for (f, r) in fetched.iter().zip(&refs) {
                assert_eq!(&f.message, r);
                assert!(
                    f.raw.len() as u64 <= MAX_MESSAGE_BYTES + MAX_MESSAGE_BYTES / 8 + 64 * 1024
                );
            }
        }
        let actions: Vec<_> = refs.into_iter().map(|r| (r, Acknowledge::Delete)).collect();
        let _ = source.acknowledge(&actions).await;
    }
    Box::new(source).close().await
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size and the account's options.
    let Some((&knob, script)) = data.split_first() else {
        return;
    };
    let mut settings = AccountSettings::new(
        "fuzz",
        Protocol::Pop3,
        "fuzz.invalid",
        Security::None,
        "user",
        Secret::new("pw"),
    );
    settings.max_message_bytes = MAX_MESSAGE_BYTES;
    settings.keep_on_server = knob & 1 == 0;
    settings.auth = if knob & 2 == 0 {
        Auth::Login
    } else {
        Auth::Plain
    };
    let stream = Replay {
        script: script.to_vec(),
        at: 0,
        chunk: usize::from(knob >> 2) + 1,
    };
    RUNTIME.with(|rt| {
        let _ = rt.borrow().block_on(session(stream, &settings));
    });
});
