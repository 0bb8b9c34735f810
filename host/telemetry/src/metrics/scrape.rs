//! What a scrape reads of the current state, as plain values the server gathers when
//! `/metrics` is asked (breakers and cooldowns from the router's health registry, per-plugin
//! call counters from the runtime, the store's counters and file size), and how it is written:
//! a prometheus-client collector that owns the values for one encoding. Nothing here is counted
//! on the hot path.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::names::{self, Kind, Metric, labels as l};

/// Durations as counted outside prometheus-client (plain atomics in the runtime and the store):
/// a count per bucket (not cumulative) with the bucket's upper bound in seconds, their sum and
/// their count (which counts the ones past the last bound too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Durations {
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

/// One target's health now.
#[derive(Debug, Clone)]
pub struct TargetState {
    pub target: Arc<str>,
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// How long it is still out (rate-limit cooldown or open breaker).
    pub out_for: Duration,
    /// Failed attempts since start, by failure class: written for tool upstreams
    /// (`tool:<plugin>/<upstream>` targets) as `aigw.tool.upstream.failures`.
    pub failures: Vec<(&'static str, u64)>,
}

/// One loaded plugin's counters.
#[derive(Debug, Clone)]
pub struct PluginState {
    pub plugin: String,
    pub calls: u64,
    /// Faulted calls by kind (`trap`, `deadline`, …).
    pub faults: Vec<(&'static str, u64)>,
    pub duration: Durations,
    /// Warm instances ready now.
    pub pool_size: u64,
}

/// The memory store's counters and size.
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    pub reads: u64,
    pub writes: u64,
    pub read_duration: Durations,
    pub write_duration: Durations,
    pub database_bytes: u64,
}

/// Everything a scrape read of the current state.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub targets: Vec<TargetState>,
    pub plugins: Vec<PluginState>,
    /// `None` without a store.
    pub memory: Option<MemoryState>,
}

/// Breaker states, in the order their one-hot series are written.
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// The prefix of a tool upstream's target label.
const TOOL_TARGET_PREFIX: &str = "tool:";

type Fmt = Result<(), std::fmt::Error>;

fn descriptor<'s>(
    encoder: &'s mut DescriptorEncoder<'_>,
    name: &'s str,
    metric: &Metric,
    unit: Option<&'s prometheus_client::registry::Unit>,
) -> Result<MetricEncoder<'s>, std::fmt::Error> {
    let kind = match metric.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    // Help ends with a full stop, as prometheus-client writes it for registered families.
    encoder.encode_descriptor(name, &format!("{}.", metric.help), unit, kind)
}

/// Writes one family: `each` gets the metric's encoder and writes its series.
fn family(
    encoder: &mut DescriptorEncoder<'_>,
    metric: Metric,
    each: impl FnOnce(&mut MetricEncoder<'_>) -> Fmt,
) -> Fmt {
    let name = metric.base();
    let unit = super::unit(metric.unit);
    let mut m = descriptor(encoder, &name, &metric, unit.as_ref())?;
    each(&mut m)
}

fn counter(m: &mut MetricEncoder<'_>, labels: &[(&'static str, &str)], value: u64) -> Fmt {
    m.encode_family(&labels)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

fn gauge_i(m: &mut MetricEncoder<'_>, labels: &[(&'static str, &str)], value: i64) -> Fmt {
    m.encode_family(&labels)?.encode_gauge(&value)
}

fn gauge_f(m: &mut MetricEncoder<'_>, labels: &[(&'static str, &str)], value: f64) -> Fmt {
    m.encode_family(&labels)?.encode_gauge(&value)
}

fn histogram(m: &mut MetricEncoder<'_>, labels: &[(&'static str, &str)], d: &Durations) -> Fmt {
    m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
        d.sum_seconds,
        d.count,
        &d.buckets,
        None,
    )
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Fmt {
        let e = &mut encoder;
        family(e, names::BREAKER_STATE, |m| {
            for t in &self.targets {
                for state in BREAKER_STATES {
                    let labels = [
                        (l::TARGET.prometheus, &*t.target),
                        (l::STATE.prometheus, state),
                    ];
                    gauge_i(m, &labels, i64::from(t.state == state))?;
                }
            }
            Ok(())
        })?;
        family(e, names::COOLDOWN, |m| {
            for t in &self.targets {
                gauge_f(
                    m,
                    &[(l::TARGET.prometheus, &*t.target)],
                    t.out_for.as_secs_f64(),
                )?;
            }
            Ok(())
        })?;
        family(e, names::TOOL_UPSTREAM_FAILURES, |m| {
            for t in self
                .targets
                .iter()
                .filter(|t| t.target.starts_with(TOOL_TARGET_PREFIX))
            {
                for (class, count) in &t.failures {
                    let labels = [
                        (l::TARGET.prometheus, &*t.target),
                        (l::FAILURE_CLASS.prometheus, *class),
                    ];
                    counter(m, &labels, *count)?;
                }
            }
            Ok(())
        })?;
        family(e, names::PLUGIN_CALLS, |m| {
            for p in &self.plugins {
                counter(m, &[(l::PLUGIN.prometheus, &p.plugin)], p.calls)?;
            }
            Ok(())
        })?;
        family(e, names::PLUGIN_FAULTS, |m| {
            for p in &self.plugins {
                for (kind, count) in &p.faults {
                    let labels = [
                        (l::PLUGIN.prometheus, p.plugin.as_str()),
                        (l::KIND.prometheus, *kind),
                    ];
                    counter(m, &labels, *count)?;
                }
            }
            Ok(())
        })?;
        family(e, names::PLUGIN_CALL_DURATION, |m| {
            for p in &self.plugins {
                histogram(m, &[(l::PLUGIN.prometheus, &p.plugin)], &p.duration)?;
            }
            Ok(())
        })?;
        family(e, names::PLUGIN_POOL_SIZE, |m| {
            for p in &self.plugins {
                let size = i64::try_from(p.pool_size).unwrap_or(i64::MAX);
                gauge_i(m, &[(l::PLUGIN.prometheus, &p.plugin)], size)?;
            }
            Ok(())
        })?;
        let Some(memory) = &self.memory else {
            return Ok(());
        };
        family(e, names::MEMORY_OPERATIONS, |m| {
            counter(m, &[(l::KIND.prometheus, "read")], memory.reads)?;
            counter(m, &[(l::KIND.prometheus, "write")], memory.writes)
        })?;
        family(e, names::MEMORY_OPERATION_DURATION, |m| {
            histogram(m, &[(l::KIND.prometheus, "read")], &memory.read_duration)?;
            histogram(m, &[(l::KIND.prometheus, "write")], &memory.write_duration)
        })?;
        family(e, names::MEMORY_DATABASE_SIZE, |m| {
            let size = i64::try_from(memory.database_bytes).unwrap_or(i64::MAX);
            m.encode_gauge(&size)
        })
    }
}
