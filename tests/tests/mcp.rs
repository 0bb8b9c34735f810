//! The MCP server at `/mcp` through the real binary, both revisions on the one endpoint: the
//! stateless one (2026-07-28: `server/discover`, the routing headers checked against the body,
//! every error code with its status, `resultType` and cache hints), the handshake ones
//! (`initialize`, version negotiation, sessions: missing 400, unknown 404, ended by DELETE,
//! served by a second process on the same database, refused to another key), the edge (key,
//! `Origin`, `Accept`, content type, body limit), the tools a key may use listed and called
//! (ok, `isError`, not granted), and the official Python SDK as the client in both modes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_tests::gateway::Gateway;
use aigw_tests::paths;
use aigw_tests::python::Check;
use aigw_tests::setup::{Upstreams, toml_str};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const ADMIN: &str = "admin-test-key-0123456789abcdef";
const MODERN: &str = "2026-07-28";

/// The config every test starts from: the mock providers, the echo tool plugin as tools, and
/// `rest`.
fn config(upstreams: &Upstreams, rest: &str) -> String {
    upstreams.config(&format!("{}\n{rest}", tools_section()))
}

fn tools_section() -> String {
    format!(
        "[tools.echo]\nplugin = {}\n",
        toml_str(&paths::test_plugin("tool-echo").to_string_lossy())
    )
}

async fn start(rest: &str) -> (Upstreams, Gateway) {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&config(&upstreams, rest))
        .await;
    (upstreams, gateway)
}

/// Makes a key with `spec`; its secret.
async fn make_key(gateway: &Gateway, spec: Value) -> String {
    gateway.create_key(&spec).await.1
}

/// One answer of `/mcp`: status, headers, body (`Null` when empty).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Answer {
    fn code(&self) -> i64 {
        self.body["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not a JSON-RPC error: {} {}", self.status, self.text))
    }

    fn result(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        let result = &self.body["result"];
        assert!(result.is_object(), "not a result: {}", self.text);
        result
    }

    fn session(&self) -> String {
        self.headers["mcp-session-id"].to_str().unwrap().to_owned()
    }
}

/// POSTs `body` to `/mcp` with `key` and `headers` (JSON content type and the usual `Accept`
/// unless `headers` names them).
async fn post(gateway: &Gateway, key: &str, headers: &[(&str, &str)], body: &Value) -> Answer {
    send(
        gateway,
        reqwest::Method::POST,
        key,
        headers,
        Some(body.to_string()),
    )
    .await
}

async fn send(
    gateway: &Gateway,
    method: reqwest::Method,
    key: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Answer {
    let mut request = gateway
        .client()
        .request(method, gateway.url("/mcp"))
        .bearer_auth(key);
    let named = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !named("content-type") {
        request = request.header("content-type", "application/json");
    }
    if !named("accept") {
        request = request.header("accept", "application/json, text/event-stream");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

/// A stateless request: `_meta` stamped into `params`, the routing headers as a client sends
/// them (`Mcp-Name` for tools/call), then `tweak` may change both.
async fn modern(
    gateway: &Gateway,
    key: &str,
    method: &str,
    mut params: Value,
    tweak: impl FnOnce(&mut Vec<(String, String)>, &mut Value),
) -> Answer {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
    });
    let mut headers = vec![
        ("MCP-Protocol-Version".to_owned(), MODERN.to_owned()),
        ("Mcp-Method".to_owned(), method.to_owned()),
    ];
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        headers.push(("Mcp-Name".to_owned(), name.to_owned()));
    }
    let mut body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    tweak(&mut headers, &mut body);
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    post(gateway, key, &pairs, &body).await
}

fn unchanged(_: &mut Vec<(String, String)>, _: &mut Value) {}

/// A change to a stateless request's headers and body before it is sent.
type Tweak = dyn FnOnce(&mut Vec<(String, String)>, &mut Value);

/// `initialize` at `version`; the answer (with the session header).
async fn initialize(gateway: &Gateway, key: &str, version: &str) -> Answer {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"}}});
    post(gateway, key, &[], &body).await
}

