//! The failover engine end to end: each fault of the failover table, injected by the mock
//! upstream behind the real binary. Every test asserts what the client got *and* what the
//! upstreams saw: how many attempts, on which target, and how far apart.
//!
//! Each scenario also prints one `fault-table | <fault> | <wall ms> | <attempts seen>` line
//! (`cargo xtask faults` collects them into the table in the README). Timings are printed,
//! never asserted as upper bounds; spacing is asserted only as a lower bound below what the
//! engine guarantees (a retry pause, a timeout), with slack for the time a request takes to
//! reach the mock, which the gateway's clock starts before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aigw_tests::gateway::{Gateway, read_stream, status_and_json};
use aigw_tests::mock::{self, Flavor, MockUpstream, RecordedRequest};
use aigw_tests::setup::{Upstreams, error_message, header, plugins_section, provider_section};
use aigw_tests::sse::Transcript;
use serde_json::{Value, json};

const QUESTION: &str = "anyone there?";
const REPLY: &str = "mock reply to: anyone there?";

/// Engine settings short enough for tests: a 3-failure breaker open for 400 ms, a 50 ms retry
/// pause (25–75 ms with jitter), a 2 s first backoff for 429s that name no delay.
const FAILOVER: &str = "[failover]\nbreaker_failures = 3\nbreaker_cooldown_ms = 400\n\
                        retry_delay_ms = 50\nrate_limit_backoff_ms = 2000\n\
                        rate_limit_backoff_max_ms = 4000\n";

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": QUESTION}]})
}

fn ask_streaming(model: &str) -> Value {
    let mut body = ask(model);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

/// `[models.<name>]` with these targets (strings or inline tables) and extra route keys.
fn route(name: &str, targets: &[&str], extra: &str) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|t| {
            if t.starts_with('{') {
                (*t).to_owned()
            } else {
                format!("\"{t}\"")
            }
        })
        .collect();
    format!(
        "[models.{name}]\ntargets = [{}]\n{extra}",
        targets.join(", ")
    )
}

/// The gap between two recorded requests.
fn gap(requests: &[RecordedRequest], from: usize, to: usize) -> Duration {
    requests[to].at.duration_since(requests[from].at)
}

/// The log line without the terminal colour codes of the human format.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One row of the fault table.
fn report(fault: &str, wall: Duration, attempts_seen: usize) {
    println!(
        "fault-table | {fault} | {:.1} | {attempts_seen}",
        wall.as_secs_f64() * 1000.0
    );
}

async fn served_text(gateway: &Gateway, response: reqwest::Response) -> reqwest::header::HeaderMap {
    let (status, headers, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}\n{}", gateway.stderr());
    assert_eq!(body["choices"][0]["message"]["content"], REPLY, "{body}");
    headers
}

#[tokio::test]
async fn a_429_with_retry_after_fails_over_at_once_and_cools_the_target_down() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["groq/rate-limit", "local/ok"], "")
        ))
        .await;

    let started = Instant::now();
    let headers = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    report("429 with Retry-After", started.elapsed(), 2);
    assert_eq!(header(&headers, "x-aigw-attempts"), "2");
    assert_eq!(header(&headers, "x-aigw-target"), "local/ok");

    // The next requests do not touch the limited target while it cools down (7 s).
    for _ in 0..3 {
        let response = gateway.chat_debug(&ask("fast")).await;
        let log = header(response.headers(), "x-aigw-attempt-log").to_owned();
        served_text(&gateway, response).await;
        assert!(
            log.contains("groq/rate-limit skipped cooling"),
            "attempt log: {log}"
        );
    }
    assert_eq!(upstreams.groq.chat_requests().len(), 1, "never hammered");
    assert_eq!(upstreams.local.chat_requests().len(), 4);
    let health = gateway.target_health("groq/rate-limit").await;
    let remaining = health["cooldown_remaining_ms"].as_u64().unwrap();
    assert!(remaining > 0 && remaining <= 7000, "{health}");
    assert_eq!(health["failed"]["rate_limited"], 1, "{health}");
}

