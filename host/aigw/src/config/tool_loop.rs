//! `[tool_loop]`: the bounds of the gateway-executed tool loop inside chat completions,
//! validated into the server's [`ToolLoopOptions`]; and each `[models.<alias>] tools` list,
//! the aigw tools a route offers every request for it (names or `prefix*` patterns).

use std::collections::BTreeMap;

use aigw_access::Pattern;
use aigw_server::ToolLoopOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::models::RawModel;
use super::values::{Number, Values};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToolLoop {
    max_steps: Number,
    timeout_ms: Number,
    max_parallel_calls: Number,
}

/// The most model calls one request may make: each is a full routed call, so a typo of many
/// digits is refused rather than served.
const MAX_STEPS: u32 = 100;
/// The most calls of one step run at once.
const MAX_PARALLEL_CALLS: u32 = 64;

pub(super) fn validate(raw: &RawToolLoop, values: &Values) -> Result<ToolLoopOptions, ConfigError> {
    let mut options = ToolLoopOptions::default();
    if let Some(v) = &raw.max_steps {
        options.max_steps = values.u32_in(v, "tool_loop.max_steps", 1, MAX_STEPS)?;
    }
    options.timeout = values.millis(&raw.timeout_ms, "tool_loop.timeout_ms", options.timeout)?;
    if let Some(v) = &raw.max_parallel_calls {
        options.max_parallel_calls =
            values.u32_in(v, "tool_loop.max_parallel_calls", 1, MAX_PARALLEL_CALLS)? as usize;
    }
    Ok(options)
}

/// Each alias's `tools`, checked as grant patterns of tool names.
pub(super) fn route_tools(
    models: &BTreeMap<String, Spanned<RawModel>>,
    values: &Values,
) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let mut out = BTreeMap::new();
    for (alias, model) in models {
        let Some(tools) = &model.get_ref().tools else {
            continue;
        };
        let key = format!("models.{alias}.tools");
        let mut names = Vec::with_capacity(tools.len());
        for name in tools {
            let text = values.expand(name, &key)?;
            let invalid = |why: String| values.error(Some(name.span()), format!("`{key}`: {why}"));
            Pattern::parse(&text).map_err(invalid)?;
            let stem = text.strip_suffix('*').unwrap_or(&text);
            if stem.len() > 64
                || !stem
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
            {
                return Err(invalid(format!(
                    "{text:?} is not a tool name (1-64 of a-z A-Z 0-9 _ -) nor a `prefix*` \
                     pattern of one"
                )));
            }
            names.push(text);
        }
        out.insert(alias.clone(), names);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, parse};

    fn parsed(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/aigw/aigw.toml"), text, &|_| None)
    }

    const PROVIDER: &str = "[providers.groq]\nplugin = \"groq\"\n";

    #[test]
    fn the_bounds_default_and_are_checked_naming_the_key_and_line() {
        let c = parsed("").unwrap();
        assert_eq!(c.tool_loop, ToolLoopOptions::default());
        assert!(c.route_tools.is_empty());
        let c = parsed("[tool_loop]\nmax_steps = 3\ntimeout_ms = 500\nmax_parallel_calls = 2\n")
            .unwrap();
        assert_eq!(
            c.tool_loop,
            ToolLoopOptions {
                max_steps: 3,
                timeout: Duration::from_millis(500),
                max_parallel_calls: 2,
            }
        );
        for (text, key) in [
            ("[tool_loop]\nmax_steps = 0\n", "tool_loop.max_steps"),
            ("[tool_loop]\nmax_steps = 101\n", "tool_loop.max_steps"),
            ("[tool_loop]\ntimeout_ms = 0\n", "tool_loop.timeout_ms"),
            (
                "[tool_loop]\nmax_parallel_calls = 0\n",
                "tool_loop.max_parallel_calls",
            ),
        ] {
            let e = parsed(text).unwrap_err();
            assert!(e.message.contains(key), "{text}: {e}");
            assert_eq!(e.at.map(|(line, _)| line), Some(2), "{text}: {e}");
        }
        let e = parsed("[tool_loop]\nmax_step = 3\n").unwrap_err();
        assert!(e.message.contains("max_step"), "{e}");
    }

    #[test]
    fn a_routes_tools_are_names_or_prefix_patterns() {
        let c = parsed(&format!(
            "{PROVIDER}[models.m]\ntargets = [\"groq/a\"]\ntools = [\"weather_*\", \"web_search\", \"*\"]\n"
        ))
        .unwrap();
        assert_eq!(c.route_tools["m"], ["weather_*", "web_search", "*"]);
        for bad in ["\"we*ther\"", "\"no spaces\"", "\"\""] {
            let e = parsed(&format!(
                "{PROVIDER}[models.m]\ntargets = [\"groq/a\"]\ntools = [{bad}]\n"
            ))
            .unwrap_err();
            assert!(e.message.contains("models.m.tools"), "{bad}: {e}");
            assert_eq!(e.at.map(|(line, _)| line), Some(5), "{bad}: {e}");
        }
    }
}
