//! The stateless revision (2026-07-28): no handshake, no session; every request carries its
//! protocol version, client capabilities and client info in `params._meta`, and mirrors the
//! version, its method and (for `tools/call`) the tool's name in headers, so an intermediary
//! can route it without reading the body. The checks run in the reference SDK's order, first
//! failure wins: the envelope, the headers against the body (`-32020`), the version
//! (`-32022`, naming every version served, so a client that also speaks a handshake revision
//! falls back to it), then the method (`-32601`, 404). Every result carries
//! `resultType: "complete"` and the server's info in `_meta`; list results say how long they may
//! be cached and by whom (`ttlMs`, `cacheScope`).
//!
//! No method here needs a client capability (sampling, elicitation, roots), so `-32021` is never
//! the answer: a request's `clientCapabilities` must be present (the envelope) but is not
//! consulted.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::jsonrpc::{
    self, HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, Message, RpcError,
    UNSUPPORTED_VERSION,
};
use super::tools::{self, Era};
use super::{
    Exchange, METHOD_HEADER, MODERN_VERSION, NAME_HEADER, PROTOCOL_VERSION_HEADER,
    PROTOCOL_VERSION_META, Reply, header_text, server_info, supported_versions,
};

const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";
const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";
/// How long a client may cache `server/discover`'s answer: it changes only with the config.
const DISCOVER_TTL_MS: u64 = 3_600_000;

/// Answers one message of the stateless revision.
pub(crate) async fn answer(exchange: &Exchange<'_>, message: Message) -> Reply {
    let (id, method, params) = match message {
        Message::Request { id, method, params } => (id, method, params),
        Message::Notification { .. } => {
            // No client notification means anything here (closing a response is how a request
            // is cancelled); one at a served version is taken, as the SDKs still send some.
            return match served_version(header_text(exchange.headers, PROTOCOL_VERSION_HEADER)) {
                Ok(()) => Reply::accepted(),
                Err(error) => Reply::error(&error, None),
            };
        }
        Message::Response => {
            let error = RpcError::new(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "a response was posted, but this server sends no requests to answer",
            );
            return Reply::error(&error, None);
        }
    };
    if let Err(error) = checked(exchange, &method, &params) {
        return Reply::error(&error, Some(&id));
    }
    let answered = match method.as_str() {
        "server/discover" => Ok(discover(exchange)),
        "tools/list" => tools::list(exchange, &params, Era::Modern),
        "tools/call" => tools::call(exchange, &params, Era::Modern).await,
        other => Err(RpcError::new(
            StatusCode::NOT_FOUND,
            METHOD_NOT_FOUND,
            format!(
                "method not found: `{other}` (this server offers server/discover, tools/list \
                 and tools/call)"
            ),
        )),
    };
    match answered {
        Ok(mut result) => {
            result["resultType"] = json!("complete");
            result["_meta"] = json!({SERVER_INFO_META: server_info()});
            Reply::message(StatusCode::OK, jsonrpc::result(&id, result))
        }
        Err(error) => Reply::error(&error, Some(&id)),
    }
}

