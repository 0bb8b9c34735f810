//! One JSON-RPC exchange with an MCP server over streamable HTTP: the POST (its body and the
//! headers each era requires) and its reply, read as one JSON object or as a stream of events
//! until the response carrying the request's id.

use aigw_egress::{Body, Headers, Request, Response};
use serde_json::{Value, json};

use super::failure::{RemoteFailure, masked};
use super::sse::Events;

/// The stateless revision the client speaks first.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The handshake revision it offers when the server is not modern.
pub const HANDSHAKE_VERSION: &str = "2025-11-25";
/// Handshake revisions the client accepts in an `initialize` answer (all use streamable HTTP).
pub const HANDSHAKE_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

/// A reply's body read at most this far (a tool result, a page of tools).
pub const MAX_REPLY_BYTES: usize = 16 << 20;
/// A refusal's body read at most this far: only a JSON-RPC error or a short reason is wanted.
const MAX_REFUSAL_BYTES: usize = 64 << 10;

/// How the client identifies itself (`clientInfo`).
pub fn client_info() -> Value {
    json!({"name": "aigw", "version": env!("CARGO_PKG_VERSION")})
}

/// The era-specific parts of a request: which headers go with it and whether `params` carry
/// the modern `_meta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// 2026-07-28: `_meta` and `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` on every
    /// request.
    Modern,
    /// The handshake era: the negotiated version (absent on `initialize` itself) and the
    /// session id the server gave, if any.
    Handshake {
        version: Option<String>,
        session: Option<String>,
    },
}

/// The POST of `method` (a request when `id` is given, else a notification) to `url`.
pub fn request(
    url: &str,
    framing: &Framing,
    id: Option<u64>,
    method: &str,
    params: Option<Value>,
) -> Request {
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "accept".to_owned(),
            "application/json, text/event-stream".to_owned(),
        ),
    ];
    let mut params = params;
    match framing {
        Framing::Modern => {
            headers.push(("mcp-protocol-version".to_owned(), MODERN_VERSION.to_owned()));
            headers.push(("mcp-method".to_owned(), method.to_owned()));
            let object = params.get_or_insert_with(|| json!({}));
            if let Some(name) = object.get("name").and_then(Value::as_str) {
                // Tool names the gateway calls are ASCII (they became function names), so
                // no Base64 sentinel encoding is needed.
                headers.push(("mcp-name".to_owned(), name.to_owned()));
            }
            if let Some(map) = object.as_object_mut() {
                map.insert(
                    "_meta".to_owned(),
                    json!({
                        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                        "io.modelcontextprotocol/clientCapabilities": {},
                        "io.modelcontextprotocol/clientInfo": client_info(),
                    }),
                );
            }
        }
        Framing::Handshake { version, session } => {
            if let Some(version) = version {
                headers.push(("mcp-protocol-version".to_owned(), version.clone()));
            }
            if let Some(session) = session {
                headers.push(("mcp-session-id".to_owned(), session.clone()));
            }
        }
    }
    let mut message = json!({"jsonrpc": "2.0", "method": method});
    if let Some(id) = id {
        message["id"] = json!(id);
    }
    if let Some(params) = params {
        message["params"] = params;
    }
    Request {
        method: "POST".to_owned(),
        url: url.to_owned(),
        headers,
        body: message.to_string().into_bytes(),
    }
}

/// What a reply said.
#[derive(Debug)]
pub enum Outcome {
    /// The response's `result`.
    Result(Value),
    /// A JSON-RPC error (in a 2xx or a 4xx answer), its message masked.
    Error {
        code: i64,
        message: String,
        data: Option<Value>,
    },
    /// No JSON-RPC message: a notification's `202`, or a refusal's text (masked).
    Text(String),
}

/// A reply: its status and headers, and what it said.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Headers,
    pub outcome: Outcome,
}

/// Reads `response` as the reply to request `id` (`None` for a notification). `secret` is
/// masked in any upstream text kept.
pub async fn reply(
    server: &str,
    response: Response,
    id: Option<u64>,
    secret: Option<&str>,
) -> Result<Reply, RemoteFailure> {
    let Response {
        status,
        headers,
        body,
    } = response;
    let event_stream = headers
        .get("content-type")
        .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
    let outcome = match (id, (200..300).contains(&status), event_stream) {
        (Some(id), true, true) => streamed(server, body, id, secret).await?,
        (Some(id), true, false) => {
            let bytes = body
                .collect(MAX_REPLY_BYTES)
                .await
                .map_err(|e| RemoteFailure::egress(server, &e))?;
            let message: Value = serde_json::from_slice(&bytes).map_err(|e| {
                RemoteFailure::bad(server, format_args!("the reply is not JSON: {e}"))
            })?;
            answer(server, &message, id, secret)?
                .ok_or_else(|| RemoteFailure::bad(server, "the reply is not the response"))?
        }
        _ => {
            // A notification's acknowledgement or a refusal: a JSON-RPC error body is read as
            // one, anything else is kept as text for the message.
            let bytes = body.collect(MAX_REFUSAL_BYTES).await.unwrap_or_default();
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(message) if message.get("error").is_some() => error(&message, secret),
                _ => Outcome::Text(masked(&String::from_utf8_lossy(&bytes), secret)),
            }
        }
    };
    Ok(Reply {
        status,
        headers,
        outcome,
    })
}

