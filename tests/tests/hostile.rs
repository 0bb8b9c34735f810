//! A plugin that traps, spins or eats memory costs one call, never the gateway; on the request's
//! translation (`encode`) it is the request's failure, never the target's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aigw_tests::gateway::{Gateway, status_and_json};
use aigw_tests::paths;
use aigw_tests::setup::{Upstreams, error_message, header, toml_str};
use serde_json::json;

async fn gateway_with_hostile_plugin(upstreams: &Upstreams) -> Gateway {
    let hostile = format!(
        "[providers.hostile]\nplugin = {}\nbase_url = {}\n\n[models.guarded]\ntargets = [\"hostile/trap-decode\", \"local/ok\"]\n\n[models.translated]\ntargets = [\"hostile/trap\", \"local/ok\"]\n",
        toml_str(&paths::test_plugin("hostile").to_string_lossy()),
        toml_str(&upstreams.local.base_url()),
    );
    upstreams.gateway(&hostile).await
}

fn ask(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "are you well?"}]})
}

#[tokio::test]
async fn each_plugin_fault_fails_only_its_own_call() {
    let upstreams = Upstreams::start().await;
    let mut gateway = gateway_with_hostile_plugin(&upstreams).await;

    for (fault, kind) in [
        ("trap", "(trap)"),
        ("loop", "(deadline)"),
        ("memory", "(memory_limit)"),
    ] {
        let started = Instant::now();
        let (status, _, body) =
            status_and_json(gateway.chat(&ask(&format!("hostile/{fault}"))).await).await;
        // The fault came while translating the request: the request's, answered as a 400.
        assert_eq!(status, 400, "{fault}: {body}");
        assert_eq!(body["error"]["code"], "request_fault", "{fault}: {body}");
        assert_eq!(
            body["error"]["type"], "invalid_request_error",
            "{fault}: {body}"
        );
        let message = error_message(&body);
        assert!(
            message.contains(kind),
            "{fault} classified as {kind}: {message}"
        );
        // call_timeout_ms is 1000: a spinning plugin is stopped, not waited for.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{fault} took {:?}",
            started.elapsed()
        );

        // The very next call through the same plugin works.
        let (status, _, body) = status_and_json(gateway.chat(&ask("hostile/ok")).await).await;
        assert_eq!(status, 200, "after {fault}: {body}");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "mock reply to: are you well?"
        );
        assert!(gateway.is_running(), "the gateway died after {fault}");
    }
    // `trap` panics in encode: nothing may have gone upstream for it.
    assert!(
        upstreams
            .local
            .chat_requests()
            .iter()
            .all(|r| r.model() != Some("trap"))
    );

    // A fault on the upstream's answer is the plugin's (and the target's): 502.
    let (status, _, body) = status_and_json(gateway.chat(&ask("hostile/trap-decode")).await).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "plugin_fault", "{body}");
    assert_eq!(body["error"]["type"], "plugin_error", "{body}");
}

#[tokio::test]
async fn faults_on_the_request_never_open_the_targets_breaker() {
    let upstreams = Upstreams::start().await;
    let gateway = gateway_with_hostile_plugin(&upstreams).await;

    // Twice the breaker's threshold (5), on a route with a healthy fallback: each is answered
    // at once, no other target is tried for it.
    for _ in 0..10 {
        let (status, headers, body) = status_and_json(gateway.chat(&ask("translated")).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "request_fault", "{body}");
        assert_eq!(header(&headers, "x-aigw-attempts"), "1");
    }
    let (status, _, body) = status_and_json(gateway.chat(&ask("hostile/memory")).await).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("request_fault")),
        "{body}"
    );
    // A streamed request fails the same way, before any byte of a stream.
    let mut streamed = ask("hostile/memory");
    streamed["stream"] = json!(true);
    let (status, _, body) = status_and_json(gateway.chat(&streamed).await).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "request_fault", "{body}");
    assert!(
        upstreams.local.chat_requests().is_empty(),
        "nothing went upstream"
    );

    for target in ["hostile/trap", "hostile/memory"] {
        let health = gateway.target_health(target).await;
        assert_eq!(health["state"], "closed", "{health}");
        assert_eq!(health["consecutive_failures"], 0, "{health}");
        assert_eq!(health["failed"], json!({}), "{health}");
        assert_eq!(health["last_error"], serde_json::Value::Null, "{health}");
    }
    // The same plugin still serves well-formed work.
    let (status, _, body) = status_and_json(gateway.chat(&ask("hostile/ok")).await).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_plugin_trapping_on_the_upstreams_answer_fails_over_to_the_next_target() {
    let upstreams = Upstreams::start().await;
    let gateway = gateway_with_hostile_plugin(&upstreams).await;

    let (status, headers, body) = status_and_json(gateway.chat(&ask("guarded")).await).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-aigw-attempts"), "2");
    assert_eq!(header(&headers, "x-aigw-provider"), "local");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: are you well?"
    );
}

#[tokio::test]
async fn a_plugin_sending_to_an_origin_its_provider_was_not_granted_is_refused() {
    let upstreams = Upstreams::start().await;
    let gateway = gateway_with_hostile_plugin(&upstreams).await;
    // The groq mock is a real server on another origin: the hostile provider was granted only
    // its own base URL's (the local mock's).
    let elsewhere = format!("{}/chat/completions", upstreams.groq.base_url());
    let mut body = ask("hostile/elsewhere");
    body["user"] = json!(elsewhere);
    let (status, _, body) = status_and_json(gateway.chat(&body).await).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "plugin_fault", "{body}");
    let message = error_message(&body);
    assert!(message.contains("is not granted"), "{message}");
    assert!(
        upstreams.groq.requests().is_empty(),
        "nothing reached the ungranted origin"
    );
    assert!(upstreams.local.chat_requests().is_empty());
}
