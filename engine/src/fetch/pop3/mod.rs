//! POP3 (placeholder until the client lands).
use async_trait::async_trait;

use super::{Acknowledge, AccountSettings, FetchError, Fetched, FolderCursor, Listing, MailSource, MessageRef};

/// A POP3 mailbox.
#[derive(Debug)]
pub struct Pop3Source;

impl Pop3Source {
    /// Connects and authenticates.
    pub async fn connect(_settings: &AccountSettings) -> Result<Self, FetchError> {
        Err(FetchError::Unsupported("POP3 is not implemented yet".into()))
    }
}

#[async_trait]
impl MailSource for Pop3Source {
    fn folders(&self) -> Vec<String> {
        vec!["INBOX".into()]
    }
    async fn list(&mut self, _folder: &str, _cursor: &FolderCursor) -> Result<Listing, FetchError> {
        unimplemented!()
    }
    async fn fetch(&mut self, _messages: &[MessageRef]) -> Result<Vec<Fetched>, FetchError> {
        unimplemented!()
    }
    async fn acknowledge(&mut self, _actions: &[(MessageRef, Acknowledge)]) -> Result<(), FetchError> {
        unimplemented!()
    }
    async fn close(self: Box<Self>) -> Result<(), FetchError> {
        Ok(())
    }
}
