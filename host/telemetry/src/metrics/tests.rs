//! The metrics as a scraper reads them: names, labels, values, caps and buckets, checked on the
//! encoded exposition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::AttemptObservation;

/// A sample: its name, its labels (sorted) and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// `name{a="x",b="y"} value` lines → (name, labels sorted) → value; comments skipped.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut labels: Vec<(String, String)> = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap();
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            labels.sort();
            (name.to_owned(), labels, value.parse().unwrap())
        })
        .collect()
}

/// The value of the one sample of `name` whose labels include all of `want`; panics when none
/// or several match.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples(text)
        .into_iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {want:?} in:\n{text}");
    found[0]
}

fn count(text: &str, name: &str) -> usize {
    samples(text).iter().filter(|(n, _, _)| n == name).count()
}

fn served<'a>(
    route: &'a str,
    target: &'a str,
    attempts: &'a [AttemptObservation<'a>],
) -> RequestObservation<'a> {
    RequestObservation {
        route,
        provider: Some("groq"),
        target: Some(target),
        status: 200,
        stream: false,
        key: Some("key_1"),
        duration: Duration::from_millis(30),
        time_to_first_chunk: None,
        continuations: 0,
        cache: None,
        attempts,
        input_tokens: Some(12),
        output_tokens: Some(5),
        spend_micro_usd: 250,
        error_type: None,
    }
}

fn attempt<'a>(
    target: &'a str,
    outcome: &'static str,
    class: Option<&'static str>,
) -> AttemptObservation<'a> {
    AttemptObservation {
        target,
        kind: "first",
        outcome,
        failure_class: class,
        duration: Duration::from_millis(10),
    }
}

fn encode(metrics: &Metrics) -> String {
    metrics.encode(Scrape::default(), Format::Prometheus)
}

/// A scrape naming a target, a tool upstream, a plugin and the store.
fn full_scrape() -> Scrape {
    Scrape {
        targets: vec![
            TargetState {
                target: Arc::from("groq/llama"),
                state: "open",
                out_for: Duration::from_millis(2500),
                failures: vec![("unavailable", 3)],
            },
            TargetState {
                target: Arc::from("tool:weather/open-meteo"),
                state: "closed",
                out_for: Duration::ZERO,
                failures: vec![("timeout", 2)],
            },
        ],
        plugins: vec![PluginState {
            plugin: "groq".into(),
            calls: 7,
            faults: vec![("trap", 1)],
            duration: Durations {
                buckets: vec![(0.001, 5), (0.01, 1)],
                sum_seconds: 0.02,
                count: 7,
            },
            pool_size: 2,
        }],
        memory: Some(MemoryState {
            reads: 4,
            writes: 3,
            database_bytes: 8192,
            ..MemoryState::default()
        }),
    }
}

#[test]
fn every_family_is_exposed_under_its_derived_name() {
    let metrics = Metrics::default();
    // A family with no series is left out of the exposition: give each one.
    let attempts = [
        attempt("a/one", "failed", Some("timeout")),
        attempt("groq/llama", "served", None),
    ];
    metrics.request(&RequestObservation {
        stream: true,
        time_to_first_chunk: Some(Duration::from_millis(40)),
        continuations: 1,
        cache: Some("miss"),
        ..served("fast", "groq/llama", &attempts)
    });
    metrics.tool(&ToolObservation {
        tool: "weather",
        error: None,
        cache_hit: true,
        duration: Duration::from_millis(1),
    });
    metrics.quota_rejected(&QuotaObservation {
        key: "key_1",
        limit: "budget",
    });
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let text = metrics.encode(full_scrape(), format);
        for metric in names::ALL {
            let kind = match metric.kind {
                names::Kind::Counter => "counter",
                names::Kind::Gauge => "gauge",
                names::Kind::Histogram => "histogram",
            };
            // OpenMetrics names a counter's family without `_total`.
            let name = match (format, metric.kind) {
                (Format::OpenMetrics, names::Kind::Counter) => {
                    metric.prometheus().trim_end_matches("_total").to_owned()
                }
                _ => metric.prometheus(),
            };
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} missing:\n{text}"
            );
        }
        assert_eq!(text.ends_with("# EOF\n"), format == Format::OpenMetrics);
    }
}

