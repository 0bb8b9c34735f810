//! The usual end-to-end setup: two mock providers and a gateway configured to use them.
//!
//! - provider `groq`: the `groq` plugin in front of a Groq-flavored mock that requires
//!   [`GROQ_KEY`], which the config reads from `${GROQ_API_KEY}`;
//! - provider `local`: the `openai-compatible` plugin in front of an OpenAI-flavored mock, no key.
//!
//! Each test adds its own `[models.*]` (and any extra provider) as TOML.

use crate::gateway::{Gateway, GatewayBuilder};
use crate::mock::{Flavor, MockUpstream};
use crate::paths;

/// The Groq credential the tests configure; it must never show up in the gateway's logs.
pub const GROQ_KEY: &str = "gsk_e2e_SECRET_5f0c9a1b7d3e4c2a";

/// Quotes a string as a TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The `[plugins]` section: the built plugins, a 1 s call deadline, a 64 MiB memory cap.
pub fn plugins_section() -> String {
    format!(
        "[plugins]\ndir = {}\nwarm_instances = 2\ncall_timeout_ms = 1000\nmemory_limit_mib = 64\n",
        toml_str(&paths::plugins_dir().to_string_lossy())
    )
}

/// A `[providers.<name>]` section pointing `plugin` at a mock.
pub fn provider_section(name: &str, plugin: &str, mock: &MockUpstream, extra: &str) -> String {
    format!(
        "[providers.{name}]\nplugin = {}\nbase_url = {}\n{extra}",
        toml_str(plugin),
        toml_str(&mock.base_url())
    )
}

/// The two mock providers every end-to-end test can route to.
pub struct Upstreams {
    pub groq: MockUpstream,
    pub local: MockUpstream,
}

impl Upstreams {
    pub async fn start() -> Upstreams {
        Upstreams {
            groq: MockUpstream::start(Flavor::Groq)
                .await
                .with_api_key(GROQ_KEY),
            local: MockUpstream::start(Flavor::OpenAi).await,
        }
    }

    /// A complete config: plugins, providers `groq` and `local`, then `rest` (models, more
    /// providers).
    pub fn config(&self, rest: &str) -> String {
        format!(
            "{}\n{}\n{}\n{rest}",
            plugins_section(),
            provider_section(
                "groq",
                "groq",
                &self.groq,
                "api_key = \"${GROQ_API_KEY}\"\n"
            ),
            provider_section("local", "openai-compatible", &self.local, ""),
        )
    }

    /// A gateway builder with `GROQ_API_KEY` set, for tests that need more options.
    pub fn gateway_builder(&self) -> GatewayBuilder {
        Gateway::builder().env("GROQ_API_KEY", GROQ_KEY)
    }

    /// Starts a gateway on [`Upstreams::config`]`(rest)` that logs JSON lines (for tests that
    /// read fields of the log).
    pub async fn json_logged_gateway(&self, rest: &str) -> Gateway {
        self.gateway_builder()
            .log_format("json")
            .start(&self.config(rest))
            .await
    }

    /// Starts a gateway on [`Upstreams::config`]`(rest)`.
    pub async fn gateway(&self, rest: &str) -> Gateway {
        self.gateway_builder().start(&self.config(rest)).await
    }
}

/// Checks the gateway's error envelope, `{"error":{"message","type","param","code"}}` with all
/// four keys present, and returns the message.
///
/// # Panics
/// When the body is not that envelope.
pub fn error_message(body: &serde_json::Value) -> &str {
    let Some(error) = body.get("error").and_then(serde_json::Value::as_object) else {
        panic!("not an error envelope: {body}");
    };
    for key in ["message", "type", "param", "code"] {
        assert!(
            error.contains_key(key),
            "error envelope without `{key}`: {body}"
        );
    }
    match error.get("message").and_then(serde_json::Value::as_str) {
        Some(message) if !message.is_empty() => message,
        _ => panic!("error envelope without a message: {body}"),
    }
}

/// A header's value as text, or `""` when absent.
pub fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
