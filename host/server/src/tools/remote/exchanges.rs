//! The client against an in-process MCP server that speaks exactly the wire of providers.md
//! §13: a handshake-era server (refusing the modern probe, sessions that expire, replies as
//! event streams) and a modern one (pages, a progress notification before the response). The
//! official SDK's server is the end-to-end partner (`tests/tests/mcp_remote.rs`); these pin the
//! paths it does not take on its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigw_egress::Egress;
use aigw_router::FailureClass;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{McpServerOptions, RemoteServer};

/// What the mock saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    session: Option<String>,
    version: Option<String>,
    authorization: Option<String>,
}

/// A scripted answer: status, content type, body.
type Answer = (u16, &'static str, String);

/// Serves `script` (called with each request's JSON-RPC message and what was seen before it)
/// on a loopback port; returns the URL and the log of requests.
async fn serve(
    script: impl Fn(&Value, &[Seen]) -> (Answer, Option<&'static str>) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let script = Arc::new(script);
    let seen = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let script = Arc::clone(&script);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let script = Arc::clone(&script);
                    let seen = Arc::clone(&seen);
                    async move {
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        let entry = Seen {
                            method: String::new(),
                            session: header("mcp-session-id"),
                            version: header("mcp-protocol-version"),
                            authorization: header("authorization"),
                        };
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let message: Value = serde_json::from_slice(&body).unwrap();
                        let before = seen.lock().unwrap().clone();
                        let ((status, content_type, body), session) = script(&message, &before);
                        seen.lock().unwrap().push(Seen {
                            method: message["method"].as_str().unwrap_or_default().to_owned(),
                            ..entry
                        });
                        let mut response = http::Response::builder()
                            .status(status)
                            .header("content-type", content_type);
                        if let Some(session) = session {
                            response = response.header("mcp-session-id", session);
                        }
                        Ok::<_, Infallible>(response.body(Full::new(Bytes::from(body))).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, log)
}

fn server(url: &str) -> RemoteServer {
    let options = McpServerOptions {
        name: "calc".to_owned(),
        url: url.to_owned(),
        api_key: Some("sk-remote-1".to_owned()),
        prefix: "calc".to_owned(),
        timeout: Duration::from_secs(5),
        ..McpServerOptions::default()
    };
    let egress = Egress::new([options.connect_timeout]).unwrap();
    RemoteServer::new(options, egress).unwrap()
}

fn json_reply(message: Value) -> Answer {
    (200, "application/json", message.to_string())
}

/// `message` as an event stream, after a progress notification and a keep-alive comment.
fn sse_reply(message: Value) -> Answer {
    let note = json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": 1, "progress": 0.5}});
    (
        200,
        "text/event-stream",
        format!(
            ": ping\r\n\r\nevent: message\r\ndata: {note}\r\n\r\nevent: message\r\ndata: {message}\r\n\r\n"
        ),
    )
}

fn tool(name: &str) -> Value {
    json!({"name": name, "description": name,
        "inputSchema": {"type": "object", "properties": {"x": {"type": "number"}}}})
}

#[tokio::test]
async fn a_handshake_server_is_initialized_and_an_expired_session_renewed_once() {
    let (url, log) = serve(|message, before| {
        let id = message["id"].clone();
        let initializes = before.iter().filter(|s| s.method == "initialize").count();
        match message["method"].as_str().unwrap_or_default() {
            // A pre-2026 server: the modern probe is a 400 without a modern error body.
            "server/discover" => (
                (
                    400,
                    "text/plain",
                    "Bad Request: Unsupported protocol version".into(),
                ),
                None,
            ),
            "initialize" => {
                let session = if initializes == 0 { "s-1" } else { "s-2" };
                (
                    sse_reply(json!({"jsonrpc": "2.0", "id": id, "result": {
                        "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                        "serverInfo": {"name": "old", "version": "1"}}})),
                    Some(session),
                )
            }
            "notifications/initialized" => ((202, "application/json", String::new()), None),
            // The first session expires after one listing.
            "tools/list"
                if before.last().and_then(|s| s.session.as_deref()) == Some("s-1")
                    && before.iter().any(|s| s.method == "tools/list") =>
            {
                (
                    (
                        404,
                        "application/json",
                        json!({"jsonrpc": "2.0", "id": null,
                    "error": {"code": -32600, "message": "Session not found"}})
                        .to_string(),
                    ),
                    None,
                )
            }
            "tools/list" => (
                sse_reply(json!({"jsonrpc": "2.0", "id": id, "result": {
                    "tools": [tool("double"), tool("bad name")]}})),
                None,
            ),
            _ => ((500, "text/plain", "unexpected".into()), None),
        }
    })
    .await;
    let remote = server(&url);
    let listed = remote.refresh().await.unwrap();
    assert_eq!((listed.tools, listed.changed), (1, true));
    assert_eq!(
        listed.skipped,
        ["`bad name`: `calc_bad name` is not a tool name (1-64 of a-z A-Z 0-9 _ -)"]
    );
    assert_eq!(remote.connection.era().await, Some("handshake"));
    let names: Vec<String> = remote.tools().iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["calc_double"]);
    // The second listing meets the expired session: one new session, the listing again.
    let listed = remote.refresh().await.unwrap();
    assert_eq!((listed.tools, listed.changed), (1, false));
    let seen = log.lock().unwrap().clone();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/list",
            "initialize",
            "notifications/initialized",
            "tools/list",
        ]
    );
    // The negotiated version and the session go with every request after initialize.
    assert_eq!(seen[2].session.as_deref(), Some("s-1"));
    assert_eq!(seen[3].version.as_deref(), Some("2025-06-18"));
    assert_eq!(seen[1].version, None);
    assert_eq!(seen[7].session.as_deref(), Some("s-2"));
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer sk-remote-1"))
    );
}

#[tokio::test]
async fn a_modern_server_is_paged_through_and_answers_calls() {
    let (url, log) = serve(|message, _| {
        let id = message["id"].clone();
        let meta = &message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"];
        assert_eq!(meta, "2026-07-28", "{message}");
        match message["method"].as_str().unwrap_or_default() {
            "server/discover" => (
                json_reply(json!({"jsonrpc": "2.0", "id": id, "result": {
                "resultType": "complete", "supportedVersions": ["2026-07-28", "2025-11-25"],
                "capabilities": {"tools": {}}, "serverInfo": {"name": "new", "version": "1"}}})),
                None,
            ),
            "tools/list" if message["params"]["cursor"] == "p2" => (
                sse_reply(json!({"jsonrpc": "2.0",
                "id": id, "result": {"resultType": "complete", "tools": [tool("a")]}})),
                None,
            ),
            "tools/list" => (
                json_reply(json!({"jsonrpc": "2.0", "id": id, "result": {
                "resultType": "complete", "tools": [tool("c"), tool("b")], "nextCursor": "p2"}})),
                None,
            ),
            "tools/call" => (
                sse_reply(json!({"jsonrpc": "2.0", "id": id, "result": {
                "resultType": "complete", "content": [{"type": "text", "text": "{\"y\": 2}"}]}})),
                None,
            ),
            _ => (
                (
                    404,
                    "application/json",
                    json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": "Method not found"}})
                    .to_string(),
                ),
                None,
            ),
        }
    })
    .await;
    let remote = server(&url);
    assert_eq!(remote.refresh().await.map(|l| l.tools), Ok(3));
    assert_eq!(remote.connection.era().await, Some("modern"));
    let names: Vec<String> = remote.tools().iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["calc_a", "calc_b", "calc_c"]);
    assert_eq!(
        remote.call("a", &json!({"x": 1})).await,
        Ok(json!({"y": 2}))
    );
    let seen = log.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|s| s.session.is_none() && s.version.as_deref() == Some("2026-07-28"))
    );
    assert!(!seen.iter().any(|s| s.method == "initialize"));
}

