//! The process's metrics, exposed in the Prometheus text format (0.0.4) or OpenMetrics, on
//! prometheus-client. Counters and histograms are fed only from observations
//! ([`Metrics::request`], [`Metrics::tool`], [`Metrics::quota_rejected`]); what describes the
//! current state (breakers, plugins, the store) is read at scrape time and handed to
//! [`Metrics::encode`] as a [`Scrape`]. Names and labels come from [`crate::names`].
//!
//! Hot path: a request finds every series it adds to with one lookup by `&str` per open-set
//! pair (route × target, key × route) in a [`Bounded`] map, whose entries hold the series
//! themselves; a series is made (and allocated) once, on first use. Failures, retries and
//! errors take one more family lookup each, with label values cloned by reference count.

mod scrape;
mod series;

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::names::{self, labels as l};
use crate::{QuotaObservation, RequestObservation, ToolObservation};
pub use scrape::{Durations, MemoryState, PluginState, Scrape, TargetState};
use series::{Bounded, Labels, Value};

/// `[metrics]` as the telemetry needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Off: observations are dropped at once (nothing is counted) and nothing is exposed.
    pub enabled: bool,
    /// The most distinct open-set label values (route × target, key × route, tool, key ×
    /// limit) a family holds; past it new ones are counted under `other`.
    pub max_series_per_metric: usize,
}

impl Default for MetricsOptions {
    fn default() -> MetricsOptions {
        MetricsOptions {
            enabled: true,
            max_series_per_metric: 20_000,
        }
    }
}

/// The exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4 (what a scraper gets unless it asks for
    /// OpenMetrics).
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names it, else Prometheus
    /// text.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

type Hist = fn() -> Histogram;
type Spend = Counter<f64, AtomicU64>;

/// Boundaries of the GenAI conventions' advisory buckets.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const FIRST_CHUNK_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}
fn first_chunk_histogram() -> Histogram {
    Histogram::new(FIRST_CHUNK_BUCKETS)
}
fn token_histogram() -> Histogram {
    Histogram::new(TOKEN_BUCKETS)
}

/// `1xx` … `5xx`, by the status's first digit.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// `error.type` of a failed request: its status (the conventions' choice for HTTP clients),
/// from a fixed table so no value is made per request; `_OTHER` past it.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        409 => "409",
        413 => "413",
        422 => "422",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => "_OTHER",
    }
}

/// A response cache lookup's outcomes, as the observation names them.
const CACHE_OUTCOMES: [&str; 2] = ["hit", "miss"];

/// The label value of a request no target served.
const NO_TARGET: &str = "none";

/// Every family fed from observations (clones of what the registry holds: a family is shared
/// by reference).
struct Families {
    duration: Family<Labels<5>, Histogram, Hist>,
    first_chunk: Family<Labels<4>, Histogram, Hist>,
    tokens: Family<Labels<5>, Histogram, Hist>,
    tool_duration: Family<Labels<3>, Histogram, Hist>,
    requests: Family<Labels<3>, Counter>,
    attempts: Family<Labels<5>, Counter>,
    failovers: Family<Labels<2>, Counter>,
    continuations: Family<Labels<2>, Counter>,
    spend: Family<Labels<2>, Spend>,
    cache_lookups: Family<Labels<2>, Counter>,
    key_requests: Family<Labels<3>, Counter>,
    key_tokens: Family<Labels<3>, Counter>,
    key_spend: Family<Labels<2>, Spend>,
    key_quota: Family<Labels<2>, Counter>,
    tool_calls: Family<Labels<2>, Counter>,
    tool_cache_hits: Family<Labels<1>, Counter>,
}

