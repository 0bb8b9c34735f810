//! The tool service: every tool the gateway offers (each tool plugin's, and later remote MCP
//! servers'), and [`Toolbox::call`], the one path every surface calls a tool through (REST, the
//! chat loop, MCP). A call is checked against the key's grant, its tool quota and the tool's
//! argument schema, answered from the shared cache when it can be, else walked over the tool's
//! upstreams by the router's engine (failover, cooldowns), and reported once (a log line and a
//! usage row). Surfaces never re-implement any of it.

mod cache;
mod call;
mod catalog;
mod error;
mod options;
mod quota;
mod record;
pub(crate) mod rest;
mod schema;
mod upstreams;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

pub use self::catalog::{BuildError, PluginTools, UpstreamState};
pub use self::error::ToolError;
pub use self::options::{ToolOptions, ToolUpstreamOptions};
pub use self::record::usage_label;
pub use self::rest::CACHE_HEADER;
pub use self::schema::ArgumentSchema;
pub use self::upstreams::{UpstreamTarget, tool_label};
pub use crate::auth::Principal;

/// One tool a caller may be offered.
pub struct Tool {
    /// 1-64 characters of `a-z A-Z 0-9 _ -`, unique in the gateway.
    pub name: Arc<str>,
    /// For people (MCP `title`).
    pub title: String,
    /// For the model: what the tool does and when to use it.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Arc<Value>,
    /// JSON Schema of the result, when results have one shape (MCP `outputSchema`).
    pub output: Option<Arc<Value>>,
    /// Where calls go.
    pub source: ToolSource,
}

/// Where a tool's calls go.
pub enum ToolSource {
    /// A tool of a loaded tool plugin, walked over the plugin's upstreams.
    Plugin(PluginTool),
}

/// A tool plugin's tool: its plugin (with its upstreams' route), its compiled argument schema
/// and how long its results stay fresh.
pub struct PluginTool {
    pub plugin: Arc<PluginTools>,
    pub schema: ArgumentSchema,
    /// The operator's `cache_ttl_seconds`, else the plugin's; zero: never cached.
    pub cache_ttl: Duration,
}

impl Tool {
    /// The tool as an OpenAI function definition:
    /// `{"type":"function","function":{"name","description","parameters"}}`.
    pub fn function(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": &*self.name,
                "description": self.description,
                "parameters": &*self.parameters,
            }
        })
    }

    /// The `GET /v1/tools` entry: the function definition, with `title` and `output_schema`
    /// beside `function` when the tool has them.
    pub fn listed(&self) -> Value {
        let mut entry = self.function();
        if let Value::Object(fields) = &mut entry {
            if !self.title.is_empty() {
                fields.insert("title".into(), Value::String(self.title.clone()));
            }
            if let Some(output) = &self.output {
                fields.insert("output_schema".into(), (**output).clone());
            }
        }
        entry
    }

    /// The argument schema calls are validated against, when the tool has one compiled.
    pub fn schema(&self) -> &ArgumentSchema {
        match &self.source {
            ToolSource::Plugin(tool) => &tool.schema,
        }
    }

    /// How long a result stays fresh (zero: never cached).
    pub fn cache_ttl(&self) -> Duration {
        match &self.source {
            ToolSource::Plugin(tool) => tool.cache_ttl,
        }
    }
}

/// Every tool the served state offers, by name, and the plugins behind them.
#[derive(Default)]
pub struct Toolbox {
    tools: BTreeMap<Arc<str>, Arc<Tool>>,
    plugins: Vec<Arc<PluginTools>>,
}

/// Through which surface a tool is called (the log line and usage say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `POST /v1/tools/{name}/invoke`.
    Rest,
    /// A chat completion's tool loop.
    Chat,
    /// The MCP server (`tools/call`).
    Mcp,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Rest => "rest",
            Via::Chat => "chat",
            Via::Mcp => "mcp",
        }
    }
}

/// Who calls a tool, and through which surface.
#[derive(Debug, Clone, Copy)]
pub struct ToolCaller<'a> {
    pub principal: &'a Principal,
    /// The memory namespace the call acts in (a plugin's `memory` import); `None`: none.
    pub namespace: Option<&'a str>,
    pub via: Via,
    /// The request the call belongs to, for the log line.
    pub request_id: &'a str,
}

/// Whether an answer came from the shared cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from the cache: no upstream was called.
    Hit,
    /// Not in the cache: the upstream answered, and the answer was stored.
    Miss,
    /// Not cached: the tool's TTL is zero, or there is no store.
    Off,
}

impl CacheStatus {
    /// The `x-aigw-cache` header's value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Off => "off",
        }
    }
}

/// A tool's answer.
#[derive(Debug, Clone)]
pub struct ToolAnswer {
    /// The result (a JSON object for plugin tools; `null` for a tool that returns nothing).
    pub value: Value,
    /// The same, as compact JSON (what a model is given as the tool message's content).
    pub text: String,
    pub cache: CacheStatus,
    /// The upstream that answered (`None` for a cache hit... of a tool without upstreams).
    pub upstream: Option<String>,
    pub elapsed: Duration,
}

impl Toolbox {
    /// The toolbox of `plugins`' tools. Two tools of one name (from two plugins) are refused.
    pub fn new(plugins: Vec<Arc<PluginTools>>) -> Result<Toolbox, BuildError> {
        catalog::toolbox(plugins)
    }

    /// The tool named `name`, whoever may use it.
    pub fn get(&self, name: &str) -> Option<&Arc<Tool>> {
        self.tools.get(name)
    }

    /// Every tool `principal` may use, sorted by name.
    pub fn visible(&self, principal: &Principal) -> Vec<Arc<Tool>> {
        self.tools
            .values()
            .filter(|tool| may_use(principal, &tool.name))
            .cloned()
            .collect()
    }

    /// Every tool, sorted by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Tool>> {
        self.tools.values()
    }

    /// The tool plugins behind the tools, in config order.
    pub fn plugins(&self) -> &[Arc<PluginTools>] {
        &self.plugins
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }
}

/// Whether `principal` may call the tool `name`: a key only within its grant.
fn may_use(principal: &Principal, name: &str) -> bool {
    principal.key().is_none_or(|key| key.may_use_tool(name))
}