/// A handshake-revision request in `session` at `version`.
async fn legacy(
    gateway: &Gateway,
    key: &str,
    session: &str,
    version: &str,
    method: &str,
    params: Value,
) -> Answer {
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": method, "params": params});
    post(
        gateway,
        key,
        &[
            ("mcp-session-id", session),
            ("mcp-protocol-version", version),
        ],
        &body,
    )
    .await
}

#[tokio::test]
async fn the_stateless_revision_checks_its_headers_and_answers_in_its_shape() {
    let (_upstreams, gateway) = start("").await;
    let key = make_key(&gateway, json!({})).await;

    let discovered = modern(&gateway, &key, "server/discover", json!({}), unchanged).await;
    let result = discovered.result();
    assert_eq!(result["resultType"], "complete");
    assert_eq!(
        result["supportedVersions"],
        json!([MODERN, "2025-11-25", "2025-06-18", "2025-03-26"])
    );
    assert_eq!(
        result["capabilities"]["tools"],
        json!({"listChanged": false})
    );
    assert_eq!(result["cacheScope"], "public");
    assert!(result["ttlMs"].as_u64().unwrap() > 0);
    assert!(result["instructions"].as_str().unwrap().contains("aigw"));
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "aigw"
    );
    assert!(discovered.headers.get("mcp-session-id").is_none());

    let listed = modern(&gateway, &key, "tools/list", json!({}), unchanged).await;
    let result = listed.result();
    assert_eq!(result["resultType"], "complete");
    // The list depends on the key.
    assert_eq!(result["cacheScope"], "private");
    assert!(result["ttlMs"].as_u64().unwrap() > 0);
    assert!(result["tools"].is_array());

    // Header and body disagree, or a header is missing: -32020, 400.
    let cases: Vec<(&str, Box<Tweak>)> = vec![
        (
            "no version header",
            Box::new(|h, _| h.retain(|(n, _)| n != "MCP-Protocol-Version")),
        ),
        (
            "no method header",
            Box::new(|h, _| h.retain(|(n, _)| n != "Mcp-Method")),
        ),
        (
            "another method in the header",
            Box::new(|h, _| h[1].1 = "tools/call".to_owned()),
        ),
        (
            "another version in _meta",
            Box::new(|_, b| {
                b["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] =
                    json!("2025-11-25");
            }),
        ),
        (
            "the version header twice",
            Box::new(|h, _| h.push(("MCP-Protocol-Version".to_owned(), MODERN.to_owned()))),
        ),
    ];
    for (case, tweak) in cases {
        let refused = modern(&gateway, &key, "tools/list", json!({}), tweak).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            refused.text
        );
        assert_eq!(refused.code(), -32020, "{case}: {}", refused.text);
        assert_eq!(refused.body["id"], 1, "{case}");
        assert!(refused.body.get("result").is_none());
    }
    // Mcp-Name must match the tool's name; non-ASCII names travel in the base64 sentinel.
    let renamed = modern(
        &gateway,
        &key,
        "tools/call",
        json!({"name": "echo", "arguments": {}}),
        |h, _| h[2].1 = "fetch".to_owned(),
    )
    .await;
    assert_eq!(
        (renamed.status, renamed.code()),
        (StatusCode::BAD_REQUEST, -32020)
    );
    let unnamed = modern(
        &gateway,
        &key,
        "tools/call",
        json!({"name": "echo", "arguments": {}}),
        |h, _| h.truncate(2),
    )
    .await;
    assert_eq!(unnamed.code(), -32020, "{}", unnamed.text);
    // "météo", sent as `=?base64?bcOpdMOpbw==?=`: the header matches, the tool is unknown.
    let sentinel = modern(
        &gateway,
        &key,
        "tools/call",
        json!({"name": "météo", "arguments": {}}),
        |h, _| h[2].1 = "=?base64?bcOpdMOpbw==?=".to_owned(),
    )
    .await;
    assert_eq!(
        sentinel.status,
        StatusCode::BAD_REQUEST,
        "{}",
        sentinel.text
    );
    assert_eq!(sentinel.code(), -32602, "{}", sentinel.text);

    // An unsupported version names every one served (so a dual-era client falls back).
    let unsupported = modern(&gateway, &key, "tools/list", json!({}), |h, b| {
        h[0].1 = "1900-01-01".to_owned();
        b["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("1900-01-01");
    })
    .await;
    assert_eq!(unsupported.status, StatusCode::BAD_REQUEST);
    assert_eq!(unsupported.code(), -32022);
    assert_eq!(
        unsupported.body["error"]["data"],
        json!({"supported": [MODERN, "2025-11-25", "2025-06-18", "2025-03-26"],
               "requested": "1900-01-01"})
    );
    // No client capabilities in the envelope: invalid params.
    let bare = modern(&gateway, &key, "tools/list", json!({}), |_, b| {
        b["params"]["_meta"]
            .as_object_mut()
            .unwrap()
            .remove("io.modelcontextprotocol/clientCapabilities");
    })
    .await;
    assert_eq!(
        (bare.status, bare.code()),
        (StatusCode::BAD_REQUEST, -32602)
    );
    // Unknown methods (ping is gone from this revision): 404, -32601.
    for method in ["resources/list", "ping"] {
        let unknown = modern(&gateway, &key, method, json!({}), unchanged).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(unknown.code(), -32601, "{method}");
    }
    // A notification: 202, no body.
    let noted = post(
        &gateway,
        &key,
        &[("mcp-protocol-version", MODERN)],
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": 1}}),
    )
    .await;
    assert_eq!(noted.status, StatusCode::ACCEPTED);
    assert!(noted.text.is_empty());
    // GET has no stream to open: 405.
    let get = send(&gateway, reqwest::Method::GET, &key, &[], None).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers["allow"], "POST, DELETE");
}

