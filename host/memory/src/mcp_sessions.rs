//! MCP sessions of the handshake revisions (2025-11-25 and before): the `Mcp-Session-Id` a
//! client got from `initialize`, with the key it belongs to, the negotiated protocol version,
//! what the client said of itself, and when it expires. They live in the shared store (migration
//! 8's `mcp_sessions` table) so that every process on the same database serves every session: a
//! client needs no sticky routing to one replica.
//!
//! An expired session is never returned, whether or not it was deleted yet; expired rows are
//! deleted a batch at a time whenever a session begins, so the table holds about the live ones.

use crate::{Store, StoreError};

/// How many expired sessions one new session's write deletes at most (the index on
/// `expires_at` finds them; a bound keeps that write short however many expired meanwhile).
const SWEEP_BATCH: i64 = 100;

/// One session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpSession {
    /// The `Mcp-Session-Id`: random, unguessable, visible ASCII.
    pub id: String,
    /// The id of the virtual key that began it (empty with authentication off).
    pub key_id: String,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// What the client said in `initialize` (`clientInfo`, `capabilities`), as JSON text.
    pub client: String,
    /// Unix milliseconds, by the store's clock.
    pub created_at: i64,
    pub expires_at: i64,
}

/// Stores `session` (a new id), and deletes a batch of expired ones.
pub async fn begin(store: &Store, session: McpSession) -> Result<(), StoreError> {
    let now = store.now_ms();
    store
        .write(move |c| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM mcp_sessions WHERE id IN (
                         SELECT id FROM mcp_sessions WHERE expires_at <= ?1
                         ORDER BY expires_at LIMIT ?2)",
                    (now, SWEEP_BATCH),
                )
                .await?;
                c.execute(
                    "INSERT INTO mcp_sessions
                         (id, key_id, protocol_version, client, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    (
                        session.id,
                        session.key_id,
                        session.protocol_version,
                        session.client,
                        session.created_at,
                        session.expires_at,
                    ),
                )
                .await?;
                Ok(())
            })
        })
        .await
}

/// The session `id`, unless it is unknown or expired (by the store's clock).
pub async fn find(store: &Store, id: &str) -> Result<Option<McpSession>, StoreError> {
    let now = store.now_ms();
    let id = id.to_owned();
    store
        .read(move |c| {
            Box::pin(async move {
                let mut rows = c
                    .query(
                        "SELECT id, key_id, protocol_version, client, created_at, expires_at
                         FROM mcp_sessions WHERE id = ?1 AND expires_at > ?2",
                        (id, now),
                    )
                    .await?;
                let Some(row) = rows.next().await? else {
                    return Ok(None);
                };
                Ok(Some(McpSession {
                    id: row.get(0)?,
                    key_id: row.get(1)?,
                    protocol_version: row.get(2)?,
                    client: row.get(3)?,
                    created_at: row.get(4)?,
                    expires_at: row.get(5)?,
                }))
            })
        })
        .await
}

/// Moves the session's expiry to `expires_at`, if it is still live; whether it was.
pub async fn renew(store: &Store, id: &str, expires_at: i64) -> Result<bool, StoreError> {
    let now = store.now_ms();
    let id = id.to_owned();
    store
        .write(move |c| {
            Box::pin(async move {
                let changed = c
                    .execute(
                        "UPDATE mcp_sessions SET expires_at = ?1 WHERE id = ?2 AND expires_at > ?3",
                        (expires_at, id, now),
                    )
                    .await?;
                Ok(changed > 0)
            })
        })
        .await
}

/// Ends the session `id` of the key `key_id`; whether there was such a live session (another
/// key's is left alone).
pub async fn end(store: &Store, id: &str, key_id: &str) -> Result<bool, StoreError> {
    let now = store.now_ms();
    let (id, key_id) = (id.to_owned(), key_id.to_owned());
    store
        .write(move |c| {
            Box::pin(async move {
                let deleted = c
                    .execute(
                        "DELETE FROM mcp_sessions WHERE id = ?1 AND key_id = ?2 AND expires_at > ?3",
                        (id, key_id, now),
                    )
                    .await?;
                Ok(deleted > 0)
            })
        })
        .await
}
