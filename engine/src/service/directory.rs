//! The tenant's directory of contacts and leads, as the CRM pushes it in:
//! bulk upsert by the CRM's external id, look-ups, removal.

use serde::{Deserialize, Serialize};

use super::scope::Scope;
use super::{Result, Service, ServiceError, invalid};
use crate::directory::{Party, PartyKind};
use crate::store::{self, ImportSummary, NewParty, PartyFilter, PartyId, TokenScope};

/// The most parties one upsert takes: larger directories go in several
/// requests, each all-or-nothing.
pub const UPSERT_MAX: usize = 10_000;

/// The most parties one page lists.
pub const PAGE_MAX: u64 = 500;

/// Which parties to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartyQuery {
    /// `contact` or `lead`.
    pub kind: Option<PartyKind>,
    /// Exactly this address.
    pub email: Option<String>,
    /// Addresses at this domain.
    pub domain: Option<String>,
    /// The party the CRM knows by this id.
    pub external_id: Option<String>,
    /// Text in the address, name or company.
    pub q: Option<String>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
    /// At most this many (default 100, at most 500).
    pub limit: Option<u64>,
}

/// A page of parties.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartyPage {
    /// The parties, in id order.
    pub items: Vec<Party>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<String>,
}

/// Reads a cursor: the last id of the previous page.
pub(crate) fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("cursor", "not a cursor this API returned"))
        })
        .transpose()
}

impl Service {
    /// Imports `email,name,company,kind[,external_id]` rows (with a header
    /// line), as `intake contact import` does: every row is checked first
    /// (a bad one is named by its line, and nothing is stored), then all are
    /// upserted.
    pub async fn import_parties_csv(
        &self,
        scope: &Scope,
        shown: &str,
        csv: &[u8],
    ) -> Result<ImportSummary> {
        scope.require(TokenScope::Write)?;
        let staging = crate::directory::MemoryDirectory::new();
        staging
            .load_csv_from("import", shown, csv)
            .map_err(|e| invalid("csv", e.to_string()))?;
        let mut parties = Vec::new();
        for kind in [PartyKind::Contact, PartyKind::Lead] {
            for p in staging.all("import", kind) {
                parties.push(NewParty {
                    kind,
                    email: p.email,
                    name: p.name,
                    company: p.company,
                    external_id: p.external_id,
                });
            }
        }
        Ok(self.store.import_parties(scope.tenant(), &parties).await?)
    }

    /// Creates or updates parties: one with an external id is the party the
    /// CRM knows by it; one without is found by kind and address. All or
    /// nothing.
    pub async fn upsert_parties(
        &self,
        scope: &Scope,
        parties: &[NewParty],
    ) -> Result<ImportSummary> {
        scope.require(TokenScope::Write)?;
        if parties.len() > UPSERT_MAX {
            return Err(invalid(
                "parties",
                format!("at most {UPSERT_MAX} per request"),
            ));
        }
        for (i, p) in parties.iter().enumerate() {
            let email = p.email.trim();
            if email.is_empty() || !email.contains('@') || email.len() > 320 {
                return Err(invalid(
                    format!("parties[{i}].email"),
                    "not an e-mail address",
                ));
            }
            if p.external_id.as_deref().is_some_and(|e| e.len() > 200) {
                return Err(invalid(
                    format!("parties[{i}].external_id"),
                    "at most 200 characters",
                ));
            }
            for (field, value) in [("name", &p.name), ("company", &p.company)] {
                if value.as_deref().is_some_and(|v| v.len() > 500) {
                    return Err(invalid(
                        format!("parties[{i}].{field}"),
                        "at most 500 characters",
                    ));
                }
            }
        }
        self.store
            .import_parties(scope.tenant(), parties)
            .await
            .map_err(|e| match e {
                store::Error::Invalid { what, reason } => {
                    invalid(format!("parties.{what}"), reason)
                }
                other => other.into(),
            })
    }

    /// A page of the tenant's parties.
    pub async fn parties(&self, scope: &Scope, query: &PartyQuery) -> Result<PartyPage> {
        scope.require(TokenScope::Read)?;
        let limit = query.limit.unwrap_or(100).clamp(1, PAGE_MAX);
        let filter = PartyFilter {
            kind: query.kind,
            email: query.email.clone(),
            domain: query.domain.clone(),
            external_id: query.external_id.clone(),
            text: query.q.clone(),
            after: parse_cursor(query.cursor.as_deref())?.map(PartyId),
            limit,
        };
        let items = self.store.find_parties(scope.tenant(), &filter).await?;
        let next = (items.len() as u64 == limit)
            .then(|| items.last().map(|p| p.id.clone()))
            .flatten();
        Ok(PartyPage { items, next })
    }

    /// One party.
    pub async fn party(&self, scope: &Scope, id: i64) -> Result<Party> {
        scope.require(TokenScope::Read)?;
        self.store
            .party(scope.tenant(), PartyId(id))
            .await?
            .ok_or_else(|| not_found("party", id))
    }

    /// Removes a party and its links (the messages stay).
    pub async fn delete_party(&self, scope: &Scope, id: i64) -> Result<()> {
        scope.require(TokenScope::Write)?;
        if self.store.delete_party(scope.tenant(), PartyId(id)).await? {
            Ok(())
        } else {
            Err(not_found("party", id))
        }
    }

    /// Removes the party the CRM knows by `external_id`.
    pub async fn delete_party_by_external_id(
        &self,
        scope: &Scope,
        external_id: &str,
    ) -> Result<()> {
        scope.require(TokenScope::Write)?;
        let filter = PartyFilter {
            external_id: Some(external_id.to_owned()),
            limit: 1,
            ..PartyFilter::default()
        };
        let found = self.store.find_parties(scope.tenant(), &filter).await?;
        let party = found
            .first()
            .ok_or_else(|| not_found("party with external id", external_id))?;
        let id: i64 = party
            .id
            .parse()
            .map_err(|_| not_found("party with external id", external_id))?;
        self.delete_party(scope, id).await
    }
}

pub(crate) fn not_found(what: &'static str, name: impl ToString) -> ServiceError {
    ServiceError::Store(store::Error::NotFound {
        what,
        name: name.to_string(),
    })
}
