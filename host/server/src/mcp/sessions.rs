//! Sessions of the handshake revisions over the shared store: begun by `initialize` (a random,
//! unguessable id bound to the key that asked), found by every later request of any process on
//! the same database, renewed while used (idle time-to-live `[mcp] session_ttl_seconds`), ended
//! by `DELETE`. Another key's session is the same 404 as an unknown one: its holder learns
//! nothing of it.
//!
//! Renewing is a write, so it is done only once a tenth of the time-to-live has passed since
//! the last renewal: a busy session costs a read per request and a write every few minutes.

use aigw_memory::Store;
use aigw_memory::mcp_sessions::{self, McpSession};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;

use super::jsonrpc::{INTERNAL_ERROR, INVALID_REQUEST, RpcError};
use crate::auth::Principal;
use crate::gateway::Gateway;

/// A live session, as a request found it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The negotiated protocol version.
    pub(crate) version: String,
}

/// Whose sessions a principal may use: its key's (with authentication off, everyone's is one).
fn owner(principal: &Principal) -> &str {
    principal.key().map_or("", |key| key.id.as_str())
}

fn store(gateway: &Gateway) -> Result<&Store, RpcError> {
    gateway.memory.as_deref().ok_or_else(|| {
        RpcError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            INTERNAL_ERROR,
            "MCP sessions need the memory store, which this gateway runs without",
        )
    })
}

fn unavailable(error: &aigw_memory::StoreError) -> RpcError {
    tracing::warn!(error = %error, "mcp: the session store failed");
    RpcError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        INTERNAL_ERROR,
        format!("the session store is unavailable; retry later ({error})"),
    )
}

/// 404: what an unknown, expired or another key's session gets; the client begins a new one.
fn not_found() -> RpcError {
    RpcError::new(
        StatusCode::NOT_FOUND,
        INVALID_REQUEST,
        "no such MCP session (unknown or expired): send initialize to begin a new one",
    )
}

/// Begins a session for `principal` at `version`; its id.
pub(crate) async fn begin(
    gateway: &Gateway,
    principal: &Principal,
    version: &str,
    client: String,
) -> Result<String, RpcError> {
    let store = store(gateway)?;
    let bytes: [u8; 32] = rand::random();
    let id = format!("mcp_{}", URL_SAFE_NO_PAD.encode(bytes));
    let now = store.now_ms();
    let session = McpSession {
        id: id.clone(),
        key_id: owner(principal).to_owned(),
        protocol_version: version.to_owned(),
        client,
        created_at: now,
        expires_at: now.saturating_add(ttl_ms(gateway)),
    };
    mcp_sessions::begin(store, session)
        .await
        .map_err(|e| unavailable(&e))?;
    // The id is a bearer of the session (with the key): never logged.
    tracing::debug!(key = owner(principal), version, "mcp: session begun");
    Ok(id)
}

fn ttl_ms(gateway: &Gateway) -> i64 {
    i64::try_from(gateway.mcp.session_ttl.as_millis()).unwrap_or(i64::MAX)
}

/// The live session `id` of `principal`, renewed if due; 404 otherwise.
pub(crate) async fn resume(
    gateway: &Gateway,
    principal: &Principal,
    id: &str,
) -> Result<Session, RpcError> {
    let store = store(gateway)?;
    let found = mcp_sessions::find(store, id)
        .await
        .map_err(|e| unavailable(&e))?;
    let Some(found) = found.filter(|s| s.key_id == owner(principal)) else {
        return Err(not_found());
    };
    let ttl = ttl_ms(gateway);
    let now = store.now_ms();
    let renewed_at = found.expires_at.saturating_sub(ttl);
    if now.saturating_sub(renewed_at) >= ttl / 10
        && !mcp_sessions::renew(store, id, now.saturating_add(ttl))
            .await
            .map_err(|e| unavailable(&e))?
    {
        // It expired between the read and the renewal.
        return Err(not_found());
    }
    Ok(Session {
        version: found.protocol_version,
    })
}

/// Ends the session `id` of `principal`; 404 when it has no such live session.
pub(crate) async fn end(
    gateway: &Gateway,
    principal: &Principal,
    id: &str,
) -> Result<(), RpcError> {
    let store = store(gateway)?;
    match mcp_sessions::end(store, id, owner(principal)).await {
        Ok(true) => {
            tracing::debug!(key = owner(principal), "mcp: session ended");
            Ok(())
        }
        Ok(false) => Err(not_found()),
        Err(e) => Err(unavailable(&e)),
    }
}
