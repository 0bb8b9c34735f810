//! The tool loop inside chat completions, through the real binary: a request naming aigw tools
//! (`{"type": "aigw_tool", "name": …}`) gets the model's calls to them run by the gateway (the
//! `tool-echo` plugin's `echo`, whose result is its arguments) and the model asked again, until
//! it answers; streamed as one completion; with parallel calls, the client's own tools passed
//! through, the step and time bounds, failover and stream continuation in a later step, the
//! turn stored in a conversation, a key without the tool refused before any upstream is asked,
//! and the openai Python SDK as the client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_tests::gateway::{Gateway, read_stream, status_and_json};
use aigw_tests::paths;
use aigw_tests::python::Check;
use aigw_tests::setup::{Upstreams, error_message, header, toml_str};
use aigw_tests::sse::Transcript;
use serde_json::{Value, json};

const ADMIN: &str = "admin-test-key-0123456789abcdef";

/// The `echo` tool's answer to the mock's arguments for a schema-less tool.
const ECHOED: &str = "tool said: {\"city\":\"Paris\"}";

/// The `tool-echo` test plugin as the gateway's tool plugin, and the routes the tests use.
fn config(extra: &str) -> String {
    format!(
        "[tools.echo]\nplugin = {}\n\
         [models.tools]\ntargets = [\"local/tool-call\"]\n\
         [models.parallel]\ntargets = [\"local/tool-call-parallel\"]\n\
         [models.looping]\ntargets = [\"local/tool-call-loop\"]\n\
         [models.slow]\ntargets = [\"local/tool-call-slow-150\"]\n\
         [models.failing]\ntargets = [\"local/tool-call-then-503\", \"groq/tool-call\"]\n\
         [models.cutting]\ntargets = [\"local/tool-call-then-cut\", \"groq/tool-call\"]\n\
         [models.offered]\ntargets = [\"local/tool-call\"]\ntools = [\"ec*\"]\n\
         {extra}",
        toml_str(&paths::test_plugin("tool-echo").to_string_lossy())
    )
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

fn aigw(name: &str) -> Value {
    json!({"type": "aigw_tool", "name": name})
}

fn function(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "description": "the client's own",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
}

/// The chat requests `mock` received, as JSON.
fn chats(mock: &aigw_tests::mock::MockUpstream) -> Vec<Value> {
    mock.requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .map(|r| r.body.clone())
        .collect()
}

/// The tool names a request offered the model.
fn offered(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["function"]["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn start(upstreams: &Upstreams, extra: &str) -> Gateway {
    upstreams.gateway(&config(extra)).await
}

#[tokio::test]
async fn a_completion_runs_the_tool_and_answers_with_its_result() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "").await;
    let response = gateway
        .chat(&json!({"model": "tools", "messages": user("weather?"), "tools": [aigw("echo")]}))
        .await;
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["content"], ECHOED, "{body}");
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["message"].get("tool_calls").is_none(), "{body}");
    let sent = chats(&upstreams.local);
    assert_eq!(sent.len(), 2, "one step with the call, one with its result");
    // The model was offered `echo` as a function, with the plugin's description and schema.
    assert_eq!(offered(&sent[0]), ["echo"]);
    assert_eq!(sent[0]["tools"][0]["type"], "function");
    assert_eq!(
        sent[0]["tools"][0]["function"]["description"],
        "Returns its arguments."
    );
    // The second step carries the assistant's call and the tool's compact JSON result.
    let messages = sent[1]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    let call = &messages[1]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "echo");
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(messages[2]["tool_call_id"], call["id"]);
    assert_eq!(messages[2]["content"], "{\"city\":\"Paris\"}");
    // Usage is both steps': the mock's prompt tokens grow with the messages.
    let usage = &body["usage"];
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > 16, "two steps' prompts: {usage}");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        prompt + usage["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn a_stream_is_one_completion_with_the_tool_steps_held_back() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "").await;
    let response = gateway
        .chat(
            &json!({"model": "tools", "messages": user("weather?"), "tools": [aigw("echo")],
                      "stream": true, "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response.headers(), "content-type"),
        "text/event-stream"
    );
    let (body, error) = read_stream(response).await;
    assert!(error.is_none(), "{error:?}");
    let transcript = Transcript::from_body(&body);
    assert_eq!(transcript.content, ECHOED, "{body}");
    assert!(
        transcript.tool_calls.is_empty(),
        "the loop's calls reached the client: {body}"
    );
    assert_eq!(transcript.finish_reason.as_deref(), Some("stop"));
    assert!(transcript.ends_with_done(), "{body}");
    assert!(transcript.errors.is_empty(), "{body}");
    let chunks: Vec<&Value> = transcript.events.iter().filter_map(|e| e.json()).collect();
    let ids: std::collections::HashSet<&str> =
        chunks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one completion id: {body}");
    let finishes = chunks
        .iter()
        .filter(|c| c["choices"][0]["finish_reason"].is_string())
        .count();
    assert_eq!(finishes, 1, "only the real end's finish chunk: {body}");
    assert_eq!(transcript.usage_chunks.len(), 1, "{body}");
    let usage = &transcript.usage_chunks[0]["usage"];
    // Both steps' usage: more than the last step's prompt alone.
    let sent = chats(&upstreams.local);
    assert_eq!(sent.len(), 2);
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 16, "{usage}");
    // Each streamed step asked for its usage, so each is charged.
    assert_eq!(sent[0]["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn parallel_calls_are_all_run_and_all_results_fed_back() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "").await;
    let response = gateway
        .chat(&json!({"model": "parallel", "messages": user("two cities"),
                      "tools": [aigw("echo")]}))
        .await;
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "tool said: {\"city\":\"Paris\"}\ntool said: {\"city\":\"London\"}"
    );
    let sent = chats(&upstreams.local);
    let messages = sent[1]["messages"].as_array().unwrap();
    let calls = messages[1]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    // One result per call, in the calls' order.
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(messages[2 + i]["tool_call_id"], call["id"]);
    }
}

#[tokio::test]
async fn a_call_to_a_client_tool_goes_to_the_client_untouched() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "").await;
    // `tool-call` calls the first tool: the client's.
    let response = gateway
        .chat(&json!({"model": "tools", "messages": user("book"),
                      "tools": [function("book_table"), aigw("echo")]}))
        .await;
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["function"]["name"], "book_table");
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    let sent = chats(&upstreams.local);
    assert_eq!(sent.len(), 1, "the gateway never runs a client's tool");
    assert_eq!(offered(&sent[0]), ["book_table", "echo"]);
}

