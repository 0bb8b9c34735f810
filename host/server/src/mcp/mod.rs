//! The MCP server at `/mcp`: the tools a key may use, offered to MCP clients over Streamable
//! HTTP, in both revisions on the one endpoint. The stateless revision (2026-07-28,
//! [`modern`]) carries everything a request needs in its own headers and `_meta`; the handshake
//! revisions (2025-11-25, 2025-06-18, 2025-03-26, [`legacy`]) begin with `initialize` and keep
//! a session ([`sessions`], in the shared store, so any process serves any session). Tools are
//! listed and called through the gateway's toolbox ([`tools`]), the one path REST and the chat
//! loop use too, so grants, quotas, argument checks and the cache are the same everywhere.
//!
//! Which revision a POST speaks is told from what only that revision sends: a
//! `MCP-Protocol-Version` header naming a revision without a handshake, a `_meta` carrying
//! `io.modelcontextprotocol/protocolVersion`, or `server/discover`. Everything else is the
//! handshake revisions'. A client that speaks both probes with `server/discover` and falls back
//! to `initialize` on a 4xx without a modern error body, so each side answers only in its own
//! shape: modern results carry `resultType` and their errors the stateless revision's status
//! table; handshake results never do.
//!
//! Before either: the `Origin` (a browser page may call only from a configured CORS origin or
//! from the gateway's own), a JSON content type, an `Accept` the answer can satisfy, and the
//! body limit. The key was checked before any handler, as on every `/v1` path.

mod jsonrpc;
mod legacy;
mod modern;
mod sessions;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::body::Body;
use crate::cors::Cors;
use crate::gateway::Gateway;
use crate::hosts::AllowedHosts;
use crate::routes::Route;

use jsonrpc::{HEADER_MISMATCH, INVALID_REQUEST, Message, RpcError};

/// The endpoint.
pub(crate) const PATH: &str = "/mcp";
/// Its methods: GET has no stream to open here (405, which the spec allows).
pub(crate) const ROUTE: Route = Route::new(PATH, "POST, DELETE");

/// The stateless revision.
pub(crate) const MODERN_VERSION: &str = "2026-07-28";
/// The handshake revisions served, newest first (the first is the one offered when a client
/// asks for another).
pub(crate) const LEGACY_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// A handshake revision not served: it used the older HTTP+SSE transport.
const UNSERVED_HANDSHAKE_VERSIONS: [&str; 1] = ["2024-11-05"];
/// The version a handshake-revision request without `MCP-Protocol-Version` is taken to speak,
/// as the 2025-06-18 transport says.
pub(crate) const ASSUMED_LEGACY_VERSION: &str = "2025-03-26";

pub(crate) const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
pub(crate) const METHOD_HEADER: &str = "mcp-method";
pub(crate) const NAME_HEADER: &str = "mcp-name";
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
/// The `_meta` key of the stateless revision's protocol version.
pub(crate) const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";

/// Every version served, for `server/discover` and `-32022`'s `data.supported`.
pub(crate) fn supported_versions() -> Value {
    let mut all = vec![MODERN_VERSION];
    all.extend(LEGACY_VERSIONS);
    json!(all)
}

/// What this server says of itself.
pub(crate) fn server_info() -> Value {
    json!({"name": "aigw", "title": "aigw tools", "version": env!("CARGO_PKG_VERSION")})
}

/// What answering one message needs.
pub(crate) struct Exchange<'a> {
    pub(crate) gateway: &'a Arc<Gateway>,
    pub(crate) principal: &'a Principal,
    pub(crate) headers: &'a HeaderMap,
}

/// An answer before it is framed: its status, its JSON-RPC message (none: an empty body) and,
/// for `initialize`, the session it began.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Option<Bytes>,
    pub(crate) session: Option<String>,
}

impl Reply {
    pub(crate) fn message(status: StatusCode, body: Bytes) -> Reply {
        Reply {
            status,
            body: Some(body),
            session: None,
        }
    }

    /// 202: a notification or a response was taken.
    pub(crate) fn accepted() -> Reply {
        Reply {
            status: StatusCode::ACCEPTED,
            body: None,
            session: None,
        }
    }

    /// `error` answering the request `id` (`None`: the id is unknown).
    pub(crate) fn error(error: &RpcError, id: Option<&Value>) -> Reply {
        Reply::message(error.status, error.body(id))
    }
}

/// How an answer with a body is framed, from the request's `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Json,
    /// One `message` event on a `text/event-stream`, for a client that accepts only that.
    Sse,
}

