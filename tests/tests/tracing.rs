//! OpenTelemetry traces through the real binary, received by the OTLP receiver
//! (`aigw_tests::otlp`): a client's `traceparent` makes the request span its child; a failover
//! gives two attempt spans under it with the GenAI attributes and plugin-call spans under them;
//! each upstream request carries a `traceparent` whose parent is its attempt's span; a tool call
//! and a conversation's memory operations have their spans; the standard `OTEL_*` variables turn
//! traces on and the last spans are flushed at shutdown. With traces off the client's context
//! goes upstream unchanged and none is made up. The log line carries the trace id, the key's
//! name and the conversation; the log level changes at run time through `/admin/logging`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, GatewayBuilder, status_and_json};
use aigw_tests::otlp::{
    OtlpReceiver, ReceivedSpan, SPAN_KIND_CLIENT, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER,
};
use aigw_tests::paths;
use aigw_tests::setup::{Upstreams, toml_str};
use serde_json::{Value, json};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const ADMIN_KEY: &str = "admin-e2e-tracing-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(20);

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{CLIENT_SPAN}-01")
}

fn tracing_section(receiver: &OtlpReceiver) -> String {
    format!(
        "[tracing]\notlp_endpoint = {}\n",
        toml_str(&receiver.endpoint())
    )
}

async fn chat_traced(gateway: &Gateway, model: &str, traceparent: Option<&str>) -> u16 {
    let mut request = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

fn named<'s>(spans: &'s [ReceivedSpan], name: &str) -> Vec<&'s ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The `traceparent` an upstream request carried, split into trace id and parent id.
fn upstream_parent(request: &aigw_tests::mock::RecordedRequest) -> (String, String) {
    let value = request
        .header("traceparent")
        .unwrap_or_else(|| panic!("no traceparent upstream: {:?}", request.headers));
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test]
async fn a_failover_is_one_trace_under_the_clients_span_and_each_upstream_gets_its_attempts_parent()
{
    let receiver = OtlpReceiver::start().await;
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "[models.flaky]\ntargets = [\"groq/unavailable-503\", \"local/ok\"]\n\n{}",
            tracing_section(&receiver)
        ))
        .await;
    assert_eq!(
        chat_traced(&gateway, "flaky", Some(&traceparent())).await,
        200
    );

    let spans = receiver
        .wait_for(WAIT, |spans| {
            !named(spans, "chat flaky").is_empty()
                && spans.iter().filter(|s| s.kind == SPAN_KIND_CLIENT).count() >= 2
        })
        .await;
    let request = *named(&spans, "chat flaky")
        .first()
        .unwrap_or_else(|| panic!("no request span in {spans:#?}"));
    // The request span is the client's span's child, in the client's trace.
    assert_eq!(request.trace_id, TRACE_ID);
    assert_eq!(request.parent_span_id, CLIENT_SPAN);
    assert_eq!(request.kind, SPAN_KIND_SERVER);
    assert_eq!(request.service_name, "aigw");
    assert_eq!(request.text("gen_ai.operation.name"), Some("chat"));
    assert_eq!(request.text("gen_ai.request.model"), Some("flaky"));
    assert_eq!(request.int("http.response.status_code"), Some(200));
    assert_eq!(request.text("gen_ai.provider.name"), Some("local"));
    assert!(request.text("gen_ai.response.id").is_some(), "{request:#?}");
    assert!(
        request.text("gen_ai.response.model").is_some(),
        "{request:#?}"
    );
    assert!(request.int("gen_ai.usage.input_tokens").unwrap() > 0);
    assert!(request.int("gen_ai.usage.output_tokens").unwrap() > 0);

    // Its attempts: the 503 on groq, then local serving; both its children, both CLIENT.
    let attempts: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.kind == SPAN_KIND_CLIENT && s.trace_id == TRACE_ID)
        .collect();
    assert!(attempts.len() >= 2, "{attempts:#?}");
    for attempt in &attempts {
        assert_eq!(attempt.parent_span_id, request.span_id, "{attempt:#?}");
        assert_eq!(attempt.text("gen_ai.operation.name"), Some("chat"));
        assert_eq!(attempt.text("server.address"), Some("127.0.0.1"));
    }
    let failed: Vec<&&ReceivedSpan> = attempts
        .iter()
        .filter(|a| a.text("gen_ai.provider.name") == Some("groq"))
        .collect();
    assert!(!failed.is_empty(), "{attempts:#?}");
    for attempt in &failed {
        assert_eq!(attempt.text("aigw.attempt.outcome"), Some("failed"));
        assert_eq!(attempt.text("aigw.failure.class"), Some("unavailable"));
        assert_eq!(attempt.text("error.type"), Some("unavailable"));
        assert_eq!(attempt.status, 2, "an error status: {attempt:#?}");
        assert_eq!(
            attempt.int("server.port"),
            Some(i64::from(upstreams.groq.addr().port()))
        );
    }
    assert_eq!(failed[0].text("aigw.attempt.kind"), Some("first"));
    let served = attempts
        .iter()
        .find(|a| a.text("gen_ai.provider.name") == Some("local"))
        .unwrap_or_else(|| panic!("{attempts:#?}"));
    assert_eq!(served.text("aigw.attempt.outcome"), Some("served"));
    assert_eq!(served.text("aigw.target"), Some("local/ok"));
    assert_eq!(served.text("aigw.attempt.kind"), Some("first"));
    assert_eq!(
        served.int("server.port"),
        Some(i64::from(upstreams.local.addr().port()))
    );

    // Plugin calls under the attempts: each attempt encoded and decoded.
    for attempt in [failed[0], served] {
        let calls: Vec<&str> = spans
            .iter()
            .filter(|s| s.parent_span_id == attempt.span_id)
            .map(|s| s.name.as_str())
            .collect();
        assert!(calls.contains(&"plugin encode"), "{calls:?}");
        assert!(calls.contains(&"plugin decode"), "{calls:?}");
    }

    // Every upstream request carried the trace, its parent the attempt that sent it.
    let groq_requests = upstreams.groq.requests();
    assert_eq!(groq_requests.len(), failed.len());
    for (request, attempt) in groq_requests.iter().zip(&failed) {
        let (trace, parent) = upstream_parent(request);
        assert_eq!(trace, TRACE_ID);
        let sent_by = failed.iter().find(|a| a.span_id == parent);
        assert!(
            sent_by.is_some(),
            "{parent} is no groq attempt: {attempt:#?}"
        );
    }
    let local_requests = upstreams.local.requests();
    assert_eq!(local_requests.len(), 1);
    assert_eq!(
        upstream_parent(&local_requests[0]),
        (TRACE_ID.to_owned(), served.span_id.clone())
    );
}

