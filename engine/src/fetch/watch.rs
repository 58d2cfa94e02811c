//! Watching a folder for new mail: IMAP IDLE (RFC 2177), on a connection of
//! its own beside the one that fetches.
//!
//! A change the server reports is only a hint that something happened: the
//! caller then checks the account as usual, listing from its stored cursor,
//! so mail that arrived between a FETCH and the next IDLE is never missed.
//!
//! Time stays bounded: the IDLE command is renewed at least every
//! `renew` (a dead link shows up then, because `DONE` must be answered
//! within the usual I/O timeout), and the server may be silent for at most
//! `renew` plus that timeout while idling. The end of the stream is a
//! disconnect, reported as an error, never as "nothing new".

use std::time::{Duration, Instant};

use async_imap::extensions::idle::{Handle, IdleResponse};

use super::imap::{ImapSource, Session, imap_error};
use super::imap_guard::Guarded;
use super::net::{MailStream, NetError};
use super::{AccountSettings, FetchError, Protocol};

/// The longest an IDLE command is left running before it is renewed.
pub const MAX_RENEW: Duration = Duration::from_secs(5 * 60);

/// What a wait on a watched folder found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The server reported something (new mail, expunges, flags).
    Reported,
    /// Nothing within the wait; the IDLE was renewed.
    Quiet,
}

/// An IDLE connection on one folder.
pub struct FolderWatch {
    handle: Option<Handle<Guarded<MailStream>>>,
    folder: String,
    /// When the running IDLE command was sent.
    since: Instant,
    renew: Duration,
    io: Duration,
}

impl std::fmt::Debug for FolderWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatch")
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl FolderWatch {
    /// Connects, logs in, selects `folder` and starts IDLE. `Ok(None)` when
    /// the account cannot be watched: POP3, or a server without IDLE (the
    /// caller polls instead).
    pub async fn open(
        settings: &AccountSettings,
        folder: &str,
        renew: Duration,
    ) -> Result<Option<FolderWatch>, FetchError> {
        if settings.protocol != Protocol::Imap {
            return Ok(None);
        }
        let source = ImapSource::connect(settings).await?;
        let Some(session) = source.into_idle_session(folder).await? else {
            return Ok(None);
        };
        let mut watch = FolderWatch {
            handle: None,
            folder: folder.to_string(),
            since: Instant::now(),
            renew: renew.min(MAX_RENEW).max(Duration::from_secs(1)),
            io: settings.timeouts.io,
        };
        watch.start(session).await?;
        Ok(Some(watch))
    }

    /// The folder watched.
    pub fn folder(&self) -> &str {
        &self.folder
    }

    async fn start(&mut self, session: Session) -> Result<(), FetchError> {
        let mut handle = session.idle();
        handle.init().await.map_err(|e| imap_error(e, "IDLE"))?;
        // The server speaks first from here on: allow it to be silent
        // until the renewal, plus the usual timeout.
        handle
            .as_mut()
            .get_mut()
            .allow_silence(self.renew + self.io);
        self.since = Instant::now();
        self.handle = Some(handle);
        Ok(())
    }

    /// Waits until the server reports a change, or until the IDLE command is
    /// due for renewal (then renews it and returns [`Change::Quiet`]).
    pub async fn wait(&mut self) -> Result<Change, FetchError> {
        let left = self.renew.saturating_sub(self.since.elapsed());
        let handle = self
            .handle
            .as_mut()
            .ok_or_else(|| FetchError::Protocol("IDLE: the watch was closed".into()))?;
        let response = if left.is_zero() {
            IdleResponse::Timeout
        } else {
            // The stop source must live while waiting: dropping it ends the
            // wait as if interrupted.
            let (wait, _stop) = handle.wait_with_timeout(left);
            wait.await.map_err(|e| imap_error(e, "IDLE"))?
        };
        match response {
            IdleResponse::NewData(_) => Ok(Change::Reported),
            IdleResponse::Timeout => {
                self.renew_idle().await?;
                Ok(Change::Quiet)
            }
            // Nothing here interrupts the wait: this is the stream ending.
            IdleResponse::ManualInterrupt => {
                Err(FetchError::Net(NetError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the IDLE connection",
                ))))
            }
        }
    }

    /// `DONE`, then `IDLE` again.
    async fn renew_idle(&mut self) -> Result<(), FetchError> {
        let Some(handle) = self.handle.take() else {
            return Err(FetchError::Protocol("IDLE: the watch was closed".into()));
        };
        let session = handle.done().await.map_err(|e| imap_error(e, "DONE"))?;
        self.start(session).await
    }

    /// Ends IDLE and logs out, within the I/O timeout; errors are of no use
    /// to anyone at this point and are dropped.
    pub async fn close(mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        let io = self.io;
        let _ = tokio::time::timeout(io, async move {
            if let Ok(mut session) = handle.done().await {
                let _ = session.logout().await;
            }
        })
        .await;
    }
}
