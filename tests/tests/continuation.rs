//! Continued streams end to end, in front of fallback models that do not continue as asked: a
//! stream breaks after 40 of its 60 words and is continued on a model that restarts from the
//! first word, repeats the last sentence, or restarts and then says something else. The client
//! must read the 60 words exactly once, or get an error event instead of a doubled answer; and
//! the usage it (and the log) gets must count the broken attempt too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, read_stream};
use aigw_tests::mock::DIVERGED_TEXT;
use aigw_tests::setup::Upstreams;
use aigw_tests::sse::Transcript;
use serde_json::{Value, json};

/// Words the broken target sends before its stream is cut.
const BROKEN_AT: usize = 40;

/// 57 words in sentences of eight, so the mock's reply (`mock reply to: <question>`) has 60.
fn question() -> String {
    (1..=57)
        .map(|i| {
            if i % 8 == 0 {
                format!("word{i}.")
            } else {
                format!("word{i}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn reply() -> String {
    format!("mock reply to: {}", question())
}

/// The first `n` words of the reply, as the client received them before the break.
fn first_words(n: usize) -> String {
    reply().split(' ').take(n).collect::<Vec<_>>().join(" ")
}

fn ask() -> Value {
    json!({"model": "fast", "stream": true, "stream_options": {"include_usage": true},
           "messages": [{"role": "user", "content": question()}]})
}

/// A gateway whose route `fast` breaks on `local` after [`BROKEN_AT`] words and continues on
/// `groq/<continuing>`; logs in JSON.
async fn gateway(upstreams: &Upstreams, continuing: &str) -> Gateway {
    upstreams
        .gateway_builder()
        .log_format("json")
        .start(&upstreams.config(&format!(
            "[models.fast]\ntargets = [\"local/cut-stream-{BROKEN_AT}\", \"groq/{continuing}\"]\n"
        )))
        .await
}

async fn streamed(gateway: &Gateway) -> (String, Transcript) {
    let response = gateway.chat(&ask()).await;
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);
    (body, transcript)
}

/// A field of a tracing JSON line, whether flattened or under `fields`.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get("fields")
        .and_then(|f| f.get(name))
        .or_else(|| line.get(name))
}

/// The request's log line (the one with `status` and `attempts`).
async fn request_line(gateway: &Gateway) -> Value {
    let is_request = |l: &str| {
        serde_json::from_str::<Value>(l)
            .is_ok_and(|l| field(&l, "status").is_some() && field(&l, "attempts").is_some())
    };
    let lines = gateway
        .wait_for_log_lines(Duration::from_secs(10), 1, is_request)
        .await;
    assert_eq!(lines.len(), 1, "{}", gateway.stderr());
    serde_json::from_str(&lines[0]).unwrap()
}

fn number(value: Option<&Value>) -> u64 {
    match value {
        Some(Value::Number(n)) => n.as_u64().unwrap(),
        Some(Value::String(s)) => s.parse().unwrap(),
        other => panic!("not a number: {other:?}"),
    }
}

/// The assertions every well-joined continuation passes: the 60 words once, one `[DONE]`.
fn assert_whole_answer_once(body: &str, transcript: &Transcript, gateway: &Gateway) {
    assert_eq!(transcript.content, reply(), "{body}\n{}", gateway.stderr());
    assert_eq!(transcript.content.split(' ').count(), 60);
    assert!(transcript.errors.is_empty(), "{body}");
    assert!(transcript.ends_with_done(), "{body}");
    assert_eq!(transcript.finish_reason.as_deref(), Some("stop"), "{body}");
}

#[tokio::test]
async fn a_continuation_that_restarts_from_the_first_word_is_forwarded_from_where_the_answer_stopped()
 {
    let upstreams = Upstreams::start().await;
    let gateway = gateway(&upstreams, "restarts").await;
    let (body, transcript) = streamed(&gateway).await;
    assert_whole_answer_once(&body, &transcript, &gateway);
    // The continuation really restarted: the mock was sent the partial answer and ignored it.
    let continuation = upstreams.groq.chat_requests();
    assert_eq!(continuation.len(), 1);
    let messages = continuation[0].body["messages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m["role"] == "assistant" && m["content"] == first_words(BROKEN_AT)),
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_continuation_that_repeats_the_last_sentence_has_the_repeat_dropped() {
    let upstreams = Upstreams::start().await;
    let gateway = gateway(&upstreams, "repeats-sentence").await;
    let (body, transcript) = streamed(&gateway).await;
    assert_whole_answer_once(&body, &transcript, &gateway);
}

#[tokio::test]
async fn a_continuation_that_restarts_and_says_something_else_ends_with_an_error_event() {
    let upstreams = Upstreams::start().await;
    let gateway = gateway(&upstreams, "diverges").await;
    let (body, transcript) = streamed(&gateway).await;
    // What the client has is the answer up to the break, and an error saying it is cut.
    assert_eq!(transcript.content, first_words(BROKEN_AT), "{body}");
    assert!(!body.contains(DIVERGED_TEXT.trim()), "{body}");
    assert_eq!(transcript.errors.len(), 1, "{body}");
    let message = transcript.errors[0]["message"].as_str().unwrap();
    assert!(message.contains("no clean join"), "{message}");
    assert!(!transcript.has_done(), "{body}");
    assert_eq!(transcript.finish_reason, None, "{body}");
    let line = request_line(&gateway).await;
    assert_eq!(number(field(&line, "status")), 502, "{line}");
    assert!(
        gateway
            .stderr()
            .contains("the continuation would have doubled the answer"),
        "{}",
        gateway.stderr()
    );
}

#[tokio::test]
async fn usage_after_a_continuation_counts_the_broken_attempt_too() {
    let upstreams = Upstreams::start().await;
    let gateway = gateway(&upstreams, "ok").await;
    let (body, transcript) = streamed(&gateway).await;
    assert_whole_answer_once(&body, &transcript, &gateway);

    // The broken attempt reported no usage: its estimate is one token per four characters
    // (rounded up) of its prompt (the client's message) and of the text it streamed.
    let partial = first_words(BROKEN_AT);
    let estimate = |chars: usize| chars.div_ceil(4) as u64;
    let broken_prompt = estimate(question().chars().count());
    let broken_completion = estimate(partial.chars().count());
    // The continuation's usage, as the mock reports it: 8 + characters of every message / 4
    // for the prompt (the question, the partial answer and the request to go on), one token
    // per word sent for the completion.
    let continuation = upstreams.groq.chat_requests();
    assert_eq!(continuation.len(), 1);
    let chars: usize = continuation[0].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().chars().count())
        .sum();
    let continued_prompt = 8 + chars as u64 / 4;
    let continued_completion = (60 - BROKEN_AT) as u64;

    let prompt = broken_prompt + continued_prompt;
    let completion = broken_completion + continued_completion;
    assert_eq!(transcript.usage_chunks.len(), 1, "{body}");
    let usage = &transcript.usage_chunks[0]["usage"];
    assert_eq!(usage["prompt_tokens"], prompt, "{usage}");
    assert_eq!(usage["completion_tokens"], completion, "{usage}");
    assert_eq!(usage["total_tokens"], prompt + completion, "{usage}");

    let line = request_line(&gateway).await;
    assert_eq!(number(field(&line, "prompt_tokens")), prompt, "{line}");
    assert_eq!(
        number(field(&line, "completion_tokens")),
        completion,
        "{line}"
    );
    assert_eq!(
        field(&line, "usage_estimated")
            .map(Value::to_string)
            .as_deref(),
        Some("true"),
        "{line}"
    );
}

#[tokio::test]
async fn the_continuing_attempt_is_stamped_when_it_started_after_the_break() {
    let upstreams = Upstreams::start().await;
    let gateway = gateway(&upstreams, "ok").await;
    let (body, transcript) = streamed(&gateway).await;
    assert_whole_answer_once(&body, &transcript, &gateway);
    let line = request_line(&gateway).await;
    let log = field(&line, "attempt_log").unwrap().as_str().unwrap();
    let items: Vec<&str> = log.split(", ").collect();
    assert_eq!(items.len(), 2, "{log}");
    assert!(items[0].starts_with(&format!("local/cut-stream-{BROKEN_AT} first ")));
    assert!(items[1].starts_with("groq/ok first served at="), "{log}");
    let at = |item: &str, key: &str| -> f64 {
        let from = item.find(key).unwrap() + key.len();
        let rest = &item[from..];
        rest[..rest.find("ms").unwrap()].parse().unwrap()
    };
    // The broken attempt ran from the start until the cut (the mock pauses 50 ms before it);
    // the continuation began after that, not at the request's start.
    assert_eq!(at(items[0], "at="), 0.0, "{log}");
    let broken_took = at(items[0], "took=");
    assert!(broken_took >= 40.0, "{log}");
    assert!(at(items[1], "at=") >= broken_took, "{log}");
}
