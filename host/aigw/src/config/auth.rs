//! `[auth]`: the admin key (which turns authentication on), the explicit opt-out of the
//! loopback-only rule, and how often keys changed by other processes are picked up, validated
//! into the server's [`AuthOptions`] (whose `Default` holds the defaults). The admin key comes
//! from `admin_key` (normally `"${AIGW_ADMIN_KEY}"`), `admin_key_file`, or, when neither is set,
//! the environment variable `AIGW_ADMIN_KEY`.

use std::path::Path;

use aigw_egress::Secret;
use aigw_server::AuthOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

/// The environment variable the admin key is taken from when the config names none.
pub const ADMIN_KEY_ENV: &str = "AIGW_ADMIN_KEY";

/// The shortest admin key accepted: a short one could be guessed.
const MIN_ADMIN_KEY_CHARS: usize = 16;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    admin_key: Option<Spanned<String>>,
    admin_key_file: Option<Spanned<String>>,
    allow_unauthenticated: Option<bool>,
    key_refresh_ms: Number,
}

/// `base` is the config file's folder, which a relative `admin_key_file` starts from.
pub(super) fn validate(
    raw: &RawAuth,
    base: &Path,
    values: &Values,
) -> Result<AuthOptions, ConfigError> {
    let defaults = AuthOptions::default();
    let admin_key = match (&raw.admin_key, &raw.admin_key_file) {
        (Some(_), Some(file)) => {
            return Err(values.error(
                Some(file.span()),
                "`auth.admin_key` and `auth.admin_key_file` are both set: keep one",
            ));
        }
        (Some(v), None) => Some((
            values.expand(v, "auth.admin_key")?,
            Some(v.span()),
            "auth.admin_key",
        )),
        (None, Some(v)) => {
            let path = base.join(values.expand(v, "auth.admin_key_file")?);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                values.error(
                    Some(v.span()),
                    format!("`auth.admin_key_file`: cannot read {}: {e}", path.display()),
                )
            })?;
            Some((
                text.trim().to_owned(),
                Some(v.span()),
                "auth.admin_key_file",
            ))
        }
        (None, None) => (values.env)(ADMIN_KEY_ENV)
            .filter(|v| !v.is_empty())
            .map(|v| (v.trim().to_owned(), None, ADMIN_KEY_ENV)),
    };
    let admin_key = match admin_key {
        None => None,
        Some((key, span, from)) => {
            if key.chars().count() < MIN_ADMIN_KEY_CHARS || key.chars().any(char::is_whitespace) {
                // Never the key itself in the message.
                return Err(values.error(
                    span,
                    format!(
                        "`{from}`: the admin key must be at least {MIN_ADMIN_KEY_CHARS} \
                         characters with no spaces (e.g. `openssl rand -base64 32`)"
                    ),
                ));
            }
            Some(Secret::new(key))
        }
    };
    Ok(AuthOptions {
        admin_key,
        allow_unauthenticated: raw
            .allow_unauthenticated
            .unwrap_or(defaults.allow_unauthenticated),
        key_refresh: values.millis(
            &raw.key_refresh_ms,
            "auth.key_refresh_ms",
            defaults.key_refresh,
        )?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;
    use std::time::Duration;

    use crate::config::{Config, ConfigError, parse};

    fn read(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse(Path::new("/etc/aigw/aigw.toml"), text, &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_admin_key_comes_from_the_config_the_env_or_a_file() {
        let off = read("", &[]).unwrap();
        assert!(off.auth.admin_key.is_none());
        assert!(!off.auth.allow_unauthenticated);
        assert_eq!(off.auth.key_refresh, Duration::from_millis(1000));

        let key = "0123456789abcdefXYZ";
        let config = read(
            "[auth]\nadmin_key = \"${AIGW_ADMIN_KEY}\"\nkey_refresh_ms = 250\n",
            &[("AIGW_ADMIN_KEY", key)],
        )
        .unwrap();
        assert_eq!(config.auth.admin_key.unwrap().expose(), key);
        assert_eq!(config.auth.key_refresh, Duration::from_millis(250));
        // No [auth] admin_key: the environment variable.
        let config = read("", &[("AIGW_ADMIN_KEY", key)]).unwrap();
        assert_eq!(config.auth.admin_key.unwrap().expose(), key);

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.key"), format!("{key}\n")).unwrap();
        let config = parse(
            &dir.path().join("aigw.toml"),
            "[auth]\nadmin_key_file = \"admin.key\"\n",
            &|_| None,
        )
        .unwrap();
        assert_eq!(config.auth.admin_key.unwrap().expose(), key);
    }

    #[test]
    fn bad_admin_keys_are_refused_without_showing_them() {
        let short = read("[auth]\nadmin_key = \"hunter2\"\n", &[]).unwrap_err();
        assert_eq!(short.at, Some((2, 13)));
        assert!(
            short.message.contains("auth.admin_key"),
            "{}",
            short.message
        );
        assert!(!short.message.contains("hunter2"));
        let from_env = read("", &[("AIGW_ADMIN_KEY", "hunter2")]).unwrap_err();
        assert!(from_env.message.contains("AIGW_ADMIN_KEY"));
        assert!(!from_env.message.contains("hunter2"));
        let both = read(
            "[auth]\nadmin_key = \"0123456789abcdefXYZ\"\nadmin_key_file = \"k\"\n",
            &[],
        )
        .unwrap_err();
        assert!(both.message.contains("both"), "{}", both.message);
        let missing = read("[auth]\nadmin_key_file = \"/nonexistent/k\"\n", &[]).unwrap_err();
        assert!(missing.message.contains("auth.admin_key_file"));
        let zero = read("[auth]\nkey_refresh_ms = 0\n", &[]).unwrap_err();
        assert!(zero.message.contains("auth.key_refresh_ms"));
    }
}
