//! The Replicate flavor of the mock upstream (`docs/wire-formats.md`, Replicate), tested directly
//! over HTTP without the gateway: prediction objects, sync mode and polling (including a job that
//! runs on the wall clock past the sync window), streamed creates and the `urls.stream` SSE (paced,
//! and with its faults), and problem-details errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aigw_tests::mock::{
    Flavor, MockUpstream, REPLICATE_SYNC_WINDOW as SYNC_WINDOW, SERVER_ERROR_MESSAGE,
};
use serde_json::{Value, json};

const KEY: &str = "k";

async fn mock() -> MockUpstream {
    MockUpstream::start(Flavor::Replicate)
        .await
        .with_api_key(KEY)
}

/// `POST {base}/models/{model}/predictions`, in sync mode when `wait` is set.
async fn create(mock: &MockUpstream, model: &str, input: Value, wait: bool) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/models/{model}/predictions", mock.base_url()))
        .bearer_auth(KEY)
        .json(&json!({ "input": input }));
    if wait {
        request = request.header("prefer", "wait");
    }
    request.send().await.unwrap()
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

fn joined(output: &Value) -> String {
    output
        .as_array()
        .unwrap()
        .iter()
        .map(|piece| piece.as_str().unwrap())
        .collect()
}

/// `2025-01-01T00:00:01.250Z`
fn is_iso8601(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let bytes = text.as_bytes();
    text.len() == 24
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[19] == b'.'
        && text.ends_with('Z')
}

