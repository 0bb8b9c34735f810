//! What the server serves from: providers (plugin, base URL, credential, timeouts), routes
//! (aliases → ordered targets), and the pooled egress client. Built once by the binary from
//! the validated config; read-only while serving.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aigw_egress::{Credential, Egress, EgressError, Grants, Origin, Placement, Secret};
use aigw_router::{
    Health, HealthSettings, Policy, RetryBudget, Route, RouteEntry, Strategy, Timeouts,
};
use aigw_runtime::{CredentialPlacement, Plugin, PluginTarget};
use bytes::Bytes;
use serde::Serialize;

/// A configured provider: which plugin translates for it and how the host reaches it.
pub struct Provider {
    pub name: String,
    pub plugin: Arc<Plugin>,
    /// The configured base URL, else the plugin's default.
    pub base_url: String,
    /// The operator's key, added by the egress only to the provider's own origins.
    pub credential: Option<Credential>,
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
    /// Fails when the base URL is not an http(s) URL or the credential cannot be placed as the
    /// plugin asks (an invalid header name, say); the message never names the secret.
    pub fn new(
        name: String,
        plugin: Arc<Plugin>,
        base_url: Option<String>,
        credential: Option<Secret>,
        missing_credential: Option<String>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Provider, EgressError> {
        let base_url = base_url
            .unwrap_or_else(|| plugin.descriptor().default_base_url.clone())
            .trim_end_matches('/')
            .to_owned();
        let origin = Origin::of(&base_url)?;
        let grants = Grants::new([origin]);
        let missing_credential = match (&credential, plugin.descriptor().credential_required) {
            (None, true) => {
                Some(missing_credential.unwrap_or_else(|| "no api_key is configured".into()))
            }
            _ => None,
        };
        let credential = match credential {
            None => None,
            Some(secret) => {
                let placement = match &plugin.descriptor().credential {
                    CredentialPlacement::None => Placement::None,
                    CredentialPlacement::Header { name, prefix } => Placement::Header {
                        name: name.clone(),
                        prefix: prefix.clone(),
                    },
                    CredentialPlacement::Query(param) => Placement::Query(param.clone()),
                };
                Some(Credential::new(secret, placement, &base_url, &[])?)
            }
        };
        Ok(Provider {
            name,
            plugin,
            base_url,
            credential,
            grants,
            missing_credential,
            connect_timeout,
            timeout,
            timeouts: TimeoutOverrides::default(),
        })
    }

    /// The provider's specific timeouts (the config's `first_byte_timeout_ms`, …).
    pub fn with_timeouts(mut self, timeouts: TimeoutOverrides) -> Provider {
        self.timeouts = timeouts;
        self
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
                self.timeout.max(DEFAULT_TOTAL),
            ),
        }
    }
}

/// The default bound on a whole attempt (a whole stream included) when nothing narrower is set.
const DEFAULT_TOTAL: Duration = Duration::from_secs(600);

/// Time limits set in the config at one level (target, route or provider); unset ones come
/// from the level below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeoutOverrides {
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub stall: Option<Duration>,
    pub total: Option<Duration>,
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

/// One target of a route as configured.
#[derive(Clone)]
pub struct TargetOptions {
    pub provider: Arc<Provider>,
    pub model: String,
    pub priority: u32,
    pub weight: u32,
    pub context_window: Option<u32>,
    pub prefill: bool,
    pub timeouts: TimeoutOverrides,
}

impl TargetOptions {
    /// A target with the defaults: tried in list order (`priority` = its position).
    pub fn new(provider: Arc<Provider>, model: &str, priority: u32) -> TargetOptions {
        TargetOptions {
            provider,
            model: model.to_owned(),
            priority,
            weight: 1,
            context_window: None,
            prefill: false,
            timeouts: TimeoutOverrides::default(),
        }
    }
}

/// A model alias as configured.
#[derive(Clone)]
pub struct RouteOptions {
    pub targets: Vec<TargetOptions>,
    pub strategy: Strategy,
    pub timeouts: TimeoutOverrides,
    pub retries: u32,
    pub retry_budget: f64,
    pub hedge_after: Option<Duration>,
}

impl RouteOptions {
    /// A route over `targets` with the default policy.
    pub fn new(targets: Vec<TargetOptions>) -> RouteOptions {
        RouteOptions {
            targets,
            strategy: Strategy::Weighted,
            timeouts: TimeoutOverrides::default(),
            retries: 1,
            retry_budget: 0.2,
            hedge_after: None,
        }
    }
}

/// A route ready to serve: the engine's route over the server's targets.
pub type ServedRoute = Route<RouteTarget>;

/// How many distinct `provider/model` names requested directly keep their own health; past it a
/// direct request gets a fresh, unremembered route (a client cannot grow the map without bound).
const MAX_DIRECT_ROUTES: usize = 4096;

