//! `intake tenant` and `intake token`: tenants of a hosted engine and the
//! API tokens that reach them. Whoever can open the store is the operator
//! here, so these need no admin credential; the HTTP API's tenant routes
//! need one.

use super::*;
use crate::service::{Principal, Scope, Service};
use crate::store::TokenScope;

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant (new tenants start with the bundled plugin chain).
    Add {
        /// Its name: letters, digits, `-`, `_` or `.`.
        name: String,
    },
    /// Every tenant.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue an API token for the tenant (`--tenant`); it is printed once.
    Create {
        /// A name to recognise it by.
        name: String,
        /// read, write or admin.
        #[arg(long, default_value = "read")]
        scope: String,
    },
    /// The tenant's tokens (never their secrets).
    List,
    /// Revoke a token: refused from the next request on.
    Revoke {
        /// Its id (see `intake token list`).
        id: i64,
    },
}

pub(crate) async fn tenant(
    c: &Config,
    cmd: TenantCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        TenantCommand::Add { .. } => OpenMode::Create,
        TenantCommand::List => OpenMode::Existing,
    };
    let store = Store::open(&c.store, mode).await?;
    let service = Service::admin(store.clone()).with_plugin_dir(c.plugin_dir.clone());
    match cmd {
        TenantCommand::Add { name } => {
            eprintln!("store: {}", c.store.display());
            service.create_tenant(&Principal::Operator, &name).await?;
            writeln!(out, "added tenant {name}")?;
        }
        TenantCommand::List => {
            for t in service.tenant_list(&Principal::Operator).await? {
                writeln!(out, "{}", safe(&t.name))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn token(
    c: &Config,
    cmd: TokenCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        TokenCommand::List => OpenMode::Existing,
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    let scope = Scope::local(tenant, &c.tenant);
    let service = Service::admin(store);
    match cmd {
        TokenCommand::Create {
            name,
            scope: access,
        } => {
            let access = TokenScope::parse(&access)
                .with_context(|| format!("--scope {access:?}: expected read, write or admin"))?;
            let issued = service.create_token(&scope, &name, access).await?;
            eprintln!(
                "token {} ({}) for tenant {}: shown once, store it now",
                issued.info.id,
                access.as_str(),
                c.tenant
            );
            writeln!(out, "{}", issued.token)?;
        }
        TokenCommand::List => {
            writeln!(
                out,
                "{:<5} {:<24} {:<6} {:<20} {:<17} {:<17} REVOKED",
                "ID", "NAME", "SCOPE", "PREFIX", "CREATED", "LAST USED"
            )?;
            let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "-".into())
            };
            for t in service.tokens(&scope).await? {
                writeln!(
                    out,
                    "{:<5} {:<24} {:<6} {:<20} {:<17} {:<17} {}",
                    t.id,
                    clip(&t.name, 24),
                    t.scope.as_str(),
                    t.prefix,
                    at(Some(t.created_at)),
                    at(t.last_used_at),
                    at(t.revoked_at)
                )?;
            }
        }
        TokenCommand::Revoke { id } => {
            service.revoke_token(&scope, id).await?;
            writeln!(out, "revoked token {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
