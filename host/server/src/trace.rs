//! Distributed tracing of the requests the gateway serves: the request span (kind SERVER, a
//! child of the client's W3C `traceparent` when it sends one), one span per attempt (kind
//! CLIENT), and the trace context every upstream request of an attempt carries.
//!
//! Every span is emitted under [`names::TRACE_TARGET`], which only the binary's OTLP layer
//! enables. With OTLP off nothing here builds a span (their call sites are disabled, a cached
//! check), nothing is parsed but the client's `traceparent` itself (its trace id for the log
//! line), and the client's context goes upstream unchanged: a gateway that does not trace keeps
//! its clients' traces whole instead of cutting them at the hop.

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aigw_telemetry::names;
use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::gateway::RouteTarget;

/// Whether aigw's spans are wanted (the OTLP layer is installed): one cached interest check.
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: names::TRACE_TARGET, tracing::Level::INFO)
}

/// A request's trace: its span, its trace id for the log line, and what goes upstream.
pub(crate) struct RequestTrace {
    /// The request span; disabled (a no-op) with OTLP off.
    pub(crate) span: tracing::Span,
    /// The trace's id (32 hex digits): the span's, or with OTLP off the client's.
    trace_id: Option<Box<str>>,
    /// The client's context, sent upstream unchanged while aigw's own spans are off.
    client: Option<ClientContext>,
    /// What the attempts' kinds are told from (only touched with OTLP on).
    attempts: Attempts,
}

/// The client's `traceparent` and `tracestate`, as they came.
struct ClientContext {
    traceparent: HeaderValue,
    tracestate: Option<HeaderValue>,
}

#[derive(Default)]
struct Attempts {
    /// Targets attempted so far (labels): another attempt on one of them is a retry.
    tried: Mutex<Vec<std::sync::Arc<str>>>,
    /// Attempts running: one starting beside another is a hedge.
    running: AtomicUsize,
}

impl RequestTrace {
    /// A request without any trace (in-process callers, tests).
    pub(crate) fn none() -> RequestTrace {
        RequestTrace {
            span: tracing::Span::none(),
            trace_id: None,
            client: None,
            attempts: Attempts::default(),
        }
    }

    /// The trace of a chat request arriving with `headers`.
    pub(crate) fn start(headers: &HeaderMap) -> RequestTrace {
        let span = tracing::info_span!(
            target: names::TRACE_TARGET,
            names::SPAN_CHAT,
            { names::OTEL_NAME } = names::SPAN_CHAT,
            { names::OTEL_KIND } = "server",
            { names::OTEL_STATUS_CODE } = Empty,
            { names::GEN_AI_OPERATION_NAME } = names::OPERATION_CHAT,
            { names::GEN_AI_REQUEST_MODEL } = Empty,
            { names::GEN_AI_RESPONSE_MODEL } = Empty,
            { names::GEN_AI_RESPONSE_ID } = Empty,
            { names::GEN_AI_PROVIDER_NAME } = Empty,
            { names::GEN_AI_USAGE_INPUT_TOKENS } = Empty,
            { names::GEN_AI_USAGE_OUTPUT_TOKENS } = Empty,
            { names::GEN_AI_CONVERSATION_ID } = Empty,
            { names::AIGW_TARGET } = Empty,
            { names::ERROR_TYPE } = Empty,
            { names::HTTP_RESPONSE_STATUS_CODE } = Empty,
        );
        let traceparent = headers.get(names::TRACEPARENT);
        if span.is_disabled() {
            // Off: the client's context is only checked for shape (it is forwarded as is, and
            // its trace id logged).
            let client = traceparent
                .filter(|v| well_formed(v.as_bytes()))
                .map(|traceparent| ClientContext {
                    traceparent: traceparent.clone(),
                    tracestate: headers.get(names::TRACESTATE).cloned(),
                });
            let trace_id = client.as_ref().and_then(|c| {
                c.traceparent
                    .to_str()
                    .ok()
                    .and_then(|t| t.get(3..35))
                    .map(Box::from)
            });
            return RequestTrace {
                span,
                trace_id,
                client,
                attempts: Attempts::default(),
            };
        }
        if traceparent.is_some() {
            let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
            // Only fails for a span already started, and this one was just made.
            let _ = span.set_parent(parent);
        }
        let trace_id = {
            let context = span.context();
            let span_context = context.span().span_context().clone();
            span_context
                .is_valid()
                .then(|| Box::from(span_context.trace_id().to_string()))
        };
        RequestTrace {
            span,
            trace_id,
            client: None,
            attempts: Attempts::default(),
        }
    }

    /// The trace id the request's log line carries, if the request has a trace.
    pub(crate) fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// Names the requested model: the span becomes `chat {model}`.
    pub(crate) fn requested(&self, model: &str, conversation: Option<&str>) {
        if self.span.is_disabled() {
            return;
        }
        // The span has started (its future was entered): renamed on the span itself, as
        // `otel.name` is only read before the start.
        self.span
            .context()
            .span()
            .update_name(format!("{} {model}", names::SPAN_CHAT));
        self.span.record(names::GEN_AI_REQUEST_MODEL, model);
        if let Some(conversation) = conversation {
            self.span
                .record(names::GEN_AI_CONVERSATION_ID, conversation);
        }
    }

