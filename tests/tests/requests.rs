//! What the gateway answers on its own: bad requests, unknown models, the model list, health.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aigw_tests::gateway::status_and_json;
use aigw_tests::setup::{Upstreams, error_message};
use serde_json::{Value, json};

const MODELS: &str = "\
[models.fast]
targets = [\"groq/llama-3.1-8b-instant\", \"local/ok\"]

[models.smart]
targets = [\"groq/llama-3.3-70b-versatile\"]
";

#[tokio::test]
async fn an_unknown_model_is_a_404_that_lists_the_known_ones() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;

    let (status, _, body) = status_and_json(
        gateway
            .chat(&json!({"model": "fsat", "messages": [{"role": "user", "content": "hi"}]}))
            .await,
    )
    .await;

    assert_eq!(status, 404, "{body}");
    let message = error_message(&body);
    assert!(message.contains("fsat"), "{message}");
    assert!(
        message.contains("fast") && message.contains("smart"),
        "{message}"
    );
    assert!(upstreams.groq.requests().is_empty() && upstreams.local.requests().is_empty());
}

#[tokio::test]
async fn an_unknown_provider_in_a_direct_address_is_a_404() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;

    let (status, _, body) = status_and_json(
        gateway
            .chat(&json!({"model": "nope/ok", "messages": [{"role": "user", "content": "hi"}]}))
            .await,
    )
    .await;

    assert_eq!(status, 404, "{body}");
    error_message(&body);
}

#[tokio::test]
async fn malformed_json_is_a_400_that_says_where() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;

    let response = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{\"model\": \"fast\",\n \"messages\": [}")
        .send()
        .await
        .unwrap();
    let (status, _, body) = status_and_json(response).await;

    assert_eq!(status, 400, "{body}");
    let message = error_message(&body);
    assert!(
        message.contains("line 2"),
        "the message must give the line: {message}"
    );
    assert!(
        message.contains("column"),
        "the message must give the column: {message}"
    );
    assert!(upstreams.local.requests().is_empty() && upstreams.groq.requests().is_empty());
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_a_413() {
    let upstreams = Upstreams::start().await;
    let config = format!(
        "[server]\nmax_body_bytes = 1024\n\n{}",
        upstreams.config(MODELS)
    );
    let gateway = upstreams.gateway_builder().start(&config).await;

    let big = "x".repeat(4096);
    let (status, _, body) = status_and_json(
        gateway
            .chat(&json!({"model": "fast", "messages": [{"role": "user", "content": big}]}))
            .await,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    error_message(&body);
    assert!(upstreams.local.requests().is_empty() && upstreams.groq.requests().is_empty());

    // A small body on the same gateway still goes through.
    let (status, _, body) = status_and_json(
        gateway
            .chat(&json!({"model": "local/ok", "messages": [{"role": "user", "content": "small"}]}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_model_list_names_aliases_and_every_configured_target() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;

    let (status, _, body) = status_and_json(gateway.get("/v1/models").await).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    let models: BTreeMap<String, Value> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m.clone()))
        .collect();
    for (id, owner) in [
        ("fast", "aigw"),
        ("smart", "aigw"),
        ("groq/llama-3.1-8b-instant", "groq"),
        ("groq/llama-3.3-70b-versatile", "groq"),
        ("local/ok", "local"),
    ] {
        let model = models
            .get(id)
            .unwrap_or_else(|| panic!("{id} missing from {body}"));
        assert_eq!(model["object"], "model", "{model}");
        assert_eq!(model["owned_by"], owner, "{model}");
        assert!(model["created"].is_u64(), "{model}");
    }
    // Listing models is the gateway's own knowledge: no upstream is asked.
    assert!(
        upstreams.groq.chat_requests().is_empty() && upstreams.local.chat_requests().is_empty()
    );
}

#[tokio::test]
async fn health_and_readiness_answer_once_started() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;

    assert_eq!(gateway.get("/healthz").await.status(), 200);
    assert_eq!(gateway.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn aigw_models_prints_exactly_what_the_model_list_serves() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;
    let (_, _, body) = status_and_json(gateway.get("/v1/models").await).await;
    let served: Vec<(String, String)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["owned_by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aigw.toml");
    std::fs::write(&path, upstreams.config(MODELS)).unwrap();
    let output = std::process::Command::new(aigw_tests::paths::aigw_bin())
        .args(["models", "--config"])
        .arg(&path)
        .env("GROQ_API_KEY", "unused")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["MODEL", "OWNED", "BY"])
    );
    let printed: Vec<(String, String)> = lines
        .map(|line| {
            let mut columns = line.split_whitespace();
            (
                columns.next().unwrap().to_owned(),
                columns.next().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(printed, served);
}
