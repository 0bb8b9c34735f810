//! Reading one value of the config: errors located at the value's line and column, `${ENV}`
//! expansion, and the range checks every section shares (positive, milliseconds, `u32` bounds,
//! the four per-level timeouts).

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use aigw_server::TimeoutOverrides;
use toml::Spanned;

use super::ConfigError;
use super::env::expand_env;

/// The file being read and the environment `${VAR}` expands from.
pub(super) struct Values<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// An optional number as written in the file, with its place.
pub(super) type Number = Option<Spanned<u64>>;

impl Values<'_> {
    /// An error at `span` (a byte range of the file), or at the file as a whole.
    pub fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            at: span.map(|s| line_column(self.text, s.start)),
            message: message.into(),
        }
    }

    /// The 1-based line and column of byte range `span`'s start.
    pub fn place(&self, span: Range<usize>) -> (usize, usize) {
        line_column(self.text, span.start)
    }

    /// Expands `${VAR}` in `value` (found at `span`, under `key`); an unset variable is an error.
    pub fn expand_at(
        &self,
        value: &str,
        span: Range<usize>,
        key: &str,
    ) -> Result<String, ConfigError> {
        expand_env(value, self.env).map_err(|var| {
            self.error(
                Some(span),
                format!("`{key}`: environment variable {var} is not set"),
            )
        })
    }

    pub fn expand(&self, value: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        self.expand_at(value.get_ref(), value.span(), key)
    }

    /// An integer greater than 0, else `default`.
    pub fn positive(&self, value: &Number, key: &str, default: u64) -> Result<u64, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) if *v.get_ref() == 0 => {
                Err(self.error(Some(v.span()), format!("`{key}` must be greater than 0")))
            }
            Some(v) => Ok(*v.get_ref()),
        }
    }

    /// A duration in ms, at least 1, else `default`.
    pub fn millis(
        &self,
        value: &Number,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.positive(value, key, default)
            .map(Duration::from_millis)
    }

    /// An optional duration in ms: absent is `None`, 0 is an error.
    pub fn optional_millis(
        &self,
        value: &Number,
        key: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        value
            .as_ref()
            .map(|_| self.positive(value, key, 0).map(Duration::from_millis))
            .transpose()
    }

    /// An integer in `min..=max`.
    pub fn u32_in(
        &self,
        value: &Spanned<u64>,
        key: &str,
        min: u32,
        max: u32,
    ) -> Result<u32, ConfigError> {
        let v = *value.get_ref();
        let message = if v < u64::from(min) {
            format!("`{key}` must be at least {min}")
        } else {
            match u32::try_from(v) {
                Ok(v) if v <= max => return Ok(v),
                _ => format!("`{key}` must be at most {max}"),
            }
        };
        Err(self.error(Some(value.span()), message))
    }

    /// The four per-phase timeouts of a provider, route or target; `prefix` names the table.
    pub fn timeouts(
        &self,
        prefix: &str,
        connect: &Number,
        first_byte: &Number,
        stall: &Number,
        total: &Number,
    ) -> Result<TimeoutOverrides, ConfigError> {
        let key = |name: &str| format!("{prefix}.{name}");
        Ok(TimeoutOverrides {
            connect: self.optional_millis(connect, &key("connect_timeout_ms"))?,
            first_byte: self.optional_millis(first_byte, &key("first_byte_timeout_ms"))?,
            stall: self.optional_millis(stall, &key("stall_timeout_ms"))?,
            total: self.optional_millis(total, &key("total_timeout_ms"))?,
        })
    }
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