    /// Records how the request ended on its span.
    pub(crate) fn finished(&self, end: &End<'_>) {
        let span = &self.span;
        if span.is_disabled() {
            return;
        }
        // As i64: the OpenTelemetry bridge records unsigned values as text.
        span.record(names::HTTP_RESPONSE_STATUS_CODE, i64::from(end.status));
        if let Some(target) = end.target {
            span.record(names::AIGW_TARGET, &*target.label);
            span.record(names::GEN_AI_PROVIDER_NAME, target.provider.name.as_str());
        }
        if let Some(input) = end.input_tokens {
            span.record(names::GEN_AI_USAGE_INPUT_TOKENS, signed(input));
        }
        if let Some(output) = end.output_tokens {
            span.record(names::GEN_AI_USAGE_OUTPUT_TOKENS, signed(output));
        }
        if let Some(json) = end.answer {
            let (id, model) = answer_id_and_model(json);
            if let Some(id) = id {
                span.record(names::GEN_AI_RESPONSE_ID, id.as_ref());
            }
            if let Some(model) = model {
                span.record(names::GEN_AI_RESPONSE_MODEL, model.as_ref());
            }
        }
        if let Some(error) = end.error_type {
            span.record(names::ERROR_TYPE, error);
            span.record(names::OTEL_STATUS_CODE, "ERROR");
        }
    }

    /// The span of one attempt on `target` (disabled with OTLP off), under the request span.
    pub(crate) fn attempt(&self, target: &RouteTarget) -> AttemptSpan<'_> {
        if self.span.is_disabled() || !enabled() {
            return AttemptSpan {
                span: tracing::Span::none(),
                trace: self,
                settled: true,
            };
        }
        let kind = {
            let mut tried = self
                .attempts
                .tried
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let running = self.attempts.running.fetch_add(1, Ordering::Relaxed);
            if running > 0 {
                "hedge"
            } else if tried.contains(&target.label) {
                "retry"
            } else {
                tried.push(std::sync::Arc::clone(&target.label));
                "first"
            }
        };
        let (address, port) = server_of(&target.provider.base_url);
        let span = tracing::info_span!(
            target: names::TRACE_TARGET,
            parent: &self.span,
            names::SPAN_ATTEMPT,
            { names::OTEL_NAME } = format_args!("{} {}", names::SPAN_CHAT, target.label),
            { names::OTEL_KIND } = "client",
            { names::OTEL_STATUS_CODE } = Empty,
            { names::GEN_AI_OPERATION_NAME } = names::OPERATION_CHAT,
            { names::GEN_AI_PROVIDER_NAME } = target.provider.name.as_str(),
            { names::GEN_AI_REQUEST_MODEL } = &*target.label,
            { names::SERVER_ADDRESS } = address.as_deref(),
            { names::SERVER_PORT } = port.map(i64::from),
            { names::AIGW_TARGET } = &*target.label,
            { names::AIGW_ATTEMPT_KIND } = kind,
            { names::AIGW_ATTEMPT_OUTCOME } = Empty,
            { names::AIGW_FAILURE_CLASS } = Empty,
            { names::ERROR_TYPE } = Empty,
        );
        AttemptSpan {
            span,
            trace: self,
            settled: false,
        }
    }

    /// The trace context an attempt's upstream requests carry (called in the attempt's span):
    /// that span's with OTLP on, else the client's own, unchanged, else none (empty: nothing
    /// allocated).
    pub(crate) fn upstream_context(&self) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        match &self.client {
            None if self.span.is_disabled() => {}
            Some(client) => {
                for (name, value) in [
                    (names::TRACEPARENT, Some(&client.traceparent)),
                    (names::TRACESTATE, client.tracestate.as_ref()),
                ] {
                    if let Some(value) = value.and_then(|v| v.to_str().ok()) {
                        headers.push((name.to_owned(), value.to_owned()));
                    }
                }
            }
            None => {
                let context = tracing::Span::current().context();
                TraceContextPropagator::new()
                    .inject_context(&context, &mut VecInjector(&mut headers));
            }
        }
        headers
    }
}

/// Puts `context` (from [`RequestTrace::upstream_context`]) on an upstream request's headers,
/// replacing any trace header a plugin set: the context is the host's, never a plugin's.
pub(crate) fn propagate(headers: &mut Vec<(String, String)>, context: &[(String, String)]) {
    headers.retain(|(name, _)| {
        !name.eq_ignore_ascii_case(names::TRACEPARENT)
            && !name.eq_ignore_ascii_case(names::TRACESTATE)
    });
    headers.extend_from_slice(context);
}

/// How a request ended, for its span.
pub(crate) struct End<'a> {
    pub(crate) status: u16,
    pub(crate) target: Option<&'a RouteTarget>,
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    /// The answer's JSON (a whole completion), for its id and model.
    pub(crate) answer: Option<&'a str>,
    pub(crate) error_type: Option<&'a str>,
}

