//! `intake webhook`: the tenant's webhook endpoints (add, list, edit,
//! remove, rotate the secret) and their deliveries (list, redeliver), all
//! through the service layer, as the HTTP API does.

use super::*;
use crate::service::Scope;
use crate::service::Service;
use crate::service::webhooks::{WebhookInput, WebhookPolicy};
use crate::store::{
    DeliveryQuery, DeliveryState, EndpointChanges, WebhookDeliveryId, WebhookEndpointId,
};

#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Register an endpoint; prints its signing secret, once.
    Add {
        /// Where events are POSTed (http or https).
        url: String,
        /// An event type to send (repeatable; default: all): message.stored,
        /// lead.created, message.quarantined, account.disabled,
        /// account.recovered, or *.
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        /// Allow a loopback, private or link-local destination.
        #[arg(long, env = "INTAKE_WEBHOOK_ALLOW_PRIVATE_NETWORKS")]
        allow_private_networks: bool,
    },
    /// The tenant's endpoints (never their secrets).
    List,
    /// Change an endpoint (only the options given).
    Edit {
        /// The endpoint's id.
        id: i64,
        /// A new URL.
        #[arg(long)]
        url: Option<String>,
        /// New event types (repeatable; `*` for all).
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// Switch it on (true) or off (false).
        #[arg(long)]
        enabled: Option<bool>,
        /// A new description (empty clears it).
        #[arg(long)]
        description: Option<String>,
        /// Allow a loopback, private or link-local destination.
        #[arg(long, env = "INTAKE_WEBHOOK_ALLOW_PRIVATE_NETWORKS")]
        allow_private_networks: bool,
    },
    /// Remove an endpoint and its deliveries.
    Remove {
        /// The endpoint's id.
        id: i64,
    },
    /// Give an endpoint a new signing secret; prints it, once.
    RotateSecret {
        /// The endpoint's id.
        id: i64,
    },
    /// Deliveries, newest first.
    Deliveries {
        /// Only dead-lettered ones (retries gave up).
        #[arg(long, conflicts_with = "state")]
        dead: bool,
        /// Only in this state: pending, delivered or dead.
        #[arg(long)]
        state: Option<String>,
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<i64>,
        /// Only older than this delivery id (the next page).
        #[arg(long)]
        before: Option<i64>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Send a dead (or delivered) delivery again, or every dead delivery of
    /// an endpoint (`--endpoint ID --dead`).
    Redeliver {
        /// The delivery's id.
        #[arg(required_unless_present = "endpoint", conflicts_with = "endpoint")]
        id: Option<i64>,
        /// The endpoint whose dead deliveries to send again.
        #[arg(long, requires = "dead")]
        endpoint: Option<i64>,
        /// With --endpoint: its dead deliveries.
        #[arg(long)]
        dead: bool,
    },
}