#[tokio::test]
async fn a_streamed_request_without_a_client_context_starts_its_own_trace() {
    let receiver = OtlpReceiver::start().await;
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "[models.fast]\ntargets = [\"local/ok\"]\n\n{}",
            tracing_section(&receiver)
        ))
        .await;
    let response = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .json(&json!({"model": "fast", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    let spans = receiver
        .wait_for(WAIT, |spans| {
            named(spans, "chat fast")
                .first()
                .is_some_and(|r| r.int("http.response.status_code").is_some())
                && !named(spans, "plugin feed").is_empty()
        })
        .await;
    let request = named(&spans, "chat fast")[0];
    assert!(request.parent_span_id.is_empty(), "a root: {request:#?}");
    assert_eq!(request.int("http.response.status_code"), Some(200));
    let attempt = spans
        .iter()
        .find(|s| s.kind == SPAN_KIND_CLIENT)
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(attempt.parent_span_id, request.span_id);
    assert_eq!(attempt.trace_id, request.trace_id);
    // The stream's feeds are in the same trace (under the attempt before commitment, under
    // the request after).
    for feed in named(&spans, "plugin feed") {
        assert_eq!(feed.trace_id, request.trace_id);
        assert!(
            feed.parent_span_id == attempt.span_id || feed.parent_span_id == request.span_id,
            "{feed:#?}"
        );
    }
    let (trace, parent) = upstream_parent(&upstreams.local.requests()[0]);
    assert_eq!(
        (trace, parent),
        (request.trace_id.clone(), attempt.span_id.clone())
    );
}

#[tokio::test]
async fn a_conversations_memory_operations_and_its_log_line_are_in_the_trace() {
    let receiver = OtlpReceiver::start().await;
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = upstreams
        .json_logged_gateway(&format!(
            "[models.fast]\ntargets = [\"local/ok\"]\n\n[memory]\npath = {}\n\n{}",
            toml_str(&dir.path().join("aigw.db").to_string_lossy()),
            tracing_section(&receiver)
        ))
        .await;
    let created = gateway
        .client()
        .post(gateway.url("/v1/conversations"))
        .json(&json!({"items": []}))
        .send()
        .await
        .unwrap();
    let (status, _, body) = status_and_json(created).await;
    assert_eq!(status, 200, "{body}");
    let conversation = body["id"].as_str().unwrap().to_owned();
    let response = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .header("traceparent", traceparent())
        .header("x-aigw-conversation", &conversation)
        .json(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let spans = receiver
        .wait_for(WAIT, |spans| {
            !named(spans, "chat fast").is_empty()
                && !named(spans, "memory conversations.append").is_empty()
        })
        .await;
    let request = named(&spans, "chat fast")
        .into_iter()
        .find(|s| s.trace_id == TRACE_ID)
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(
        request.text("gen_ai.conversation.id"),
        Some(conversation.as_str())
    );
    // The history read and the turn written, each one store operation under the request.
    let memory: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id == request.span_id && s.name.starts_with("memory "))
        .collect();
    let names: Vec<&str> = memory.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"memory conversations.append"), "{names:?}");
    assert!(names.len() >= 2, "a read and a write: {names:?}");
    for span in &memory {
        assert_eq!(span.kind, SPAN_KIND_INTERNAL);
        assert!(span.text("aigw.memory.operation").is_some(), "{span:#?}");
    }
    // The creation was its own request: a memory span of its own trace.
    assert!(
        spans
            .iter()
            .any(|s| s.name == "memory conversations.create" && s.trace_id != TRACE_ID),
        "{spans:#?}"
    );

    // The log line names the trace and the conversation.
    let line = gateway
        .wait_for_log(WAIT, |l| l.contains("chat completion"))
        .await
        .unwrap_or_else(|| panic!("{}", gateway.stderr()));
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["trace_id"], TRACE_ID, "{line}");
    assert_eq!(line["conversation"], conversation.as_str(), "{line}");
}

