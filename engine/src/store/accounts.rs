//! Accounts: every mailbox setting a CRM admin knows, stored per tenant, and
//! the conversion to the [`AccountSettings`] the fetchers take.
//!
//! Secrets are not in the account: it names a credential (and optionally a
//! proxy credential), decrypted only when [`Store::settings`] builds the
//! settings for a connection.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};

use super::credentials::Credential;
use super::entity::{accounts, credentials};
use super::key::MasterKey;
use super::{
    AccountId, Result, Store, TenantId, corrupt, invalid, not_found, now, unique_violation,
};
use crate::domain::{
    AccountSettings, Auth, CertificatePin, FetchMode, Protocol, ProxySettings, Security, Timeouts,
};

/// A SOCKS5 proxy, with an optional login credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProxyConfig {
    /// Proxy host.
    pub host: String,
    /// Proxy port.
    pub port: u16,
    /// Name of the credential to log in to the proxy with, if it needs one.
    pub credential: Option<String>,
}

/// How far back the first sync of a new account reaches. Both limits apply
/// when both are set; neither means everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FirstSync {
    /// Only messages on or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only the newest this many messages.
    pub max_messages: Option<u32>,
}

/// An account's settings, as admins edit them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountConfig {
    /// Name, unique in the tenant.
    pub name: String,
    /// IMAP or POP3.
    pub protocol: Protocol,
    /// Server host name or address.
    pub host: String,
    /// Port; `None` means the protocol's default for the security mode.
    pub port: Option<u16>,
    /// Connection security.
    pub security: Security,
    /// Name of the login credential.
    pub credential: String,
    /// Authentication mechanism.
    pub auth: Auth,
    /// Verify the server certificate.
    pub verify_certificate: bool,
    /// Extra CA certificate(s), PEM.
    #[schema(value_type = Option<String>)]
    pub ca_file: Option<PathBuf>,
    /// The one server certificate accepted (its SHA-256 fingerprint):
    /// the CA file and system roots then do not count.
    pub pinned_certificate: Option<CertificatePin>,
    /// Keep a copy on the server (never delete after ingesting).
    pub keep_on_server: bool,
    /// Check on a schedule.
    pub auto_check: bool,
    /// Seconds between scheduled checks.
    pub check_interval_secs: u32,
    /// Switched on; a disabled account is never fetched.
    pub enabled: bool,
    /// Optional SOCKS5 proxy.
    pub proxy: Option<ProxyConfig>,
    /// IMAP folders to read; POP3 has only the inbox.
    pub folders: Vec<String>,
    /// IMAP fetch mode.
    pub mode: FetchMode,
    /// Larger messages are listed as skipped, not fetched.
    pub max_message_bytes: u64,
    /// How far back the first sync reaches.
    pub first_sync: FirstSync,
    /// Messages per fetch command.
    pub batch_size: u32,
}

impl AccountConfig {
    /// An account with the defaults admins expect (those of
    /// [`AccountSettings::new`]), checked every five minutes.
    pub fn new(
        name: &str,
        protocol: Protocol,
        host: &str,
        security: Security,
        credential: &str,
    ) -> Self {
        AccountConfig {
            name: name.into(),
            protocol,
            host: host.into(),
            port: None,
            security,
            credential: credential.into(),
            auth: Auth::default(),
            verify_certificate: true,
            ca_file: None,
            pinned_certificate: None,
            keep_on_server: true,
            auto_check: true,
            check_interval_secs: 300,
            enabled: true,
            proxy: None,
            folders: vec!["INBOX".into()],
            mode: FetchMode::New,
            max_message_bytes: 50 << 20,
            first_sync: FirstSync::default(),
            batch_size: 100,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "empty"));
        }
        if self.host.trim().is_empty() {
            return Err(invalid("host", "empty"));
        }
        if self.protocol == Protocol::Imap && self.folders.iter().all(|f| f.trim().is_empty()) {
            return Err(invalid(
                "folders",
                "an IMAP account needs at least one folder",
            ));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", "must be at least 1"));
        }
        if self.auto_check && self.check_interval_secs == 0 {
            return Err(invalid("check_interval_secs", "must be at least 1 second"));
        }
        Ok(())
    }
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its key.
    pub id: AccountId,
    /// Its settings.
    pub config: AccountConfig,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// Last settings change.
    pub updated_at: DateTime<Utc>,
    /// Last successful batch commit, if any.
    pub last_commit_at: Option<DateTime<Utc>>,
}

