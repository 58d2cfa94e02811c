//! `intake credential`: stored secrets, sealed with the master key; add, set (rotate), list, remove.

use super::*;

/// Where a secret comes from: never an argument (shell history, `ps`).
#[derive(Debug, Args)]
pub(crate) struct SecretSource {
    /// Read the secret from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "secret_stdin")]
    secret_env: Option<String>,
    /// Read the secret from the first line of standard input.
    #[arg(long)]
    secret_stdin: bool,
}

impl SecretSource {
    fn read(&self) -> anyhow::Result<Secret> {
        read_secret(self.secret_env.as_deref(), self.secret_stdin, "secret")
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum CredentialCommand {
    /// Store a credential, encrypted with the master key. The secret comes
    /// from --secret-env, --secret-stdin, or a prompt on a terminal.
    Add {
        /// Credential name (accounts refer to it).
        name: String,
        /// User name.
        #[arg(long)]
        user: String,
        /// The secret is an OAuth2 refresh token this provider issued
        /// (`intake oauth list`), not a password; accounts using the
        /// credential sign in with XOAUTH2 (or OAUTHBEARER).
        #[arg(long, value_name = "PROVIDER")]
        oauth_provider: Option<String>,
        #[command(flatten)]
        secret: SecretSource,
    },
    /// Sign in with an OAuth2 provider ("Sign in with Google / Microsoft"):
    /// prints the address to open in a browser, waits for the provider to
    /// send the browser back to a one-shot listener on 127.0.0.1, and
    /// stores the refresh token encrypted as the credential NAME. Also
    /// re-authorizes a credential whose grant was revoked, and switches its
    /// disabled accounts back on.
    Authorize(super::Authorize),
    /// Change a stored credential in place (a password change): the accounts
    /// that use it use the new secret from their next run. The secret comes
    /// from --secret-env, --secret-stdin, or a prompt on a terminal.
    Set {
        /// Credential name.
        name: String,
        /// A new user name (default: keep the current one).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        secret: SecretSource,
    },
    /// Names and user names (never secrets).
    List,
    /// Remove a credential no account uses.
    Remove {
        /// Credential name.
        name: String,
    },
}

pub(crate) async fn credential(
    c: &Config,
    cmd: CredentialCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let mode = match cmd {
        CredentialCommand::List => OpenMode::Existing,
        _ => OpenMode::Create,
    };
    let (store, tenant) = open(c, mode).await?;
    match cmd {
        CredentialCommand::Add {
            name,
            user,
            oauth_provider: Some(provider),
            secret,
        } => {
            let refresh = secret.read()?;
            let key = master_key_for_storing(c, &store).await?;
            if store
                .credentials(tenant)
                .await?
                .iter()
                .any(|i| i.name == name)
            {
                bail!(
                    "credential {name} exists: to sign it in again, use `intake credential authorize {name}`"
                );
            }
            store
                .put_oauth_credential(tenant, &name, &user, &provider, &refresh, None, &key)
                .await?;
            writeln!(
                out,
                "stored credential {name} (OAuth2 refresh token for {provider}, encrypted)"
            )?;
        }
        CredentialCommand::Authorize(args) => {
            drop(store);
            return super::authorize(c, args, out).await;
        }
        CredentialCommand::Add {
            name,
            user,
            oauth_provider: None,
            secret,
        } => {
            let secret = secret.read()?;
            let key = master_key_for_storing(c, &store).await?;
            store
                .add_credential(tenant, &name, &user, &secret, &key)
                .await
                .map_err(|e| match e {
                    crate::store::Error::AlreadyExists { .. } => anyhow::Error::from(e).context(
                        format!("to change its secret, use `intake credential set {name}`"),
                    ),
                    e => e.into(),
                })?;
            writeln!(out, "stored credential {name} (encrypted)")?;
        }
        CredentialCommand::Set { name, user, secret } => {
            let current = store
                .credentials(tenant)
                .await?
                .into_iter()
                .find(|i| i.name == name)
                .with_context(|| {
                    format!("no credential {name:?}: add it with `intake credential add {name}`")
                })?;
            let secret = secret.read()?;
            let key = c.master_key()?;
            let user = user.unwrap_or(current.username);
            store
                .update_credential(tenant, &name, &user, &secret, &key)
                .await?;
            writeln!(
                out,
                "changed credential {name} (encrypted); accounts using it take it from their next run"
            )?;
        }
        CredentialCommand::List => {
            writeln!(out, "{:<20} {:<30} {:<16} CREATED", "NAME", "USER", "KIND")?;
            for i in store.credentials(tenant).await? {
                let kind = match &i.oauth_provider {
                    Some(p) => format!("oauth2:{}", safe(p)),
                    None => "password".into(),
                };
                writeln!(
                    out,
                    "{:<20} {:<30} {:<16} {}",
                    safe(&i.name),
                    safe(&i.username),
                    kind,
                    i.created_at.format("%Y-%m-%d %H:%M")
                )?;
            }
        }
        CredentialCommand::Remove { name } => {
            store.remove_credential(tenant, &name).await?;
            writeln!(out, "removed credential {name}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