#[tokio::test]
async fn a_429_without_any_delay_backs_off_exponentially() {
    // The Hugging Face router names no wait at all on its 429 (rate-limit-no-header).
    let hf = MockUpstream::start(Flavor::HuggingFace).await;
    let local = MockUpstream::start(Flavor::OpenAi).await;
    let config = format!(
        "{}\n{}{}{FAILOVER}{}",
        plugins_section(),
        provider_section("hf", "huggingface", &hf, "api_key = \"hf_x\"\n"),
        provider_section("local", "openai-compatible", &local, ""),
        route("fast", &["hf/rate-limit-no-header", "local/ok"], ""),
    );
    let gateway = Gateway::start(&config).await;

    let started = Instant::now();
    served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    report("429 without Retry-After", started.elapsed(), 2);
    served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    assert_eq!(
        hf.chat_requests().len(),
        1,
        "cooling after a backoff of 1-2 s"
    );
    let health = gateway.target_health("hf/rate-limit-no-header").await;
    let remaining = health["cooldown_remaining_ms"].as_u64().unwrap();
    // First backoff: 2 s with equal jitter, i.e. 1-2 s, a little of it already spent.
    assert!(remaining > 0 && remaining <= 2000, "{health}");
}

#[tokio::test]
async fn a_500_once_is_retried_on_the_same_target_after_a_pause() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/flaky-500-1", "groq/ok"], "")
        ))
        .await;

    let started = Instant::now();
    let headers = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    report("500 once", started.elapsed(), 2);
    assert_eq!(header(&headers, "x-aigw-target"), "local/flaky-500-1");
    assert_eq!(header(&headers, "x-aigw-attempts"), "2");
    let seen = upstreams.local.chat_requests();
    assert_eq!(seen.len(), 2);
    assert!(
        gap(&seen, 0, 1) >= Duration::from_millis(20),
        "{:?}",
        gap(&seen, 0, 1)
    );
    assert!(upstreams.groq.chat_requests().is_empty());
}

#[tokio::test]
async fn a_persistent_503_is_retried_once_then_fails_over() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/unavailable-503", "groq/ok"], "")
        ))
        .await;

    let started = Instant::now();
    let response = gateway.chat_debug(&ask("fast")).await;
    let log = header(response.headers(), "x-aigw-attempt-log").to_owned();
    let headers = served_text(&gateway, response).await;
    report("503 persistent", started.elapsed(), 3);
    assert_eq!(header(&headers, "x-aigw-attempts"), "3");
    assert_eq!(header(&headers, "x-aigw-target"), "groq/ok");
    let seen = upstreams.local.chat_requests();
    assert_eq!(seen.len(), 2, "one retry, no more");
    assert!(gap(&seen, 0, 1) >= Duration::from_millis(20));
    assert_eq!(upstreams.groq.chat_requests().len(), 1);
    assert!(
        log.starts_with("local/unavailable-503 first unavailable(503)")
            && log.contains("local/unavailable-503 retry unavailable(503)")
            && log.contains("groq/ok first served"),
        "{log}"
    );
}

/// A 200 whose body is an error object (`error-200`: the flavor's 500 error, with status 200,
/// as some providers answer once generation started) is classified by its content, not its
/// status: this one reads as a server error, so it is retried on the same target like a 5xx,
/// then fails over. `stream` asks for a stream, whose first frame is then the error.
async fn assert_error_in_200_retried_like_a_5xx(stream: bool) {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/error-200", "groq/ok"], "")
        ))
        .await;

    let body = if stream {
        ask_streaming("fast")
    } else {
        ask("fast")
    };
    let response = gateway.chat_debug(&body).await;
    let log = header(response.headers(), "x-aigw-attempt-log").to_owned();
    assert_eq!(header(response.headers(), "x-aigw-target"), "groq/ok");
    if stream {
        let (body, _) = read_stream(response).await;
        let transcript = Transcript::from_body(&body);
        assert_eq!(transcript.content, REPLY, "{body}");
        assert!(transcript.ends_with_done(), "{body}");
    } else {
        served_text(&gateway, response).await;
    }
    assert_eq!(upstreams.local.chat_requests().len(), 2, "one retry: {log}");
    assert_eq!(upstreams.groq.chat_requests().len(), 1);
    assert!(
        log.starts_with("local/error-200 first unavailable")
            && log.contains("local/error-200 retry unavailable")
            && log.contains("groq/ok first served"),
        "{log}"
    );
}

