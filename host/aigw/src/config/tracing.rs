//! `[tracing]`: where OpenTelemetry traces are exported (OTLP over HTTP, protobuf), validated
//! into [`TracingOptions`] (whose `Default` holds the defaults). Each key left out may come from
//! the standard `OTEL_*` variables, resolved when the exporter starts (`otlp.rs`): the file
//! wins over the environment.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

/// The service name spans carry when neither the config nor `OTEL_SERVICE_NAME` names one.
pub const DEFAULT_SERVICE_NAME: &str = "aigw";
/// The ratio of new traces sampled when neither the config nor `OTEL_TRACES_SAMPLER` says.
pub const DEFAULT_SAMPLE_RATIO: f64 = 1.0;

/// `[tracing]` as configured; `None` where the file says nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TracingOptions {
    /// The collector's OTLP/HTTP base URL (`/v1/traces` is appended, as for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`); unset with no variable either: traces are off.
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    /// New traces sampled (0..=1); a client's sampled flag is followed either way.
    pub sample_ratio: Option<f64>,
    /// Sent with every export (a collector's API key, …), over the variables' same names.
    pub headers: BTreeMap<String, String>,
    /// The bound on one export request.
    pub timeout: Option<Duration>,
}

/// The export timeout when neither the config nor `OTEL_EXPORTER_OTLP_TIMEOUT` sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracing {
    otlp_endpoint: Option<Spanned<String>>,
    service_name: Option<Spanned<String>>,
    sample_ratio: Option<Spanned<f64>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    timeout_ms: Number,
}

pub(super) fn validate(raw: &RawTracing, values: &Values) -> Result<TracingOptions, ConfigError> {
    let otlp_endpoint = match &raw.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let url = values.expand(endpoint, "tracing.otlp_endpoint")?;
            match url::Url::parse(&url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(url),
                _ => {
                    return Err(values.error(
                        Some(endpoint.span()),
                        format!(
                            "`tracing.otlp_endpoint` must be an http(s) URL (the collector's \
                             OTLP/HTTP base, like http://127.0.0.1:4318), got {url:?}"
                        ),
                    ));
                }
            }
        }
    };
    let service_name = match &raw.service_name {
        None => None,
        Some(name) => {
            let expanded = values.expand(name, "tracing.service_name")?;
            if expanded.trim().is_empty() {
                return Err(values.error(
                    Some(name.span()),
                    "`tracing.service_name` must not be empty",
                ));
            }
            Some(expanded)
        }
    };
    let sample_ratio = match &raw.sample_ratio {
        None => None,
        Some(ratio) => {
            let value = *ratio.get_ref();
            if !(0.0..=1.0).contains(&value) {
                return Err(values.error(
                    Some(ratio.span()),
                    format!("`tracing.sample_ratio` must be between 0 and 1, got {value}"),
                ));
            }
            Some(value)
        }
    };
    let mut headers = BTreeMap::new();
    for (name, value) in &raw.headers {
        let key = format!("tracing.headers.{name}");
        let expanded = values.expand(value, &key)?;
        let valid_name = http::HeaderName::from_bytes(name.as_bytes()).is_ok();
        if !valid_name || http::HeaderValue::from_str(&expanded).is_err() {
            return Err(values.error(
                Some(value.span()),
                format!("`{key}`: not a valid HTTP header name and value"),
            ));
        }
        headers.insert(name.to_ascii_lowercase(), expanded);
    }
    let timeout = values.optional_millis(&raw.timeout_ms, "tracing.timeout_ms")?;
    Ok(TracingOptions {
        otlp_endpoint,
        service_name,
        sample_ratio,
        headers,
        timeout,
    })
}
