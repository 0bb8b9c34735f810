//! Session-aware chat completions end to end: a request naming a conversation
//! (`x-aigw-conversation`) reaches the upstream with the conversation's history after its own
//! instructions (seen through the `echo-messages` mock, which answers with what it received),
//! and its turn is in the conversation as soon as the answer (or a stream's `[DONE]`) is out;
//! a failed call, a cut stream and a client that left record nothing, a continued stream
//! records its whole answer once, and a conversation of another namespace is unknown without
//! the upstream being asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, read_stream, status_and_json};
use aigw_tests::mock::MockUpstream;
use aigw_tests::setup::{Upstreams, error_message};
use aigw_tests::sse::Transcript;
use serde_json::{Value, json};

const CONVERSATION: &str = "x-aigw-conversation";

const MODELS: &str = "\
[models.echo]\ntargets = [\"local/echo-messages\"]\n\
[models.broken]\ntargets = [\"local/error-500\"]\n\
[models.cut]\ntargets = [\"local/cut-stream\"]\n\
[models.continued]\ntargets = [\"local/cut-stream\", \"groq/ok\"]\n\
[models.tools]\ntargets = [\"local/tool-call\"]\n\
[models.slow]\ntargets = [\"local/slow-400\"]\n\
[models.slow-stream]\ntargets = [\"local/slow-first-400\"]\n";

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// A new conversation in `namespace` holding `items`; its id.
async fn create(gateway: &Gateway, namespace: &str, items: Value) -> String {
    let response = gateway
        .client()
        .post(gateway.url("/v1/conversations"))
        .header("x-aigw-namespace", namespace)
        .json(&json!({"items": items}))
        .send()
        .await
        .unwrap();
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// The conversation's items, oldest first, as the Conversations API lists them.
async fn items(gateway: &Gateway, namespace: &str, conversation: &str) -> Vec<Value> {
    let path = format!("/v1/conversations/{conversation}/items?order=asc&limit=100");
    let response = gateway
        .client()
        .get(gateway.url(&path))
        .header("x-aigw-namespace", namespace)
        .send()
        .await
        .unwrap();
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// A chat completion naming `conversation` (in namespace `team`, as agent `planner`).
async fn chat(gateway: &Gateway, conversation: &str, body: &Value) -> reqwest::Response {
    gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .header(CONVERSATION, conversation)
        .header("x-aigw-namespace", "team")
        .header("x-aigw-agent", "planner")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The messages the `echo-messages` upstream received, from its answer's digest.
fn echoed(content: &str) -> Vec<String> {
    serde_json::from_str(content).unwrap_or_else(|e| panic!("not a digest ({e}): {content}"))
}

/// An item's text: its content parts' text joined.
fn text(item: &Value) -> String {
    item["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn history_goes_after_the_instructions_and_every_turn_is_recorded() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;
    let id = create(
        &gateway,
        "team",
        json!([
            user("my name is Ann"),
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "hello Ann"}]},
        ]),
    )
    .await;

    // A JSON turn: the history after the system message, before the question.
    let ask = json!({"model": "echo", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is my name?"},
    ]});
    let (status, _, body) = status_and_json(chat(&gateway, &id, &ask).await).await;
    assert_eq!(status, 200, "{body}");
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        echoed(answer),
        [
            "system: be brief",
            "user: my name is Ann",
            "assistant: hello Ann",
            "user: what is my name?"
        ]
    );
    // Recorded before the answer came: the listing right after has the turn, the system
    // message left out, the agent named.
    let stored = items(&gateway, "team", &id).await;
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(
        (stored[2]["role"].as_str(), text(&stored[2]).as_str()),
        (Some("user"), "what is my name?")
    );
    assert_eq!(stored[3]["role"], "assistant");
    assert_eq!(text(&stored[3]), answer);
    assert_eq!(stored[2]["agent"], "planner");
    assert_eq!(stored[3]["agent"], "planner");

    // A streamed turn sees the JSON one, and is in the conversation once `[DONE]` is read.
    let ask = json!({"model": "echo", "stream": true,
                     "messages": [{"role": "user", "content": "and again?"}]});
    let response = chat(&gateway, &id, &ask).await;
    assert_eq!(response.status(), 200);
    let (body, error) = read_stream(response).await;
    assert!(error.is_none(), "{error:?}");
    let transcript = Transcript::from_body(&body);
    assert!(transcript.ends_with_done(), "{body}");
    let seen = echoed(&transcript.content);
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[3], format!("assistant: {answer}"));
    assert_eq!(seen[4], "user: and again?");
    let stored = items(&gateway, "team", &id).await;
    assert_eq!(stored.len(), 6, "{stored:?}");
    assert_eq!(text(&stored[4]), "and again?");
    assert_eq!(text(&stored[5]), transcript.content);
}

