//! The served state: providers (plugin, base URL, credential, grants, timeouts), routes
//! (aliases → ordered targets), and the pooled egress. Built by the binary from the validated
//! config; read-only while serving, and replaced whole when a new one is built.

use aigw_telemetry::Telemetry;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aigw_access::{Ledger, Limiter, Prices};
use aigw_egress::{Credential, Egress, EgressError, Grants, Origin, Secret};
use aigw_memory::Store;
use aigw_router::{Health, HealthRegistry, Policy, RetryBudget, Route, RouteEntry, Timeouts};
use aigw_runtime::{Plugin, PluginTarget};
use bytes::Bytes;
use serde::Serialize;

use crate::chat::cache::{ResponseCache, ResponseCacheOptions};
use crate::options::{
    McpOptions, ProviderOptions, RouteOptions, ServerOptions, SessionOptions, TargetOptions,
    TimeoutOverrides, ToolLoopOptions,
};
use crate::redact::Redactor;
use crate::scrub::Scrubber;
use crate::tools::Toolbox;

/// A configured provider: which plugin translates for it and how the host reaches it.
pub struct Provider {
    pub name: String,
    pub plugin: Arc<Plugin>,
    /// The configured base URL, else the plugin's default.
    pub base_url: String,
    /// The operator's key, added by the egress only to the provider's own origins.
    pub credential: Option<Credential>,
    /// The same key, for masking it wherever an upstream echoes it.
    pub(crate) secret: Option<Secret>,
    /// Where this provider's requests may go: its base URL's origin (and, with the plugin's
    /// default base URL, the other origins the plugin declares). Anything else is refused.
    pub grants: Grants,
    /// Why no credential is set when the plugin requires one (e.g. "GROQ_API_KEY is not set").
    pub missing_credential: Option<String>,
    pub connect_timeout: Duration,
    /// The default of every other time limit: first byte, stall between stream chunks, and a
    /// whole non-streamed answer.
    pub timeout: Duration,
    /// The provider's own overrides of `timeout` (`first_byte_timeout_ms`, …).
    pub timeouts: TimeoutOverrides,
}

impl Provider {
    /// The provider `options` describe, translated by `plugin` (the file `options.plugin`).
    /// Fails when the base URL is not an http(s) URL or the credential cannot be placed as the
    /// plugin asks (an invalid header name, say); the message never names the secret.
    pub fn new(options: &ProviderOptions, plugin: Arc<Plugin>) -> Result<Provider, EgressError> {
        let base_url = options
            .base_url
            .clone()
            .unwrap_or_else(|| plugin.descriptor().default_base_url.clone())
            .trim_end_matches('/')
            .to_owned();
        // The other origins a plugin declares belong to the provider's default deployment:
        // they are granted (and get the credential) only while the operator keeps it.
        let default_base_url = plugin.descriptor().default_base_url.trim_end_matches('/');
        let also: &[String] = if base_url == default_base_url {
            &plugin.descriptor().origins
        } else {
            &[]
        };
        let mut origins = vec![Origin::of(&base_url)?];
        for origin in also {
            origins.push(Origin::of(origin)?);
        }
        let grants = Grants::new(origins);
        let credential = options.api_key.clone().map(Secret::new);
        let missing_credential = match (&credential, plugin.descriptor().credential_required) {
            (None, true) => Some(
                options
                    .api_key_missing
                    .clone()
                    .unwrap_or_else(|| "no api_key is configured".into()),
            ),
            _ => None,
        };
        let secret = credential.clone();
        let credential = match credential {
            None => None,
            Some(secret) => {
                let placement = plugin.descriptor().credential.clone();
                Some(Credential::new(secret, placement, &base_url, also)?)
            }
        };
        Ok(Provider {
            name: options.name.clone(),
            plugin,
            base_url,
            credential,
            secret,
            grants,
            missing_credential,
            connect_timeout: options.connect_timeout,
            timeout: options.timeout,
            timeouts: options.timeouts,
        })
    }

