//! Accounts and their credentials, as the command line, the API and the
//! console change them: one set of rules for what a change may be.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::scope::Scope;
use super::{AccountStatus, Result, Service, ServiceError, invalid};
use crate::domain::{Auth, CertificatePin, FetchMode, Protocol, Secret, Security};
use crate::fetch::check;
use crate::store::{AccountConfig, CredentialInfo, ProxyConfig, TokenScope};

/// A change to an account's settings: the settings given change, the
/// others stay. On a new account, `protocol`, `host` and `credential` are
/// needed and the rest have the usual defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// `imap` or `pop3`.
    pub protocol: Option<Protocol>,
    /// Server host name or address.
    pub host: Option<String>,
    /// Port; absent on a new account, or `null`: the default for the
    /// protocol and security.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<u16>)]
    pub port: Option<Option<u16>>,
    /// `none`, `starttls` or `tls` (default `tls`).
    pub security: Option<Security>,
    /// Name of the stored credential to log in with.
    pub credential: Option<String>,
    /// `login` or `plain`.
    pub auth: Option<Auth>,
    /// Verify the server certificate (default true; turning it off is
    /// warned about).
    pub verify_certificate: Option<bool>,
    /// Accept exactly this server certificate, by its SHA-256 fingerprint
    /// (`sha256:…`, as Test settings prints it) and no other; `null`
    /// removes the pin. Pinning turns verification on.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<String>)]
    pub pinned_certificate: Option<Option<CertificatePin>>,
    /// Keep a copy on the server (default true: mark seen, never delete).
    pub keep_on_server: Option<bool>,
    /// IMAP folders to read (default INBOX); POP3 has none.
    pub folders: Option<Vec<String>>,
    /// `new` (above the cursor) or `unseen`.
    pub mode: Option<FetchMode>,
    /// Larger messages are listed as skipped, not fetched.
    pub max_message_bytes: Option<u64>,
    /// On the first sync, only the newest this many messages (IMAP).
    pub first_sync_count: Option<u32>,
    /// On the first sync, only mail since this day (IMAP).
    pub first_sync_since: Option<NaiveDate>,
    /// Check on a schedule.
    pub auto_check: Option<bool>,
    /// Seconds between scheduled checks.
    pub check_interval_secs: Option<u32>,
    /// Switched on.
    pub enabled: Option<bool>,
    /// SOCKS5 proxy ("network connector"); `null` removes it.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Option<ProxyConfig>)]
    pub proxy: Option<Option<ProxyConfig>>,
    /// Messages per fetch command and per transaction.
    pub batch_size: Option<u32>,
    /// Extra CA certificate(s), a PEM file on the engine's machine: the
    /// command line's only, never the API's (a tenant must not name the
    /// operator's files).
    #[serde(skip)]
    #[schema(ignore)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl AccountPatch {
    /// Whether it changes anything at all.
    pub fn is_empty(&self) -> bool {
        *self == AccountPatch::default()
    }

    /// Applies the change to `c`, refusing what cannot be.
    pub fn apply(&self, c: &mut AccountConfig) -> Result<()> {
        if let Some(v) = self.protocol {
            c.protocol = v;
        }
        if let Some(v) = &self.host {
            c.host = v.trim().to_owned();
        }
        if let Some(v) = self.port {
            if v == Some(0) {
                return Err(invalid("port", "must be 1 to 65535"));
            }
            c.port = v;
        }
        if let Some(v) = self.security {
            c.security = v;
        }
        if let Some(v) = &self.credential {
            c.credential = v.trim().to_owned();
        }
        if let Some(v) = self.auth {
            c.auth = v;
        }
        if self.ca_file.is_some() {
            c.ca_file = self.ca_file.clone();
        }
        if let Some(pin) = self.pinned_certificate {
            c.pinned_certificate = pin;
            if pin.is_some() && self.verify_certificate.is_none() {
                c.verify_certificate = true;
            }
        }
        if let Some(v) = self.verify_certificate {
            c.verify_certificate = v;
        }
        if c.pinned_certificate.is_some() && !c.verify_certificate {
            return Err(invalid(
                "verify_certificate",
                "the account pins a certificate, which is verification: remove the pin to skip verification",
            ));
        }
        if let Some(v) = self.keep_on_server {
            c.keep_on_server = v;
        }
        if let Some(v) = self.mode {
            c.mode = v;
        }
        if let Some(v) = self.max_message_bytes {
            if v == 0 {
                return Err(invalid("max_message_bytes", "must be at least 1"));
            }
            c.max_message_bytes = v;
        }
        if self.first_sync_count.is_some() {
            c.first_sync.max_messages = self.first_sync_count;
        }
        if let Some(day) = self.first_sync_since {
            c.first_sync.since = Some(day.and_time(chrono::NaiveTime::MIN).and_utc());
        }
        if let Some(v) = self.auto_check {
            c.auto_check = v;
        }
        if let Some(v) = self.check_interval_secs {
            c.check_interval_secs = v;
        }
        if let Some(v) = self.enabled {
            c.enabled = v;
        }
        if let Some(v) = self.batch_size {
            c.batch_size = v;
        }
        if let Some(proxy) = &self.proxy {
            if let Some(p) = proxy {
                if p.host.trim().is_empty() {
                    return Err(invalid("proxy.host", "empty"));
                }
                if p.port == 0 {
                    return Err(invalid("proxy.port", "must be 1 to 65535"));
                }
            }
            c.proxy = proxy.clone();
        }
        match (&self.folders, c.protocol) {
            (Some(_), Protocol::Pop3) => {
                return Err(invalid(
                    "folders",
                    format!(
                        "folders are for IMAP: a POP3 account has one mailbox and no folders \
                         (account {} is POP3)",
                        c.name
                    ),
                ));
            }
            (Some(folders), Protocol::Imap) => {
                let folders: Vec<String> = folders
                    .iter()
                    .map(|f| f.trim().to_owned())
                    .filter(|f| !f.is_empty())
                    .collect();
                if folders.is_empty() {
                    return Err(invalid(
                        "folders",
                        "an IMAP account needs at least one folder",
                    ));
                }
                c.folders = folders;
            }
            (None, Protocol::Pop3) => c.folders = vec!["INBOX".into()],
            (None, Protocol::Imap) => {}
        }
        Ok(())
    }
}