impl Families {
    fn new() -> Families {
        Families {
            duration: Family::new_with_constructor(duration_histogram),
            first_chunk: Family::new_with_constructor(first_chunk_histogram),
            tokens: Family::new_with_constructor(token_histogram),
            tool_duration: Family::new_with_constructor(duration_histogram),
            requests: Family::default(),
            attempts: Family::default(),
            failovers: Family::default(),
            continuations: Family::default(),
            spend: Family::default(),
            cache_lookups: Family::default(),
            key_requests: Family::default(),
            key_tokens: Family::default(),
            key_spend: Family::default(),
            key_quota: Family::default(),
            tool_calls: Family::default(),
            tool_cache_hits: Family::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        add(registry, names::OPERATION_DURATION, self.duration.clone());
        add(
            registry,
            names::TIME_TO_FIRST_CHUNK,
            self.first_chunk.clone(),
        );
        add(registry, names::TOKEN_USAGE, self.tokens.clone());
        add(
            registry,
            names::EXECUTE_TOOL_DURATION,
            self.tool_duration.clone(),
        );
        add(registry, names::REQUESTS, self.requests.clone());
        add(registry, names::ATTEMPTS, self.attempts.clone());
        add(registry, names::FAILOVERS, self.failovers.clone());
        add(registry, names::CONTINUATIONS, self.continuations.clone());
        add(registry, names::SPEND, self.spend.clone());
        add(
            registry,
            names::RESPONSE_CACHE_LOOKUPS,
            self.cache_lookups.clone(),
        );
        add(registry, names::KEY_REQUESTS, self.key_requests.clone());
        add(registry, names::KEY_TOKENS, self.key_tokens.clone());
        add(registry, names::KEY_SPEND, self.key_spend.clone());
        add(
            registry,
            names::KEY_QUOTA_REJECTIONS,
            self.key_quota.clone(),
        );
        add(registry, names::TOOL_CALLS, self.tool_calls.clone());
        add(
            registry,
            names::TOOL_CACHE_HITS,
            self.tool_cache_hits.clone(),
        );
    }
}

/// Registers `family` under `metric`'s name, help and unit.
fn add(
    registry: &mut Registry,
    metric: names::Metric,
    family: impl prometheus_client::registry::Metric,
) {
    match unit(metric.unit) {
        Some(unit) => registry.register_with_unit(metric.base(), metric.help, unit, family),
        None => registry.register(metric.base(), metric.help, family),
    }
}

/// The unit prometheus-client suffixes a name with.
pub(crate) fn unit(unit: names::Unit) -> Option<Unit> {
    match unit {
        names::Unit::None => None,
        names::Unit::Seconds => Some(Unit::Seconds),
        names::Unit::Bytes => Some(Unit::Bytes),
        names::Unit::Usd => Some(Unit::Other("usd".to_owned())),
    }
}

/// The series of one route × target: made on the pair's first request, each series on its
/// first use.
struct RouteSeries {
    route: Value,
    target: Value,
    /// The target's provider, from the first observation that named it.
    provider: OnceLock<Value>,
    requests: [OnceLock<Counter>; 5],
    duration_ok: OnceLock<Histogram>,
    first_chunk: OnceLock<Histogram>,
    input_tokens: OnceLock<Histogram>,
    output_tokens: OnceLock<Histogram>,
    spend: OnceLock<Spend>,
    /// `aigw.attempts{kind="first", outcome="served"}`: nearly every request's one attempt.
    first_served: OnceLock<Counter>,
    failovers: OnceLock<Counter>,
    continuations: OnceLock<Counter>,
    /// `aigw.response_cache.lookups` by outcome: `hit`, `miss`.
    cache: [OnceLock<Counter>; 2],
}

impl RouteSeries {
    fn new(route: Value, target: Value) -> RouteSeries {
        RouteSeries {
            route,
            target,
            provider: OnceLock::new(),
            requests: Default::default(),
            duration_ok: OnceLock::new(),
            first_chunk: OnceLock::new(),
            input_tokens: OnceLock::new(),
            output_tokens: OnceLock::new(),
            spend: OnceLock::new(),
            first_served: OnceLock::new(),
            failovers: OnceLock::new(),
            continuations: OnceLock::new(),
            cache: Default::default(),
        }
    }