#[tokio::test]
async fn a_200_carrying_an_error_object_is_retried_like_the_error_it_carries() {
    assert_error_in_200_retried_like_a_5xx(false).await;
}

#[tokio::test]
async fn a_stream_whose_first_frame_is_an_error_object_is_retried_like_the_error_it_carries() {
    assert_error_in_200_retried_like_a_5xx(true).await;
}

#[tokio::test]
async fn a_reset_before_the_headers_is_retried_then_fails_over() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/reset", "groq/ok"], "")
        ))
        .await;

    let started = Instant::now();
    let headers = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    report("reset before headers", started.elapsed(), 3);
    assert_eq!(header(&headers, "x-aigw-target"), "groq/ok");
    assert_eq!(upstreams.local.chat_requests().len(), 2);
    assert_eq!(upstreams.groq.chat_requests().len(), 1);
}

#[tokio::test]
async fn a_silent_upstream_times_out_and_is_never_retried() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route(
                "fast",
                &[
                    r#"{ target = "local/slow-60000", first_byte_timeout_ms = 300 }"#,
                    "groq/ok"
                ],
                "",
            )
        ))
        .await;

    let started = Instant::now();
    let headers = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    report("no response at all", started.elapsed(), 2);
    assert_eq!(header(&headers, "x-aigw-target"), "groq/ok");
    assert_eq!(
        upstreams.local.chat_requests().len(),
        1,
        "the silent target is not retried"
    );
    let fallback = &upstreams.groq.chat_requests()[0];
    let waited = fallback
        .at
        .duration_since(upstreams.local.chat_requests()[0].at);
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    let health = gateway.target_health("local/slow-60000").await;
    assert_eq!(health["failed"]["timeout"], 1, "{health}");
}

#[tokio::test]
async fn a_slow_first_token_fails_over_before_the_client_sees_a_byte() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route(
                "fast",
                &["local/slow-first-5000", "groq/ok"],
                "first_byte_timeout_ms = 300\n"
            )
        ))
        .await;

    let started = Instant::now();
    let response = gateway.chat(&ask_streaming("fast")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "x-aigw-target"), "groq/ok");
    let (body, _) = read_stream(response).await;
    report("slow first token (stream)", started.elapsed(), 2);
    let transcript = Transcript::from_body(&body);
    assert_eq!(transcript.content, REPLY, "{body}");
    assert!(
        transcript.errors.is_empty() && transcript.ends_with_done(),
        "{body}"
    );
    assert_eq!(upstreams.local.chat_requests().len(), 1);
    let waited = upstreams.groq.chat_requests()[0]
        .at
        .duration_since(upstreams.local.chat_requests()[0].at);
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
}

/// A stream that broke after `chunks_before` content chunks, continued on `groq/ok`: the
/// client gets one coherent answer and `[DONE]`; returns the continuation request groq saw.
async fn assert_continued(
    upstreams: &Upstreams,
    gateway: &Gateway,
    fault: &str,
    partial: &str,
) -> RecordedRequest {
    let started = Instant::now();
    let response = gateway.chat(&ask_streaming("fast")).await;
    assert_eq!(response.status(), 200);
    // The stream was committed to the first target: its headers say so.
    assert!(header(response.headers(), "x-aigw-target").starts_with("local/"));
    let (body, _) = read_stream(response).await;
    report(fault, started.elapsed(), 2);
    let transcript = Transcript::from_body(&body);
    assert_eq!(transcript.content, REPLY, "{body}\n{}", gateway.stderr());
    assert!(transcript.errors.is_empty(), "{body}");
    assert!(transcript.ends_with_done(), "{body}");
    assert_eq!(transcript.finish_reason.as_deref(), Some("stop"), "{body}");
    // One stream: every chunk carries the first target's id, and one role.
    let ids: Vec<&str> = transcript
        .events
        .iter()
        .filter_map(|e| e.json())
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let roles = body.matches("\"role\":\"assistant\"").count();
    assert_eq!(roles, 1, "{body}");
    assert_eq!(transcript.usage_chunks.len(), 1, "{body}");
    assert_eq!(upstreams.local.chat_requests().len(), 1);
    let continuation = upstreams.groq.chat_requests();
    assert_eq!(continuation.len(), 1);
    let messages = continuation[0].body["messages"].as_array().unwrap().clone();
    let assistant = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(assistant["content"], partial);
    continuation[0].clone()
}

