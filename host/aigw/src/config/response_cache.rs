//! `[response_cache]` and each `[models.<alias>] cache_ttl_s`: which routes' chat completions
//! are answered from the shared cache and for how long, validated into the server's
//! [`ResponseCacheOptions`] (whose `Default` holds the defaults: no TTL anywhere, so nothing is
//! cached until the operator sets one).

use std::collections::BTreeMap;
use std::time::Duration;

use aigw_server::ResponseCacheOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::models::RawModel;
use super::values::{Number, Values};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResponseCache {
    enabled: Option<Spanned<bool>>,
    default_ttl_s: Number,
    max_entry_bytes: Number,
}

/// The longest TTL: a week (as the tool cache's), so a typo of many digits is refused.
const MAX_TTL_S: u64 = 7 * 24 * 3600;
/// The largest answer kept: 64 MiB (each is one row of the shared store).
const MAX_ENTRY_BYTES: u64 = 64 << 20;

pub(super) fn validate(
    raw: &RawResponseCache,
    models: &BTreeMap<String, Spanned<RawModel>>,
    values: &Values,
) -> Result<ResponseCacheOptions, ConfigError> {
    let mut options = ResponseCacheOptions::default();
    if let Some(enabled) = &raw.enabled {
        options.enabled = *enabled.get_ref();
    }
    options.default_ttl = ttl(&raw.default_ttl_s, "response_cache.default_ttl_s", values)?
        .filter(|ttl| !ttl.is_zero());
    if let Some(v) = &raw.max_entry_bytes {
        if *v.get_ref() == 0 || *v.get_ref() > MAX_ENTRY_BYTES {
            return Err(values.error(
                Some(v.span()),
                format!("`response_cache.max_entry_bytes` must be between 1 and {MAX_ENTRY_BYTES}"),
            ));
        }
        options.max_entry_bytes = usize::try_from(*v.get_ref()).unwrap_or(usize::MAX);
    }
    for (alias, model) in models {
        let key = format!("models.{alias}.cache_ttl_s");
        if let Some(ttl) = ttl(&model.get_ref().cache_ttl_s, &key, values)? {
            options.route_ttls.insert(alias.clone(), ttl);
        }
    }
    Ok(options)
}

/// A TTL in seconds, 0 (off) to [`MAX_TTL_S`].
fn ttl(value: &Number, key: &str, values: &Values) -> Result<Option<Duration>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) if *v.get_ref() > MAX_TTL_S => Err(values.error(
            Some(v.span()),
            format!("`{key}` must be at most {MAX_TTL_S} (a week)"),
        )),
        Some(v) => Ok(Some(Duration::from_secs(*v.get_ref()))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use super::*;
    use crate::config::{Config, parse};

    fn parsed(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/aigw/aigw.toml"), text, &|_| None)
    }

    const PROVIDER: &str = "[providers.groq]\nplugin = \"groq\"\n";

    #[test]
    fn nothing_is_cached_by_default_and_route_ttls_override_the_default() {
        let c = parsed("").unwrap();
        assert_eq!(c.response_cache, ResponseCacheOptions::default());
        assert_eq!(c.response_cache.ttl("any"), None);
        let c = parsed(&format!(
            "{PROVIDER}[response_cache]\ndefault_ttl_s = 60\nmax_entry_bytes = 4096\n\
             [models.fast]\ntargets = [\"groq/a\"]\ncache_ttl_s = 5\n\
             [models.live]\ntargets = [\"groq/b\"]\ncache_ttl_s = 0\n\
             [models.other]\ntargets = [\"groq/c\"]\n"
        ))
        .unwrap();
        let cache = &c.response_cache;
        assert!(cache.enabled);
        assert_eq!(cache.max_entry_bytes, 4096);
        assert_eq!(cache.ttl("fast"), Some(Duration::from_secs(5)));
        assert_eq!(cache.ttl("live"), None);
        assert_eq!(cache.ttl("other"), Some(Duration::from_secs(60)));
        assert_eq!(cache.ttl("groq/direct"), Some(Duration::from_secs(60)));
        let off = parsed(&format!(
            "{PROVIDER}[response_cache]\nenabled = false\n\
             [models.fast]\ntargets = [\"groq/a\"]\ncache_ttl_s = 5\n"
        ))
        .unwrap();
        assert_eq!(off.response_cache.ttl("fast"), None);
    }

    #[test]
    fn bad_values_are_refused_naming_the_key_and_line() {
        for (text, key, line) in [
            (
                "[response_cache]\ndefault_ttl_s = 604801\n".to_owned(),
                "response_cache.default_ttl_s",
                2,
            ),
            (
                "[response_cache]\nmax_entry_bytes = 0\n".to_owned(),
                "response_cache.max_entry_bytes",
                2,
            ),
            (
                format!("{PROVIDER}[models.m]\ntargets = [\"groq/a\"]\ncache_ttl_s = 9999999\n"),
                "models.m.cache_ttl_s",
                5,
            ),
        ] {
            let e = parsed(&text).unwrap_err();
            assert!(e.message.contains(key), "{text}: {e}");
            assert_eq!(e.at.map(|(l, _)| l), Some(line), "{text}: {e}");
        }
        let e = parsed("[response_cache]\nttl = 3\n").unwrap_err();
        assert!(e.message.contains("ttl"), "{e}");
    }
}