#[tokio::test]
async fn handshake_sessions_negotiate_live_in_the_store_and_end() {
    let (_upstreams, gateway) = start("").await;
    let key = make_key(&gateway, json!({})).await;

    let begun = initialize(&gateway, &key, "2025-11-25").await;
    let result = begun.result();
    assert_eq!(result["protocolVersion"], "2025-11-25");
    assert_eq!(
        result["capabilities"]["tools"],
        json!({"listChanged": false})
    );
    assert_eq!(result["serverInfo"]["name"], "aigw");
    assert!(result.get("resultType").is_none(), "{result}");
    let session = begun.session();
    assert!(session.len() >= 40, "{session}");
    assert!(session.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    // A second initialize is another session.
    assert_ne!(
        initialize(&gateway, &key, "2025-11-25").await.session(),
        session
    );
    // Negotiation: an older served version is kept, an unknown one answered with the newest.
    assert_eq!(
        initialize(&gateway, &key, "2025-06-18").await.result()["protocolVersion"],
        "2025-06-18"
    );
    assert_eq!(
        initialize(&gateway, &key, "2099-01-01").await.result()["protocolVersion"],
        "2025-11-25"
    );

    let initialized = post(
        &gateway,
        &key,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(initialized.status, StatusCode::ACCEPTED);
    assert!(initialized.text.is_empty());

    let pong = legacy(&gateway, &key, &session, "2025-11-25", "ping", json!({})).await;
    assert_eq!(pong.result(), &json!({}));
    let listed = legacy(
        &gateway,
        &key,
        &session,
        "2025-11-25",
        "tools/list",
        json!({}),
    )
    .await;
    let result = listed.result();
    assert!(result["tools"].is_array());
    // No modern decorations on a handshake revision's answer.
    for field in ["resultType", "ttlMs", "cacheScope", "_meta"] {
        assert!(result.get(field).is_none(), "{field} in {result}");
    }
    // A method's error is a 200 carrying it.
    let unknown = legacy(
        &gateway,
        &key,
        &session,
        "2025-11-25",
        "prompts/list",
        json!({}),
    )
    .await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::OK, -32601));
    // Without the version header 2025-03-26 is assumed, which is served.
    let assumed = post(
        &gateway,
        &key,
        &[("mcp-session-id", &session)],
        &json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}),
    )
    .await;
    assert_eq!(assumed.result(), &json!({}));
    // An unsupported handshake version: 400.
    let old = legacy(&gateway, &key, &session, "2024-11-05", "ping", json!({})).await;
    assert_eq!((old.status, old.code()), (StatusCode::BAD_REQUEST, -32600));

    // No session id: 400; an unknown one: 404.
    let missing = post(
        &gateway,
        &key,
        &[],
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text);
    assert_eq!(missing.code(), -32600);
    assert_eq!(missing.body["id"], 3);
    let unknown = legacy(
        &gateway,
        &key,
        "mcp_nosuchsession",
        "2025-11-25",
        "ping",
        json!({}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);

    // DELETE ends it; after that it is unknown.
    let ended = send(
        &gateway,
        reqwest::Method::DELETE,
        &key,
        &[("mcp-session-id", &session)],
        None,
    )
    .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.text);
    let gone = legacy(&gateway, &key, &session, "2025-11-25", "ping", json!({})).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let again = send(
        &gateway,
        reqwest::Method::DELETE,
        &key,
        &[("mcp-session-id", &session)],
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let bare = send(&gateway, reqwest::Method::DELETE, &key, &[], None).await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_session_is_served_by_another_process_and_never_for_another_key() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shared = config(
        &upstreams,
        &format!(
            "[memory]\npath = {}\n\n[auth]\nkey_refresh_ms = 100\n",
            toml_str(&dir.path().join("shared.db").to_string_lossy())
        ),
    );
    let a = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&shared)
        .await;
    let b = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&shared)
        .await;
    let alice = make_key(&a, json!({})).await;
    let bob = make_key(&a, json!({})).await;
    let session = initialize(&a, &alice, "2025-11-25").await.session();

    // B learns of the keys within its refresh; then it serves A's session to its key.
    let mut served = legacy(&b, &alice, &session, "2025-11-25", "ping", json!({})).await;
    for _ in 0..100 {
        if served.status != StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        served = legacy(&b, &alice, &session, "2025-11-25", "ping", json!({})).await;
    }
    assert_eq!(served.result(), &json!({}));
    let listed = legacy(&b, &alice, &session, "2025-11-25", "tools/list", json!({})).await;
    assert!(listed.result()["tools"].is_array());

    // Another key gets the same 404 as for no such session, in either process, and cannot end it.
    for gateway in [&a, &b] {
        let refused = legacy(gateway, &bob, &session, "2025-11-25", "ping", json!({})).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.text);
        let ended = send(
            gateway,
            reqwest::Method::DELETE,
            &bob,
            &[("mcp-session-id", &session)],
            None,
        )
        .await;
        assert_eq!(ended.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        legacy(&a, &alice, &session, "2025-11-25", "ping", json!({}))
            .await
            .result(),
        &json!({})
    );
    // Ended in B, gone in A.
    let ended = send(
        &b,
        reqwest::Method::DELETE,
        &alice,
        &[("mcp-session-id", &session)],
        None,
    )
    .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);
    let gone = legacy(&a, &alice, &session, "2025-11-25", "ping", json!({})).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_edge_refuses_what_mcp_does_not_take() {
    let (_upstreams, gateway) = start("[server]\nmax_body_bytes = 4096\n").await;
    let key = make_key(&gateway, json!({})).await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});

    // No key: 401, as on every client path.
    let response = gateway
        .client()
        .post(gateway.url("/mcp"))
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A page on another origin: 403 (DNS rebinding, cross-site pages).
    let foreign = post(&gateway, &key, &[("origin", "http://evil.example")], &ping).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{}", foreign.text);
    assert_eq!(foreign.code(), -32600);
    // The gateway's own origin passes (the session check answers next).
    let host = gateway.addr().to_string();
    let own_origin = format!("http://{host}");
    let own = post(&gateway, &key, &[("origin", &own_origin)], &ping).await;
    assert_eq!(own.status, StatusCode::BAD_REQUEST, "{}", own.text);
    assert!(own.text.contains("Mcp-Session-Id"), "{}", own.text);
    // Not JSON: 415; an Accept it cannot satisfy: 406; over the body limit: 413; not JSON-RPC.
    let plain = post(&gateway, &key, &[("content-type", "text/plain")], &ping).await;
    assert_eq!(plain.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let html = post(&gateway, &key, &[("accept", "text/html")], &ping).await;
    assert_eq!(html.status, StatusCode::NOT_ACCEPTABLE);
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "ping",
                     "params": {"pad": "x".repeat(5000)}});
    let large = post(&gateway, &key, &[], &big).await;
    assert_eq!(large.status, StatusCode::PAYLOAD_TOO_LARGE);
    let broken = send(
        &gateway,
        reqwest::Method::POST,
        &key,
        &[],
        Some("{".to_owned()),
    )
    .await;
    assert_eq!(
        (broken.status, broken.code()),
        (StatusCode::BAD_REQUEST, -32700)
    );
    assert_eq!(broken.body["id"], Value::Null);
    let batch = post(&gateway, &key, &[], &json!([ping])).await;
    assert_eq!(
        (batch.status, batch.code()),
        (StatusCode::BAD_REQUEST, -32600)
    );
    // A client that takes only event streams gets the answer as one `message` event.
    let sse = modern(&gateway, &key, "server/discover", json!({}), |h, _| {
        h.push(("accept".to_owned(), "text/event-stream".to_owned()));
    })
    .await;
    assert_eq!(sse.status, StatusCode::OK);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    let data = sse
        .text
        .strip_prefix("event: message\ndata: ")
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("not one event: {:?}", sse.text));
    let message: Value = serde_json::from_str(data).unwrap();
    assert_eq!(message["result"]["resultType"], "complete");
}