impl Account {
    /// The settings the fetchers take, given the decrypted login credential
    /// and, when the account has an authenticated proxy, its credential.
    pub fn settings(&self, login: &Credential, proxy: Option<&Credential>) -> AccountSettings {
        let c = &self.config;
        let mut settings = AccountSettings::new(
            &c.name,
            c.protocol,
            &c.host,
            c.security,
            &login.username,
            login.secret.clone(),
        );
        settings.port = c.port;
        settings.auth = c.auth;
        // An OAuth2 credential signs in with its access token (XOAUTH2
        // unless the account asks for OAUTHBEARER), never with the refresh
        // token; `crate::oauth` refreshes it before a connection.
        if let Some(grant) = &login.oauth {
            settings.password = grant.access_token.clone().unwrap_or_default();
            if !c.auth.is_oauth() {
                settings.auth = Auth::Xoauth2;
            }
        }
        settings.verify_certificate = c.verify_certificate;
        settings.ca_file = c.ca_file.clone();
        settings.pinned_certificate = c.pinned_certificate;
        settings.keep_on_server = c.keep_on_server;
        settings.proxy = c.proxy.as_ref().map(|p| ProxySettings {
            host: p.host.clone(),
            port: p.port,
            username: proxy.map(|cred| cred.username.clone()),
            password: proxy.map(|cred| cred.secret.clone()),
        });
        settings.folders = match c.protocol {
            Protocol::Imap => c.folders.clone(),
            Protocol::Pop3 => vec!["INBOX".into()],
        };
        settings.mode = c.mode;
        settings.max_message_bytes = c.max_message_bytes;
        settings.batch_size = c.batch_size as usize;
        settings.first_sync_since = c.first_sync.since;
        settings.first_sync_max_messages = c.first_sync.max_messages;
        settings.timeouts = Timeouts::default();
        settings
    }
}

impl Store {
    /// Adds an account; its credentials must exist in the tenant.
    pub async fn add_account(&self, tenant: TenantId, config: &AccountConfig) -> Result<AccountId> {
        config.validate()?;
        let mut row = self.account_row(tenant, config).await?;
        let stamp = now();
        row.tenant_id = Set(tenant.0);
        row.created_at = Set(stamp);
        row.updated_at = Set(stamp);
        let id = accounts::Entity::insert(row)
            .exec(&self.db)
            .await
            .map_err(|e| unique_violation(e, "account", &config.name))?
            .last_insert_id;
        Ok(AccountId(id))
    }

    /// Replaces the settings of the account `name` (which may rename it).
    pub async fn update_account(
        &self,
        tenant: TenantId,
        name: &str,
        config: &AccountConfig,
    ) -> Result<()> {
        config.validate()?;
        let mut row = self.account_row(tenant, config).await?;
        row.updated_at = Set(now());
        let updated = accounts::Entity::update_many()
            .set(row)
            .filter(accounts::Column::TenantId.eq(tenant.0))
            .filter(accounts::Column::Name.eq(name))
            .exec(&self.db)
            .await
            .map_err(|e| unique_violation(e, "account", &config.name))?;
        if updated.rows_affected == 0 {
            return Err(not_found("account", name));
        }
        // New settings deserve a fresh try: a disablement or a backoff
        // earned with the old ones is cleared.
        let id = self.account_id(tenant, config.name.trim()).await?;
        self.reset_health(tenant, id).await
    }

