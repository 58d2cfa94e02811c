//! Intake: an e-mail ingestion engine for CRMs, with sandboxed WebAssembly
//! plugins deciding which contacts and leads each message belongs to.
//!
//! The data path, one module per stage:
//!
//! - [`fetch`] (IMAP, POP3, local files): retrieve raw messages, and act on
//!   the server only when told to, after the commit;
//! - [`parse`]: raw bytes → the read-only view plugins see;
//! - [`plugin`]: the wasmtime host and the plugin chain → a
//!   [`plugin::Decision`];
//! - [`pipeline`]: batches, one transaction each, then the server actions;
//! - [`store`]: sea-orm persistence (SQLite default, PostgreSQL).
//!
//! [`service`] is the one layer the command line, `intake serve` and the
//! HTTP API call (tenancy, access and each resource's rules live there),
//! [`serve`] runs the engine by itself: scheduler, IDLE, metrics, and
//! [`api`] is the HTTP API under `/v1` that `intake serve` also serves,
//! and [`console`] the admin console's pages at `/`.
//!
//! [`discover`] finds an e-mail address's mail servers (the bundled
//! provider table, DNS SRV records, autoconfig documents).
//!
//! [`domain`] holds the types these stages share (account settings, a
//! message's identity and cursor, the decision as stored),
//! [`directory`] is the tenant's contacts and leads as plugins query them,
//! [`home`] the per-user data directory (store and key), [`bundled`] the
//! reference plugins built into the binary,
//! [`oauth`] gets and refreshes OAuth2 access tokens for mailboxes that
//! sign in with Google, Microsoft or another provider,
//! [`text`] makes outside text (plugin reasons, mail headers) safe to keep
//! and print,
//! [`offline`] runs the chain over `.eml` files for `intake plugin test`,
//! [`allocator`] tunes the C allocator for the binaries, and
//! [`cli`] is the `intake` command line.

pub mod allocator;
pub mod api;
pub mod bundled;
pub mod cli;
pub mod console;
pub mod directory;
pub mod discover;
pub mod domain;
pub mod fetch;
pub mod home;
pub mod oauth;
pub mod offline;
pub mod parse;
pub mod pipeline;
pub mod plugin;
pub mod serve;
pub mod service;
pub mod store;
pub mod text;
