//! Every telemetry name aigw emits, in one place. OpenTelemetry GenAI names (semantic
//! conventions, status "Development") are kept in their dotted form; the Prometheus exposition
//! derives its names from them (dots to underscores, the unit as a suffix, `_total` for
//! counters, as prometheus-client writes them), so a rename in the conventions is one change
//! here. aigw's own metrics are named `aigw.*` the same way.

/// `gen_ai.operation.name` of a chat completion.
pub const OPERATION_CHAT: &str = "chat";
/// `gen_ai.operation.name` of a tool call.
pub const OPERATION_EXECUTE_TOOL: &str = "execute_tool";

/// The value a label takes once its family reached its cap (`[metrics] max_series_per_metric`):
/// every new value folds into it.
pub const OTHER: &str = "other";

/// What a metric counts in, as its Prometheus name's suffix says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// No unit suffix: a count of events, or tokens (`{token}` is an OpenTelemetry
    /// annotation, which the Prometheus form drops).
    None,
    Seconds,
    Bytes,
    /// US dollars.
    Usd,
}

impl Unit {
    /// The suffix the Prometheus name gets (`None`: none).
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Unit::None => None,
            Unit::Seconds => Some("seconds"),
            Unit::Bytes => Some("bytes"),
            Unit::Usd => Some("usd"),
        }
    }
}

/// How a metric behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: its dotted name, unit, kind and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The dotted name (`gen_ai.client.operation.duration`, `aigw.requests`).
    pub name: &'static str,
    pub unit: Unit,
    pub kind: Kind,
    pub help: &'static str,
}

impl Metric {
    const fn new(name: &'static str, unit: Unit, kind: Kind, help: &'static str) -> Metric {
        Metric {
            name,
            unit,
            kind,
            help,
        }
    }

    /// The name prometheus-client is given: dots to underscores (it adds the unit and
    /// `_total` itself).
    pub fn base(&self) -> String {
        self.name.replace('.', "_")
    }

    /// The metric's name in the exposition: [`Metric::base`], `_<unit>`, and `_total` for a
    /// counter (a histogram's series add `_bucket`, `_sum` and `_count` to it).
    pub fn prometheus(&self) -> String {
        let mut name = self.base();
        if let Some(unit) = self.unit.suffix() {
            name.push('_');
            name.push_str(unit);
        }
        if self.kind == Kind::Counter {
            name.push_str("_total");
        }
        name
    }
}

/// A label: its dotted name (an OpenTelemetry attribute where one exists) and its Prometheus
/// form (dots to underscores; a const, since label keys are written on every scrape; a test
/// checks that it is derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label {
    pub name: &'static str,
    pub prometheus: &'static str,
}

const fn label(name: &'static str, prometheus: &'static str) -> Label {
    Label { name, prometheus }
}

pub mod labels {
    //! Every label a metric carries.
    use super::{Label, label};

    /// `chat` or `execute_tool`.
    pub const OPERATION: Label = label("gen_ai.operation.name", "gen_ai_operation_name");
    /// The route the client asked for (an alias, or a `provider/model` it named directly),
    /// only once it resolved to a served route: never a model name a client typed that the
    /// gateway does not serve.
    pub const REQUEST_MODEL: Label = label("gen_ai.request.model", "gen_ai_request_model");
    /// The provider (plugin) of the target.
    pub const PROVIDER: Label = label("gen_ai.provider.name", "gen_ai_provider_name");
    /// `input` or `output`.
    pub const TOKEN_TYPE: Label = label("gen_ai.token.type", "gen_ai_token_type");
    /// A failed request's HTTP status (`502`, `429`, `499`: the client went away), or a failed
    /// tool call's error code.
    pub const ERROR_TYPE: Label = label("error.type", "error_type");
    /// aigw's route (the same value as `gen_ai.request.model`) on aigw's own metrics.
    pub const ROUTE: Label = label("route", "route");
    /// A target's label (`provider/model`), or a tool's upstream (`tool:<plugin>/<upstream>`).
    pub const TARGET: Label = label("target", "target");
    /// `1xx` … `5xx`.
    pub const STATUS_CLASS: Label = label("status_class", "status_class");
    /// An attempt's kind (`first`, `retry`, `hedge`), a plugin fault's kind (`trap`,
    /// `deadline`, …), a memory operation's (`read`, `write`).
    pub const KIND: Label = label("kind", "kind");
    /// An attempt's outcome (`served`, `failed`, `cancelled`), a tool call's (`ok`, `error`),
    /// a response cache lookup's (`hit`, `miss`).
    pub const OUTCOME: Label = label("outcome", "outcome");
    /// A failed attempt's class (`rate_limited`, `timeout`, …); empty for the others.
    pub const FAILURE_CLASS: Label = label("failure_class", "failure_class");
    /// A virtual key's id (never its secret).
    pub const KEY: Label = label("key", "key");
    /// The limit that refused a request (`requests_per_minute`, `budget`, …).
    pub const LIMIT: Label = label("limit", "limit");
    /// A tool's name.
    pub const TOOL: Label = label("tool", "tool");
    /// A plugin's name.
    pub const PLUGIN: Label = label("plugin", "plugin");
    /// A breaker's state: `closed`, `open`, `half_open`.
    pub const STATE: Label = label("state", "state");

