//! The log on stderr: human lines or JSON lines, and why neither can be forged by a client.
//!
//! Log fields carry client text (the model name a request asked for) and upstream or plugin text
//! (error messages, a plugin's own log lines), either of which may hold newlines or terminal
//! escape sequences: written raw, a client could start a line of its own (`\nINFO forged…`) or
//! recolour and rewrite the operator's terminal. The JSON format is safe by construction (every
//! value is a JSON string, controls escaped). The human format writes every field value through
//! [`Escaping`](crate::log_fields::Escaping) (in [`log_fields`](crate::log_fields)): C0 and C1
//! controls, DEL and the Unicode line separators and bidi overrides come out as visible escapes
//! (`\n`, `\u{1b}`), and a value is cut after
//! [`MAX_FIELD_BYTES`](crate::log_fields::MAX_FIELD_BYTES), so no line is megabytes long
//! whatever a field holds. (tracing-subscriber's own sanitising, since
//! 0.3.20, covers only the message and only ESC-like controls, not newlines.) Colours are used
//! only when stderr is a terminal, so a log file never holds escape bytes at all.

use std::io::IsTerminal;
use std::sync::Mutex;

use aigw_server::{LogChange, LogControl, LogSetting};
use aigw_telemetry::names;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::LogFormat;

/// The process's log and traces, once installed.
pub(crate) struct Logging {
    /// The log's filter, changeable while serving (`/admin/logging`).
    pub(crate) switch: std::sync::Arc<LogSwitch>,
    /// The OTLP exporter's provider when traces are on: flushed and shut down at exit.
    pub(crate) traces: Option<SdkTracerProvider>,
}

/// Installs the global subscriber: the log on stderr, filtered by `AIGW_LOG` (an `EnvFilter`,
/// default `info`) through a reloadable per-layer filter, and, when `traces` is given, the OTLP
/// layer, whose own filter takes only aigw's spans ([`names::TRACE_TARGET`]). The log's filter
/// never takes those spans: with traces off no layer wants them, and their call sites stay
/// disabled.
pub(crate) fn init(format: LogFormat, traces: Option<SdkTracerProvider>) -> Logging {
    let setting = std::env::var("AIGW_LOG").ok();
    let (directives, filter) = log_filter(setting.as_deref());
    let (filter, handle) = reload::Layer::new(filter);
    let stderr = tracing_subscriber::fmt::layer().with_writer(crate::log_batch::Stderr);
    let log: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Human => stderr
            .with_ansi(std::io::stderr().is_terminal())
            .fmt_fields(crate::log_fields::HumanFields)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => stderr
            .json()
            .flatten_event(true)
            .with_filter(filter)
            .boxed(),
    };
    // Two stacks rather than an `Option` layer: an absent layer would say "always" to every
    // call site, and the spans would be built (for no layer) instead of disabled.
    let registry = tracing_subscriber::registry().with(log);
    match &traces {
        None => registry.init(),
        Some(provider) => registry.with(otlp(provider)).init(),
    }
    Logging {
        switch: std::sync::Arc::new(LogSwitch {
            handle,
            directives: Mutex::new(directives),
        }),
        traces,
    }
}

/// The OTLP layer: aigw's spans only ([`names::TRACE_TARGET`]), to `provider`'s exporter.
fn otlp<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("aigw"))
        // What a span costs stays what it carries: no per-poll context switch, no
        // busy/idle timing, no thread or source location attributes.
        .with_context_activation(false)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_level(false)
        .with_filter(Targets::new().with_target(names::TRACE_TARGET, LevelFilter::TRACE))
}

/// The log's filter as the admin API changes it.
pub(crate) struct LogSwitch {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The directives as set (without the quiet targets and the spans' `off`).
    directives: Mutex<String>,
}

impl LogControl for LogSwitch {
    fn current(&self) -> LogSetting {
        let filter = self
            .directives
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let level = self
            .handle
            .with_current(|f| f.max_level_hint())
            .ok()
            .flatten()
            .unwrap_or(LevelFilter::TRACE);
        LogSetting {
            level: level.to_string().to_ascii_lowercase(),
            filter,
        }
    }

    fn set(&self, change: LogChange) -> Result<LogSetting, String> {
        let directives = match change {
            LogChange::Level(level) => level,
            LogChange::Filter(filter) => filter.trim().to_owned(),
        };
        if directives.is_empty() {
            return Err("an empty filter".to_owned());
        }
        let filter = parse_filter(&directives).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        *self.directives.lock().unwrap_or_else(|e| e.into_inner()) = directives;
        Ok(self.current())
    }
}

/// The filter when `AIGW_LOG` is unset or empty.
const DEFAULT_LOG_FILTER: &str = "info";

/// Put before the operator's filter: the wasm compiler's crates log each function they compile
/// at debug (~23,000 lines while the plugins load), which buried every other line of
/// `AIGW_LOG=debug`. Naming them in `AIGW_LOG` (`cranelift_codegen=debug`) still wins.
const QUIET_LOG_TARGETS: &str = "cranelift=warn,wasmtime_internal_cranelift=warn";

/// The operator's directives as the log's filter: the quiet targets first, and the trace
/// spans' target off last (more specific than any `aigw=…` the operator writes), so the log
/// never takes a span the OTLP layer exports.
fn parse_filter(directives: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    EnvFilter::builder().parse(format!(
        "{QUIET_LOG_TARGETS},{directives},{}=off",
        names::TRACE_TARGET
    ))
}

/// The log filter from `AIGW_LOG` (an `EnvFilter`: `debug`, `aigw=debug` for aigw's own crates
/// only, `info,aigw_server=debug`, …) and its directives; an invalid one is reported and the
/// default used.
fn log_filter(setting: Option<&str>) -> (String, EnvFilter) {
    let setting = setting.map(str::trim).filter(|s| !s.is_empty());
    let directives = setting.unwrap_or(DEFAULT_LOG_FILTER);
    match parse_filter(directives) {
        Ok(filter) => (directives.to_owned(), filter),
        Err(e) => {
            eprintln!(
                "aigw: AIGW_LOG={:?} is not a valid log filter ({e}); logging at {DEFAULT_LOG_FILTER}",
                setting.unwrap_or_default()
            );
            let fallback = format!("{DEFAULT_LOG_FILTER},{}=off", names::TRACE_TARGET);
            (DEFAULT_LOG_FILTER.to_owned(), EnvFilter::new(fallback))
        }
    }
}
