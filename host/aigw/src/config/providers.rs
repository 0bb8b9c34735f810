//! `[providers.<name>]`: each upstream account, validated into the server's
//! [`ProviderOptions`] (whose `Default` holds the defaults). The credential is `api_key` (a value,
//! usually `${VAR}`: a key whose variable is unset is recorded, not fatal) or `api_key_file` (a
//! file read here, as Docker and Kubernetes mount secrets: one that cannot be read is an error).

use std::collections::BTreeMap;
use std::path::Path;

use aigw_server::ProviderOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::env::expand_env;
use super::values::{Number, Values};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    plugin: Spanned<String>,
    base_url: Option<Spanned<String>>,
    api_key: Option<Spanned<String>>,
    api_key_file: Option<Spanned<String>>,
    connect_timeout_ms: Number,
    timeout_ms: Number,
    first_byte_timeout_ms: Number,
    stall_timeout_ms: Number,
    total_timeout_ms: Number,
}

/// The providers, in name order. `base` is the config file's folder (a plugin path is relative
/// to it); `plugins_dir` is where a plugin named without a path is found.
pub(super) fn validate(
    raw: &BTreeMap<String, Spanned<RawProvider>>,
    base: &Path,
    plugins_dir: &Path,
    values: &Values,
) -> Result<Vec<ProviderOptions>, ConfigError> {
    let defaults = ProviderOptions::default();
    let mut providers = Vec::with_capacity(raw.len());
    for (name, spanned) in raw {
        let key = |field: &str| format!("providers.{name}.{field}");
        if name.is_empty() || name.contains('/') {
            return Err(values.error(
                Some(spanned.span()),
                format!("provider name `{name}` must be non-empty and contain no `/`"),
            ));
        }
        let p = spanned.get_ref();
        let plugin_name = values.expand(&p.plugin, &key("plugin"))?;
        let plugin = if plugin_name.ends_with(".wasm") || plugin_name.contains('/') {
            base.join(&plugin_name)
        } else {
            plugins_dir.join(format!("{plugin_name}.wasm"))
        };
        let base_url = match &p.base_url {
            None => None,
            Some(v) => {
                let url = values.expand(v, &key("base_url"))?;
                match url::Url::parse(&url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    _ => {
                        return Err(values.error(
                            Some(v.span()),
                            format!("`{}` must be an http(s) URL, got {url:?}", key("base_url")),
                        ));
                    }
                }
                Some(url)
            }
        };
        // A key whose variable is unset is reported at start, not fatal: the provider's
        // targets are skipped with a clear error until it is set.
        let (api_key, api_key_missing) = match (&p.api_key, &p.api_key_file) {
            (None, None) => (None, None),
            (Some(v), None) => match expand_env(v.get_ref(), values.env) {
                Ok(key) if key.is_empty() => (None, Some("api_key is empty".to_owned())),
                Ok(key) => (Some(key), None),
                Err(var) => (None, Some(format!("{var} is not set"))),
            },
            (None, Some(v)) => {
                let key_name = key("api_key_file");
                let path = base.join(values.expand(v, &key_name)?);
                let secret = read_secret(&path)
                    .map_err(|why| values.error(Some(v.span()), format!("`{key_name}`: {why}")))?;
                (Some(secret), None)
            }
            (Some(_), Some(v)) => {
                return Err(values.error(
                    Some(v.span()),
                    format!(
                        "`{}` and `{}` are both set; give the credential once",
                        key("api_key"),
                        key("api_key_file")
                    ),
                ));
            }
        };
        providers.push(ProviderOptions {
            name: name.clone(),
            plugin,
            base_url,
            api_key,
            api_key_missing,
            connect_timeout: values.millis(
                &p.connect_timeout_ms,
                &key("connect_timeout_ms"),
                defaults.connect_timeout,
            )?,
            timeout: values.millis(&p.timeout_ms, &key("timeout_ms"), defaults.timeout)?,
            // The provider's connect limit is `connect_timeout` (it has a default).
            timeouts: values.timeouts(
                &format!("providers.{name}"),
                &None,
                &p.first_byte_timeout_ms,
                &p.stall_timeout_ms,
                &p.total_timeout_ms,
            )?,
        });
    }
    Ok(providers)
}

/// The credential in the file at `path`: its text without the trailing newline editors and
/// `echo` add. Why not, when it cannot be used; never quoting the file's contents.
pub(super) fn read_secret(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{}: no such file", path.display()),
        _ => format!("{}: cannot read it: {e}", path.display()),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{}: the credential file is not UTF-8 text", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(format!("{}: the credential file is empty", path.display()));
    }
    if secret.contains(['\n', '\r']) {
        return Err(format!(
            "{}: the credential file has more than one line; it must hold the key alone",
            path.display()
        ));
    }
    Ok(secret.to_owned())
}