#[tokio::test]
async fn a_stream_cut_mid_answer_is_continued_on_the_next_target_with_a_continuation_prompt() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/cut-stream-2", "groq/ok"], "")
        ))
        .await;

    let continuation =
        assert_continued(&upstreams, &gateway, "stream cut mid-answer", "mock reply").await;
    let messages = continuation.body["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "user");
    assert!(
        last["content"].as_str().unwrap().starts_with("Continue"),
        "{last}"
    );
    assert_eq!(messages[0]["content"], QUESTION);
    let logged = gateway
        .wait_for_log(Duration::from_secs(10), |l| {
            l.contains("stream continued on another target")
        })
        .await;
    assert!(logged.is_some(), "{}", gateway.stderr());
}

#[tokio::test]
async fn a_target_that_takes_prefill_continues_from_the_partial_answer_itself() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route(
                "fast",
                &[
                    "local/cut-stream-2",
                    r#"{ target = "groq/ok", prefill = true }"#
                ],
                "",
            )
        ))
        .await;

    let continuation =
        assert_continued(&upstreams, &gateway, "stream cut (prefill)", "mock reply").await;
    let messages = continuation.body["messages"].as_array().unwrap();
    assert_eq!(messages.last().unwrap()["role"], "assistant");
}

#[tokio::test]
async fn a_stalled_stream_is_continued_after_the_stall_timeout() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route(
                "fast",
                &["local/stall-2", "groq/ok"],
                "stall_timeout_ms = 300\n"
            )
        ))
        .await;

    let continuation = assert_continued(&upstreams, &gateway, "stream stall", "mock reply").await;
    let waited = continuation
        .at
        .duration_since(upstreams.local.chat_requests()[0].at);
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
}

#[tokio::test]
async fn a_malformed_chunk_fails_the_attempt_cleanly_and_the_answer_is_continued() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/malformed-2", "groq/ok"], "")
        ))
        .await;

    assert_continued(&upstreams, &gateway, "malformed chunk", "mock reply").await;
}

#[tokio::test]
async fn a_broken_stream_no_target_can_continue_ends_with_an_error_event_and_no_done() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/cut-stream-2", "groq/unavailable-503"], "")
        ))
        .await;

    let started = Instant::now();
    let response = gateway.chat(&ask_streaming("fast")).await;
    let (body, _) = read_stream(response).await;
    report("stream cut, nothing can continue", started.elapsed(), 3);
    let transcript = Transcript::from_body(&body);
    assert_eq!(transcript.content, "mock reply", "{body}");
    assert_eq!(transcript.errors.len(), 1, "{body}");
    assert!(!transcript.has_done(), "{body}");
    assert_eq!(transcript.finish_reason, None);
    // The continuation was tried (and retried once) before giving up.
    assert_eq!(upstreams.groq.chat_requests().len(), 2);
}

#[tokio::test]
async fn a_stream_without_done_finalises_at_once_with_usage() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(FAILOVER).await;

    let started = Instant::now();
    let response = gateway.chat(&ask_streaming("local/no-done")).await;
    let (body, _) = read_stream(response).await;
    report("missing [DONE]", started.elapsed(), 1);
    let transcript = Transcript::from_body(&body);
    assert_eq!(transcript.content, REPLY, "{body}");
    assert!(transcript.ends_with_done(), "{body}");
    assert_eq!(transcript.usage_chunks.len(), 1, "{body}");
    assert_eq!(upstreams.local.chat_requests().len(), 1);
}