    /// A target's time limits: the target's own, else its route's, else this provider's.
    fn timeouts(&self, target: &TimeoutOverrides, route: &TimeoutOverrides) -> Timeouts {
        let pick = |t: Option<Duration>, r: Option<Duration>, p: Option<Duration>, d: Duration| {
            t.or(r).or(p).unwrap_or(d)
        };
        Timeouts {
            connect: pick(target.connect, route.connect, None, self.connect_timeout),
            first_byte: pick(
                target.first_byte,
                route.first_byte,
                self.timeouts.first_byte,
                self.timeout,
            ),
            stall: pick(target.stall, route.stall, self.timeouts.stall, self.timeout),
            // A whole stream may rightly run longer than any single wait.
            total: pick(
                target.total,
                route.total,
                self.timeouts.total,
                self.timeout.max(Timeouts::default().total),
            ),
        }
    }
}

/// One place a request can be sent: a provider and the model name it knows.
#[derive(Clone)]
pub struct RouteTarget {
    pub provider: Arc<Provider>,
    pub plugin_target: PluginTarget,
    /// `provider/model`, as clients and logs name it.
    pub label: Arc<str>,
    /// Whether the target continues a partial assistant message sent as the last message
    /// (else a broken stream is continued with a continuation prompt).
    pub prefill: bool,
}

impl RouteTarget {
    pub fn new(provider: Arc<Provider>, model: &str) -> RouteTarget {
        let plugin_target = PluginTarget::new(&provider.base_url, model);
        let label = format!("{}/{model}", provider.name).into();
        RouteTarget {
            provider,
            plugin_target,
            label,
            prefill: false,
        }
    }

    pub fn model(&self) -> &str {
        self.plugin_target.model()
    }
}

/// A route ready to serve: the engine's route over the server's targets.
pub type ServedRoute = Route<RouteTarget>;

/// How many distinct `provider/model` names requested directly keep their own route; past it a
/// direct request gets a fresh, unremembered route (a client cannot grow the map without bound).
///
/// The count is a byte bound as well: a name reaches here only after the request head capped it
/// at `MAX_MODEL_NAME_BYTES` (256, `chat/head.rs`), and a remembered route holds it three times
/// (the map key, the target's label, the plugin target's model) beside a one-entry route of
/// fixed size (~400 bytes): at most ~1.2 KiB a route, ~5 MiB for all 4,096. Their targets'
/// health is bounded the same way in the registry ([`aigw_router::registry`], ~13 MiB at most
/// for the [`MAX_REMEMBERED_TARGETS`]).
const MAX_DIRECT_ROUTES: usize = 4096;

/// How many targets a [`HealthRegistry`] built for a gateway remembers beyond the configured
/// ones: those of every remembered direct route, and as many again.
pub const MAX_REMEMBERED_TARGETS: usize = MAX_DIRECT_ROUTES * 2;

/// The served state: everything the server needs to answer requests, built from one config.
/// It is replaced whole ([`crate::Service::swap`]) while serving; a request finishes on the
/// state it started on. Target health is not part of it: it lives in the router's
/// [`HealthRegistry`], which every state built for the same service shares.
pub struct Gateway {
    pub providers: HashMap<String, Arc<Provider>>,
    /// Model aliases → routes.
    pub routes: HashMap<String, Arc<ServedRoute>>,
    /// The `[server]` limits requests are served under.
    pub server: ServerOptions,
    pub(crate) egress: Egress,
    /// The `/v1/models` body, rendered once.
    pub(crate) models_json: Bytes,
    /// Every model name a client may use, for "unknown model" errors.
    pub(crate) known_models: Vec<String>,
    /// The same with each model's owner, for a `/v1/models` filtered by a key's grant.
    listed: Vec<(String, String)>,
    /// Every target's health, by label, shared by all routes naming it (and by the states
    /// that replace this one).
    health: Arc<HealthRegistry>,
    /// Routes for `provider/model` requested directly, made on first use.
    direct: RwLock<HashMap<String, Arc<ServedRoute>>>,
    /// Masks every provider's credential in upstream text (and the redaction patterns).
    pub(crate) scrubber: Scrubber,
    /// The redaction patterns applied to what is written to memory.
    pub(crate) redactor: Redactor,
    /// The shared memory; one per process, shared by every state that replaces this one.
    pub(crate) memory: Option<Arc<Store>>,
    /// How much history a session-aware chat completion is sent.
    pub(crate) sessions: SessionOptions,
    /// The bounds of a chat completion's tool loop.
    pub(crate) tool_loop: ToolLoopOptions,
    /// The aigw tools (names or patterns) each route alias offers its requests' models
    /// (`[routes.<alias>] tools`); empty for most configs, so one emptiness check per request.
    pub(crate) route_tools: HashMap<String, Vec<String>>,
    /// Holds keys' limits across the processes sharing the store; one per process, shared by
    /// every state that replaces this one.
    pub(crate) limiter: Option<Limiter>,
    /// What each target charges (by label): spend, usage and `strategy = "cost"` read it.
    pub prices: Arc<Prices>,
    /// The process's usage ledger (per key, target and day); one per process, shared by every
    /// state that replaces this one. `None` without a store: nothing is recorded.
    pub(crate) usage: Option<Arc<Ledger>>,
    /// The process's metrics and history; one per process, shared by every state that
    /// replaces this one (a fresh one for in-process states).
    pub(crate) telemetry: Arc<Telemetry>,
    /// Every tool this state offers ([`Toolbox::call`] is the one way to call one).
    pub tools: Arc<Toolbox>,
    /// What `/mcp` answers (`[mcp]`).
    pub(crate) mcp: McpOptions,
    /// The response cache: which routes are cached, for how long, and its writes in flight.
    pub(crate) response_cache: ResponseCache,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

/// The `/v1/models` body listing `models` (id, owner).
fn models_json<'a>(models: impl Iterator<Item = &'a (String, String)>) -> Bytes {
    serde_json::to_vec(&ModelList {
        object: "list",
        data: models
            .map(|(id, owner)| ModelEntry {
                id,
                object: "model",
                created: 0,
                owned_by: owner,
            })
            .collect(),
    })
    .map(Bytes::from)
    .unwrap_or_default()
}

