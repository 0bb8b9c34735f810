//! The provider conformance suite: the same cases, through the real `aigw` binary over HTTP, for
//! every provider plugin in [`PROVIDERS`], each in front of a mock speaking that provider's wire
//! format (`aigw_tests::mock::Flavor`, `docs/providers.md`).
//!
//! One test per provider starts one mock (requiring the key `k`) and one gateway
//! (`[providers.p] plugin = "<name>"`), then runs every case of [`CASES`] against it. A case
//! returns `Err(reason)` instead of panicking, so one run reports every failing
//! `provider/case` at once.
//!
//! Known gaps ([`KNOWN_GAPS`]) are (provider, case) pairs a plugin fails today because of a bug
//! in the plugin. They are still run, and must still fail: when one starts passing, the test
//! fails and asks for the row to be removed.
//!
//! Scope: the OpenAI-dialect providers `groq`, `openai-compatible`, `cerebras`, `openrouter`,
//! `novita`, `huggingface`. **Not yet covered: `gemini` (native API, no `[DONE]`, `usageMetadata`)
//! and `replicate` (prediction jobs)** — they need their own mock flavors first; then they get a
//! row here like the others, with the cases that apply to them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;

use aigw_tests::gateway::{Gateway, read_stream, status_and_json};
use aigw_tests::mock::{self, Flavor, MockUpstream};
use aigw_tests::setup::{error_message, header, plugins_section, provider_section};
use aigw_tests::sse::Transcript;
use serde_json::{Value, json};

/// (plugin name, mock flavor): every provider plugin the suite covers.
const PROVIDERS: &[(&str, Flavor)] = &[
    ("groq", Flavor::Groq),
    ("openai-compatible", Flavor::OpenAi),
    ("cerebras", Flavor::Cerebras),
    ("openrouter", Flavor::OpenRouter),
    ("novita", Flavor::Novita),
    ("huggingface", Flavor::HuggingFace),
];

/// (plugin, case) pairs that fail today because of a plugin bug, with the reason. They must
/// still fail (see the module doc).
const KNOWN_GAPS: &[(&str, &str, &str)] = &[];

const KEY: &str = "k";

/// The question every text case asks, and the mock's answer to it.
const QUESTION: &str = "hello there";
const REPLY: &str = "mock reply to: hello there";

struct Ctx {
    provider: &'static str,
    flavor: Flavor,
    mock: MockUpstream,
    gateway: Gateway,
}

type CaseResult = Result<(), String>;
type Case = for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + 'a>>;

/// Every case, by name.
const CASES: &[(&str, Case)] = &[
    ("text", |c| Box::pin(text(c))),
    ("stream-usage", |c| Box::pin(stream_usage(c))),
    ("tool-call", |c| Box::pin(tool_call(c))),
    ("tool-call-stream", |c| Box::pin(tool_call_stream(c))),
    ("rate-limit", |c| Box::pin(rate_limit(c))),
    ("server-errors", |c| Box::pin(server_errors(c))),
    ("context-length", |c| Box::pin(context_length(c))),
    ("bad-request", |c| Box::pin(bad_request(c))),
    ("cut-stream", |c| Box::pin(cut_stream(c))),
    ("failover", |c| Box::pin(failover(c))),
];

/// `return Err(..)` unless the condition holds.
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn ask(model: &str) -> Value {
    json!({"model": format!("p/{model}"), "messages": [{"role": "user", "content": QUESTION}]})
}

fn ask_streaming(model: &str) -> Value {
    let mut body = ask(model);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }}])
}

fn check_usage(usage: &Value, content: &str) -> CaseResult {
    let words = content.split_whitespace().count() as u64;
    check!(
        usage["completion_tokens"].as_u64() == Some(words),
        "completion_tokens is not {words}: {usage}"
    );
    let prompt = usage["prompt_tokens"].as_u64();
    check!(prompt.is_some_and(|p| p > 0), "no prompt_tokens: {usage}");
    check!(
        usage["total_tokens"].as_u64() == prompt.map(|p| p + words),
        "total_tokens is not the sum: {usage}"
    );
    Ok(())
}

