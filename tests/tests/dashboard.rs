//! The dashboard through the real binary: its static shell open to a browser with its security
//! headers, every admin JSON it reads behind the admin key (401 without, 403 with a virtual
//! key), the history counting requests and failovers, a target's recent errors, conversations
//! browsed by namespace and confined to it; and the page itself in a real headless browser
//! (Debian's chromium driven by Playwright: `tests/python/dashboard_check.py`) seeing a target go
//! down, the chart move, and stored markup shown as text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use aigw_tests::gateway::Gateway;
use aigw_tests::python::Check;
use aigw_tests::setup::{Upstreams, toml_str};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "admin-dashboard-key-0123456789abcdef";
const NAMESPACE: &str = "team-dash";
/// A route whose first target always fails (503) and whose second serves.
const ROUTES: &str = "[models.shaky]\ntargets = [\"groq/unavailable-503\", \"local/ok\"]\n\n\
                      [models.steady]\ntargets = [\"local/ok\"]\n";
const FAILING: &str = "groq/unavailable-503";

async fn start(upstreams: &Upstreams, dir: &tempfile::TempDir) -> Gateway {
    let config = upstreams.config(&format!(
        "{ROUTES}\n[memory]\npath = {}\n",
        toml_str(&dir.path().join("aigw.db").to_string_lossy())
    ));
    upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&config)
        .await
}

/// A virtual key granted [`NAMESPACE`]; its secret.
async fn make_key(gateway: &Gateway) -> String {
    gateway
        .create_key(&json!({"name": "dashboard", "namespaces": [NAMESPACE]}))
        .await
        .1
}

async fn get(gateway: &Gateway, path: &str, key: Option<&str>) -> (StatusCode, Value) {
    let mut request = gateway.client().get(gateway.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn chat(gateway: &Gateway, key: &str, route: &str) -> StatusCode {
    gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": route, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
}

/// A conversation written through the API in `namespace`; its id.
async fn conversation(gateway: &Gateway, key: &str, namespace: &str, text: &str) -> String {
    let response = gateway
        .client()
        .post(gateway.url("/v1/conversations"))
        .bearer_auth(key)
        .header("x-aigw-namespace", namespace)
        .json(&json!({"items": [{"type": "message", "role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_admin_json_needs_the_admin_key_and_the_shell_does_not() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&upstreams, &dir).await;
    let key = make_key(&gateway).await;

    // The shell: no credential, no data, its security headers.
    for (path, media) in [
        ("/admin/dashboard", "text/html"),
        ("/admin/dashboard/dashboard.js", "text/javascript"),
        ("/admin/dashboard/dashboard.css", "text/css"),
    ] {
        let response = gateway
            .client()
            .get(gateway.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(media));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    // Only the shell's three files are open: any other path under it needs the key.
    let (status, _) = get(&gateway, "/admin/dashboard/other.js", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    for path in [
        "/admin/history",
        "/admin/targets",
        "/admin/namespaces",
        &format!("/admin/conversations?namespace={NAMESPACE}"),
        &format!("/admin/conversations/conv_x/items?namespace={NAMESPACE}"),
    ] {
        let (status, body) = get(&gateway, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_api_key", "{path}: {body}");
        let (status, body) = get(&gateway, path, Some(&key)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(
            body["error"]["code"], "admin_key_required",
            "{path}: {body}"
        );
    }

    // The history counts what was served, the failovers and the failures per target.
    let (_, before) = get(&gateway, "/admin/history", Some(ADMIN)).await;
    assert_eq!(before["buckets"], json!([]), "{before}");
    assert_eq!(before["bucket_seconds"], 10);
    for _ in 0..3 {
        assert_eq!(chat(&gateway, &key, "shaky").await, StatusCode::OK);
    }
    assert_eq!(chat(&gateway, &key, "steady").await, StatusCode::OK);
    let (status, history) = get(&gateway, "/admin/history", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let buckets = history["buckets"].as_array().unwrap();
    let sum = |field: &str| {
        buckets
            .iter()
            .map(|b| b[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(sum("requests"), 4, "{history}");
    assert_eq!(sum("failovers"), 3, "{history}");
    assert_eq!(sum("server_errors"), 0, "{history}");
    let failures: u64 = buckets
        .iter()
        .filter_map(|b| b["target_errors"][FAILING].as_u64())
        .sum();
    assert!(failures >= 3, "{history}");
    assert!(buckets.iter().all(|b| b["latency_p95_ms"].is_number()));

    // The failing target's recent errors, newest first, with class and status.
    let health = gateway.target_health(FAILING).await;
    let recent = health["recent_errors"].as_array().unwrap();
    assert!(recent.len() >= 3, "{health}");
    assert_eq!(recent[0]["class"], "unavailable", "{health}");
    assert_eq!(recent[0]["status"], 503, "{health}");
    assert!(recent[0]["at"].as_u64().unwrap() > 1_700_000_000);
    assert!(!recent[0]["message"].as_str().unwrap().is_empty());
    assert_eq!(
        gateway.target_health("local/ok").await["recent_errors"],
        json!([])
    );

    // Conversations by namespace: the admin reads any, each call confined to the one named.
    let ours = conversation(&gateway, &key, NAMESPACE, "in the team's namespace").await;
    let (status, namespaces) = get(&gateway, "/admin/namespaces", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{namespaces}");
    assert_eq!(
        namespaces["data"],
        json!([{"namespace": NAMESPACE, "conversations": 1}])
    );
    let (status, listed) = get(
        &gateway,
        &format!("/admin/conversations?namespace={NAMESPACE}"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["data"][0]["id"], ours.as_str());
    assert_eq!(listed["has_more"], false);
    let (status, items) = get(
        &gateway,
        &format!("/admin/conversations/{ours}/items?namespace={NAMESPACE}"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{items}");
    assert_eq!(
        items["data"][0]["content"][0]["text"],
        "in the team's namespace"
    );
    let (status, body) = get(
        &gateway,
        &format!("/admin/conversations/{ours}/items?namespace=default"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = get(&gateway, "/admin/conversations", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "missing_namespace");
}

#[tokio::test]
async fn the_dashboard_in_a_headless_browser() {
    let chromium = std::env::var_os("AIGW_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "{} not found: this test drives Debian's chromium (as root: apt-get install -y \
         chromium; `.ci/run` does), or set AIGW_CHROMIUM to a Chromium binary",
        chromium.display()
    );
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&upstreams, &dir).await;
    let key = make_key(&gateway).await;
    Check {
        script: "dashboard_check.py",
        imports: "playwright.sync_api",
        env: &[
            ("AIGW_ADMIN_KEY", ADMIN),
            ("AIGW_KEY", &key),
            ("AIGW_NAMESPACE", NAMESPACE),
            ("AIGW_FAILING_ROUTE", "shaky"),
            ("AIGW_FAILING_TARGET", FAILING),
            ("AIGW_CHROMIUM", &chromium.to_string_lossy()),
        ],
        expect: &[
            "ok page served with its security headers",
            "ok wrong keys refused",
            "ok targets healthy",
            "ok plugins listed",
            "ok target down on the page",
            "ok chart moved",
            "ok keys listed with their usage",
            "ok conversation browsed, stored markup shown as text",
        ],
    }
    .run(&gateway)
    .await;
}