    fn pair(&self) -> Labels<2> {
        [
            (l::ROUTE.prometheus, self.route.clone()),
            (l::TARGET.prometheus, self.target.clone()),
        ]
    }

    /// The GenAI labels: operation, model (the route), provider, target.
    fn genai(&self) -> Labels<4> {
        [
            (
                l::OPERATION.prometheus,
                Value::Static(names::OPERATION_CHAT),
            ),
            (l::REQUEST_MODEL.prometheus, self.route.clone()),
            (
                l::PROVIDER.prometheus,
                self.provider.get().cloned().unwrap_or(Value::Static("")),
            ),
            (l::TARGET.prometheus, self.target.clone()),
        ]
    }

    fn genai_with(&self, label: names::Label, value: &'static str) -> Labels<5> {
        let [a, b, c, d] = self.genai();
        [a, b, c, d, (label.prometheus, Value::Static(value))]
    }

    fn attempt(
        &self,
        f: &Families,
        kind: &'static str,
        outcome: &'static str,
        class: &'static str,
    ) {
        if kind == "first" && outcome == "served" {
            self.first_served
                .get_or_init(|| {
                    f.attempts
                        .get_or_create_owned(&self.attempt_labels(kind, outcome, class))
                })
                .inc();
            return;
        }
        f.attempts
            .get_or_create(&self.attempt_labels(kind, outcome, class))
            .inc();
    }

    fn attempt_labels(
        &self,
        kind: &'static str,
        outcome: &'static str,
        class: &'static str,
    ) -> Labels<5> {
        let [route, target] = self.pair();
        [
            route,
            target,
            (l::KIND.prometheus, Value::Static(kind)),
            (l::OUTCOME.prometheus, Value::Static(outcome)),
            (l::FAILURE_CLASS.prometheus, Value::Static(class)),
        ]
    }
}

/// The series of one key × route.
struct KeySeries {
    key: Value,
    route: Value,
    requests: [OnceLock<Counter>; 5],
    input_tokens: OnceLock<Counter>,
    output_tokens: OnceLock<Counter>,
    spend: OnceLock<Spend>,
}

impl KeySeries {
    fn pair(&self) -> Labels<2> {
        [
            (l::KEY.prometheus, self.key.clone()),
            (l::ROUTE.prometheus, self.route.clone()),
        ]
    }

    fn with(&self, label: names::Label, value: &'static str) -> Labels<3> {
        let [a, b] = self.pair();
        [a, b, (label.prometheus, Value::Static(value))]
    }
}

/// The series of one tool.
struct ToolSeries {
    tool: Value,
    ok: OnceLock<Counter>,
    hits: OnceLock<Counter>,
    duration_ok: OnceLock<Histogram>,
}

/// Every metric of the process.
pub struct Metrics {
    options: MetricsOptions,
    registry: Registry,
    families: Families,
    routes: Bounded<RouteSeries>,
    keys: Bounded<KeySeries>,
    tools: Bounded<ToolSeries>,
    quota: Bounded<Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new(MetricsOptions::default())
    }
}

impl Metrics {
    pub fn new(options: MetricsOptions) -> Metrics {
        let families = Families::new();
        let mut registry = Registry::default();
        families.register(&mut registry);
        let cap = options.max_series_per_metric;
        Metrics {
            options,
            registry,
            families,
            routes: Bounded::new("route × target", cap),
            keys: Bounded::new("key × route", cap),
            tools: Bounded::new("tool", cap),
            quota: Bounded::new("key × limit", cap),
        }
    }

    pub fn options(&self) -> MetricsOptions {
        self.options
    }

    pub fn enabled(&self) -> bool {
        self.options.enabled
    }

