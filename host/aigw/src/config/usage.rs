//! `[usage]`: how the usage ledger reaches the store, validated into
//! [`aigw_access::UsageOptions`] (whose `Default` holds the defaults).

use aigw_access::UsageOptions;
use serde::Deserialize;

use super::ConfigError;
use super::values::{Number, Values};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUsage {
    flush_interval_ms: Number,
}

pub(super) fn validate(raw: &RawUsage, values: &Values) -> Result<UsageOptions, ConfigError> {
    let defaults = UsageOptions::default();
    Ok(UsageOptions {
        flush_interval: values.millis(
            &raw.flush_interval_ms,
            "usage.flush_interval_ms",
            defaults.flush_interval,
        )?,
    })
}
