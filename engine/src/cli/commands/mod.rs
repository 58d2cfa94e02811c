//! The commands that work on the store: accounts, credentials, contacts,
//! the tenant's plugin chain, fetch and import, serve, inbox, messages and
//! quarantine, tenants and API tokens, webhooks, OAuth2 providers and
//! sign-in, and the master key. Each
//! one opens the store of its
//! [`Config`] (by default `intake.db` in the data directory) for `--tenant`:
//! a command that changes data may create it, and names it on stderr; a
//! command that only reads never creates one.
//!
//! One module per command; the helpers they share (opening the store, the
//! master key) are here.

mod accounts;
mod contacts;
mod credentials;
mod discover;
mod inbox;
mod ingest;
mod key;
mod oauth;
mod plugins;
mod quarantine;
mod replay;
mod serve;
mod tokens;
mod webhooks;

pub(crate) use accounts::*;
pub(crate) use contacts::*;
pub(crate) use credentials::*;
pub(crate) use discover::*;
pub(crate) use inbox::*;
pub(crate) use ingest::*;
pub(crate) use key::*;
pub(crate) use oauth::*;
pub(crate) use plugins::*;
pub(crate) use quarantine::*;
pub(crate) use replay::*;
pub(crate) use serve::*;
pub(crate) use tokens::*;
pub(crate) use webhooks::*;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::config::KeySource;
use super::text::{clip, safe, safe_opt};
use super::{Config, PluginCommand, secret_from_env};
use crate::bundled;
use crate::directory::PartyKind;
use crate::fetch::files::{FileSet, FileSource};
use crate::fetch::{AccountSettings, Auth, FetchMode, Protocol, Secret, Security};
use crate::pipeline::{Options, Pipeline, Progress, Quiet, Summary};
use crate::plugin::{FailurePolicy, Limits, PluginRuntime, RuntimeConfig};
use crate::store::{
    BindingRole, MasterKey, MessageQuery, NewBinding, NewParty, OpenMode, ProxyConfig, Store,
    StoredMessageId, TenantId,
};

/// Opens the store. With [`OpenMode::Create`] (commands that change data)
/// a missing SQLite store is created, and the store in use is named on
/// stderr, so an operator always knows which data a change went to.
async fn open(c: &Config, mode: OpenMode) -> anyhow::Result<(Store, TenantId)> {
    let store = Store::open(&c.store, mode).await.map_err(|e| {
        // Earlier versions kept the store in the current directory.
        let here = Path::new(crate::home::STORE_FILE);
        match e {
            crate::store::Error::NoStore { .. } if here.is_file() => anyhow::Error::from(e)
                .context(format!(
                    "there is an {} in the current directory (where earlier versions kept the \
                     store): use it with --database-url {}, or move it and intake.key to {}",
                    crate::home::STORE_FILE,
                    crate::home::STORE_FILE,
                    c.home.display()
                )),
            e => e.into(),
        }
    })?;
    let tenant = match mode {
        OpenMode::Create => {
            eprintln!("store: {}", c.store.display());
            store.ensure_tenant(&c.tenant).await?
        }
        // Reading never creates a tenant either: a misspelt --tenant is an
        // error, not an empty table.
        OpenMode::Existing => store.tenant(&c.tenant).await?.with_context(|| {
            format!(
                "no tenant {:?} in the store {} (a tenant is created by the first command \
                 that stores something for it)",
                c.tenant,
                c.store.display()
            )
        })?,
    };
    Ok((store, tenant))
}

/// The master key for storing a secret: the configured one, or — when the
/// default key file does not exist yet — a new key written there (0600).
///
/// A store that already holds credentials was used with a key: a new one
/// would seal this secret differently from the others, so the missing key
/// is an error instead.
async fn master_key_for_storing(c: &Config, store: &Store) -> anyhow::Result<MasterKey> {
    match &c.key {
        KeySource::File {
            path,
            explicit: false,
        } if !path.exists() && !store.has_credentials().await? => {
            let key = MasterKey::generate()?;
            write_private(path, key.to_base64().as_bytes())?;
            eprintln!(
                "created the master key file {}: back it up; without it stored passwords cannot be read",
                path.display()
            );
            Ok(key)
        }
        _ => c.master_key(),
    }
}

/// A store error, with where the key came from when the key was wrong.
fn key_hint(c: &Config, e: crate::store::Error) -> anyhow::Error {
    match e {
        crate::store::Error::WrongKey { .. } => anyhow::Error::from(e).context(format!(
            "the master key in use came from {}",
            c.key.describe()
        )),
        e => e.into(),
    }
}

/// Writes a new owner-only file (and its directory, owner-only); refuses to
/// replace an existing one.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// A secret from an environment variable, the first line of standard input,
/// or — on a terminal, when neither is given — a prompt without echo. Never
/// from an argument (shell history, `ps`).
pub(crate) fn read_secret(env: Option<&str>, stdin: bool, what: &str) -> anyhow::Result<Secret> {
    match (env, stdin) {
        (Some(var), _) => secret_from_env(var),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .with_context(|| format!("cannot read the {what} from standard input"))?;
            Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
        }
        (None, false) if std::io::stdin().is_terminal() => {
            let typed = rpassword::prompt_password(format!("{what}: "))
                .with_context(|| format!("cannot read the {what} at the prompt"))?;
            Ok(Secret::new(typed))
        }
        (None, false) => bail!(
            "give the {what} from an environment variable or standard input (never as an argument)"
        ),
    }
}

/// A JSON value given inline or as `@file`.
pub(crate) fn read_config(value: &str) -> anyhow::Result<String> {
    let json = match value.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => value.to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&json)
        .context("the configuration is not valid JSON")?;
    Ok(json)
}

/// The pipeline `intake fetch` and `intake serve` run, stopped by
/// `shutdown`; `batch` and `decide_workers` default as in [`Options`].
fn pipeline(
    store: &Store,
    batch: Option<usize>,
    decide_workers: Option<usize>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Pipeline> {
    let defaults = Options::default();
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig::default())?);
    Ok(Pipeline::new(
        store.clone(),
        runtime,
        Options {
            batch_messages: batch.unwrap_or(defaults.batch_messages).max(1),
            decide_workers: decide_workers.unwrap_or(defaults.decide_workers).max(1),
            ..defaults
        },
    )
    .with_shutdown(shutdown.clone()))
}

/// The settings of a stored account, credentials decrypted.
pub(crate) async fn stored_settings(c: &Config, name: &str) -> anyhow::Result<AccountSettings> {
    let (store, tenant) = open(c, OpenMode::Existing).await?;
    store.account_id(tenant, name).await?;
    let key = c.master_key()?;
    crate::oauth::fresh_settings(&store, tenant, name, &key)
        .await
        .map_err(|e| match e {
            crate::oauth::OAuthError::Store(e) => key_hint(c, e),
            other => other.into(),
        })
}