    /// A finished chat completion.
    pub fn request(&self, request: &RequestObservation<'_>) {
        if !self.options.enabled {
            return;
        }
        let f = &self.families;
        let target = request.target.unwrap_or(NO_TARGET);
        let served = self.routes.get(request.route, target, RouteSeries::new);
        if let Some(provider) = request.provider {
            served
                .provider
                .get_or_init(|| Value::Shared(std::sync::Arc::from(provider)));
        }
        let class = status_class(request.status);
        served.requests[class]
            .get_or_init(|| {
                let [route, target] = served.pair();
                f.requests.get_or_create_owned(&[
                    route,
                    target,
                    (
                        l::STATUS_CLASS.prometheus,
                        Value::Static(STATUS_CLASSES[class]),
                    ),
                ])
            })
            .inc();
        let seconds = request.duration.as_secs_f64();
        if request.status < 400 {
            served
                .duration_ok
                .get_or_init(|| {
                    f.duration
                        .get_or_create_owned(&served.genai_with(l::ERROR_TYPE, ""))
                })
                .observe(seconds);
        } else {
            f.duration
                .get_or_create(&served.genai_with(l::ERROR_TYPE, error_type(request.status)))
                .observe(seconds);
        }
        if let Some(first) = request.time_to_first_chunk {
            served
                .first_chunk
                .get_or_init(|| f.first_chunk.get_or_create_owned(&served.genai()))
                .observe(first.as_secs_f64());
        }
        if let Some(input) = request.input_tokens {
            served
                .input_tokens
                .get_or_init(|| {
                    f.tokens
                        .get_or_create_owned(&served.genai_with(l::TOKEN_TYPE, "input"))
                })
                .observe(input as f64);
        }
        if let Some(output) = request.output_tokens {
            served
                .output_tokens
                .get_or_init(|| {
                    f.tokens
                        .get_or_create_owned(&served.genai_with(l::TOKEN_TYPE, "output"))
                })
                .observe(output as f64);
        }
        let usd = request.spend_micro_usd as f64 / 1e6;
        if request.spend_micro_usd > 0 {
            served
                .spend
                .get_or_init(|| f.spend.get_or_create_owned(&served.pair()))
                .inc_by(usd);
        }
        if request.continuations > 0 {
            served
                .continuations
                .get_or_init(|| f.continuations.get_or_create_owned(&served.pair()))
                .inc_by(u64::from(request.continuations));
        }
        if let Some(outcome) = request.cache {
            let index = usize::from(outcome != CACHE_OUTCOMES[0]);
            served.cache[index]
                .get_or_init(|| {
                    f.cache_lookups.get_or_create_owned(&[
                        (l::ROUTE.prometheus, served.route.clone()),
                        (l::OUTCOME.prometheus, Value::Static(CACHE_OUTCOMES[index])),
                    ])
                })
                .inc();
        }
        self.attempts(request, &served);
        if let Some(key) = request.key {
            self.key(key, request, class, usd);
        }
    }

    fn attempts(&self, request: &RequestObservation<'_>, served: &RouteSeries) {
        let f = &self.families;
        let Some(first) = request.attempts.first() else {
            return;
        };
        for attempt in request.attempts {
            let class = attempt.failure_class.unwrap_or("");
            if attempt.target == served.target.as_str() {
                served.attempt(f, attempt.kind, attempt.outcome, class);
            } else {
                self.routes
                    .get(request.route, attempt.target, RouteSeries::new)
                    .attempt(f, attempt.kind, attempt.outcome, class);
            }
        }
        if request.attempts.iter().any(|a| a.target != first.target) {
            served
                .failovers
                .get_or_init(|| f.failovers.get_or_create_owned(&served.pair()))
                .inc();
        }
    }