    /// Removes an account with its cursors, seen UIDLs and pending actions.
    /// Its messages stay (no longer tied to an account).
    pub async fn remove_account(&self, tenant: TenantId, name: &str) -> Result<()> {
        let removed = accounts::Entity::delete_many()
            .filter(accounts::Column::TenantId.eq(tenant.0))
            .filter(accounts::Column::Name.eq(name))
            .exec(&self.db)
            .await?;
        if removed.rows_affected == 0 {
            return Err(not_found("account", name));
        }
        Ok(())
    }

    /// The tenant's accounts, by name.
    pub async fn accounts(&self, tenant: TenantId) -> Result<Vec<Account>> {
        let rows = accounts::Entity::find()
            .filter(accounts::Column::TenantId.eq(tenant.0))
            .order_by_asc(accounts::Column::Name)
            .all(&self.db)
            .await?;
        let names = self.credential_names_of(tenant, None).await?;
        rows.into_iter()
            .map(|r| account_from_row(r, &names))
            .collect()
    }

    /// The account `name`.
    pub async fn account(&self, tenant: TenantId, name: &str) -> Result<Account> {
        let row = accounts::Entity::find()
            .filter(accounts::Column::TenantId.eq(tenant.0))
            .filter(accounts::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("account", name))?;
        // Only the account's own credentials: a check reads its account
        // several times, and a tenant may have thousands of credentials.
        let ids: Vec<i64> = std::iter::once(row.credential_id)
            .chain(row.proxy_credential_id)
            .collect();
        let names = self.credential_names_of(tenant, Some(&ids)).await?;
        account_from_row(row, &names)
    }

    /// The settings to connect the account `name` with, credentials
    /// decrypted with `key`.
    pub async fn settings(
        &self,
        tenant: TenantId,
        name: &str,
        key: &MasterKey,
    ) -> Result<AccountSettings> {
        let account = self.account(tenant, name).await?;
        let login = self
            .credential(tenant, &account.config.credential, key)
            .await?;
        self.settings_with(tenant, &account, &login, key).await
    }

    /// The settings of `account` signing in with `login` (its credential,
    /// already read), the proxy's credential read if it has one.
    pub async fn settings_with(
        &self,
        tenant: TenantId,
        account: &Account,
        login: &Credential,
        key: &MasterKey,
    ) -> Result<AccountSettings> {
        let proxy = match account
            .config
            .proxy
            .as_ref()
            .and_then(|p| p.credential.as_ref())
        {
            Some(name) => Some(self.credential(tenant, name, key).await?),
            None => None,
        };
        Ok(account.settings(login, proxy.as_ref()))
    }

    /// `(id, name)` of the tenant's credentials, or of those with `ids`
    /// (two columns only: the rows also hold sealed secrets).
    async fn credential_names_of(
        &self,
        tenant: TenantId,
        ids: Option<&[i64]>,
    ) -> Result<Vec<(i64, String)>> {
        let mut query = credentials::Entity::find()
            .select_only()
            .column(credentials::Column::Id)
            .column(credentials::Column::Name)
            .filter(credentials::Column::TenantId.eq(tenant.0));
        if let Some(ids) = ids {
            query = query.filter(credentials::Column::Id.is_in(ids.iter().copied()));
        }
        Ok(query.into_tuple::<(i64, String)>().all(&self.db).await?)
    }

