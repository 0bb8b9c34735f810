//! Tool plugins in plain Rust: the [`Tool`] trait (the `tool` interface of `wit/tool.wit`), what
//! a plugin describes ([`ToolDescriptor`], [`ToolSpec`], [`Upstream`]) and the [`ToolTarget`] a
//! call is for. `tool_export.rs` converts them at the component boundary.

use serde_json::Value;

use crate::types::{CredentialPlacement, Failure};

/// A URL with a name: an upstream's endpoint (`forecast` → `https://api.open-meteo.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedUrl {
    pub name: String,
    pub url: String,
}

impl NamedUrl {
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> NamedUrl {
        NamedUrl {
            name: name.into(),
            url: url.into(),
        }
    }
}

/// One tool a plugin offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// 1-64 characters of `a-z A-Z 0-9 _ -`, starting with the plugin's subject.
    pub name: String,
    /// A short title for people (MCP `title`).
    pub title: String,
    /// What the tool does and when to use it: the model reads this.
    pub description: String,
    /// JSON Schema of the arguments object (see [`crate::schema`]).
    pub parameters: Value,
    /// JSON Schema of the result object.
    pub output: Option<Value>,
    /// How long a result stays fresh (0: never cached).
    pub cache_ttl_seconds: u32,
}

/// An upstream API the plugin's tools call; the host walks them in the plugin's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    /// Where its requests go, by name, with each endpoint's default URL.
    pub endpoints: Vec<NamedUrl>,
    /// Where the host puts the operator's credential (only on this upstream's endpoints).
    pub credential: CredentialPlacement,
    /// Whether calls fail without a credential: the host skips the upstream when none is set.
    pub credential_required: bool,
}

/// What a tool plugin says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDescriptor {
    pub name: String,
    pub version: String,
    pub tools: Vec<ToolSpec>,
    /// In the plugin's order of preference.
    pub upstreams: Vec<Upstream>,
}

/// The upstream a call is for, with its endpoints' URLs as the operator configured them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolTarget {
    pub upstream: String,
    pub endpoints: Vec<NamedUrl>,
}

impl ToolTarget {
    /// The configured URL of endpoint `name`, without a trailing `/` (so a path can follow).
    /// A target without it is the host's mistake: `unavailable`, so the host tries the next.
    pub fn endpoint(&self, name: &str) -> Result<&str, Failure> {
        self.endpoints
            .iter()
            .find(|endpoint| endpoint.name == name)
            .map(|endpoint| endpoint.url.trim_end_matches('/'))
            .ok_or_else(|| {
                Failure::Unavailable(format!(
                    "upstream {:?} was called without its {name:?} endpoint",
                    self.upstream
                ))
            })
    }
}

/// A tool plugin: the `tool` interface of the WIT in plain Rust types.
///
/// As with providers, the host reuses warm instances for any caller: keep no per-call state in
/// globals. The plugin never sees a credential; it builds URLs only from `target`'s endpoints,
/// and the host adds the upstream's key on the way out.
pub trait Tool: 'static {
    fn describe() -> ToolDescriptor;

    /// Runs tool `name` with its arguments (already checked against the tool's schema by the
    /// host) on `target`'s upstream: the result object, or a classified failure (see
    /// [`crate::answer`]) so the host can fail over.
    fn invoke(name: &str, args: Value, target: &ToolTarget) -> Result<Value, Failure>;
}

/// Exports a [`Tool`] as the component's `aigw:plugin/tool` implementation:
/// `aigw_plugin_sdk::export_tool!(Weather);`. Use it once, at the plugin crate's root.
///
/// As with [`crate::export_provider!`], the export glue is only emitted for wasm32; native builds
/// (unit tests, clippy) only check that the type is a [`Tool`].
#[macro_export]
macro_rules! export_tool {
    ($tool:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::tool_export::assert_tool::<$tool>();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type AigwToolExport = $crate::tool_export::Export<$tool>;
            $crate::tool_bindings::export_tool_bindings!(
                AigwToolExport with_types_in $crate::tool_bindings
            );
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_found_by_name_without_its_trailing_slash() {
        let target = ToolTarget {
            upstream: "open-meteo".to_owned(),
            endpoints: vec![
                NamedUrl::new("geocoding", "http://127.0.0.1:9/geo/"),
                NamedUrl::new("forecast", "http://127.0.0.1:9"),
            ],
        };
        assert_eq!(target.endpoint("geocoding"), Ok("http://127.0.0.1:9/geo"));
        assert_eq!(target.endpoint("forecast"), Ok("http://127.0.0.1:9"));
        let missing = target.endpoint("archive").unwrap_err();
        assert!(matches!(missing, Failure::Unavailable(_)), "{missing:?}");
        assert!(missing.message().contains("archive"));
    }
}