    /// Every label, for the derivation test and the docs.
    pub const ALL: [Label; 16] = [
        OPERATION,
        REQUEST_MODEL,
        PROVIDER,
        TOKEN_TYPE,
        ERROR_TYPE,
        ROUTE,
        TARGET,
        STATUS_CLASS,
        KIND,
        OUTCOME,
        FAILURE_CLASS,
        KEY,
        LIMIT,
        TOOL,
        PLUGIN,
        STATE,
    ];
}

use Kind::{Counter, Gauge, Histogram};

// OpenTelemetry GenAI metrics.

/// How long a chat completion took, from its arrival to its report.
pub const OPERATION_DURATION: Metric = Metric::new(
    "gen_ai.client.operation.duration",
    Unit::Seconds,
    Histogram,
    "GenAI operation duration, from the request's arrival to its end (the last byte of a stream)",
);
/// From a streamed completion's arrival to its first chunk sent to the client.
pub const TIME_TO_FIRST_CHUNK: Metric = Metric::new(
    "gen_ai.client.operation.time_to_first_chunk",
    Unit::Seconds,
    Histogram,
    "Time from a streamed request's arrival to the first chunk sent to the client",
);
/// Tokens per completion, by `gen_ai.token.type`.
pub const TOKEN_USAGE: Metric = Metric::new(
    "gen_ai.client.token.usage",
    Unit::None,
    Histogram,
    "Tokens used per completion (every attempt that consumed some), by gen_ai.token.type",
);
/// How long a tool call took.
pub const EXECUTE_TOOL_DURATION: Metric = Metric::new(
    "gen_ai.execute_tool.duration",
    Unit::Seconds,
    Histogram,
    "Tool call duration, cache hits included",
);

// aigw's own, fed from the request record and the other observations.