#[tokio::test]
async fn tool_calls_are_recorded_as_calls_and_come_back_grouped() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;
    let id = create(&gateway, "team", json!([])).await;
    let tools = json!([{"type": "function", "function": {"name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let ask = json!({"model": "tools", "tools": tools,
                     "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let (status, _, body) = status_and_json(chat(&gateway, &id, &ask).await).await;
    assert_eq!(status, 200, "{body}");
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    let call_id = call["id"].as_str().unwrap();
    let stored = items(&gateway, "team", &id).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[1]["type"], "function_call");
    assert_eq!(stored[1]["call_id"], call_id);
    assert_eq!(stored[1]["name"], "weather");
    assert_eq!(stored[1]["arguments"], call["function"]["arguments"]);

    // The result is recorded as a call output, and the upstream sees call and result paired.
    let ask = json!({"model": "echo", "messages": [
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]});
    let (status, _, body) = status_and_json(chat(&gateway, &id, &ask).await).await;
    assert_eq!(status, 200, "{body}");
    let seen = echoed(body["choices"][0]["message"]["content"].as_str().unwrap());
    let arguments = call["function"]["arguments"].as_str().unwrap();
    assert_eq!(
        seen,
        [
            "user: weather in Paris?".to_owned(),
            format!("assistant:  calls weather({arguments})"),
            format!("tool {call_id}: sunny"),
        ]
    );
    let stored = items(&gateway, "team", &id).await;
    assert_eq!(stored[2]["type"], "function_call_output");
    assert_eq!(stored[2]["output"], "sunny");
    assert_eq!(stored.len(), 4);
}

#[tokio::test]
async fn failed_and_cut_calls_record_nothing_and_a_continued_stream_its_whole_answer_once() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;
    let id = create(&gateway, "team", json!([user("first")])).await;

    let ask = json!({"model": "broken", "messages": [{"role": "user", "content": "fail"}]});
    let response = chat(&gateway, &id, &ask).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    assert_eq!(items(&gateway, "team", &id).await.len(), 1);

    let ask = json!({"model": "cut", "stream": true,
                     "messages": [{"role": "user", "content": "cut me"}]});
    let response = chat(&gateway, &id, &ask).await;
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);
    assert!(
        !transcript.has_done() && !transcript.errors.is_empty(),
        "{body}"
    );
    assert_eq!(items(&gateway, "team", &id).await.len(), 1);

    let ask = json!({"model": "continued", "stream": true,
                     "messages": [{"role": "user", "content": "carry on please"}]});
    let response = chat(&gateway, &id, &ask).await;
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);
    assert!(transcript.ends_with_done(), "{body}");
    assert_eq!(transcript.content, "mock reply to: carry on please");
    let stored = items(&gateway, "team", &id).await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(text(&stored[1]), "carry on please");
    assert_eq!(text(&stored[2]), "mock reply to: carry on please");
}

#[tokio::test]
async fn unknown_and_foreign_conversations_are_404_before_the_upstream_is_asked() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;
    let theirs = create(&gateway, "other-team", json!([user("secret")])).await;
    let ask = json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]});
    for id in [
        theirs.as_str(),
        "conv_0000000000000000000000000000000000000000000000",
    ] {
        let (status, _, body) = status_and_json(chat(&gateway, id, &ask).await).await;
        assert_eq!(status, 404, "{body}");
        error_message(&body);
        assert_eq!(body["error"]["code"], "conversation_not_found");
    }
    let (status, _, body) = status_and_json(chat(&gateway, "conv/../x", &ask).await).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], CONVERSATION);
    assert!(upstreams.local.chat_requests().is_empty());
    // Nothing was added to theirs either.
    assert_eq!(items(&gateway, "other-team", &theirs).await.len(), 1);
}

/// Waits until the mock has received `count` chat requests (it answers the slow models late, so
/// a request it received is still running).
async fn received(mock: &MockUpstream, count: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while mock.chat_requests().len() < count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the upstream never received the request");
}

#[tokio::test]
async fn a_turn_that_cannot_be_recorded_is_not_reported_complete() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;
    let delete = |id: String| {
        let request = gateway
            .client()
            .delete(gateway.url(&format!("/v1/conversations/{id}")))
            .header("x-aigw-namespace", "team");
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
    };

    // The conversation goes away while the completion runs: the answer is not sent as a
    // success, since its turn is nowhere.
    let id = create(&gateway, "team", json!([])).await;
    let ask = json!({"model": "slow", "messages": [{"role": "user", "content": "hi"}]});
    let (answer, ()) = tokio::join!(chat(&gateway, &id, &ask), async {
        received(&upstreams.local, 1).await;
        delete(id.clone()).await;
    });
    let (status, _, body) = status_and_json(answer).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "conversation_not_found");

    // A stream: its chunks went out, but it ends with the error instead of `[DONE]`.
    let id = create(&gateway, "team", json!([])).await;
    let ask = json!({"model": "slow-stream", "stream": true,
                     "messages": [{"role": "user", "content": "hi"}]});
    let (response, ()) = tokio::join!(chat(&gateway, &id, &ask), async {
        received(&upstreams.local, 2).await;
        delete(id.clone()).await;
    });
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);
    assert_eq!(transcript.content, "mock reply to: hi", "{body}");
    assert!(!transcript.has_done(), "{body}");
    assert_eq!(transcript.errors.len(), 1, "{body}");
    assert_eq!(transcript.errors[0]["code"], "conversation_not_found");
}