/// Reads events until the response to `id` (notifications and other messages before it are
/// skipped); a stream that ends first is a bad reply.
async fn streamed(
    server: &str,
    mut body: Body,
    id: u64,
    secret: Option<&str>,
) -> Result<Outcome, RemoteFailure> {
    let mut events = Events::default();
    let mut read = 0usize;
    while let Some(chunk) = body
        .chunk()
        .await
        .map_err(|e| RemoteFailure::egress(server, &e))?
    {
        read += chunk.len();
        if read > MAX_REPLY_BYTES {
            return Err(RemoteFailure::bad(
                server,
                format_args!("the reply's event stream exceeds {MAX_REPLY_BYTES} bytes"),
            ));
        }
        for data in events.feed(&chunk) {
            let Ok(message) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if let Some(outcome) = answer(server, &message, id, secret)? {
                return Ok(outcome);
            }
        }
    }
    Err(RemoteFailure::bad(
        server,
        "the reply's event stream ended before the response",
    ))
}

/// `message` as the response to `id`: `None` when it is another message (a notification, a
/// request of the server's).
fn answer(
    server: &str,
    message: &Value,
    id: u64,
    secret: Option<&str>,
) -> Result<Option<Outcome>, RemoteFailure> {
    if message.get("method").is_some() || message.get("id") != Some(&json!(id)) {
        // A response with `id: null` is an error about the request the server could not read.
        if message.get("id") == Some(&Value::Null) && message.get("error").is_some() {
            return Ok(Some(error(message, secret)));
        }
        return Ok(None);
    }
    if let Some(result) = message.get("result") {
        return Ok(Some(Outcome::Result(result.clone())));
    }
    if message.get("error").is_some() {
        return Ok(Some(error(message, secret)));
    }
    Err(RemoteFailure::bad(
        server,
        "the response has neither `result` nor `error`",
    ))
}

fn error(message: &Value, secret: Option<&str>) -> Outcome {
    let error = &message["error"];
    Outcome::Error {
        code: error["code"].as_i64().unwrap_or(0),
        message: masked(error["message"].as_str().unwrap_or_default(), secret),
        data: error.get("data").cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(request: &Request) -> Value {
        serde_json::from_slice(&request.body).unwrap_or(Value::Null)
    }

    fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn modern_requests_carry_meta_and_the_routing_headers() {
        let call = request(
            "http://127.0.0.1:1/mcp",
            &Framing::Modern,
            Some(7),
            "tools/call",
            Some(json!({"name": "add", "arguments": {"a": 1}})),
        );
        let message = body(&call);
        assert_eq!(message["id"], 7);
        assert_eq!(message["method"], "tools/call");
        assert_eq!(message["params"]["arguments"]["a"], 1);
        let meta = &message["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            MODERN_VERSION
        );
        assert!(meta["io.modelcontextprotocol/clientCapabilities"].is_object());
        assert_eq!(meta["io.modelcontextprotocol/clientInfo"]["name"], "aigw");
        assert_eq!(header(&call, "mcp-protocol-version"), Some(MODERN_VERSION));
        assert_eq!(header(&call, "mcp-method"), Some("tools/call"));
        assert_eq!(header(&call, "mcp-name"), Some("add"));
        assert_eq!(
            header(&call, "accept"),
            Some("application/json, text/event-stream")
        );
        let discover = request(
            "http://h/mcp",
            &Framing::Modern,
            Some(1),
            "server/discover",
            None,
        );
        assert!(body(&discover)["params"]["_meta"].is_object());
        assert_eq!(header(&discover, "mcp-name"), None);
    }

    #[test]
    fn handshake_requests_carry_the_session_and_version_only() {
        let framing = Framing::Handshake {
            version: Some("2025-11-25".to_owned()),
            session: Some("s-1".to_owned()),
        };
        let list = request("http://h/mcp", &framing, Some(2), "tools/list", None);
        let message = body(&list);
        assert!(message.get("params").is_none());
        assert_eq!(header(&list, "mcp-session-id"), Some("s-1"));
        assert_eq!(header(&list, "mcp-protocol-version"), Some("2025-11-25"));
        assert_eq!(header(&list, "mcp-method"), None);
        let initialized = request(
            "http://h/mcp",
            &framing,
            None,
            "notifications/initialized",
            None,
        );
        assert!(body(&initialized).get("id").is_none());
    }

    #[test]
    fn only_the_response_to_the_request_answers_it() {
        let note = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}});
        assert!(matches!(answer("t", &note, 3, None), Ok(None)));
        let other = json!({"jsonrpc": "2.0", "id": 2, "result": {}});
        assert!(matches!(answer("t", &other, 3, None), Ok(None)));
        let mine = json!({"jsonrpc": "2.0", "id": 3, "result": {"x": 1}});
        assert!(matches!(answer("t", &mine, 3, None), Ok(Some(Outcome::Result(r))) if r["x"] == 1));
        let refused = json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": -32600, "message": "bad sk-9"}});
        match answer("t", &refused, 3, Some("sk-9")) {
            Ok(Some(Outcome::Error { code, message, .. })) => {
                assert_eq!(code, -32600);
                assert_eq!(message, "bad ***");
            }
            other => panic!("{other:?}"),
        }
        let empty = json!({"jsonrpc": "2.0", "id": 3});
        assert!(answer("t", &empty, 3, None).is_err());
    }
}
