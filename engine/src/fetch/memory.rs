//! An in-memory mailbox as a [`MailSource`]: IMAP-like (one folder, a
//! UIDVALIDITY, UIDs, `\Seen`, delete), with faults that real servers
//! rarely produce on cue — a short fetch, a failing acknowledgement, a
//! crash between commit and acknowledgement. Tests drive the real pipeline
//! with it ([`crate::pipeline::Pipeline::run_source`]) to check the
//! exactly-once rules; the real-server tests check the protocols.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    Acknowledge, CursorAdvance, FetchError, Fetched, FolderCursor, Listed, Listing, MailSource,
    MessageKey,
};

/// The one folder a memory mailbox has.
pub const FOLDER: &str = crate::domain::INBOX;

/// Faults to inject, each counted down as it fires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// The next fetches return one message fewer than asked, without an
    /// error (a broken source): the pipeline must not commit such a batch.
    pub short_fetches: u32,
    /// Fetches that go through before `short_fetches` start.
    pub fetches_before_short: u32,
    /// The next acknowledgements fail (a server refusing `STORE`).
    pub failed_acknowledgements: u32,
    /// The next acknowledgements panic, like a process killed after its
    /// commit and before it touched the server.
    pub crashes_before_acknowledge: u32,
}

#[derive(Debug, Clone)]
struct Message {
    raw: bytes::Bytes,
    seen: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Larger messages are listed as too large, as an account's size limit
    /// makes them.
    max_message_bytes: Option<u64>,
    uid_validity: u32,
    next_uid: u32,
    messages: BTreeMap<u32, Message>,
    faults: Faults,
    /// Every command the sources ran, for tests to read.
    commands: Vec<String>,
}

/// A shared in-memory mailbox; cheap to clone, every clone is the same
/// mailbox.
#[derive(Debug, Clone)]
pub struct MemoryMailbox {
    state: Arc<Mutex<State>>,
}