/// The envelope, the headers against the body, and the version.
fn checked(
    exchange: &Exchange<'_>,
    method: &str,
    params: &Map<String, Value>,
) -> Result<(), RpcError> {
    let mismatch =
        |message: String| RpcError::new(StatusCode::BAD_REQUEST, HEADER_MISMATCH, message);
    let meta = params.get("_meta").and_then(Value::as_object);
    let Some(header_version) = header_text(exchange.headers, PROTOCOL_VERSION_HEADER) else {
        return Err(mismatch(
            "the MCP-Protocol-Version header is required and must equal \
             params._meta[\"io.modelcontextprotocol/protocolVersion\"]"
                .to_owned(),
        ));
    };
    let body_version = meta.and_then(|m| m.get(PROTOCOL_VERSION_META));
    if body_version.and_then(Value::as_str) != Some(header_version) {
        return Err(mismatch(format!(
            "the MCP-Protocol-Version header (`{}`) does not match \
             params._meta[\"io.modelcontextprotocol/protocolVersion\"] ({})",
            quoted(header_version),
            body_version.map_or_else(|| "absent".to_owned(), |v| quoted(&v.to_string()))
        )));
    }
    match header_text(exchange.headers, METHOD_HEADER) {
        Some(header) if header == method => {}
        Some(header) => {
            return Err(mismatch(format!(
                "the Mcp-Method header (`{}`) does not match the body's method `{}`",
                quoted(header),
                quoted(method)
            )));
        }
        None => {
            return Err(mismatch(format!(
                "the Mcp-Method header is required (here `{}`)",
                quoted(method)
            )));
        }
    }
    if let Some(key) = name_parameter(method)
        && let Some(name) = params.get(key).and_then(Value::as_str)
    {
        let header = exchange.headers.get(NAME_HEADER);
        let decoded = header
            .and_then(|h| h.to_str().ok())
            .and_then(decode_header_value);
        if decoded.as_deref() != Some(name) {
            return Err(mismatch(match header {
                None => format!("the Mcp-Name header is required on {method} (params.{key})"),
                Some(_) => format!("the Mcp-Name header does not match params.{key}"),
            }));
        }
    }
    served_version(Some(header_version))?;
    if !meta
        .and_then(|m| m.get(CLIENT_CAPABILITIES_META))
        .is_some_and(Value::is_object)
    {
        return Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            INVALID_PARAMS,
            "params._meta must carry io.modelcontextprotocol/clientCapabilities (an object, \
             `{}` when the client offers none)",
        ));
    }
    Ok(())
}

/// `Ok` for the stateless version; `-32022` naming every version served otherwise, or
/// `-32020` when none is named.
fn served_version(version: Option<&str>) -> Result<(), RpcError> {
    match version {
        Some(MODERN_VERSION) => Ok(()),
        Some(other) => Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            UNSUPPORTED_VERSION,
            format!("unsupported protocol version `{}`", quoted(other)),
        )
        .data(json!({"supported": supported_versions(), "requested": other}))),
        None => Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            "the MCP-Protocol-Version header is required",
        )),
    }
}

/// The body parameter `Mcp-Name` mirrors, for the methods that have one.
fn name_parameter(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// A header value as the client meant it: verbatim, or the UTF-8 inside the
/// `=?base64?…?=` sentinel (how non-ASCII names travel). A malformed sentinel (bad or
/// non-canonical base64, bad UTF-8) decodes to nothing, so it matches no name.
fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    let bytes = STANDARD.decode(payload).ok()?;
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// At most 100 characters of a client's text, for an error message.
fn quoted(text: &str) -> String {
    text.chars().take(100).collect()
}

/// `server/discover`: the versions served, the capabilities, who the server is, and its
/// instructions; the same for every caller (`public`).
fn discover(exchange: &Exchange<'_>) -> Value {
    json!({
        "supportedVersions": supported_versions(),
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": server_info(),
        "instructions": exchange.gateway.mcp.instructions,
        "ttlMs": DISCOVER_TTL_MS,
        "cacheScope": "public",
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn header_values_decode_from_the_base64_sentinel() {
        assert_eq!(decode_header_value("echo").as_deref(), Some("echo"));
        // "météo" as the client's encoder writes it.
        let encoded = format!("=?base64?{}?=", STANDARD.encode("météo"));
        assert_eq!(decode_header_value(&encoded).as_deref(), Some("météo"));
        assert_eq!(decode_header_value("=?base64?!!!?="), None);
        // Non-canonical: trailing bits set.
        assert_eq!(decode_header_value("=?base64?ZW=?="), None);
        let not_utf8 = format!("=?base64?{}?=", STANDARD.encode([0xff, 0xfe]));
        assert_eq!(decode_header_value(&not_utf8), None);
    }

    #[test]
    fn an_unsupported_version_names_every_served_one() {
        let error = served_version(Some("1900-01-01")).unwrap_err();
        assert_eq!(error.code, UNSUPPORTED_VERSION);
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        let data = error.data.unwrap();
        assert_eq!(data["requested"], "1900-01-01");
        assert_eq!(
            data["supported"],
            json!(["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"])
        );
        assert!(served_version(Some(MODERN_VERSION)).is_ok());
        assert_eq!(served_version(None).unwrap_err().code, HEADER_MISMATCH);
    }
}