#[tokio::test]
async fn mcp_can_be_turned_off() {
    let (_upstreams, gateway) = start("[mcp]\nenabled = false\n").await;
    let key = make_key(&gateway, json!({})).await;
    let off = initialize(&gateway, &key, "2025-11-25").await;
    assert_eq!(off.status, StatusCode::NOT_FOUND);
    assert_eq!(off.body["error"]["code"], "unknown_url");
}

/// The names of the tools a stateless `tools/list` shows `key`.
async fn listed_names(gateway: &Gateway, key: &str) -> Vec<String> {
    let listed = modern(gateway, key, "tools/list", json!({}), unchanged).await;
    listed.result()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tools_are_listed_by_the_keys_grant_and_called_through_the_toolbox() {
    let (_upstreams, gateway) = start("").await;
    let everything = make_key(&gateway, json!({})).await;
    let narrow = make_key(&gateway, json!({"tools": ["echo", "pan*", "remember"]})).await;
    let none = make_key(&gateway, json!({"tools": []})).await;

    let all = listed_names(&gateway, &everything).await;
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "deterministic order");
    for name in ["echo", "fetch", "panic", "recall", "remember"] {
        assert!(all.iter().any(|n| n == name), "{name} not in {all:?}");
    }
    assert_eq!(
        listed_names(&gateway, &narrow).await,
        ["echo", "panic", "remember"]
    );
    assert!(listed_names(&gateway, &none).await.is_empty());

    // The listing is the same in a session, in its era's shape.
    let session = initialize(&gateway, &narrow, "2025-11-25").await.session();
    let listed = legacy(
        &gateway,
        &narrow,
        &session,
        "2025-11-25",
        "tools/list",
        json!({}),
    )
    .await;
    let tools = listed.result()["tools"].as_array().unwrap().clone();
    assert_eq!(tools.len(), 3);
    let echo = &tools[0];
    assert_eq!(echo["name"], "echo");
    assert_eq!(echo["inputSchema"]["type"], "object");
    assert!(echo["description"].as_str().unwrap().contains("arguments"));
    let remember = &tools[2];
    assert_eq!(remember["inputSchema"]["required"], json!(["key", "value"]));

    // A call: the answer as compact JSON text and as structured content.
    let arguments = json!({"city": "Paris", "days": 2});
    let called = modern(
        &gateway,
        &narrow,
        "tools/call",
        json!({"name": "echo", "arguments": arguments}),
        unchanged,
    )
    .await;
    let result = called.result();
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["isError"], false);
    assert_eq!(result["structuredContent"], arguments);
    assert_eq!(result["content"][0]["type"], "text");
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, arguments);
    let in_session = legacy(
        &gateway,
        &narrow,
        &session,
        "2025-11-25",
        "tools/call",
        json!({"name": "echo", "arguments": arguments}),
    )
    .await;
    let result = in_session.result();
    assert_eq!(result["structuredContent"], arguments);
    assert!(result.get("resultType").is_none());

    // A tool that fails when it runs (a trap) and arguments the schema refuses: results with
    // isError and the reason, for the model to read.
    let trapped = modern(
        &gateway,
        &narrow,
        "tools/call",
        json!({"name": "panic", "arguments": {}}),
        unchanged,
    )
    .await;
    let result = trapped.result();
    assert_eq!(result["isError"], true, "{result}");
    assert!(!result["content"][0]["text"].as_str().unwrap().is_empty());
    assert!(result.get("structuredContent").is_none());
    let invalid = legacy(
        &gateway,
        &narrow,
        &session,
        "2025-11-25",
        "tools/call",
        json!({"name": "remember", "arguments": {"key": "k"}}),
    )
    .await;
    let result = invalid.result();
    assert_eq!(result["isError"], true, "{result}");
    let reason = result["content"][0]["text"].as_str().unwrap();
    assert!(reason.contains("value"), "{reason}");

    // Not granted, or no such tool: -32602 (400 stateless, 200 in a session).
    for name in ["recall", "no_such_tool"] {
        let refused = modern(
            &gateway,
            &narrow,
            "tools/call",
            json!({"name": name, "arguments": {}}),
            unchanged,
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            refused.text
        );
        assert_eq!(refused.code(), -32602, "{name}");
        let refused = legacy(
            &gateway,
            &narrow,
            &session,
            "2025-11-25",
            "tools/call",
            json!({"name": name, "arguments": {}}),
        )
        .await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::OK, -32602),
            "{name}"
        );
    }
    // Arguments that are not an object, or no name: -32602 too (the call's shape is wrong).
    let shapeless = modern(
        &gateway,
        &narrow,
        "tools/call",
        json!({"name": "echo", "arguments": [1]}),
        unchanged,
    )
    .await;
    assert_eq!(shapeless.code(), -32602);
}