impl MemoryMailbox {
    /// An empty mailbox with this UIDVALIDITY.
    pub fn new(uid_validity: u32) -> Self {
        MemoryMailbox {
            state: Arc::new(Mutex::new(State {
                uid_validity,
                next_uid: 1,
                ..State::default()
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("mailbox lock")
    }

    /// Delivers a message; returns its UID.
    pub fn deliver(&self, raw: impl Into<bytes::Bytes>) -> u32 {
        let mut s = self.state();
        let uid = s.next_uid;
        s.next_uid += 1;
        s.messages.insert(
            uid,
            Message {
                raw: raw.into(),
                seen: false,
            },
        );
        uid
    }

    /// Renumbers every message under a new UIDVALIDITY, as a server does
    /// after a mailbox rebuild.
    pub fn reset_uid_validity(&self, uid_validity: u32) {
        let mut s = self.state();
        let messages: Vec<Message> = std::mem::take(&mut s.messages).into_values().collect();
        s.uid_validity = uid_validity;
        s.next_uid = 1;
        for m in messages {
            let uid = s.next_uid;
            s.next_uid += 1;
            s.messages.insert(uid, m);
        }
    }

    /// Lists messages over `bytes` as too large (an account's size limit).
    pub fn set_size_limit(&self, bytes: u64) {
        self.state().max_message_bytes = Some(bytes);
    }

    /// Sets the faults to inject.
    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    /// UIDs of the messages still in the mailbox, with their `\Seen` flag.
    pub fn messages(&self) -> Vec<(u32, bool)> {
        self.state()
            .messages
            .iter()
            .map(|(uid, m)| (*uid, m.seen))
            .collect()
    }

    /// The commands run so far (`FETCH 1,2`, `STORE 3 +seen`, …).
    pub fn commands(&self) -> Vec<String> {
        self.state().commands.clone()
    }

    /// A session on this mailbox.
    pub fn source(&self) -> Box<dyn MailSource> {
        Box::new(MemorySource {
            mailbox: self.clone(),
        })
    }
}

/// One session on a [`MemoryMailbox`].
#[derive(Debug)]
struct MemorySource {
    mailbox: MemoryMailbox,
}

fn uid_of(message: &MessageKey, uid_validity: u32) -> Result<u32, FetchError> {
    match message {
        MessageKey::Imap {
            folder,
            uid_validity: v,
            uid,
        } if folder == FOLDER && *v == uid_validity => Ok(*uid),
        other => Err(FetchError::Protocol(format!(
            "not a message of this mailbox: {other:?}"
        ))),
    }
}

#[async_trait]
impl MailSource for MemorySource {
    fn folders(&self) -> Vec<String> {
        vec![FOLDER.to_string()]
    }

    async fn list(&mut self, folder: &str, cursor: &FolderCursor) -> Result<Listing, FetchError> {
        let s = self.mailbox.state();
        if folder != FOLDER {
            return Err(FetchError::NoSuchFolder {
                folder: folder.into(),
                detail: "a memory mailbox has only INBOX".into(),
            });
        }
        let changed = cursor.uid_validity.is_some_and(|v| v != s.uid_validity);
        let after = if cursor.uid_validity == Some(s.uid_validity) {
            cursor.last_uid
        } else {
            0
        };
        let limit = s.max_message_bytes.unwrap_or(u64::MAX);
        let (new, too_large): (Vec<Listed>, Vec<Listed>) = s
            .messages
            .range(after + 1..)
            .map(|(uid, m)| Listed {
                message: MessageKey::Imap {
                    folder: FOLDER.into(),
                    uid_validity: s.uid_validity,
                    uid: *uid,
                },
                size: m.raw.len() as u64,
            })
            .partition(|l| l.size <= limit);
        // Past the messages too large to fetch, as an IMAP listing does.
        let skip_to = too_large
            .last()
            .and_then(|l| match l.message {
                MessageKey::Imap { uid, .. } => Some(uid),
                _ => None,
            })
            .map(|uid| CursorAdvance {
                folder: FOLDER.into(),
                uid_validity: s.uid_validity,
                last_uid: uid,
            });
        Ok(Listing {
            folder: FOLDER.into(),
            uid_validity: Some(s.uid_validity),
            uid_validity_changed: changed,
            new,
            too_large,
            skip_to,
        })
    }

    async fn fetch(&mut self, messages: &[MessageKey]) -> Result<Vec<Fetched>, FetchError> {
        let mut s = self.mailbox.state();
        let uid_validity = s.uid_validity;
        let mut out = Vec::with_capacity(messages.len());
        let mut uids = Vec::with_capacity(messages.len());
        for m in messages {
            let uid = uid_of(m, uid_validity)?;
            uids.push(uid.to_string());
            if let Some(found) = s.messages.get(&uid) {
                out.push(Fetched {
                    message: m.clone(),
                    raw: found.raw.clone(),
                });
            }
        }
        s.commands.push(format!("FETCH {}", uids.join(",")));
        if s.faults.fetches_before_short > 0 {
            s.faults.fetches_before_short -= 1;
        } else if s.faults.short_fetches > 0 && !out.is_empty() {
            s.faults.short_fetches -= 1;
            out.pop();
        }
        Ok(out)
    }

    fn can_act_on(&self, message: &MessageKey) -> bool {
        matches!(message, MessageKey::Imap { folder, .. } if folder == FOLDER)
    }

    async fn acknowledge(
        &mut self,
        actions: &[(MessageKey, Acknowledge)],
    ) -> Result<(), FetchError> {
        let mut s = self.mailbox.state();
        if s.faults.crashes_before_acknowledge > 0 {
            s.faults.crashes_before_acknowledge -= 1;
            drop(s);
            panic!("injected crash between commit and acknowledgement");
        }
        if s.faults.failed_acknowledgements > 0 {
            s.faults.failed_acknowledgements -= 1;
            s.commands.push("STORE refused".into());
            return Err(FetchError::Protocol(
                "injected failure: the server refused STORE".into(),
            ));
        }
        let uid_validity = s.uid_validity;
        for (message, action) in actions {
            let uid = uid_of(message, uid_validity)?;
            match action {
                Acknowledge::Leave => {}
                Acknowledge::MarkSeen => {
                    if let Some(m) = s.messages.get_mut(&uid) {
                        m.seen = true;
                    }
                    s.commands.push(format!("STORE {uid} +seen"));
                }
                Acknowledge::Delete | Acknowledge::MoveTo(_) => {
                    s.messages.remove(&uid);
                    s.commands.push(format!("EXPUNGE {uid}"));
                }
            }
        }
        Ok(())
    }

    async fn close(self: Box<Self>) -> Result<(), FetchError> {
        self.mailbox.state().commands.push("LOGOUT".into());
        Ok(())
    }
}
