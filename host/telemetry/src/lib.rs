//! What aigw tells its operators about itself: the telemetry names (OpenTelemetry GenAI
//! conventions and aigw's own, in [`names`], the one place a rename in the conventions is made),
//! the process's metrics (exposed in the Prometheus text format), the last hour's history the
//! dashboard draws, the observations both are fed from, the byte budget every log field is
//! written under ([`Budget`]) and the fixed-point numbers of a log line ([`Decimal`]).
//! Observations are plain values the server builds once per finished request (from its one
//! request record), tool call and quota refusal; this crate knows nothing of hyper, wasmtime or
//! the store.

mod budget;
mod decimal;
pub mod history;
mod metrics;
pub mod names;
mod observation;

pub use budget::Budget;
pub use decimal::Decimal;
pub use history::{Clock, History, HistoryBucket, HistorySnapshot, ManualClock, SystemClock};
pub use metrics::{
    Durations, Format, MemoryState, Metrics, MetricsOptions, PluginState, Scrape, TargetState,
};
pub use observation::{AttemptObservation, QuotaObservation, RequestObservation, ToolObservation};

/// The process's telemetry: one per process, shared by every served state (like the usage
/// ledger), so counters survive state swaps.
#[derive(Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    pub history: History,
}

impl Telemetry {
    pub fn new() -> Telemetry {
        Telemetry::default()
    }

    /// The process's telemetry with its metrics configured by `[metrics]`.
    pub fn with_metrics(options: MetricsOptions) -> Telemetry {
        Telemetry {
            metrics: Metrics::new(options),
            history: History::default(),
        }
    }

    /// A finished chat completion, reported once by the server's request record.
    pub fn request(&self, request: &RequestObservation<'_>) {
        self.metrics.request(request);
        self.history.request(request);
    }

    /// A finished tool call, reported once by the toolbox's record.
    pub fn tool(&self, call: &ToolObservation<'_>) {
        self.metrics.tool(call);
    }

    /// A request or tool call a key's limits refused.
    pub fn quota_rejected(&self, rejection: &QuotaObservation<'_>) {
        self.metrics.quota_rejected(rejection);
    }
}