pub(crate) async fn webhook(
    c: &Config,
    cmd: WebhookCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        WebhookCommand::List | WebhookCommand::Deliveries { .. } => OpenMode::Existing,
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    let service = Service::admin(store.clone());
    let scope = Scope::local(tenant, &c.tenant);
    match cmd {
        WebhookCommand::Add {
            url,
            events,
            description,
            allow_private_networks,
        } => {
            let key = master_key_for_storing(c, &store).await?;
            let service = service
                .with_master_key(key)
                .with_webhook_policy(WebhookPolicy {
                    allow_private_networks,
                });
            let created = service
                .create_webhook(
                    &scope,
                    &WebhookInput {
                        url,
                        event_types: events,
                        description,
                        enabled: true,
                    },
                )
                .await?;
            writeln!(
                out,
                "added webhook {} -> {}",
                created.endpoint.id,
                safe(&created.endpoint.url)
            )?;
            writeln!(out, "secret: {}", created.secret.expose())?;
            eprintln!(
                "the secret is shown this once: keep it where the receiver verifies signatures \
                 (`intake webhook rotate-secret {}` makes a new one)",
                created.endpoint.id
            );
        }
        WebhookCommand::List => {
            writeln!(
                out,
                "{:<5} {:<8} {:<8} {:<40} {:<30} DESCRIPTION",
                "ID", "STATE", "ENABLED", "URL", "EVENTS"
            )?;
            for e in service.webhooks(&scope).await? {
                let events = if e.event_types.is_empty() {
                    "*".to_string()
                } else {
                    e.event_types.join(",")
                };
                let state = match (e.state, e.consecutive_failures) {
                    (crate::store::EndpointState::Ok, _) => "ok".to_string(),
                    (crate::store::EndpointState::Failing, n) => format!("failing({n})"),
                };
                writeln!(
                    out,
                    "{:<5} {:<8} {:<8} {:<40} {:<30} {}",
                    e.id,
                    state,
                    if e.enabled { "yes" } else { "no" },
                    clip(&e.url, 40),
                    clip(&events, 30),
                    safe_opt(e.description.as_deref())
                )?;
            }
        }
        WebhookCommand::Edit {
            id,
            url,
            events,
            enabled,
            description,
            allow_private_networks,
        } => {
            let changes = EndpointChanges {
                url,
                event_types: (!events.is_empty()).then_some(events),
                enabled,
                description: description.map(|d| Some(d).filter(|d| !d.trim().is_empty())),
            };
            if changes.url.is_none()
                && changes.event_types.is_none()
                && changes.enabled.is_none()
                && changes.description.is_none()
            {
                bail!("nothing to change: give --url, --event, --enabled or --description");
            }
            let e = service
                .with_webhook_policy(WebhookPolicy {
                    allow_private_networks,
                })
                .update_webhook(&scope, WebhookEndpointId(id), &changes)
                .await?;
            writeln!(out, "changed webhook {} -> {}", e.id, safe(&e.url))?;
        }
        WebhookCommand::Remove { id } => {
            service
                .delete_webhook(&scope, WebhookEndpointId(id))
                .await?;
            writeln!(out, "removed webhook {id}")?;
        }
        WebhookCommand::RotateSecret { id } => {
            let key = master_key_for_storing(c, &store).await?;
            let secret = service
                .with_master_key(key)
                .rotate_webhook_secret(&scope, WebhookEndpointId(id))
                .await?;
            writeln!(out, "secret: {}", secret.expose())?;
        }
        WebhookCommand::Deliveries {
            dead,
            state,
            endpoint,
            before,
            limit,
        } => {
            let state = match (dead, state) {
                (true, _) => Some(DeliveryState::Dead),
                (false, Some(s)) => Some(DeliveryState::parse(s.trim())?),
                (false, None) => None,
            };
            let query = DeliveryQuery {
                endpoint: endpoint.map(WebhookEndpointId),
                state,
                before: before.map(WebhookDeliveryId),
                limit,
            };
            writeln!(
                out,
                "{:<7} {:<8} {:<30} {:<20} {:<9} {:<8} {:<6} {:<16} ERROR",
                "ID", "ENDPOINT", "EVENT", "TYPE", "STATE", "ATTEMPTS", "HTTP", "NEXT"
            )?;
            for d in service.webhook_deliveries(&scope, &query).await? {
                writeln!(
                    out,
                    "{:<7} {:<8} {:<30} {:<20} {:<9} {:<8} {:<6} {:<16} {}",
                    d.id,
                    d.endpoint,
                    d.event_id,
                    d.event_type,
                    d.state.as_str(),
                    d.attempts,
                    d.last_status.map_or("-".to_string(), |s| s.to_string()),
                    d.next_attempt_at
                        .map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
                    safe_opt(d.last_error.as_deref())
                )?;
            }
        }
        WebhookCommand::Redeliver { id, endpoint, .. } => match (id, endpoint) {
            (Some(id), _) => {
                let d = service
                    .redeliver_webhook(&scope, WebhookDeliveryId(id))
                    .await?;
                writeln!(out, "delivery {} of {} is pending again", d.id, d.event_id)?;
            }
            (None, Some(endpoint)) => {
                let n = service
                    .redeliver_dead_webhooks(&scope, WebhookEndpointId(endpoint))
                    .await?;
                writeln!(
                    out,
                    "{n} dead deliveries of webhook {endpoint} are pending again"
                )?;
            }
            (None, None) => bail!("give a delivery id, or --endpoint ID --dead"),
        },
    }
    Ok(ExitCode::SUCCESS)
}