/// Answers a request to `/mcp` for `principal` (already authenticated).
pub(crate) async fn handle<B>(
    gateway: Arc<Gateway>,
    principal: &Principal,
    edge: (&AllowedHosts, &Cors),
    body_read_timeout: Duration,
    request: Request<B>,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Err(refused) = origin_allowed(request.headers(), edge.0, edge.1) {
        return render(Reply::error(&refused, None), Framing::Json);
    }
    let headers = request.headers().clone();
    let exchange = Exchange {
        gateway: &gateway,
        principal,
        headers: &headers,
    };
    match *request.method() {
        Method::POST => {}
        Method::DELETE => return render(legacy::end(&exchange).await, Framing::Json),
        _ => return crate::service::method_not_allowed(ROUTE.allow),
    }
    if let Err(refused) = crate::content_type::require_json(&headers) {
        let error = RpcError::new(refused.status, INVALID_REQUEST, refused.message);
        return render(Reply::error(&error, None), Framing::Json);
    }
    let framing = match framing(&headers) {
        Ok(framing) => framing,
        Err(refused) => return render(Reply::error(&refused, None), Framing::Json),
    };
    let body = match crate::service::read_body(&gateway, body_read_timeout, request).await {
        Ok(body) => body,
        Err(refused) => {
            let error = RpcError::new(refused.status, INVALID_REQUEST, refused.message);
            let mut response = render(Reply::error(&error, None), Framing::Json);
            if refused.status == StatusCode::REQUEST_TIMEOUT {
                // The rest of the body may still come: this connection is done.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return response;
        }
    };
    let message = match jsonrpc::parse(&body) {
        Ok(message) => message,
        Err(refused) => return render(Reply::error(&refused, None), framing),
    };
    if let Some(name) = duplicated_routing_header(&headers) {
        let error = RpcError::new(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            format!("the {name} header appears more than once"),
        );
        let id = match &message {
            Message::Request { id, .. } => Some(id),
            _ => None,
        };
        return render(Reply::error(&error, id), framing);
    }
    let reply = if speaks_modern(&headers, &message) {
        modern::answer(&exchange, message).await
    } else {
        legacy::answer(&exchange, message).await
    };
    render(reply, framing)
}

/// Whether `message` speaks the stateless revision: only it sends a version without a
/// handshake in the header, the version in `_meta`, or `server/discover`.
fn speaks_modern(headers: &HeaderMap, message: &Message) -> bool {
    let header_says = header_text(headers, PROTOCOL_VERSION_HEADER).is_some_and(|version| {
        !LEGACY_VERSIONS.contains(&version) && !UNSERVED_HANDSHAKE_VERSIONS.contains(&version)
    });
    header_says
        || message
            .meta()
            .is_some_and(|meta| meta.contains_key(PROTOCOL_VERSION_META))
        || message.method() == Some("server/discover")
}

/// A header's value as text; `None` when absent or not visible ASCII.
pub(crate) fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A routing header sent twice (readers of the first and of the last copy would disagree).
fn duplicated_routing_header(headers: &HeaderMap) -> Option<&'static str> {
    [PROTOCOL_VERSION_HEADER, METHOD_HEADER, NAME_HEADER]
        .into_iter()
        .find(|name| headers.get_all(*name).iter().count() > 1)
}

/// Refuses (403) a browser page's request unless its `Origin` is a configured CORS origin or
/// the gateway's own (the `Host` it asked, itself an allowed host): the spec's defence against
/// DNS rebinding. A request without `Origin` is not a browser's cross-origin one.
fn origin_allowed(headers: &HeaderMap, hosts: &AllowedHosts, cors: &Cors) -> Result<(), RpcError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if cors.origin_of(headers).is_some() {
        return Ok(());
    }
    let text = origin.to_str().unwrap_or("");
    let own = text
        .split_once("://")
        .map(|(_, authority)| authority)
        .filter(|authority| !authority.is_empty())
        .is_some_and(|authority| {
            let host = header_text(headers, header::HOST.as_str());
            host.is_some_and(|host| host.eq_ignore_ascii_case(authority)) && hosts.allows(authority)
        });
    if own {
        return Ok(());
    }
    let quoted: String = String::from_utf8_lossy(origin.as_bytes())
        .chars()
        .take(100)
        .collect();
    Err(RpcError::new(
        StatusCode::FORBIDDEN,
        INVALID_REQUEST,
        format!(
            "requests from the origin `{quoted}` are not allowed (list it in server.cors_origins)"
        ),
    ))
}

/// The framing `Accept` asks for: JSON unless the client accepts only event streams; 406 when
/// it accepts neither. No `Accept` takes JSON.
fn framing(headers: &HeaderMap) -> Result<Framing, RpcError> {
    let mut accepts = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| {
            item.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|media| !media.is_empty())
        .peekable();
    if accepts.peek().is_none() {
        return Ok(Framing::Json);
    }
    let mut sse = false;
    for media in accepts {
        match media.as_str() {
            "application/json" | "application/*" | "*/*" => return Ok(Framing::Json),
            "text/event-stream" => sse = true,
            _ => {}
        }
    }
    if sse {
        return Ok(Framing::Sse);
    }
    Err(RpcError::new(
        StatusCode::NOT_ACCEPTABLE,
        INVALID_REQUEST,
        "the Accept header must include application/json or text/event-stream",
    ))
}

