//! Intake: an e-mail ingestion engine for CRMs, with sandboxed WebAssembly
//! plugins deciding which contacts and leads each message belongs to.
//!
//! The data path, one module per stage:
//!
//! - `fetch` (IMAP, POP3): retrieve raw messages — *arrives with the
//!   retrieval work*;
//! - [`parse`]: raw bytes → the read-only view plugins see;
//! - [`plugin`]: the wasmtime host and the plugin chain → a
//!   [`plugin::Decision`];
//! - `pipeline` and `store`: act on the decision with a durable commit, then
//!   acknowledge on the server — *arrive with the pipeline work*.
//!
//! [`directory`] is the tenant's contacts and leads as plugins query them, and
//! [`offline`] runs the chain over `.eml` files for `intake plugin test`.

pub mod cli;
pub mod directory;
pub mod fetch;
pub mod offline;
pub mod parse;
pub mod pipeline;
pub mod plugin;
pub mod store;
