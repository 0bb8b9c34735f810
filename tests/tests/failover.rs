//! Failover between the targets of an alias, and what the client hears when none can serve.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aigw_tests::gateway::{Gateway, read_stream, status_and_json};
use aigw_tests::mock;
use aigw_tests::setup::{Upstreams, error_message, header, provider_section};
use aigw_tests::sse::Transcript;
use serde_json::{Value, json};

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "anyone there?"}]})
}

fn ask_streaming(model: &str) -> Value {
    let mut body = ask(model);
    body["stream"] = json!(true);
    body
}

/// `[models.<name>]` with these targets.
fn alias(name: &str, targets: &[&str]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!("[models.{name}]\ntargets = [{}]\n", targets.join(", "))
}

/// Asserts a 200 served by `local/ok` on the second attempt.
async fn assert_served_by_second_target(gateway: &Gateway, response: reqwest::Response) {
    let (status, headers, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}\n{}", gateway.stderr());
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: anyone there?"
    );
    assert_eq!(header(&headers, "x-aigw-attempts"), "2");
    assert_eq!(header(&headers, "x-aigw-provider"), "local");
    assert_eq!(header(&headers, "x-aigw-target"), "local/ok");
}

#[tokio::test]
async fn a_rate_limited_target_fails_over_to_the_next() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&alias("fast", &["groq/rate-limit", "local/ok"]))
        .await;

    assert_served_by_second_target(&gateway, gateway.chat(&ask("fast")).await).await;
    assert_eq!(
        upstreams.groq.chat_requests().len(),
        1,
        "the 429 is not retried on the same target"
    );
    assert_eq!(upstreams.local.chat_requests().len(), 1);
    assert_eq!(upstreams.local.chat_requests()[0].body["model"], "ok");
}

#[tokio::test]
async fn server_errors_fail_over_to_the_next_target() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{}{}{}",
            alias("a", &["groq/error-500", "local/ok"]),
            alias("b", &["groq/unavailable-503", "local/ok"]),
            alias("c", &["groq/capacity-498", "local/ok"]),
        ))
        .await;

    for model in ["a", "b", "c"] {
        assert_served_by_second_target(&gateway, gateway.chat(&ask(model)).await).await;
    }
    assert_eq!(upstreams.groq.chat_requests().len(), 3);
}

#[tokio::test]
async fn a_reset_connection_fails_over_to_the_next_target() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&alias("fast", &["groq/reset", "local/ok"]))
        .await;

    assert_served_by_second_target(&gateway, gateway.chat(&ask("fast")).await).await;
    assert!(!upstreams.groq.chat_requests().is_empty());
}

#[tokio::test]
async fn a_body_cut_short_fails_over_instead_of_passing_as_success() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&alias("fast", &["groq/cut-stream", "local/ok"]))
        .await;

    assert_served_by_second_target(&gateway, gateway.chat(&ask("fast")).await).await;
}

#[tokio::test]
async fn a_target_slower_than_its_timeout_fails_over() {
    let upstreams = Upstreams::start().await;
    let sluggish = provider_section(
        "sluggish",
        "openai-compatible",
        &upstreams.local,
        "timeout_ms = 300\n",
    );
    let gateway = upstreams
        .gateway(&format!(
            "{sluggish}\n{}",
            alias("fast", &["sluggish/slow-3000", "local/ok"])
        ))
        .await;

    let started = Instant::now();
    let response = gateway.chat(&ask("fast")).await;
    let elapsed = started.elapsed();

    assert_served_by_second_target(&gateway, response).await;
    // The slow target answers after 3 s; the timeout must have cut it off well before.
    assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?}");
    let seen = upstreams.local.chat_requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body["model"], "slow-3000");
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_byte_fails_over() {
    let upstreams = Upstreams::start().await;
    // cut-stream-0: 200 and event-stream headers, then the connection closes with no chunk.
    let gateway = upstreams
        .gateway(&format!(
            "{}{}",
            alias("cut", &["local/cut-stream-0", "groq/ok"]),
            alias("reset", &["local/reset", "groq/ok"]),
        ))
        .await;

    for model in ["cut", "reset"] {
        let response = gateway.chat(&ask_streaming(model)).await;
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(
            header(response.headers(), "x-aigw-attempts"),
            "2",
            "{model}"
        );
        assert_eq!(
            header(response.headers(), "x-aigw-target"),
            "groq/ok",
            "{model}"
        );
        let transcript = Transcript::from_body(&response.text().await.unwrap());
        assert_eq!(
            transcript.content, "mock reply to: anyone there?",
            "{model}"
        );
        assert!(
            transcript.errors.is_empty(),
            "{model}: {:?}",
            transcript.errors
        );
        assert!(transcript.ends_with_done(), "{model}");
    }
}

#[tokio::test]
async fn a_stream_cut_after_its_first_byte_ends_with_an_error_event_and_no_done() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&alias("fast", &["local/cut-stream", "groq/ok"]))
        .await;

    let response = gateway.chat(&ask_streaming("fast")).await;
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);

    // What arrived is kept, the failure is said, and nothing claims the answer was complete.
    assert_eq!(transcript.content, "mock reply", "{body}");
    assert_eq!(transcript.errors.len(), 1, "{body}");
    assert!(
        transcript.errors[0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        transcript
            .events
            .last()
            .and_then(|e| e.json())
            .is_some_and(|e| e.get("error").is_some())
    );
    assert!(!transcript.has_done(), "{body}");
    assert_eq!(transcript.finish_reason, None);
    // Half an answer was already sent: starting over on another target would garble it.
    assert!(upstreams.groq.chat_requests().is_empty());
}

