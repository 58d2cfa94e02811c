//! The tenant's CRM directory as a plugin sees it.
//!
//! Plugins receive a `&dyn Directory`. Inside the engine it is backed by host
//! calls; in a plugin's own native unit tests, a [`MemoryDirectory`] stands in.

use crate::__private::bindings::imports::intake::plugin::directory as host;
use crate::{LookupError, LookupResult, Party, PartyKind};

/// Read-only look-ups in the tenant's contacts and leads.
///
/// Every call is scoped to the tenant of the message being processed, and
/// results are capped by the engine (`LookupResult::truncated` says so).
pub trait Directory {
    /// Parties whose address equals `address`, case-insensitively.
    fn find_by_address(&self, address: &str) -> Result<LookupResult, LookupError>;
    /// Parties whose address is in `domain` (sub-domains do not match).
    fn find_by_domain(&self, domain: &str) -> Result<LookupResult, LookupError>;
    /// Parties linked to the earlier message with this Message-ID.
    fn parties_for_message_id(&self, message_id: &str) -> Result<LookupResult, LookupError>;
}

/// The directory the engine provides, through host calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostDirectory;

impl Directory for HostDirectory {
    fn find_by_address(&self, address: &str) -> Result<LookupResult, LookupError> {
        host::find_by_address(address)
    }
    fn find_by_domain(&self, domain: &str) -> Result<LookupResult, LookupError> {
        host::find_by_domain(domain)
    }
    fn parties_for_message_id(&self, message_id: &str) -> Result<LookupResult, LookupError> {
        host::parties_for_message_id(message_id)
    }
}

/// An in-memory directory for a plugin's native unit tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryDirectory {
    parties: Vec<Party>,
    threads: Vec<(String, Vec<Party>)>,
}

impl MemoryDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a contact or lead; its id is its position, as a string.
    pub fn with_party(mut self, kind: PartyKind, email: &str, name: Option<&str>) -> Self {
        let id = format!("{}", self.parties.len() + 1);
        self.parties.push(Party {
            kind,
            id,
            email: email.to_ascii_lowercase(),
            name: name.map(str::to_string),
            company: None,
            external_id: None,
        });
        self
    }

    /// Records that the message `message_id` was linked to the parties whose
    /// addresses are given (they must have been added first).
    pub fn with_thread(mut self, message_id: &str, emails: &[&str]) -> Self {
        let linked = self
            .parties
            .iter()
            .filter(|p| emails.iter().any(|e| e.eq_ignore_ascii_case(&p.email)))
            .cloned()
            .collect();
        self.threads.push((message_id.to_string(), linked));
        self
    }

    /// The party with this address, if any (handy in assertions).
    pub fn party(&self, email: &str) -> Option<&Party> {
        self.parties
            .iter()
            .find(|p| p.email.eq_ignore_ascii_case(email))
    }

    fn collect(&self, keep: impl Fn(&Party) -> bool) -> LookupResult {
        LookupResult {
            parties: self.parties.iter().filter(|p| keep(p)).cloned().collect(),
            truncated: false,
        }
    }
}

impl Directory for MemoryDirectory {
    fn find_by_address(&self, address: &str) -> Result<LookupResult, LookupError> {
        Ok(self.collect(|p| p.email.eq_ignore_ascii_case(address)))
    }
    fn find_by_domain(&self, domain: &str) -> Result<LookupResult, LookupError> {
        Ok(self.collect(|p| {
            crate::address::domain(&p.email).is_some_and(|d| d.eq_ignore_ascii_case(domain))
        }))
    }
    fn parties_for_message_id(&self, message_id: &str) -> Result<LookupResult, LookupError> {
        let parties = self
            .threads
            .iter()
            .filter(|(id, _)| id == message_id)
            .flat_map(|(_, parties)| parties.iter().cloned())
            .collect();
        Ok(LookupResult {
            parties,
            truncated: false,
        })
    }
}
