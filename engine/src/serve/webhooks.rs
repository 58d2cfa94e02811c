//! Webhook delivery: the task of `intake serve` that sends the outbox's
//! deliveries to the tenants' endpoints, at least once, signed the
//! [Standard Webhooks](https://www.standardwebhooks.com/) way.
//!
//! Each request is a `POST` of the event's JSON with `content-type:
//! application/json`, `webhook-id` (the event id, the same on every retry,
//! for receivers to dedupe by), `webhook-timestamp` (unix seconds of this
//! attempt) and `webhook-signature: v1,<base64 of HMAC-SHA256 over
//! "{id}.{timestamp}.{body}" keyed with the base64-decoded secret>`
//! ([`sign`]). A 2xx is success; anything else (redirects are not
//! followed), a timeout or a refused connection is a failure, retried after
//! [`WebhookConfig::first_retry`] doubling to [`WebhookConfig::max_retry`]
//! (±20 % jitter) until [`WebhookConfig::give_up`] after the event was
//! committed (or redelivered); then the delivery is dead.
//!
//! **One unit of work:** claim up to 16 rounds of an endpoint's slots of
//! its due deliveries (a lease in the store; `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so several workers never send one delivery at once), send
//! each on a task of its own as slots free up, record finished attempts in
//! one transaction. A worker that dies leaves its claims to the lease's
//! expiry (16 rounds of the timeout, plus a margin); a restarted process
//! on the same machine takes over those of a dead predecessor at once. At most
//! [`WebhookConfig::concurrency`] requests are in flight, and at most
//! [`WebhookConfig::per_endpoint`] to one endpoint, each bounded by
//! [`WebhookConfig::timeout`]: a slow or dead endpoint holds only its own
//! slots. [`WebhookConfig::failing_after`] failures in a row mark an
//! endpoint `failing` (a success makes it `ok`); its deliveries go on with
//! backoff.
//!
//! The loop wakes when a commit of this process wrote events, when a
//! request finishes, and otherwise polls every [`WebhookConfig::poll`].
//!
//! **Private networks.** Unless the operator allows them, a destination on
//! a loopback, private or link-local address is refused: the literal in the
//! URL is checked before sending, and names are resolved by a resolver that
//! drops such addresses (so a name that points inside is refused too).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::service::policy::chrono_duration;
use crate::service::webhooks::is_private_address;
use crate::store::webhooks::{AttemptNext, AttemptRecord, ClaimedDelivery, EndpointTarget};
use crate::store::{EndpointState, MasterKey, Store, WebhookEndpointId};

/// How webhooks are delivered; part of [`super::ServeConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The wait after the first failed attempt (default 5 s); it doubles.
    pub first_retry: Duration,
    /// The longest wait between attempts (default 1 h).
    pub max_retry: Duration,
    /// Retries stop this long after the event (or its redelivery): the
    /// delivery is dead-lettered (default 24 h).
    pub give_up: Duration,
    /// Limit on one request, connection included (default 10 s).
    pub timeout: Duration,
    /// Requests in flight at once, over all endpoints (default 32).
    pub concurrency: usize,
    /// Requests in flight at once to one endpoint (default 4).
    pub per_endpoint: usize,
    /// Failed attempts in a row that mark an endpoint failing (default 5).
    pub failing_after: u32,
    /// How often the store is asked for due deliveries when nothing wakes
    /// the loop (default 1 s).
    pub poll: Duration,
    /// Allow loopback, private and link-local destinations.
    pub allow_private_networks: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(3600),
            give_up: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
            concurrency: 32,
            per_endpoint: 4,
            failing_after: 5,
            poll: Duration::from_secs(1),
            allow_private_networks: false,
        }
    }
}