async fn stream_transcript(ctx: &Ctx, body: &Value) -> Result<(String, Transcript), String> {
    let response = ctx.gateway.chat(body).await;
    let status = response.status().as_u16();
    let content_type = header(response.headers(), "content-type").to_owned();
    let (text, _) = read_stream(response).await;
    check!(status == 200, "status {status}: {text}");
    check!(
        content_type.starts_with("text/event-stream"),
        "content-type {content_type}"
    );
    let transcript = Transcript::from_body(&text);
    Ok((text, transcript))
}

/// Non-stream text: content, usage, `x-aigw-provider`, and the request reached the right path.
async fn text(ctx: &Ctx) -> CaseResult {
    let (status, headers, body) = status_and_json(ctx.gateway.chat(&ask("ok")).await).await;
    check!(status == 200, "status {status}: {body}");
    check!(
        body["choices"][0]["message"]["content"] == REPLY,
        "content: {body}"
    );
    check!(
        body["choices"][0]["finish_reason"] == "stop",
        "finish_reason: {body}"
    );
    check_usage(&body["usage"], REPLY)?;
    check!(
        header(&headers, "x-aigw-provider") == "p",
        "x-aigw-provider: {headers:?}"
    );
    let requests = ctx.mock.chat_requests();
    let last = requests.last().ok_or("the mock saw no chat request")?;
    check!(
        last.path == format!("{}/chat/completions", ctx.flavor.base_path()),
        "path {}",
        last.path
    );
    check!(
        last.model() == Some("ok"),
        "upstream model {:?}",
        last.model()
    );
    Ok(())
}

/// Stream with `include_usage`: the content, exactly one usage chunk, right before `[DONE]`.
async fn stream_usage(ctx: &Ctx) -> CaseResult {
    let (text, transcript) = stream_transcript(ctx, &ask_streaming("ok")).await?;
    check!(transcript.content == REPLY, "content: {text}");
    check!(
        transcript.finish_reason.as_deref() == Some("stop"),
        "finish_reason: {text}"
    );
    check!(transcript.errors.is_empty(), "errors: {text}");
    check!(transcript.ends_with_done(), "no final [DONE]: {text}");
    check!(
        transcript.usage_chunks.len() == 1,
        "{} usage chunks: {text}",
        transcript.usage_chunks.len()
    );
    let events = &transcript.events;
    let before_done = events
        .len()
        .checked_sub(2)
        .and_then(|i| events[i].json())
        .ok_or_else(|| format!("no chunk before [DONE]: {text}"))?;
    check!(
        before_done["choices"] == json!([]) && before_done["usage"].is_object(),
        "the chunk before [DONE] is not the usage chunk: {before_done}"
    );
    check_usage(&before_done["usage"], REPLY)
}

/// A tool call without streaming, then the tool's answer sent back.
async fn tool_call(ctx: &Ctx) -> CaseResult {
    let mut messages = vec![json!({"role": "user", "content": "weather in Paris?"})];
    let (status, _, body) = status_and_json(
        ctx.gateway
            .chat(&json!({"model": "p/tool-call", "messages": messages, "tools": weather_tools()}))
            .await,
    )
    .await;
    check!(status == 200, "status {status}: {body}");
    check!(
        body["choices"][0]["finish_reason"] == "tool_calls",
        "finish_reason: {body}"
    );
    let message = body["choices"][0]["message"].clone();
    let call = &message["tool_calls"][0];
    check!(
        call["function"]["name"] == "get_weather",
        "tool call: {body}"
    );
    let arguments: Value = call["function"]["arguments"]
        .as_str()
        .and_then(|a| serde_json::from_str(a).ok())
        .ok_or_else(|| format!("arguments are not a JSON string: {body}"))?;
    check!(
        arguments == json!({"city": "Paris"}),
        "arguments {arguments}"
    );
    let id = call["id"].as_str().unwrap_or_default().to_owned();
    check!(!id.is_empty(), "no call id: {body}");

    messages.push(message);
    messages.push(json!({"role": "tool", "tool_call_id": id, "content": "18C, sunny"}));
    let (status, _, body) = status_and_json(
        ctx.gateway
            .chat(&json!({"model": "p/tool-call", "messages": messages, "tools": weather_tools()}))
            .await,
    )
    .await;
    check!(status == 200, "round trip: status {status}: {body}");
    check!(
        body["choices"][0]["message"]["content"] == "tool said: 18C, sunny",
        "round trip: {body}"
    );
    let forwarded = ctx.mock.chat_requests().last().unwrap().body.clone();
    check!(
        forwarded["messages"][2]["tool_call_id"] == id.as_str(),
        "the tool result lost its call id: {forwarded}"
    );
    Ok(())
}

