//! `[mcp]`: the MCP server at `/mcp`, validated into the server's [`McpOptions`] (whose
//! `Default` holds the defaults).

use std::time::Duration;

use aigw_server::McpOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMcp {
    enabled: Option<bool>,
    session_ttl_seconds: Number,
    instructions: Option<Spanned<String>>,
}

/// The longest session time-to-live: a week (an idle session is a row kept for nothing).
const MAX_SESSION_TTL_SECONDS: u64 = 7 * 24 * 3600;
/// The longest instructions: they go into a model's context with every session.
const MAX_INSTRUCTIONS_BYTES: usize = 8192;

pub(super) fn validate(raw: &RawMcp, values: &Values) -> Result<McpOptions, ConfigError> {
    let defaults = McpOptions::default();
    let ttl = values.positive(
        &raw.session_ttl_seconds,
        "mcp.session_ttl_seconds",
        defaults.session_ttl.as_secs(),
    )?;
    if let Some(v) = &raw.session_ttl_seconds
        && ttl > MAX_SESSION_TTL_SECONDS
    {
        return Err(values.error(
            Some(v.span()),
            format!("`mcp.session_ttl_seconds` must be at most {MAX_SESSION_TTL_SECONDS} (a week)"),
        ));
    }
    let instructions = match &raw.instructions {
        None => defaults.instructions,
        Some(v) => {
            let text = values.expand(v, "mcp.instructions")?;
            if text.len() > MAX_INSTRUCTIONS_BYTES {
                return Err(values.error(
                    Some(v.span()),
                    format!("`mcp.instructions` must be at most {MAX_INSTRUCTIONS_BYTES} bytes"),
                ));
            }
            text
        }
    };
    Ok(McpOptions {
        enabled: raw.enabled.unwrap_or(defaults.enabled),
        session_ttl: Duration::from_secs(ttl),
        instructions,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<McpOptions, ConfigError> {
        super::super::parse(Path::new("aigw.toml"), text, &|_| None).map(|c| c.mcp)
    }

    #[test]
    fn mcp_takes_its_knobs_and_names_a_bad_one() {
        assert_eq!(parse("").unwrap(), McpOptions::default());
        let tuned = parse(
            "[mcp]\nenabled = false\nsession_ttl_seconds = 120\ninstructions = \"Weather.\"\n",
        )
        .unwrap();
        assert!(!tuned.enabled);
        assert_eq!(tuned.session_ttl, Duration::from_secs(120));
        assert_eq!(tuned.instructions, "Weather.");
        let error = parse("[mcp]\nsession_ttl_seconds = 0\n").unwrap_err();
        assert_eq!(error.at, Some((2, 23)));
        assert!(
            error.message.contains("`mcp.session_ttl_seconds`"),
            "{}",
            error.message
        );
        let error = parse("[mcp]\nsession_ttl_seconds = 999999999\n").unwrap_err();
        assert!(error.message.contains("at most"), "{}", error.message);
        let error = parse("[mcp]\nsessions = 1\n").unwrap_err();
        assert_eq!(error.at.map(|(line, _)| line), Some(2));
        let long = format!("[mcp]\ninstructions = \"{}\"\n", "x".repeat(9000));
        assert!(parse(&long).unwrap_err().message.contains("8192"));
    }
}