impl WebhookConfig {
    /// Refuses settings that cannot work, with what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.first_retry.is_zero() || self.max_retry < self.first_retry {
            return Err(
                "--webhook-retry-secs must be positive and at most --webhook-retry-max-secs".into(),
            );
        }
        if self.give_up.is_zero() {
            return Err("--webhook-give-up-secs must be positive".into());
        }
        if self.timeout.is_zero() {
            return Err("--webhook-timeout-secs must be positive".into());
        }
        if self.concurrency == 0 || self.per_endpoint == 0 {
            return Err(
                "--webhook-concurrency and --webhook-per-endpoint must be at least 1".into(),
            );
        }
        if self.poll.is_zero() {
            return Err("the webhook poll interval must be positive".into());
        }
        Ok(())
    }

    /// The wait after `failures` failed attempts in a row (1 = the first),
    /// with `unit` ∈ [0, 1) picking the jitter (±20 %).
    pub fn retry_delay(&self, failures: u32, unit: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let base = self
            .first_retry
            .saturating_mul(1u32 << doublings)
            .min(self.max_retry);
        base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
            .min(self.max_retry)
    }

    /// What follows a failed attempt, the `failures`-th of the delivery,
    /// ended at `now`: another try, or — past the give-up time counted
    /// from `retry_from` — the dead letter.
    pub fn after_failure(
        &self,
        failures: u32,
        retry_from: DateTime<Utc>,
        now: DateTime<Utc>,
        unit: f64,
    ) -> AttemptNext {
        let at = now + chrono_duration(self.retry_delay(failures, unit));
        if at > retry_from + chrono_duration(self.give_up) {
            AttemptNext::Dead
        } else {
            AttemptNext::RetryAt(at)
        }
    }
}

/// Why a body could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The secret is not `whsec_` and base64.
    #[error("the endpoint's secret is not a whsec_ base64 secret")]
    BadSecret,
}