/// Why a gateway cannot be built from its options.
#[derive(Debug)]
pub enum GatewayError {
    /// Two providers share a name.
    DuplicateProvider(String),
    /// A route's target names a provider that is not given.
    UnknownProvider {
        route: String,
        /// The target as configured: `provider/model`.
        target: String,
    },
    /// The egress HTTP client could not be built.
    Egress(EgressError),
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::DuplicateProvider(name) => {
                write!(f, "two providers are named `{name}`")
            }
            GatewayError::UnknownProvider { route, target } => write!(
                f,
                "route `{route}`: target `{target}` names a provider that is not configured"
            ),
            GatewayError::Egress(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GatewayError::Egress(e) => Some(e),
            _ => None,
        }
    }
}

impl Gateway {
    /// The gateway serving `routes` (alias → options) over `providers`; each target's provider
    /// is looked up by name.
    pub fn new(
        providers: impl IntoIterator<Item = Provider>,
        routes: impl IntoIterator<Item = (String, RouteOptions)>,
        health: Arc<HealthRegistry>,
        server: &ServerOptions,
    ) -> Result<Gateway, GatewayError> {
        let mut by_name: HashMap<String, Arc<Provider>> = HashMap::new();
        for provider in providers {
            let name = provider.name.clone();
            if by_name.insert(name.clone(), Arc::new(provider)).is_some() {
                return Err(GatewayError::DuplicateProvider(name));
            }
        }
        let providers = by_name;
        let mut served: HashMap<String, Arc<ServedRoute>> = HashMap::new();
        for (alias, options) in routes {
            let route = build_route(&alias, &options, &providers, |label| {
                health.configured(label)
            })?;
            served.insert(alias, Arc::new(route));
        }
        let routes = served;
        let connect_timeouts = providers.values().map(|p| p.connect_timeout).chain(
            routes
                .values()
                .flat_map(|r| r.entries.iter().map(|e| e.timeouts.connect)),
        );
        let egress = Egress::new(connect_timeouts).map_err(GatewayError::Egress)?;
        let listed = Gateway::listed_models(&providers, &routes);
        let models_json = models_json(listed.iter());
        let known_models = listed.iter().map(|(id, _)| id.clone()).collect();
        let scrubber = Scrubber::new(providers.values().filter_map(|p| p.secret.clone()));
        Ok(Gateway {
            providers,
            routes,
            server: server.clone(),
            egress,
            models_json,
            known_models,
            listed,
            health,
            direct: RwLock::new(HashMap::new()),
            scrubber,
            redactor: Redactor::default(),
            memory: None,
            sessions: SessionOptions::default(),
            tool_loop: ToolLoopOptions::default(),
            route_tools: HashMap::new(),
            limiter: None,
            prices: Arc::new(Prices::default()),
            usage: None,
            telemetry: Arc::new(Telemetry::new()),
            tools: Arc::new(Toolbox::default()),
            mcp: McpOptions::default(),
            response_cache: ResponseCache::default(),
        })
    }

