//! `[redaction]`: the patterns masked in stored memory and logged upstream text, compiled here
//! into the server's [`Redactor`] (so a bad pattern is a config error at its line), and what a
//! match becomes ([`RedactionOptions`]'s `Default` holds the defaults). Neither value is
//! `${VAR}`-expanded: `$` is a regex anchor, and a replacement is shown as written.

use aigw_server::{RedactionOptions, Redactor};
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::Values;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedaction {
    patterns: Option<Vec<Spanned<String>>>,
    replacement: Option<Spanned<String>>,
}

pub(super) fn validate(raw: &RawRedaction, values: &Values) -> Result<Redactor, ConfigError> {
    let defaults = RedactionOptions::default();
    let patterns = raw.patterns.as_deref().unwrap_or_default();
    let options = RedactionOptions {
        patterns: patterns.iter().map(|p| p.get_ref().clone()).collect(),
        replacement: raw
            .replacement
            .as_ref()
            .map_or(defaults.replacement, |r| r.get_ref().clone()),
    };
    Redactor::new(&options).map_err(|e| {
        let pattern = &patterns[e.index];
        values.error(
            Some(pattern.span()),
            format!(
                "`redaction.patterns`: {:?} is not a usable pattern: {}",
                pattern.get_ref(),
                e.message
            ),
        )
    })
}
