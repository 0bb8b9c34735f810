//! Multi-step answers through the real binary: a plugin's `follow` carries a pause, so a
//! Replicate prediction that outlives the sync window is polled at the plugin's pace up to the
//! attempt's deadline; a stream decoder's stream-side follow lets Replicate stream for real from
//! `urls.stream`; and a plugin that follows forever is stopped by the deadline, not by a step
//! count reached in a blink.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aigw_tests::gateway::{Gateway, read_stream, status_and_json};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::paths;
use aigw_tests::setup::{Upstreams, error_message, plugins_section, provider_section, toml_str};
use serde_json::{Value, json};

const REPLY: &str = "mock reply to: hello there";

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream,
           "messages": [{"role": "user", "content": "hello there"}]})
}

async fn replicate() -> (MockUpstream, Gateway) {
    let mock = MockUpstream::start(Flavor::Replicate)
        .await
        .with_api_key("r8_k");
    let config = format!(
        "{}\n{}",
        plugins_section(),
        provider_section("rep", "replicate", &mock, "api_key = \"r8_k\"\n")
    );
    let gateway = Gateway::start(&config).await;
    (mock, gateway)
}

/// The gaps between consecutive requests.
fn gaps(requests: &[aigw_tests::mock::RecordedRequest]) -> Vec<Duration> {
    requests
        .windows(2)
        .map(|pair| pair[1].at.duration_since(pair[0].at))
        .collect()
}

#[tokio::test]
async fn a_prediction_that_needs_20_s_is_polled_at_a_sane_interval_until_it_succeeds() {
    let (mock, gateway) = replicate().await;
    let started = Instant::now();
    let (status, _, body) =
        status_and_json(gateway.chat(&ask("rep/mock/runs-20000", false)).await).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], REPLY);
    assert!(took >= Duration::from_secs(20), "answered after {took:?}");
    let polls = mock.prediction_polls();
    assert!(
        (5..=40).contains(&polls.len()),
        "{} polls for a 20 s prediction",
        polls.len()
    );
    let gaps = gaps(&polls);
    assert!(
        gaps.iter().all(|gap| *gap >= Duration::from_millis(400)),
        "polls came back-to-back: {gaps:?}"
    );
}

#[tokio::test]
async fn a_replicate_stream_comes_from_the_stream_url_as_it_is_produced() {
    let (mock, gateway) = replicate().await;
    let started = Instant::now();
    let mut request = ask("rep/mock/runs-3000", true);
    request["stream_options"] = json!({"include_usage": true});
    let response = gateway.chat(&request).await;
    assert_eq!(response.status(), 200);
    let headers_after = started.elapsed();
    let (body, error) = read_stream(response).await;
    assert!(error.is_none(), "{error:?}");
    let mut text = String::new();
    let mut usage = Vec::new();
    for data in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(content) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(content);
        }
        if !chunk["usage"].is_null() {
            usage.push(chunk["usage"].clone());
        }
    }
    assert_eq!(text, REPLY);
    assert_eq!(usage.len(), 1, "one usage chunk: {body}");
    assert_eq!(
        usage[0]["completion_tokens"], 5,
        "from the prediction's metrics"
    );
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    // The first word came well before the prediction finished: it streamed, it was not a
    // finished prediction replayed.
    assert!(
        headers_after < Duration::from_millis(2500),
        "the stream started after {headers_after:?}"
    );
    let reads = mock.stream_reads();
    assert_eq!(reads.len(), 1, "one read of urls.stream");
    assert_eq!(reads[0].header("accept"), Some("text/event-stream"));
    // No polling while it streams: one read of the finished prediction, for its metrics (the
    // SSE carries no usage), after the stream's end.
    let polls = mock.prediction_polls();
    assert_eq!(polls.len(), 1, "{polls:?}");
    assert!(polls[0].at >= reads[0].at);
    let creates: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].header("prefer"),
        None,
        "a stream does not wait for the prediction"
    );
}

async fn hostile_with_deadline(upstreams: &Upstreams) -> Gateway {
    let hostile = format!(
        "[providers.hostile]\nplugin = {}\nbase_url = {}\ntotal_timeout_ms = 1000\n",
        toml_str(&paths::test_plugin("hostile").to_string_lossy()),
        toml_str(&upstreams.local.base_url()),
    );
    upstreams.gateway(&hostile).await
}

#[tokio::test]
async fn a_plugin_that_follows_forever_is_stopped_at_the_attempt_deadline() {
    let upstreams = Upstreams::start().await;
    let gateway = hostile_with_deadline(&upstreams).await;
    for (model, stream) in [
        ("hostile/follow-forever", false),
        ("hostile/stream-follow-forever", true),
    ] {
        let before = upstreams.local.requests().len();
        let started = Instant::now();
        let (status, _, body) = status_and_json(gateway.chat(&ask(model, stream)).await).await;
        let took = started.elapsed();
        assert_eq!(status, 504, "{model}: {body}");
        assert_eq!(body["error"]["code"], "timeout", "{model}: {body}");
        assert!(!error_message(&body).is_empty());
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{model}: stopped after {took:?}"
        );
        // The plugin asks for a 20 ms pause each time: about 50 follows in the 1 s limit,
        // not a burst of steps back-to-back.
        let follows = upstreams.local.requests().len() - before;
        assert!(
            (10..=80).contains(&follows),
            "{model}: {follows} follow requests in 1 s"
        );
    }
}
