//! `[limits]`: the knobs of the limiter that holds keys' quotas and budgets across the processes
//! sharing one store, validated into its own [`LimiterOptions`] (whose `Default` holds the
//! defaults). The limits themselves are each key's (the admin API); these only tune how
//! processes share them.

use aigw_access::LimiterOptions;
use serde::Deserialize;

use super::ConfigError;
use super::values::{Number, Values};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    lease_percent: Number,
    idle_return_ms: Number,
    hold_ttl_ms: Number,
    recheck_ms: Number,
    sweep_interval_secs: Number,
}

/// The shortest hold: renewed every third of it, the renewal must have time to land.
const MIN_HOLD_TTL_MS: u64 = 300;

pub(super) fn validate(raw: &RawLimits, values: &Values) -> Result<LimiterOptions, ConfigError> {
    let mut options = LimiterOptions::default();
    if let Some(v) = &raw.lease_percent {
        options.lease_percent = u64::from(values.u32_in(v, "limits.lease_percent", 1, 100)?);
    }
    options.idle_return = values.millis(
        &raw.idle_return_ms,
        "limits.idle_return_ms",
        options.idle_return,
    )?;
    if let Some(v) = &raw.hold_ttl_ms
        && *v.get_ref() < MIN_HOLD_TTL_MS
    {
        return Err(values.error(
            Some(v.span()),
            format!("`limits.hold_ttl_ms` must be at least {MIN_HOLD_TTL_MS}"),
        ));
    }
    options.hold_ttl = values.millis(&raw.hold_ttl_ms, "limits.hold_ttl_ms", options.hold_ttl)?;
    options.recheck = values.millis(&raw.recheck_ms, "limits.recheck_ms", options.recheck)?;
    options.sweep_interval = std::time::Duration::from_secs(values.positive(
        &raw.sweep_interval_secs,
        "limits.sweep_interval_secs",
        options.sweep_interval.as_secs(),
    )?);
    Ok(options)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Result<LimiterOptions, ConfigError> {
        super::super::parse(Path::new("aigw.toml"), text, &|_| None).map(|c| c.limits)
    }

    #[test]
    fn limits_take_their_knobs_and_name_a_bad_one() {
        assert_eq!(parse("").unwrap(), LimiterOptions::default());
        let tuned = parse(
            "[limits]\nlease_percent = 25\nidle_return_ms = 500\nhold_ttl_ms = 900\n\
             recheck_ms = 50\nsweep_interval_secs = 5\n",
        )
        .unwrap();
        assert_eq!(tuned.lease_percent, 25);
        assert_eq!(tuned.idle_return, Duration::from_millis(500));
        assert_eq!(tuned.hold_ttl, Duration::from_millis(900));
        assert_eq!(tuned.recheck, Duration::from_millis(50));
        assert_eq!(tuned.sweep_interval, Duration::from_secs(5));
        let error = parse("[limits]\nlease_percent = 0\n").unwrap_err();
        assert_eq!(error.at, Some((2, 17)));
        assert!(
            error
                .message
                .contains("`limits.lease_percent` must be at least 1")
        );
        let error = parse("[limits]\nhold_ttl_ms = 10\n").unwrap_err();
        assert!(error.message.contains("at least 300"), "{}", error.message);
        let error = parse("[limits]\nrecheck_ms = 0\n").unwrap_err();
        assert!(
            error.message.contains("`limits.recheck_ms`"),
            "{}",
            error.message
        );
    }
}
