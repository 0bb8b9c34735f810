//! The handshake revisions (2025-11-25, 2025-06-18, 2025-03-26): `initialize` negotiates a
//! version and begins a session whose id (`Mcp-Session-Id`) every later message echoes;
//! `MCP-Protocol-Version` names the negotiated version after it (absent: 2025-03-26, as the
//! transport says). A request without a session id is a 400, one naming an unknown, expired or
//! another key's session a 404 (the client begins a new one); `DELETE` ends a session.
//!
//! Results are this era's: no `resultType`, no cache hints. A JSON-RPC error (unknown method,
//! unknown tool) is a 200 carrying the error, as these revisions' servers answer on the
//! session's stream; only the transport's refusals (session, version header) are 4xx.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::jsonrpc::{self, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, Message, RpcError};
use super::sessions::{self, Session};
use super::tools::{self, Era};
use super::{
    ASSUMED_LEGACY_VERSION, Exchange, LEGACY_VERSIONS, PROTOCOL_VERSION_HEADER, Reply,
    SESSION_HEADER, header_text, server_info,
};

/// The most bytes of a client's `clientInfo` kept with its session (what it says of itself is
/// for the operator's eyes, not a place to store data).
const MAX_CLIENT_INFO_BYTES: usize = 2048;

/// Answers one message of the handshake revisions.
pub(crate) async fn answer(exchange: &Exchange<'_>, message: Message) -> Reply {
    if let Message::Request { id, method, params } = &message
        && method == "initialize"
    {
        return match initialize(exchange, params).await {
            Ok((result, session)) => Reply {
                session: Some(session),
                ..Reply::message(StatusCode::OK, jsonrpc::result(id, result))
            },
            Err(error) => Reply::error(&error, Some(id)),
        };
    }
    let id = match &message {
        Message::Request { id, .. } => Some(id),
        _ => None,
    };
    let session = match session_of(exchange).await {
        Ok(session) => session,
        Err(error) => return Reply::error(&error, id),
    };
    let Message::Request { id, method, params } = message else {
        // `notifications/initialized`, a cancellation, or an answer to nothing we asked: taken.
        return Reply::accepted();
    };
    let era = Era::Legacy(&session.version);
    let answered = match method.as_str() {
        "ping" => Ok(json!({})),
        "tools/list" => tools::list(exchange, &params, era),
        "tools/call" => tools::call(exchange, &params, era).await,
        other => Err(RpcError::new(
            StatusCode::OK,
            METHOD_NOT_FOUND,
            format!(
                "method not found: `{other}` (this server offers tools/list, tools/call and ping)"
            ),
        )),
    };
    match answered {
        Ok(result) => Reply::message(StatusCode::OK, jsonrpc::result(&id, result)),
        Err(error) => Reply::error(&error, Some(&id)),
    }
}

/// The version header checked, then the session the request names, found and renewed.
async fn session_of(exchange: &Exchange<'_>) -> Result<Session, RpcError> {
    let version =
        header_text(exchange.headers, PROTOCOL_VERSION_HEADER).unwrap_or(ASSUMED_LEGACY_VERSION);
    if !LEGACY_VERSIONS.contains(&version) {
        return Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            format!(
                "unsupported MCP-Protocol-Version `{}`; this server speaks {}",
                version.chars().take(40).collect::<String>(),
                LEGACY_VERSIONS.join(", ")
            ),
        ));
    }
    let Some(id) = header_text(exchange.headers, SESSION_HEADER) else {
        return Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "missing Mcp-Session-Id header: send initialize first and echo the session id it \
             returns",
        ));
    };
    sessions::resume(exchange.gateway, exchange.principal, id).await
}

/// `initialize`: the negotiated version (the one asked for when served, else the newest), the
/// server's capabilities and instructions, and a new session.
async fn initialize(
    exchange: &Exchange<'_>,
    params: &Map<String, Value>,
) -> Result<(Value, String), RpcError> {
    let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
        return Err(RpcError::new(
            StatusCode::OK,
            INVALID_PARAMS,
            "initialize needs params.protocolVersion (a string such as \"2025-11-25\")",
        ));
    };
    let version = LEGACY_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or(LEGACY_VERSIONS[0]);
    let client_info = params
        .get("clientInfo")
        .filter(|info| info.to_string().len() <= MAX_CLIENT_INFO_BYTES)
        .cloned()
        .unwrap_or(Value::Null);
    let client = json!({"clientInfo": client_info}).to_string();
    let session = sessions::begin(exchange.gateway, exchange.principal, version, client).await?;
    let result = json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": server_info(),
        "instructions": exchange.gateway.mcp.instructions,
    });
    Ok((result, session))
}

/// `DELETE /mcp`: ends the session it names (204); 400 without one, 404 for one not the key's.
pub(crate) async fn end(exchange: &Exchange<'_>) -> Reply {
    let Some(id) = header_text(exchange.headers, SESSION_HEADER) else {
        let error = RpcError::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "DELETE /mcp ends a session: it needs the Mcp-Session-Id header",
        );
        return Reply::error(&error, None);
    };
    match sessions::end(exchange.gateway, exchange.principal, id).await {
        Ok(()) => Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
            session: None,
        },
        Err(error) => Reply::error(&error, None),
    }
}