/// The `(event, id, data)` triples of an SSE body.
fn sse_events(body: &str) -> Vec<(String, String, String)> {
    body.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let (mut event, mut id, mut data) = (String::new(), String::new(), Vec::new());
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    event = value.to_owned();
                } else if let Some(value) = line.strip_prefix("id: ") {
                    id = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                }
            }
            (event, id, data.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn sync_mode_answers_a_succeeded_prediction_with_output_and_metrics() {
    let mock = mock().await;
    assert!(mock.base_url().ends_with("/v1"));
    let input = json!({"prompt": "hello there", "system_prompt": "be terse", "max_tokens": 64});
    let response = create(&mock, "mock/ok", input.clone(), true).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "application/json");
    let prediction = json_of(response).await;

    assert_eq!(prediction["status"], "succeeded");
    let id = prediction["id"].as_str().unwrap();
    assert_eq!(id.len(), 26);
    assert!(
        id.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    assert_eq!(prediction["model"], "mock/ok");
    assert!(prediction["version"].as_str().unwrap().starts_with("dp-"));
    assert_eq!(prediction["input"], input);
    assert_eq!(
        prediction["output"],
        json!(["mock", " reply", " to:", " hello", " there"])
    );
    assert_eq!(prediction["error"], Value::Null);
    assert_eq!(prediction["logs"], "");
    assert_eq!(prediction["data_removed"], false);
    for time in ["created_at", "started_at", "completed_at"] {
        assert!(
            is_iso8601(&prediction[time]),
            "{time}: {}",
            prediction[time]
        );
    }
    assert_eq!(
        prediction["urls"]["web"],
        format!("https://replicate.com/p/{id}")
    );

    let metrics = &prediction["metrics"];
    // 8 + chars("hello there" + "be terse") / 4 = 8 + 19 / 4
    assert_eq!(metrics["input_token_count"], 12);
    assert_eq!(metrics["output_token_count"], 5);
    for timing in [
        "predict_time",
        "total_time",
        "time_to_first_token",
        "tokens_per_second",
    ] {
        assert!(metrics[timing].as_f64().unwrap() > 0.0, "{timing}");
    }

    let recorded = mock.chat_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1/models/mock/ok/predictions");
    assert_eq!(recorded[0].model(), Some("mock/ok"));
}

#[tokio::test]
async fn a_rendered_conversation_is_answered_from_its_last_user_block() {
    let mock = mock().await;
    let prompt = "User: hi\n\nAssistant: hello\n\nUser: what is up?";
    let prediction = json_of(create(&mock, "mock/ok", json!({"prompt": prompt}), true).await).await;
    assert_eq!(joined(&prediction["output"]), "mock reply to: what is up?");
}

#[tokio::test]
async fn without_prefer_wait_the_prediction_starts_and_the_first_poll_succeeds() {
    let mock = mock().await;
    let created = json_of(create(&mock, "mock/ok", json!({"prompt": "hi"}), false).await).await;
    assert_eq!(created["status"], "starting");
    assert_eq!(created["output"], Value::Null);
    assert!(created.get("metrics").is_none());
    assert!(created.get("completed_at").is_none());

    let polled = json_of(get(created["urls"]["get"].as_str().unwrap()).await).await;
    assert_eq!(polled["id"], created["id"]);
    assert_eq!(polled["status"], "succeeded");
    assert_eq!(joined(&polled["output"]), "mock reply to: hi");
    assert_eq!(polled["metrics"]["output_token_count"], 4);
}

#[tokio::test]
async fn processing_3_takes_exactly_three_polls() {
    let mock = mock().await;
    let created = json_of(
        create(
            &mock,
            "mock/processing-3",
            json!({"prompt": "slowly"}),
            true,
        )
        .await,
    )
    .await;
    // Sync mode gave up: the client must poll.
    assert_eq!(created["status"], "starting");
    assert_eq!(created["output"], Value::Null);
    assert!(created.get("metrics").is_none());

    let url = created["urls"]["get"].as_str().unwrap();
    let mut statuses = Vec::new();
    let mut last = Value::Null;
    for _ in 0..4 {
        let response = get(url).await;
        assert_eq!(response.status(), 200);
        last = json_of(response).await;
        statuses.push(last["status"].as_str().unwrap().to_owned());
        if last["status"] == "processing" {
            assert!(last.get("metrics").is_none());
            assert!(
                last["output"].is_array(),
                "partial output: {}",
                last["output"]
            );
        }
    }
    assert_eq!(
        statuses,
        ["processing", "processing", "succeeded", "succeeded"]
    );
    assert_eq!(joined(&last["output"]), "mock reply to: slowly");
    assert_eq!(last["metrics"]["output_token_count"], 4);
}

#[tokio::test]
async fn prediction_urls_are_absolute_on_the_mocks_origin_and_cancel_works() {
    let mock = mock().await;
    let created =
        json_of(create(&mock, "mock/processing-5", json!({"prompt": "x"}), true).await).await;
    let id = created["id"].as_str().unwrap();
    let urls = &created["urls"];
    let base = mock.base_url();
    assert_eq!(urls["get"], format!("{base}/predictions/{id}"));
    assert_eq!(urls["cancel"], format!("{base}/predictions/{id}/cancel"));
    assert_eq!(urls["stream"], format!("{base}/stream/{id}"));

    let canceled = reqwest::Client::new()
        .post(urls["cancel"].as_str().unwrap())
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 200);
    assert_eq!(json_of(canceled).await["status"], "canceled");
    let polled = json_of(get(urls["get"].as_str().unwrap()).await).await;
    assert_eq!(polled["status"], "canceled");

    let unknown = get(&format!("{base}/predictions/nosuchprediction")).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(json_of(unknown).await["title"], "Not found");
}