/// The `webhook-signature` value for `body` sent as event `id` at
/// `timestamp` (unix seconds): `v1,` and the base64 of HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, keyed with the secret's decoded bytes.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = BASE64.decode(encoded).map_err(|_| SignError::BadSecret)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|_| SignError::BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// Resolves names as the system does, then drops loopback, private and
/// link-local addresses: a name that points only inside is refused.
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| !is_private_address(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves only to loopback, private or link-local addresses \
                     (refused; see --webhook-allow-private-networks)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the webhook HTTP client: {0}")]
pub struct ClientError(#[source] reqwest::Error);

/// The client every delivery uses: no redirects, no proxy from the
/// environment, the request timeout, rustls, and the private-network guard.
pub fn client(config: &WebhookConfig) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .no_proxy()
        .pool_max_idle_per_host(config.per_endpoint)
        .user_agent(concat!("intake-webhooks/", env!("CARGO_PKG_VERSION")));
    if !config.allow_private_networks {
        builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
    }
    builder.build().map_err(ClientError)
}

/// Describes the delivery metrics (once the recorder is installed).
fn describe_metrics() {
    metrics::describe_counter!(
        "intake_webhook_deliveries_total",
        "Webhook delivery attempts, by result (delivered, failed: will retry, dead: gave up)"
    );
    metrics::describe_gauge!(
        "intake_webhook_deliveries_pending",
        "Webhook deliveries waiting to be delivered (over all tenants)"
    );
}

/// The delivery loop of one process.
pub struct Deliverer {
    store: Store,
    key: Option<MasterKey>,
    config: WebhookConfig,
    client: reqwest::Client,
    /// The lease owner (this worker's id).
    owner: String,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("config", &self.config)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// How long an endpoint whose secret cannot be opened is left alone.
const BROKEN_ENDPOINT_PAUSE: Duration = Duration::from_secs(60);
/// How often the pending gauge is refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// Most endpoints looked at per round.
const ENDPOINTS_PER_ROUND: u64 = 256;
/// An endpoint's claim is this many rounds of its slots.
const CLAIM_ROUNDS: usize = 16;

/// Deliveries of one endpoint this loop holds.
struct EndpointQueue {
    /// Where they go.
    target: Arc<EndpointTarget>,
    /// Claimed, not started yet (oldest first).
    waiting: VecDeque<ClaimedDelivery>,
    /// Requests in flight.
    in_flight: usize,
}

/// What the loop holds between rounds.
#[derive(Default)]
struct LoopState {
    /// Per endpoint, its claimed deliveries.
    queues: HashMap<WebhookEndpointId, EndpointQueue>,
    /// Requests in flight over all endpoints.
    total: usize,
    /// Endpoints left alone for a while (secret cannot be opened).
    paused: HashMap<WebhookEndpointId, Instant>,
}

impl LoopState {
    /// A request of `endpoint` finished.
    fn finished(&mut self, endpoint: WebhookEndpointId) {
        self.total = self.total.saturating_sub(1);
        if let Some(q) = self.queues.get_mut(&endpoint) {
            q.in_flight = q.in_flight.saturating_sub(1);
            if q.in_flight == 0 && q.waiting.is_empty() {
                self.queues.remove(&endpoint);
            }
        }
    }

    /// Starts queued deliveries within the limits; true when a queue ran
    /// dry (its endpoint may have more in the store).
    fn start_queued(
        &mut self,
        deliverer: &Arc<Deliverer>,
        tasks: &TaskTracker,
        done: &mpsc::UnboundedSender<AttemptRecord>,
    ) -> bool {
        let mut drained = false;
        let (concurrency, per_endpoint) =
            (deliverer.config.concurrency, deliverer.config.per_endpoint);
        for (endpoint, queue) in &mut self.queues {
            while self.total < concurrency && queue.in_flight < per_endpoint {
                let Some(delivery) = queue.waiting.pop_front() else {
                    break;
                };
                queue.in_flight += 1;
                self.total += 1;
                if queue.waiting.is_empty() {
                    drained = true;
                }
                let this = deliverer.clone();
                let target = queue.target.clone();
                let done = done.clone();
                let span = tracing::info_span!(
                    "webhook.deliver",
                    tenant = %target.tenant,
                    endpoint = %endpoint,
                    event = %delivery.event.event_id,
                    attempt = delivery.attempts + 1,
                );
                tasks.spawn(
                    async move {
                        let record = this.attempt(&target, &delivery).await;
                        let _ = done.send(record);
                    }
                    .instrument(span),
                );
            }
        }
        drained
    }
}

impl Deliverer {
    /// A loop over `store`, opening secrets with `key`, leasing as `owner`.
    pub fn new(
        store: Store,
        key: Option<MasterKey>,
        config: WebhookConfig,
        owner: String,
    ) -> Result<Self, ClientError> {
        let client = client(&config)?;
        Ok(Deliverer {
            store,
            key,
            config,
            client,
            owner,
        })
    }

    /// How many deliveries of one endpoint are claimed at a time: a few
    /// rounds of its slots, so a backlog costs one claim per that many.
    fn claim_size(&self) -> usize {
        self.config.per_endpoint * CLAIM_ROUNDS
    }

    /// How long a claim holds: the rounds of requests a claim waits for,
    /// and recording them, with room.
    fn lease(&self) -> Duration {
        self.config.timeout * (CLAIM_ROUNDS as u32 + 2) + Duration::from_secs(30)
    }

    /// Runs until `shutdown`; requests in flight then finish (each within
    /// the timeout) and are recorded, and this worker's other leases
    /// (claimed, not started) are given back.
    pub async fn run(self, shutdown: CancellationToken) {
        describe_metrics();
        let this = Arc::new(self);
        let tasks = TaskTracker::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<AttemptRecord>();
        this.take_over_dead_local_workers().await;
        let mut loop_state = LoopState::default();
        let mut finished: Vec<AttemptRecord> = Vec::new();
        let mut gauge_at: Option<Instant> = None;
        // Ask the store at once.
        let mut look = true;
        let mut looked_at = Instant::now();
        loop {
            while let Ok(record) = done_rx.try_recv() {
                finished.push(record);
            }
            if !finished.is_empty() {
                for r in &finished {
                    loop_state.finished(r.endpoint);
                }
                this.record(&finished).await;
                finished.clear();
            }
            if shutdown.is_cancelled() {
                if loop_state.total == 0 {
                    break;
                }
            } else {
                if gauge_at.is_none_or(|t| t.elapsed() >= GAUGE_EVERY) {
                    gauge_at = Some(Instant::now());
                    match this.store.pending_webhook_deliveries().await {
                        Ok(n) => metrics::gauge!("intake_webhook_deliveries_pending").set(n as f64),
                        Err(e) => tracing::warn!("webhooks: cannot count pending deliveries: {e}"),
                    }
                }
                loop_state.paused.retain(|_, until| *until > Instant::now());
                // A queue that ran dry may have more waiting in the store.
                look |= loop_state.start_queued(&this, &tasks, &done_tx);
                if look && loop_state.total < this.config.concurrency {
                    look = false;
                    looked_at = Instant::now();
                    this.claim_due(&mut loop_state).await;
                    loop_state.start_queued(&this, &tasks, &done_tx);
                }
            }
            let next_look = this.config.poll.saturating_sub(looked_at.elapsed());
            tokio::select! {
                Some(record) = done_rx.recv() => finished.push(record),
                () = this.store.webhook_events_written(), if !shutdown.is_cancelled() => look = true,
                () = tokio::time::sleep(next_look) => look = true,
                () = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
            }
        }
        tasks.close();
        tasks.wait().await;
        if let Err(e) = this.store.release_webhook_leases(&this.owner).await {
            tracing::warn!("webhooks: cannot give back the leases: {e}");
        }
    }

    /// Frees the deliveries claimed by a process of this machine that no
    /// longer runs (killed), instead of waiting for their leases to run
    /// out; other machines' leases are left to expire.
    async fn take_over_dead_local_workers(&self) {
        let owners = match self.store.webhook_lease_owners().await {
            Ok(owners) => owners,
            Err(e) => {
                tracing::warn!("webhooks: cannot read the delivery leases: {e}");
                return;
            }
        };
        for owner in owners {
            if crate::service::is_dead_local_worker(&owner) {
                match self.store.release_webhook_leases(&owner).await {
                    Ok(()) => {
                        tracing::info!(stale = %owner, "took over the webhook deliveries of a dead process")
                    }
                    Err(e) => {
                        tracing::warn!("webhooks: cannot free a dead process's deliveries: {e}")
                    }
                }
            }
        }
    }

    /// Claims due deliveries of endpoints without a local queue into
    /// their queues.
    async fn claim_due(&self, state: &mut LoopState) {
        let skip: Vec<WebhookEndpointId> = state
            .queues
            .iter()
            .filter(|(_, q)| !q.waiting.is_empty())
            .map(|(e, _)| *e)
            .chain(state.paused.keys().copied())
            .collect();
        let due = match self
            .store
            .due_webhook_endpoints(Utc::now(), &skip, ENDPOINTS_PER_ROUND)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!("webhooks: cannot read due deliveries: {e}");
                return;
            }
        };
        for endpoint in due {
            let target = match &self.key {
                Some(key) => self.store.webhook_target(endpoint, key).await,
                None => Err(crate::store::Error::Key(crate::store::KeyError::Missing)),
            };
            let target = match target {
                Ok(Some(target)) => Arc::new(target),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint, "webhooks: cannot open the endpoint's secret: {e}");
                    state
                        .paused
                        .insert(endpoint, Instant::now() + BROKEN_ENDPOINT_PAUSE);
                    continue;
                }
            };
            let until = Utc::now() + chrono_duration(self.lease());
            match self
                .store
                .claim_webhook_deliveries(endpoint, &self.owner, until, self.claim_size() as u64)
                .await
            {
                Ok(claimed) if !claimed.is_empty() => {
                    let queue = state
                        .queues
                        .entry(endpoint)
                        .or_insert_with(|| EndpointQueue {
                            target: target.clone(),
                            waiting: VecDeque::new(),
                            in_flight: 0,
                        });
                    queue.target = target;
                    queue.waiting.extend(claimed);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint, "webhooks: cannot claim deliveries: {e}")
                }
            }
        }
    }

    /// Sends one delivery once.
    async fn attempt(&self, target: &EndpointTarget, delivery: &ClaimedDelivery) -> AttemptRecord {
        let outcome = self.send(target, delivery).await;
        let at = Utc::now();
        let (status, error) = match outcome {
            Ok(status) => (Some(status), None),
            Err((status, error)) => (status, Some(error)),
        };
        let next = match &error {
            None => AttemptNext::Delivered,
            Some(_) => self.config.after_failure(
                delivery.attempts + 1,
                delivery.retry_from,
                at,
                crate::service::unit_random(),
            ),
        };
        match (&next, &error) {
            (AttemptNext::Delivered, _) => tracing::debug!("delivered"),
            (AttemptNext::RetryAt(when), Some(e)) => {
                tracing::info!(retry_at = %when, "delivery failed: {e}")
            }
            (_, e) => tracing::warn!(
                "delivery failed and retries gave up (dead-lettered): {}",
                e.as_deref().unwrap_or("")
            ),
        }
        AttemptRecord {
            delivery: delivery.id,
            endpoint: target.id,
            at,
            status,
            error,
            next,
        }
    }

    /// The request: the 2xx status, or `Err((status, why))` on any
    /// failure.
    async fn send(
        &self,
        target: &EndpointTarget,
        delivery: &ClaimedDelivery,
    ) -> Result<u16, (Option<u16>, String)> {
        let url = reqwest::Url::parse(&target.url).map_err(|e| (None, format!("bad URL: {e}")))?;
        if !self.config.allow_private_networks {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(is_private_address) {
                return Err((
                    None,
                    "refused: a loopback, private or link-local address \
                     (see --webhook-allow-private-networks)"
                        .into(),
                ));
            }
        }
        let timestamp = Utc::now().timestamp();
        let body = delivery.event.payload.clone();
        let signature = sign(
            target.secret.expose(),
            &delivery.event.event_id,
            timestamp,
            body.as_bytes(),
        )
        .map_err(|e| (None, e.to_string()))?;
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.event.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| (None, describe(&e, self.config.timeout)))?;
        let status = response.status();
        // Read a little of the body so the connection can be reused; what
        // the receiver says is not kept.
        let mut response = response;
        let mut read = 0usize;
        while read < 64 * 1024 {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        if status.is_success() {
            Ok(status.as_u16())
        } else if status.is_redirection() {
            Err((
                Some(status.as_u16()),
                format!("HTTP {status} (redirects are not followed)"),
            ))
        } else {
            Err((Some(status.as_u16()), format!("HTTP {status}")))
        }
    }

    /// Records finished attempts and counts them. A failure to record is
    /// logged: those deliveries' leases run out and they are sent again
    /// (at least once).
    async fn record(&self, finished: &[AttemptRecord]) {
        for r in finished {
            let result = match r.next {
                AttemptNext::Delivered => "delivered",
                AttemptNext::RetryAt(_) => "failed",
                AttemptNext::Dead => "dead",
            };
            metrics::counter!("intake_webhook_deliveries_total", "result" => result).increment(1);
        }
        match self
            .store
            .record_webhook_attempts(finished, self.config.failing_after)
            .await
        {
            Ok(transitions) => {
                for t in transitions {
                    match t.state {
                        EndpointState::Failing => tracing::warn!(
                            endpoint = %t.endpoint,
                            "webhook endpoint marked failing ({} failed attempts in a row)",
                            self.config.failing_after
                        ),
                        EndpointState::Ok => {
                            tracing::info!(endpoint = %t.endpoint, "webhook endpoint ok again")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(
                "webhooks: cannot record {} attempts (they will be sent again): {e}",
                finished.len()
            ),
        }
    }
}

/// A client error in words, without the URL (it may carry a token).
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {} s", timeout.as_secs());
    }
    let mut text = if error.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference libraries' test vector.
    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        let signature = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(sign("whsec_not base64!", "id", 1, b"{}").is_err());
    }

    #[test]
    fn retries_double_up_to_the_cap_then_give_up() {
        let config = WebhookConfig::default();
        assert_eq!(config.retry_delay(1, 0.5), Duration::from_secs(5));
        assert_eq!(config.retry_delay(2, 0.5), Duration::from_secs(10));
        assert_eq!(config.retry_delay(4, 0.5), Duration::from_secs(40));
        assert_eq!(config.retry_delay(30, 0.5), Duration::from_secs(3600));
        assert_eq!(config.retry_delay(30, 0.99), Duration::from_secs(3600));
        let low = config.retry_delay(3, 0.0);
        let high = config.retry_delay(3, 0.999);
        assert!(low >= Duration::from_secs(16) && high < Duration::from_secs(25));
        let created = Utc::now();
        assert!(matches!(
            config.after_failure(1, created, created, 0.5),
            AttemptNext::RetryAt(_)
        ));
        let late = created + chrono::Duration::hours(23) + chrono::Duration::minutes(30);
        assert_eq!(
            config.after_failure(20, created, late, 0.5),
            AttemptNext::Dead
        );
    }
}
