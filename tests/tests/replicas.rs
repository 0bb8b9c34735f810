//! The compose deployment's topology as processes: two gateways started from
//! `deploy/aigw.toml` (only the listen address, the database path and the plugins folder
//! changed, as the harness needs; the local provider's address through its environment
//! variable, as compose sets it) on one database file share their state: a key made through one
//! works on the other, its `rpm_limit` holds across both, a conversation written through one is
//! read and continued through the other, and an MCP session opened on one is served by the
//! other. The compose files are checked against the same config (grace, ports, replica names).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aigw_tests::gateway::{Gateway, status_and_json};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::paths;
use aigw_tests::setup::toml_str;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

const ADMIN: &str = "replicas-admin-key-0123456789";

/// `deploy/aigw.toml` with the database at `db` and the built plugins: each replaced line must
/// be there, so a change to the file that this test no longer matches fails here.
fn replica_config(db: &Path) -> String {
    let deployed = std::fs::read_to_string(paths::workspace_root().join("deploy/aigw.toml"))
        .expect("deploy/aigw.toml");
    let mut config = deployed.clone();
    for (line, replacement) in [
        (
            "path = \"../data/aigw.db\"",
            format!("path = {}", toml_str(&db.to_string_lossy())),
        ),
        (
            "dir = \"../dist/plugins\"",
            format!(
                "dir = {}",
                toml_str(&paths::plugins_dir().to_string_lossy())
            ),
        ),
    ] {
        assert!(
            deployed.lines().any(|l| l == line),
            "deploy/aigw.toml no longer has the line `{line}`"
        );
        config = config.replace(line, &replacement);
    }
    config
}

async fn replica(config: &str, mock: &MockUpstream) -> Gateway {
    Gateway::builder()
        .admin_key(ADMIN)
        .env("LOCAL_LLM_BASE_URL", &mock.base_url())
        .env_remove("GROQ_API_KEY")
        .start(config)
        .await
}

/// Waits, if needed, for a minute window with `needed` left in it: the limit's window must not
/// turn over between the requests counted against it.
async fn fresh_minute(needed: Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    let left = Duration::from_secs(60) - into;
    if left < needed {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
}

async fn chat(gateway: &Gateway, secret: &str) -> StatusCode {
    gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
}

/// A request to `gateway` with the virtual key `secret`.
fn with_key(
    gateway: &Gateway,
    method: reqwest::Method,
    path: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    gateway
        .client()
        .request(method, gateway.url(path))
        .bearer_auth(secret)
}

async fn mcp(gateway: &Gateway, secret: &str, session: Option<&str>, body: Value) -> Value {
    let mut request = with_key(gateway, reqwest::Method::POST, "/mcp", secret)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let response = request.send().await.unwrap();
    let session_header = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, _, mut body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    if let Some(id) = session_header {
        body["session"] = Value::String(id);
    }
    body
}

#[tokio::test]
async fn two_replicas_on_one_database_share_keys_limits_conversations_and_mcp_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let config = replica_config(&dir.path().join("aigw.db"));
    // One after the other, as compose starts them: the first creates and migrates the file.
    let a = replica(&config, &mock).await;
    let b = replica(&config, &mock).await;

    // A key made through A, with a limit of 6 requests a minute.
    let (_, secret) = a.create_key(&json!({"name": "app", "rpm_limit": 6})).await;
    // B learns of it at its next directory refresh ([auth] key_refresh_ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = with_key(&b, reqwest::Method::GET, "/v1/models", &secret)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(Instant::now() < deadline, "B never saw the key made on A");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The limit holds across both: requests alternated, never more than 6 admitted in all.
    fresh_minute(Duration::from_secs(20)).await;
    let mut admitted = [0, 0];
    let mut refused = 0;
    for i in 0..12 {
        let replica = if i % 2 == 0 { &a } else { &b };
        match chat(replica, &secret).await {
            StatusCode::OK => admitted[i % 2] += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("request {i}: {other}\n{}", replica.stderr()),
        }
    }
    assert!(admitted[0] + admitted[1] <= 6, "{admitted:?}");
    assert!(admitted[0] > 0 && admitted[1] > 0, "{admitted:?}");
    assert_eq!(admitted[0] + admitted[1] + refused, 12);

    // A conversation written through A is read and continued through B, and A sees B's item.
    let response = with_key(&a, reqwest::Method::POST, "/v1/conversations", &secret)
        .json(&json!({"items": [{"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": "from A"}]}]}))
        .send()
        .await
        .unwrap();
    let (status, _, conversation) = status_and_json(response).await;
    assert_eq!(status, 200, "{conversation}");
    let id = conversation["id"].as_str().unwrap();
    let items_path = format!("/v1/conversations/{id}/items");
    let response = with_key(&b, reqwest::Method::POST, &items_path, &secret)
        .json(&json!({"items": [{"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": "from B"}]}]}))
        .send()
        .await
        .unwrap();
    let (status, _, appended) = status_and_json(response).await;
    assert_eq!(status, 200, "{appended}");
    for replica in [&a, &b] {
        let response = with_key(
            replica,
            reqwest::Method::GET,
            &format!("{items_path}?order=asc"),
            &secret,
        )
        .send()
        .await
        .unwrap();
        let (status, _, listed) = status_and_json(response).await;
        assert_eq!(status, 200, "{listed}");
        let texts: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["content"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["from A", "from B"]);
    }

    // An MCP session opened on A is served by B (sessions are in the shared store).
    let initialized = mcp(
        &a,
        &secret,
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "replicas", "version": "1"}}}),
    )
    .await;
    let session = initialized["session"].as_str().expect("a session id");
    let listed = mcp(
        &b,
        &secret,
        Some(session),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
    )
    .await;
    let tools: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {listed}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"weather_current"), "{tools:?}");
}

/// The number after `key` on its line of `text` (`key = 30000`, `key: 35s`).
fn number_after(text: &str, key: &str) -> u64 {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` line"));
    line[key.len()..]
        .trim_start_matches([' ', '=', ':'])
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|e| panic!("`{line}`: {e}"))
}

#[test]
fn the_compose_files_agree_with_the_replicas_config() {
    let root = paths::workspace_root();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
    let compose = read("docker-compose.yml");
    let aigw = read("deploy/aigw.toml");
    let nginx = read("deploy/nginx.conf");
    let prometheus = read("deploy/prometheus.yml");
    // Compose must not kill a replica before its grace (counted from SIGTERM) and the second
    // it takes to end the streams still open.
    let grace_ms = number_after(&aigw, "shutdown_grace_ms");
    let stop_s = number_after(&compose, "stop_grace_period");
    assert!(
        stop_s * 1000 >= grace_ms + 2000,
        "stop_grace_period {stop_s}s is too short for shutdown_grace_ms {grace_ms}"
    );
    assert!(number_after(&aigw, "drain_delay_ms") < grace_ms);
    // Every replica is balanced and scraped, on the port it listens on.
    let port = aigw
        .lines()
        .find_map(|l| l.strip_prefix("listen = \"0.0.0.0:"))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("the replicas listen on 0.0.0.0:<port>");
    for replica in ["aigw-1", "aigw-2"] {
        assert!(compose.contains(&format!("\n  {replica}:\n")), "{replica}");
        let address = format!("{replica}:{port}");
        assert!(
            nginx.contains(&format!("server {address} ")),
            "nginx: {address}"
        );
        assert!(
            prometheus.contains(&format!("\"{address}\"")),
            "prometheus: {address}"
        );
    }
}
