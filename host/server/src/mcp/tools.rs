//! `tools/list` and `tools/call` over the gateway's toolbox, for both revisions. The list is
//! what the caller's key may use ([`Toolbox::visible`](crate::tools::Toolbox::visible), sorted
//! by name), a page at a time behind an opaque cursor; a call goes through
//! [`Toolbox::call`](crate::tools::Toolbox::call) like every other surface's, so the grant,
//! the key's tool quota, the argument check and the shared cache are the same here.
//!
//! A tool that ran and failed (an upstream down, arguments the schema refuses, the quota spent)
//! answers a normal result with `isError: true` and the reason as text, so the model can see it
//! and react; only a tool that is unknown or not the key's is a JSON-RPC error (`-32602`), as
//! is a call of the wrong shape.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::Exchange;
use super::jsonrpc::RpcError;
use crate::tools::{Tool, ToolCaller, ToolError, Via};

/// The most tools on one page of `tools/list`.
const PAGE_SIZE: usize = 100;
/// How long a stateless client may cache a list (a key's grants change through the admin API,
/// which every process sees within its key refresh).
const LIST_TTL_MS: u64 = 60_000;

/// Which revision a result is shaped for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Era<'a> {
    /// 2026-07-28: cache hints on lists (the caller adds `resultType`), errors with 4xx.
    Modern,
    /// A handshake revision, by its negotiated version: errors go out with 200.
    Legacy(&'a str),
}

impl Era<'_> {
    /// The status a JSON-RPC error of a method goes out with.
    fn error_status(self) -> StatusCode {
        match self {
            Era::Modern => StatusCode::BAD_REQUEST,
            Era::Legacy(_) => StatusCode::OK,
        }
    }

    /// Whether tools have `title` and `outputSchema`, and results `structuredContent`: from
    /// 2025-06-18 on.
    fn structured(self) -> bool {
        !matches!(self, Era::Legacy("2025-03-26"))
    }
}

/// `tools/list`: one page of the tools the caller may use, and the cursor of the next.
pub(crate) fn list(
    exchange: &Exchange<'_>,
    params: &Map<String, Value>,
    era: Era<'_>,
) -> Result<Value, RpcError> {
    let after = match params.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => Some(decode_cursor(cursor).ok_or_else(|| {
            RpcError::invalid_params(
                era.error_status(),
                "params.cursor is not a cursor this server gave",
            )
        })?),
        Some(_) => {
            return Err(RpcError::invalid_params(
                era.error_status(),
                "params.cursor must be a string",
            ));
        }
    };
    let visible = exchange.gateway.tools.visible(exchange.principal);
    let start = after.map_or(0, |after| {
        visible.partition_point(|tool| *tool.name <= *after.as_str())
    });
    let page: Vec<Value> = visible
        .iter()
        .skip(start)
        .take(PAGE_SIZE)
        .map(|tool| described(tool, era))
        .collect();
    let mut result = json!({"tools": page});
    if start + PAGE_SIZE < visible.len()
        && let Some(last) = visible.get(start + PAGE_SIZE - 1)
    {
        result["nextCursor"] = json!(URL_SAFE_NO_PAD.encode(last.name.as_bytes()));
    }
    if let Era::Modern = era {
        result["ttlMs"] = json!(LIST_TTL_MS);
        // The list depends on the key: no cache may hand it to another.
        let scope = if exchange.principal.key().is_some() {
            "private"
        } else {
            "public"
        };
        result["cacheScope"] = json!(scope);
    }
    Ok(result)
}

/// The tool name a cursor stands for (the last one of the page before).
fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok()
}

/// A tool as MCP lists it.
fn described(tool: &Tool, era: Era<'_>) -> Value {
    let mut described = json!({
        "name": &*tool.name,
        "description": tool.description,
        "inputSchema": &*tool.parameters,
    });
    if era.structured() {
        if !tool.title.is_empty() {
            described["title"] = json!(tool.title);
        }
        if let Some(output) = &tool.output {
            described["outputSchema"] = json!(&**output);
        }
    }
    described
}

/// `tools/call`: the tool's answer, or its failure as an `isError` result.
pub(crate) async fn call(
    exchange: &Exchange<'_>,
    params: &Map<String, Value>,
    era: Era<'_>,
) -> Result<Value, RpcError> {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Err(RpcError::invalid_params(
            era.error_status(),
            "tools/call needs params.name, the tool's name",
        ));
    };
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(arguments @ Value::Object(_)) => arguments.clone(),
        Some(_) => {
            return Err(RpcError::invalid_params(
                era.error_status(),
                "params.arguments must be an object",
            ));
        }
    };
    // The memory namespace a tool acts in, named as on every surface (`x-aigw-namespace`,
    // within the key's grant).
    let memory = crate::memory::Caller::from_headers(exchange.principal, exchange.headers)
        .map_err(|refused| RpcError::invalid_params(era.error_status(), refused.message))?;
    let request_id = format!("mcp-{:016x}", rand::random::<u64>());
    let caller = ToolCaller {
        principal: exchange.principal,
        namespace: Some(memory.namespace.as_str()),
        via: Via::Mcp,
        request_id: &request_id,
    };
    let gateway = exchange.gateway;
    match gateway.tools.call(gateway, &caller, name, &arguments).await {
        Ok(answer) => {
            let mut result = json!({
                "content": [{"type": "text", "text": answer.text}],
                "isError": false,
            });
            // Structured content is an object; any other value travels as its text alone.
            if era.structured() && answer.value.is_object() {
                result["structuredContent"] = answer.value;
            }
            Ok(result)
        }
        Err(error @ (ToolError::NotFound(_) | ToolError::NotGranted(_))) => Err(
            RpcError::invalid_params(era.error_status(), error.message()),
        ),
        Err(error) => Ok(json!({
            "content": [{"type": "text", "text": failure_text(&error)}],
            "isError": true,
        })),
    }
}

/// What the model is told of a failed call: the toolbox's own message, with the field at
/// fault or when to retry.
fn failure_text(error: &ToolError) -> String {
    let mut text = error.message().to_owned();
    match error {
        ToolError::InvalidArguments { field, .. } if !field.is_empty() && !text.contains(field) => {
            text = format!("invalid arguments: {field}: {text}");
        }
        ToolError::Limited {
            retry_after: Some(wait),
            ..
        } if !text.contains("retry") => {
            text.push_str(&format!(
                " (retry in {} s)",
                wait.as_secs_f64().ceil().max(1.0)
            ));
        }
        _ => {}
    }
    text
}
