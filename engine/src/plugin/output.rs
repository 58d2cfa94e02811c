//! Guest stdout/stderr: kept in memory up to a cap, then sent to `tracing`.
//! A plugin that prints forever loses its excess output, never the engine's
//! memory, and never fails because of it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A capped, shared output buffer.
#[derive(Debug, Clone)]
pub(crate) struct CappedOutput {
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Debug)]
struct Buffer {
    bytes: Vec<u8>,
    cap: usize,
    dropped: usize,
}

impl CappedOutput {
    pub(crate) fn new(cap: usize) -> Self {
        CappedOutput {
            inner: Arc::new(Mutex::new(Buffer {
                bytes: Vec::new(),
                cap,
                dropped: 0,
            })),
        }
    }

    fn push(&self, data: &[u8]) {
        let mut b = self.inner.lock().expect("output lock");
        let room = b.cap.saturating_sub(b.bytes.len());
        let keep = room.min(data.len());
        b.bytes.extend_from_slice(&data[..keep]);
        b.dropped += data.len() - keep;
    }

    /// What was kept (lossy UTF-8) and how many bytes were dropped.
    pub(crate) fn take(&self) -> (String, usize) {
        let mut b = self.inner.lock().expect("output lock");
        let text = String::from_utf8_lossy(&b.bytes).into_owned();
        b.bytes.clear();
        (text, std::mem::take(&mut b.dropped))
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
