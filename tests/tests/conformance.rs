//! The provider conformance suite: the same cases, through the real `aigw` binary over HTTP, for
//! every provider plugin in [`PROVIDERS`], each in front of a mock speaking that provider's wire
//! format (`aigw_tests::mock::Flavor`, `docs/wire-formats.md`).
//!
//! One test per provider starts one mock (requiring the key `k`) and one gateway with three
//! providers on it — `p` (the right key), `bad` (a wrong key), `nokey` (no key) — then runs every
//! case of [`CASES`] against it, and finally the official `openai` Python SDK's view of the same
//! gateway (`tests/python/conformance.py`, case `python-sdk`). A case returns `Err(reason)`
//! instead of panicking, so one run reports every failing `provider/case` at once.
//!
//! What a provider cannot do is part of its row, not a skip: a provider without function
//! calling (`tools: false`) must *refuse* tools with a 400 before any upstream call; cases that
//! do not exist for a provider (a job queue for the others, a mid-stream error frame for
//! Replicate, whose plugin replays finished predictions) are listed with the reason in
//! `not_applicable` and printed by the test.
//!
//! Plugins written in other languages are rows too, loaded from the component their `file`
//! names (`dist/examples/<plugin>-<lang>.wasm`, built by `cargo xtask examples`): the Python
//! `openai-compatible-python` passes every case its Rust twin passes.
//!
//! Known gaps ([`KNOWN_GAPS`]) are (provider, case) pairs a plugin fails today because of a bug
//! in the plugin. They are still run, and must still fail: when one starts passing, the test
//! fails and asks for the row to be removed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use aigw_tests::gateway::{Gateway, read_stream, status_and_json};
use aigw_tests::mock::{self, Flavor, MockUpstream};
use aigw_tests::paths;
use aigw_tests::setup::{error_message, header, plugins_section, provider_section};
use aigw_tests::sse::Transcript;
use serde_json::{Value, json};

/// One provider plugin under test.
struct Provider {
    plugin: &'static str,
    /// Where the component is, under `dist/`, when it is not `plugins/<plugin>.wasm`: the
    /// examples in other languages (`examples/<plugin>.wasm`, built by `cargo xtask examples`).
    file: Option<&'static str>,
    flavor: Flavor,
    /// Whether the provider has function calling; without it the plugin must refuse `tools`.
    tools: bool,
    /// Cases that do not exist for this provider, with the reason.
    not_applicable: &'static [(&'static str, &'static str)],
}

/// No job queue: the `long-job` case is Replicate's.
const NO_JOBS: (&str, &str) = ("long-job", "answers in one round trip; no prediction jobs");

/// Every provider plugin the suite covers.
const PROVIDERS: &[Provider] = &[
    Provider {
        plugin: "groq",
        flavor: Flavor::Groq,
        file: None,
        tools: true,
        not_applicable: &[NO_JOBS],
    },
    Provider {
        plugin: "openai-compatible",
        flavor: Flavor::OpenAi,
        file: None,
        tools: true,
        not_applicable: &[NO_JOBS],
    },
    Provider {
        plugin: "cerebras",
        flavor: Flavor::Cerebras,
        file: None,
        tools: true,
        not_applicable: &[NO_JOBS],
    },
    Provider {
        plugin: "openrouter",
        flavor: Flavor::OpenRouter,
        file: None,
        tools: true,
        not_applicable: &[NO_JOBS],
    },
    Provider {
        plugin: "novita",
        flavor: Flavor::Novita,
        file: None,
        tools: true,
        not_applicable: &[NO_JOBS],
    },
    Provider {
        plugin: "huggingface",
        flavor: Flavor::HuggingFace,
        file: None,
        tools: true,
        not_applicable: &[NO_JOBS],
    },
    Provider {
        plugin: "gemini",
        flavor: Flavor::Gemini,
        file: None,
        tools: true,
        not_applicable: &[NO_JOBS],
    },
    // The Python twin of `openai-compatible` (plugins/examples/python/openai-compatible, on
    // sdk/python): it must pass every case its Rust twin passes.
    Provider {
        plugin: "openai-compatible-python",
        file: Some("examples/openai-compatible-python.wasm"),
        flavor: Flavor::OpenAi,
        tools: true,
        not_applicable: &[NO_JOBS],
    },
    Provider {
        plugin: "replicate",
        file: None,
        flavor: Flavor::Replicate,
        tools: false,
        not_applicable: &[],
    },
    // The JavaScript twin of `openai-compatible` (plugins/examples/js/openai-compatible, on
    // sdk/js): it must pass every case its Rust twin passes.
    Provider {
        plugin: "openai-compatible-js",
        file: Some("examples/openai-compatible-js.wasm"),
        flavor: Flavor::OpenAi,
        tools: true,
        not_applicable: &[NO_JOBS],
    },
];