pub const REQUESTS: Metric = Metric::new(
    "aigw.requests",
    Unit::None,
    Counter,
    "Chat completions by route, the target that served (or last served) and status class",
);
pub const ATTEMPTS: Metric = Metric::new(
    "aigw.attempts",
    Unit::None,
    Counter,
    "Attempts on targets by route, target, kind, outcome and failure class",
);
pub const FAILOVERS: Metric = Metric::new(
    "aigw.failovers",
    Unit::None,
    Counter,
    "Requests attempted on more than one target, by route and the target that served (none: no target did)",
);
pub const CONTINUATIONS: Metric = Metric::new(
    "aigw.stream.continuations",
    Unit::None,
    Counter,
    "Broken streams continued on another target, by route and the target that finished them",
);
pub const SPEND: Metric = Metric::new(
    "aigw.spend",
    Unit::Usd,
    Counter,
    "Spend at the targets' prices, by route and target",
);
pub const KEY_REQUESTS: Metric = Metric::new(
    "aigw.key.requests",
    Unit::None,
    Counter,
    "Chat completions per virtual key (its id) and route, by status class",
);
pub const KEY_TOKENS: Metric = Metric::new(
    "aigw.key.tokens",
    Unit::None,
    Counter,
    "Tokens per virtual key and route, by gen_ai.token.type",
);
pub const KEY_SPEND: Metric = Metric::new(
    "aigw.key.spend",
    Unit::Usd,
    Counter,
    "Spend per virtual key and route",
);
pub const KEY_QUOTA_REJECTIONS: Metric = Metric::new(
    "aigw.key.quota.rejections",
    Unit::None,
    Counter,
    "Requests and tool calls a key's limits refused (429), by key and limit",
);
pub const TOOL_CALLS: Metric = Metric::new(
    "aigw.tool.calls",
    Unit::None,
    Counter,
    "Tool calls by tool and outcome (ok, error)",
);
pub const TOOL_CACHE_HITS: Metric = Metric::new(
    "aigw.tool.cache.hits",
    Unit::None,
    Counter,
    "Tool calls answered from the shared cache",
);
pub const RESPONSE_CACHE_LOOKUPS: Metric = Metric::new(
    "aigw.response_cache.lookups",
    Unit::None,
    Counter,
    "Chat completions the response cache looked up, by route and outcome (hit, miss)",
);
pub const TOOL_UPSTREAM_FAILURES: Metric = Metric::new(
    "aigw.tool.upstream.failures",
    Unit::None,
    Counter,
    "Failed attempts on a tool's upstreams, by tool, upstream and failure class",
);

// Read at scrape time from the current state.

pub const BREAKER_STATE: Metric = Metric::new(
    "aigw.target.breaker_state",
    Unit::None,
    Gauge,
    "A target's circuit breaker: 1 on its current state (closed, open, half_open), 0 on the others",
);
pub const COOLDOWN: Metric = Metric::new(
    "aigw.target.cooldown",
    Unit::Seconds,
    Gauge,
    "How long a target is still out: its rate-limit cooldown or its open breaker, whichever ends later",
);
pub const PLUGIN_CALLS: Metric = Metric::new(
    "aigw.plugin.calls",
    Unit::None,
    Counter,
    "Calls into a plugin's guest since it was loaded",
);
pub const PLUGIN_FAULTS: Metric = Metric::new(
    "aigw.plugin.faults",
    Unit::None,
    Counter,
    "Plugin calls that faulted, by kind (trap, deadline, memory_limit, capacity, lost)",
);
pub const PLUGIN_CALL_DURATION: Metric = Metric::new(
    "aigw.plugin.call.duration",
    Unit::Seconds,
    Histogram,
    "Plugin call duration (encode, decode, stream decoder start, tool invoke), instance wait included",
);
pub const PLUGIN_POOL_SIZE: Metric = Metric::new(
    "aigw.plugin.pool.size",
    Unit::None,
    Gauge,
    "A plugin's warm instances ready to take a call",
);
pub const MEMORY_OPERATIONS: Metric = Metric::new(
    "aigw.memory.operations",
    Unit::None,
    Counter,
    "Memory store operations by kind (read, write)",
);
pub const MEMORY_OPERATION_DURATION: Metric = Metric::new(
    "aigw.memory.operation.duration",
    Unit::Seconds,
    Histogram,
    "Memory store operation duration, queueing and (for writes) the commit included",
);
pub const MEMORY_DATABASE_SIZE: Metric = Metric::new(
    "aigw.memory.database.size",
    Unit::Bytes,
    Gauge,
    "The memory database's size on disk (the file and its write-ahead log)",
);

/// Every metric, in exposition order.
pub const ALL: [Metric; 26] = [
    OPERATION_DURATION,
    TIME_TO_FIRST_CHUNK,
    TOKEN_USAGE,
    EXECUTE_TOOL_DURATION,
    REQUESTS,
    ATTEMPTS,
    FAILOVERS,
    CONTINUATIONS,
    SPEND,
    RESPONSE_CACHE_LOOKUPS,
    KEY_REQUESTS,
    KEY_TOKENS,
    KEY_SPEND,
    KEY_QUOTA_REJECTIONS,
    TOOL_CALLS,
    TOOL_CACHE_HITS,
    TOOL_UPSTREAM_FAILURES,
    BREAKER_STATE,
    COOLDOWN,
    PLUGIN_CALLS,
    PLUGIN_FAULTS,
    PLUGIN_CALL_DURATION,
    PLUGIN_POOL_SIZE,
    MEMORY_OPERATIONS,
    MEMORY_OPERATION_DURATION,
    MEMORY_DATABASE_SIZE,
];

