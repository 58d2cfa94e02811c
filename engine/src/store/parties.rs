//! Contacts and leads: one table, `kind` telling them apart.
//!
//! A CRM syncs parties by `external_id` (unique in the tenant when set);
//! without one, a party is the same party when kind and address match.
//! Addresses are stored lower-case with their domain in a column of its own,
//! so both directory look-ups are plain index scans.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use super::entity::parties;
use super::{
    PartyId, Result, Store, TenantId, corrupt, domain_of, lock_tenant, normalise_email, now,
};
use crate::directory::{Party, PartyKind};

/// A party to create or update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewParty {
    /// Contact or lead.
    pub kind: PartyKind,
    /// Address (any case; stored lower-case).
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// Id in the CRM, if it syncs the party.
    pub external_id: Option<String>,
}

/// Which parties to list (all filters apply together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartyFilter {
    /// Only contacts, or only leads.
    pub kind: Option<PartyKind>,
    /// Only this address (any case).
    pub email: Option<String>,
    /// Only addresses at this domain (any case).
    pub domain: Option<String>,
    /// Only the party the CRM knows by this id.
    pub external_id: Option<String>,
    /// Only those whose address, name or company contains this text (any
    /// case).
    pub text: Option<String>,
    /// Only those after this one, in id order (the paging cursor).
    pub after: Option<PartyId>,
    /// At most this many.
    pub limit: u64,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new party.
    Created(PartyId),
    /// An existing party, updated.
    Updated(PartyId),
}

impl Upserted {
    /// The party's id either way.
    pub fn id(self) -> PartyId {
        match self {
            Upserted::Created(id) | Upserted::Updated(id) => id,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// Parties created.
    pub created: usize,
    /// Parties that existed and were changed.
    pub updated: usize,
    /// Parties that existed with exactly these values (nothing written).
    pub unchanged: usize,
}

pub(super) fn kind_name(kind: PartyKind) -> &'static str {
    match kind {
        PartyKind::Contact => "contact",
        PartyKind::Lead => "lead",
    }
}

pub(super) fn party_from_row(row: parties::Model) -> Result<Party> {
    Ok(Party {
        kind: row.kind.parse().map_err(|e| corrupt("party kind", e))?,
        id: row.id.to_string(),
        email: row.email,
        name: row.name,
        company: row.company,
        external_id: row.external_id,
    })
}

/// Creates or updates one party inside a transaction that holds the tenant
/// lock.
///
/// With an `external_id`: the party with that id; failing that, a party of
/// the same kind and address that no CRM claimed yet (a lead the engine
/// created before the CRM synced it); failing that, a new party. Without
/// one: the first party of the same kind and address, whose name and company
/// are filled in only where given, so a sparse import never erases data.
///
/// The flag says whether anything was written: a party that already has
/// every given value is left alone (its `updated_at` too), so re-importing
/// an unchanged file reports it unchanged.
async fn upsert<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    party: &NewParty,
) -> Result<(Upserted, bool)> {
    let email = normalise_email(&party.email)?;
    let kind = kind_name(party.kind);
    let external_id = party
        .external_id
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let scoped = || parties::Entity::find().filter(parties::Column::TenantId.eq(tenant.0));

    let existing = match external_id {
        Some(ext) => match scoped()
            .filter(parties::Column::ExternalId.eq(ext))
            .one(db)
            .await?
        {
            Some(row) => Some(row),
            None => {
                scoped()
                    .filter(parties::Column::Kind.eq(kind))
                    .filter(parties::Column::Email.eq(&email))
                    .filter(parties::Column::ExternalId.is_null())
                    .order_by_asc(parties::Column::Id)
                    .one(db)
                    .await?
            }
        },
        None => {
            scoped()
                .filter(parties::Column::Kind.eq(kind))
                .filter(parties::Column::Email.eq(&email))
                .order_by_asc(parties::Column::Id)
                .one(db)
                .await?
        }
    };

    let stamp = now();
    match existing {
        Some(row) => {
            let id = row.id;
            let same = if external_id.is_some() {
                row.kind == kind
                    && row.email == email
                    && row.name == party.name
                    && row.company == party.company
                    && row.external_id.as_deref() == external_id
            } else {
                (party.name.is_none() || row.name == party.name)
                    && (party.company.is_none() || row.company == party.company)
            };
            if same {
                return Ok((Upserted::Updated(PartyId(id)), false));
            }
            let mut active: parties::ActiveModel = row.into();
            if external_id.is_some() {
                // The CRM is the authority for parties it syncs.
                active.kind = Set(kind.to_owned());
                active.domain = Set(domain_of(&email));
                active.email = Set(email);
                active.name = Set(party.name.clone());
                active.company = Set(party.company.clone());
                active.external_id = Set(external_id.map(str::to_owned));
            } else {
                if party.name.is_some() {
                    active.name = Set(party.name.clone());
                }
                if party.company.is_some() {
                    active.company = Set(party.company.clone());
                }
            }
            active.updated_at = Set(stamp);
            active.update(db).await?;
            Ok((Upserted::Updated(PartyId(id)), true))
        }
        None => {
            let id = insert(db, tenant, &email, party, external_id).await?;
            Ok((Upserted::Created(id), true))
        }
    }
}

