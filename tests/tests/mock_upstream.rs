//! The mock upstream itself: it must speak each provider's wire format faithfully, or every
//! end-to-end test built on it proves nothing. These run without the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_tests::mock::{self, Flavor, MockUpstream};
use aigw_tests::sse::Transcript;
use serde_json::{Value, json};

async fn post(mock: &MockUpstream, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }}])
}

#[tokio::test]
async fn ok_answers_with_the_last_user_message_and_groq_extras() {
    let mock = MockUpstream::start(Flavor::Groq).await;
    assert!(mock.base_url().ends_with("/openai/v1"));
    let response = post(
        &mock,
        json!({"model": "ok", "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "hello there"},
        ]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-limit-tokens"], "6000");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "ok");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hello there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert!(body["usage"]["total_time"].is_f64());
    assert!(body["x_groq"]["id"].as_str().unwrap().starts_with("req_"));

    let recorded = mock.chat_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/openai/v1/chat/completions");
    assert_eq!(recorded[0].model(), Some("ok"));
}

#[tokio::test]
async fn groq_stream_carries_usage_in_x_groq_and_the_usage_chunk_only_when_asked() {
    let mock = MockUpstream::start(Flavor::Groq).await;
    let ask = |include_usage: bool| {
        json!({"model": "ok", "stream": true, "stream_options": {"include_usage": include_usage},
               "messages": [{"role": "user", "content": "stream me"}]})
    };

    let plain = Transcript::from_body(&post(&mock, ask(false)).await.text().await.unwrap());
    assert_eq!(plain.content, "mock reply to: stream me");
    assert!(plain.ends_with_done());
    assert!(plain.usage_chunks.is_empty());
    let finish = plain
        .events
        .iter()
        .rev()
        .filter_map(|e| e.json())
        .next()
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["x_groq"]["usage"]["completion_tokens"], 5);
    let first = plain.events[0].json().unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert!(first["x_groq"]["id"].is_string());
    // One word per chunk: role chunk + 5 words + finish chunk + [DONE].
    assert_eq!(plain.events.len(), 8);

    let with_usage = Transcript::from_body(&post(&mock, ask(true)).await.text().await.unwrap());
    assert_eq!(with_usage.usage_chunks.len(), 1);
    assert_eq!(with_usage.usage_chunks[0]["usage"]["completion_tokens"], 5);
    assert!(with_usage.ends_with_done());
}

#[tokio::test]
async fn openai_stream_has_no_usage_unless_asked() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    assert_eq!(
        mock.base_url(),
        format!("http://127.0.0.1:{}/v1", mock.addr().port())
    );
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let text = post(&mock, body).await.text().await.unwrap();
    assert!(!text.contains("usage"), "{text}");
    let transcript = Transcript::from_body(&text);
    assert_eq!(transcript.content, "mock reply to: hi");
    assert_eq!(transcript.finish_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn tool_call_streams_arguments_in_fragments_and_reads_tool_results() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let body = json!({"model": "tool-call", "stream": true, "tools": weather_tools(),
                      "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let transcript = Transcript::from_body(&post(&mock, body).await.text().await.unwrap());
    assert_eq!(transcript.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(transcript.tool_calls.len(), 1);
    let (id, name, arguments) = &transcript.tool_calls[0];
    assert!(id.starts_with("call_"));
    assert_eq!(name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(arguments).unwrap(),
        json!({"city": "Paris"})
    );
    let argument_fragments = transcript
        .events
        .iter()
        .filter_map(|e| e.json())
        .filter(|c| c.pointer("/choices/0/delta/tool_calls/0/id").is_none())
        .filter(|c| {
            c.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .is_some()
        })
        .count();
    assert!(argument_fragments >= 2);

    let body = json!({"model": "tool-call", "tools": weather_tools(), "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
            "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": id, "content": "18C and sunny"},
    ]});
    let answer: Value = post(&mock, body).await.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "tool said: 18C and sunny"
    );
}

#[tokio::test]
async fn parallel_tool_calls_have_two_indexes() {
    let mock = MockUpstream::start(Flavor::Groq).await;
    let body = json!({"model": "tool-call-parallel", "tools": weather_tools(),
                      "messages": [{"role": "user", "content": "Paris and London?"}]});
    let answer: Value = post(&mock, body.clone()).await.json().await.unwrap();
    let calls = answer["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["function"]["arguments"], r#"{"city":"London"}"#);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let transcript = Transcript::from_body(&post(&mock, streamed).await.text().await.unwrap());
    assert_eq!(transcript.tool_calls.len(), 2);
    assert_eq!(transcript.tool_calls[0].2, r#"{"city":"Paris"}"#);
}

#[tokio::test]
async fn rate_limit_sends_groqs_real_body_and_headers() {
    let mock = MockUpstream::start(Flavor::Groq).await;
    let response = post(&mock, json!({"model": "rate-limit", "messages": []})).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.headers()["x-ratelimit-remaining-tokens"], "0");
    assert_eq!(response.headers()["x-ratelimit-reset-tokens"], "5.289s");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "tokens");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"].get("param").is_none(), "Groq sends no param");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Rate limit reached for model `rate-limit`"));
    assert!(message.contains("Please try again in 5.289s."));

    let response = post(
        &mock,
        json!({"model": "rate-limit-no-header", "messages": []}),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn error_models_answer_with_their_statuses_and_envelopes() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    for (model, status, kind, code) in [
        ("error-500", 500, "server_error", Value::Null),
        ("unavailable-503", 503, "server_error", Value::Null),
        (
            "capacity-498",
            498,
            "capacity_exceeded",
            json!("capacity_exceeded"),
        ),
        (
            "context-length",
            400,
            "invalid_request_error",
            json!("context_length_exceeded"),
        ),
        ("bad-request", 400, "invalid_request_error", Value::Null),
    ] {
        let response = post(&mock, json!({"model": model, "messages": []})).await;
        assert_eq!(response.status(), status, "{model}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], kind, "{model}");
        assert_eq!(body["error"]["code"], code, "{model}");
        assert!(
            body["error"].get("param").is_some(),
            "OpenAI always sends param"
        );
    }
    let body: Value = post(&mock, json!({"model": "context-length", "messages": []}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["message"], mock::CONTEXT_LENGTH_MESSAGE);
    assert_eq!(body["error"]["param"], "messages");
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let result = reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&json!({"model": "reset", "messages": []}))
        .send()
        .await;
    assert!(result.is_err(), "got an answer: {result:?}");
    assert_eq!(mock.chat_requests().len(), 1);
}

#[tokio::test]
async fn cut_stream_stops_after_two_chunks_without_finish_or_done() {
    let mock = MockUpstream::start(Flavor::Groq).await;
    let response = post(
        &mock,
        json!({"model": "cut-stream", "stream": true, "messages": [{"role": "user", "content": "a b c"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let (text, error) = aigw_tests::gateway::read_stream(response).await;
    assert!(error.is_some(), "the body must end in a transport error");
    let transcript = Transcript::from_body(&text);
    assert_eq!(transcript.content, "mock reply");
    assert_eq!(transcript.finish_reason, None);
    assert!(!transcript.has_done());

    // Without a stream, the JSON body stops half-way.
    let response = post(&mock, json!({"model": "cut-stream", "messages": []})).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.is_err());

    // cut-stream-0: headers, then nothing.
    let response = post(
        &mock,
        json!({"model": "cut-stream-0", "stream": true, "messages": []}),
    )
    .await;
    let (text, error) = aigw_tests::gateway::read_stream(response).await;
    assert!(error.is_some());
    assert_eq!(text, "");
}

#[tokio::test]
async fn stream_error_sends_an_error_frame_and_no_done() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let body = json!({"model": "stream-error", "stream": true, "messages": []});
    let transcript = Transcript::from_body(&post(&mock, body).await.text().await.unwrap());
    assert_eq!(transcript.errors.len(), 1);
    assert_eq!(transcript.errors[0]["type"], "server_error");
    assert!(!transcript.has_done());

    let body =
        json!({"model": "no-done", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let transcript = Transcript::from_body(&post(&mock, body).await.text().await.unwrap());
    assert_eq!(transcript.finish_reason.as_deref(), Some("stop"));
    assert!(!transcript.has_done());
}

#[tokio::test]
async fn slow_waits_before_answering() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let started = std::time::Instant::now();
    let response = post(
        &mock,
        json!({"model": "slow-200", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn api_key_is_required_once_set() {
    let mock = MockUpstream::start(Flavor::Groq)
        .await
        .with_api_key("gsk_mock_secret");
    let response = post(&mock, json!({"model": "ok", "messages": []})).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "Invalid API Key",
        "type": "invalid_request_error", "code": "invalid_api_key"}})
    );

    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth("gsk_mock_secret")
        .json(&json!({"model": "ok", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        mock.requests()[1].header("authorization"),
        Some("Bearer gsk_mock_secret")
    );
}

#[tokio::test]
async fn models_lists_realistic_models_and_unknown_paths_are_404() {
    let mock = MockUpstream::start(Flavor::Groq).await;
    let client = reqwest::Client::new();
    let body: Value = client
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["id"], "llama-3.1-8b-instant");
    assert_eq!(body["data"][0]["context_window"], 131072);

    let response = client
        .get(format!("http://{}/v1/models", mock.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn recording_can_be_turned_off() {
    let mock = MockUpstream::start_unrecorded(Flavor::OpenAi).await;
    post(&mock, json!({"model": "ok", "messages": []})).await;
    assert!(mock.requests().is_empty());
    mock.set_recording(true);
    post(&mock, json!({"model": "ok", "messages": []})).await;
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn dropping_the_mock_stops_it() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let url = format!("{}/models", mock.base_url());
    drop(mock);
    // The listener is closed with the task; a new connection is refused.
    let mut refused = false;
    for _ in 0..100 {
        if reqwest::get(&url).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused);
}

/// Reads the body of `response` piece by piece until `done` says the text so far is enough,
/// giving each read up to 5 s (a hang fails the test rather than stalling it).
async fn read_until(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    text: &mut String,
    done: impl Fn(&str) -> bool,
) {
    use futures_util::StreamExt;
    while !done(text) {
        let piece = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
            .await
            .unwrap_or_else(|_| panic!("no more data after {text:?}"))
            .unwrap_or_else(|| panic!("the body ended after {text:?}"))
            .unwrap();
        text.push_str(std::str::from_utf8(&piece).unwrap());
    }
}

fn chat_about(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn flaky_fails_its_first_requests_per_model_name_then_answers() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let status = |response: reqwest::Response| response.status().as_u16();
    assert_eq!(
        status(post(&mock, chat_about("flaky-503-2", false)).await),
        503
    );
    // Another name counts on its own: its first request fails even after the others failed.
    let response = post(&mock, chat_about("flaky-429-1", true)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(
        status(post(&mock, chat_about("flaky-503-2", false)).await),
        503
    );
    assert_eq!(
        status(post(&mock, chat_about("flaky-429-1", false)).await),
        200
    );

    let response = post(&mock, chat_about("flaky-503-2", false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hello there"
    );
    assert_eq!(
        status(post(&mock, chat_about("flaky-503-2", false)).await),
        200
    );

    // The 500 flavour, and a status the mock has no model for, answer as error-500.
    for model in ["flaky-500-1", "flaky-502-1"] {
        let response = post(&mock, chat_about(model, false)).await;
        assert_eq!(response.status(), 500, "{model}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["message"], mock::SERVER_ERROR_MESSAGE);
        assert_eq!(status(post(&mock, chat_about(model, false)).await), 200);
    }

    // The count is per mock: a fresh one fails again.
    let other = MockUpstream::start(Flavor::OpenAi).await;
    assert_eq!(
        status(post(&other, chat_about("flaky-503-2", false)).await),
        503
    );
}

#[tokio::test]
async fn slow_first_sends_the_headers_at_once_and_the_first_chunk_late() {
    use futures_util::StreamExt;
    use tokio::time::{Duration, Instant};
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let sent = Instant::now();
    let response = post(&mock, chat_about("slow-first-500", true)).await;
    let headers_at = Instant::now();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = Instant::now();
    assert!(!first.is_empty());
    // The mock cannot start its pause after the request arrived, so this bound is exact.
    assert!(first_at - sent >= Duration::from_millis(500));
    // Its pause starts as it writes the headers, a moment before they reach the client, so a
    // loaded machine may eat into the gap; half of it still shows the headers came first (a
    // mock that held the headers back would leave next to no gap at all).
    let gap = first_at - headers_at;
    assert!(gap >= Duration::from_millis(250), "{gap:?}");

    let mut text = String::from_utf8(first.to_vec()).unwrap();
    while let Some(piece) = body.next().await {
        text.push_str(std::str::from_utf8(&piece.unwrap()).unwrap());
    }
    let transcript = Transcript::from_body(&text);
    assert_eq!(transcript.content, "mock reply to: hello there");
    assert!(transcript.ends_with_done());

    // Without a stream the whole answer waits, as with slow-<ms>.
    let sent = Instant::now();
    let response = post(&mock, chat_about("slow-first-200", false)).await;
    assert!(sent.elapsed() >= Duration::from_millis(200));
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn stall_sends_some_chunks_then_goes_silent() {
    use futures_util::StreamExt;
    use std::time::Duration;
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let response = post(&mock, chat_about("stall-2", true)).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    // Role chunk + two content chunks: three whole frames.
    read_until(&mut body, &mut text, |text| {
        text.matches("\n\n").count() >= 3
    })
    .await;
    let transcript = Transcript::from_body(&text);
    assert_eq!(transcript.events.len(), 3, "{text}");
    assert_eq!(transcript.content, "mock reply");
    assert_eq!(transcript.finish_reason, None);
    // The point of the behaviour: nothing more comes, and the connection does not end either.
    let next = tokio::time::timeout(Duration::from_millis(300), body.next()).await;
    assert!(next.is_err(), "expected silence, got {next:?}");

    // Without a stream: the headers and half the body, then silence.
    let response = post(&mock, chat_about("stall-2", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    read_until(&mut body, &mut text, |text| !text.is_empty()).await;
    assert!(text.starts_with('{') && text.len() < length, "{text}");
    let next = tokio::time::timeout(Duration::from_millis(300), body.next()).await;
    assert!(next.is_err(), "expected silence, got {next:?}");
}

#[tokio::test]
async fn malformed_sends_one_broken_frame_and_still_finishes() {
    use aigw_tests::sse::Event;
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let text = post(&mock, chat_about("malformed-1", true))
        .await
        .text()
        .await
        .unwrap();
    let transcript = Transcript::from_body(&text);
    let broken: Vec<&Event> = transcript
        .events
        .iter()
        .filter(|event| matches!(event, Event::Other(_)))
        .collect();
    assert_eq!(broken.len(), 1, "{text}");
    // Role chunk, one content chunk, then the broken frame.
    assert!(matches!(transcript.events[2], Event::Other(_)), "{text}");
    assert_eq!(
        transcript.events[1].json().unwrap()["choices"][0]["delta"]["content"],
        "mock"
    );
    // Every real chunk still arrives, and the stream ends as usual.
    assert_eq!(transcript.content, "mock reply to: hello there");
    assert_eq!(transcript.finish_reason.as_deref(), Some("stop"));
    assert!(transcript.ends_with_done());

    let response = post(&mock, chat_about("malformed-1", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(body.starts_with(b"{\""));
    assert!(serde_json::from_slice::<Value>(&body).is_err());
}

#[tokio::test]
async fn continuations_get_only_the_rest_of_the_reply() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let question = json!({"role": "user", "content": "hello there"});
    let partial = json!({"role": "assistant", "content": "mock reply"});
    let prompt = json!({"role": "user", "content": "Continue exactly where you stopped."});

    // Prefill: the partial answer is the last message.
    let prefill = vec![
        json!({"role": "user", "content": "an earlier question"}),
        json!({"role": "assistant", "content": "an earlier answer"}),
        question.clone(),
        partial.clone(),
    ];
    assert!(mock::is_continuation(&prefill));
    let body: Value = post(&mock, json!({"model": "ok", "messages": prefill}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], " to: hello there");
    assert_eq!(body["usage"]["completion_tokens"], 3);

    // Continuation prompt, streamed: the rest word by word, the role on the first chunk.
    let messages = vec![question.clone(), partial.clone(), prompt.clone()];
    assert!(mock::is_continuation(&messages));
    let body = json!({"model": "ok", "stream": true, "stream_options": {"include_usage": true},
                      "messages": messages});
    let transcript = Transcript::from_body(&post(&mock, body).await.text().await.unwrap());
    assert_eq!(transcript.content, " to: hello there");
    let first = transcript.events[0].json().unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let words = transcript
        .events
        .iter()
        .filter_map(|e| e.json())
        .filter(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert_eq!(words, 3);
    assert_eq!(transcript.usage_chunks[0]["usage"]["completion_tokens"], 3);
    assert!(transcript.ends_with_done());

    // A partial answer that is not the start of the reply gets the whole reply.
    let other = json!({"role": "assistant", "content": "Something else entirely"});
    for messages in [
        vec![question.clone(), other.clone()],
        vec![question.clone(), other.clone(), prompt.clone()],
    ] {
        let body: Value = post(&mock, json!({"model": "ok", "messages": messages}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "mock reply to: hello there"
        );
    }

    // An ordinary conversation is not a continuation.
    assert!(!mock::is_continuation(std::slice::from_ref(&question)));
    let body: Value = post(&mock, json!({"model": "ok", "messages": [question]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hello there"
    );
}

#[tokio::test]
async fn gemini_reads_continuations_and_counts_flaky_failures() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    let call = |model: &str, body: Value| {
        let url = format!("{}/models/{model}:generateContent", mock.base_url());
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let question = json!({"role": "user", "parts": [{"text": "hello there"}]});
    let partial = json!({"role": "model", "parts": [{"text": "mock reply"}]});
    let prompt = json!({"role": "user", "parts": [{"text": "Continue."}]});
    let text = |answer: &Value| answer["candidates"][0]["content"]["parts"][0]["text"].clone();

    for contents in [
        vec![question.clone(), partial.clone()],
        vec![question.clone(), partial.clone(), prompt.clone()],
    ] {
        let answer: Value = call("ok", json!({"contents": contents}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(text(&answer), " to: hello there");
        assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 3);
    }

    let ask = json!({"contents": [question]});
    assert_eq!(call("flaky-503-1", ask.clone()).await.status(), 503);
    let answer: Value = call("flaky-503-1", ask).await.json().await.unwrap();
    assert_eq!(text(&answer), "mock reply to: hello there");
}
