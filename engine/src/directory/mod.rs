//! The tenant's CRM directory: contacts and leads, and which parties earlier
//! messages were linked to.
//!
//! Plugins read it through host calls; every call carries the tenant of the
//! message being processed, so one tenant's plugins never see another's
//! parties. The store issue backs this trait with the database; the offline
//! `intake plugin test` uses [`MemoryDirectory`], loaded from a CSV file.

mod memory;
pub mod normalise;
mod run;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use memory::MemoryDirectory;
pub use run::RunDirectory;

/// A CRM party kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PartyKind {
    /// A known person.
    Contact,
    /// A prospective customer.
    Lead,
}

impl std::str::FromStr for PartyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "contact" => Ok(PartyKind::Contact),
            "lead" => Ok(PartyKind::Lead),
            other => Err(format!(
                "unknown party kind {other:?} (expected contact or lead)"
            )),
        }
    }
}

/// A contact or lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Party {
    /// Contact or lead.
    pub kind: PartyKind,
    /// Stable id within the tenant.
    pub id: String,
    /// Lower-case e-mail address.
    pub email: String,
    /// Display name, if known.
    pub name: Option<String>,
    /// Company, if known.
    pub company: Option<String>,
    /// Id in the CRM that synced the party, if any.
    pub external_id: Option<String>,
}

/// A reference to a party, as a matcher returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartyRef {
    /// Contact or lead.
    pub kind: PartyKind,
    /// The party's id.
    pub id: String,
}

impl Party {
    /// This party's reference.
    pub fn to_ref(&self) -> PartyRef {
        PartyRef {
            kind: self.kind,
            id: self.id.clone(),
        }
    }
}

/// One page of look-up results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// At most the requested number of parties.
    pub parties: Vec<Party>,
    /// True if more matched than were returned.
    pub truncated: bool,
}

impl Page {
    /// Keeps the first `limit` parties of `all`, noting whether any were cut.
    pub fn capped(mut all: Vec<Party>, limit: usize) -> Page {
        let truncated = all.len() > limit;
        all.truncate(limit);
        Page {
            parties: all,
            truncated,
        }
    }
}

/// Why a directory look-up failed. Plugins receive it as data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The backing store is unavailable.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The argument was refused (empty, too long).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Read access to contacts and leads, scoped by tenant.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Parties whose address equals `address`, case-insensitively.
    async fn find_by_address(
        &self,
        tenant: &str,
        address: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError>;
    /// Parties whose address is in `domain` (exact domain, case-insensitive).
    async fn find_by_domain(
        &self,
        tenant: &str,
        domain: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError>;
    /// Parties linked to the earlier message with this Message-ID.
    async fn parties_for_message_id(
        &self,
        tenant: &str,
        message_id: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError>;
    /// The party a reference names, if it exists in this tenant. The engine
    /// checks every reference a plugin returns with it.
    async fn get(&self, tenant: &str, party: &PartyRef) -> Result<Option<Party>, DirectoryError>;
}