#[tokio::test]
async fn a_spent_tool_quota_is_a_tool_error_saying_when_to_retry() {
    let (_upstreams, gateway) = start("").await;
    let key = make_key(
        &gateway,
        json!({"tools": ["echo"], "tool_calls_per_minute": 1}),
    )
    .await;
    let call = |n: u64| {
        let gateway = &gateway;
        let key = &key;
        async move {
            modern(
                gateway,
                key,
                "tools/call",
                json!({"name": "echo", "arguments": {"n": n}}),
                unchanged,
            )
            .await
        }
    };
    let first = call(1).await;
    assert_eq!(first.result()["isError"], false, "{}", first.text);
    let second = call(2).await;
    let result = second.result();
    assert_eq!(result["isError"], true, "{result}");
    let reason = result["content"][0]["text"].as_str().unwrap();
    assert!(reason.contains("retry"), "{reason}");
}

#[tokio::test]
async fn the_official_python_sdk_speaks_both_revisions() {
    let (_upstreams, gateway) = start("").await;
    let key = make_key(&gateway, json!({"tools": ["echo", "panic"]})).await;
    Check {
        script: "mcp_check.py",
        imports: "mcp, httpx2",
        env: &[
            ("AIGW_MCP_KEY", &key),
            ("AIGW_MCP_TOOL", "echo"),
            ("AIGW_MCP_FAILING", "panic"),
        ],
        expect: &[
            "ok legacy session",
            "ok auto modern",
            "ok auto re-probe",
            "ok auto fallback",
        ],
    }
    .run(&gateway)
    .await;
}
