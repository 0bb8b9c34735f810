//! `[mcp_servers.<name>]`: external MCP servers whose tools the gateway offers beside its
//! built-in ones, validated into the server's [`McpServerOptions`] (whose `Default` holds the
//! defaults). The credential is `api_key` (a value, usually `${VAR}`; an unset variable is an
//! error here, since a server reached without its credential only fails later) or `api_key_file`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aigw_server::McpServerOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::providers::read_secret;
use super::values::{Number, Values};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMcpServer {
    url: Spanned<String>,
    api_key: Option<Spanned<String>>,
    api_key_file: Option<Spanned<String>>,
    header: Option<Spanned<String>>,
    scheme: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    timeout_ms: Number,
    refresh_seconds: Number,
    tools: Option<Spanned<Vec<Spanned<String>>>>,
}

/// The longest prefix: room is left for `_` and a one-character remote name.
const MAX_PREFIX: usize = 62;

/// The servers, in name order. `base` is the config file's folder (`api_key_file` is relative
/// to it).
pub(super) fn validate(
    raw: &BTreeMap<String, Spanned<RawMcpServer>>,
    base: &Path,
    values: &Values,
) -> Result<Vec<McpServerOptions>, ConfigError> {
    let defaults = McpServerOptions::default();
    let mut servers: Vec<McpServerOptions> = Vec::with_capacity(raw.len());
    for (name, spanned) in raw {
        let key = |field: &str| format!("mcp_servers.{name}.{field}");
        let s = spanned.get_ref();
        let url = values.expand(&s.url, &key("url"))?;
        match url::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(values.error(
                    Some(s.url.span()),
                    format!("`{}` must be an http(s) URL, got {url:?}", key("url")),
                ));
            }
        }
        let api_key =
            match (&s.api_key, &s.api_key_file) {
                (None, None) => None,
                (Some(v), None) => {
                    let secret = values.expand(v, &key("api_key"))?;
                    if secret.is_empty() {
                        return Err(
                            values.error(Some(v.span()), format!("`{}` is empty", key("api_key")))
                        );
                    }
                    Some(secret)
                }
                (None, Some(v)) => {
                    let key_name = key("api_key_file");
                    let path = base.join(values.expand(v, &key_name)?);
                    Some(read_secret(&path).map_err(|why| {
                        values.error(Some(v.span()), format!("`{key_name}`: {why}"))
                    })?)
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
        let header = match &s.header {
            None => defaults.header.clone(),
            Some(v) => {
                let header = values.expand(v, &key("header"))?.to_ascii_lowercase();
                if !is_header_name(&header) {
                    return Err(values.error(
                        Some(v.span()),
                        format!("`{}` must be a header name, got {header:?}", key("header")),
                    ));
                }
                header
            }
        };
        let scheme = match &s.scheme {
            None => defaults.scheme.clone(),
            Some(v) => {
                let scheme = values.expand(v, &key("scheme"))?;
                if scheme.chars().any(char::is_control) {
                    return Err(values.error(
                        Some(v.span()),
                        format!("`{}` must not hold control characters", key("scheme")),
                    ));
                }
                scheme
            }
        };
        let (prefix, prefix_span) = match &s.prefix {
            None => (name.clone(), spanned.span()),
            Some(v) => (values.expand(v, &key("prefix"))?, v.span()),
        };
        let prefix_fits = (1..=MAX_PREFIX).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !prefix_fits {
            let what = if s.prefix.is_some() {
                format!("`{}`", key("prefix"))
            } else {
                format!("the name of `[mcp_servers.{name}]` (the default prefix)")
            };
            return Err(values.error(
                Some(prefix_span),
                format!(
                    "{what} must be 1-{MAX_PREFIX} characters of a-z A-Z 0-9 _ - \
                     (tools are named `<prefix>_<tool>`), got {prefix:?}"
                ),
            ));
        }
        if let Some(other) = servers.iter().find(|o| o.prefix == prefix) {
            return Err(values.error(
                Some(prefix_span),
                format!(
                    "`[mcp_servers.{name}]` uses prefix `{prefix}`, as `[mcp_servers.{}]` does: \
                     their tools' names would collide",
                    other.name
                ),
            ));
        }
        let tools = match &s.tools {
            None => None,
            Some(list) => {
                let mut names = Vec::with_capacity(list.get_ref().len());
                for tool in list.get_ref() {
                    let tool_name = values.expand(tool, &key("tools"))?;
                    if tool_name.is_empty() {
                        return Err(values.error(
                            Some(tool.span()),
                            format!("`{}` lists an empty tool name", key("tools")),
                        ));
                    }
                    names.push(tool_name);
                }
                Some(names)
            }
        };
        let refresh_default = defaults.refresh.as_secs();
        servers.push(McpServerOptions {
            name: name.clone(),
            url,
            api_key,
            header,
            scheme,
            prefix,
            timeout: values.millis(&s.timeout_ms, &key("timeout_ms"), defaults.timeout)?,
            refresh: Duration::from_secs(values.positive(
                &s.refresh_seconds,
                &key("refresh_seconds"),
                refresh_default,
            )?),
            tools,
            ..McpServerOptions::default()
        });
    }
    Ok(servers)
}

