//! The response cache through the real binary and the mock upstream: a miss then a hit (one
//! upstream call, `x-aigw-cache`, the same body, the record's `cache` field, the lookups in
//! `/metrics`), a streamed miss
//! replayed as a streamed hit and answered as a non-streamed hit, the opt-out headers
//! (`x-aigw-cache: off`, `Cache-Control: no-store` / `no-cache`), isolation per key and per
//! namespace, expiry after the route's TTL, requests never cached (aigw tools, a conversation,
//! `n > 1`), failed and cut answers never kept, one cache shared by two processes on one
//! database, and the official OpenAI SDK reading hits as normal answers.
//!
//! The gateway keeps an answer beside the response, so each test waits for the
//! `response cache: answer stored` debug line before it expects a hit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aigw_tests::gateway::{Gateway, GatewayBuilder};
use aigw_tests::python::Check;
use aigw_tests::setup::{Upstreams, toml_str};
use aigw_tests::sse::Transcript;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ROUTES: &str = "\
[models.fast]\ntargets = [\"groq/ok\"]\ncache_ttl_s = 600\n\
[models.brief]\ntargets = [\"groq/ok\"]\ncache_ttl_s = 1\n\
[models.plain]\ntargets = [\"groq/ok\"]\n\
[models.broken]\ntargets = [\"groq/error-500\"]\ncache_ttl_s = 600\nretries = 0\n\
[models.cut]\ntargets = [\"groq/cut-stream\"]\ncache_ttl_s = 600\n\
[models.many]\ntargets = [\"local/ok\"]\ncache_ttl_s = 600\n\
[models.tooled]\ntargets = [\"groq/ok\"]\ncache_ttl_s = 600\ntools = [\"nothing_*\"]\n";

/// What the gateway logs once a write to the cache committed (at debug).
const STORED: &str = "response cache: answer stored";
const LOG: &str = "info,aigw_server::chat::cache=debug";
const ADMIN: &str = "admin-e2e-response-cache-0123456789";

fn builder(upstreams: &Upstreams) -> GatewayBuilder {
    upstreams
        .gateway_builder()
        .env("AIGW_LOG", LOG)
        .log_format("json")
}

async fn start(upstreams: &Upstreams, rest: &str) -> Gateway {
    builder(upstreams).start(&upstreams.config(rest)).await
}

/// Waits until `count` answers were stored and checks no more were.
async fn stored(gateway: &Gateway, count: usize) {
    let lines = gateway
        .wait_for_log_lines(Duration::from_secs(10), count, |l| l.contains(STORED))
        .await;
    assert_eq!(lines.len(), count, "{}", gateway.stderr());
}

/// One answer: status, `x-aigw-cache`, headers, body text.
struct Answer {
    status: StatusCode,
    cache: Option<String>,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn content(&self) -> String {
        self.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn ask_with(
    gateway: &Gateway,
    body: &Value,
    headers: &[(&str, &str)],
    key: Option<&str>,
) -> Answer {
    let mut request = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let cache = headers
        .get("x-aigw-cache")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    Answer {
        status,
        cache,
        headers,
        text,
    }
}

async fn ask(gateway: &Gateway, body: &Value) -> Answer {
    ask_with(gateway, body, &[], None).await
}

fn body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}], "temperature": 0})
}

/// A field of a tracing JSON line, whether flattened or under `fields`.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get("fields")
        .and_then(|f| f.get(name))
        .or_else(|| line.get(name))
}