#[tokio::test]
async fn a_mixed_turn_hands_the_client_only_its_own_calls_streamed_or_not() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "").await;
    // `tool-call-parallel` calls the first two tools: the client's and `echo`.
    let request = json!({"model": "parallel", "messages": user("both"),
                         "tools": [function("book_table"), aigw("echo")]});
    let (status, _, body) = status_and_json(gateway.chat(&request).await).await;
    assert_eq!(status, 200, "{body}");
    let calls = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls.len(), 1, "{body}");
    assert_eq!(calls[0]["function"]["name"], "book_table");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let (body, _) = read_stream(gateway.chat(&streamed).await).await;
    let transcript = Transcript::from_body(&body);
    assert_eq!(transcript.tool_calls.len(), 1, "{body}");
    assert_eq!(transcript.tool_calls[0].1, "book_table");
    assert_eq!(transcript.tool_calls[0].2, "{\"city\":\"Paris\"}");
    assert_eq!(transcript.finish_reason.as_deref(), Some("tool_calls"));
    assert!(transcript.ends_with_done(), "{body}");
    // Two requests (one each), no step that ran `echo`.
    assert_eq!(chats(&upstreams.local).len(), 2);
}

#[tokio::test]
async fn the_last_step_is_told_to_answer_without_tools() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "[tool_loop]\nmax_steps = 3\n").await;
    let response = gateway
        .chat(&json!({"model": "looping", "messages": user("again"), "tools": [aigw("echo")]}))
        .await;
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "answered with tool_choice none after 2 tool results"
    );
    let sent = chats(&upstreams.local);
    assert_eq!(sent.len(), 3);
    assert!(sent[0].get("tool_choice").is_none());
    assert!(sent[1].get("tool_choice").is_none());
    assert_eq!(sent[2]["tool_choice"], "none");
}

#[tokio::test]
async fn past_the_time_bound_the_answer_is_a_504_or_an_error_event() {
    let upstreams = Upstreams::start().await;
    // Each step takes 150 ms: the third would end past 400 ms.
    let gateway = start(&upstreams, "[tool_loop]\ntimeout_ms = 400\n").await;
    let request = json!({"model": "slow", "messages": user("slowly"), "tools": [aigw("echo")]});
    let (status, _, body) = status_and_json(gateway.chat(&request).await).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "tool_loop_timeout");
    assert!(error_message(&body).contains("timeout_ms"), "{body}");
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let response = gateway.chat(&streamed).await;
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);
    assert!(!transcript.has_done(), "{body}");
    assert_eq!(transcript.errors.len(), 1, "{body}");
    assert_eq!(transcript.errors[0]["code"], "tool_loop_timeout");
}

#[tokio::test]
async fn a_later_step_fails_over_to_the_next_target() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "").await;
    let response = gateway
        .chat(&json!({"model": "failing", "messages": user("fail later"),
                      "tools": [aigw("echo")]}))
        .await;
    let (status, headers, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], ECHOED);
    // Step 1 on the first target; step 2 refused there (503), served by the second.
    assert_eq!(header(&headers, "x-aigw-target"), "groq/tool-call");
    let local = chats(&upstreams.local);
    assert!(local.len() >= 2, "{}", local.len());
    assert_eq!(local[1]["messages"].as_array().unwrap().len(), 3);
    let groq = chats(&upstreams.groq);
    assert_eq!(groq.len(), 1);
    assert_eq!(groq[0]["messages"][2]["role"], "tool");
}