// ---- Traces (spans and their attributes) -------------------------------------------------
// Kept apart from the metric names above: the span names, attribute keys and the one `tracing`
// target every exported span is emitted under.

/// The `tracing` target of every span aigw exports over OTLP. The log's filter never enables
/// it and the OTLP layer enables only it, so with OTLP off no layer wants these spans and their
/// call sites stay disabled (`tracing` caches that interest: a disabled span costs a load and a
/// branch).
pub const TRACE_TARGET: &str = "aigw::trace";

/// The request span (`chat {model}` once the model is known), kind SERVER.
pub const SPAN_CHAT: &str = "chat";
/// One attempt on one target (`chat {target}`), kind CLIENT.
pub const SPAN_ATTEMPT: &str = "attempt";
/// A provider plugin's call (`plugin encode`, `plugin decode`, `plugin feed`, …).
pub const SPAN_PLUGIN_CALL: &str = "plugin";
/// A tool call (`execute_tool {tool}`), kind INTERNAL.
pub const SPAN_TOOL: &str = "execute_tool";
/// One memory store operation (`memory {operation}`), kind INTERNAL. `aigw-memory` names it
/// in its `#[instrument]` attributes, which take literals only: `"memory"` under
/// `"aigw::trace"`, the same as here.
pub const SPAN_MEMORY: &str = "memory";

/// OpenTelemetry's own span fields, read by the bridge from `tracing` spans.
pub const OTEL_NAME: &str = "otel.name";
pub const OTEL_KIND: &str = "otel.kind";
pub const OTEL_STATUS_CODE: &str = "otel.status_code";

/// GenAI attributes (semantic conventions, dotted form).
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
/// General attributes (semantic conventions).
pub const ERROR_TYPE: &str = "error.type";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
pub const SERVER_ADDRESS: &str = "server.address";
pub const SERVER_PORT: &str = "server.port";
/// aigw's own attributes.
pub const AIGW_TARGET: &str = "aigw.target";
pub const AIGW_ATTEMPT_KIND: &str = "aigw.attempt.kind";
pub const AIGW_ATTEMPT_OUTCOME: &str = "aigw.attempt.outcome";
pub const AIGW_FAILURE_CLASS: &str = "aigw.failure.class";
pub const AIGW_PLUGIN: &str = "aigw.plugin";
pub const AIGW_PLUGIN_CALL: &str = "aigw.plugin.call";
pub const AIGW_TOOL_CACHE: &str = "aigw.tool.cache";
pub const AIGW_MEMORY_OPERATION: &str = "aigw.memory.operation";

/// The W3C trace-context headers, read from clients and written on every upstream request.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_names_are_derived_from_the_dotted_ones() {
        assert_eq!(
            OPERATION_DURATION.prometheus(),
            "gen_ai_client_operation_duration_seconds"
        );
        assert_eq!(TOKEN_USAGE.prometheus(), "gen_ai_client_token_usage");
        assert_eq!(REQUESTS.prometheus(), "aigw_requests_total");
        assert_eq!(SPEND.prometheus(), "aigw_spend_usd_total");
        assert_eq!(
            MEMORY_DATABASE_SIZE.prometheus(),
            "aigw_memory_database_size_bytes"
        );
        assert_eq!(BREAKER_STATE.prometheus(), "aigw_target_breaker_state");
    }

    #[test]
    fn label_forms_are_derived_and_names_unique() {
        for label in labels::ALL {
            assert_eq!(label.prometheus, label.name.replace('.', "_"), "{label:?}");
        }
        for (i, metric) in ALL.iter().enumerate() {
            assert!(
                ALL[i + 1..]
                    .iter()
                    .all(|other| other.prometheus() != metric.prometheus()),
                "{} twice",
                metric.name
            );
            assert!(!metric.help.is_empty());
            assert!(metric.name.starts_with("gen_ai.") || metric.name.starts_with("aigw."));
        }
    }
}