    /// The row for `config`, credentials resolved (without tenant or
    /// timestamps, which differ between insert and update).
    async fn account_row(
        &self,
        tenant: TenantId,
        config: &AccountConfig,
    ) -> Result<accounts::ActiveModel> {
        let credential = self.credential_row(tenant, &config.credential).await?;
        let proxy_credential = match config.proxy.as_ref().and_then(|p| p.credential.as_deref()) {
            Some(name) => Some(self.credential_row(tenant, name).await?.id),
            None => None,
        };
        let folders = serde_json::to_string(&config.folders)
            .map_err(|e| invalid("folders", e.to_string()))?;
        Ok(accounts::ActiveModel {
            name: Set(config.name.trim().to_owned()),
            protocol: Set(enum_name(config.protocol)),
            host: Set(config.host.trim().to_owned()),
            port: Set(config.port.map(i32::from)),
            security: Set(enum_name(config.security)),
            credential_id: Set(credential.id),
            auth: Set(enum_name(config.auth)),
            verify_certificate: Set(config.verify_certificate),
            ca_file: Set(config.ca_file.as_ref().map(|p| p.display().to_string())),
            pinned_certificate: Set(config.pinned_certificate.map(|p| p.to_string())),
            keep_on_server: Set(config.keep_on_server),
            auto_check: Set(config.auto_check),
            check_interval_secs: Set(clamp_i32(config.check_interval_secs)),
            enabled: Set(config.enabled),
            proxy_host: Set(config.proxy.as_ref().map(|p| p.host.clone())),
            proxy_port: Set(config.proxy.as_ref().map(|p| i32::from(p.port))),
            proxy_credential_id: Set(proxy_credential),
            folders: Set(folders),
            mode: Set(enum_name(config.mode)),
            max_message_bytes: Set(i64::try_from(config.max_message_bytes).unwrap_or(i64::MAX)),
            first_sync_since: Set(config.first_sync.since),
            first_sync_max_messages: Set(config.first_sync.max_messages.map(clamp_i32)),
            batch_size: Set(clamp_i32(config.batch_size)),
            ..Default::default()
        })
    }
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The name clap and serde use for a settings enum (`imap`, `starttls`, …).
fn enum_name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

fn parse_enum<T: ValueEnum>(text: &str, what: &'static str) -> Result<T> {
    T::from_str(text, true).map_err(|_| corrupt(what, format!("unknown value {text:?}")))
}

fn account_from_row(row: accounts::Model, credentials: &[(i64, String)]) -> Result<Account> {
    let credential_name = |id: i64| -> Result<String> {
        credentials
            .iter()
            .find(|(cid, _)| *cid == id)
            .map(|(_, n)| n.clone())
            .ok_or_else(|| corrupt("account credential", format!("no credential with id {id}")))
    };
    let port = |p: Option<i32>, what: &'static str| -> Result<Option<u16>> {
        p.map(|p| u16::try_from(p).map_err(|_| corrupt(what, format!("{p} is not a port"))))
            .transpose()
    };
    let proxy = match row.proxy_host {
        Some(host) => Some(ProxyConfig {
            host,
            port: port(row.proxy_port, "proxy port")?.unwrap_or(1080),
            credential: row.proxy_credential_id.map(credential_name).transpose()?,
        }),
        None => None,
    };
    let folders: Vec<String> =
        serde_json::from_str(&row.folders).map_err(|e| corrupt("account folders", e))?;
    let unsigned = |v: i32| u32::try_from(v).unwrap_or(0);
    Ok(Account {
        id: AccountId(row.id),
        config: AccountConfig {
            protocol: parse_enum(&row.protocol, "account protocol")?,
            host: row.host,
            port: port(row.port, "account port")?,
            security: parse_enum(&row.security, "account security")?,
            credential: credential_name(row.credential_id)?,
            auth: parse_enum(&row.auth, "account auth")?,
            verify_certificate: row.verify_certificate,
            ca_file: row.ca_file.map(PathBuf::from),
            pinned_certificate: row
                .pinned_certificate
                .map(|p| {
                    p.parse()
                        .map_err(|e| corrupt("account pinned certificate", e))
                })
                .transpose()?,
            keep_on_server: row.keep_on_server,
            auto_check: row.auto_check,
            check_interval_secs: unsigned(row.check_interval_secs),
            enabled: row.enabled,
            proxy,
            folders,
            mode: parse_enum(&row.mode, "account mode")?,
            max_message_bytes: u64::try_from(row.max_message_bytes).unwrap_or(0),
            first_sync: FirstSync {
                since: row.first_sync_since,
                max_messages: row.first_sync_max_messages.map(unsigned),
            },
            batch_size: unsigned(row.batch_size),
            name: row.name,
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_commit_at: row.last_commit_at,
    })
}
