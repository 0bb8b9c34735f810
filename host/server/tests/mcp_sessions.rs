//! MCP sessions of the handshake revisions in-process, with the store's clock moved: a session
//! lives `[mcp] session_ttl_seconds` unused, each use renews it (so a used session outlives its
//! first expiry), the renewal is written only once a tenth of the time-to-live has passed (a
//! busy session does not write on every request), and an expired session is a 404.

// `Service::handle`'s future, spans' `Instrumented` wrappers included, lays out deeper than
// the default limit of 128 (the library sets the same).
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aigw_memory::mcp_sessions;
use aigw_memory::{ManualClock, Store, StoreOptions};
use aigw_router::{HealthRegistry, HealthSettings};
use aigw_server::{Body, Gateway, MAX_REMEMBERED_TARGETS, McpOptions, ServerOptions, Service};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

const START_MS: i64 = 1_796_136_484_123;
const TTL: Duration = Duration::from_secs(1000);

async fn fixture(dir: &tempfile::TempDir) -> (Service, Arc<Store>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START_MS));
    let mut options = StoreOptions::new(dir.path().join("aigw.db"));
    options.clock = clock.clone();
    let store = Arc::new(Store::open(options).await.unwrap());
    let health = Arc::new(HealthRegistry::new(
        HealthSettings::default(),
        MAX_REMEMBERED_TARGETS,
    ));
    let gateway = Gateway::new([], BTreeMap::new(), health, &ServerOptions::default())
        .unwrap()
        .with_memory(Arc::clone(&store))
        .with_mcp(McpOptions {
            session_ttl: TTL,
            ..McpOptions::default()
        });
    (Service::new(gateway), store, clock)
}

async fn post(service: &Service, session: Option<&str>, body: serde_json::Value) -> Response<Body> {
    let mut request = Request::post("/mcp").header("content-type", "application/json");
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    service
        .handle(
            request
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
}

async fn ping(service: &Service, session: &str) -> StatusCode {
    post(
        service,
        Some(session),
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    .await
    .status()
}

async fn expiry(store: &Store, session: &str) -> i64 {
    mcp_sessions::find(store, session)
        .await
        .unwrap()
        .unwrap()
        .expires_at
}

#[tokio::test]
async fn a_used_session_is_renewed_at_most_every_tenth_of_its_ttl_and_expires_unused() {
    let dir = tempfile::tempdir().unwrap();
    let (service, store, clock) = fixture(&dir).await;
    let begun = post(
        &service,
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(begun.status(), StatusCode::OK);
    let session = begun.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let ttl_ms = TTL.as_millis() as i64;
    assert_eq!(expiry(&store, &session).await, START_MS + ttl_ms);

    // 5 % in: used, not renewed (no write).
    clock.advance(TTL / 20);
    assert_eq!(ping(&service, &session).await, StatusCode::OK);
    assert_eq!(expiry(&store, &session).await, START_MS + ttl_ms);
    // 60 % in: renewed from now.
    clock.advance(TTL * 11 / 20);
    assert_eq!(ping(&service, &session).await, StatusCode::OK);
    let renewed = START_MS + ttl_ms * 6 / 10 + ttl_ms;
    assert_eq!(expiry(&store, &session).await, renewed);
    // 110 %: past the first expiry, alive by the renewal.
    clock.advance(TTL / 2);
    assert_eq!(ping(&service, &session).await, StatusCode::OK);
    // Unused for a whole TTL: gone.
    clock.advance(TTL + Duration::from_millis(1));
    assert_eq!(ping(&service, &session).await, StatusCode::NOT_FOUND);
}