    /// The `/v1/models` body for a request: every model, or with a key whose grant lists
    /// models, those it may use. The unrestricted answer is the one rendered at build time; a
    /// restricted one filters the list (tens of entries) and renders it, a few microseconds.
    pub(crate) fn models_body(&self, key: Option<&Arc<aigw_access::Key>>) -> Bytes {
        match key {
            Some(key) if key.restricts_models() => {
                models_json(self.listed.iter().filter(|(id, _)| key.may_use_model(id)))
            }
            _ => self.models_json.clone(),
        }
    }

    /// This state with `memory` as its store (a state that replaces it should get the same).
    pub fn with_memory(mut self, memory: Arc<Store>) -> Gateway {
        self.memory = Some(memory);
        self
    }

    /// This state redacting `redactor`'s patterns in what it writes to memory and in the
    /// upstream text it logs, relays and keeps (with the credentials it already masks there).
    pub fn with_redaction(mut self, redactor: Redactor) -> Gateway {
        self.scrubber.redacting(redactor.clone());
        self.redactor = redactor;
        self
    }

    /// This state with `limiter` holding keys' limits (a state that replaces it should get the
    /// same: its leases and holds are the process's).
    pub fn with_limiter(mut self, limiter: Limiter) -> Gateway {
        self.limiter = Some(limiter);
        self
    }

    /// This state with `prices` as its price table (by target label).
    pub fn with_prices(mut self, prices: Arc<Prices>) -> Gateway {
        self.prices = prices;
        self
    }

    /// This state reporting to `telemetry` (a state that replaces it should get the same).
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Gateway {
        self.telemetry = telemetry;
        self
    }

    /// The process's telemetry this state reports to.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// This state with `ledger` recording its usage (a state that replaces it should get the
    /// same).
    pub fn with_usage(mut self, ledger: Arc<Ledger>) -> Gateway {
        self.usage = Some(ledger);
        self
    }

    /// This state offering `tools` (built over this state's health registry: each tool
    /// upstream's health is labelled `tool:<plugin>/<upstream>` in it).
    pub fn with_tools(mut self, tools: Arc<Toolbox>) -> Gateway {
        self.tools = tools;
        self
    }

    /// The response cache's options (`[response_cache]`, the routes' `cache_ttl_s`).
    pub fn with_response_cache(mut self, options: ResponseCacheOptions) -> Gateway {
        self.response_cache = ResponseCache::new(options);
        self
    }

    /// This state answering `/mcp` as `mcp` says.
    pub fn with_mcp(mut self, mcp: McpOptions) -> Gateway {
        self.mcp = mcp;
        self
    }

    /// This state with `sessions` bounding the history of session-aware chat completions.
    pub fn with_sessions(mut self, sessions: SessionOptions) -> Gateway {
        self.sessions = sessions;
        self
    }

    /// This state with `options` bounding the tool loop of chat completions.
    pub fn with_tool_loop(mut self, options: ToolLoopOptions) -> Gateway {
        self.tool_loop = options;
        self
    }

    /// This state offering each route alias's aigw tools (names or `prefix*` patterns) to
    /// every request for it, beside the tools the request names.
    pub fn with_route_tools(mut self, tools: HashMap<String, Vec<String>>) -> Gateway {
        self.route_tools = tools;
        self
    }

    /// Every model the config exposes, sorted: aliases (owned by `aigw`), then each
    /// `provider/model` named by a route or by the provider's plugin.
    pub fn listed_models(
        providers: &HashMap<String, Arc<Provider>>,
        routes: &HashMap<String, Arc<ServedRoute>>,
    ) -> Vec<(String, String)> {
        let mut aliases: Vec<(String, String)> = routes
            .keys()
            .map(|alias| (alias.clone(), "aigw".to_owned()))
            .collect();
        aliases.sort();
        let mut direct: Vec<(String, String)> = routes
            .values()
            .flat_map(|route| route.entries.iter())
            .map(|e| (e.target.label.to_string(), e.target.provider.name.clone()))
            .chain(providers.values().flat_map(|p| {
                p.plugin
                    .descriptor()
                    .models
                    .iter()
                    .map(|m| (format!("{}/{m}", p.name), p.name.clone()))
            }))
            .collect();
        direct.sort();
        direct.dedup();
        aliases.extend(direct);
        aliases
    }

