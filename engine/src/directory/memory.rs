//! An in-memory [`Directory`], loaded from CSV for offline plugin tests and
//! used as the reference behaviour in tests of the database-backed one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use async_trait::async_trait;

use super::{Directory, DirectoryError, Page, Party, PartyKind, PartyRef, normalise};

/// Parties and message links per tenant, in memory.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    tenants: RwLock<HashMap<String, Tenant>>,
}

#[derive(Debug, Default)]
struct Tenant {
    parties: Vec<Party>,
    /// Lower-case address → positions in `parties`.
    by_address: HashMap<String, Vec<usize>>,
    /// Lower-case domain → positions in `parties`.
    by_domain: HashMap<String, Vec<usize>>,
    /// Message-ID → parties the message was linked to.
    links: HashMap<String, Vec<PartyRef>>,
}

/// A CSV loading error, with the line that failed.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be read or is not CSV.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The reader's error.
        source: csv::Error,
    },
    /// A row is not valid.
    #[error("{path}, line {line}: {reason}")]
    Row {
        /// The file.
        path: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
}

impl MemoryDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a party to `tenant`, giving it the next id (`c1`, `l2`, …) unless
    /// `party.id` is already set. Returns the id.
    pub fn insert(&self, tenant: &str, mut party: Party) -> String {
        let mut tenants = self.tenants.write().expect("directory lock");
        let t = tenants.entry(tenant.to_string()).or_default();
        if party.id.is_empty() {
            let prefix = match party.kind {
                PartyKind::Contact => 'c',
                PartyKind::Lead => 'l',
            };
            party.id = format!("{prefix}{}", t.parties.len() + 1);
        }
        party.email = normalise::address(&party.email);
        let id = party.id.clone();
        let position = t.parties.len();
        t.by_address
            .entry(party.email.clone())
            .or_default()
            .push(position);
        if let Some(domain) = normalise::domain_of(&party.email) {
            t.by_domain.entry(domain).or_default().push(position);
        }
        t.parties.push(party);
        id
    }

    /// Records that the message `message_id` was linked to `parties`, so that
    /// later replies can be threaded to them.
    pub fn link_message(&self, tenant: &str, message_id: &str, parties: &[PartyRef]) {
        let mut tenants = self.tenants.write().expect("directory lock");
        let t = tenants.entry(tenant.to_string()).or_default();
        let Some(key) = normalise::message_id(message_id) else {
            return;
        };
        t.links
            .entry(key)
            .or_default()
            .extend(parties.iter().cloned());
    }

    /// Loads `email,name,company,kind[,external_id]` rows (with a header
    /// line) into `tenant`. Returns how many parties were added.
    pub fn load_csv(&self, tenant: &str, path: &Path) -> Result<usize, CsvError> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| CsvError::Read {
            path: shown.clone(),
            source: csv::Error::from(e),
        })?;
        self.load_csv_from(tenant, &shown, file)
    }

    /// [`load_csv`](Self::load_csv) from any reader (an upload); `shown`
    /// names it in errors.
    pub fn load_csv_from(
        &self,
        tenant: &str,
        shown: &str,
        input: impl std::io::Read,
    ) -> Result<usize, CsvError> {
        let shown = shown.to_owned();
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(input);
        let headers = reader
            .headers()
            .map_err(|source| CsvError::Read {
                path: shown.clone(),
                source,
            })?
            .clone();
        let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let email_col = column("email").ok_or_else(|| CsvError::Row {
            path: shown.clone(),
            line: 1,
            reason: "the header line has no `email` column (expected email,name,company,kind)"
                .into(),
        })?;
        let (name_col, company_col, kind_col, ext_col) = (
            column("name"),
            column("company"),
            column("kind"),
            column("external_id"),
        );
        let mut added = 0;
        for record in reader.records() {
            let record = record.map_err(|source| CsvError::Read {
                path: shown.clone(),
                source,
            })?;
            let line = record.position().map_or(0, |p| p.line());
            let field = |col: Option<usize>| {
                col.and_then(|c| record.get(c))
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            let email = field(Some(email_col)).unwrap_or_default();
            if email.is_empty() && record.iter().all(str::is_empty) {
                continue;
            }
            if !email.contains('@') {
                return Err(CsvError::Row {
                    path: shown,
                    line,
                    reason: format!("{email:?} is not an e-mail address"),
                });
            }
            let kind = match field(kind_col) {
                Some(k) => k.parse().map_err(|reason| CsvError::Row {
                    path: shown.clone(),
                    line,
                    reason,
                })?,
                None => PartyKind::Contact,
            };
            self.insert(
                tenant,
                Party {
                    kind,
                    id: String::new(),
                    email,
                    name: field(name_col),
                    company: field(company_col),
                    external_id: field(ext_col),
                },
            );
            added += 1;
        }
        Ok(added)
    }

    /// The parties at the positions `index` gives for `key`, capped.
    /// Every party of one kind in `tenant`, in insertion order.
    pub fn all(&self, tenant: &str, kind: PartyKind) -> Vec<Party> {
        let tenants = self.tenants.read().expect("directory lock");
        tenants
            .get(tenant)
            .map(|t| {
                t.parties
                    .iter()
                    .filter(|p| p.kind == kind)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lookup(
        &self,
        tenant: &str,
        limit: usize,
        index: impl Fn(&Tenant) -> Option<&Vec<usize>>,
    ) -> Page {
        let tenants = self.tenants.read().expect("directory lock");
        let Some(t) = tenants.get(tenant) else {
            return Page::default();
        };
        let positions = index(t).map(Vec::as_slice).unwrap_or_default();
        let parties = positions
            .iter()
            .take(limit)
            .map(|&i| t.parties[i].clone())
            .collect();
        Page {
            parties,
            truncated: positions.len() > limit,
        }
    }
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn find_by_address(
        &self,
        tenant: &str,
        address: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let key = normalise::address(address);
        Ok(self.lookup(tenant, limit, |t| t.by_address.get(&key)))
    }

    async fn find_by_domain(
        &self,
        tenant: &str,
        domain: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let key = normalise::domain(domain);
        Ok(self.lookup(tenant, limit, |t| t.by_domain.get(&key)))
    }

    async fn parties_for_message_id(
        &self,
        tenant: &str,
        message_id: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let tenants = self.tenants.read().expect("directory lock");
        let Some(t) = tenants.get(tenant) else {
            return Ok(Page::default());
        };
        let Some(key) = normalise::message_id(message_id) else {
            return Ok(Page::default());
        };
        let refs = t.links.get(&key).cloned().unwrap_or_default();
        let mut found: Vec<Party> = Vec::new();
        for r in refs {
            if let Some(p) = t.parties.iter().find(|p| p.kind == r.kind && p.id == r.id)
                && !found.contains(p)
            {
                found.push(p.clone());
            }
        }
        Ok(Page::capped(found, limit))
    }

    async fn get(&self, tenant: &str, party: &PartyRef) -> Result<Option<Party>, DirectoryError> {
        let tenants = self.tenants.read().expect("directory lock");
        Ok(tenants.get(tenant).and_then(|t| {
            t.parties
                .iter()
                .find(|p| p.kind == party.kind && p.id == party.id)
                .cloned()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(kind: PartyKind, email: &str) -> Party {
        Party {
            kind,
            id: String::new(),
            email: email.into(),
            name: None,
            company: None,
            external_id: None,
        }
    }

    #[tokio::test]
    async fn tenants_are_isolated() {
        let dir = MemoryDirectory::new();
        dir.insert("a", party(PartyKind::Contact, "Ann@Acme.example"));
        dir.insert("b", party(PartyKind::Lead, "bob@acme.example"));
        let a = dir.find_by_domain("a", "ACME.example", 10).await.unwrap();
        assert_eq!(a.parties.len(), 1);
        assert_eq!(a.parties[0].email, "ann@acme.example");
        assert!(
            dir.find_by_address("b", "ann@acme.example", 10)
                .await
                .unwrap()
                .parties
                .is_empty()
        );
        let r = PartyRef {
            kind: PartyKind::Contact,
            id: "c1".into(),
        };
        assert!(dir.get("a", &r).await.unwrap().is_some());
        assert!(dir.get("b", &r).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn pages_are_capped() {
        let dir = MemoryDirectory::new();
        for i in 0..5 {
            dir.insert("t", party(PartyKind::Contact, &format!("p{i}@x.example")));
        }
        let page = dir.find_by_domain("t", "x.example", 3).await.unwrap();
        assert_eq!((page.parties.len(), page.truncated), (3, true));
    }

    #[test]
    fn csv_rows_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.csv");
        std::fs::write(&good, "email,name,company,kind\nann@acme.example,Ann,Acme,contact\nlee@new.example,,,lead\n\n").unwrap();
        let d = MemoryDirectory::new();
        assert_eq!(d.load_csv("t", &good).unwrap(), 2);

        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "email,kind\nann@acme.example,customer\n").unwrap();
        let err = d.load_csv("t", &bad).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("customer"), "{err}");
    }
}