/// The request log lines so far, parsed.
async fn request_lines(gateway: &Gateway, count: usize) -> Vec<Value> {
    gateway
        .wait_for_log_lines(Duration::from_secs(10), count, |l| {
            l.contains("chat completion") && l.contains("\"status\"")
        })
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_miss_is_kept_and_the_same_request_is_answered_without_an_upstream_call() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, ROUTES).await;
    let request = body("fast", "hello cache");

    let miss = ask(&gateway, &request).await;
    assert_eq!(miss.status, 200, "{}", miss.text);
    assert_eq!(miss.cache.as_deref(), Some("miss"));
    assert_eq!(miss.content(), "mock reply to: hello cache");
    assert_eq!(miss.headers["x-aigw-target"], "groq/ok");
    stored(&gateway, 1).await;

    // The same semantic fields, written another way, with a label the key ignores.
    let reordered = json!({"temperature": 0, "user": "someone",
                           "messages": [{"content": "hello cache", "role": "user"}], "model": "fast"});
    let hit = ask(&gateway, &reordered).await;
    assert_eq!(hit.status, 200, "{}", hit.text);
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert_eq!(hit.text, miss.text, "the kept answer, byte for byte");
    assert_eq!(hit.headers["content-type"], "application/json");
    assert_eq!(hit.headers["x-aigw-attempts"], "0");
    assert!(
        hit.headers.get("x-aigw-target").is_none(),
        "no target served"
    );
    assert_eq!(
        upstreams.groq.chat_requests().len(),
        1,
        "the hit asked no upstream"
    );

    // Another question is another row; a route without a TTL says nothing of the cache.
    let other = ask(&gateway, &body("fast", "something else")).await;
    assert_eq!(other.cache.as_deref(), Some("miss"));
    let plain = ask(&gateway, &body("plain", "hello cache")).await;
    assert_eq!((plain.status, plain.cache), (StatusCode::OK, None));
    assert_eq!(upstreams.groq.chat_requests().len(), 3);

    // The record: `cache` on the log line, a hit with no target and no tokens charged.
    let lines = request_lines(&gateway, 4).await;
    let caches: Vec<Option<&str>> = lines
        .iter()
        .map(|l| field(l, "cache").and_then(Value::as_str))
        .collect();
    assert_eq!(caches, [Some("miss"), Some("hit"), Some("miss"), None]);
    assert_eq!(field(&lines[1], "provider").unwrap(), "-");
    assert_eq!(field(&lines[1], "attempts").unwrap(), 0);
    assert_eq!(field(&lines[1], "cost_usd").unwrap(), "0.000000");

    // The metrics count the lookups per route; a route without a TTL looked nothing up.
    let scrape = gateway
        .client()
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().await.unwrap();
    let mut lookups: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("aigw_response_cache_lookups_total{"))
        .collect();
    lookups.sort_unstable();
    assert_eq!(
        lookups,
        [
            r#"aigw_response_cache_lookups_total{route="fast",outcome="hit"} 1"#,
            r#"aigw_response_cache_lookups_total{route="fast",outcome="miss"} 2"#,
        ],
        "{text}"
    );
}

#[tokio::test]
async fn a_streamed_miss_is_replayed_as_a_stream_and_answers_a_non_streamed_request() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, ROUTES).await;
    let mut request = body("fast", "stream this please");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});

    let miss = ask(&gateway, &request).await;
    assert_eq!(miss.status, 200, "{}", miss.text);
    assert_eq!(miss.cache.as_deref(), Some("miss"));
    let streamed = Transcript::from_body(&miss.text);
    assert!(streamed.ends_with_done());
    assert_eq!(streamed.content, "mock reply to: stream this please");
    stored(&gateway, 1).await;

    let hit = ask(&gateway, &request).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert!(
        hit.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let replayed = Transcript::from_body(&hit.text);
    assert!(replayed.ends_with_done(), "{}", hit.text);
    assert_eq!(replayed.content, streamed.content);
    assert_eq!(replayed.finish_reason.as_deref(), Some("stop"));
    assert!(replayed.errors.is_empty());
    // The usage the client asked for: the answer's, as the miss reported it.
    assert_eq!(replayed.usage_chunks.len(), 1, "{}", hit.text);
    assert_eq!(
        replayed.usage_chunks[0]["usage"]["total_tokens"],
        streamed.usage_chunks[0]["usage"]["total_tokens"]
    );
    // Every chunk names the kept answer.
    let first = replayed.events[0].json().unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(first["id"], streamed.events[0].json().unwrap()["id"]);
    // Without include_usage: no usage chunk.
    let mut no_usage = request.clone();
    no_usage.as_object_mut().unwrap().remove("stream_options");
    let hit = ask(&gateway, &no_usage).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert!(Transcript::from_body(&hit.text).usage_chunks.is_empty());

    // The same request not streamed: the assembled answer.
    let mut plain = request.clone();
    plain.as_object_mut().unwrap().remove("stream");
    plain.as_object_mut().unwrap().remove("stream_options");
    let hit = ask(&gateway, &plain).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"), "{}", hit.text);
    let answer = hit.json();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "mock reply to: stream this please"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["usage"]["total_tokens"],
        streamed.usage_chunks[0]["usage"]["total_tokens"]
    );
    assert_eq!(upstreams.groq.chat_requests().len(), 1);
}

