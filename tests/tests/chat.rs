//! Chat completions through the real gateway: answers, streams, usage, tool calls, credentials.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, status_and_json};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::setup::{GROQ_KEY, Upstreams, header, plugins_section};
use aigw_tests::sse::{Event, Transcript};
use serde_json::{Value, json};

const FAST: &str = "[models.fast]\ntargets = [\"groq/ok\", \"local/ok\"]\n";

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }}])
}

async fn stream(gateway: &Gateway, body: Value) -> (reqwest::header::HeaderMap, Transcript) {
    let response = gateway.chat(&body).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        header(&headers, "content-type").starts_with("text/event-stream"),
        "{headers:?}"
    );
    let text = response.text().await.unwrap();
    (headers, Transcript::from_body(&text))
}

#[tokio::test]
async fn answer_comes_from_the_first_target_with_headers_naming_it() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(FAST).await;
    let messages = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello gateway"},
    ]);

    let response = gateway
        .chat(&json!({"model": "fast", "messages": messages, "temperature": 0.5}))
        .await;
    let (status, headers, body) = status_and_json(response).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hello gateway"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"]["completion_tokens"], 5,
        "five words in the answer"
    );
    assert_eq!(header(&headers, "x-aigw-provider"), "groq");
    assert_eq!(header(&headers, "x-aigw-target"), "groq/ok");
    assert_eq!(header(&headers, "x-aigw-attempts"), "1");

    // The upstream got the client's request with the target's model name and the credential.
    let seen = upstreams.groq.chat_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/openai/v1/chat/completions");
    assert_eq!(seen[0].body["model"], "ok");
    assert_eq!(seen[0].body["messages"], messages);
    assert_eq!(seen[0].body["temperature"], 0.5);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {GROQ_KEY}").as_str())
    );
    assert!(upstreams.local.requests().is_empty());
}

#[tokio::test]
async fn the_credential_never_appears_in_the_logs() {
    let upstreams = Upstreams::start().await;
    // Debug logs included: a secret must not leak at any level an operator might turn on.
    let gateway = upstreams
        .gateway_builder()
        .env("AIGW_LOG", "debug")
        .start(&upstreams.config(FAST))
        .await;

    let ok = gateway
        .chat(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(ok.status(), 200);
    let streamed = gateway
        .chat(&json!({"model": "groq/ok", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(streamed.status(), 200);
    streamed.text().await.unwrap();

    let logged = gateway
        .wait_for_log_lines(Duration::from_secs(10), 2, |line| {
            line.contains("attempts") && line.contains("groq")
        })
        .await;
    assert_eq!(
        logged.len(),
        2,
        "no request log lines:\n{}",
        gateway.stderr()
    );
    let logs = gateway.stderr();
    assert!(
        !logs.contains(GROQ_KEY),
        "the API key leaked into the logs:\n{logs}"
    );
    assert!(
        !logs.contains(&GROQ_KEY[4..]),
        "part of the API key leaked into the logs"
    );
}

#[tokio::test]
async fn a_provider_model_can_be_addressed_directly() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(FAST).await;

    let response = gateway
        .chat(&json!({"model": "local/gpt-4o-mini", "messages": [{"role": "user", "content": "direct"}]}))
        .await;
    let (status, headers, body) = status_and_json(response).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: direct"
    );
    assert_eq!(header(&headers, "x-aigw-provider"), "local");
    assert_eq!(header(&headers, "x-aigw-target"), "local/gpt-4o-mini");
    let seen = upstreams.local.chat_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body["model"], "gpt-4o-mini");
    // The local provider has no key: nothing may be invented.
    assert_eq!(seen[0].header("authorization"), None);
    assert!(upstreams.groq.requests().is_empty());
}

#[tokio::test]
async fn a_stream_without_include_usage_has_no_usage_chunk_and_ends_with_done() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(FAST).await;

    // Groq puts usage in `x_groq.usage` on its finish chunk even unasked; it must not turn into
    // a usage chunk the client did not ask for.
    for model in ["groq/ok", "local/ok"] {
        let (headers, transcript) = stream(
            &gateway,
            json!({"model": model, "stream": true,
                   "messages": [{"role": "user", "content": "count to three"}]}),
        )
        .await;

        assert_eq!(
            transcript.content, "mock reply to: count to three",
            "{model}"
        );
        assert_eq!(transcript.finish_reason.as_deref(), Some("stop"), "{model}");
        assert!(
            transcript.usage_chunks.is_empty(),
            "{model}: {:?}",
            transcript.usage_chunks
        );
        assert!(transcript.errors.is_empty(), "{model}");
        assert!(
            transcript.ends_with_done(),
            "{model}: {:?}",
            transcript.events.last()
        );
        assert_eq!(
            transcript
                .events
                .iter()
                .filter(|e| **e == Event::Done)
                .count(),
            1,
            "{model}"
        );
        // Streamed, not buffered into one chunk: one chunk per word upstream.
        let content_chunks = transcript
            .events
            .iter()
            .filter_map(Event::json)
            .filter(|c| {
                c.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            })
            .count();
        assert!(
            content_chunks >= 3,
            "{model}: {content_chunks} content chunks"
        );
        assert_eq!(header(&headers, "x-aigw-target"), model);
    }
    assert_eq!(upstreams.groq.chat_requests()[0].body["stream"], true);
}

