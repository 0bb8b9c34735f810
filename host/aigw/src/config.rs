//! The config file: TOML, strict (an unknown key is an error naming the file, line and key),
//! `${ENV}` expansion in string values, parsed raw and then validated into [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
pub const DEFAULT_PLUGINS_DIR: &str = "dist/plugins";
pub const DEFAULT_WARM_INSTANCES: usize = 4;
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_MEMORY_LIMIT_MIB: usize = 64;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;

/// A config error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => {
                write!(
                    f,
                    "{}:{line}:{column}: {}",
                    self.path.display(),
                    self.message
                )
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    plugins: RawPlugins,
    #[serde(default)]
    providers: BTreeMap<String, Spanned<RawProvider>>,
    #[serde(default)]
    models: BTreeMap<String, Spanned<RawModel>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPlugins {
    dir: Option<Spanned<String>>,
    warm_instances: Option<Spanned<u64>>,
    max_instances: Option<Spanned<u64>>,
    call_timeout_ms: Option<Spanned<u64>>,
    memory_limit_mib: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    plugin: Spanned<String>,
    base_url: Option<Spanned<String>>,
    api_key: Option<Spanned<String>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    targets: Spanned<Vec<Spanned<String>>>,
}

/// The validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub plugins: PluginsConfig,
    pub providers: Vec<ProviderConfig>,
    pub models: Vec<ModelConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginsConfig {
    pub dir: PathBuf,
    pub warm_instances: usize,
    pub max_instances: u32,
    pub call_timeout: Duration,
    pub memory_limit_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub plugin: PathBuf,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// Why `api_key` is absent although configured (an unset variable).
    pub api_key_missing: Option<String>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub alias: String,
    /// `(provider, model)` pairs in the order they are tried.
    pub targets: Vec<(String, String)>,
}

/// Reads and validates the config at `path`. `env` looks up variables for `${VAR}` expansion.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_owned(),
        at: None,
        message: format!("cannot read the config file: {e}"),
    })?;
    parse(path, &text, env)
}

struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            at: span.map(|s| line_column(self.text, s.start)),
            message: message.into(),
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let at = Locator { path, text };
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| at.error(e.span(), e.message().trim()))?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));

    // Expands `${VAR}` in a value that must resolve.
    let expand = |value: &Spanned<String>, key: &str| -> Result<String, ConfigError> {
        expand_env(value.get_ref(), env).map_err(|var| {
            at.error(
                Some(value.span()),
                format!("`{key}`: environment variable {var} is not set"),
            )
        })
    };
    let positive = |value: &Option<Spanned<u64>>, key: &str, default: u64| match value {
        None => Ok(default),
        Some(v) if *v.get_ref() == 0 => {
            Err(at.error(Some(v.span()), format!("`{key}` must be greater than 0")))
        }
        Some(v) => Ok(*v.get_ref()),
    };

    let listen = match &raw.server.listen {
        None => DEFAULT_LISTEN.to_owned(),
        Some(v) => expand(v, "server.listen")?,
    };
    let listen: SocketAddr = listen.parse().map_err(|e| {
        at.error(
            raw.server.listen.as_ref().map(Spanned::span),
            format!("`server.listen` must be an address like 127.0.0.1:8080: {e}"),
        )
    })?;
    let max_body_bytes = positive(
        &raw.server.max_body_bytes,
        "server.max_body_bytes",
        DEFAULT_MAX_BODY_BYTES as u64,
    )? as usize;

    let dir = match &raw.plugins.dir {
        None => DEFAULT_PLUGINS_DIR.to_owned(),
        Some(v) => expand(v, "plugins.dir")?,
    };
    let memory_mib = positive(
        &raw.plugins.memory_limit_mib,
        "plugins.memory_limit_mib",
        DEFAULT_MEMORY_LIMIT_MIB as u64,
    )?;
    let max_instances = positive(
        &raw.plugins.max_instances,
        "plugins.max_instances",
        u64::from(DEFAULT_MAX_INSTANCES),
    )?;
    let plugins = PluginsConfig {
        dir: base.join(dir),
        warm_instances: positive(
            &raw.plugins.warm_instances,
            "plugins.warm_instances",
            DEFAULT_WARM_INSTANCES as u64,
        )? as usize,
        max_instances: u32::try_from(max_instances).unwrap_or(u32::MAX),
        call_timeout: Duration::from_millis(positive(
            &raw.plugins.call_timeout_ms,
            "plugins.call_timeout_ms",
            DEFAULT_CALL_TIMEOUT_MS,
        )?),
        memory_limit_bytes: (memory_mib as usize).saturating_mul(1 << 20),
    };

    let mut providers = Vec::with_capacity(raw.providers.len());
    for (name, spanned) in &raw.providers {
        let key = |field: &str| format!("providers.{name}.{field}");
        if name.is_empty() || name.contains('/') {
            return Err(at.error(
                Some(spanned.span()),
                format!("provider name `{name}` must be non-empty and contain no `/`"),
            ));
        }
        let p = spanned.get_ref();
        let plugin_name = expand(&p.plugin, &key("plugin"))?;
        let plugin = if plugin_name.ends_with(".wasm") || plugin_name.contains('/') {
            base.join(&plugin_name)
        } else {
            plugins.dir.join(format!("{plugin_name}.wasm"))
        };
        let base_url = match &p.base_url {
            None => None,
            Some(v) => {
                let url = expand(v, &key("base_url"))?;
                match url::Url::parse(&url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    _ => {
                        return Err(at.error(
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
        let (api_key, api_key_missing) = match &p.api_key {
            None => (None, None),
            Some(v) => match expand_env(v.get_ref(), env) {
                Ok(key) if key.is_empty() => (None, Some("api_key is empty".to_owned())),
                Ok(key) => (Some(key), None),
                Err(var) => (None, Some(format!("{var} is not set"))),
            },
        };
        providers.push(ProviderConfig {
            name: name.clone(),
            plugin,
            base_url,
            api_key,
            api_key_missing,
            connect_timeout: Duration::from_millis(positive(
                &p.connect_timeout_ms,
                &key("connect_timeout_ms"),
                DEFAULT_CONNECT_TIMEOUT_MS,
            )?),
            timeout: Duration::from_millis(positive(
                &p.timeout_ms,
                &key("timeout_ms"),
                DEFAULT_TIMEOUT_MS,
            )?),
        });
    }

    let mut models = Vec::with_capacity(raw.models.len());
    for (alias, spanned) in &raw.models {
        let targets = &spanned.get_ref().targets;
        if targets.get_ref().is_empty() {
            return Err(at.error(
                Some(targets.span()),
                format!("`models.{alias}.targets` must name at least one `provider/model`"),
            ));
        }
        let mut resolved = Vec::with_capacity(targets.get_ref().len());
        for target in targets.get_ref() {
            let Some((provider, model)) = target.get_ref().split_once('/') else {
                return Err(at.error(
                    Some(target.span()),
                    format!(
                        "`models.{alias}.targets`: {:?} must be `provider/model`",
                        target.get_ref()
                    ),
                ));
            };
            if !raw.providers.contains_key(provider) {
                let known: Vec<&str> = raw.providers.keys().map(String::as_str).collect();
                return Err(at.error(
                    Some(target.span()),
                    format!(
                        "`models.{alias}.targets`: unknown provider `{provider}` (configured: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            if model.is_empty() {
                return Err(at.error(
                    Some(target.span()),
                    format!(
                        "`models.{alias}.targets`: {:?} has no model",
                        target.get_ref()
                    ),
                ));
            }
            resolved.push((provider.to_owned(), model.to_owned()));
        }
        models.push(ModelConfig {
            alias: alias.clone(),
            targets: resolved,
        });
    }

    Ok(Config {
        path: path.to_owned(),
        listen,
        max_body_bytes,
        plugins,
        providers,
        models,
    })
}

/// Expands `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. Err names the unset variable.
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                out.push_str(rest);
                break;
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match (env(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(name.to_owned()),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/aigw/aigw.toml"), text, &no_env)
    }

    #[test]
    fn empty_config_gets_the_documented_defaults() {
        let c = parse_str("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.plugins.dir, PathBuf::from("/etc/aigw/dist/plugins"));
        assert_eq!(c.plugins.warm_instances, 4);
        assert_eq!(c.plugins.call_timeout, Duration::from_secs(1));
        assert_eq!(c.plugins.memory_limit_bytes, 64 << 20);
        assert!(c.providers.is_empty() && c.models.is_empty());
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let err = parse_str("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/etc/aigw/aigw.toml:3:1: "), "{text}");
        assert!(text.contains("unknown field `lisen`"), "{text}");
    }

    #[test]
    fn unknown_key_inside_a_provider_is_located() {
        let err = parse_str("[providers.groq]\nplugin = \"groq\"\napi_kee = \"x\"\n").unwrap_err();
        assert_eq!(err.at, Some((3, 1)), "{err}");
        assert!(err.message.contains("unknown field `api_kee`"), "{err}");
    }

    #[test]
    fn providers_and_routes_resolve_in_order() {
        let c = parse(
            Path::new("/srv/aigw.toml"),
            r#"
[plugins]
dir = "plugins"
[providers.groq]
plugin = "groq"
api_key = "${GROQ_API_KEY}"
timeout_ms = 300
[providers.local]
plugin = "/opt/p/openai-compatible.wasm"
base_url = "http://127.0.0.1:11434/v1"
[models.fast]
targets = ["groq/llama-3.1-8b-instant", "local/llama3.2"]
"#,
            &|name| (name == "GROQ_API_KEY").then(|| "gsk_test".to_owned()),
        )
        .unwrap();
        assert_eq!(c.providers.len(), 2);
        let groq = &c.providers[0];
        assert_eq!(groq.name, "groq");
        assert_eq!(groq.plugin, PathBuf::from("/srv/plugins/groq.wasm"));
        assert_eq!(groq.api_key.as_deref(), Some("gsk_test"));
        assert_eq!(groq.timeout, Duration::from_millis(300));
        assert_eq!(groq.connect_timeout, Duration::from_secs(5));
        let local = &c.providers[1];
        assert_eq!(local.plugin, PathBuf::from("/opt/p/openai-compatible.wasm"));
        assert_eq!(local.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(c.models[0].alias, "fast");
        assert_eq!(
            c.models[0].targets,
            vec![
                ("groq".to_owned(), "llama-3.1-8b-instant".to_owned()),
                ("local".to_owned(), "llama3.2".to_owned())
            ]
        );
    }

    #[test]
    fn unset_api_key_variable_is_reported_not_fatal() {
        let c = parse_str("[providers.groq]\nplugin = \"groq\"\napi_key = \"${GROQ_API_KEY}\"\n")
            .unwrap();
        assert_eq!(c.providers[0].api_key, None);
        assert_eq!(
            c.providers[0].api_key_missing.as_deref(),
            Some("GROQ_API_KEY is not set")
        );
    }

    #[test]
    fn unset_variable_elsewhere_is_an_error_at_its_line() {
        let err =
            parse_str("[providers.groq]\nplugin = \"groq\"\nbase_url = \"${BASE}\"\n").unwrap_err();
        assert_eq!(err.at, Some((3, 12)));
        assert!(err.message.contains("BASE is not set"), "{err}");
        assert!(err.message.contains("providers.groq.base_url"), "{err}");
    }

    #[test]
    fn target_with_unknown_provider_is_located_and_lists_known_ones() {
        let err = parse_str(
            "[providers.groq]\nplugin = \"groq\"\n[models.fast]\ntargets = [\"groq/a\", \"nope/b\"]\n",
        )
        .unwrap_err();
        assert_eq!(err.at, Some((4, 22)));
        assert!(
            err.message
                .contains("unknown provider `nope` (configured: groq)"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_rejected_with_their_key() {
        for (text, needle) in [
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
            ("[server]\nmax_body_bytes = 0\n", "server.max_body_bytes"),
            (
                "[providers.g]\nplugin = \"g\"\nbase_url = \"ftp://x\"\n",
                "providers.g.base_url",
            ),
            ("[models.m]\ntargets = []\n", "models.m.targets"),
            ("[models.m]\ntargets = [\"no-slash\"]\n", "provider/model"),
            ("[server]\nlisten = 5\n", "invalid type"),
        ] {
            let err = parse_str(text).unwrap_err();
            assert!(err.at.is_some(), "{text}: {err}");
            assert!(err.message.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn env_expansion_handles_defaults_escapes_and_unset() {
        let env = |n: &str| (n == "A").then(|| "1".to_owned());
        assert_eq!(expand_env("x${A}y", &env).unwrap(), "x1y");
        assert_eq!(expand_env("${B:-two}", &env).unwrap(), "two");
        assert_eq!(expand_env("$$5 $x", &env).unwrap(), "$5 $x");
        assert_eq!(expand_env("${B}", &env).unwrap_err(), "B");
    }
}
