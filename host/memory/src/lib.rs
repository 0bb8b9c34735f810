//! aigw's shared memory store. It owns the libsql database (an embedded file by default), its
//! versioned schema ([`migrations`]), and the threads every SQLite call runs on: libsql's local
//! backend runs SQLite synchronously inside its `async fn`s, so a call made on a tokio worker
//! would block that worker. [`Store`] therefore keeps one writer thread, which batches the
//! writes that arrive together into one transaction (group commit: one fsync for many
//! acknowledged writes), and reader threads beside it, which WAL lets read while the writer
//! writes. Callers send work as closures over a [`Connection`] and await the answer; a write is
//! answered only after the transaction that holds it committed, so an acknowledged write is on
//! disk (see [`Durability`] for what "on disk" survives).
//!
//! On this layer live the memory's contents, each confined to a [`Namespace`]: conversations
//! (the OpenAI Conversations API's model) and key-value entries (LangGraph's Store's model), with
//! full-text search over both. The HTTP shapes are the server's; this crate speaks Rust types.
//! A writer may be held to a [`Quota`] (what a tool plugin may hold in a namespace), checked in
//! the same write as what it writes. The MCP sessions of the handshake revisions live here too
//! ([`mcp_sessions`]), so any process on the database serves any of them.

pub mod cache;
mod clock;
pub mod conversations;
pub mod entries;
pub mod mcp_sessions;
mod migrations;
mod namespace;
mod quota;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use libsql::{Connection, Row, Rows, Value, params};
pub use migrations::SCHEMA_VERSION;
pub use namespace::{MAX_NAMESPACE_BYTES, Namespace, NamespaceError};
pub use quota::{Quota, QuotaExceeded};
pub use store::{Durability, OPERATION_DURATION_BOUNDS_US, Stats, Store, StoreError, StoreOptions};