#[tokio::test]
async fn a_stream_with_include_usage_ends_with_one_usage_chunk_then_done() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(FAST).await;

    for model in ["groq/ok", "local/ok"] {
        let (_, transcript) = stream(
            &gateway,
            json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "count to three"}]}),
        )
        .await;

        assert_eq!(
            transcript.content, "mock reply to: count to three",
            "{model}"
        );
        assert!(transcript.ends_with_done(), "{model}");
        assert_eq!(
            transcript.usage_chunks.len(),
            1,
            "{model}: {:?}",
            transcript.events
        );
        // The usage chunk is the last one before [DONE].
        let events = &transcript.events;
        let before_done = events[events.len() - 2].json().unwrap();
        assert_eq!(before_done["choices"], json!([]), "{model}");
        let usage = &before_done["usage"];
        // The mock counts completion tokens as words of the answer.
        let words = transcript.content.split_whitespace().count() as u64;
        assert_eq!(
            usage["completion_tokens"].as_u64(),
            Some(words),
            "{model}: {usage}"
        );
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(usage["prompt_tokens"].as_u64().unwrap() + words),
            "{model}: {usage}"
        );
    }
}

#[tokio::test]
async fn a_tool_call_round_trip_without_streaming() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(FAST).await;
    let mut messages = vec![json!({"role": "user", "content": "What is the weather in Paris?"})];

    let response = gateway
        .chat(
            &json!({"model": "local/tool-call", "messages": messages, "tools": weather_tools(),
                      "tool_choice": "auto"}),
        )
        .await;
    let (status, _, body) = status_and_json(response).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let message = body["choices"][0]["message"].clone();
    let call = &message["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));
    // The tools reached the upstream as the client sent them.
    assert_eq!(
        upstreams.local.chat_requests()[0].body["tools"],
        weather_tools()
    );

    messages.push(message.clone());
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "18C, sunny"}));
    let response = gateway
        .chat(&json!({"model": "local/tool-call", "messages": messages, "tools": weather_tools()}))
        .await;
    let (status, _, body) = status_and_json(response).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "tool said: 18C, sunny"
    );
    let forwarded = &upstreams.local.chat_requests()[1].body["messages"];
    assert_eq!(forwarded[1]["tool_calls"][0]["id"], call["id"]);
    assert_eq!(
        forwarded[2],
        json!({"role": "tool", "tool_call_id": call["id"], "content": "18C, sunny"})
    );
}

