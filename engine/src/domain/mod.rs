//! Domain: the types the stages share, so that none of them has to know
//! another's insides.
//!
//! `fetch`, `parse` and `directory` know no database; `store` knows no
//! protocol and no plugin types; the pipeline knows no protocol variant.
//! What they hand each other is defined here:
//!
//! - [`account`]: what an account is (host, security, credentials,
//!   folders…), as `fetch` connects with it and `store` keeps it;
//! - [`message`]: a message's identity ([`MessageKey`]), where a folder was
//!   left ([`FolderCursor`], [`CursorAdvance`]) and what to do with a
//!   committed message on the server ([`Acknowledge`]);
//! - [`decision`]: what the chain decided, as the store applies it
//!   ([`Outcome`]), and a plugin's suggested [`ServerAction`] capped by the
//!   account;
//! - [`rollout`]: which messages a canary (a binding's candidate version)
//!   decides.

pub mod account;
pub mod decision;
pub mod message;
pub mod rollout;

pub use account::{
    AccountSettings, Auth, BadPin, CertificatePin, FetchMode, Protocol, ProxySettings, Secret,
    Security, Timeouts,
};
pub use decision::{
    DecisionRecord, DecisionStep, Outcome, ServerAction, capped_action, default_action,
};
pub use message::{Acknowledge, CursorAdvance, FolderCursor, INBOX, MessageKey};
pub use rollout::{Rollout, RolloutKey};
