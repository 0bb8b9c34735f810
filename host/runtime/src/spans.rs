//! The span of one call into a plugin (`plugin encode`, `plugin feed`, `plugin invoke`, …),
//! under whatever span the caller is in (an attempt, a tool call). Only `tracing`: the binary's
//! OTLP layer turns it into an OpenTelemetry span; with OTLP off its call site is disabled and
//! building it costs a cached interest check (no field is evaluated).

use aigw_telemetry::names;

/// The span of `call` (a WIT function's short name) into the plugin named `plugin`.
pub(crate) fn call(plugin: &str, call: &'static str) -> tracing::Span {
    tracing::info_span!(
        target: names::TRACE_TARGET,
        names::SPAN_PLUGIN_CALL,
        { names::OTEL_NAME } = format_args!("{} {call}", names::SPAN_PLUGIN_CALL),
        { names::AIGW_PLUGIN } = plugin,
        { names::AIGW_PLUGIN_CALL } = call,
    )
}