/// Parties created by one import after which PostgreSQL's statistics of the
/// table are refreshed.
const ANALYZE_AFTER: usize = 1_000;

/// Parties looked up and inserted per statement by an import.
const IMPORT_CHUNK: usize = 500;

/// A party as an import works on it: a stored row (`id` set) or one to
/// insert at the end of the chunk.
#[derive(Debug, Clone)]
struct Row {
    /// Stored id; `None` until inserted.
    id: Option<i64>,
    kind: &'static str,
    email: String,
    name: Option<String>,
    company: Option<String>,
    external_id: Option<String>,
    /// Changed since it was read (an update to write).
    dirty: bool,
}

/// One chunk of [`Store::import_parties`]: the existing rows it can touch
/// in two queries, the rules of [`upsert`] applied in order in memory (so a
/// party named twice in a chunk is created once, then updated), then the
/// updates and one multi-row insert.
async fn import_chunk<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    chunk: &[NewParty],
    summary: &mut ImportSummary,
) -> Result<()> {
    let mut wanted = Vec::with_capacity(chunk.len());
    for party in chunk {
        let email = normalise_email(&party.email)?;
        let external = party
            .external_id
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned);
        wanted.push((party, email, external));
    }
    let externals: Vec<&str> = wanted.iter().filter_map(|(_, _, e)| e.as_deref()).collect();
    let emails: Vec<&str> = wanted.iter().map(|(_, e, _)| e.as_str()).collect();
    let mut found = Vec::new();
    if !externals.is_empty() {
        found.extend(
            parties::Entity::find()
                .filter(parties::Column::TenantId.eq(tenant.0))
                .filter(parties::Column::ExternalId.is_in(externals))
                .all(db)
                .await?,
        );
    }
    found.extend(
        parties::Entity::find()
            .filter(parties::Column::TenantId.eq(tenant.0))
            .filter(parties::Column::Email.is_in(emails))
            .order_by_asc(parties::Column::Id)
            .all(db)
            .await?,
    );
    found.sort_by_key(|r| r.id);
    found.dedup_by_key(|r| r.id);
    let mut rows: Vec<Row> = found
        .into_iter()
        .map(|r| Row {
            id: Some(r.id),
            kind: if r.kind == "lead" { "lead" } else { "contact" },
            email: r.email,
            name: r.name,
            company: r.company,
            external_id: r.external_id,
            dirty: false,
        })
        .collect();

    for (party, email, external) in wanted {
        let kind = kind_name(party.kind);
        // The same look-up as `upsert`, over rows in id order (new rows
        // last, in the order they were made).
        let existing = match &external {
            Some(ext) => rows
                .iter()
                .position(|r| r.external_id.as_deref() == Some(ext.as_str()))
                .or_else(|| {
                    rows.iter()
                        .position(|r| r.kind == kind && r.email == email && r.external_id.is_none())
                }),
            None => rows.iter().position(|r| r.kind == kind && r.email == email),
        };
        match existing {
            Some(i) => {
                let row = &mut rows[i];
                let same = if external.is_some() {
                    row.kind == kind
                        && row.email == email
                        && row.name == party.name
                        && row.company == party.company
                        && row.external_id == external
                } else {
                    (party.name.is_none() || row.name == party.name)
                        && (party.company.is_none() || row.company == party.company)
                };
                if same {
                    summary.unchanged += 1;
                    continue;
                }
                if external.is_some() {
                    // The CRM is the authority for parties it syncs.
                    row.kind = kind;
                    row.email = email;
                    row.name = party.name.clone();
                    row.company = party.company.clone();
                    row.external_id = external;
                } else {
                    if party.name.is_some() {
                        row.name = party.name.clone();
                    }
                    if party.company.is_some() {
                        row.company = party.company.clone();
                    }
                }
                row.dirty = true;
                // A party created earlier in this chunk and changed again
                // counts once as created, then as updated.
                summary.updated += 1;
            }
            None => {
                rows.push(Row {
                    id: None,
                    kind,
                    email,
                    name: party.name.clone(),
                    company: party.company.clone(),
                    external_id: external,
                    dirty: false,
                });
                summary.created += 1;
            }
        }
    }

    let stamp = now();
    for row in rows.iter().filter(|r| r.dirty && r.id.is_some()) {
        parties::Entity::update_many()
            .set(parties::ActiveModel {
                kind: Set(row.kind.to_owned()),
                domain: Set(domain_of(&row.email)),
                email: Set(row.email.clone()),
                name: Set(row.name.clone()),
                company: Set(row.company.clone()),
                external_id: Set(row.external_id.clone()),
                updated_at: Set(stamp),
                ..Default::default()
            })
            .filter(parties::Column::Id.eq(row.id))
            .exec(db)
            .await?;
    }
    let new: Vec<parties::ActiveModel> = rows
        .iter()
        .filter(|r| r.id.is_none())
        .map(|r| parties::ActiveModel {
            tenant_id: Set(tenant.0),
            kind: Set(r.kind.to_owned()),
            domain: Set(domain_of(&r.email)),
            email: Set(r.email.clone()),
            name: Set(r.name.clone()),
            company: Set(r.company.clone()),
            external_id: Set(r.external_id.clone()),
            created_at: Set(stamp),
            updated_at: Set(stamp),
            ..Default::default()
        })
        .collect();
    // 10 columns a row: well under SQLite's 32,766 parameters.
    for part in new.chunks(IMPORT_CHUNK) {
        parties::Entity::insert_many(part.to_vec()).exec(db).await?;
    }
    Ok(())
}

