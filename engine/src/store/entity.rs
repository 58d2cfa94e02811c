//! Row types, one sea-orm entity per table. Private to the store: callers see
//! the typed API in the sibling modules, never these rows, so the schema can
//! change without breaking the pipeline or the CLI.
//!
//! The schema itself (types, indexes, foreign keys) is defined by
//! [`super::migration`]; these structs only have to read and write it.
//! Small integers the protocols define as unsigned (UIDs, ports) are `i64` /
//! `i32` here because PostgreSQL has no unsigned types.

pub mod tenants {
    //! `tenants`: one row per customer of a hosted engine.
    use sea_orm::entity::prelude::*;

    /// A tenant.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        /// Surrogate key every tenant-owned row refers to.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Unique name, the tenant id the plugins see.
        pub name: String,
        /// When the tenant was first seen.
        pub created_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod oauth_providers {
    //! `oauth_providers`: the operator's OAuth2 clients, one per provider.
    use sea_orm::entity::prelude::*;

    /// A provider; the client secret is sealed.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "oauth_providers")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Name credentials refer to (`google`, `microsoft`, …).
        pub name: String,
        /// `google`, `microsoft` or `generic`.
        pub kind: String,
        /// The client id the provider issued.
        pub client_id: String,
        /// Sealed client secret; `None` for a public (PKCE-only) client.
        pub client_secret: Option<Vec<u8>>,
        /// Authorization endpoint.
        pub auth_url: String,
        /// Token endpoint.
        pub token_url: String,
        /// Scopes asked for, space-separated.
        pub scopes: String,
        /// When it was added.
        pub created_at: DateTimeUtc,
    }