#[tokio::test]
async fn a_step_whose_stream_breaks_is_continued_on_another_target() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "").await;
    let response = gateway
        .chat(&json!({"model": "cutting", "messages": user("cut later"),
                      "tools": [aigw("echo")], "stream": true}))
        .await;
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);
    assert_eq!(transcript.content, ECHOED, "{body}");
    assert!(transcript.ends_with_done(), "{body}");
    assert!(transcript.errors.is_empty(), "{body}");
    // The continuation went to groq with the step's messages and the partial answer.
    let groq = chats(&upstreams.groq);
    assert_eq!(groq.len(), 1, "{groq:?}");
    let messages = groq[0]["messages"].as_array().unwrap();
    assert!(
        messages.iter().any(|m| m["role"] == "tool"),
        "the continuation carries the tool result: {messages:?}"
    );
}

#[tokio::test]
async fn a_conversation_stores_the_calls_and_results_as_items() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "").await;
    let client = gateway.client();
    let created = client
        .post(gateway.url("/v1/conversations"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, _, conversation) = status_and_json(created).await;
    assert_eq!(status, 200, "{conversation}");
    let id = conversation["id"].as_str().unwrap();
    for stream in [false, true] {
        let response = client
            .post(gateway.url("/v1/chat/completions"))
            .header("x-aigw-conversation", id)
            .json(&json!({"model": "tools", "messages": user("weather?"),
                          "tools": [aigw("echo")], "stream": stream}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
    }
    let listed = client
        .get(gateway.url(&format!("/v1/conversations/{id}/items?order=asc&limit=100")))
        .send()
        .await
        .unwrap();
    let (status, _, items) = status_and_json(listed).await;
    assert_eq!(status, 200, "{items}");
    let items = items["data"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    let turn = [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ];
    assert_eq!(kinds, [turn, turn].concat(), "{items:?}");
    let (call, output) = (&items[1], &items[2]);
    assert_eq!(call["name"], "echo");
    assert_eq!(call["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(output["call_id"], call["call_id"]);
    assert_eq!(output["output"], "{\"city\":\"Paris\"}");
    assert_eq!(items[3]["role"], "assistant");
    assert_eq!(items[3]["content"][0]["text"], ECHOED);
    assert_eq!(items[7]["content"][0]["text"], ECHOED);
}

#[tokio::test]
async fn a_tool_the_key_may_not_use_is_refused_before_any_upstream_is_asked() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&upstreams.config(&config("")))
        .await;
    let make = |spec: Value| {
        let gateway = &gateway;
        async move { gateway.create_key(&spec).await.1 }
    };
    let without = make(json!({"name": "no-tools", "tools": ["weather_*"]})).await;
    let with = make(json!({"name": "echo", "tools": ["echo"]})).await;
    let ask = |secret: String, tools: Value, model: &'static str| {
        let gateway = &gateway;
        async move {
            let response = gateway
                .client()
                .post(gateway.url("/v1/chat/completions"))
                .bearer_auth(secret)
                .json(&json!({"model": model, "messages": user("hi"), "tools": tools}))
                .send()
                .await
                .unwrap();
            status_and_json(response).await
        }
    };
    let (status, _, body) = ask(without.clone(), json!([aigw("echo")]), "tools").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "tool_not_allowed");
    assert_eq!(body["error"]["param"], "tools[0].name");
    let (status, _, body) = ask(
        without.clone(),
        json!([function("f"), aigw("nope")]),
        "tools",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "tools[1].name");
    assert_eq!(body["error"]["code"], "tool_not_found");
    assert!(chats(&upstreams.local).is_empty(), "no upstream was asked");
    // A pattern offers only what the key may use: nothing here, so no `tools` at all.
    let _ = ask(without.clone(), json!([aigw("ec*")]), "tools").await;
    let sent = chats(&upstreams.local);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].get("tools").is_none(), "{}", sent[0]);
    // A route's own tools are offered within the key's grant, never refused.
    let _ = ask(without, json!(null), "offered").await;
    let sent = chats(&upstreams.local);
    assert!(sent[1].get("tools").is_none(), "{}", sent[1]);
    let (status, _, body) = ask(with, json!(null), "offered").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], ECHOED);
    assert_eq!(offered(&chats(&upstreams.local)[2]), ["echo"]);
}

#[tokio::test]
async fn the_openai_python_sdk_runs_the_loop_stream_and_not() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, "").await;
    Check {
        script: "tool_loop_check.py",
        imports: "openai",
        env: &[("AIGW_TOOL_MODEL", "tools"), ("AIGW_TOOL", "echo")],
        expect: &["ok tool loop non-stream", "ok tool loop stream"],
    }
    .run(&gateway)
    .await;
}