    fn key(&self, key: &str, request: &RequestObservation<'_>, class: usize, usd: f64) {
        let f = &self.families;
        let series = self.keys.get(key, request.route, |key, route| KeySeries {
            key,
            route,
            requests: Default::default(),
            input_tokens: OnceLock::new(),
            output_tokens: OnceLock::new(),
            spend: OnceLock::new(),
        });
        series.requests[class]
            .get_or_init(|| {
                f.key_requests
                    .get_or_create_owned(&series.with(l::STATUS_CLASS, STATUS_CLASSES[class]))
            })
            .inc();
        if let Some(input) = request.input_tokens.filter(|n| *n > 0) {
            series
                .input_tokens
                .get_or_init(|| {
                    f.key_tokens
                        .get_or_create_owned(&series.with(l::TOKEN_TYPE, "input"))
                })
                .inc_by(input);
        }
        if let Some(output) = request.output_tokens.filter(|n| *n > 0) {
            series
                .output_tokens
                .get_or_init(|| {
                    f.key_tokens
                        .get_or_create_owned(&series.with(l::TOKEN_TYPE, "output"))
                })
                .inc_by(output);
        }
        if usd > 0.0 {
            series
                .spend
                .get_or_init(|| f.key_spend.get_or_create_owned(&series.pair()))
                .inc_by(usd);
        }
    }

    /// A finished tool call.
    pub fn tool(&self, call: &ToolObservation<'_>) {
        if !self.options.enabled {
            return;
        }
        let f = &self.families;
        let series = self.tools.get(call.tool, "", |tool, _| ToolSeries {
            tool,
            ok: OnceLock::new(),
            hits: OnceLock::new(),
            duration_ok: OnceLock::new(),
        });
        let tool = (l::TOOL.prometheus, series.tool.clone());
        let operation = (
            l::OPERATION.prometheus,
            Value::Static(names::OPERATION_EXECUTE_TOOL),
        );
        let seconds = call.duration.as_secs_f64();
        match call.error {
            None => {
                series
                    .ok
                    .get_or_init(|| {
                        f.tool_calls.get_or_create_owned(&[
                            tool.clone(),
                            (l::OUTCOME.prometheus, Value::Static("ok")),
                        ])
                    })
                    .inc();
                series
                    .duration_ok
                    .get_or_init(|| {
                        f.tool_duration.get_or_create_owned(&[
                            operation.clone(),
                            tool.clone(),
                            (l::ERROR_TYPE.prometheus, Value::Static("")),
                        ])
                    })
                    .observe(seconds);
            }
            Some(error) => {
                f.tool_calls
                    .get_or_create(&[
                        tool.clone(),
                        (l::OUTCOME.prometheus, Value::Static("error")),
                    ])
                    .inc();
                f.tool_duration
                    .get_or_create(&[
                        operation,
                        tool.clone(),
                        (l::ERROR_TYPE.prometheus, Value::Static(error)),
                    ])
                    .observe(seconds);
            }
        }
        if call.cache_hit {
            series
                .hits
                .get_or_init(|| f.tool_cache_hits.get_or_create_owned(&[tool]))
                .inc();
        }
    }

    /// A request or tool call a key's limits refused.
    pub fn quota_rejected(&self, rejection: &QuotaObservation<'_>) {
        if !self.options.enabled {
            return;
        }
        let f = &self.families;
        self.quota
            .get(rejection.key, rejection.limit, |key, limit| {
                f.key_quota
                    .get_or_create_owned(&[(l::KEY.prometheus, key), (l::LIMIT.prometheus, limit)])
            })
            .inc();
    }

    /// The exposition: every family fed from observations, then what `scrape` read of the
    /// current state.
    pub fn encode(&self, scrape: Scrape, format: Format) -> String {
        let mut state = Registry::default();
        state.register_collector(Box::new(scrape));
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a label value,
        // and a partial exposition is still better than none.
        let encoded = match format {
            Format::Prometheus => prometheus_text::encode(&mut out, &self.registry)
                .and_then(|()| prometheus_text::encode(&mut out, &state)),
            Format::OpenMetrics => text::encode_registry(&mut out, &self.registry)
                .and_then(|()| text::encode_registry(&mut out, &state))
                .and_then(|()| text::encode_eof(&mut out)),
        };
        if let Err(error) = encoded {
            tracing::warn!(%error, "metrics: the exposition could not be encoded whole");
        }
        out
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