#[tokio::test]
async fn a_streamed_tool_call_reassembles_from_its_deltas() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(FAST).await;
    let question = json!({"role": "user", "content": "What is the weather in Paris?"});

    let (_, transcript) = stream(
        &gateway,
        json!({"model": "groq/tool-call", "stream": true, "tools": weather_tools(), "messages": [question]}),
    )
    .await;

    assert_eq!(transcript.finish_reason.as_deref(), Some("tool_calls"));
    assert!(transcript.ends_with_done());
    assert_eq!(transcript.tool_calls.len(), 1, "{:?}", transcript.events);
    let (id, name, arguments) = transcript.tool_calls[0].clone();
    assert!(id.starts_with("call_"), "{id}");
    assert_eq!(name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"city": "Paris"})
    );

    // The result goes back, streamed again, and the model reads it.
    let (_, transcript) = stream(
        &gateway,
        json!({"model": "groq/tool-call", "stream": true, "tools": weather_tools(), "messages": [
            question,
            {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
                "function": {"name": name, "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": id, "content": "18C"},
        ]}),
    )
    .await;
    assert_eq!(transcript.content, "tool said: 18C");
    assert_eq!(transcript.finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        upstreams.groq.chat_requests()[1].body["messages"][2]["tool_call_id"],
        id.as_str()
    );
}

#[tokio::test]
async fn parallel_tool_calls_keep_their_indexes() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(FAST).await;
    let body = json!({"model": "local/tool-call-parallel", "tools": weather_tools(),
                      "messages": [{"role": "user", "content": "Paris and London?"}]});

    let (status, _, answer) = status_and_json(gateway.chat(&body).await).await;
    assert_eq!(status, 200, "{answer}");
    let calls = answer["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0]["id"], calls[1]["id"]);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let (_, transcript) = stream(&gateway, streamed).await;
    let arguments: Vec<Value> = transcript
        .tool_calls
        .iter()
        .map(|(_, _, a)| serde_json::from_str(a).unwrap())
        .collect();
    assert_eq!(
        arguments,
        vec![json!({"city": "Paris"}), json!({"city": "London"})]
    );
}

#[tokio::test]
async fn a_provider_is_reached_through_the_proxy_the_environment_names() {
    // The mock stands in for an HTTP proxy: a plain upstream is sent to the proxy with its whole
    // URL, and the mock answers it as the upstream would.
    let proxy = MockUpstream::start(Flavor::Groq)
        .await
        .with_api_key(GROQ_KEY);
    let config = format!(
        "{}\n[providers.groq]\nplugin = \"groq\"\nbase_url = \"http://upstream.invalid:9/openai/v1\"\n\
         api_key = \"${{GROQ_API_KEY}}\"\n[models.fast]\ntargets = [\"groq/ok\"]\n",
        plugins_section()
    );
    let gateway = Gateway::builder()
        .env("GROQ_API_KEY", GROQ_KEY)
        .env("HTTP_PROXY", &format!("http://{}", proxy.addr()))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .start(&config)
        .await;
    let response = gateway
        .chat(&json!({"model": "fast", "messages": [{"role": "user", "content": "via proxy"}]}))
        .await;
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: via proxy"
    );
    let requests = proxy.chat_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/openai/v1/chat/completions");
    assert_eq!(requests[0].header("host"), Some("upstream.invalid:9"));
    // The credential goes to its provider's origin, which the proxy forwards to.
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {GROQ_KEY}").as_str())
    );
}

#[tokio::test]
async fn hosts_in_no_proxy_are_reached_directly() {
    let upstreams = Upstreams::start().await;
    let proxy = MockUpstream::start(Flavor::Groq).await;
    let gateway = upstreams
        .gateway_builder()
        .env("HTTP_PROXY", &format!("http://{}", proxy.addr()))
        .env("NO_PROXY", "localhost,127.0.0.1")
        .start(&upstreams.config(FAST))
        .await;
    let response = gateway
        .chat(&json!({"model": "fast", "messages": [{"role": "user", "content": "direct"}]}))
        .await;
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstreams.groq.chat_requests().len(), 1);
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
}