#[test]
fn a_served_request_counts_once_with_its_route_target_and_key() {
    let metrics = Metrics::default();
    let attempts = [attempt("groq/llama", "served", None)];
    metrics.request(&served("fast", "groq/llama", &attempts));
    let text = encode(&metrics);
    let pair = [("route", "fast"), ("target", "groq/llama")];
    assert_eq!(
        value(
            &text,
            "aigw_requests_total",
            &[pair[0], pair[1], ("status_class", "2xx")]
        ),
        1.0
    );
    assert_eq!(count(&text, "aigw_requests_total"), 1);
    assert_eq!(
        value(
            &text,
            "aigw_attempts_total",
            &[pair[0], pair[1], ("kind", "first"), ("outcome", "served")]
        ),
        1.0
    );
    assert_eq!(count(&text, "aigw_failovers_total"), 0);
    assert_eq!(value(&text, "aigw_spend_usd_total", &pair), 0.00025);
    let genai = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_request_model", "fast"),
        ("gen_ai_provider_name", "groq"),
        ("target", "groq/llama"),
    ];
    assert_eq!(
        value(
            &text,
            "gen_ai_client_operation_duration_seconds_count",
            &genai
        ),
        1.0
    );
    let mut input = genai.to_vec();
    input.push(("gen_ai_token_type", "input"));
    assert_eq!(value(&text, "gen_ai_client_token_usage_sum", &input), 12.0);
    let key = [("key", "key_1"), ("route", "fast")];
    assert_eq!(
        value(
            &text,
            "aigw_key_requests_total",
            &[key[0], key[1], ("status_class", "2xx")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "aigw_key_tokens_total",
            &[key[0], key[1], ("gen_ai_token_type", "output")]
        ),
        5.0
    );
    assert_eq!(value(&text, "aigw_key_spend_usd_total", &key), 0.00025);
}

