//! JSON-RPC 2.0 as MCP uses it over HTTP: one message per POST body (no batches), the error
//! codes of both revisions (not -32021, a missing client capability: no method here needs one), and the HTTP status each error goes out with. A message's id is a
//! string or an integer (MCP forbids `null`); an error for a body whose id could not be read
//! carries `"id": null`, as JSON-RPC requires.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

/// The body is not JSON.
pub(crate) const PARSE_ERROR: i64 = -32700;
/// The body is JSON but not a request, notification or response (or the transport refused it).
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
/// Unknown tool, or parameters of the wrong shape.
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// 2026-07-28: a required header is missing or disagrees with the body.
pub(crate) const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the requested protocol version is not one the server speaks.
pub(crate) const UNSUPPORTED_VERSION: i64 = -32022;

/// One message a client posted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// Wants an answer.
    Request {
        id: Value,
        method: String,
        /// The `params` object (an empty one when absent).
        params: Map<String, Value>,
    },
    /// Wants none.
    Notification { method: String },
    /// A client's answer to a server's request (this server sends none; it is acknowledged).
    Response,
}

impl Message {
    pub(crate) fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method } => Some(method),
            Message::Response => None,
        }
    }

    /// The `_meta` object of the params, when the message is a request carrying one.
    pub(crate) fn meta(&self) -> Option<&Map<String, Value>> {
        match self {
            Message::Request { params, .. } => params.get("_meta").and_then(Value::as_object),
            _ => None,
        }
    }
}

/// A JSON-RPC error and the HTTP status it is sent with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcError {
    pub(crate) status: StatusCode,
    pub(crate) code: i64,
    pub(crate) message: String,
    pub(crate) data: Option<Value>,
}

impl RpcError {
    pub(crate) fn new(status: StatusCode, code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            status,
            code,
            message: message.into(),
            data: None,
        }
    }

    pub(crate) fn data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }

    /// `-32602` (unknown tool, parameters of the wrong shape), with `status`: the handshake
    /// revisions answer JSON-RPC errors with 200, the stateless one with 400.
    pub(crate) fn invalid_params(status: StatusCode, message: impl Into<String>) -> RpcError {
        RpcError::new(status, INVALID_PARAMS, message)
    }

    /// The error object's JSON, answering the request `id` (`None`: `"id": null`).
    pub(crate) fn body(&self, id: Option<&Value>) -> Bytes {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        let message = json!({
            "jsonrpc": "2.0",
            "id": id.cloned().unwrap_or(Value::Null),
            "error": error,
        });
        Bytes::from(message.to_string())
    }
}

/// The success answer to the request `id`.
pub(crate) fn result(id: &Value, result: Value) -> Bytes {
    Bytes::from(json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string())
}

/// Reads one message from a POST body. A batch, a non-object, a wrong `jsonrpc` or an id that is
/// neither a string nor an integer is `-32600`; text that is not JSON `-32700` (both 400).
pub(crate) fn parse(body: &[u8]) -> Result<Message, RpcError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            PARSE_ERROR,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let invalid = |why: &str| {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            format!("the body must be one JSON-RPC 2.0 request or notification object: {why}"),
        )
    };
    let Value::Object(mut object) = value else {
        return Err(invalid(if value.is_array() {
            "batches are not accepted"
        } else {
            "it is not an object"
        }));
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("`jsonrpc` must be \"2.0\""));
    }
    let id = object.remove("id");
    if let Some(id) = &id
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return Err(invalid("`id` must be a string or an integer"));
    }
    let Some(method) = object.get("method") else {
        if id.is_some() && (object.contains_key("result") || object.contains_key("error")) {
            return Ok(Message::Response);
        }
        return Err(invalid("it has no `method`"));
    };
    let Some(method) = method.as_str().map(str::to_owned) else {
        return Err(invalid("`method` must be a string"));
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => return Err(invalid("`params` must be an object")),
    };
    Ok(match id {
        Some(id) => Message::Request { id, method, params },
        None => Message::Notification { method },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        let request =
            parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"a"}}"#)
                .unwrap();
        let Message::Request { id, method, params } = &request else {
            panic!("{request:?}")
        };
        assert_eq!((id, method.as_str()), (&json!(7), "tools/list"));
        assert_eq!(params["cursor"], "a");
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#).unwrap(),
            Message::Request {
                id: json!("x"),
                method: "ping".to_owned(),
                params: Map::new()
            }
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
            Message::Notification {
                method: "notifications/initialized".to_owned()
            }
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap(),
            Message::Response
        );
    }

    #[test]
    fn malformed_bodies_are_parse_errors_or_invalid_requests() {
        let code = |body: &[u8]| parse(body).unwrap_err().code;
        assert_eq!(code(b"{not json"), PARSE_ERROR);
        assert_eq!(
            code(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            INVALID_REQUEST
        );
        assert_eq!(code(br#""ping""#), INVALID_REQUEST);
        assert_eq!(code(br#"{"id":1,"method":"ping"}"#), INVALID_REQUEST);
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":3}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"a","params":[1]}"#),
            INVALID_REQUEST
        );
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1}"#), INVALID_REQUEST);
        assert!(parse(b"{").unwrap_err().status == StatusCode::BAD_REQUEST);
    }

    #[test]
    fn errors_carry_their_id_or_null_and_their_data() {
        let error = RpcError::new(StatusCode::BAD_REQUEST, UNSUPPORTED_VERSION, "no")
            .data(json!({"supported": ["2026-07-28"], "requested": "1900-01-01"}));
        let body: Value = serde_json::from_slice(&error.body(Some(&json!(3)))).unwrap();
        assert_eq!(
            body,
            json!({"jsonrpc": "2.0", "id": 3, "error": {"code": -32022, "message": "no",
                   "data": {"supported": ["2026-07-28"], "requested": "1900-01-01"}}})
        );
        let body: Value = serde_json::from_slice(&error.body(None)).unwrap();
        assert_eq!(body["id"], Value::Null);
        let ok: Value = serde_json::from_slice(&result(&json!("a"), json!({}))).unwrap();
        assert_eq!(ok, json!({"jsonrpc": "2.0", "id": "a", "result": {}}));
    }
}