/// A streamed tool call: the arguments reassemble from their fragments.
async fn tool_call_stream(ctx: &Ctx) -> CaseResult {
    let (text, transcript) = stream_transcript(
        ctx,
        &json!({"model": "p/tool-call", "stream": true, "tools": weather_tools(),
                "messages": [{"role": "user", "content": "weather in Paris?"}]}),
    )
    .await?;
    check!(transcript.ends_with_done(), "no final [DONE]: {text}");
    check!(
        transcript.finish_reason.as_deref() == Some("tool_calls"),
        "finish_reason: {text}"
    );
    check!(
        transcript.tool_calls.len() == 1,
        "{} tool calls: {text}",
        transcript.tool_calls.len()
    );
    let (id, name, arguments) = &transcript.tool_calls[0];
    check!(!id.is_empty(), "no call id: {text}");
    check!(name == "get_weather", "name {name}: {text}");
    let arguments: Value = serde_json::from_str(arguments)
        .map_err(|e| format!("arguments {arguments:?} are not JSON ({e}): {text}"))?;
    check!(
        arguments == json!({"city": "Paris"}),
        "arguments {arguments}"
    );
    Ok(())
}

/// 429 with a `retry-after` in seconds, from whatever form the provider says it in.
async fn rate_limit(ctx: &Ctx) -> CaseResult {
    let (status, headers, body) = status_and_json(ctx.gateway.chat(&ask("rate-limit")).await).await;
    check!(status == 429, "status {status}: {body}");
    error_message(&body);
    check!(
        body["error"]["code"] == "rate_limited",
        "error code: {body}"
    );
    let retry_after = header(&headers, "retry-after");
    let expected = mock::RETRY_AFTER_SECONDS.to_string();
    // OpenRouter's wait is an epoch in ms, 7 s from the mock's clock: a slow run may see 6.
    let ok = retry_after == expected || (ctx.flavor == Flavor::OpenRouter && retry_after == "6");
    check!(ok, "retry-after {retry_after:?}, expected {expected}");
    Ok(())
}

/// 500 and 503 upstream reach the client as 500 and 503.
async fn server_errors(ctx: &Ctx) -> CaseResult {
    for (model, expected, reason) in [
        ("error-500", 500, mock::SERVER_ERROR_MESSAGE),
        ("unavailable-503", 503, mock::OVERLOADED_MESSAGE),
    ] {
        let (status, _, body) = status_and_json(ctx.gateway.chat(&ask(model)).await).await;
        check!(status == expected, "{model}: status {status}: {body}");
        let message = error_message(&body);
        check!(message.contains(reason), "{model}: message {message:?}");
    }
    Ok(())
}

/// A prompt too long: 400 `context_length_exceeded`.
async fn context_length(ctx: &Ctx) -> CaseResult {
    let (status, _, body) = status_and_json(ctx.gateway.chat(&ask("context-length")).await).await;
    check!(status == 400, "status {status}: {body}");
    error_message(&body);
    check!(
        body["error"]["code"] == "context_length_exceeded",
        "error code: {body}"
    );
    Ok(())
}