#[tokio::test]
async fn context_length_exceeded_goes_only_to_a_larger_window() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route(
                "fast",
                &[
                    r#"{ target = "local/context-length", context_window = 8192 }"#,
                    r#"{ target = "local/ok", context_window = 8192 }"#,
                    r#"{ target = "groq/ok", context_window = 131072 }"#,
                ],
                "",
            )
        ))
        .await;

    let started = Instant::now();
    let response = gateway.chat_debug(&ask("fast")).await;
    let log = header(response.headers(), "x-aigw-attempt-log").to_owned();
    let headers = served_text(&gateway, response).await;
    report(
        "context length exceeded, larger fallback",
        started.elapsed(),
        2,
    );
    assert_eq!(header(&headers, "x-aigw-target"), "groq/ok");
    assert_eq!(
        upstreams.local.chat_requests().len(),
        1,
        "the same-size target is skipped"
    );
    assert!(log.contains("local/ok skipped context_window"), "{log}");
}

#[tokio::test]
async fn a_content_filter_is_answered_with_the_upstream_reason_and_no_retry() {
    let openrouter = MockUpstream::start(Flavor::OpenRouter).await;
    let local = MockUpstream::start(Flavor::OpenAi).await;
    let config = format!(
        "{}\n{}{}{FAILOVER}{}",
        plugins_section(),
        provider_section("or", "openrouter", &openrouter, "api_key = \"sk-or\"\n"),
        provider_section("local", "openai-compatible", &local, ""),
        route("fast", &["or/content-filter", "local/ok"], ""),
    );
    let gateway = Gateway::start(&config).await;

    let started = Instant::now();
    let (status, _, body) = status_and_json(gateway.chat(&ask("fast")).await).await;
    report("content filter", started.elapsed(), 1);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "content_filter");
    assert!(error_message(&body).contains("harassment"), "{body}");
    assert_eq!(openrouter.chat_requests().len(), 1);
    assert!(local.chat_requests().is_empty());
}

#[tokio::test]
async fn an_invalid_request_is_answered_with_the_upstream_reason_and_not_failed_over() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/bad-request", "groq/ok"], "")
        ))
        .await;

    let (status, _, body) = status_and_json(gateway.chat(&ask("fast")).await).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains(mock::BAD_REQUEST_MESSAGE),
        "{body}"
    );
    assert_eq!(upstreams.local.chat_requests().len(), 1);
    assert!(upstreams.groq.chat_requests().is_empty());
}

/// Waits (up to 10 s) until the target's breaker has been open long enough to admit a probe.
async fn wait_until_probe_due(gateway: &Gateway, target: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = gateway.target_health(target).await;
        if health["state"] == "open" && health["open_remaining_ms"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the breaker never came due: {health}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_flapping_primary_serves_from_the_fallback_while_down_and_comes_back_after_a_probe() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/flaky-503-3", "groq/ok"], "retries = 0\n")
        ))
        .await;

    let started = Instant::now();
    // Down: three failures open the breaker (breaker_failures = 3).
    for _ in 0..3 {
        let headers = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
        assert_eq!(header(&headers, "x-aigw-target"), "groq/ok");
    }
    let health = gateway.target_health("local/flaky-503-3").await;
    assert_eq!(health["state"], "open", "{health}");
    let warned = gateway
        .wait_for_log(Duration::from_secs(10), |l| {
            l.contains("circuit breaker opened")
        })
        .await;
    assert!(warned.is_some(), "{}", gateway.stderr());
    // While open: served by the fallback without a request to the primary.
    for _ in 0..3 {
        let headers = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
        assert_eq!(header(&headers, "x-aigw-attempts"), "1");
        assert_eq!(header(&headers, "x-aigw-target"), "groq/ok");
    }
    assert_eq!(upstreams.local.chat_requests().len(), 3);
    // After the cooldown one probe goes to the primary, which has recovered.
    wait_until_probe_due(&gateway, "local/flaky-503-3").await;
    let headers = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    assert_eq!(header(&headers, "x-aigw-target"), "local/flaky-503-3");
    let health = gateway.target_health("local/flaky-503-3").await;
    assert_eq!(health["state"], "closed", "{health}");
    let headers = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    assert_eq!(header(&headers, "x-aigw-target"), "local/flaky-503-3");
    report("flapping primary (8 calls)", started.elapsed(), 5);
    let seen = upstreams.local.chat_requests();
    assert_eq!(seen.len(), 5);
    assert!(
        gap(&seen, 2, 3) >= Duration::from_millis(400),
        "{:?}",
        gap(&seen, 2, 3)
    );
    assert_eq!(upstreams.groq.chat_requests().len(), 6);
}

