//! A framing guard between the network and async-imap.
//!
//! async-imap re-parses everything it has buffered each time more bytes
//! arrive until a response is complete. That is linear for literals (the
//! parser learns their length) but quadratic for a long line outside them:
//! a hostile or broken server could burn minutes of CPU, and memory, with
//! one endless line. This wrapper watches the bytes on their way in, tracks
//! `{n}` literals, and fails the read as soon as a line outside literals
//! grows past [`MAX_LINE`], a literal announces more than the account could
//! ever accept, or the connection ends inside a response. The parser never
//! sees such input.
//!
//! It also keeps the last tagged status line the server sent (shortened), so
//! a command that async-imap ends quietly (a tagged `NO` to `UID FETCH`) can
//! be reported with the server's own words.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest response line accepted outside literals. Listing answers are
/// requested in windows (see [`super::imap`]) so a legitimate line stays far
/// below this.
pub const MAX_LINE: usize = 512 * 1024;

/// How much of a tagged status line is kept for error messages.
const KEEP_STATUS: usize = 200;

/// Why the guard stopped a read. Carried inside the `io::Error`, so the IMAP
/// module can turn it into a precise [`super::FetchError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A line outside literals longer than [`MAX_LINE`].
    #[error("the server sent a response line longer than {0} bytes")]
    LineTooLong(usize),
    /// A literal larger than the account accepts.
    #[error(
        "the server announced a literal of {announced} bytes, more than the {limit} this account accepts"
    )]
    LiteralTooLarge {
        /// Size in the `{n}`.
        announced: u64,
        /// The cap.
        limit: u64,
    },
    /// The connection ended before a literal was complete.
    #[error("the connection closed {missing} bytes before the end of a message")]
    CutLiteral {
        /// Bytes the literal still lacked.
        missing: u64,
    },
    /// The connection ended in the middle of a response line.
    #[error("the connection closed in the middle of a response")]
    CutLine,
}

/// Finds the guard's [`Violation`] inside an I/O error, if it is one.
pub fn violation(e: &io::Error) -> Option<&Violation> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Violation>())
}

/// What the guard saw last, shared with the IMAP module.
#[derive(Debug, Default)]
pub struct Seen {
    /// The last tagged status line (`A0007 NO …`), at most 200 bytes.
    pub last_tagged: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a line segment of `len` bytes so far.
    Line,
    /// Inside a literal, with this many bytes still to come.
    Literal(u64),
}

/// The guarded stream. Writes pass through untouched.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    state: State,
    /// Bytes of the current line segment (since the line start or the end
    /// of the last literal in it).
    len: usize,
    /// Whether the current line is the first segment of a response.
    at_response_start: bool,
    /// The first bytes of the current response line.
    head: Vec<u8>,
    /// The last bytes of the current segment, to find `{n}` at its end.
    tail: Vec<u8>,
    max_literal: u64,
    seen: Arc<Mutex<Seen>>,
}

