//! The store's directory as one ingest run sees it (`RunDirectory`): the
//! links decided in batches not yet committed, and a short-lived cache of
//! look-ups. It wraps any [`Directory`] and knows no database.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Directory, DirectoryError, Page, Party, PartyRef};

/// The store's directory as one run sees it: the links decided in batches
/// not yet committed, so a reply threads to a message whose commit is still
/// on its way, and a short-lived cache of look-ups.
///
/// The cache keeps a run from asking the database the same question for
/// every message (the mailbox owner's address is in each one). The
/// look-ups a lead created by the run's own commits would answer are
/// dropped when that commit returns; everything is dropped after
/// [`LOOKUP_TTL`], so contacts added by others during a long run are seen
/// within that time; it holds at most [`LOOKUP_CACHE_PARTIES`] parties.
pub struct RunDirectory {
    inner: Arc<dyn Directory>,
    links: Mutex<PendingLinks>,
    cache: Mutex<LookupCache>,
}

/// (tenant, Message-ID) → (batch, parties), for batches not yet committed.
type PendingLinks = HashMap<(String, String), (usize, Vec<Party>)>;

/// An address or domain as the store compares them.
fn normal(text: &str) -> String {
    text.trim().to_lowercase()
}

/// How long a cached look-up is trusted.
const LOOKUP_TTL: Duration = Duration::from_secs(30);
/// Most parties the look-up cache holds before it starts over.
const LOOKUP_CACHE_PARTIES: usize = 20_000;

#[derive(Hash, PartialEq, Eq)]
enum Lookup {
    Address(String, String, usize),
    Domain(String, String, usize),
    Party(String, PartyRef),
}

#[derive(Clone)]
enum Answer {
    Page(Page),
    Party(Option<Party>),
}

struct LookupCache {
    since: Instant,
    parties: usize,
    answers: HashMap<Lookup, Answer>,
}

impl Default for LookupCache {
    fn default() -> Self {
        LookupCache {
            since: Instant::now(),
            parties: 0,
            answers: HashMap::new(),
        }
    }
}

impl RunDirectory {
    pub fn new(inner: Arc<dyn Directory>) -> Self {
        RunDirectory {
            inner,
            links: Mutex::default(),
            cache: Mutex::default(),
        }
    }

    pub fn remember(&self, tenant: &str, batch: usize, message_id: String, parties: Vec<Party>) {
        self.links
            .lock()
            .expect("links lock")
            .insert((tenant.to_string(), message_id), (batch, parties));
    }

    /// Drops the links of a committed batch.
    pub fn forget(&self, batch: usize) {
        self.links
            .lock()
            .expect("links lock")
            .retain(|_, (b, _)| *b != batch);
    }

    /// Forgets the cached look-ups that parties with these addresses
    /// (just created) would now answer.
    pub fn parties_added(&self, addresses: &[String]) {
        if addresses.is_empty() {
            return;
        }
        let addresses: HashSet<String> = addresses.iter().map(|a| normal(a)).collect();
        let domains: HashSet<&str> = addresses
            .iter()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d))
            .collect();
        let mut cache = self.cache.lock().expect("cache lock");
        cache.answers.retain(|key, _| match key {
            Lookup::Address(_, address, _) => !addresses.contains(&normal(address)),
            Lookup::Domain(_, domain, _) => {
                !domains.contains(normal(domain).trim_start_matches('@'))
            }
            Lookup::Party(..) => true,
        });
    }

    fn cached(&self, key: &Lookup) -> Option<Answer> {
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.since.elapsed() > LOOKUP_TTL {
            *cache = LookupCache::default();
        }
        cache.answers.get(key).cloned()
    }

    fn store(&self, key: Lookup, answer: Answer) {
        let size = match &answer {
            Answer::Page(page) => page.parties.len().max(1),
            Answer::Party(_) => 1,
        };
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.parties + size > LOOKUP_CACHE_PARTIES {
            *cache = LookupCache::default();
        }
        cache.parties += size;
        cache.answers.insert(key, answer);
    }

    async fn page(
        &self,
        key: Lookup,
        ask: impl std::future::Future<Output = Result<Page, DirectoryError>>,
    ) -> Result<Page, DirectoryError> {
        if let Some(Answer::Page(page)) = self.cached(&key) {
            return Ok(page);
        }
        let page = ask.await?;
        self.store(key, Answer::Page(page.clone()));
        Ok(page)
    }
}

#[async_trait]
impl Directory for RunDirectory {
    async fn find_by_address(
        &self,
        tenant: &str,
        address: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let key = Lookup::Address(tenant.into(), address.into(), limit);
        self.page(key, self.inner.find_by_address(tenant, address, limit))
            .await
    }

