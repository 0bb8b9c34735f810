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
//! What lives in the store (conversations, key-value entries, keys, quotas) is built on this
//! layer by the crates above it; this crate knows tables only through its migrations.

mod migrations;
mod store;

pub use libsql::{Connection, Row, Rows, Value, params};
pub use migrations::SCHEMA_VERSION;
pub use store::{Durability, Stats, Store, StoreError, StoreOptions};