#[tokio::test]
async fn every_target_cooling_down_answers_429_at_once_without_calling_upstream() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["local/rate-limit", "groq/rate-limit"], "")
        ))
        .await;

    let (status, headers, body) = status_and_json(gateway.chat(&ask("fast")).await).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        header(&headers, "retry-after"),
        mock::RETRY_AFTER_SECONDS.to_string()
    );
    let started = Instant::now();
    let (status, headers, body) = status_and_json(gateway.chat(&ask("fast")).await).await;
    report("every target rate limited (2nd call)", started.elapsed(), 0);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(error_message(&body).contains("cooling down"), "{body}");
    let retry_after: u64 = header(&headers, "retry-after").parse().unwrap();
    assert!((1..=7).contains(&retry_after), "{retry_after}");
    assert_eq!(upstreams.local.chat_requests().len(), 1);
    assert_eq!(upstreams.groq.chat_requests().len(), 1);
}

#[tokio::test]
async fn a_rejected_credential_marks_the_target_misconfigured_and_fails_over() {
    let groq = MockUpstream::start(Flavor::Groq)
        .await
        .with_api_key("right");
    let local = MockUpstream::start(Flavor::OpenAi).await;
    let config = format!(
        "{}\n{}{}{FAILOVER}{}",
        plugins_section(),
        provider_section("groq", "groq", &groq, "api_key = \"wrong\"\n"),
        provider_section("local", "openai-compatible", &local, ""),
        route("fast", &["groq/ok", "local/ok"], ""),
    );
    let gateway = Gateway::start(&config).await;

    served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    assert_eq!(groq.chat_requests().len(), 1, "kept out after the 401");
    let health = gateway.target_health("groq/ok").await;
    assert_eq!(health["misconfigured"], true, "{health}");
    assert_eq!(health["state"], "open", "{health}");
    let warned = gateway
        .wait_for_log(Duration::from_secs(10), |l| {
            l.contains("target marked misconfigured") && l.contains("groq/ok")
        })
        .await;
    assert!(warned.is_some(), "{}", gateway.stderr());
    assert!(
        !gateway.stderr().contains("wrong\""),
        "the key is never logged"
    );
}

#[tokio::test]
async fn a_hedge_races_the_next_target_when_the_first_is_slow() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route(
                "fast",
                &["local/slow-3000", "groq/ok"],
                "hedge_after_ms = 200\n"
            )
        ))
        .await;

    let started = Instant::now();
    let response = gateway.chat_debug(&ask("fast")).await;
    let log = header(response.headers(), "x-aigw-attempt-log").to_owned();
    let headers = served_text(&gateway, response).await;
    report("hedged slow target", started.elapsed(), 2);
    assert_eq!(header(&headers, "x-aigw-target"), "groq/ok");
    assert!(log.contains("groq/ok hedge served"), "{log}");
    assert!(log.contains("local/slow-3000 first cancelled"), "{log}");
    let hedge_after = upstreams.groq.chat_requests()[0]
        .at
        .duration_since(upstreams.local.chat_requests()[0].at);
    assert!(hedge_after >= Duration::from_millis(150), "{hedge_after:?}");
}

