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
        #[command(flatten)]
        secret: SecretSource,
    },
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
        CredentialCommand::Add { name, user, secret } => {
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
            writeln!(out, "{:<20} {:<30} CREATED", "NAME", "USER")?;
            for i in store.credentials(tenant).await? {
                writeln!(
                    out,
                    "{:<20} {:<30} {}",
                    safe(&i.name),
                    safe(&i.username),
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
