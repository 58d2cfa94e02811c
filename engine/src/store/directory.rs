//! [`StoreDirectory`]: the database-backed [`Directory`] plugins query.
//!
//! Plugins name the tenant by name (the tenant id in the message view); the
//! directory resolves it once and caches the key, since tenants are never
//! renamed. Each look-up is one indexed query that fetches `limit + 1` rows,
//! so `truncated` is exact without counting.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use super::entity::{message_links, messages, parties};
use super::parties::{kind_name, party_from_row};
use super::{Store, TenantId, normalise_message_id};
use crate::directory::normalise;
use crate::directory::{Directory, DirectoryError, Page, Party, PartyRef};

/// The tenant's contacts and leads, read from the store.
#[derive(Debug, Clone)]
pub struct StoreDirectory {
    /// The store.
    store: Store,
    /// Tenant name → key, filled on first use.
    tenants: Arc<RwLock<HashMap<String, TenantId>>>,
}

impl Store {
    /// The directory plugins query, backed by this store.
    pub fn directory(&self) -> StoreDirectory {
        StoreDirectory {
            store: self.clone(),
            tenants: Arc::default(),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(e.to_string())
}

impl StoreDirectory {
    /// The tenant's key; `None` for a tenant the store has never seen (which
    /// has no parties).
    async fn tenant(&self, name: &str) -> Result<Option<TenantId>, DirectoryError> {
        if let Some(id) = self.tenants.read().map_err(unavailable)?.get(name) {
            return Ok(Some(*id));
        }
        let found = self.store.tenant(name).await.map_err(unavailable)?;
        if let Some(id) = found {
            self.tenants
                .write()
                .map_err(unavailable)?
                .insert(name.to_owned(), id);
        }
        Ok(found)
    }

    /// Runs `query` (already filtered by tenant) for one capped page.
    async fn page(
        &self,
        query: Select<parties::Entity>,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let rows = query
            .order_by_asc(parties::Column::Id)
            .limit(limit.saturating_add(1) as u64)
            .all(&self.store.db)
            .await
            .map_err(unavailable)?;
        let parties = rows
            .into_iter()
            .map(party_from_row)
            .collect::<Result<Vec<Party>, _>>()
            .map_err(unavailable)?;
        Ok(Page::capped(parties, limit))
    }

    fn scoped(tenant: TenantId) -> Select<parties::Entity> {
        parties::Entity::find().filter(parties::Column::TenantId.eq(tenant.0))
    }
}

#[async_trait]
impl Directory for StoreDirectory {
    async fn find_by_address(
        &self,
        tenant: &str,
        address: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let Some(tenant) = self.tenant(tenant).await? else {
            return Ok(Page::default());
        };
        let email = normalise::address(address);
        self.page(
            Self::scoped(tenant).filter(parties::Column::Email.eq(email)),
            limit,
        )
        .await
    }

    async fn find_by_domain(
        &self,
        tenant: &str,
        domain: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let Some(tenant) = self.tenant(tenant).await? else {
            return Ok(Page::default());
        };
        let domain = normalise::domain(domain);
        self.page(
            Self::scoped(tenant).filter(parties::Column::Domain.eq(domain)),
            limit,
        )
        .await
    }

    async fn parties_for_message_id(
        &self,
        tenant: &str,
        message_id: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let Some(tenant) = self.tenant(tenant).await? else {
            return Ok(Page::default());
        };
        let Some(message_id) = normalise_message_id(message_id) else {
            return Ok(Page::default());
        };
        // Parties linked to any message of this tenant with that
        // Message-ID (the same message may have reached several accounts).
        let linked_messages = Query::select()
            .column(messages::Column::Id)
            .from(messages::Entity)
            .and_where(messages::Column::TenantId.eq(tenant.0))
            .and_where(messages::Column::MessageId.eq(message_id))
            .to_owned();
        let linked_parties = Query::select()
            .column(message_links::Column::PartyId)
            .from(message_links::Entity)
            .and_where(message_links::Column::TenantId.eq(tenant.0))
            .and_where(message_links::Column::StoredMessageId.in_subquery(linked_messages))
            .to_owned();
        self.page(
            Self::scoped(tenant).filter(parties::Column::Id.in_subquery(linked_parties)),
            limit,
        )
        .await
    }

    async fn get(&self, tenant: &str, party: &PartyRef) -> Result<Option<Party>, DirectoryError> {
        let Some(tenant) = self.tenant(tenant).await? else {
            return Ok(None);
        };
        // Ids are decimal keys; anything else names no party here.
        let Ok(id) = party.id.trim().parse::<i64>() else {
            return Ok(None);
        };
        let row = Self::scoped(tenant)
            .filter(parties::Column::Id.eq(id))
            .filter(parties::Column::Kind.eq(kind_name(party.kind)))
            .one(&self.store.db)
            .await
            .map_err(unavailable)?;
        row.map(party_from_row).transpose().map_err(unavailable)
    }
}
