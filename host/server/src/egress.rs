//! Upstream HTTP egress: pooled reqwest clients with rustls, credentials added on the way out.
//!
//! reqwest sets the connect timeout per client, not per request, so there is one client per
//! distinct connect timeout in the config (providers' `connect_timeout_ms`, routes' and targets'
//! overrides) — with the defaults, exactly one. Each keeps its own connection pool.

use std::collections::HashMap;
use std::time::Duration;

use aigw_router::{Failure, FailureClass};
use aigw_runtime::{CredentialPlacement, HttpRequest};

use crate::gateway::{Provider, same_origin};

pub(crate) struct Egress {
    clients: HashMap<Duration, reqwest::Client>,
}

impl Egress {
    pub(crate) fn new(
        connect_timeouts: impl Iterator<Item = Duration>,
    ) -> Result<Egress, reqwest::Error> {
        let mut clients = HashMap::new();
        for timeout in connect_timeouts {
            if clients.contains_key(&timeout) {
                continue;
            }
            let client = reqwest::Client::builder()
                .connect_timeout(timeout)
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                // Upstream redirects would carry the credential to another host: refuse them.
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            clients.insert(timeout, client);
        }
        Ok(Egress { clients })
    }

    /// Sends a plugin's request to `provider`, adding the credential when the request goes to
    /// the provider's own host. Fails with a classified failure on connect errors and timeouts.
    pub(crate) async fn send(
        &self,
        provider: &Provider,
        connect_timeout: Duration,
        request: HttpRequest,
        timeout: Duration,
    ) -> Result<reqwest::Response, Failure> {
        let client = self
            .clients
            .get(&connect_timeout)
            .ok_or_else(|| Failure::new(FailureClass::Connect, "no HTTP client for provider"))?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            Failure::new(
                FailureClass::PluginFault,
                format!("plugin asked for an invalid method {:?}", request.method),
            )
        })?;
        let to_own_host = provider
            .credential_origin
            .as_deref()
            .is_some_and(|origin| same_origin(&request.url, origin));
        let mut url = request.url;
        let mut credential_header = None;
        if let (Some(secret), true) = (&provider.credential, to_own_host) {
            match provider.credential_placement() {
                CredentialPlacement::None => {}
                CredentialPlacement::Header { name, prefix } => {
                    credential_header =
                        Some((name.as_str(), format!("{prefix}{}", secret.expose())));
                }
                CredentialPlacement::Query(param) => {
                    let mut parsed = url::Url::parse(&url).map_err(|e| {
                        Failure::new(
                            FailureClass::PluginFault,
                            format!("plugin asked for an invalid URL {url:?}: {e}"),
                        )
                    })?;
                    parsed.query_pairs_mut().append_pair(param, secret.expose());
                    url = parsed.into();
                }
            }
        }
        let mut builder = client.request(method, url).timeout(timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some((name, value)) = credential_header {
            builder = builder.header(name, value);
        }
        builder
            .body(request.body)
            .send()
            .await
            .map_err(|e| transport_failure(&e, timeout))
    }
}

/// Classifies an error of the HTTP client (never an upstream answer).
pub(crate) fn transport_failure(error: &reqwest::Error, timeout: Duration) -> Failure {
    if error.is_timeout() {
        Failure::new(
            FailureClass::Timeout,
            format!("no answer within {} ms", timeout.as_millis()),
        )
    } else if error.is_connect() {
        Failure::new(
            FailureClass::Connect,
            format!("cannot connect: {}", source_chain(error)),
        )
    } else if error.is_builder() {
        Failure::new(
            FailureClass::PluginFault,
            format!("invalid upstream request: {}", source_chain(error)),
        )
    } else {
        Failure::new(
            FailureClass::Connect,
            format!(
                "connection failed before an answer: {}",
                source_chain(error)
            ),
        )
    }
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