#[tokio::test]
async fn the_stream_url_sends_one_word_per_output_event_then_done() {
    let mock = mock().await;
    let created = json_of(create(&mock, "mock/ok", json!({"prompt": "a b"}), true).await).await;
    let response = get(created["urls"]["stream"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse_events(&response.text().await.unwrap());

    let names: Vec<&str> = events.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["output", "output", "output", "output", "output", "done"]
    );
    let text: String = events[..5]
        .iter()
        .map(|(_, _, data)| data.as_str())
        .collect();
    assert_eq!(text, "mock reply to: a b");
    assert_eq!(events[1].2, " reply", "a piece keeps its leading space");
    assert_eq!(events[5].2, "{}");
    for (n, (_, id, _)) in events.iter().enumerate() {
        assert!(id.ends_with(&format!(":{n}")), "event id {id}");
    }

    // stream-error: one piece, an error event, then done with reason "error".
    let created =
        json_of(create(&mock, "mock/stream-error", json!({"prompt": "a"}), true).await).await;
    assert_eq!(created["status"], "failed");
    assert_eq!(created["error"], SERVER_ERROR_MESSAGE);
    let body = get(created["urls"]["stream"].as_str().unwrap())
        .await
        .text()
        .await
        .unwrap();
    let events = sse_events(&body);
    let names: Vec<&str> = events.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["output", "error", "done"]);
    let error: Value = serde_json::from_str(&events[1].2).unwrap();
    assert_eq!(error["detail"], SERVER_ERROR_MESSAGE);
    assert_eq!(events[2].2, r#"{"reason":"error"}"#);
}

#[tokio::test]
async fn rate_limits_put_the_wait_in_the_detail_only() {
    let mock = mock().await;
    let response = create(&mock, "mock/rate-limit", json!({"prompt": "x"}), true).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        json_of(response).await,
        json!({"detail": "Request was throttled. Your rate limit resets in ~7s.", "status": 429})
    );

    let response = create(
        &mock,
        "mock/rate-limit-no-header",
        json!({"prompt": "x"}),
        true,
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        json_of(response).await,
        json!({"detail": "Request was throttled.", "status": 429})
    );
}

