//! What the server serves from: providers (plugin, base URL, credential, timeouts), routes
//! (aliases → ordered targets), and the pooled egress client. Built once by the binary from
//! the validated config; read-only while serving.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aigw_runtime::{CredentialPlacement, Plugin, PluginTarget};
use bytes::Bytes;
use serde::Serialize;

use crate::egress::Egress;

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A configured provider: which plugin translates for it and how the host reaches it.
pub struct Provider {
    pub name: String,
    pub plugin: Arc<Plugin>,
    /// The configured base URL, else the plugin's default.
    pub base_url: String,
    /// `scheme://host[:port]` of `base_url`: the credential is added only to requests whose URL
    /// starts with exactly this origin.
    pub(crate) credential_origin: Option<String>,
    pub credential: Option<Secret>,
    /// Why no credential is set when the plugin requires one (e.g. "GROQ_API_KEY is not set").
    pub missing_credential: Option<String>,
    pub connect_timeout: Duration,
    /// Bound on a whole non-streamed call, on the wait for a stream's first chunk, and on the
    /// silence between two chunks.
    pub timeout: Duration,
}

impl Provider {
    pub fn new(
        name: String,
        plugin: Arc<Plugin>,
        base_url: Option<String>,
        credential: Option<Secret>,
        missing_credential: Option<String>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Provider {
        let base_url = base_url
            .unwrap_or_else(|| plugin.descriptor().default_base_url.clone())
            .trim_end_matches('/')
            .to_owned();
        let credential_origin = url::Url::parse(&base_url)
            .ok()
            .map(|u| u.origin().ascii_serialization())
            .filter(|origin| origin != "null");
        let missing_credential = match (&credential, plugin.descriptor().credential_required) {
            (None, true) => {
                Some(missing_credential.unwrap_or_else(|| "no api_key is configured".into()))
            }
            _ => None,
        };
        Provider {
            name,
            plugin,
            base_url,
            credential_origin,
            credential,
            missing_credential,
            connect_timeout,
            timeout,
        }
    }

    pub fn credential_placement(&self) -> &CredentialPlacement {
        &self.plugin.descriptor().credential
    }
}

/// Whether `url` goes to exactly `origin` (`scheme://host[:port]`): a string check, because
/// parsing every upstream URL twice (here and in the HTTP client) showed up in profiles. A URL
/// that spells the origin differently (another case, an explicit default port) fails the
/// check and goes without the credential: the safe direction.
pub(crate) fn same_origin(url: &str, origin: &str) -> bool {
    url.strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
}

/// One place a request can be sent: a provider and the model name it knows.
#[derive(Clone)]
pub struct RouteTarget {
    pub provider: Arc<Provider>,
    pub plugin_target: PluginTarget,
    /// `provider/model`, as clients and logs name it.
    pub label: Arc<str>,
}

impl RouteTarget {
    pub fn new(provider: Arc<Provider>, model: &str) -> RouteTarget {
        let plugin_target = PluginTarget::new(&provider.base_url, model);
        let label = format!("{}/{model}", provider.name).into();
        RouteTarget {
            provider,
            plugin_target,
            label,
        }
    }

    pub fn model(&self) -> &str {
        self.plugin_target.model()
    }
}

/// Everything the server needs to answer requests.
pub struct Gateway {
    pub providers: HashMap<String, Arc<Provider>>,
    /// Model aliases → ordered targets.
    pub routes: HashMap<String, Arc<[RouteTarget]>>,
    pub max_body_bytes: usize,
    pub(crate) egress: Egress,
    /// The `/v1/models` body, rendered once.
    pub(crate) models_json: Bytes,
    /// Every model name a client may use, for "unknown model" errors.
    pub(crate) known_models: Vec<String>,
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
        routes: HashMap<String, Arc<[RouteTarget]>>,
        max_body_bytes: usize,
    ) -> Result<Gateway, reqwest::Error> {
        let egress = Egress::new(providers.values().map(|p| p.connect_timeout))?;
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
        })
    }

    /// Every model the config exposes, sorted: aliases (owned by `aigw`), then each
    /// `provider/model` named by a route or by the provider's plugin.
    pub fn listed_models(
        providers: &HashMap<String, Arc<Provider>>,
        routes: &HashMap<String, Arc<[RouteTarget]>>,
    ) -> Vec<(String, String)> {
        let mut aliases: Vec<(String, String)> = routes
            .keys()
            .map(|alias| (alias.clone(), "aigw".to_owned()))
            .collect();
        aliases.sort();
        let mut direct: Vec<(String, String)> = routes
            .values()
            .flat_map(|targets| targets.iter())
            .map(|t| (t.label.to_string(), t.provider.name.clone()))
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

    /// The targets for a requested model: an alias, else `provider/model` for any provider.
    pub fn resolve(&self, model: &str) -> Option<Arc<[RouteTarget]>> {
        if let Some(targets) = self.routes.get(model) {
            return Some(Arc::clone(targets));
        }
        let (provider, model) = model.split_once('/')?;
        let provider = self.providers.get(provider)?;
        if model.is_empty() {
            return None;
        }
        Some(Arc::from([RouteTarget::new(Arc::clone(provider), model)]))
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn credentials_go_only_to_the_exact_origin() {
        let origin = "https://api.groq.com";
        assert!(same_origin(
            "https://api.groq.com/openai/v1/chat/completions",
            origin
        ));
        assert!(same_origin("https://api.groq.com", origin));
        assert!(same_origin("https://api.groq.com?x=1", origin));
        assert!(!same_origin("https://api.groq.com.evil.example/v1", origin));
        assert!(!same_origin("https://api.groq.com:8443/v1", origin));
        assert!(!same_origin("http://api.groq.com/v1", origin));
        assert!(!same_origin(
            "https://evil.example/https://api.groq.com/",
            origin
        ));
        assert!(same_origin(
            "http://127.0.0.1:8080/v1",
            "http://127.0.0.1:8080"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:8081/v1",
            "http://127.0.0.1:8080"
        ));
    }
}