impl<S> Guarded<S> {
    /// Wraps `inner`; literals over `max_literal` bytes are refused.
    pub fn new(inner: S, max_literal: u64) -> (Self, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        (
            Guarded {
                inner,
                state: State::Line,
                len: 0,
                at_response_start: true,
                head: Vec::new(),
                tail: Vec::new(),
                max_literal,
                seen: seen.clone(),
            },
            seen,
        )
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Checks `bytes` (just read) and updates the framing state.
    fn scan(&mut self, bytes: &[u8]) -> Result<(), Violation> {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Literal(remaining) => {
                    let take = remaining.min((bytes.len() - i) as u64);
                    i += take as usize;
                    let left = remaining - take;
                    self.state = if left == 0 {
                        State::Line
                    } else {
                        State::Literal(left)
                    };
                }
                State::Line => {
                    let rest = &bytes[i..];
                    let end = rest.iter().position(|&b| b == b'\n');
                    let segment = &rest[..end.unwrap_or(rest.len())];
                    self.len += segment.len();
                    if self.len > MAX_LINE {
                        return Err(Violation::LineTooLong(MAX_LINE));
                    }
                    if self.at_response_start && self.head.len() < KEEP_STATUS {
                        let room = KEEP_STATUS - self.head.len();
                        self.head
                            .extend_from_slice(&segment[..segment.len().min(room)]);
                    }
                    self.tail.extend_from_slice(segment);
                    if self.tail.len() > 64 {
                        self.tail.drain(..self.tail.len() - 64);
                    }
                    match end {
                        None => i = bytes.len(),
                        Some(lf) => {
                            i += lf + 1;
                            self.end_of_segment()?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A line feed: either a literal begins, or the response is complete.
    fn end_of_segment(&mut self) -> Result<(), Violation> {
        let line = self.tail.strip_suffix(b"\r").unwrap_or(&self.tail);
        let literal = line.strip_suffix(b"}").and_then(|inner| {
            let open = inner.iter().rposition(|&b| b == b'{')?;
            let digits = &inner[open + 1..];
            let digits = digits.strip_suffix(b"+").unwrap_or(digits);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            // Too many digits for u64 is simply too large.
            Some(
                std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok())
                    .unwrap_or(u64::MAX),
            )
        });
        self.len = 0;
        self.tail.clear();
        match literal {
            Some(n) if n > self.max_literal => Err(Violation::LiteralTooLarge {
                announced: n,
                limit: self.max_literal,
            }),
            Some(n) => {
                self.at_response_start = false;
                self.state = if n == 0 {
                    State::Line
                } else {
                    State::Literal(n)
                };
                Ok(())
            }
            None => {
                let head = std::mem::take(&mut self.head);
                let tagged = !head.is_empty() && head[0] != b'*' && head[0] != b'+';
                if tagged {
                    let text = String::from_utf8_lossy(&head).trim_end().to_string();
                    if let Ok(mut seen) = self.seen.lock() {
                        seen.last_tagged = Some(text);
                    }
                }
                self.at_response_start = true;
                Ok(())
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() == before {
                    let cut = match this.state {
                        State::Literal(missing) => Some(Violation::CutLiteral { missing }),
                        State::Line if this.len > 0 || !this.at_response_start => {
                            Some(Violation::CutLine)
                        }
                        State::Line => None,
                    };
                    return Poll::Ready(match cut {
                        Some(v) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, v)),
                        None => Ok(()),
                    });
                }
                match this.scan(&buf.filled()[before..]) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(v) => {
                        // Nothing of the offending read reaches the parser.
                        buf.set_filled(before);
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, v)))
                    }
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_literal: u64) -> Guarded<tokio::io::Empty> {
        Guarded::new(tokio::io::empty(), max_literal).0
    }

    #[test]
    fn literals_are_skipped_and_lines_bounded() {
        let mut g = guard(100);
        g.scan(b"* 1 FETCH (UID 1 BODY[] {5}\r\nab\r\nc)\r\n")
            .unwrap();
        assert_eq!(g.state, State::Line);
        assert!(g.at_response_start);
        // Split anywhere, including inside the `{n}`.
        let mut g = guard(100);
        for b in b"* 1 FETCH (BODY[] {1" {
            g.scan(&[*b]).unwrap();
        }
        g.scan(b"2}\r\n0123456789").unwrap();
        assert_eq!(g.state, State::Literal(2));
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(
            guard(100).scan(&long),
            Err(Violation::LineTooLong(MAX_LINE))
        );
        // A literal's bytes never count as line.
        let mut g = guard(u64::MAX);
        g.scan(format!("* 1 FETCH (BODY[] {{{}}}\r\n", MAX_LINE * 2).as_bytes())
            .unwrap();
        g.scan(&vec![b'y'; MAX_LINE * 2]).unwrap();
        g.scan(b")\r\n").unwrap();
    }

    #[test]
    fn huge_literals_and_tagged_lines() {
        assert!(matches!(
            guard(1000).scan(b"* 1 FETCH (BODY[] {99999999999}\r\n"),
            Err(Violation::LiteralTooLarge {
                announced: 99999999999,
                ..
            })
        ));
        assert!(matches!(
            guard(1000).scan(b"* 1 FETCH (BODY[] {99999999999999999999999999}\r\n"),
            Err(Violation::LiteralTooLarge { .. })
        ));
        let (mut g, seen) = Guarded::new(tokio::io::empty(), 10);
        g.scan(b"* 1 FETCH (UID 1)\r\nA0007 NO [SERVERBUG] oops\r\n")
            .unwrap();
        assert_eq!(
            seen.lock().unwrap().last_tagged.as_deref(),
            Some("A0007 NO [SERVERBUG] oops")
        );
    }
}
