//! Requests of the wrong shape or size are the client's 400/413, refused before any plugin or
//! upstream sees them, and never count against a target: however many arrive, the route keeps
//! serving everyone else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_tests::gateway::{Gateway, status_and_json};
use aigw_tests::setup::{Upstreams, error_message};
use serde_json::{Value, json};

/// The default `server.max_body_bytes` (4 MiB): bodies here stay inside it, so only the shape
/// and the value count can refuse them.
const MAX_BODY: usize = 4 << 20;

const ROUTE: &str = "[models.fast]\ntargets = [\"local/ok\"]\n";

/// Posts raw JSON text (some bodies here are too big to build as a `Value` cheaply).
async fn post_raw(gateway: &Gateway, body: String) -> reqwest::Response {
    gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A request whose only fault is a tool schema with `items` numbers in an `enum`: about two
/// bytes each, so two million fit the body limit.
fn many_values(items: usize) -> String {
    let mut body = String::from(
        r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"enum":["#,
    );
    body.push_str(&"0,".repeat(items - 1));
    body.push_str("0]}}}]}");
    body
}

/// Each malformed request, with the field the answer must name.
fn malformed() -> Vec<(Value, &'static str, &'static str)> {
    let user = json!({"role": "user", "content": "hi"});
    vec![
        (
            json!({"model": "fast", "messages": "hi"}),
            "messages",
            "invalid_type",
        ),
        (
            json!({"model": "fast", "messages": [1, 2, 3]}),
            "messages[0]",
            "invalid_type",
        ),
        (
            json!({"model": "fast", "messages": []}),
            "messages",
            "empty_array",
        ),
        (
            json!({"model": "fast"}),
            "messages",
            "missing_required_parameter",
        ),
        (
            json!({"model": "fast", "messages": [{"content": "hi"}]}),
            "messages[0].role",
            "missing_required_parameter",
        ),
        (
            json!({"model": "fast", "messages": [{"role": "root", "content": "hi"}]}),
            "messages[0].role",
            "invalid_value",
        ),
        (
            json!({"model": "fast", "messages": [user, user, user, {"role": "user", "content": 42}]}),
            "messages[3].content",
            "invalid_type",
        ),
        (
            json!({"model": "fast", "messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
            "messages[0].content[0].type",
            "missing_required_parameter",
        ),
        (
            json!({"model": "fast", "messages": [{"role": "tool", "content": "42"}]}),
            "messages[0].tool_call_id",
            "missing_required_parameter",
        ),
        (
            json!({"model": "fast", "messages": [{"role": "assistant", "tool_calls": {"id": "c"}}]}),
            "messages[0].tool_calls",
            "invalid_type",
        ),
        (
            json!({"model": "fast", "messages": [user], "stream": "yes"}),
            "stream",
            "invalid_type",
        ),
        (
            json!({"model": "fast", "messages": [user], "max_tokens": "100"}),
            "max_tokens",
            "invalid_type",
        ),
        (
            json!({"model": "fast", "messages": [user], "temperature": "warm"}),
            "temperature",
            "invalid_type",
        ),
        (
            json!({"model": "fast", "messages": [user], "stop": [1]}),
            "stop[0]",
            "invalid_type",
        ),
        (
            json!({"model": "fast", "messages": [user], "tools": ["f"]}),
            "tools[0]",
            "invalid_type",
        ),
    ]
}

#[tokio::test]
async fn each_malformed_request_is_refused_naming_the_field_before_any_upstream_call() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(ROUTE).await;

    for (body, param, code) in malformed() {
        let (status, _, answer) = status_and_json(gateway.chat(&body).await).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{answer}");
        assert_eq!(answer["error"]["param"], param, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(error_message(&answer).contains(param), "{answer}");
    }
    assert!(
        upstreams.local.chat_requests().is_empty(),
        "a malformed request reached the upstream"
    );
}

#[tokio::test]
async fn a_body_with_millions_of_values_inside_the_size_limit_is_refused_before_the_plugin() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(ROUTE).await;
    let body = many_values(2_000_000);
    assert!(body.len() < MAX_BODY, "{} bytes", body.len());

    let (status, _, answer) = status_and_json(post_raw(&gateway, body).await).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many_values", "{answer}");
    assert!(upstreams.local.chat_requests().is_empty());

    // Just under the cap (200,000 values) the body is served: the cap keeps what a plugin
    // parses well inside its memory limit (64 MiB here, the default).
    let (status, _, answer) = status_and_json(post_raw(&gateway, many_values(199_000)).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(upstreams.local.chat_requests().len(), 1);
}

#[tokio::test]
async fn bad_requests_never_open_the_breaker_of_the_route_they_name() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(ROUTE).await;

    // Twice the breaker's threshold (5) of each: malformed shapes, and bodies whose values
    // would make the plugin's parse hit its memory cap.
    let shapes = malformed();
    for (body, _, _) in shapes.iter().cycle().take(10) {
        let (status, _, answer) = status_and_json(gateway.chat(body).await).await;
        assert_eq!(status, 400, "{answer}");
    }
    let huge = many_values(2_000_000);
    for _ in 0..10 {
        let (status, _, answer) = status_and_json(post_raw(&gateway, huge.clone()).await).await;
        assert_eq!(status, 413, "{answer}");
    }

    let ask = json!({"model": "fast", "messages": [{"role": "user", "content": "still there?"}]});
    let (status, _, answer) = status_and_json(gateway.chat(&ask).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "mock reply to: still there?"
    );
    let health = gateway.target_health("local/ok").await;
    assert_eq!(health["state"], "closed", "{health}");
    assert_eq!(health["consecutive_failures"], 0, "{health}");
    assert_eq!(health["failed"], json!({}), "{health}");
    assert_eq!(health["served"], 1, "{health}");
}

#[tokio::test]
async fn a_3_mb_model_name_is_refused_and_echoed_nowhere() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(ROUTE).await;
    let name = format!("local/{}", "n".repeat(3 << 20));

    let body = json!({"model": name, "messages": [{"role": "user", "content": "hi"}]});
    let response = gateway.chat(&body).await;
    let header_bytes: usize = response
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    let (status, _, answer) = status_and_json(response).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "model_name_too_long");
    assert_eq!(answer["error"]["param"], "model");
    assert!(header_bytes < 1024, "{header_bytes} bytes of headers");
    assert!(
        answer.to_string().len() < 1024,
        "the answer echoes the name"
    );

    // The gateway still serves, and neither its log nor its target list holds the name.
    let ask = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, _) = status_and_json(gateway.chat(&ask).await).await;
    assert_eq!(status, 200);
    let logged = gateway
        .wait_for_log(std::time::Duration::from_secs(10), |l| {
            l.contains("chat completion")
        })
        .await;
    assert!(logged.is_some(), "{}", gateway.stderr());
    let log = gateway.stderr();
    assert!(
        log.lines().all(|l| l.len() < 16 << 10),
        "a log line of {} bytes",
        log.lines().map(str::len).max().unwrap_or(0)
    );
    assert!(!log.contains(&"n".repeat(1000)));
    let targets = gateway.get("/admin/targets").await.text().await.unwrap();
    assert!(
        targets.len() < 16 << 10,
        "/admin/targets is {} bytes",
        targets.len()
    );
    assert!(upstreams.local.chat_requests().len() == 1);
}