#[tokio::test]
async fn a_tool_call_has_its_span_with_the_plugins_call_under_it() {
    let receiver = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[memory]\npath = {db}\n\n[tools.echo]\nplugin = {plugin}\n\n\
         [[tools.echo.upstream]]\nname = \"primary\"\nendpoints = {{ base = \"http://127.0.0.1:9\" }}\n\n{tracing}",
        db = toml_str(&dir.path().join("aigw.db").to_string_lossy()),
        plugin = toml_str(&paths::test_plugin("tool-echo").to_string_lossy()),
        tracing = tracing_section(&receiver),
    );
    let gateway = GatewayBuilder::default().start(&config).await;
    let response = gateway
        .client()
        .post(gateway.url("/v1/tools/echo/invoke"))
        .json(&json!({"arguments": {"city": "Zürich"}}))
        .send()
        .await
        .unwrap();
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    let spans = receiver
        .wait_for(WAIT, |spans| {
            !named(spans, "execute_tool echo").is_empty()
                && !named(spans, "plugin invoke").is_empty()
        })
        .await;
    let tool = named(&spans, "execute_tool echo")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(tool.kind, SPAN_KIND_INTERNAL);
    assert_eq!(tool.text("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(tool.text("gen_ai.tool.name"), Some("echo"));
    assert_eq!(tool.text("aigw.tool.cache"), Some("off"));
    let invoke = named(&spans, "plugin invoke")[0];
    assert_eq!(invoke.trace_id, tool.trace_id);
    assert_eq!(invoke.parent_span_id, tool.span_id);
    assert_eq!(invoke.text("aigw.plugin.call"), Some("invoke"));
}

#[tokio::test]
async fn the_otel_variables_turn_traces_on_and_the_last_spans_are_flushed_at_shutdown() {
    let receiver = OtlpReceiver::start().await;
    let upstreams = Upstreams::start().await;
    let mut gateway = upstreams
        .gateway_builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "gw-from-env")
        .start(&upstreams.config("[models.fast]\ntargets = [\"local/ok\"]\n"))
        .await;
    assert_eq!(chat_traced(&gateway, "fast", None).await, 200);
    // Stopped at once: the batch's delay has not passed, so the spans come from the flush.
    let exit = gateway.terminate().await;
    assert!(exit.success(), "{exit:?}: {}", gateway.stderr());
    let spans = receiver.spans();
    let request = named(&spans, "chat fast")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("not flushed at shutdown: {spans:#?}"));
    assert_eq!(request.service_name, "gw-from-env");
}

#[tokio::test]
async fn with_traces_off_the_clients_context_goes_upstream_unchanged_and_none_is_made_up() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .log_format("json")
        .start(&upstreams.config("[models.fast]\ntargets = [\"local/ok\"]\n"))
        .await;
    let sent = traceparent();
    assert_eq!(chat_traced(&gateway, "fast", Some(&sent)).await, 200);
    assert_eq!(chat_traced(&gateway, "fast", None).await, 200);
    let requests = upstreams.local.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("traceparent"), Some(sent.as_str()));
    assert_eq!(requests[1].header("traceparent"), None);
    // The log line carries the client's trace id, and none for the request without one.
    let lines = gateway
        .wait_for_log_lines(WAIT, 2, |l| l.contains("chat completion"))
        .await;
    assert_eq!(lines.len(), 2, "{}", gateway.stderr());
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    let second: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(first["trace_id"], TRACE_ID, "{first}");
    assert!(second.get("trace_id").is_none(), "{second}");
}