/// An HTTP field name: one or more token characters (RFC 9110 §5.6.2).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;
    use std::time::Duration;

    use aigw_server::McpServerOptions;

    use super::super::{Config, ConfigError, parse};

    fn env(name: &str) -> Option<String> {
        (name == "CALC_TOKEN").then(|| "tok-1".to_owned())
    }

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/aigw/aigw.toml"), text, &env)
    }

    #[test]
    fn a_server_gets_the_defaults_and_its_name_as_prefix() {
        let c = parse_str("[mcp_servers.calc]\nurl = \"http://127.0.0.1:9/mcp\"\n").unwrap();
        let defaults = McpServerOptions::default();
        let server = &c.mcp_servers[0];
        assert_eq!(server.name, "calc");
        assert_eq!(server.prefix, "calc");
        assert_eq!(server.api_key, None);
        assert_eq!(server.header, "authorization");
        assert_eq!(server.scheme, "Bearer ");
        assert_eq!(server.timeout, defaults.timeout);
        assert_eq!(server.refresh, Duration::from_secs(300));
        assert_eq!(server.tools, None);
        assert!(parse_str("").unwrap().mcp_servers.is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let c = parse_str(
            "[mcp_servers.calc]\nurl = \"https://tools.example.com/mcp\"\n\
             api_key = \"${CALC_TOKEN}\"\nheader = \"X-Api-Key\"\nscheme = \"\"\n\
             prefix = \"math\"\ntimeout_ms = 1500\nrefresh_seconds = 60\ntools = [\"add\"]\n",
        )
        .unwrap();
        let server = &c.mcp_servers[0];
        assert_eq!(server.api_key.as_deref(), Some("tok-1"));
        assert_eq!(server.header, "x-api-key");
        assert_eq!(server.scheme, "");
        assert_eq!(server.prefix, "math");
        assert_eq!(server.timeout, Duration::from_millis(1500));
        assert_eq!(server.refresh, Duration::from_secs(60));
        assert_eq!(server.tools, Some(vec!["add".to_owned()]));
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let cases = [
            (
                "[mcp_servers.a]\nurl = \"ftp://x/\"\n",
                (2, 7),
                "mcp_servers.a.url",
            ),
            (
                "[mcp_servers.a]\nurl = \"http://x/\"\napi_key = \"${NOPE}\"\n",
                (3, 11),
                "NOPE",
            ),
            (
                "[mcp_servers.a]\nurl = \"http://x/\"\nheader = \"a b\"\n",
                (3, 10),
                "mcp_servers.a.header",
            ),
            (
                "[mcp_servers.a]\nurl = \"http://x/\"\nprefix = \"a.b\"\n",
                (3, 10),
                "mcp_servers.a.prefix",
            ),
            (
                "[mcp_servers.\"a.b\"]\nurl = \"http://x/\"\n",
                (1, 1),
                "default prefix",
            ),
            (
                "[mcp_servers.a]\nurl = \"http://x/\"\ntimeout_ms = 0\n",
                (3, 14),
                "mcp_servers.a.timeout_ms",
            ),
            (
                "[mcp_servers.a]\nurl = \"http://x/\"\nrefresh_seconds = 0\n",
                (3, 19),
                "refresh_seconds",
            ),
            (
                "[mcp_servers.a]\nurl = \"http://x/\"\ntools = [\"\"]\n",
                (3, 10),
                "empty tool name",
            ),
            (
                "[mcp_servers.a]\nurl = \"http://x/\"\nzzz = 1\n",
                (3, 1),
                "zzz",
            ),
            (
                "[mcp_servers.a]\nurl = \"http://x/\"\n[mcp_servers.b]\nurl = \"http://y/\"\nprefix = \"a\"\n",
                (5, 10),
                "collide",
            ),
        ];
        for (text, at, says) in cases {
            let err = parse_str(text).unwrap_err();
            assert_eq!(err.at, Some(at), "{text}: {err}");
            assert!(err.message.contains(says), "{text}: {err}");
            assert!(err.to_string().starts_with("/etc/aigw/aigw.toml:"), "{err}");
        }
    }

    #[test]
    fn the_credential_may_come_from_a_file_but_not_twice() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("calc.key"), "tok-2\n").unwrap();
        let path = dir.path().join("aigw.toml");
        let text = "[mcp_servers.calc]\nurl = \"http://x/\"\napi_key_file = \"calc.key\"\n";
        let c = parse(&path, text, &env).unwrap();
        assert_eq!(c.mcp_servers[0].api_key.as_deref(), Some("tok-2"));
        let both = format!("{text}api_key = \"x\"\n");
        let err = parse(&path, &both, &env).unwrap_err();
        assert!(err.message.contains("both set"), "{err}");
        let missing = text.replace("calc.key", "gone.key");
        let err = parse(&path, &missing, &env).unwrap_err();
        assert!(err.message.contains("no such file"), "{err}");
        assert!(!err.message.contains("tok-2"));
    }
}
