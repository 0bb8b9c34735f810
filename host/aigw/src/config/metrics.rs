//! `[metrics]`: whether the process keeps metrics, the cap on each label family, and an
//! optional second listener serving only `/metrics` without credentials, validated into the
//! telemetry's [`MetricsOptions`] (whose `Default` holds the defaults) and the listen address.

use std::net::SocketAddr;

use aigw_telemetry::MetricsOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    enabled: Option<bool>,
    max_series_per_metric: Number,
    listen: Option<Spanned<String>>,
}

/// `[metrics]` as validated.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub options: MetricsOptions,
    /// Where `/metrics` is also served, without credentials (`None`: only on the main
    /// listener, with the admin key).
    pub listen: Option<SocketAddr>,
}

/// The largest cap: past it a family's memory is the operator's mistake, not a bound.
const MAX_SERIES_PER_METRIC: u64 = 10_000_000;

pub(super) fn validate(raw: &RawMetrics, values: &Values) -> Result<Metrics, ConfigError> {
    let defaults = MetricsOptions::default();
    let cap = values.positive(
        &raw.max_series_per_metric,
        "metrics.max_series_per_metric",
        defaults.max_series_per_metric as u64,
    )?;
    if let Some(v) = &raw.max_series_per_metric
        && cap > MAX_SERIES_PER_METRIC
    {
        return Err(values.error(
            Some(v.span()),
            format!("`metrics.max_series_per_metric` must be at most {MAX_SERIES_PER_METRIC}"),
        ));
    }
    let listen = match &raw.listen {
        None => None,
        Some(v) => Some(
            values
                .expand(v, "metrics.listen")?
                .parse::<SocketAddr>()
                .map_err(|e| {
                    values.error(
                        Some(v.span()),
                        format!("`metrics.listen` must be an address like 127.0.0.1:9464: {e}"),
                    )
                })?,
        ),
    };
    Ok(Metrics {
        options: MetricsOptions {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            max_series_per_metric: usize::try_from(cap).unwrap_or(usize::MAX),
        },
        listen,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    fn parse(text: &str) -> Result<super::Metrics, String> {
        super::super::parse(Path::new("aigw.toml"), text, &|_| None)
            .map(|c| c.metrics)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_keep_metrics_on_the_main_listener_only() {
        let metrics = parse("").unwrap();
        assert!(metrics.options.enabled);
        assert_eq!(metrics.options.max_series_per_metric, 20_000);
        assert_eq!(metrics.listen, None);
    }

    #[test]
    fn every_key_is_read() {
        let metrics = parse(
            "[metrics]\nenabled = false\nmax_series_per_metric = 500\nlisten = \"127.0.0.1:9464\"\n",
        )
        .unwrap();
        assert!(!metrics.options.enabled);
        assert_eq!(metrics.options.max_series_per_metric, 500);
        assert_eq!(metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let error = parse("[metrics]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(error.contains("aigw.toml:2"), "{error}");
        assert!(error.contains("metrics.listen"), "{error}");
        let error = parse("[metrics]\nmax_series_per_metric = 0\n").unwrap_err();
        assert!(error.contains("metrics.max_series_per_metric"), "{error}");
        let error = parse("[metrics]\nmax_series_per_metric = 99999999\n").unwrap_err();
        assert!(error.contains("at most"), "{error}");
    }
}