#[tokio::test]
async fn context_length_and_content_filter_are_failed_predictions_not_http_errors() {
    let mock = mock().await;
    let response = create(&mock, "mock/context-length", json!({"prompt": "x"}), true).await;
    assert_eq!(response.status(), 201);
    let prediction = json_of(response).await;
    assert_eq!(prediction["status"], "failed");
    assert_eq!(prediction["output"], Value::Null);
    let error = prediction["error"].as_str().unwrap();
    // The phrase the plugin's context-length detection reads.
    assert!(error.contains("maximum context length"), "{error}");
    assert!(prediction["metrics"].get("output_token_count").is_none());

    let prediction =
        json_of(create(&mock, "mock/content-filter", json!({"prompt": "x"}), true).await).await;
    assert_eq!(prediction["status"], "failed");
    assert!(
        prediction["error"]
            .as_str()
            .unwrap()
            .contains("flagged as sensitive"),
        "{}",
        prediction["error"]
    );
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_a_401_problem() {
    let mock = mock().await;
    let url = format!("{}/models/mock/ok/predictions", mock.base_url());
    let expected = json!({"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401});
    let client = reqwest::Client::new();
    let body = json!({"input": {"prompt": "x"}});
    let wrong = client
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    assert_eq!(json_of(wrong).await, expected);
    let missing = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(json_of(missing).await, expected);
}

#[tokio::test]
async fn a_cut_create_response_fails_half_way_through_the_body() {
    let mock = mock().await;
    let response = create(&mock, "mock/cut-stream", json!({"prompt": "x"}), true).await;
    assert_eq!(response.status(), 201);
    let promised: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(promised > 100);
    assert!(
        response.bytes().await.is_err(),
        "the body must not complete"
    );
}

#[tokio::test]
async fn validation_errors_unknown_routes_and_the_model_list() {
    let mock = mock().await;
    let client = reqwest::Client::new();
    let base = mock.base_url();

    let no_input = client
        .post(format!("{base}/models/mock/ok/predictions"))
        .bearer_auth(KEY)
        .json(&json!({"prompt": "not inside input"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_input.status(), 422);
    let problem = json_of(no_input).await;
    assert_eq!(problem["title"], "Input validation failed");
    assert_eq!(problem["detail"], "- input: prompt is required");
    assert!(problem["invalid_fields"].is_array());

    let unknown = get(&format!("{base}/chat/completions")).await;
    assert_eq!(unknown.status(), 404);
    let problem = json_of(unknown).await;
    assert_eq!(problem["title"], "Not found");
    assert_eq!(problem["status"], 404);

    let models = json_of(get(&format!("{base}/models")).await).await;
    assert_eq!(models["next"], Value::Null);
    let results = models["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|m| m["owner"] == "mock" && m["name"] == "ok")
    );

    // A version-addressed create picks its behaviour from the version string.
    let throttled = client
        .post(format!("{base}/predictions"))
        .bearer_auth(KEY)
        .json(&json!({"version": "rate-limit", "input": {"prompt": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), 429);
}

/// A streamed create: `"stream": true`, no sync mode, as the plugin sends it.
async fn create_streamed(mock: &MockUpstream, model: &str, prompt: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/models/{model}/predictions", mock.base_url()))
        .bearer_auth(KEY)
        .json(&json!({"input": {"prompt": prompt}, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    json_of(response).await
}

/// Reads an SSE body as it arrives: each piece with how long after `since` it came.
async fn timed_body(
    response: reqwest::Response,
    since: Instant,
) -> (Vec<(Duration, String)>, bool) {
    let mut response = response;
    let mut pieces = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                pieces.push((since.elapsed(), String::from_utf8(bytes.to_vec()).unwrap()))
            }
            Ok(None) => return (pieces, true),
            Err(_) => return (pieces, false),
        }
    }
}

#[tokio::test]
async fn runs_a_prediction_on_the_wall_clock_past_the_sync_window() {
    let mock = mock().await;
    let started = Instant::now();
    let response = create(
        &mock,
        "mock/runs-1500",
        json!({"prompt": "take your time"}),
        true,
    )
    .await;
    // Sync mode held the create for the mock's window, then gave up.
    let held = started.elapsed();
    assert!(held >= SYNC_WINDOW, "held {held:?}");
    assert!(held < Duration::from_millis(1400), "held {held:?}");
    assert_eq!(response.status(), 201);
    let created = json_of(response).await;
    assert_eq!(created["status"], "processing");
    assert!(created.get("metrics").is_none());

    // A client polling every 200 ms sees `processing` until 1.5 s, then `succeeded`.
    let url = created["urls"]["get"].as_str().unwrap().to_owned();
    let mut polls = 0;
    let succeeded = loop {
        let polled = json_of(get(&url).await).await;
        polls += 1;
        if polled["status"] == "succeeded" {
            break polled;
        }
        assert_eq!(polled["status"], "processing");
        assert!(
            started.elapsed() < Duration::from_millis(1600),
            "still processing after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(
        joined(&succeeded["output"]),
        "mock reply to: take your time"
    );
    assert_eq!(succeeded["metrics"]["output_token_count"], 6);
    // Counted as the mock saw them, each with its arrival time.
    let seen = mock.prediction_polls();
    assert_eq!(seen.len(), polls);
    assert!(
        seen.iter()
            .all(|poll| poll.path.ends_with(created["id"].as_str().unwrap()))
    );
    assert!(seen.windows(2).all(|pair| pair[1].at >= pair[0].at));
    assert!(mock.stream_reads().is_empty());
}

#[tokio::test]
async fn a_twenty_second_prediction_is_still_processing_after_the_sync_window() {
    let mock = mock().await;
    let created =
        json_of(create(&mock, "mock/runs-20000", json!({"prompt": "a b c d"}), true).await).await;
    assert_eq!(created["status"], "processing");
    // Words come at (i + 1) / (n + 1) of the run: none of the 7 in the first second.
    assert_eq!(created["output"], json!([]));
    let polled = json_of(get(created["urls"]["get"].as_str().unwrap()).await).await;
    assert_eq!(polled["status"], "processing");
    assert_eq!(mock.prediction_polls().len(), 1);
    // Without sync mode (here a version-addressed create of the same script) the create
    // answers at once, `starting`.
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/predictions", mock.base_url()))
        .bearer_auth(KEY)
        .json(&json!({"version": "runs-20000", "input": {"prompt": "x"}}))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < SYNC_WINDOW);
    assert_eq!(json_of(response).await["status"], "starting");
}

#[tokio::test]
async fn a_streamed_create_names_its_stream_url_and_the_stream_carries_the_answer() {
    let mock = mock().await;
    let created = create_streamed(&mock, "mock/ok", "stream me").await;
    assert_eq!(created["status"], "starting");
    let id = created["id"].as_str().unwrap();
    let stream_url = created["urls"]["stream"].as_str().unwrap();
    assert_eq!(stream_url, format!("{}/stream/{id}", mock.base_url()));
    let response = reqwest::Client::new()
        .get(stream_url)
        .bearer_auth(KEY)
        .header("accept", "text/event-stream")
        .header("cache-control", "no-store")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse_events(&response.text().await.unwrap());
    let text: String = events
        .iter()
        .filter(|(name, _, _)| name == "output")
        .map(|(_, _, data)| data.as_str())
        .collect();
    assert_eq!(text, "mock reply to: stream me");
    assert_eq!(events.last().unwrap().0, "done");
    let reads = mock.stream_reads();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].header("accept"), Some("text/event-stream"));
    // Reading the stream to its end ended the prediction.
    let polled = json_of(get(created["urls"]["get"].as_str().unwrap()).await).await;
    assert_eq!(polled["status"], "succeeded");
}

#[tokio::test]
async fn a_running_prediction_streams_its_words_as_they_are_written() {
    let mock = mock().await;
    let started = Instant::now();
    let created = create_streamed(&mock, "mock/runs-1200", "a b").await;
    let response = get(created["urls"]["stream"].as_str().unwrap()).await;
    let (pieces, complete) = timed_body(response, started).await;
    assert!(complete);
    let body: String = pieces.iter().map(|(_, piece)| piece.as_str()).collect();
    let events = sse_events(&body);
    let names: Vec<&str> = events.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["output", "output", "output", "output", "output", "done"]
    );
    // Several reads spread over the run: the first word well before the end, `done` at it.
    assert!(pieces.len() >= 3, "{} reads", pieces.len());
    let (first_at, _) = &pieces[0];
    let (done_at, _) = pieces.last().unwrap();
    assert!(
        *first_at < Duration::from_millis(700),
        "first word at {first_at:?}"
    );
    assert!(
        *done_at >= Duration::from_millis(1200),
        "done at {done_at:?}"
    );
    // The prediction ends on its clock: succeeded once the run is over.
    let polled = json_of(get(created["urls"]["get"].as_str().unwrap()).await).await;
    assert_eq!(polled["status"], "succeeded");
}

#[tokio::test]
async fn stream_faults_of_a_streamed_create_happen_on_the_stream_url() {
    let mock = mock().await;
    // cut-stream-1: the create is whole; the stream sends one word, then the connection fails.
    let created = create_streamed(&mock, "mock/cut-stream-1", "x").await;
    assert_eq!(created["status"], "starting");
    let (pieces, complete) = timed_body(
        get(created["urls"]["stream"].as_str().unwrap()).await,
        Instant::now(),
    )
    .await;
    assert!(!complete, "the stream must not complete");
    let body: String = pieces.iter().map(|(_, piece)| piece.as_str()).collect();
    let events = sse_events(&body);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "output");
    assert_eq!(events[0].2, "mock");

    // slow-first-300: the create and the stream's headers at once, the first event later.
    let started = Instant::now();
    let created = create_streamed(&mock, "mock/slow-first-300", "x").await;
    assert!(started.elapsed() < Duration::from_millis(300));
    let response = get(created["urls"]["stream"].as_str().unwrap()).await;
    assert!(started.elapsed() < Duration::from_millis(300));
    let (pieces, complete) = timed_body(response, started).await;
    assert!(complete);
    assert!(
        pieces[0].0 >= Duration::from_millis(300),
        "{:?}",
        pieces[0].0
    );

    // stream-error without sync mode: the job runs; its stream fails after one word.
    let created = create_streamed(&mock, "mock/stream-error", "x").await;
    assert_eq!(created["status"], "starting");
    let body = get(created["urls"]["stream"].as_str().unwrap())
        .await
        .text()
        .await
        .unwrap();
    let names: Vec<String> = sse_events(&body)
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(names, ["output", "error", "done"]);
}
