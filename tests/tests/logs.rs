//! The request log: one line per request with provider, model, status and attempts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::setup::Upstreams;
use serde_json::{Value, json};

/// A field of a tracing JSON line, whether flattened or under `fields`.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get("fields")
        .and_then(|f| f.get(name))
        .or_else(|| line.get(name))
}

fn is_request_line(line: &str) -> bool {
    serde_json::from_str::<Value>(line)
        .is_ok_and(|l| field(&l, "status").is_some() && field(&l, "attempts").is_some())
}

/// `200` and `"200"` are the same status to a reader.
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

#[tokio::test]
async fn json_logs_have_one_line_per_request_with_its_outcome() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.json_logged_gateway(
            "[models.fast]\ntargets = [\"groq/ok\"]\n\n[models.flaky]\ntargets = [\"groq/rate-limit\", \"local/ok\"]\n",
        ).await;

    let ok = gateway
        .chat(&json!({"model": "fast", "messages": [{"role": "user", "content": "a"}]}))
        .await;
    assert_eq!(ok.status(), 200);
    let failed_over = gateway
        .chat(&json!({"model": "flaky", "messages": [{"role": "user", "content": "b"}]}))
        .await;
    assert_eq!(failed_over.status(), 200);

    let lines = gateway
        .wait_for_log_lines(Duration::from_secs(10), 2, is_request_line)
        .await;
    assert_eq!(
        lines.len(),
        2,
        "expected two request lines in:\n{}",
        gateway.stderr()
    );
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    assert_eq!(text(field(&lines[0], "provider")), "groq", "{}", lines[0]);
    assert_eq!(text(field(&lines[0], "status")), "200", "{}", lines[0]);
    assert_eq!(text(field(&lines[0], "attempts")), "1", "{}", lines[0]);
    assert!(
        text(field(&lines[0], "model")).contains("fast")
            || text(field(&lines[0], "model")).contains("ok")
    );
    assert!(
        field(&lines[0], "latency_ms").is_some() || field(&lines[0], "latency").is_some(),
        "{}",
        lines[0]
    );

    // Empty fields are left out: a request nothing failed in has no failure fields.
    assert!(
        field(&lines[0], "failed_attempts").is_none(),
        "{}",
        lines[0]
    );
    assert!(field(&lines[0], "error").is_none(), "{}", lines[0]);
    assert!(
        text(field(&lines[0], "attempt_log")).starts_with("groq/ok first served at="),
        "{}",
        lines[0]
    );

    assert_eq!(text(field(&lines[1], "provider")), "local", "{}", lines[1]);
    assert_eq!(text(field(&lines[1], "attempts")), "2", "{}", lines[1]);
    assert!(
        text(field(&lines[1], "failed_attempts")).starts_with("groq/rate-limit rate_limited"),
        "{}",
        lines[1]
    );

    // In JSON mode every line is JSON, so log shippers can read the whole stream.
    for line in gateway.stderr().lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}

#[tokio::test]
async fn a_failed_request_is_logged_with_its_status() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.json_logged_gateway("").await;

    let response = gateway
        .chat(&json!({"model": "local/error-500", "messages": [{"role": "user", "content": "c"}]}))
        .await;
    assert_eq!(response.status(), 500);

    let lines = gateway
        .wait_for_log_lines(Duration::from_secs(10), 1, is_request_line)
        .await;
    assert_eq!(lines.len(), 1, "{}", gateway.stderr());
    let line: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(text(field(&line, "status")), "500", "{line}");
    // A 500 is retried once on the same target.
    assert_eq!(text(field(&line, "attempts")), "2", "{line}");
    // Nothing served it, but the line must say which target failed.
    assert!(lines[0].contains("local/error-500"), "{line}");
}

/// A model name that tries to start a log line of its own and recolour the terminal. It names
/// the `local` provider directly, so the request is routed and logged.
const FORGING_MODEL: &str = "local/x\nINFO forged line\u{1b}[31m\r\u{9b}2J";

#[tokio::test]
async fn a_client_string_cannot_forge_or_colour_a_human_log_line() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway("").await;

    let response = gateway
        .chat(&json!({"model": FORGING_MODEL, "messages": [{"role": "user", "content": "d"}]}))
        .await;
    assert_eq!(response.status(), 200);
    let logged = gateway
        .wait_for_log(Duration::from_secs(10), |l| l.contains("chat completion"))
        .await;
    let Some(line) = logged else {
        panic!("no request line:\n{}", gateway.stderr());
    };
    // The name is in the line, its controls visible as escapes.
    assert!(
        line.contains(r"local/x\nINFO forged line\u{1b}[31m\r\u{9b}2J"),
        "{line}"
    );
    let log = gateway.stderr();
    assert!(
        !log.lines().any(|l| l.starts_with("INFO forged")),
        "a forged line:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "a raw ESC in the log:\n{log:?}");
    assert!(!log.contains('\u{9b}'), "a raw CSI in the log:\n{log:?}");
    assert!(!log.contains('\r'), "a raw carriage return in the log");
}

#[tokio::test]
async fn with_a_client_string_full_of_controls_every_json_line_is_still_json() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.json_logged_gateway("").await;

    let response = gateway
        .chat(&json!({"model": FORGING_MODEL, "messages": [{"role": "user", "content": "e"}]}))
        .await;
    assert_eq!(response.status(), 200);
    let lines = gateway
        .wait_for_log_lines(Duration::from_secs(10), 1, is_request_line)
        .await;
    assert_eq!(lines.len(), 1, "{}", gateway.stderr());
    let line: Value = serde_json::from_str(&lines[0]).unwrap();
    // JSON carries the name exactly: its escapes are JSON's.
    assert_eq!(text(field(&line, "model")), FORGING_MODEL, "{line}");
    for line in gateway.stderr().lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    assert!(!gateway.stderr().contains('\u{1b}'));
}
