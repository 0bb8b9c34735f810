//! `[plugins]`: where plugin files are found (the binary's concern), the limits every plugin
//! instance runs under, validated into the runtime's own [`Limits`], and what each tool plugin
//! may hold in memory per namespace, the runtime's [`MemoryQuota`] (their `Default`s hold the
//! defaults), and where compiled components are cached across restarts.

use std::path::{Path, PathBuf};
use std::time::Duration;

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
    instantiate_timeout_ms: Number,
    memory_limit_mib: Number,
    memory_quota_entries: Number,
    memory_quota_mib: Number,
    max_upload_mib: Number,
    watch_interval_ms: Number,
    compile_cache: Option<bool>,
    cache_dir: Option<Spanned<String>>,
}

/// The validated `[plugins]` section.
#[derive(Debug, Clone)]
pub struct Plugins {
    /// The folder `plugin = "<name>"` names `<name>.wasm` in.
    pub dir: PathBuf,
    pub limits: Limits,
    /// What each tool plugin may hold in each namespace of the shared memory.
    pub memory_quota: MemoryQuota,
    /// The largest component `PUT /admin/plugins/{name}` takes.
    pub max_upload_bytes: usize,
    /// How often `dir` (and the config file) are polled for changes; `None`: never (a
    /// config reload then comes only from SIGHUP).
    pub watch_interval: Option<Duration>,
    /// Where compiled components are cached (`compile_cache` on and a directory known); `None`:
    /// every start compiles every plugin.
    pub compile_cache: Option<PathBuf>,
}

/// Below the cache home: the folder compiled components go in (wasmtime adds its own
/// per-version subfolder, so two gateway versions share it without mixing).
const CACHE_SUBDIR: &str = "aigw/compiled";

/// The default cache directory, the XDG way: `$XDG_CACHE_HOME/aigw/compiled`, else
/// `$HOME/.cache/aigw/compiled`, else none (a service user without a home compiles each time).
/// A relative `XDG_CACHE_HOME` is ignored, as the XDG spec says.
pub(crate) fn default_cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(xdg) = env("XDG_CACHE_HOME").filter(|v| Path::new(v).is_absolute()) {
        return Some(Path::new(&xdg).join(CACHE_SUBDIR));
    }
    env("HOME")
        .filter(|v| Path::new(v).is_absolute())
        .map(|home| Path::new(&home).join(".cache").join(CACHE_SUBDIR))
}

/// `[plugins] max_upload_mib`'s default: a Python component is ~40 MiB.
pub(super) const DEFAULT_MAX_UPLOAD_MIB: u64 = 64;

/// `[plugins] watch_interval_ms`'s default.
pub(super) const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(1000);

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
    let upload_mib = values.positive(
        &raw.max_upload_mib,
        "plugins.max_upload_mib",
        DEFAULT_MAX_UPLOAD_MIB,
    )?;
    // 0 turns the watching off, so not `values.millis` (which refuses 0).
    let watch_interval = raw
        .watch_interval_ms
        .as_ref()
        .map_or(DEFAULT_WATCH_INTERVAL, |v| {
            Duration::from_millis(*v.get_ref())
        });
    let compile_cache = match raw.compile_cache.unwrap_or(true) {
        false => None,
        true => match &raw.cache_dir {
            Some(v) => Some(base.join(values.expand(v, "plugins.cache_dir")?)),
            None => default_cache_dir(values.env),
        },
    };
    Ok(Plugins {
        dir: base.join(dir),
        compile_cache,
        max_upload_bytes: usize::try_from(upload_mib)
            .unwrap_or(usize::MAX)
            .saturating_mul(MIB),
        watch_interval: (!watch_interval.is_zero()).then_some(watch_interval),
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
            instantiate_timeout: values.millis(
                &raw.instantiate_timeout_ms,
                "plugins.instantiate_timeout_ms",
                defaults.instantiate_timeout,
            )?,
            memory_bytes: usize::try_from(memory_mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(MIB),
            warm_instances: usize::try_from(warm_instances).unwrap_or(usize::MAX),
            max_instances: u32::try_from(max_instances).unwrap_or(u32::MAX),
        },
    })
}