#[tokio::test]
async fn the_opt_out_headers_skip_the_lookup_the_keeping_or_both() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, ROUTES).await;
    let request = body("fast", "opting out");
    let calls = || upstreams.groq.chat_requests().len();

    // `x-aigw-cache: off`: neither looked up nor kept.
    let off = ask_with(&gateway, &request, &[("x-aigw-cache", "off")], None).await;
    assert_eq!(
        (off.status, off.cache.as_deref()),
        (StatusCode::OK, Some("off"))
    );
    // `no-store`: looked up (nothing there), the fresh answer not kept.
    let no_store = ask_with(&gateway, &request, &[("cache-control", "no-store")], None).await;
    assert_eq!(no_store.cache.as_deref(), Some("miss"));
    assert_eq!(calls(), 2);
    // Neither was kept: the next plain request is a miss, and it is the first one kept.
    let miss = ask(&gateway, &request).await;
    assert_eq!(miss.cache.as_deref(), Some("miss"));
    stored(&gateway, 1).await;
    assert_eq!(calls(), 3);

    // Now there is an answer: `off` and `no-cache` still ask the upstream, `no-store` does not.
    let off = ask_with(&gateway, &request, &[("x-aigw-cache", "off")], None).await;
    assert_eq!(off.cache.as_deref(), Some("off"));
    let no_store = ask_with(&gateway, &request, &[("cache-control", "no-store")], None).await;
    assert_eq!(no_store.cache.as_deref(), Some("hit"));
    assert_eq!(calls(), 4);
    // `no-cache`: not looked up, the fresh answer kept again.
    let no_cache = ask_with(&gateway, &request, &[("cache-control", "no-cache")], None).await;
    assert_eq!(no_cache.cache.as_deref(), Some("miss"));
    assert_eq!(calls(), 5);
    stored(&gateway, 2).await;
    let both = ask_with(
        &gateway,
        &request,
        &[("cache-control", "no-cache, no-store")],
        None,
    )
    .await;
    assert_eq!(both.cache.as_deref(), Some("off"));
    assert_eq!(calls(), 6);
    assert_eq!(ask(&gateway, &request).await.cache.as_deref(), Some("hit"));
    assert_eq!(calls(), 6);
    stored(&gateway, 2).await;
}

async fn make_key(gateway: &Gateway, name: &str) -> String {
    gateway.create_key(&json!({"name": name})).await.1
}

#[tokio::test]
async fn one_key_never_gets_another_keys_answer() {
    let upstreams = Upstreams::start().await;
    let gateway = builder(&upstreams)
        .admin_key(ADMIN)
        .start(&upstreams.config(ROUTES))
        .await;
    let (a, b) = (make_key(&gateway, "a").await, make_key(&gateway, "b").await);
    let request = body("fast", "whose answer");

    let miss = ask_with(&gateway, &request, &[], Some(&a)).await;
    assert_eq!(miss.cache.as_deref(), Some("miss"), "{}", miss.text);
    stored(&gateway, 1).await;
    assert_eq!(
        ask_with(&gateway, &request, &[], Some(&a))
            .await
            .cache
            .as_deref(),
        Some("hit")
    );
    let other = ask_with(&gateway, &request, &[], Some(&b)).await;
    assert_eq!(
        other.cache.as_deref(),
        Some("miss"),
        "key b asks the upstream"
    );
    assert_eq!(upstreams.groq.chat_requests().len(), 2);
    // Key b's own answer is kept for key b.
    stored(&gateway, 2).await;
    let hit = ask_with(&gateway, &request, &[], Some(&b)).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
}

#[tokio::test]
async fn one_namespace_never_gets_another_namespaces_answer() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, ROUTES).await;
    let request = body("fast", "whose namespace");
    let team = |name: &'static str| [("x-aigw-namespace", name)];

    let miss = ask_with(&gateway, &request, &team("team-a"), None).await;
    assert_eq!(miss.cache.as_deref(), Some("miss"));
    stored(&gateway, 1).await;
    let other = ask_with(&gateway, &request, &team("team-b"), None).await;
    assert_eq!(other.cache.as_deref(), Some("miss"));
    let default = ask(&gateway, &request).await;
    assert_eq!(default.cache.as_deref(), Some("miss"));
    stored(&gateway, 3).await;
    let hit = ask_with(&gateway, &request, &team("team-a"), None).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    // A namespace the memory refuses: not cached, and not refused either.
    let bad = ask_with(&gateway, &request, &team("a/b"), None).await;
    assert_eq!(
        (bad.status, bad.cache.as_deref()),
        (StatusCode::OK, Some("off"))
    );
    assert_eq!(upstreams.groq.chat_requests().len(), 4);
}