/// `(status, body)` of an admin call with `bearer`.
async fn logging(
    gateway: &Gateway,
    method: reqwest::Method,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = gateway
        .client()
        .request(method, gateway.url("/admin/logging"));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, _, body) = status_and_json(request.send().await.unwrap()).await;
    (status, body)
}

#[tokio::test]
async fn the_log_level_changes_at_run_time_through_the_admin_api_and_lines_name_the_key() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN_KEY)
        .env_remove("AIGW_LOG")
        .log_format("json")
        .start(&upstreams.config(&format!(
            "[models.fast]\ntargets = [\"local/ok\"]\n\n[memory]\npath = {}\n",
            toml_str(&dir.path().join("aigw.db").to_string_lossy())
        )))
        .await;
    let (status, body) = logging(&gateway, reqwest::Method::GET, Some(ADMIN_KEY), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"level": "info", "filter": "info"}));

    // The admin key only: none is 401, a virtual key 403.
    let (status, _) = logging(&gateway, reqwest::Method::GET, None, None).await;
    assert_eq!(status, 401);
    let (_, secret) = gateway.create_key(&json!({"name": "ci-bot"})).await;
    let (status, _) = logging(&gateway, reqwest::Method::GET, Some(&secret), None).await;
    assert_eq!(status, 403);
    let (status, _) = logging(
        &gateway,
        reqwest::Method::PUT,
        Some(&secret),
        Some(json!({"level": "debug"})),
    )
    .await;
    assert_eq!(status, 403);

    let chat = |marker: &'static str| {
        let gateway = &gateway;
        let secret = secret.clone();
        async move {
            let response = gateway
                .client()
                .post(gateway.url("/v1/chat/completions"))
                .bearer_auth(secret)
                .header("x-marker", marker)
                .json(&json!({"model": "fast", "messages": [{"role": "user", "content": marker}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    let debug_lines = || {
        gateway
            .stderr()
            .lines()
            .filter(|l| l.contains("\"level\":\"DEBUG\""))
            .count()
    };
    chat("before").await;
    let before = debug_lines();

    let (status, body) = logging(
        &gateway,
        reqwest::Method::PUT,
        Some(ADMIN_KEY),
        Some(json!({"level": "debug"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"level": "debug", "filter": "debug"}));
    chat("during").await;
    // Each request's debug line (`request`, with its method and path) now appears.
    let line = gateway
        .wait_for_log(WAIT, |l| {
            l.contains("\"level\":\"DEBUG\"") && l.contains("/v1/chat/completions")
        })
        .await;
    assert!(line.is_some(), "{}", gateway.stderr());

    // An invalid filter is refused naming `filter`; the setting stays.
    let (status, body) = logging(
        &gateway,
        reqwest::Method::PUT,
        Some(ADMIN_KEY),
        Some(json!({"filter": "aigw=[bad"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "filter", "{body}");
    let (_, body) = logging(&gateway, reqwest::Method::GET, Some(ADMIN_KEY), None).await;
    assert_eq!(body["level"], "debug");

    let (status, body) = logging(
        &gateway,
        reqwest::Method::PUT,
        Some(ADMIN_KEY),
        Some(json!({"filter": "info,hyper=warn"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"level": "info", "filter": "info,hyper=warn"}));
    chat("after").await;
    let lines = gateway
        .wait_for_log_lines(WAIT, 3, |l| l.contains("chat completion"))
        .await;
    assert_eq!(lines.len(), 3, "{}", gateway.stderr());
    // Nothing at debug after the change back (the line saying so is written after the reload).
    let log = gateway.stderr();
    let changed = log
        .find("info,hyper=warn")
        .unwrap_or_else(|| panic!("no line saying the change: {log}"));
    let later_debug = log[changed..]
        .lines()
        .filter(|l| l.contains("\"level\":\"DEBUG\""))
        .count();
    assert_eq!(later_debug, 0, "{}", &log[changed..]);
    assert!(debug_lines() > before);

    // Each request line names the key by its name, never its secret.
    let line: Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(line["key"], "ci-bot", "{line}");
    assert!(!gateway.stderr().contains(&secret));
}
