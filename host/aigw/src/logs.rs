//! The log on stderr: human lines or JSON lines, and why neither can be forged by a client.
//!
//! Log fields carry client text (the model name a request asked for) and upstream or plugin text
//! (error messages, a plugin's own log lines), either of which may hold newlines or terminal
//! escape sequences: written raw, a client could start a line of its own (`\nINFO forged…`) or
//! recolour and rewrite the operator's terminal. The JSON format is safe by construction (every
//! value is a JSON string, controls escaped). The human format writes every field value through
//! [`Escaping`]: C0 and C1 controls, DEL and the Unicode line separators and bidi overrides come
//! out as visible escapes (`\n`, `\u{1b}`), and a value is cut after [`MAX_FIELD_BYTES`], so no
//! line is megabytes long whatever a field holds. (tracing-subscriber's own sanitising, since
//! 0.3.20, covers only the message and only ESC-like controls, not newlines.) Colours are used
//! only when stderr is a terminal, so a log file never holds escape bytes at all.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::Mutex;

use aigw_server::{LogChange, LogControl, LogSetting};
use aigw_telemetry::{Budget, names};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::LogFormat;

/// The most bytes of one field value a human log line shows.
pub(crate) const MAX_FIELD_BYTES: usize = 4096;

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
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(field).delimited(" "))
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

/// One field of a human line: `name=value` (the message without its name), the value escaped
/// and capped.
fn field(writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    if field.name() != "message" {
        write!(writer, "{}=", field.name())?;
    }
    let mut escaping = Escaping::new(writer, MAX_FIELD_BYTES);
    write!(escaping, "{value:?}")?;
    escaping.finish()
}

/// A writer that escapes what could break or forge a line and stops after a byte budget,
/// saying how much it left out.
pub(crate) struct Escaping<'w, W: fmt::Write>(Budget<&'w mut W>);

impl<'w, W: fmt::Write> Escaping<'w, W> {
    pub(crate) fn new(inner: &'w mut W, budget: usize) -> Escaping<'w, W> {
        Escaping(Budget::new(inner, budget))
    }

    /// Says how many bytes were left out, if any.
    pub(crate) fn finish(self) -> fmt::Result {
        self.0.finish()
    }
}

/// Whether a character must not reach a log line as itself: controls (C0, DEL, C1), and the
/// characters that end lines or reorder text in viewers (U+2028/9, bidi marks and overrides).
fn unsafe_in_log(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Nearly all log text is printable ASCII: one pass over the bytes, no char decoding.
        if s.bytes().all(|b| matches!(b, b' '..=b'~')) {
            return self.0.write_str(s);
        }
        let mut safe_from = 0;
        for (at, c) in s.char_indices() {
            if !unsafe_in_log(c) {
                continue;
            }
            self.0.write_str(&s[safe_from..at])?;
            // Controls are rare in log text: formatting one may allocate.
            let other;
            let text = match c {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c => {
                    other = format!("\\u{{{:x}}}", u32::from(c));
                    other.as_str()
                }
            };
            // An escape is written whole or not at all, counted as the character it stands for.
            self.0.write_whole(text, c.len_utf8())?;
            safe_from = at + c.len_utf8();
        }
        self.0.write_str(&s[safe_from..])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn escaped(text: &str, budget: usize) -> String {
        let mut out = String::new();
        let mut escaping = Escaping::new(&mut out, budget);
        escaping.write_str(text).unwrap();
        escaping.finish().unwrap();
        out
    }

    #[test]
    fn controls_and_line_breakers_come_out_as_visible_escapes() {
        assert_eq!(
            escaped("x\nINFO forged line\u{1b}[31m", 100),
            "x\\nINFO forged line\\u{1b}[31m"
        );
        assert_eq!(escaped("a\r\tb\u{0}\u{7f}", 100), "a\\r\\tb\\u{0}\\u{7f}");
        assert_eq!(escaped("c1\u{9b}31m", 100), "c1\\u{9b}31m");
        assert_eq!(escaped("l\u{2028}r\u{202e}", 100), "l\\u{2028}r\\u{202e}");
        // Ordinary text, quotes and non-ASCII letters are left alone.
        assert_eq!(escaped("groq/llama \"é\" ✓", 100), "groq/llama \"é\" ✓");
    }

    #[test]
    fn a_long_value_is_cut_at_the_budget_saying_how_much_is_missing() {
        let long = "é".repeat(3000);
        let out = escaped(&long, 4096);
        assert!(out.len() < 4096 + 20, "{}", out.len());
        assert!(
            out.ends_with("…(+1904 bytes)"),
            "{}",
            &out[out.len() - 30..]
        );
        let out = escaped("ab\ncd", 3);
        assert_eq!(out, "ab…(+3 bytes)");
        // A run cut before a control keeps what fits.
        assert_eq!(escaped("abcdef\n", 4), "abcd…(+3 bytes)");
        assert_eq!(escaped("abc", 3), "abc");
    }

    #[test]
    fn a_value_written_in_pieces_is_cut_once() {
        let mut out = String::new();
        let mut escaping = Escaping::new(&mut out, 4);
        for piece in ["ab", "cd", "ef", "\n"] {
            escaping.write_str(piece).unwrap();
        }
        escaping.finish().unwrap();
        assert_eq!(out, "abcd…(+3 bytes)");
    }
}