    // Hand-written so the sealed secret never prints.
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("oauth_providers::Model")
                .field("name", &self.name)
                .field("kind", &self.kind)
                .finish_non_exhaustive()
        }
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod credentials {
    //! `credentials`: user names and encrypted secrets.
    use sea_orm::entity::prelude::*;

    /// A credential; the secret is sealed (nonce ‖ ciphertext ‖ tag).
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "credentials")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// Name, unique in the tenant.
        pub name: String,
        /// Login name (not secret).
        pub username: String,
        /// Sealed secret: 12-byte nonce, then ciphertext and tag. For an
        /// OAuth2 credential, the refresh token.
        pub secret: Vec<u8>,
        /// When it was added.
        pub created_at: DateTimeUtc,
        /// The OAuth2 provider it was authorized with; `None` for a
        /// password.
        pub oauth_provider: Option<String>,
        /// The current OAuth2 access token, sealed.
        pub access_token: Option<Vec<u8>>,
        /// When that access token expires.
        pub access_expires_at: Option<DateTimeUtc>,
    }

    // Hand-written so a stray `{:?}` never prints even the sealed bytes.
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("credentials::Model")
                .field("id", &self.id)
                .field("tenant_id", &self.tenant_id)
                .field("name", &self.name)
                .field("username", &self.username)
                .finish_non_exhaustive()
        }
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod accounts {
    //! `accounts`: mailbox settings as CRM admins know them.
    use sea_orm::entity::prelude::*;

    /// An account.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// Name, unique in the tenant.
        pub name: String,
        /// `imap` or `pop3`.
        pub protocol: String,
        /// Server host.
        pub host: String,
        /// Port; null for the protocol default.
        pub port: Option<i32>,
        /// `none`, `starttls` or `tls`.
        pub security: String,
        /// Login credential.
        pub credential_id: i64,
        /// `login` or `plain`.
        pub auth: String,
        /// Verify the server certificate.
        pub verify_certificate: bool,
        /// Extra CA file (PEM).
        pub ca_file: Option<String>,
        /// The one certificate accepted, `sha256:…`.
        pub pinned_certificate: Option<String>,
        /// Never delete after ingesting.
        pub keep_on_server: bool,
        /// Checked on a schedule.
        pub auto_check: bool,
        /// Seconds between scheduled checks.
        pub check_interval_secs: i32,
        /// Switched on.
        pub enabled: bool,
        /// SOCKS5 proxy host, if any.
        pub proxy_host: Option<String>,
        /// SOCKS5 proxy port.
        pub proxy_port: Option<i32>,
        /// Proxy login, if the proxy needs one.
        pub proxy_credential_id: Option<i64>,
        /// JSON array of folder names.
        pub folders: String,
        /// `new` or `unseen`.
        pub mode: String,
        /// Size limit; larger messages are skipped.
        pub max_message_bytes: i64,
        /// First sync: only messages on or after this time.
        pub first_sync_since: Option<DateTimeUtc>,
        /// First sync: only the newest this many messages.
        pub first_sync_max_messages: Option<i32>,
        /// Messages per fetch command.
        pub batch_size: i32,
        /// When it was added.
        pub created_at: DateTimeUtc,
        /// Last settings change.
        pub updated_at: DateTimeUtc,
        /// Last successful batch commit.
        pub last_commit_at: Option<DateTimeUtc>,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod folder_cursors {
    //! `folder_cursors`: where each IMAP folder was left.
    use sea_orm::entity::prelude::*;

    /// A folder cursor.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "folder_cursors")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// Account.
        pub account_id: i64,
        /// Folder name.
        pub folder: String,
        /// UIDVALIDITY the cursor belongs to.
        pub uid_validity: i64,
        /// Highest UID ingested.
        pub last_uid: i64,
        /// Last advance.
        pub updated_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod pop3_seen {
    //! `pop3_seen`: UIDLs already ingested from a POP3 account.
    use sea_orm::entity::prelude::*;

    /// A seen UIDL.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pop3_seen")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// Account.
        pub account_id: i64,
        /// The server's unique id.
        pub uidl: String,
        /// When it was ingested.
        pub created_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod parties {
    //! `parties`: contacts and leads in one table.
    use sea_orm::entity::prelude::*;

    /// A contact or lead.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "parties")]
    pub struct Model {
        /// Surrogate key; also the party id plugins see (as text).
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// `contact` or `lead`.
        pub kind: String,
        /// Lower-case address.
        pub email: String,
        /// Lower-case domain of `email`, for find-by-domain.
        pub domain: String,
        /// Display name.
        pub name: Option<String>,
        /// Company.
        pub company: Option<String>,
        /// Id in the CRM that synced it.
        pub external_id: Option<String>,
        /// When it was created.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod messages {
    //! `messages`: every ingested message, with its idempotency keys.
    use sea_orm::entity::prelude::*;

    /// A message.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "messages")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// Account it came from (null once the account is removed).
        pub account_id: Option<i64>,
        /// IMAP folder.
        pub folder: Option<String>,
        /// IMAP UIDVALIDITY.
        pub uid_validity: Option<i64>,
        /// IMAP UID.
        pub uid: Option<i64>,
        /// POP3 UIDL.
        pub pop3_uidl: Option<String>,
        /// Message-ID without angle brackets.
        pub message_id: Option<String>,
        /// Subject.
        pub subject: Option<String>,
        /// Sender address.
        pub from_address: Option<String>,
        /// `Date:` header.
        pub date: Option<DateTimeUtc>,
        /// Size of the raw message in bytes.
        pub size: i64,
        /// Exact bytes from the server; null when discarded or dropped.
        pub raw: Option<Vec<u8>>,
        /// `stored`, `quarantined`, `discarded` or `dropped`.
        pub status: String,
        /// When it was committed.
        pub created_at: DateTimeUtc,
        /// SHA-256 of the raw bytes (hex), unique per account: the backstop
        /// that recognises a message no other key can (no Message-ID, a
        /// re-imported file, a reset mailbox). Null on rows stored before
        /// it existed that duplicate an earlier row.
        pub content_sha256: Option<String>,
        /// The plugin that decided, if one did.
        pub decided_by: Option<String>,
        /// How the chain decided (`DecisionRecord` as compact JSON); null
        /// on rows stored before it was kept.
        pub decision: Option<String>,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod message_links {
    //! `message_links`: which parties a message belongs to.
    use sea_orm::entity::prelude::*;

    /// A link.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "message_links")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// The message row.
        pub stored_message_id: i64,
        /// The party (its kind is in `parties`).
        pub party_id: i64,
        /// When it was linked.
        pub created_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod quarantine {
    //! `quarantine`: why a message was held; its bytes stay in `messages`.
    use sea_orm::entity::prelude::*;

    /// A quarantine entry.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "quarantine")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// Account it came from.
        pub account_id: Option<i64>,
        /// The held message (status `quarantined`, raw bytes kept).
        pub stored_message_id: i64,
        /// Why.
        pub reason: String,
        /// Which plugin, if one decided or failed.
        pub plugin: Option<String>,
        /// When it was held.
        pub created_at: DateTimeUtc,
        /// When an admin released it.
        pub released_at: Option<DateTimeUtc>,
        /// `held` (decided or failed for good: an admin acts on it) or
        /// `temporary` (deferred: decided again at `next_attempt_at`).
        pub kind: String,
        /// Decisions tried for a deferred message (the first included).
        pub attempts: i32,
        /// When a deferred message is due for its next attempt.
        pub next_attempt_at: Option<DateTimeUtc>,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod discard_log {
    //! `discard_log`: what was deliberately not stored, and why.
    use sea_orm::entity::prelude::*;

    /// A discard entry.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "discard_log")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// Account it came from.
        pub account_id: Option<i64>,
        /// The key-only `messages` row (status `discarded`).
        pub stored_message_id: Option<i64>,
        /// Message-ID.
        pub message_id: Option<String>,
        /// Sender address.
        pub sender: Option<String>,
        /// Why.
        pub reason: String,
        /// Which plugin.
        pub plugin: Option<String>,
        /// When.
        pub created_at: DateTimeUtc,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod plugin_bindings {
    //! `plugin_bindings`: a tenant's plugin chain, components included.
    use sea_orm::entity::prelude::*;

    /// A binding.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "plugin_bindings")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// Order in the chain (ascending).
        pub position: i32,
        /// Name, unique in the tenant.
        pub name: String,
        /// `matcher` or `unknown-sender`.
        pub role: String,
        /// Empty since `m20261222_000001_plugin_versions`: components are
        /// kept once per tenant in `plugin_components`, named by the
        /// versions in `plugin_versions`.
        pub wasm: Vec<u8>,
        /// JSON passed to `init`.
        pub config: String,
        /// `Limits` as JSON.
        pub limits: String,
        /// `quarantine` or `skip`.
        pub failure_policy: String,
        /// Switched on.
        pub enabled: bool,
        /// When it was added.
        pub created_at: DateTimeUtc,
        /// The version that decides (its config and limits are the two
        /// columns above, kept equal to the version's).
        pub active_version: i32,
        /// The canary: a version that decides the messages of its rollout.
        pub candidate_version: Option<i32>,
        /// The canary's share of messages, basis points.
        pub canary_share_bp: Option<i32>,
        /// The accounts whose mail always gets the canary, JSON array.
        pub canary_accounts: Option<String>,
    }

    // Hand-written: a component is megabytes of bytes nobody wants in a log.
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("plugin_bindings::Model")
                .field("id", &self.id)
                .field("name", &self.name)
                .field("position", &self.position)
                .field("wasm_bytes", &self.wasm.len())
                .finish_non_exhaustive()
        }
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod plugin_components {
    //! `plugin_components`: component bytes, once per tenant and SHA-256.
    use sea_orm::entity::prelude::*;

    /// A component.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "plugin_components")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// SHA-256 of the bytes, hex: what versions name it by.
        pub sha256: String,
        /// The bytes.
        pub wasm: Vec<u8>,
        /// When it was first stored.
        pub created_at: DateTimeUtc,
    }

    // Hand-written, as for bindings: no megabytes in a log.
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("plugin_components::Model")
                .field("sha256", &self.sha256)
                .field("wasm_bytes", &self.wasm.len())
                .finish_non_exhaustive()
        }
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod plugin_versions {
    //! `plugin_versions`: a binding's numbered versions.
    use sea_orm::entity::prelude::*;

    /// A version.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "plugin_versions")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// The binding it is a version of.
        pub binding_id: i64,
        /// Its number, 1, 2, … within the binding.
        pub version: i32,
        /// Its component, in `plugin_components`.
        pub component_sha256: String,
        /// JSON passed to `init`.
        pub config: String,
        /// `Limits` as JSON.
        pub limits: String,
        /// When it was added.
        pub created_at: DateTimeUtc,
        /// When it last became the active version; never, if it has not.
        pub activated_at: Option<DateTimeUtc>,
        /// When it was last rolled back from (a rollback does not return
        /// to it), until it is promoted again.
        pub rolled_back_at: Option<DateTimeUtc>,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod pending_actions {
    //! `pending_actions`: server actions committed but not yet carried out.
    use sea_orm::entity::prelude::*;

    /// A pending action.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pending_actions")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// Account.
        pub account_id: i64,
        /// IMAP folder.
        pub folder: Option<String>,
        /// IMAP UIDVALIDITY.
        pub uid_validity: Option<i64>,
        /// IMAP UID.
        pub uid: Option<i64>,
        /// POP3 UIDL.
        pub pop3_uidl: Option<String>,
        /// `mark-seen`, `delete` or `move:FOLDER`.
        pub action: String,
        /// When it was queued.
        pub created_at: DateTimeUtc,
        /// Failed tries so far.
        pub attempts: i32,
        /// The last failure.
        pub last_error: Option<String>,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod account_health {
    //! `account_health`: what the service knows of an account's checks.
    use sea_orm::entity::prelude::*;

    /// One account's state, last and next check, and lease.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "account_health")]
    pub struct Model {
        /// The account.
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: i64,
        /// Its tenant.
        pub tenant_id: i64,
        /// `ok`, `backing-off` or `disabled`.
        pub state: String,
        /// Failures since the last success.
        pub consecutive_failures: i32,
        /// Backing off until then.
        pub retry_at: Option<DateTimeUtc>,
        /// Why it was disabled.
        pub disabled_reason: Option<String>,
        /// When it was disabled.
        pub disabled_at: Option<DateTimeUtc>,
        /// Last check, successful or not.
        pub last_check_at: Option<DateTimeUtc>,
        /// Last successful check.
        pub last_success_at: Option<DateTimeUtc>,
        /// Class of the last error.
        pub last_error_class: Option<String>,
        /// The last error, as a user reads it.
        pub last_error: Option<String>,
        /// Messages ingested by the last successful check.
        pub last_ingested: Option<i64>,
        /// When the next scheduled check is due.
        pub next_check_at: Option<DateTimeUtc>,
        /// A person asked for a check at this time.
        pub check_requested_at: Option<DateTimeUtc>,
        /// The worker working the account.
        pub lease_owner: Option<String>,
        /// Until when the lease holds unless renewed.
        pub lease_until: Option<DateTimeUtc>,
        /// A running check: messages committed so far.
        pub progress_done: Option<i64>,
        /// A running check: messages listed so far.
        pub progress_total: Option<i64>,
        /// When the running check last wrote its progress.
        pub progress_at: Option<DateTimeUtc>,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod workers {
    //! `workers`: the `intake serve` processes on this store.
    use sea_orm::entity::prelude::*;

    /// A worker process.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workers")]
    pub struct Model {
        /// `host:pid:random`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Host name.
        pub host: String,
        /// Process id.
        pub pid: i64,
        /// Start time.
        pub started_at: DateTimeUtc,
        /// Last sign of life.
        pub heartbeat_at: DateTimeUtc,
        /// Clean stop time.
        pub stopped_at: Option<DateTimeUtc>,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_tokens {
    //! `api_tokens`: a tenant's HTTP API tokens, the secret kept as a hash.
    use sea_orm::entity::prelude::*;

    /// A token.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_tokens")]
    pub struct Model {
        /// Key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owning tenant.
        pub tenant_id: i64,
        /// The token's public part, unique: finds the row.
        pub lookup: String,
        /// SHA-256 of the secret part, hex.
        pub secret_sha256: String,
        /// A name people recognise it by.
        pub name: String,
        /// `read`, `write` or `admin`.
        pub scope: String,
        /// Issued.
        pub created_at: DateTimeUtc,
        /// Last request made with it (updated at most once a minute).
        pub last_used_at: Option<DateTimeUtc>,
        /// Revoked: refused from then on.
        pub revoked_at: Option<DateTimeUtc>,
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod plugin_secrets {
    //! `plugin_secrets`: a binding's secrets, sealed.
    use sea_orm::entity::prelude::*;

    /// One secret of one binding; the value is sealed (nonce ‖ ciphertext
    /// ‖ tag) and bound to tenant, binding and name.
    #[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "plugin_secrets")]
    pub struct Model {
        /// Surrogate key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Owner.
        pub tenant_id: i64,
        /// The binding's name.
        pub binding: String,
        /// The environment variable it becomes.
        pub name: String,
        /// Sealed value.
        pub secret: Vec<u8>,
        /// When it was set.
        pub created_at: DateTimeUtc,
    }

    // Hand-written: the sealed bytes stay out of logs too.
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("plugin_secrets::Model")
                .field("id", &self.id)
                .field("binding", &self.binding)
                .field("name", &self.name)
                .finish_non_exhaustive()
        }
    }

    /// No relations are navigated through the ORM.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