#[tokio::test]
async fn a_server_of_neither_era_is_refused_and_refusals_are_classified() {
    let (url, _) = serve(|message, _| {
        let id = message["id"].clone();
        match message["method"].as_str().unwrap_or_default() {
            "server/discover" => (
                (
                    400,
                    "application/json",
                    json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32022, "message": "Unsupported protocol version",
                    "data": {"supported": ["2031-01-01"], "requested": "2026-07-28"}}})
                    .to_string(),
                ),
                None,
            ),
            _ => ((500, "text/plain", "unexpected".into()), None),
        }
    })
    .await;
    let failure = server(&url).refresh().await.unwrap_err();
    assert_eq!(failure.class, FailureClass::BadResponse);
    assert!(
        failure.message.contains("2031-01-01"),
        "{}",
        failure.message
    );

    let (url, log) = serve(|_, _| {
        (
            (
                401,
                "application/json",
                "{\"error\":\"sk-remote-1 is wrong\"}".into(),
            ),
            None,
        )
    })
    .await;
    let failure = server(&url).refresh().await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Unauthorized);
    assert!(
        !failure.message.contains("sk-remote-1"),
        "{}",
        failure.message
    );
    // A refused credential is no verdict on the era: no fallback to initialize.
    assert_eq!(log.lock().unwrap().len(), 1);

    let (url, _) = serve(|_, _| ((503, "text/plain", "down for maintenance".into()), None)).await;
    let failure = server(&url).refresh().await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Unavailable);
    assert!(failure.message.contains("down for maintenance"));

    // A redirect is not followed (the credential would go with it): the answer is a failure.
    let (url, log) = serve(|_, _| ((307, "text/plain", String::new()), Some("elsewhere"))).await;
    let failure = server(&url).refresh().await.unwrap_err();
    assert_eq!(failure.class, FailureClass::BadResponse);
    assert!(failure.message.contains("HTTP 307"), "{}", failure.message);
    assert!(log.lock().unwrap().iter().all(|s| s.method != "tools/list"));

    // Nothing listens: a connect failure.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    assert_eq!(
        server(&url).refresh().await.unwrap_err().class,
        FailureClass::Connect
    );
}