/// An invalid request: 400 with the upstream's message.
async fn bad_request(ctx: &Ctx) -> CaseResult {
    let (status, _, body) = status_and_json(ctx.gateway.chat(&ask("bad-request")).await).await;
    check!(status == 400, "status {status}: {body}");
    let message = error_message(&body);
    check!(
        message.contains(mock::BAD_REQUEST_MESSAGE),
        "message {message:?}"
    );
    Ok(())
}

/// A stream cut after its first content chunk: what arrived, an error event, no `[DONE]`.
async fn cut_stream(ctx: &Ctx) -> CaseResult {
    let (text, transcript) = stream_transcript(ctx, &ask_streaming("cut-stream-1")).await?;
    check!(transcript.content == "mock", "content: {text}");
    check!(
        transcript.errors.len() == 1,
        "{} error events: {text}",
        transcript.errors.len()
    );
    check!(
        transcript
            .events
            .last()
            .and_then(|e| e.json())
            .is_some_and(|e| e.get("error").is_some()),
        "the stream does not end with the error event: {text}"
    );
    check!(!transcript.has_done(), "[DONE] after a cut: {text}");
    Ok(())
}

/// `[p/rate-limit, p/ok]`: served by the second attempt.
async fn failover(ctx: &Ctx) -> CaseResult {
    let body = json!({"model": "fallback", "messages": [{"role": "user", "content": QUESTION}]});
    let (status, headers, body) = status_and_json(ctx.gateway.chat(&body).await).await;
    check!(status == 200, "status {status}: {body}");
    check!(
        body["choices"][0]["message"]["content"] == REPLY,
        "content: {body}"
    );
    check!(
        header(&headers, "x-aigw-attempts") == "2",
        "attempts: {headers:?}"
    );
    check!(
        header(&headers, "x-aigw-target") == "p/ok",
        "target: {headers:?}"
    );
    Ok(())
}

/// Runs every case for one provider and fails with all the (provider, case) failures at once.
async fn conform(provider: &'static str) {
    let flavor = PROVIDERS
        .iter()
        .find(|(name, _)| *name == provider)
        .map(|(_, flavor)| *flavor)
        .expect("a provider of the table");
    let mock = MockUpstream::start(flavor).await.with_api_key(KEY);
    let config = format!(
        "{}\n{}[models.fallback]\ntargets = [\"p/rate-limit\", \"p/ok\"]\n",
        plugins_section(),
        provider_section("p", provider, &mock, &format!("api_key = \"{KEY}\"\n")),
    );
    let gateway = Gateway::start(&config).await;
    let ctx = Ctx {
        provider,
        flavor,
        mock,
        gateway,
    };

    let mut failures = Vec::new();
    for (case, run) in CASES {
        let gap = KNOWN_GAPS
            .iter()
            .find(|(p, c, _)| *p == ctx.provider && c == case);
        match (run(&ctx).await, gap) {
            (Ok(()), None) | (Err(_), Some(_)) => {}
            (Err(reason), None) => failures.push(format!("{provider}/{case}: {reason}")),
            (Ok(()), Some((_, _, why))) => failures.push(format!(
                "{provider}/{case}: listed as a known gap ({why}) but passes now: remove it \
                 from KNOWN_GAPS"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\n--- gateway stderr ---\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n"),
        ctx.gateway.stderr()
    );
}

macro_rules! providers {
    ($($test:ident => $provider:literal),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                conform($provider).await;
            }
        )+

        #[test]
        fn every_row_of_the_table_has_a_test() {
            let tested = [$($provider),+];
            for (provider, _) in PROVIDERS {
                assert!(tested.contains(provider), "{provider} has no test");
            }
        }
    };
}

providers! {
    groq => "groq",
    openai_compatible => "openai-compatible",
    cerebras => "cerebras",
    openrouter => "openrouter",
    novita => "novita",
    huggingface => "huggingface",
}