fn render(reply: Reply, framing: Framing) -> Response<Body> {
    let Reply {
        status,
        body,
        session,
    } = reply;
    let mut response = match body {
        None => Response::new(Body::full(Bytes::new())),
        // An error status goes out as JSON whatever was asked: it is not a stream's answer.
        Some(body) if framing == Framing::Sse && status.is_success() => {
            let mut event = Vec::with_capacity(body.len() + 24);
            event.extend_from_slice(b"event: message\ndata: ");
            event.extend_from_slice(&body);
            event.extend_from_slice(b"\n\n");
            let mut response = Response::new(Body::full(event));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
        Some(body) => {
            let mut response = Response::new(Body::full(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    };
    *response.status_mut() = status;
    if let Some(session) = session.and_then(|s| HeaderValue::from_str(&s).ok()) {
        response.headers_mut().insert(SESSION_HEADER, session);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn request(method: &str, meta: Option<Value>) -> Message {
        let mut params = serde_json::Map::new();
        if let Some(meta) = meta {
            params.insert("_meta".to_owned(), meta);
        }
        Message::Request {
            id: json!(1),
            method: method.to_owned(),
            params,
        }
    }

    #[test]
    fn the_revision_is_told_from_what_only_the_stateless_one_sends() {
        let none = headers(&[]);
        assert!(!speaks_modern(&none, &request("initialize", None)));
        assert!(!speaks_modern(&none, &request("tools/list", None)));
        assert!(speaks_modern(&none, &request("server/discover", None)));
        let meta = json!({PROTOCOL_VERSION_META: "2026-07-28"});
        assert!(speaks_modern(&none, &request("tools/list", Some(meta))));
        let legacy = headers(&[(PROTOCOL_VERSION_HEADER, "2025-06-18")]);
        assert!(!speaks_modern(&legacy, &request("tools/list", None)));
        let old = headers(&[(PROTOCOL_VERSION_HEADER, "2024-11-05")]);
        assert!(!speaks_modern(&old, &request("tools/list", None)));
        // A version nobody knows goes to the stateless side, which names what is supported.
        let unknown = headers(&[(PROTOCOL_VERSION_HEADER, "1900-01-01")]);
        assert!(speaks_modern(&unknown, &request("tools/list", None)));
    }

    #[test]
    fn accept_picks_json_unless_only_event_streams_are_accepted() {
        assert_eq!(framing(&headers(&[])), Ok(Framing::Json));
        let both = headers(&[("accept", "application/json, text/event-stream")]);
        assert_eq!(framing(&both), Ok(Framing::Json));
        let sse = headers(&[("accept", "text/event-stream")]);
        assert_eq!(framing(&sse), Ok(Framing::Sse));
        assert_eq!(framing(&headers(&[("accept", "*/*")])), Ok(Framing::Json));
        let html = framing(&headers(&[("accept", "text/html")])).unwrap_err();
        assert_eq!(html.status, StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn origins_pass_when_configured_or_the_gateways_own() {
        let hosts = AllowedHosts::new(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
        let cors = Cors::new(&["https://app.example".to_owned()]);
        assert!(origin_allowed(&headers(&[]), &hosts, &cors).is_ok());
        let app = headers(&[
            ("origin", "https://app.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(origin_allowed(&app, &hosts, &cors).is_ok());
        let own = headers(&[
            ("origin", "http://localhost:8080"),
            ("host", "localhost:8080"),
        ]);
        assert!(origin_allowed(&own, &hosts, &cors).is_ok());
        let evil = headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        let refused = origin_allowed(&evil, &hosts, &cors).unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.message.contains("evil.example"),
            "{}",
            refused.message
        );
        // A rebinding page names its own host in both; that host is not one of ours.
        let rebound = headers(&[
            ("origin", "http://evil.example:8080"),
            ("host", "evil.example:8080"),
        ]);
        assert!(origin_allowed(&rebound, &hosts, &cors).is_err());
        let null = headers(&[("origin", "null"), ("host", "localhost:8080")]);
        assert!(origin_allowed(&null, &hosts, &cors).is_err());
    }

    #[test]
    fn routing_headers_sent_twice_are_found() {
        let twice = headers(&[(METHOD_HEADER, "tools/list"), (METHOD_HEADER, "ping")]);
        assert_eq!(duplicated_routing_header(&twice), Some(METHOD_HEADER));
        assert_eq!(
            duplicated_routing_header(&headers(&[(METHOD_HEADER, "ping")])),
            None
        );
    }
}