    /// The route for a requested model: an alias, else `provider/model` for any provider (a
    /// one-target route with the default policy, sharing the target's health).
    pub fn resolve(&self, model: &str) -> Option<Arc<ServedRoute>> {
        if let Some(route) = self.routes.get(model) {
            return Some(Arc::clone(route));
        }
        if let Some(route) = read(&self.direct).get(model) {
            return Some(Arc::clone(route));
        }
        let (provider_name, model_name) = model.split_once('/')?;
        if model_name.is_empty() {
            return None;
        }
        let options = RouteOptions {
            targets: vec![TargetOptions {
                provider: provider_name.to_owned(),
                model: model_name.to_owned(),
                ..TargetOptions::default()
            }],
            ..RouteOptions::default()
        };
        // Fails only for an unknown provider, which names no route.
        let route = build_route(model, &options, &self.providers, |label| {
            self.health.health_of(label)
        })
        .ok()?;
        let route = Arc::new(route);
        let mut direct = write(&self.direct);
        if direct.len() < MAX_DIRECT_ROUTES {
            direct.insert(model.to_owned(), Arc::clone(&route));
        }
        Some(route)
    }

    /// The registry of every target's health: it outlives this state, so a state built to
    /// replace this one is given the same registry.
    pub fn health(&self) -> &Arc<HealthRegistry> {
        &self.health
    }

    /// Every known target's health, sorted by label, with the aliases that route to it.
    pub fn targets(&self) -> Vec<(Arc<str>, Arc<Health>, Vec<&str>)> {
        self.health
            .all()
            .into_iter()
            .map(|(label, health)| {
                let mut aliases: Vec<&str> = self
                    .routes
                    .iter()
                    .filter(|(_, route)| route.entries.iter().any(|e| e.target.label == label))
                    .map(|(alias, _)| alias.as_str())
                    .collect();
                aliases.sort_unstable();
                (label, health, aliases)
            })
            .collect()
    }
}

/// Reads a lock; a writer that panicked cannot have left these maps half-changed (one insert).
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The engine's route `alias` for configured options: each target's provider is looked up in
/// `providers` by name, and `health` gives each target's shared health.
fn build_route(
    alias: &str,
    options: &RouteOptions,
    providers: &HashMap<String, Arc<Provider>>,
    mut health: impl FnMut(&str) -> Arc<Health>,
) -> Result<ServedRoute, GatewayError> {
    let mut entries = Vec::with_capacity(options.targets.len());
    for t in &options.targets {
        let Some(provider) = providers.get(&t.provider) else {
            return Err(GatewayError::UnknownProvider {
                route: alias.to_owned(),
                target: format!("{}/{}", t.provider, t.model),
            });
        };
        let mut target = RouteTarget::new(Arc::clone(provider), &t.model);
        target.prefill = t.prefill;
        entries.push(RouteEntry {
            health: health(&target.label),
            priority: t.priority,
            weight: t.weight.max(1),
            context_window: t.context_window,
            timeouts: provider.timeouts(&t.timeouts, &options.timeouts),
            target,
        });
    }
    Ok(Route::new(
        entries,
        Policy {
            strategy: options.strategy,
            retries: options.retries,
            retry_budget: RetryBudget::new(options.retry_budget),
            hedge_after: options.hedge_after,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_naming_an_unknown_provider_is_an_error_naming_route_and_target() {
        let routes = [(
            "fast".to_owned(),
            RouteOptions {
                targets: vec![TargetOptions {
                    provider: "nope".to_owned(),
                    model: "m".to_owned(),
                    ..TargetOptions::default()
                }],
                ..RouteOptions::default()
            },
        )];
        let health = Arc::new(HealthRegistry::new(
            aigw_router::HealthSettings::default(),
            8,
        ));
        let error = match Gateway::new([], routes, health, &ServerOptions::default()) {
            Ok(_) => panic!("a route over an unknown provider was accepted"),
            Err(error) => error,
        };
        assert!(
            matches!(&error, GatewayError::UnknownProvider { route, target }
                if route == "fast" && target == "nope/m"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "route `fast`: target `nope/m` names a provider that is not configured"
        );
    }
}