#[tokio::test]
async fn failover_accounting_names_the_target_that_served_and_every_attempt() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route("fast", &["groq/rate-limit", "local/ok"], "")
        ))
        .await;

    let response = gateway.chat_debug(&ask("fast")).await;
    let log = header(response.headers(), "x-aigw-attempt-log").to_owned();
    let (status, headers, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    // The answer is the serving target's: its model, its usage.
    assert_eq!(body["model"], "ok");
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(header(&headers, "x-aigw-target"), "local/ok");
    let items: Vec<&str> = log.split(", ").collect();
    assert_eq!(items.len(), 2, "{log}");
    assert!(
        items[0].starts_with("groq/rate-limit first rate_limited(429) at="),
        "{log}"
    );
    assert!(items[1].starts_with("local/ok first served at="), "{log}");
    // The log line meters the failed attempt apart from the usage of the one that served.
    let line = gateway
        .wait_for_log(Duration::from_secs(10), |l| l.contains("chat completion"))
        .await
        .map(|l| strip_ansi(&l))
        .unwrap();
    assert!(
        line.contains("failed_attempts=groq/rate-limit rate_limited (429)"),
        "{line}"
    );
    assert!(line.contains("completion_tokens=5"), "{line}");
    assert!(line.contains("attempt_log="), "{line}");
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_byte_fails_over() {
    let upstreams = Upstreams::start().await;
    // cut-stream-0: 200 and event-stream headers, then the connection closes with no chunk.
    let gateway = upstreams
        .gateway(&format!(
            "{}{}",
            route("cut", &["local/cut-stream-0", "groq/ok"], "retries = 0\n"),
            route("reset", &["local/reset", "groq/ok"], "retries = 0\n"),
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
        route("fast", &["groq/ok", "local/ok"], ""),
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

#[tokio::test]
async fn a_hedge_also_races_a_stream_whose_first_chunk_is_late() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route(
                "fast",
                &["local/slow-first-3000", "groq/ok"],
                "hedge_after_ms = 200\n"
            )
        ))
        .await;

    let started = Instant::now();
    let response = gateway.chat_debug(&ask_streaming("fast")).await;
    assert_eq!(response.status(), 200);
    let log = header(response.headers(), "x-aigw-attempt-log").to_owned();
    assert_eq!(header(response.headers(), "x-aigw-target"), "groq/ok");
    let (body, _) = read_stream(response).await;
    report("hedged slow stream", started.elapsed(), 2);
    let transcript = Transcript::from_body(&body);
    assert_eq!(transcript.content, REPLY, "{body}");
    assert!(transcript.ends_with_done(), "{body}");
    assert!(log.contains("groq/ok hedge served"), "{log}");
    assert!(
        log.contains("local/slow-first-3000 first cancelled"),
        "{log}"
    );
    assert_eq!(upstreams.local.chat_requests().len(), 1);
    let hedge_after = upstreams.groq.chat_requests()[0]
        .at
        .duration_since(upstreams.local.chat_requests()[0].at);
    assert!(hedge_after >= Duration::from_millis(150), "{hedge_after:?}");
}

#[tokio::test]
async fn the_latency_strategy_moves_traffic_to_the_faster_of_equal_targets() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{FAILOVER}{}",
            route(
                "fast",
                &[
                    r#"{ target = "local/slow-300", priority = 0 }"#,
                    r#"{ target = "groq/ok", priority = 0 }"#,
                ],
                "strategy = \"latency\"\n",
            )
        ))
        .await;

    // Unmeasured targets go first, in list order: each is measured once...
    let first = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    assert_eq!(header(&first, "x-aigw-target"), "local/slow-300");
    let second = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
    assert_eq!(header(&second, "x-aigw-target"), "groq/ok");
    // ...then the faster one takes the traffic.
    for _ in 0..5 {
        let headers = served_text(&gateway, gateway.chat(&ask("fast")).await).await;
        assert_eq!(header(&headers, "x-aigw-target"), "groq/ok");
    }
    assert_eq!(upstreams.local.chat_requests().len(), 1);
    let slow = gateway.target_health("local/slow-300").await;
    let fast = gateway.target_health("groq/ok").await;
    assert!(
        slow["latency_ewma_ms"].as_f64().unwrap() > fast["latency_ewma_ms"].as_f64().unwrap(),
        "{slow} {fast}"
    );
}
