//! `[tools.<name>]`: each tool plugin enabled, validated into the server's [`ToolOptions`]
//! (whose `Default` holds the defaults). `plugin` defaults to the table's name; `[[tools.<name>.
//! upstream]]` tables enable upstreams in order of preference, each with endpoint overrides and
//! a credential given like a provider's (`api_key`, `${VAR}`: unset is recorded, not fatal; or
//! `api_key_file`). Upstream and endpoint names can only be checked once the plugin is loaded:
//! [`ConfiguredTool::locate`] puts the server's error back at its place in the file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aigw_server::tools::{BuildError, ToolOptions, ToolUpstreamOptions};
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::env::expand_env;
use super::providers::read_secret;
use super::values::{Number, Values};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTool {
    plugin: Option<Spanned<String>>,
    timeout_ms: Number,
    max_response_bytes: Number,
    cache_ttl_seconds: Number,
    upstream: Option<Vec<Spanned<RawUpstream>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: Spanned<String>,
    #[serde(default)]
    endpoints: BTreeMap<Spanned<String>, Spanned<String>>,
    api_key: Option<Spanned<String>>,
    api_key_file: Option<Spanned<String>>,
}

/// A validated `[tools.<name>]` and where its names are written, for errors found once its
/// plugin is loaded.
#[derive(Debug, Clone)]
pub struct ConfiguredTool {
    pub options: ToolOptions,
    /// The table's own place.
    at: Option<(usize, usize)>,
    /// Each upstream table's `name`, and each of its endpoint names, by name.
    upstreams: Vec<UpstreamPlaces>,
}

#[derive(Debug, Clone)]
struct UpstreamPlaces {
    name: Option<(usize, usize)>,
    endpoints: BTreeMap<String, Option<(usize, usize)>>,
}

impl ConfiguredTool {
    /// `error` (from building the tool plugin) located at the key it is about, in `path`.
    pub fn locate(&self, path: &Path, error: &BuildError) -> ConfigError {
        let at = match error {
            BuildError::UnknownUpstream { index, .. } => {
                self.upstreams.get(*index).and_then(|u| u.name)
            }
            BuildError::UnknownEndpoint {
                index, endpoint, ..
            } => self
                .upstreams
                .get(*index)
                .and_then(|u| u.endpoints.get(endpoint).copied().flatten()),
            _ => None,
        };
        ConfigError {
            path: path.to_owned(),
            at: at.or(self.at),
            message: error.to_string(),
        }
    }
}

/// The largest `cache_ttl_seconds`: a week.
const MAX_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// The tool plugins, in name order. `base` is the config file's folder (a plugin path is
/// relative to it); `plugins_dir` is where a plugin named without a path is found.
pub(super) fn validate(
    raw: &BTreeMap<String, Spanned<RawTool>>,
    base: &Path,
    plugins_dir: &Path,
    values: &Values,
) -> Result<Vec<ConfiguredTool>, ConfigError> {
    let defaults = ToolOptions::default();
    let mut tools = Vec::with_capacity(raw.len());
    for (name, spanned) in raw {
        let key = |field: &str| format!("tools.{name}.{field}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(values.error(
                Some(spanned.span()),
                format!("tool plugin name `{name}` must be non-empty letters, digits, `_` or `-`"),
            ));
        }
        let t = spanned.get_ref();
        let plugin_name = match &t.plugin {
            None => name.clone(),
            Some(v) => values.expand(v, &key("plugin"))?,
        };
        let plugin = if plugin_name.ends_with(".wasm") || plugin_name.contains('/') {
            base.join(&plugin_name)
        } else {
            plugins_dir.join(format!("{plugin_name}.wasm"))
        };
        let cache_ttl = match &t.cache_ttl_seconds {
            None => None,
            Some(v) if *v.get_ref() > MAX_TTL_SECONDS => {
                return Err(values.error(
                    Some(v.span()),
                    format!(
                        "`{}` must be at most {MAX_TTL_SECONDS} (a week)",
                        key("cache_ttl_seconds")
                    ),
                ));
            }
            Some(v) => Some(Duration::from_secs(*v.get_ref())),
        };
        let max_response_bytes = values.positive(
            &t.max_response_bytes,
            &key("max_response_bytes"),
            defaults.max_response_bytes as u64,
        )?;
        let mut places = Vec::new();
        let upstreams = match &t.upstream {
            None => None,
            Some(list) => {
                let mut upstreams = Vec::with_capacity(list.len());
                for (index, spanned) in list.iter().enumerate() {
                    let u = spanned.get_ref();
                    let key = |field: &str| format!("tools.{name}.upstream[{index}].{field}");
                    let upstream_name = values.expand(&u.name, &key("name"))?;
                    if list[..index]
                        .iter()
                        .any(|other| other.get_ref().name.get_ref() == u.name.get_ref())
                    {
                        return Err(values.error(
                            Some(u.name.span()),
                            format!(
                                "`{}`: upstream `{upstream_name}` is listed twice",
                                key("name")
                            ),
                        ));
                    }
                    let mut endpoints = Vec::with_capacity(u.endpoints.len());
                    let mut endpoint_places = BTreeMap::new();
                    for (endpoint, url) in &u.endpoints {
                        let endpoint_key = key(&format!("endpoints.{}", endpoint.get_ref()));
                        let url_text = values.expand(url, &endpoint_key)?;
                        match url::Url::parse(&url_text) {
                            Ok(parsed)
                                if matches!(parsed.scheme(), "http" | "https")
                                    && parsed.host().is_some() => {}
                            _ => {
                                return Err(values.error(
                                    Some(url.span()),
                                    format!(
                                        "`{endpoint_key}` must be an http(s) URL, got {url_text:?}"
                                    ),
                                ));
                            }
                        }
                        endpoint_places.insert(
                            endpoint.get_ref().clone(),
                            Some(values.place(endpoint.span())),
                        );
                        endpoints.push((endpoint.get_ref().clone(), url_text));
                    }
                    let (api_key, api_key_missing) = match (&u.api_key, &u.api_key_file) {
                        (None, None) => (None, None),
                        (Some(v), None) => match expand_env(v.get_ref(), values.env) {
                            Ok(secret) if secret.is_empty() => {
                                (None, Some("api_key is empty".to_owned()))
                            }
                            Ok(secret) => (Some(secret), None),
                            Err(var) => (None, Some(format!("{var} is not set"))),
                        },
                        (None, Some(v)) => {
                            let key_name = key("api_key_file");
                            let path = base.join(values.expand(v, &key_name)?);
                            let secret = read_secret(&path).map_err(|why| {
                                values.error(Some(v.span()), format!("`{key_name}`: {why}"))
                            })?;
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
                    places.push(UpstreamPlaces {
                        name: Some(values.place(u.name.span())),
                        endpoints: endpoint_places,
                    });
                    upstreams.push(ToolUpstreamOptions {
                        name: upstream_name,
                        endpoints,
                        api_key,
                        api_key_missing,
                    });
                }
                Some(upstreams)
            }
        };
        tools.push(ConfiguredTool {
            options: ToolOptions {
                name: name.clone(),
                plugin,
                timeout: values.millis(&t.timeout_ms, &key("timeout_ms"), defaults.timeout)?,
                max_response_bytes: usize::try_from(max_response_bytes).unwrap_or(usize::MAX),
                cache_ttl,
                upstreams,
            },
            at: Some(values.place(spanned.span())),
            upstreams: places,
        });
    }
    Ok(tools)
}