#[test]
fn a_failover_counts_both_attempts_and_one_failover() {
    let metrics = Metrics::default();
    let attempts = [
        attempt("a/one", "failed", Some("unavailable")),
        AttemptObservation {
            kind: "retry",
            ..attempt("b/two", "served", None)
        },
    ];
    metrics.request(&served("r", "b/two", &attempts));
    metrics.request(&served("r", "b/two", &attempts[1..]));
    let text = encode(&metrics);
    assert_eq!(
        value(
            &text,
            "aigw_attempts_total",
            &[
                ("target", "a/one"),
                ("outcome", "failed"),
                ("failure_class", "unavailable")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "aigw_attempts_total",
            &[("target", "b/two"), ("kind", "retry")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "aigw_failovers_total",
            &[("route", "r"), ("target", "b/two")]
        ),
        1.0
    );
}

#[test]
fn errors_continuations_and_first_chunks_are_labelled() {
    let metrics = Metrics::default();
    let attempts = [attempt("a/one", "failed", Some("timeout"))];
    metrics.request(&RequestObservation {
        status: 504,
        provider: None,
        target: None,
        key: None,
        input_tokens: None,
        output_tokens: None,
        spend_micro_usd: 0,
        ..served("r", "", &attempts)
    });
    metrics.request(&RequestObservation {
        stream: true,
        time_to_first_chunk: Some(Duration::from_millis(3)),
        continuations: 2,
        ..served("r", "a/one", &[])
    });
    let text = encode(&metrics);
    assert_eq!(
        value(
            &text,
            "aigw_requests_total",
            &[("target", "none"), ("status_class", "5xx")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "gen_ai_client_operation_duration_seconds_count",
            &[("error_type", "504")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "aigw_stream_continuations_total",
            &[("target", "a/one")]
        ),
        2.0
    );
    let first_chunk = "gen_ai_client_operation_time_to_first_chunk_seconds_bucket";
    assert_eq!(value(&text, first_chunk, &[("le", "0.001")]), 0.0);
    assert_eq!(value(&text, first_chunk, &[("le", "0.005")]), 1.0);
    // No key: no per-key series.
    assert_eq!(count(&text, "aigw_key_requests_total"), 1);
}

#[test]
fn response_cache_lookups_count_hits_and_misses_per_route() {
    let metrics = Metrics::default();
    let attempts = [attempt("a/one", "served", None)];
    metrics.request(&RequestObservation {
        cache: Some("miss"),
        ..served("r", "a/one", &attempts)
    });
    for _ in 0..3 {
        metrics.request(&RequestObservation {
            cache: Some("hit"),
            ..served("r", "a/one", &[])
        });
    }
    // Not looked up (not cacheable, or the client opted out): not a lookup.
    metrics.request(&served("r", "a/one", &attempts));
    let text = encode(&metrics);
    let name = "aigw_response_cache_lookups_total";
    assert_eq!(
        value(&text, name, &[("route", "r"), ("outcome", "hit")]),
        3.0
    );
    assert_eq!(
        value(&text, name, &[("route", "r"), ("outcome", "miss")]),
        1.0
    );
    assert_eq!(count(&text, name), 2);
}

#[test]
fn histograms_bucket_by_their_upper_bounds() {
    let metrics = Metrics::default();
    for ms in [15, 30, 30, 100_000] {
        metrics.request(&RequestObservation {
            duration: Duration::from_millis(ms),
            ..served("r", "t", &[])
        });
    }
    let text = encode(&metrics);
    let bucket = "gen_ai_client_operation_duration_seconds_bucket";
    assert_eq!(value(&text, bucket, &[("le", "0.01")]), 0.0);
    assert_eq!(value(&text, bucket, &[("le", "0.02")]), 1.0);
    assert_eq!(value(&text, bucket, &[("le", "0.04")]), 3.0);
    assert_eq!(value(&text, bucket, &[("le", "81.92")]), 3.0);
    assert_eq!(value(&text, bucket, &[("le", "+Inf")]), 4.0);
    let sum = value(&text, "gen_ai_client_operation_duration_seconds_sum", &[]);
    assert!((sum - 100.075).abs() < 1e-9, "{sum}");
}

#[test]
fn past_the_cap_new_routes_and_keys_fold_into_other() {
    let metrics = Metrics::new(MetricsOptions {
        enabled: true,
        max_series_per_metric: 2,
    });
    for n in 0..5 {
        let key = format!("key_{n}");
        metrics.request(&RequestObservation {
            key: Some(&key),
            ..served("r", &format!("t/{n}"), &[])
        });
    }
    let text = encode(&metrics);
    assert_eq!(count(&text, "aigw_requests_total"), 3);
    assert_eq!(
        value(
            &text,
            "aigw_requests_total",
            &[("route", "other"), ("target", "other")]
        ),
        3.0
    );
    assert_eq!(
        value(&text, "aigw_requests_total", &[("target", "t/1")]),
        1.0
    );
    assert_eq!(count(&text, "aigw_key_requests_total"), 3);
    assert_eq!(
        value(&text, "aigw_key_requests_total", &[("key", "other")]),
        3.0
    );
}

#[test]
fn disabled_metrics_count_nothing() {
    let metrics = Metrics::new(MetricsOptions {
        enabled: false,
        ..MetricsOptions::default()
    });
    metrics.request(&served("r", "t", &[]));
    metrics.tool(&ToolObservation {
        tool: "weather",
        error: None,
        cache_hit: false,
        duration: Duration::ZERO,
    });
    assert_eq!(samples(&encode(&metrics)).len(), 0);
}

#[test]
fn tool_calls_and_quota_rejections_are_counted() {
    let metrics = Metrics::default();
    let call = ToolObservation {
        tool: "weather",
        error: None,
        cache_hit: false,
        duration: Duration::from_millis(20),
    };
    metrics.tool(&call);
    metrics.tool(&ToolObservation {
        cache_hit: true,
        ..call.clone()
    });
    metrics.tool(&ToolObservation {
        error: Some("invalid_arguments"),
        ..call.clone()
    });
    metrics.quota_rejected(&QuotaObservation {
        key: "key_1",
        limit: "requests_per_minute",
    });
    let text = encode(&metrics);
    assert_eq!(
        value(
            &text,
            "aigw_tool_calls_total",
            &[("tool", "weather"), ("outcome", "ok")]
        ),
        2.0
    );
    assert_eq!(
        value(&text, "aigw_tool_calls_total", &[("outcome", "error")]),
        1.0
    );
    assert_eq!(
        value(&text, "aigw_tool_cache_hits_total", &[("tool", "weather")]),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "gen_ai_execute_tool_duration_seconds_count",
            &[("error_type", "invalid_arguments")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "aigw_key_quota_rejections_total",
            &[("key", "key_1"), ("limit", "requests_per_minute")]
        ),
        1.0
    );
}

#[test]
fn the_scrape_writes_breakers_plugins_and_the_store() {
    let metrics = Metrics::default();
    let scrape = full_scrape();
    let text = metrics.encode(scrape, Format::Prometheus);
    let open = [("target", "groq/llama"), ("state", "open")];
    assert_eq!(value(&text, "aigw_target_breaker_state", &open), 1.0);
    assert_eq!(
        value(
            &text,
            "aigw_target_breaker_state",
            &[("target", "groq/llama"), ("state", "closed")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "aigw_target_cooldown_seconds",
            &[("target", "groq/llama")]
        ),
        2.5
    );
    // Only tool upstreams' failures are tool failures.
    assert_eq!(count(&text, "aigw_tool_upstream_failures_total"), 1);
    assert_eq!(
        value(
            &text,
            "aigw_tool_upstream_failures_total",
            &[("failure_class", "timeout")]
        ),
        2.0
    );
    assert_eq!(
        value(&text, "aigw_plugin_calls_total", &[("plugin", "groq")]),
        7.0
    );
    assert_eq!(
        value(&text, "aigw_plugin_faults_total", &[("kind", "trap")]),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "aigw_plugin_call_duration_seconds_bucket",
            &[("le", "0.01")]
        ),
        6.0
    );
    assert_eq!(
        value(
            &text,
            "aigw_plugin_call_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        7.0
    );
    assert_eq!(
        value(&text, "aigw_plugin_pool_size", &[("plugin", "groq")]),
        2.0
    );
    assert_eq!(
        value(&text, "aigw_memory_operations_total", &[("kind", "read")]),
        4.0
    );
    assert_eq!(value(&text, "aigw_memory_database_size_bytes", &[]), 8192.0);
}
