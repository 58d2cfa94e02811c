//! Fetch: retrieving raw messages from mail servers (IMAP, POP3).
//!
//! Everything protocol-specific stays in this module. The pipeline sees the
//! [`MailSource`] trait: list what is new since a cursor, fetch raw bytes in
//! batches, and — only after it has committed them — apply server actions.
//! A source never changes anything on the server by itself: listing and
//! fetching are read-only (`BODY.PEEK[]`, POP3 `RETR` without `DELE`).
//!
//! What an account is, a message's identity and where a folder was left
//! are [`crate::domain`] types, shared with the store; each source maps them
//! to its own session (POP3 UIDLs to this session's message numbers) and
//! moves cursors past what its listing skips (first sync, too large).
//!
//! - [`net`]: TCP (direct or through a SOCKS5 proxy), TLS, timeouts.
//! - [`imap`], [`pop3`]: the two protocols.
//! - [`imap_guard`]: bounds what async-imap is given to parse.
//! - [`check`]: the step-by-step "Test settings" check.
//! - [`diagnosis`]: one classification and one set of hints for failures,
//!   used by "Test settings" and `intake fetch` alike.
//! - [`files`]: Maildir, mbox and `.eml` files, for backfill imports.
//! - [`memory`]: an in-memory mailbox with injectable faults, for tests of
//!   the pipeline.
//! - [`watch`]: IMAP IDLE on a folder, so the service hears of new mail.
//!
//! Nothing here trusts the server: every exchange has a deadline
//! ([`net`]), every line and literal a cap, listings come in bounded windows
//! ([`MailSource::list_more`]), and a message is only handed on when it is
//! known to be whole.

pub mod check;
pub mod diagnosis;
pub mod files;
pub mod imap;
pub mod imap_guard;
pub mod memory;
pub mod net;
pub mod pop3;
pub mod sasl;
pub mod watch;

use async_trait::async_trait;

pub use crate::domain::{
    AccountSettings, Acknowledge, Auth, CursorAdvance, FetchMode, FolderCursor, MessageKey,
    Protocol, ProxySettings, Secret, Security, Timeouts,
};
pub use diagnosis::{FailureClass, hint_line};
pub use net::NetError;

/// A message listed as new, with its size as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Which message.
    pub message: MessageKey,
    /// Size in bytes (RFC822.SIZE, POP3 LIST).
    pub size: u64,
}

/// What a listing found in one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Folder name (`INBOX` for POP3).
    pub folder: String,
    /// The folder's current UIDVALIDITY (IMAP).
    pub uid_validity: Option<u32>,
    /// The cursor's UIDVALIDITY differs from the server's: the folder was
    /// re-listed from the start (the pipeline dedupes by Message-ID).
    pub uid_validity_changed: bool,
    /// Messages to fetch, oldest first.
    pub new: Vec<Listed>,
    /// Messages over the account's size limit: listed, not fetched.
    pub too_large: Vec<Listed>,
    /// Where the cursor moves once every message of `new` is committed:
    /// past the messages this listing skipped (over the size limit, or
    /// older than a first sync keeps). Not before: committed with an early
    /// batch, it would move the cursor past messages listed beside them
    /// that a crash then leaves unfetched for good.
    pub skip_to: Option<CursorAdvance>,
}

/// A fetched message: exactly the bytes the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Which message.
    pub message: MessageKey,
    /// The raw RFC 5322 bytes.
    pub raw: bytes::Bytes,
}

/// Why retrieval failed. Each says which step, so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Network, TLS or proxy failure.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The server refused the credentials.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The server refuses for now, for reasons that are not the account's
    /// settings: mailbox in use, too many connections, temporary trouble.
    #[error("the server is busy: {0}")]
    Busy(String),
    /// The server answered something the protocol does not allow, or
    /// refused a command.
    #[error("server error: {0}")]
    Protocol(String),
    /// The folder does not exist (or cannot be selected).
    #[error("folder {folder:?} not found or not selectable: {detail}")]
    NoSuchFolder {
        /// Folder name.
        folder: String,
        /// Server's words.
        detail: String,
    },
    /// The connection ended before all requested messages arrived. Nothing
    /// from the batch should be trusted as complete.
    #[error("connection lost during {during}: received {received} of {expected} messages")]
    Incomplete {
        /// Which command.
        during: &'static str,
        /// Messages fully received.
        received: usize,
        /// Messages requested.
        expected: usize,
    },
    /// The server lacks something this account needs.
    #[error("{0}")]
    Unsupported(String),
}

/// A mailbox on a server, as the pipeline drives it.
///
/// Protocol: `list` each folder, `fetch` the listed messages in batches,
/// commit them durably, then `acknowledge` the committed ones, then `close`.
#[async_trait]
pub trait MailSource: Send + std::fmt::Debug {
    /// The folders this source reads (`INBOX` for POP3).
    fn folders(&self) -> Vec<String>;

    /// Lists what is new in `folder` since `cursor`, read-only. On a first
    /// sync (a fresh cursor) with `first_sync_max_messages` set, only the
    /// newest that many, with [`Listing::skip_to`] past the rest.
    async fn list(&mut self, folder: &str, cursor: &FolderCursor) -> Result<Listing, FetchError>;

    /// Fetches the raw bytes of `messages` (one round trip per batch where
    /// the protocol allows), read-only. All or an error: a connection lost
    /// midway is [`FetchError::Incomplete`], never a short result.
    async fn fetch(&mut self, messages: &[MessageKey]) -> Result<Vec<Fetched>, FetchError>;

    /// Whether what [`acknowledge`](Self::acknowledge) did becomes true on
    /// the server only at a clean [`close`](Self::close) (POP3 `DELE` at
    /// `QUIT`). When false (IMAP), an acknowledgement that returned `Ok` is
    /// done, and its queued action can be forgotten at once.
    fn acknowledged_at_close(&self) -> bool {
        false
    }

    /// The next window of the listing [`list`](Self::list) began, or `None`
    /// when it is complete. Sources that list everything at once (POP3,
    /// files) keep the default. The pipeline processes and commits each
    /// window before asking for the next, so memory does not grow with the
    /// folder, and a crash between windows loses nothing: the cursor only
    /// ever moves past committed messages.
    async fn list_more(&mut self, folder: &str) -> Result<Option<Listing>, FetchError> {
        let _ = folder;
        Ok(None)
    }

    /// Whether this source can carry out a server action queued for
    /// `message`, by this run or an earlier one: the message is of its kind
    /// (an import cannot act on an IMAP account's mail). What it cannot do
    /// stays queued for a session that can.
    fn can_act_on(&self, message: &MessageKey) -> bool;

    /// Applies server actions to committed messages. A message no longer
    /// on the server needs nothing more done and is not an error.
    async fn acknowledge(
        &mut self,
        actions: &[(MessageKey, Acknowledge)],
    ) -> Result<(), FetchError>;

    /// Ends the session cleanly (POP3: `QUIT`, which makes `DELE` effective).
    async fn close(self: Box<Self>) -> Result<(), FetchError>;
}

/// Opens a source for the account: connect, secure, authenticate.
pub async fn open(settings: &AccountSettings) -> Result<Box<dyn MailSource>, FetchError> {
    match settings.protocol {
        Protocol::Imap => Ok(Box::new(imap::ImapSource::connect(settings).await?)),
        Protocol::Pop3 => Ok(Box::new(pop3::Pop3Source::connect(settings).await?)),
    }
}