/// (plugin, case) pairs that fail today because of a plugin bug, with the reason. They must
/// still fail (see the module doc).
const KNOWN_GAPS: &[(&str, &str, &str)] = &[];

const KEY: &str = "k";

/// The question every text case asks, and the mock's answer to it.
const QUESTION: &str = "hello there";
const REPLY: &str = "mock reply to: hello there";

struct Ctx {
    provider: &'static Provider,
    flavor: Flavor,
    mock: MockUpstream,
    gateway: Gateway,
}

impl Ctx {
    /// The upstream model name that picks the mock's `behaviour`: Replicate models are
    /// `owner/name`.
    fn model(&self, behaviour: &str) -> String {
        match self.flavor {
            Flavor::Replicate => format!("mock/{behaviour}"),
            _ => behaviour.to_owned(),
        }
    }

    /// `<provider>/<model>` for the gateway.
    fn target(&self, provider: &str, behaviour: &str) -> String {
        format!("{provider}/{}", self.model(behaviour))
    }

    fn ask(&self, behaviour: &str) -> Value {
        json!({"model": self.target("p", behaviour),
               "messages": [{"role": "user", "content": QUESTION}]})
    }

    fn ask_streaming(&self, behaviour: &str) -> Value {
        let mut body = self.ask(behaviour);
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        body
    }
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
    ("error-in-200", |c| Box::pin(error_in_200(c))),
    ("context-length", |c| Box::pin(context_length(c))),
    ("bad-request", |c| Box::pin(bad_request(c))),
    ("content-filter", |c| Box::pin(content_filter(c))),
    ("unauthorized", |c| Box::pin(unauthorized(c))),
    ("no-credit-forbidden", |c| Box::pin(no_credit_forbidden(c))),
    ("cut-stream", |c| Box::pin(cut_stream(c))),
    ("stream-error", |c| Box::pin(stream_error(c))),
    ("long-job", |c| Box::pin(long_job(c))),
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

/// The gateway's error answer: `(status, error.code, error.message)`, after checking the
/// envelope has all four OpenAI keys.
async fn error_answer(ctx: &Ctx, body: &Value) -> Result<(u16, String, String), String> {
    let (status, _, answer) = status_and_json(ctx.gateway.chat(body).await).await;
    let envelope = answer["error"].as_object().ok_or(format!(
        "status {status} without an error envelope: {answer}"
    ))?;
    for key in ["message", "type", "param", "code"] {
        check!(envelope.contains_key(key), "no `{key}` in {answer}");
    }
    Ok((
        status,
        answer["error"]["code"].as_str().unwrap_or("").to_owned(),
        answer["error"]["message"].as_str().unwrap_or("").to_owned(),
    ))
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
    let (status, headers, body) = status_and_json(ctx.gateway.chat(&ctx.ask("ok")).await).await;
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
    let model = ctx.model("ok");
    let requests = ctx.mock.chat_requests();
    let last = requests.last().ok_or("the mock saw no chat request")?;
    check!(
        last.path == ctx.flavor.chat_path(&model, false),
        "path {}",
        last.path
    );
    check!(
        last.model() == Some(model.as_str()),
        "upstream model {:?}",
        last.model()
    );
    Ok(())
}

/// Stream with `include_usage`: the content, exactly one usage chunk, right before `[DONE]`.
async fn stream_usage(ctx: &Ctx) -> CaseResult {
    let (text, transcript) = stream_transcript(ctx, &ctx.ask_streaming("ok")).await?;
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

/// A provider without function calling refuses `tools` itself, before any upstream call.
async fn tools_refused(ctx: &Ctx, stream: bool) -> CaseResult {
    let before = ctx.mock.chat_requests().len();
    let body = json!({"model": ctx.target("p", "tool-call"), "stream": stream,
                      "tools": weather_tools(),
                      "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let (status, code, message) = error_answer(ctx, &body).await?;
    check!(status == 400, "status {status}: {message}");
    check!(code == "invalid_request", "code {code}: {message}");
    check!(message.contains("tools"), "message {message:?}");
    check!(
        ctx.mock.chat_requests().len() == before,
        "a refused request reached the upstream"
    );
    Ok(())
}

/// Whether the upstream request carried the tool result for call `id` in the provider's form.
fn forwarded_tool_result(flavor: Flavor, forwarded: &Value, id: &str) -> CaseResult {
    match flavor {
        // Gemini pairs results with calls by function name, in a `user` turn.
        Flavor::Gemini => {
            let part = &forwarded["contents"][2]["parts"][0]["functionResponse"];
            check!(
                forwarded["contents"][2]["role"] == "user" && part["name"] == "get_weather",
                "the tool result is not a functionResponse: {forwarded}"
            );
            check!(
                part["response"] == json!({"result": "18C, sunny"}),
                "the tool result's content was not wrapped: {forwarded}"
            );
        }
        _ => check!(
            forwarded["messages"][2]["tool_call_id"] == id,
            "the tool result lost its call id: {forwarded}"
        ),
    }
    Ok(())
}

/// A tool call without streaming, then the tool's answer sent back.
async fn tool_call(ctx: &Ctx) -> CaseResult {
    if !ctx.provider.tools {
        return tools_refused(ctx, false).await;
    }
    let model = ctx.target("p", "tool-call");
    let mut messages = vec![json!({"role": "user", "content": "weather in Paris?"})];
    let (status, _, body) = status_and_json(
        ctx.gateway
            .chat(&json!({"model": model, "messages": messages, "tools": weather_tools()}))
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
            .chat(&json!({"model": model, "messages": messages, "tools": weather_tools()}))
            .await,
    )
    .await;
    check!(status == 200, "round trip: status {status}: {body}");
    check!(
        body["choices"][0]["message"]["content"] == "tool said: 18C, sunny",
        "round trip: {body}"
    );
    let forwarded = ctx.mock.chat_requests().last().unwrap().body.clone();
    forwarded_tool_result(ctx.flavor, &forwarded, &id)
}

/// A streamed tool call: the arguments reassemble from their fragments.
async fn tool_call_stream(ctx: &Ctx) -> CaseResult {
    if !ctx.provider.tools {
        return tools_refused(ctx, true).await;
    }
    let (text, transcript) = stream_transcript(
        ctx,
        &json!({"model": ctx.target("p", "tool-call"), "stream": true, "tools": weather_tools(),
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
    let (status, headers, body) =
        status_and_json(ctx.gateway.chat(&ctx.ask("rate-limit")).await).await;
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

/// 500 and 503 upstream reach the client as 500 and 503, with the upstream's reason.
async fn server_errors(ctx: &Ctx) -> CaseResult {
    for (model, expected, reason) in [
        ("error-500", 500, ctx.flavor.server_error_message()),
        ("unavailable-503", 503, ctx.flavor.overloaded_message()),
    ] {
        let (status, _, body) = status_and_json(ctx.gateway.chat(&ctx.ask(model)).await).await;
        check!(status == expected, "{model}: status {status}: {body}");
        let message = error_message(&body);
        check!(message.contains(reason), "{model}: message {message:?}");
    }
    Ok(())
}

/// A 200 whose body is an error object (`error-200`: the flavor's server error; Gemini and
/// Replicate say it with a 500) is an error, never a success: classified by its content, here
/// a server error, so it is retried once like a 5xx and then answered as an upstream error.
async fn error_in_200(ctx: &Ctx) -> CaseResult {
    let before = ctx.mock.chat_requests().len();
    let (status, _, body) = status_and_json(ctx.gateway.chat(&ctx.ask("error-200")).await).await;
    check!(status >= 500, "status {status}: {body}");
    error_message(&body);
    let seen = ctx.mock.chat_requests().len() - before;
    check!(seen == 2, "{seen} upstream requests, not one retry: {body}");
    Ok(())
}

/// A prompt too long: 400 `context_length_exceeded`.
async fn context_length(ctx: &Ctx) -> CaseResult {
    let (status, code, message) = error_answer(ctx, &ctx.ask("context-length")).await?;
    check!(status == 400, "status {status}: {message}");
    check!(code == "context_length_exceeded", "code {code}: {message}");
    Ok(())
}

/// An invalid request: 400 with the upstream's message.
async fn bad_request(ctx: &Ctx) -> CaseResult {
    let (status, code, message) = error_answer(ctx, &ctx.ask("bad-request")).await?;
    check!(status == 400, "status {status}: {message}");
    check!(code == "invalid_request", "code {code}: {message}");
    check!(
        message.contains(mock::BAD_REQUEST_MESSAGE),
        "message {message:?}"
    );
    Ok(())
}

/// The provider's content filter: a refusal becomes 400 `content_filter` (stream or not); a
/// filter that ends the answer reaches the client as `finish_reason: "content_filter"`.
async fn content_filter(ctx: &Ctx) -> CaseResult {
    if ctx.flavor.content_filter_refuses() {
        for body in [
            ctx.ask("content-filter"),
            ctx.ask_streaming("content-filter"),
        ] {
            let (status, code, message) = error_answer(ctx, &body).await?;
            check!(status == 400, "status {status}: {message}");
            check!(code == "content_filter", "code {code}: {message}");
        }
        return Ok(());
    }
    let (status, _, body) =
        status_and_json(ctx.gateway.chat(&ctx.ask("content-filter")).await).await;
    check!(status == 200, "status {status}: {body}");
    check!(
        body["choices"][0]["finish_reason"] == "content_filter"
            && body["choices"][0]["message"]["content"] == mock::FILTERED_TEXT,
        "not a filtered answer: {body}"
    );
    let (text, transcript) = stream_transcript(ctx, &ctx.ask_streaming("content-filter")).await?;
    check!(
        transcript.finish_reason.as_deref() == Some("content_filter")
            && transcript.content == mock::FILTERED_TEXT,
        "not a filtered stream: {text}"
    );
    check!(transcript.ends_with_done(), "no final [DONE]: {text}");
    Ok(())
}

/// A wrong key and a missing key are the gateway's problem, not the client's: 502
/// `unauthorized`, whatever status the provider used (401, 403, Gemini's 400).
async fn unauthorized(ctx: &Ctx) -> CaseResult {
    for provider in ["bad", "nokey"] {
        let body = json!({"model": ctx.target(provider, "ok"),
                          "messages": [{"role": "user", "content": QUESTION}]});
        let (status, code, message) = error_answer(ctx, &body).await?;
        check!(status == 502, "{provider}: status {status}: {message}");
        check!(code == "unauthorized", "{provider}: code {code}: {message}");
        check!(
            !message.contains(KEY_IN_CONFIG),
            "{provider}: the message shows a key: {message}"
        );
    }
    // The OpenAI mock echoes the wrong key it was sent, as OpenAI does: neither the target's
    // last error nor the log may repeat it.
    let targets = ctx.gateway.get("/admin/targets").await.text().await;
    let targets = targets.map_err(|e| format!("/admin/targets: {e}"))?;
    check!(
        !targets.contains(KEY_IN_CONFIG),
        "/admin/targets shows a key: {targets}"
    );
    check!(
        !ctx.gateway.stderr().contains(KEY_IN_CONFIG),
        "the log shows a key"
    );
    Ok(())
}

/// No credit left, or a key without access to the model: 502 `unauthorized` (the operator must
/// act; another target may serve), never a 429 the client would wait out.
/// An account without credit and a key without access are the gateway's problems: 502, never
/// the provider's 402/403/429. An empty account is `no_credit` (Groq has no prepaid credit: its
/// mock answers a restricted organisation, a rejected key), a key without access `unauthorized`.
async fn no_credit_forbidden(ctx: &Ctx) -> CaseResult {
    let no_credit = if ctx.flavor == Flavor::Groq {
        "unauthorized"
    } else {
        "no_credit"
    };
    for (model, expected) in [("no-credit", no_credit), ("forbidden", "unauthorized")] {
        let (status, code, message) = error_answer(ctx, &ctx.ask(model)).await?;
        check!(status == 502, "{model}: status {status}: {message}");
        check!(code == expected, "{model}: code {code}: {message}");
    }
    Ok(())
}

/// A stream cut after its first content chunk: what arrived, an error event, no `[DONE]`
/// (Replicate included: its stream comes from `urls.stream`, cut there).
async fn cut_stream(ctx: &Ctx) -> CaseResult {
    let (text, transcript) = stream_transcript(ctx, &ctx.ask_streaming("cut-stream-1")).await?;
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

/// The provider's own mid-stream error frame: the text before it, then one error event with
/// the provider's reason, no `[DONE]`.
async fn stream_error(ctx: &Ctx) -> CaseResult {
    let (text, transcript) = stream_transcript(ctx, &ctx.ask_streaming("stream-error")).await?;
    check!(!transcript.content.is_empty(), "no content first: {text}");
    check!(
        transcript.errors.len() == 1,
        "{} error events: {text}",
        transcript.errors.len()
    );
    let last = transcript.events.last().and_then(|e| e.json());
    let message = last
        .and_then(|e| e["error"]["message"].as_str())
        .ok_or_else(|| format!("the stream does not end with the error event: {text}"))?;
    check!(
        message.contains(ctx.flavor.server_error_message()),
        "the error event lost the provider's reason: {text}"
    );
    check!(!transcript.has_done(), "[DONE] after an error: {text}");
    Ok(())
}

/// A job still running when the create call returns: the gateway polls it to the end, and the
/// client sees one answer.
async fn long_job(ctx: &Ctx) -> CaseResult {
    let before = ctx.mock.requests().len();
    let (status, _, body) = status_and_json(ctx.gateway.chat(&ctx.ask("processing-3")).await).await;
    check!(status == 200, "status {status}: {body}");
    check!(
        body["choices"][0]["message"]["content"] == REPLY,
        "content: {body}"
    );
    let seen: Vec<String> = ctx.mock.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    check!(
        seen.len() == 4 && seen[1..].iter().all(|r| r.starts_with("GET ")),
        "expected one create and three polls, saw {seen:?}"
    );
    Ok(())
}

/// `[p/flaky-429-1000, p/ok]` (a rate-limited target no other case has cooled down yet):
/// served by the second attempt.
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
        header(&headers, "x-aigw-target") == ctx.target("p", "ok"),
        "target: {headers:?}"
    );
    Ok(())
}

/// The `openai` Python SDK's view of the same gateway: `tests/python/conformance.py`.
async fn python_sdk(ctx: &Ctx) -> CaseResult {
    let python = paths::python();
    check!(
        python.exists(),
        "no Python at {}: `cargo xtask test` installs it into target/py (or set AIGW_PYTHON)",
        python.display()
    );
    let script = paths::workspace_root().join("tests/python/conformance.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .env("AIGW_BASE_URL", ctx.gateway.url("/v1"))
        .env("AIGW_TARGET", ctx.target("p", "MODEL"))
        .env("AIGW_TOOLS", if ctx.provider.tools { "1" } else { "0" })
        .env(
            "AIGW_FILTER",
            if ctx.flavor.content_filter_refuses() {
                "refuses"
            } else {
                "finishes"
            },
        )
        .env("AIGW_CUT", "mid-stream")
        .env("AIGW_SERVER_ERROR", ctx.flavor.server_error_message())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .map_err(|_| "the SDK script did not finish within 120 s".to_owned())?
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    check!(
        output.status.success(),
        "the SDK script failed ({})\n{stdout}\n{stderr}",
        output.status
    );
    check!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count() >= PYTHON_CHECKS,
        "fewer than {PYTHON_CHECKS} checks ran:\n{stdout}"
    );
    Ok(())
}

/// How many `ok …` lines `conformance.py` prints when every check runs.
const PYTHON_CHECKS: usize = 9;

/// The key configured for `p` and `bad`; an error message must never show it.
const KEY_IN_CONFIG: &str = "wrong-key-SECRET-7f3a";

/// Runs every case for one provider and fails with all the (provider, case) failures at once.
async fn conform(plugin: &'static str) {
    let provider = PROVIDERS
        .iter()
        .find(|p| p.plugin == plugin)
        .expect("a provider of the table");
    let flavor = provider.flavor;
    let plugin_ref = match provider.file {
        Some(file) => paths::built(file).to_string_lossy().into_owned(),
        None => plugin.to_owned(),
    };
    let component = plugin_ref.as_str();
    let mock = MockUpstream::start(flavor).await.with_api_key(KEY);
    let fallback = match flavor {
        Flavor::Replicate => "[\"p/mock/flaky-429-1000\", \"p/mock/ok\"]",
        _ => "[\"p/flaky-429-1000\", \"p/ok\"]",
    };
    let config = format!(
        "{}\n{}{}{}[models.fallback]\ntargets = {fallback}\n",
        plugins_section(),
        provider_section("p", component, &mock, &format!("api_key = \"{KEY}\"\n")),
        provider_section(
            "bad",
            component,
            &mock,
            &format!("api_key = \"{KEY_IN_CONFIG}\"\n")
        ),
        provider_section("nokey", component, &mock, ""),
    );
    let gateway = match provider.file {
        Some(_) => {
            Gateway::builder()
                .compiles_large_plugins()
                .start(&config)
                .await
        }
        None => Gateway::start(&config).await,
    };
    let ctx = Ctx {
        provider,
        flavor,
        mock,
        gateway,
    };

    let mut failures = Vec::new();
    let cases = CASES
        .iter()
        .map(|(name, case)| (*name, Some(*case)))
        .chain([("python-sdk", None)]);
    for (case, run) in cases {
        if let Some((_, why)) = provider.not_applicable.iter().find(|(c, _)| *c == case) {
            println!("{plugin}/{case}: not applicable: {why}");
            continue;
        }
        let result = match run {
            Some(run) => run(&ctx).await,
            None => python_sdk(&ctx).await,
        };
        let gap = KNOWN_GAPS
            .iter()
            .find(|(p, c, _)| *p == plugin && *c == case);
        match (result, gap) {
            (Ok(()), None) => println!("{plugin}/{case}: ok"),
            (Err(_), Some(_)) => println!("{plugin}/{case}: known gap, still failing"),
            (Err(reason), None) => failures.push(format!("{plugin}/{case}: {reason}")),
            (Ok(()), Some((_, _, why))) => failures.push(format!(
                "{plugin}/{case}: listed as a known gap ({why}) but passes now: remove it \
                 from KNOWN_GAPS"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\n--- gateway stderr ---\n{}",
        failures.len(),
        CASES.len() + 1,
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
            for provider in PROVIDERS {
                assert!(tested.contains(&provider.plugin), "{} has no test", provider.plugin);
            }
        }
    };
}

#[test]
fn not_applicable_names_real_cases() {
    for provider in PROVIDERS {
        for (case, _) in provider.not_applicable {
            assert!(
                CASES.iter().any(|(name, _)| name == case),
                "{}: `{case}` is not a case",
                provider.plugin
            );
        }
    }
}

providers! {
    groq => "groq",
    openai_compatible => "openai-compatible",
    cerebras => "cerebras",
    openrouter => "openrouter",
    novita => "novita",
    huggingface => "huggingface",
    gemini => "gemini",
    replicate => "replicate",
    openai_compatible_python => "openai-compatible-python",
    openai_compatible_js => "openai-compatible-js",
}
