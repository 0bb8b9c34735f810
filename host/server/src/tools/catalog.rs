//! Building the toolbox from loaded tool plugins: each configured plugin's upstreams checked
//! against what the plugin describes (names, endpoints), turned into the route its calls walk
//! (in the operator's order of preference; an upstream that needs a key and has none is left
//! out, and said so), and each of its tools into a [`Tool`] whose argument schema is compiled
//! here, once.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aigw_egress::{Credential, Grants, Origin, Placement, Secret};
use aigw_router::{HealthRegistry, Policy, RetryBudget, Route, RouteEntry, Strategy, Timeouts};
use aigw_runtime::{OutboundLimits, ToolPlugin, ToolTarget, ToolUpstream};
use serde_json::Value;

use super::options::{ToolOptions, ToolUpstreamOptions};
use super::schema::ArgumentSchema;
use super::upstreams::{UpstreamTarget, tool_label};
use super::{PluginTool, Tool, ToolSource, Toolbox};

/// Why a tool plugin cannot serve as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// `upstream[index]` names an upstream the plugin does not describe.
    UnknownUpstream {
        plugin: String,
        index: usize,
        name: String,
        known: Vec<String>,
    },
    /// `upstream[index].endpoints` names an endpoint the upstream does not have.
    UnknownEndpoint {
        plugin: String,
        index: usize,
        endpoint: String,
        known: Vec<String>,
    },
    /// An endpoint URL (configured or the plugin's default) is not an http(s) URL, or the
    /// credential cannot be placed as the plugin says.
    Endpoint {
        plugin: String,
        upstream: String,
        message: String,
    },
    /// A tool's parameters schema is not JSON, or does not compile.
    Schema {
        plugin: String,
        tool: String,
        message: String,
    },
    /// Two tool plugins offer a tool of one name.
    DuplicateTool {
        tool: String,
        first: String,
        second: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::UnknownUpstream {
                plugin,
                index,
                name,
                known,
            } => write!(
                f,
                "`tools.{plugin}.upstream[{index}].name`: the plugin has no upstream `{name}` \
                 (it has: {})",
                known.join(", ")
            ),
            BuildError::UnknownEndpoint {
                plugin,
                index,
                endpoint,
                known,
            } => write!(
                f,
                "`tools.{plugin}.upstream[{index}].endpoints.{endpoint}`: the upstream has no \
                 endpoint `{endpoint}` (it has: {})",
                known.join(", ")
            ),
            BuildError::Endpoint {
                plugin,
                upstream,
                message,
            } => write!(
                f,
                "tool plugin `{plugin}`, upstream `{upstream}`: {message}"
            ),
            BuildError::Schema {
                plugin,
                tool,
                message,
            } => write!(
                f,
                "tool plugin `{plugin}`: tool `{tool}` has a parameters schema that does not \
                 compile: {message}"
            ),
            BuildError::DuplicateTool {
                tool,
                first,
                second,
            } => write!(
                f,
                "tool `{tool}` is offered by both tool plugins `{first}` and `{second}`"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// What became of one of the plugin's upstreams (for `aigw check` and the start's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamState {
    pub name: String,
    /// Endpoint name → the URL calls go to.
    pub endpoints: Vec<(String, String)>,
    /// `Some`: left out, and why (it needs a key and has none).
    pub left_out: Option<String>,
    pub credential: bool,
}

/// A configured tool plugin: the plugin, the route its calls walk over its upstreams, and the
/// limits of each call's sends.
pub struct PluginTools {
    /// The config table's name (`[tools.<name>]`), which labels its upstreams.
    pub name: String,
    pub plugin: Arc<ToolPlugin>,
    pub route: Route<UpstreamTarget>,
    pub limits: OutboundLimits,
    /// Every upstream enabled by the config, in order, with what became of it.
    pub upstreams: Vec<UpstreamState>,
    /// The operator's TTL for every tool of the plugin.
    cache_ttl: Option<Duration>,
}

impl PluginTools {
    /// The plugin `plugin` as `options` configure it; each upstream's health comes from
    /// `health` (label `tool:<name>/<upstream>`), so `/admin/targets` lists it and it keeps its
    /// cooldowns across state swaps. `connect_timeout` must be one the runtime's egress has.
    pub fn new(
        options: &ToolOptions,
        plugin: Arc<ToolPlugin>,
        health: &HealthRegistry,
        connect_timeout: Duration,
    ) -> Result<PluginTools, BuildError> {
        let described = &plugin.descriptor().upstreams;
        let enabled: Vec<(&ToolUpstream, Option<&ToolUpstreamOptions>)> = match &options.upstreams {
            None => described.iter().map(|u| (u, None)).collect(),
            Some(configured) => {
                let mut enabled = Vec::with_capacity(configured.len());
                for (index, upstream) in configured.iter().enumerate() {
                    let Some(found) = described.iter().find(|u| u.name == upstream.name) else {
                        return Err(BuildError::UnknownUpstream {
                            plugin: options.name.clone(),
                            index,
                            name: upstream.name.clone(),
                            known: described.iter().map(|u| u.name.clone()).collect(),
                        });
                    };
                    for (endpoint, _) in &upstream.endpoints {
                        if !found.endpoints.iter().any(|(name, _)| name == endpoint) {
                            return Err(BuildError::UnknownEndpoint {
                                plugin: options.name.clone(),
                                index,
                                endpoint: endpoint.clone(),
                                known: found.endpoints.iter().map(|(n, _)| n.clone()).collect(),
                            });
                        }
                    }
                    enabled.push((found, Some(upstream)));
                }
                enabled
            }
        };
        let limits = OutboundLimits {
            send_timeout: options.timeout,
            response_body_bytes: options.max_response_bytes,
            connect_timeout,
            ..OutboundLimits::default()
        };
        // The engine's bound on a whole call: every send the plugin may make, each within its
        // own limit (the plugin's own work is bounded by the runtime's call deadline).
        let total = options
            .timeout
            .saturating_mul(limits.sends_per_call.saturating_add(1));
        let timeouts = Timeouts {
            connect: connect_timeout,
            first_byte: total,
            stall: total,
            total,
        };
        let mut entries = Vec::new();
        let mut upstreams = Vec::new();
        if described.is_empty() {
            // A plugin whose tools reach no network: one target with no grant.
            let label = format!("tool:{}", options.name);
            entries.push(RouteEntry {
                health: health.configured(&label),
                target: UpstreamTarget {
                    target: ToolTarget::default(),
                    label: label.into(),
                    grants: Grants::none(),
                    credential: None,
                    secret: None,
                },
                priority: 0,
                weight: 1,
                context_window: None,
                timeouts,
            });
        }
        for (upstream, configured) in enabled {
            let fail = |message: String| BuildError::Endpoint {
                plugin: options.name.clone(),
                upstream: upstream.name.clone(),
                message,
            };
            let endpoints: Vec<(String, String)> = upstream
                .endpoints
                .iter()
                .map(|(name, default)| {
                    let url = configured
                        .and_then(|c| c.endpoints.iter().find(|(n, _)| n == name))
                        .map_or(default.as_str(), |(_, url)| url.as_str());
                    (name.clone(), url.trim_end_matches('/').to_owned())
                })
                .collect();
            let mut origins = Vec::with_capacity(endpoints.len());
            for (name, url) in &endpoints {
                let origin = Origin::of(url)
                    .map_err(|e| fail(format!("endpoint `{name}` ({url}): {}", e.message())))?;
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
            let key = configured.and_then(|c| c.api_key.clone());
            let left_out = match (&key, upstream.credential_required) {
                (None, true) => Some(
                    configured
                        .and_then(|c| c.api_key_missing.clone())
                        .unwrap_or_else(|| "no api_key is configured".into()),
                ),
                _ => None,
            };
            let secret = key.map(Secret::new);
            let credential = match (&secret, &upstream.credential) {
                (Some(secret), placement) if *placement != Placement::None => {
                    let urls: Vec<String> = endpoints.iter().map(|(_, u)| u.clone()).collect();
                    let (first, rest) = urls.split_first().map_or(("", &[][..]), |(f, r)| (f, r));
                    Some(
                        Credential::new(secret.clone(), placement.clone(), first, rest)
                            .map_err(|e| fail(e.message().to_owned()))?,
                    )
                }
                _ => None,
            };
            upstreams.push(UpstreamState {
                name: upstream.name.clone(),
                endpoints: endpoints.clone(),
                left_out: left_out.clone(),
                credential: credential.is_some(),
            });
            if left_out.is_some() {
                continue;
            }
            let label = tool_label(&options.name, &upstream.name);
            entries.push(RouteEntry {
                health: health.configured(&label),
                target: UpstreamTarget {
                    target: ToolTarget {
                        upstream: upstream.name.clone(),
                        endpoints,
                    },
                    label: label.into(),
                    grants: Grants::new(origins),
                    credential,
                    secret,
                },
                // The operator's order is the order of preference.
                priority: u32::try_from(entries.len()).unwrap_or(u32::MAX),
                weight: 1,
                context_window: None,
                timeouts,
            });
        }
        Ok(PluginTools {
            name: options.name.clone(),
            plugin,
            route: Route::new(
                entries,
                Policy {
                    strategy: Strategy::Weighted,
                    // The next upstream is another API, not a retry of the same one: fail over.
                    retries: 0,
                    retry_budget: RetryBudget::new(0.0),
                    hedge_after: None,
                },
            ),
            limits,
            upstreams,
            cache_ttl: options.cache_ttl,
        })
    }

    /// The plugin's tools, with their schemas compiled.
    fn tools(self: &Arc<PluginTools>) -> Result<Vec<Tool>, BuildError> {
        let mut tools = Vec::new();
        for spec in self.plugin.describe() {
            let fail = |message: String| BuildError::Schema {
                plugin: self.name.clone(),
                tool: spec.name.clone(),
                message,
            };
            let parameters: Value = serde_json::from_str(&spec.parameters_schema)
                .map_err(|e| fail(format!("not JSON: {e}")))?;
            let schema = ArgumentSchema::compile(&parameters).map_err(fail)?;
            let output = match &spec.output_schema {
                None => None,
                Some(text) => Some(Arc::new(serde_json::from_str::<Value>(text).map_err(
                    |e| BuildError::Schema {
                        plugin: self.name.clone(),
                        tool: spec.name.clone(),
                        message: format!("the output schema is not JSON: {e}"),
                    },
                )?)),
            };
            tools.push(Tool {
                name: spec.name.as_str().into(),
                title: spec.title.clone(),
                description: spec.description.clone(),
                parameters: Arc::new(parameters),
                output,
                source: ToolSource::Plugin(PluginTool {
                    plugin: Arc::clone(self),
                    schema,
                    cache_ttl: self.cache_ttl.unwrap_or(spec.cache_ttl),
                }),
            });
        }
        Ok(tools)
    }
}

/// The toolbox of every plugin's tools.
pub(super) fn toolbox(plugins: Vec<Arc<PluginTools>>) -> Result<Toolbox, BuildError> {
    let mut tools: BTreeMap<Arc<str>, Arc<Tool>> = BTreeMap::new();
    for plugin in &plugins {
        for tool in plugin.tools()? {
            if let Some(first) = tools.get(&tool.name) {
                let ToolSource::Plugin(first) = &first.source;
                return Err(BuildError::DuplicateTool {
                    tool: tool.name.to_string(),
                    first: first.plugin.name.clone(),
                    second: plugin.name.clone(),
                });
            }
            tools.insert(Arc::clone(&tool.name), Arc::new(tool));
        }
    }
    Ok(Toolbox { tools, plugins })
}
