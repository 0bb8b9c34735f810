//! `[failover]`: the engine-wide breaker, cooldown and retry settings, validated into the
//! engine's own [`HealthSettings`] (whose `Default` holds the defaults).

use std::time::Duration;

use aigw_router::HealthSettings;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFailover {
    breaker_failures: Number,
    breaker_cooldown_ms: Number,
    misconfigured_cooldown_ms: Number,
    rate_limit_backoff_ms: Number,
    rate_limit_backoff_max_ms: Number,
    retry_delay_ms: Number,
}

pub(super) fn validate(raw: &RawFailover, values: &Values) -> Result<HealthSettings, ConfigError> {
    let defaults = HealthSettings::default();
    let rate_limit_backoff = values.millis(
        &raw.rate_limit_backoff_ms,
        "failover.rate_limit_backoff_ms",
        defaults.rate_limit_backoff,
    )?;
    let rate_limit_backoff_max = values.millis(
        &raw.rate_limit_backoff_max_ms,
        "failover.rate_limit_backoff_max_ms",
        defaults.rate_limit_backoff_max,
    )?;
    if rate_limit_backoff_max < rate_limit_backoff {
        let (backoff, max) = (
            rate_limit_backoff.as_millis(),
            rate_limit_backoff_max.as_millis(),
        );
        let (span, message) = match &raw.rate_limit_backoff_max_ms {
            Some(set) => (
                Some(set.span()),
                format!(
                    "`failover.rate_limit_backoff_max_ms` ({max}) must be at least \
                     `failover.rate_limit_backoff_ms` ({backoff})"
                ),
            ),
            None => (
                raw.rate_limit_backoff_ms.as_ref().map(Spanned::span),
                format!(
                    "`failover.rate_limit_backoff_ms` ({backoff}) exceeds the default \
                     `failover.rate_limit_backoff_max_ms` ({max}); set that too"
                ),
            ),
        };
        return Err(values.error(span, message));
    }
    Ok(HealthSettings {
        breaker_failures: raw
            .breaker_failures
            .as_ref()
            .map(|v| values.u32_in(v, "failover.breaker_failures", 1, u32::MAX))
            .transpose()?
            .unwrap_or(defaults.breaker_failures),
        breaker_cooldown: values.millis(
            &raw.breaker_cooldown_ms,
            "failover.breaker_cooldown_ms",
            defaults.breaker_cooldown,
        )?,
        misconfigured_cooldown: values.millis(
            &raw.misconfigured_cooldown_ms,
            "failover.misconfigured_cooldown_ms",
            defaults.misconfigured_cooldown,
        )?,
        rate_limit_backoff,
        rate_limit_backoff_max,
        // 0 is allowed: retry at once.
        retry_delay: raw
            .retry_delay_ms
            .as_ref()
            .map_or(defaults.retry_delay, |v| {
                Duration::from_millis(*v.get_ref())
            }),
    })
}