/// An account as views show it: its settings (never a secret: credentials
/// are named, not included) and its state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    /// The settings.
    #[serde(flatten)]
    pub config: AccountConfig,
    /// The state in words (`ok`, `backing off (until …)`, `disabled: …`).
    pub state: String,
    /// What a worker is doing with it now (`checking: 1,200 of 5,000
    /// messages stored (24%)`), while a check runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    /// How its checks are going.
    pub health: crate::store::AccountHealth,
}

/// What a change did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountChange {
    /// The account afterwards.
    pub account: AccountView,
    /// Whether anything changed.
    pub changed: bool,
    /// Warnings about the settings (certificate verification off, …).
    pub warnings: Vec<String>,
}

fn warnings(c: &AccountConfig) -> Vec<String> {
    let mut w = Vec::new();
    if !c.verify_certificate {
        w.push(format!(
            "certificate verification is off for {}: anyone on the path could read the password",
            c.name
        ));
    }
    if c.security == Security::None {
        w.push(format!(
            "{} connects without TLS: the password and mail cross the network in the clear",
            c.name
        ));
    }
    w
}

/// Account names: printable, at most this long.
const NAME_MAX: usize = 100;

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(invalid(field, "empty"));
    }
    if name.chars().count() > NAME_MAX || name.chars().any(|c| c.is_control() || c == '/') {
        return Err(invalid(
            field,
            format!("at most {NAME_MAX} printable characters, no `/`"),
        ));
    }
    Ok(())
}

impl Service {
    /// The tenant's accounts with their state, by name.
    pub async fn accounts(&self, scope: &Scope) -> Result<Vec<AccountView>> {
        scope.require(TokenScope::Read)?;
        let accounts = self.store.accounts(scope.tenant()).await?;
        let mut health = self.store.health_of_tenant(scope.tenant()).await?;
        Ok(accounts
            .into_iter()
            .map(|a| {
                let status = super::status(a.clone(), health.remove(&a.id).unwrap_or_default());
                view(a.config, status)
            })
            .collect())
    }

    /// One account with its state.
    pub async fn account(&self, scope: &Scope, name: &str) -> Result<AccountView> {
        scope.require(TokenScope::Read)?;
        let account = self.store.account(scope.tenant(), name).await?;
        let health = self.store.health(account.id).await?;
        let config = account.config.clone();
        Ok(view(config, super::status(account, health)))
    }

    /// Adds an account.
    pub async fn create_account(
        &self,
        scope: &Scope,
        name: &str,
        patch: &AccountPatch,
    ) -> Result<AccountChange> {
        scope.require(TokenScope::Write)?;
        check_name("name", name)?;
        let protocol = patch
            .protocol
            .ok_or_else(|| invalid("protocol", "needed"))?;
        let host = patch
            .host
            .as_deref()
            .ok_or_else(|| invalid("host", "needed"))?;
        let credential = patch
            .credential
            .as_deref()
            .ok_or_else(|| invalid("credential", "needed"))?;
        let mut config = AccountConfig::new(
            name.trim(),
            protocol,
            host,
            patch.security.unwrap_or(Security::Tls),
            credential,
        );
        patch.apply(&mut config)?;
        self.store
            .add_account(scope.tenant(), &config)
            .await
            .map_err(credential_field(&config))?;
        Ok(AccountChange {
            warnings: warnings(&config),
            account: self.account(scope, name.trim()).await?,
            changed: true,
        })
    }

    /// Changes the settings `patch` gives. Changing settings clears a
    /// disablement or backoff: the account is checked again.
    pub async fn update_account(
        &self,
        scope: &Scope,
        name: &str,
        patch: &AccountPatch,
    ) -> Result<AccountChange> {
        scope.require(TokenScope::Write)?;
        if patch.is_empty() {
            return Err(invalid(
                "body",
                "nothing to change: give the settings to change",
            ));
        }
        let before = self.store.account(scope.tenant(), name).await?.config;
        let mut config = before.clone();
        patch.apply(&mut config)?;
        let changed = config != before;
        if changed {
            self.store
                .update_account(scope.tenant(), name, &config)
                .await
                .map_err(credential_field(&config))?;
        }
        Ok(AccountChange {
            warnings: if changed {
                warnings(&config)
            } else {
                Vec::new()
            },
            account: self.account(scope, name).await?,
            changed,
        })
    }