#[tokio::test]
async fn an_answer_expires_after_the_routes_ttl() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, ROUTES).await;
    let request = body("brief", "short lived");
    assert_eq!(ask(&gateway, &request).await.cache.as_deref(), Some("miss"));
    stored(&gateway, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut hits = 0;
    loop {
        match ask(&gateway, &request).await.cache.as_deref() {
            Some("hit") => hits += 1,
            Some("miss") => break,
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "the answer never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hits >= 1, "served from the cache before it expired");
    assert_eq!(upstreams.groq.chat_requests().len(), 2);
}

#[tokio::test]
async fn tool_loops_conversations_and_several_choices_are_never_cached() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, ROUTES).await;
    // A route offering aigw tools runs the tool loop.
    for _ in 0..2 {
        let answer = ask(&gateway, &body("tooled", "with tools")).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.cache.as_deref(), Some("off"));
    }
    // A conversation.
    let created = gateway
        .client()
        .post(gateway.url("/v1/conversations"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let conversation: Value = created.json().await.unwrap();
    let id = conversation["id"].as_str().unwrap();
    for _ in 0..2 {
        let answer = ask_with(
            &gateway,
            &body("fast", "in a conversation"),
            &[("x-aigw-conversation", id)],
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.cache.as_deref(), Some("off"));
    }
    assert_eq!(
        upstreams.groq.chat_requests().len(),
        4,
        "every request reached the upstream"
    );
    // Several choices (Groq refuses `n > 1`; an OpenAI-compatible upstream takes it).
    let mut several = body("many", "several");
    several["n"] = json!(2);
    for _ in 0..2 {
        let answer = ask(&gateway, &several).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.cache.as_deref(), Some("off"));
    }
    assert_eq!(upstreams.local.chat_requests().len(), 2);
    assert!(!gateway.stderr().contains(STORED), "nothing was kept");
}

#[tokio::test]
async fn failed_and_cut_answers_are_never_kept() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, ROUTES).await;
    for _ in 0..2 {
        let failed = ask(&gateway, &body("broken", "fails")).await;
        assert!(failed.status.is_server_error(), "{}", failed.text);
        assert_eq!(failed.cache.as_deref(), Some("miss"));
    }
    assert_eq!(upstreams.groq.chat_requests().len(), 2);
    let mut cut = body("cut", "cut short");
    cut["stream"] = json!(true);
    for _ in 0..2 {
        let answer = ask(&gateway, &cut).await;
        assert_eq!(answer.cache.as_deref(), Some("miss"));
        let transcript = Transcript::from_body(&answer.text);
        assert!(!transcript.has_done(), "{}", answer.text);
    }
    assert_eq!(upstreams.groq.chat_requests().len(), 4);
    // A good answer afterwards is kept (so the log line is there to be missing above).
    ask(&gateway, &body("fast", "fine")).await;
    stored(&gateway, 1).await;
}

#[tokio::test]
async fn two_processes_on_one_database_share_the_cache() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aigw.db");
    let rest = format!(
        "[memory]\npath = {}\n{ROUTES}",
        toml_str(&db.to_string_lossy())
    );
    let first = start(&upstreams, &rest).await;
    let second = start(&upstreams, &rest).await;
    let request = body("fast", "shared between replicas");
    let miss = ask(&first, &request).await;
    assert_eq!(miss.cache.as_deref(), Some("miss"));
    stored(&first, 1).await;
    let hit = ask(&second, &request).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert_eq!(hit.text, miss.text);
    assert_eq!(upstreams.groq.chat_requests().len(), 1);
}

#[tokio::test]
async fn the_openai_sdk_reads_hits_as_normal_answers() {
    let upstreams = Upstreams::start().await;
    let gateway = start(&upstreams, ROUTES).await;
    Check {
        script: "response_cache_check.py",
        imports: "openai",
        env: &[("AIGW_MODEL", "fast")],
        expect: &["ok non-stream hit", "ok stream hit"],
    }
    .run(&gateway)
    .await;
}