/// Inserts a party; `email` must be normalised.
pub(super) async fn insert<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    email: &str,
    party: &NewParty,
    external_id: Option<&str>,
) -> Result<PartyId> {
    let stamp = now();
    let id = parties::Entity::insert(parties::ActiveModel {
        tenant_id: Set(tenant.0),
        kind: Set(kind_name(party.kind).to_owned()),
        email: Set(email.to_owned()),
        domain: Set(domain_of(email)),
        name: Set(party.name.clone()),
        company: Set(party.company.clone()),
        external_id: Set(external_id.map(str::to_owned)),
        created_at: Set(stamp),
        updated_at: Set(stamp),
        ..Default::default()
    })
    .exec(db)
    .await?
    .last_insert_id;
    Ok(PartyId(id))
}

impl Store {
    /// Creates or updates a party (see the module docs for how an existing
    /// party is found).
    pub async fn upsert_party(&self, tenant: TenantId, party: &NewParty) -> Result<Upserted> {
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let (done, _) = upsert(&txn, tenant, party).await?;
        txn.commit().await?;
        Ok(done)
    }

    /// Creates or updates many parties in one transaction: all or nothing,
    /// so a bad row leaves the directory as it was. The same rules as
    /// [`upsert_party`](Self::upsert_party), applied in order, with the
    /// look-ups and inserts done a chunk at a time instead of a statement
    /// or two per party.
    pub async fn import_parties(
        &self,
        tenant: TenantId,
        parties: &[NewParty],
    ) -> Result<ImportSummary> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        let mut summary = ImportSummary::default();
        for chunk in parties.chunks(IMPORT_CHUNK) {
            import_chunk(&txn, tenant, chunk, &mut summary).await?;
        }
        txn.commit().await?;
        if summary.created >= ANALYZE_AFTER
            && self.db.get_database_backend() == sea_orm::DbBackend::Postgres
        {
            // A directory pushed in at once leaves PostgreSQL's statistics
            // describing a far smaller table until autovacuum catches up,
            // and its plans for the next push's look-ups scan the whole
            // table once per address. Fresh statistics keep them on the
            // indexes.
            if let Err(e) = self.db.execute_unprepared("ANALYZE parties").await {
                tracing::warn!("ANALYZE parties failed: {e}");
            }
        }
        Ok(summary)
    }

    /// The tenant's parties in id order, optionally of one kind: at most
    /// `limit`, starting after `after` (for paging).
    pub async fn parties(
        &self,
        tenant: TenantId,
        kind: Option<PartyKind>,
        after: Option<PartyId>,
        limit: u64,
    ) -> Result<Vec<Party>> {
        let mut query = parties::Entity::find().filter(parties::Column::TenantId.eq(tenant.0));
        if let Some(kind) = kind {
            query = query.filter(parties::Column::Kind.eq(kind_name(kind)));
        }
        if let Some(after) = after {
            query = query.filter(parties::Column::Id.gt(after.0));
        }
        query
            .order_by_asc(parties::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(party_from_row)
            .collect()
    }

    /// The tenant's parties that pass `filter`, in id order.
    pub async fn find_parties(&self, tenant: TenantId, filter: &PartyFilter) -> Result<Vec<Party>> {
        use sea_orm::sea_query::{Expr, Func};
        let mut query = parties::Entity::find().filter(parties::Column::TenantId.eq(tenant.0));
        if let Some(kind) = filter.kind {
            query = query.filter(parties::Column::Kind.eq(kind_name(kind)));
        }
        if let Some(email) = &filter.email {
            query = query.filter(parties::Column::Email.eq(email.trim().to_lowercase()));
        }
        if let Some(domain) = &filter.domain {
            query = query.filter(parties::Column::Domain.eq(domain.trim().to_lowercase()));
        }
        if let Some(ext) = &filter.external_id {
            query = query.filter(parties::Column::ExternalId.eq(ext.trim()));
        }
        if let Some(text) = filter
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            // LIKE with the pattern's own wildcards escaped.
            let escaped = text
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let pattern = format!("%{escaped}%");
            let like = |column: parties::Column| {
                Expr::expr(Func::lower(Expr::col(column)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern.clone()).escape('\\'))
            };
            query = query.filter(
                sea_orm::Condition::any()
                    .add(like(parties::Column::Email))
                    .add(like(parties::Column::Name))
                    .add(like(parties::Column::Company)),
            );
        }
        if let Some(after) = filter.after {
            query = query.filter(parties::Column::Id.gt(after.0));
        }
        query
            .order_by_asc(parties::Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(party_from_row)
            .collect()
    }

    /// Removes the party `id` and its links to messages (the messages
    /// stay). Returns whether it existed.
    pub async fn delete_party(&self, tenant: TenantId, id: PartyId) -> Result<bool> {
        use super::entity::message_links;
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        lock_tenant(&txn, tenant).await?;
        message_links::Entity::delete_many()
            .filter(message_links::Column::TenantId.eq(tenant.0))
            .filter(message_links::Column::PartyId.eq(id.0))
            .exec(&txn)
            .await?;
        let removed = parties::Entity::delete_many()
            .filter(parties::Column::TenantId.eq(tenant.0))
            .filter(parties::Column::Id.eq(id.0))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(removed.rows_affected > 0)
    }

    /// The party `id`, if it exists in the tenant.
    pub async fn party(&self, tenant: TenantId, id: PartyId) -> Result<Option<Party>> {
        parties::Entity::find()
            .filter(parties::Column::TenantId.eq(tenant.0))
            .filter(parties::Column::Id.eq(id.0))
            .one(&self.db)
            .await?
            .map(party_from_row)
            .transpose()
    }
}