    async fn find_by_domain(
        &self,
        tenant: &str,
        domain: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let key = Lookup::Domain(tenant.into(), domain.into(), limit);
        self.page(key, self.inner.find_by_domain(tenant, domain, limit))
            .await
    }

    async fn parties_for_message_id(
        &self,
        tenant: &str,
        message_id: &str,
        limit: usize,
    ) -> Result<Page, DirectoryError> {
        let pending = self
            .links
            .lock()
            .expect("links lock")
            .get(&(tenant.to_string(), message_id.to_string()))
            .map(|(_, parties)| parties.clone());
        match pending {
            Some(parties) => Ok(Page::capped(parties, limit)),
            None => {
                self.inner
                    .parties_for_message_id(tenant, message_id, limit)
                    .await
            }
        }
    }

    async fn get(&self, tenant: &str, party: &PartyRef) -> Result<Option<Party>, DirectoryError> {
        let key = Lookup::Party(tenant.into(), party.clone());
        if let Some(Answer::Party(found)) = self.cached(&key) {
            return Ok(found);
        }
        let found = self.inner.get(tenant, party).await?;
        self.store(key, Answer::Party(found.clone()));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(email: &str) -> Party {
        Party {
            kind: crate::directory::PartyKind::Lead,
            id: String::new(),
            email: email.into(),
            name: None,
            company: None,
            external_id: None,
        }
    }

    #[tokio::test]
    async fn the_run_directory_caches_and_forgets_what_new_leads_answer() {
        let inner = Arc::new(crate::directory::MemoryDirectory::new());
        inner.insert("t", lead("known@a.example"));
        let run = RunDirectory::new(inner.clone());
        let found = |page: Page| {
            page.parties
                .iter()
                .map(|p| p.email.clone())
                .collect::<Vec<_>>()
        };
        assert!(
            run.find_by_address("t", "pat@b.example", 10)
                .await
                .unwrap()
                .parties
                .is_empty()
        );
        assert!(
            run.find_by_domain("t", "b.example", 10)
                .await
                .unwrap()
                .parties
                .is_empty()
        );
        assert_eq!(
            found(
                run.find_by_address("t", "known@a.example", 10)
                    .await
                    .unwrap()
            ),
            ["known@a.example"]
        );
        // Added behind the cache's back: the cached answers still stand.
        inner.insert("t", lead("pat@b.example"));
        inner.insert("t", lead("other@a.example"));
        assert!(
            run.find_by_address("t", "pat@b.example", 10)
                .await
                .unwrap()
                .parties
                .is_empty()
        );
        // The run's own commit created the lead: what it answers is asked
        // afresh, and nothing else is.
        run.parties_added(&["Pat@B.example".to_string()]);
        assert_eq!(
            found(
                run.find_by_address("t", " PAT@b.example", 10)
                    .await
                    .unwrap()
            ),
            ["pat@b.example"],
            "an uncached spelling asks the directory"
        );
        assert_eq!(
            found(run.find_by_address("t", "pat@b.example", 10).await.unwrap()),
            ["pat@b.example"]
        );
        assert_eq!(
            found(run.find_by_domain("t", "b.example", 10).await.unwrap()),
            ["pat@b.example"]
        );
        assert_eq!(
            found(run.find_by_domain("t", "a.example", 10).await.unwrap()),
            ["known@a.example", "other@a.example"],
            "never asked before"
        );
        // A look-up is per tenant.
        assert!(
            run.find_by_address("u", "pat@b.example", 10)
                .await
                .unwrap()
                .parties
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_run_directory_answers_for_batches_not_yet_committed() {
        let inner = Arc::new(crate::directory::MemoryDirectory::new());
        let run = RunDirectory::new(inner);
        run.remember("t", 0, "a@x".into(), vec![lead("pat@b.example")]);
        run.remember("t", 1, "b@x".into(), vec![lead("ann@b.example")]);
        assert_eq!(
            run.parties_for_message_id("t", "a@x", 5)
                .await
                .unwrap()
                .parties
                .len(),
            1
        );
        run.forget(0);
        assert!(
            run.parties_for_message_id("t", "a@x", 5)
                .await
                .unwrap()
                .parties
                .is_empty()
        );
        assert_eq!(
            run.parties_for_message_id("t", "b@x", 5)
                .await
                .unwrap()
                .parties
                .len(),
            1
        );
        assert!(
            run.parties_for_message_id("u", "b@x", 5)
                .await
                .unwrap()
                .parties
                .is_empty()
        );
    }
}
