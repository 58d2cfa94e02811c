//! Which message, where a folder was left, and what to do with a message on
//! the server once it is committed.
//!
//! A [`MessageKey`] is the one identity of a message: a source lists and
//! fetches by it, the store dedupes by it and keeps queued server actions
//! under it, and a later session finds the message again by it. It holds
//! only what stays true across sessions — a POP3 message number does not,
//! so the POP3 source maps UIDLs to numbers itself.

use std::collections::BTreeSet;

use serde::Serialize;

/// The folder POP3 mail is under (POP3 has only the inbox), and the one
/// folder of an in-memory mailbox.
pub const INBOX: &str = "INBOX";

/// Identifies one message, stably across sessions: its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MessageKey {
    /// An IMAP message: folder, UIDVALIDITY and UID.
    Imap {
        /// Folder name.
        folder: String,
        /// UIDVALIDITY of the folder when listed.
        uid_validity: u32,
        /// UID.
        uid: u32,
    },
    /// A POP3 message: the server's unique id (UIDL), stable across
    /// sessions, unlike its message number.
    Pop3 {
        /// The UIDL.
        uidl: String,
    },
    /// A message in a local file being imported (backfill): a `.eml` or
    /// Maildir file (offset 0), or one message of an mbox at `offset`.
    /// A file's path and offset say nothing stable about the message (files
    /// move, mboxes are rewritten), so the store keeps no server key for
    /// it: imports dedupe by Message-ID and content key, and record no
    /// cursor and no server action.
    File {
        /// The file.
        path: String,
        /// Byte offset of the message in the file.
        offset: u64,
    },
}

impl MessageKey {
    /// The folder the message is in on its server; `None` for a file.
    pub fn folder(&self) -> Option<&str> {
        match self {
            MessageKey::Imap { folder, .. } => Some(folder),
            MessageKey::Pop3 { .. } => Some(INBOX),
            MessageKey::File { .. } => None,
        }
    }

    /// Whether the message is on a server (it has a server key to dedupe
    /// by and server actions may be queued for it).
    pub fn is_on_server(&self) -> bool {
        !matches!(self, MessageKey::File { .. })
    }
}

/// Where a folder was left: what has been ingested already. Sources read
/// it to list what is new; the pipeline only passes it along.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderCursor {
    /// IMAP: the UIDVALIDITY the cursor belongs to.
    pub uid_validity: Option<u32>,
    /// IMAP: the highest UID ingested.
    pub last_uid: u32,
    /// POP3: UIDLs already ingested.
    pub seen_uidls: BTreeSet<String>,
}

impl FolderCursor {
    /// Nothing was ingested from the folder yet (its first sync).
    pub fn is_fresh(&self) -> bool {
        self.uid_validity.is_none() && self.last_uid == 0 && self.seen_uidls.is_empty()
    }
}

/// A cursor move beyond the messages committed: past messages a listing
/// skipped (the older ones of a first sync, the ones over the size limit).
/// Sources make it, the store applies it, the pipeline only carries it
/// from one to the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorAdvance {
    /// Folder name.
    pub folder: String,
    /// The folder's UIDVALIDITY.
    pub uid_validity: u32,
    /// Everything up to this UID is done.
    pub last_uid: u32,
}

/// What to do on the server with a committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acknowledge {
    /// Leave it as it is.
    Leave,
    /// Set `\Seen` (IMAP; POP3 has no flags and leaves it).
    MarkSeen,
    /// Delete it (IMAP: `\Deleted` + `UID EXPUNGE`; POP3: `DELE`, effective
    /// at `QUIT`).
    Delete,
    /// Move it to a folder (IMAP `MOVE`, else `COPY` + delete).
    MoveTo(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_folder_and_files_have_no_server_copy() {
        let imap = MessageKey::Imap {
            folder: "Sales".into(),
            uid_validity: 7,
            uid: 3,
        };
        let pop3 = MessageKey::Pop3 { uidl: "u1".into() };
        let file = MessageKey::File {
            path: "a.eml".into(),
            offset: 0,
        };
        assert_eq!(imap.folder(), Some("Sales"));
        assert_eq!(pop3.folder(), Some(INBOX));
        assert_eq!(file.folder(), None);
        assert!(imap.is_on_server() && pop3.is_on_server() && !file.is_on_server());
    }

    #[test]
    fn a_cursor_is_fresh_until_something_was_ingested() {
        assert!(FolderCursor::default().is_fresh());
        let mut seen = FolderCursor::default();
        seen.seen_uidls.insert("u1".into());
        assert!(!seen.is_fresh());
        let imap = FolderCursor {
            uid_validity: Some(1),
            ..FolderCursor::default()
        };
        assert!(!imap.is_fresh());
    }
}