/// One attempt's span. Settled with its result; dropped unsettled (the engine's deadline, a
/// hedge that lost), it says `cancelled`.
pub(crate) struct AttemptSpan<'t> {
    pub(crate) span: tracing::Span,
    trace: &'t RequestTrace,
    settled: bool,
}

impl AttemptSpan<'_> {
    /// Records the attempt's outcome: served, or failed with its failure class.
    pub(crate) fn settle(mut self, failure: Option<&aigw_router::Failure>) {
        self.settled = true;
        self.end();
        match failure {
            None => {
                self.span.record(names::AIGW_ATTEMPT_OUTCOME, "served");
            }
            Some(failure) => {
                let class = failure.class.as_str();
                self.span.record(names::AIGW_ATTEMPT_OUTCOME, "failed");
                self.span.record(names::AIGW_FAILURE_CLASS, class);
                self.span.record(names::ERROR_TYPE, class);
                self.span.record(names::OTEL_STATUS_CODE, "ERROR");
            }
        }
    }

    fn end(&self) {
        if !self.span.is_disabled() {
            self.trace.attempts.running.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for AttemptSpan<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.end();
        self.span.record(names::AIGW_ATTEMPT_OUTCOME, "cancelled");
    }
}

/// A count as the bridge records numbers (i64; unsigned values would become text).
fn signed(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Whether `value` is a W3C `traceparent` of version 00 (or a later one, read as 00): two hex
/// digits, the 32-digit trace id, the 16-digit parent id and the flags, neither id all zeros.
fn well_formed(value: &[u8]) -> bool {
    if value.len() < 55 || (value.len() > 55 && value[55] != b'-') {
        return false;
    }
    let hex = |range: std::ops::Range<usize>| {
        value[range]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |range: std::ops::Range<usize>| value[range].iter().any(|b| *b != b'0');
    value[2] == b'-'
        && value[35] == b'-'
        && value[52] == b'-'
        && hex(0..2)
        && &value[0..2] != b"ff"
        && hex(3..35)
        && hex(36..52)
        && hex(53..55)
        && nonzero(3..35)
        && nonzero(36..52)
}

/// The host and port of a provider's base URL (the port from the scheme when it names none).
fn server_of(base_url: &str) -> (Option<String>, Option<u16>) {
    let Ok(uri) = base_url.parse::<http::Uri>() else {
        return (None, None);
    };
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    });
    (uri.host().map(str::to_owned), port)
}

/// A completion's `id` and `model`, read only when its span records them.
fn answer_id_and_model(json: &str) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        model: Option<Cow<'a, str>>,
    }
    match serde_json::from_str::<Answer<'_>>(json) {
        Ok(answer) => (answer.id, answer.model),
        Err(_) => (None, None),
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct VecInjector<'a>(&'a mut Vec<(String, String)>);

impl Injector for VecInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn only_well_formed_traceparents_are_forwarded() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(well_formed(good));
        // A later version may carry more fields after a dash.
        assert!(well_formed(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
        ));
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"[..],
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(!well_formed(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn with_tracing_off_the_clients_context_goes_upstream_unchanged() {
        let mut headers = HeaderMap::new();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert("traceparent", HeaderValue::from_static(parent));
        headers.insert("tracestate", HeaderValue::from_static("vendor=1"));
        let trace = RequestTrace::start(&headers);
        assert_eq!(trace.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        // A plugin's own trace headers are replaced.
        let mut upstream = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("TraceParent".to_owned(), "forged".to_owned()),
        ];
        propagate(&mut upstream, &trace.upstream_context());
        assert_eq!(
            upstream,
            vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("traceparent".to_owned(), parent.to_owned()),
                ("tracestate".to_owned(), "vendor=1".to_owned()),
            ]
        );
    }

    #[test]
    fn with_tracing_off_and_no_client_context_nothing_is_added() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("garbage"));
        let trace = RequestTrace::start(&headers);
        assert_eq!(trace.trace_id(), None);
        let mut upstream = vec![
            ("traceparent".to_owned(), "plugin's".to_owned()),
            ("accept".to_owned(), "*/*".to_owned()),
        ];
        let context = trace.upstream_context();
        assert!(context.is_empty());
        propagate(&mut upstream, &context);
        // No context to send, and a plugin's own is never sent.
        assert_eq!(upstream, vec![("accept".to_owned(), "*/*".to_owned())]);
    }

    #[test]
    fn the_server_of_a_base_url_has_its_port_or_the_schemes() {
        assert_eq!(
            server_of("https://api.groq.com/openai/v1"),
            (Some("api.groq.com".to_owned()), Some(443))
        );
        assert_eq!(
            server_of("http://127.0.0.1:8080/v1"),
            (Some("127.0.0.1".to_owned()), Some(8080))
        );
    }

    #[test]
    fn an_answers_id_and_model_are_read_whatever_else_it_holds() {
        let (id, model) = answer_id_and_model(
            r#"{"id":"chatcmpl-1","object":"chat.completion","model":"llama","choices":[]}"#,
        );
        assert_eq!(id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(model.as_deref(), Some("llama"));
        assert_eq!(answer_id_and_model("not json"), (None, None));
    }
}
