//! `[plugins]`: where plugin files are found (the binary's concern), the limits every plugin
//! instance runs under, validated into the runtime's own [`Limits`], and what each tool plugin
//! may hold in memory per namespace, the runtime's [`MemoryQuota`] (their `Default`s hold the
//! defaults).

use std::path::{Path, PathBuf};

use aigw_runtime::{Limits, MemoryQuota};
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

/// Where `plugin = "<name>"` is looked up, relative to the config file: the one default with no
/// served shape (only the binary reads plugin files).
pub(super) const DEFAULT_DIR: &str = "dist/plugins";

const MIB: usize = 1 << 20;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugins {
    dir: Option<Spanned<String>>,
    warm_instances: Number,
    max_instances: Number,
    call_timeout_ms: Number,
    memory_limit_mib: Number,
    memory_quota_entries: Number,
    memory_quota_mib: Number,
}

/// The validated `[plugins]` section.
#[derive(Debug, Clone)]
pub struct Plugins {
    /// The folder `plugin = "<name>"` names `<name>.wasm` in.
    pub dir: PathBuf,
    pub limits: Limits,
    /// What each tool plugin may hold in each namespace of the shared memory.
    pub memory_quota: MemoryQuota,
}

/// `base` is the config file's folder, which a relative `dir` starts from.
pub(super) fn validate(
    raw: &RawPlugins,
    base: &Path,
    values: &Values,
) -> Result<Plugins, ConfigError> {
    let defaults = Limits::default();
    let dir = match &raw.dir {
        None => DEFAULT_DIR.to_owned(),
        Some(v) => values.expand(v, "plugins.dir")?,
    };
    let memory_mib = values.positive(
        &raw.memory_limit_mib,
        "plugins.memory_limit_mib",
        (defaults.memory_bytes / MIB) as u64,
    )?;
    let max_instances = values.positive(
        &raw.max_instances,
        "plugins.max_instances",
        u64::from(defaults.max_instances),
    )?;
    let warm_instances = values.positive(
        &raw.warm_instances,
        "plugins.warm_instances",
        defaults.warm_instances as u64,
    )?;
    let quota = MemoryQuota::default();
    let quota_entries = values.positive(
        &raw.memory_quota_entries,
        "plugins.memory_quota_entries",
        quota.entries,
    )?;
    let quota_mib = values.positive(
        &raw.memory_quota_mib,
        "plugins.memory_quota_mib",
        quota.bytes >> 20,
    )?;
    Ok(Plugins {
        dir: base.join(dir),
        memory_quota: MemoryQuota {
            entries: quota_entries,
            bytes: quota_mib.saturating_mul(MIB as u64),
        },
        limits: Limits {
            call_timeout: values.millis(
                &raw.call_timeout_ms,
                "plugins.call_timeout_ms",
                defaults.call_timeout,
            )?,
            memory_bytes: usize::try_from(memory_mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(MIB),
            warm_instances: usize::try_from(warm_instances).unwrap_or(usize::MAX),
            max_instances: u32::try_from(max_instances).unwrap_or(u32::MAX),
        },
    })
}