/// Everything the server needs to answer requests.
pub struct Gateway {
    pub providers: HashMap<String, Arc<Provider>>,
    /// Model aliases → routes.
    pub routes: HashMap<String, Arc<ServedRoute>>,
    pub max_body_bytes: usize,
    pub(crate) egress: Egress,
    /// The `/v1/models` body, rendered once.
    pub(crate) models_json: Bytes,
    /// Every model name a client may use, for "unknown model" errors.
    pub(crate) known_models: Vec<String>,
    /// Every target's health, by label, shared by all routes naming it.
    health: RwLock<HashMap<Arc<str>, Arc<Health>>>,
    /// Routes for `provider/model` requested directly, made on first use.
    direct: RwLock<HashMap<String, Arc<ServedRoute>>>,
    settings: Arc<HealthSettings>,
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

impl Gateway {
    pub fn new(
        providers: HashMap<String, Arc<Provider>>,
        routes: HashMap<String, RouteOptions>,
        settings: HealthSettings,
        max_body_bytes: usize,
    ) -> Result<Gateway, EgressError> {
        let settings = Arc::new(settings);
        let mut health: HashMap<Arc<str>, Arc<Health>> = HashMap::new();
        let routes: HashMap<String, Arc<ServedRoute>> = routes
            .into_iter()
            .map(|(alias, options)| {
                let route = build_route(&options, |label| {
                    shared_health(&mut health, label, &settings)
                });
                (alias, Arc::new(route))
            })
            .collect();
        let connect_timeouts = providers.values().map(|p| p.connect_timeout).chain(
            routes
                .values()
                .flat_map(|r| r.entries.iter().map(|e| e.timeouts.connect)),
        );
        let egress = Egress::new(connect_timeouts)?;
        let listed = Gateway::listed_models(&providers, &routes);
        let models_json = serde_json::to_vec(&ModelList {
            object: "list",
            data: listed
                .iter()
                .map(|(id, owner)| ModelEntry {
                    id,
                    object: "model",
                    created: 0,
                    owned_by: owner,
                })
                .collect(),
        })
        .map(Bytes::from)
        .unwrap_or_default();
        let known_models = listed.into_iter().map(|(id, _)| id).collect();
        Ok(Gateway {
            providers,
            routes,
            max_body_bytes,
            egress,
            models_json,
            known_models,
            health: RwLock::new(health),
            direct: RwLock::new(HashMap::new()),
            settings,
        })
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
        let provider = self.providers.get(provider_name)?;
        if model_name.is_empty() {
            return None;
        }
        let options = RouteOptions::new(vec![TargetOptions::new(
            Arc::clone(provider),
            model_name,
            0,
        )]);
        let route = Arc::new(build_route(&options, |label| self.health_of(label)));
        let mut direct = write(&self.direct);
        if direct.len() < MAX_DIRECT_ROUTES {
            direct.insert(model.to_owned(), Arc::clone(&route));
        }
        Some(route)
    }

    /// The shared health of the target `label`, made on first use (bounded like direct routes).
    fn health_of(&self, label: &str) -> Arc<Health> {
        if let Some(health) = read(&self.health).get(label) {
            return Arc::clone(health);
        }
        let mut all = write(&self.health);
        if all.len() >= MAX_DIRECT_ROUTES * 2 {
            return Arc::new(Health::new(Arc::clone(&self.settings)));
        }
        shared_health(&mut all, label, &self.settings)
    }

    /// Every known target's health, sorted by label, with the aliases that route to it.
    pub fn targets(&self) -> Vec<(Arc<str>, Arc<Health>, Vec<&str>)> {
        let mut all: Vec<(Arc<str>, Arc<Health>, Vec<&str>)> = read(&self.health)
            .iter()
            .map(|(label, health)| {
                let mut aliases: Vec<&str> = self
                    .routes
                    .iter()
                    .filter(|(_, route)| route.entries.iter().any(|e| e.target.label == *label))
                    .map(|(alias, _)| alias.as_str())
                    .collect();
                aliases.sort_unstable();
                (Arc::clone(label), Arc::clone(health), aliases)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The health of the target `label` in `all`, made on first use.
fn shared_health(
    all: &mut HashMap<Arc<str>, Arc<Health>>,
    label: &str,
    settings: &Arc<HealthSettings>,
) -> Arc<Health> {
    Arc::clone(
        all.entry(Arc::from(label))
            .or_insert_with(|| Arc::new(Health::new(Arc::clone(settings)))),
    )
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

/// The engine's route for configured options; `health` gives each target's shared health.
fn build_route(options: &RouteOptions, mut health: impl FnMut(&str) -> Arc<Health>) -> ServedRoute {
    let entries = options
        .targets
        .iter()
        .map(|t| {
            let mut target = RouteTarget::new(Arc::clone(&t.provider), &t.model);
            target.prefill = t.prefill;
            RouteEntry {
                health: health(&target.label),
                priority: t.priority,
                weight: t.weight.max(1),
                context_window: t.context_window,
                timeouts: t.provider.timeouts(&t.timeouts, &options.timeouts),
                target,
            }
        })
        .collect();
    Route::new(
        entries,
        Policy {
            strategy: options.strategy,
            retries: options.retries,
            retry_budget: RetryBudget::new(options.retry_budget),
            hedge_after: options.hedge_after,
        },
    )
}