    /// Removes an account; its stored messages stay.
    pub async fn remove_account(&self, scope: &Scope, name: &str) -> Result<()> {
        scope.require(TokenScope::Write)?;
        Ok(self.store.remove_account(scope.tenant(), name).await?)
    }

    /// Test settings for a stored account: each step, and for a failed
    /// one what to change.
    pub async fn test_account(&self, scope: &Scope, name: &str) -> Result<check::Report> {
        self.test_account_watched(scope, name, None).await
    }

    /// [`test_account`](Self::test_account), showing each step on `live`
    /// as it is made. The account is looked up (and the scope checked)
    /// before this returns an error; the check itself never fails.
    pub async fn test_account_live(
        &self,
        scope: &Scope,
        name: &str,
        live: tokio::sync::watch::Sender<check::Live>,
    ) -> Result<check::Report> {
        self.test_account_watched(scope, name, Some(live)).await
    }

    async fn test_account_watched(
        &self,
        scope: &Scope,
        name: &str,
        live: Option<tokio::sync::watch::Sender<check::Live>>,
    ) -> Result<check::Report> {
        scope.require(TokenScope::Write)?;
        self.store.account_id(scope.tenant(), name).await?;
        let key = self.key.as_ref().ok_or(ServiceError::NoKey)?;
        let report = match crate::oauth::fresh_settings(&self.store, scope.tenant(), name, key)
            .await
        {
            Ok(settings) => {
                return Ok(match live {
                    Some(live) => check::test_account_live(&settings, live).await,
                    None => check::test_account(&settings).await,
                });
            }
            Err(crate::oauth::OAuthError::Store(e)) => return Err(e.into()),
            Err(e) => check::Report::failed_at(
                "login",
                e.to_string(),
                "the account signs in with OAuth2 and no access token could be had: \
                 re-authorize the credential (sign in again), or check the OAuth2 provider's settings",
            ),
        };
        if let Some(live) = &live {
            check::finish_live(live, &report);
        }
        Ok(report)
    }

    /// The tenant's credentials, without secrets.
    pub async fn credentials(&self, scope: &Scope) -> Result<Vec<CredentialInfo>> {
        scope.require(TokenScope::Read)?;
        Ok(self.store.credentials(scope.tenant()).await?)
    }

    /// Stores a credential, sealed with the master key.
    pub async fn add_credential(
        &self,
        scope: &Scope,
        name: &str,
        username: &str,
        secret: &Secret,
    ) -> Result<()> {
        scope.require(TokenScope::Write)?;
        check_name("name", name)?;
        if username.trim().is_empty() {
            return Err(invalid("username", "empty"));
        }
        let key = self.key.as_ref().ok_or(ServiceError::NoKey)?;
        Ok(self
            .store
            .add_credential(scope.tenant(), name.trim(), username.trim(), secret, key)
            .await?)
    }

    /// Replaces a credential's user name and secret.
    pub async fn set_credential(
        &self,
        scope: &Scope,
        name: &str,
        username: &str,
        secret: &Secret,
    ) -> Result<()> {
        scope.require(TokenScope::Write)?;
        if username.trim().is_empty() {
            return Err(invalid("username", "empty"));
        }
        let key = self.key.as_ref().ok_or(ServiceError::NoKey)?;
        self.store
            .update_credential(scope.tenant(), name, username.trim(), secret, key)
            .await?;
        // A new password is a reason to try an account disabled for a
        // wrong one.
        for account in self.store.accounts(scope.tenant()).await? {
            if account.config.credential == name {
                self.store.reset_health(scope.tenant(), account.id).await?;
            }
        }
        Ok(())
    }

    /// Removes a credential no account uses.
    pub async fn remove_credential(&self, scope: &Scope, name: &str) -> Result<()> {
        scope.require(TokenScope::Write)?;
        Ok(self.store.remove_credential(scope.tenant(), name).await?)
    }
}

/// A credential an account names but the tenant does not have is a
/// refused field, not a missing resource.
fn credential_field(config: &AccountConfig) -> impl Fn(crate::store::Error) -> ServiceError + '_ {
    move |e| match e {
        crate::store::Error::NotFound {
            what: "credential",
            name,
        } => {
            let field = if name != config.credential
                && config.proxy.as_ref().and_then(|p| p.credential.as_deref())
                    == Some(name.as_str())
            {
                "proxy.credential"
            } else {
                "credential"
            };
            invalid(field, format!("no credential {name:?} in this tenant"))
        }
        other => other.into(),
    }
}

fn view(config: AccountConfig, status: AccountStatus) -> AccountView {
    AccountView {
        state: status.state_line(),
        activity: status.activity_line(),
        health: status.health,
        config,
    }
}