#[tokio::test]
async fn an_upstream_error_frame_mid_stream_reaches_the_client_without_done() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway("").await;

    let response = gateway.chat(&ask_streaming("local/stream-error")).await;
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);

    assert_eq!(transcript.errors.len(), 1, "{body}");
    assert!(!transcript.has_done(), "{body}");
}

#[tokio::test]
async fn when_every_target_is_rate_limited_the_client_gets_429_with_retry_after() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&alias("fast", &["local/rate-limit", "groq/rate-limit"]))
        .await;

    let (status, headers, body) = status_and_json(gateway.chat(&ask("fast")).await).await;

    assert_eq!(status, 429, "{body}");
    assert_eq!(
        header(&headers, "retry-after"),
        mock::RETRY_AFTER_SECONDS.to_string()
    );
    let message = error_message(&body);
    assert!(
        message.contains("Rate limit reached for model `rate-limit`"),
        "{message}"
    );
    assert_eq!(upstreams.local.chat_requests().len(), 1);
    assert_eq!(upstreams.groq.chat_requests().len(), 1);
}

#[tokio::test]
async fn when_every_target_is_overloaded_the_client_gets_503_with_the_reason() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&alias("fast", &["groq/error-500", "local/unavailable-503"]))
        .await;

    let (status, _, body) = status_and_json(gateway.chat(&ask("fast")).await).await;

    // The last target's status and reason.
    assert_eq!(status, 503, "{body}");
    assert!(
        error_message(&body).contains(mock::OVERLOADED_MESSAGE),
        "{body}"
    );
}

#[tokio::test]
async fn a_lone_failing_target_maps_to_the_matching_gateway_status() {
    let upstreams = Upstreams::start().await;
    let sluggish = provider_section(
        "sluggish",
        "openai-compatible",
        &upstreams.local,
        "timeout_ms = 300\n",
    );
    let gateway = upstreams.gateway(&sluggish).await;

    for (model, expected, reason) in [
        ("local/error-500", 500, Some(mock::SERVER_ERROR_MESSAGE)),
        ("local/unavailable-503", 503, Some(mock::OVERLOADED_MESSAGE)),
        (
            "groq/rate-limit-no-header",
            429,
            Some("Please try again in 5.289s"),
        ),
        ("local/reset", 502, None),
        ("local/cut-stream", 502, None),
        ("sluggish/slow-3000", 504, None),
    ] {
        let (status, headers, body) = status_and_json(gateway.chat(&ask(model)).await).await;
        assert_eq!(status, expected, "{model}: {body}");
        let message = error_message(&body);
        if let Some(reason) = reason {
            assert!(message.contains(reason), "{model}: {message}");
        }
        if model == "groq/rate-limit-no-header" {
            // No header upstream: any retry-after must come from the body's "5.289s", not be invented.
            let retry_after = header(&headers, "retry-after");
            assert!(
                ["", "5", "6"].contains(&retry_after),
                "retry-after {retry_after}"
            );
        }
    }
}

#[tokio::test]
async fn an_invalid_request_is_answered_with_the_upstream_reason_and_not_failed_over() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&alias("fast", &["local/bad-request", "groq/ok"]))
        .await;

    let (status, _, body) = status_and_json(gateway.chat(&ask("fast")).await).await;

    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains(mock::BAD_REQUEST_MESSAGE),
        "{body}"
    );
    assert_eq!(upstreams.local.chat_requests().len(), 1);
    assert!(
        upstreams.groq.chat_requests().is_empty(),
        "an invalid request must not be sent elsewhere"
    );
}

#[tokio::test]
async fn context_length_exceeded_with_no_other_target_is_a_400_with_the_upstream_reason() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway("").await;

    let (status, _, body) = status_and_json(gateway.chat(&ask("local/context-length")).await).await;

    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains("Please reduce the length of the messages or completion."),
        "{body}"
    );
}

#[tokio::test]
async fn a_provider_whose_key_variable_is_unset_is_skipped_with_a_clear_error() {
    let upstreams = Upstreams::start().await;
    let config = format!(
        "{}\n{}\n{}\n{}",
        aigw_tests::setup::plugins_section(),
        provider_section(
            "groq",
            "groq",
            &upstreams.groq,
            "api_key = \"${AIGW_TEST_UNSET_KEY}\"\n"
        ),
        provider_section("local", "openai-compatible", &upstreams.local, ""),
        alias("fast", &["groq/ok", "local/ok"]),
    );
    let gateway = Gateway::start(&config).await;

    let (status, headers, body) = status_and_json(gateway.chat(&ask("fast")).await).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-aigw-provider"), "local");
    assert!(
        upstreams.groq.requests().is_empty(),
        "a request went out without its credential"
    );
    let reported = gateway
        .wait_for_log(Duration::from_secs(10), |line| {
            line.contains("AIGW_TEST_UNSET_KEY")
        })
        .await;
    assert!(
        reported.is_some(),
        "the log must name the missing variable:\n{}",
        gateway.stderr()
    );
}
