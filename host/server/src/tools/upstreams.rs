//! A tool plugin's upstreams as the failover engine's targets: each with the endpoints the
//! operator configured, exactly those endpoints' origins as its grants, and its credential
//! (placed as the plugin says, only on those origins). One attempt is one `invoke` of the
//! plugin on that upstream ([`ToolAttempt`]); its failures are mapped onto the engine's classes
//! by the chat attempt's own mapping, so a rate-limited upstream cools down and a rejected key
//! takes it out exactly as a provider's would.

use std::sync::Arc;

use aigw_egress::{Credential, Grants, Secret};
use aigw_router::{Failure, Timeouts, Upstream};
use aigw_runtime::{CallContext, OutboundLimits, ToolPlugin, ToolTarget};

use crate::chat::attempt::{call_failure, scrubbed};
use crate::gateway::Gateway;

/// The health label of upstream `upstream` of the tool plugin configured as `plugin`, as
/// `/admin/targets` lists it.
pub fn tool_label(plugin: &str, upstream: &str) -> String {
    format!("tool:{plugin}/{upstream}")
}

/// One upstream of a tool plugin, ready to be called.
#[derive(Clone)]
pub struct UpstreamTarget {
    /// The upstream and its endpoints' URLs, as the plugin is given them.
    pub target: ToolTarget,
    /// `tool:<plugin>/<upstream>`.
    pub label: Arc<str>,
    /// Exactly the origins of the upstream's endpoints.
    pub grants: Grants,
    /// The operator's key, added by the egress only to those origins.
    pub credential: Option<Credential>,
    /// The same key, for masking it wherever the upstream echoes it.
    pub(crate) secret: Option<Secret>,
}

impl UpstreamTarget {
    pub fn name(&self) -> &str {
        &self.target.upstream
    }
}

/// One tool call, tried on a plugin's upstreams by the failover engine.
pub(crate) struct ToolAttempt<'a> {
    pub(crate) gateway: &'a Gateway,
    pub(crate) plugin: &'a ToolPlugin,
    pub(crate) tool: &'a str,
    pub(crate) arguments: &'a str,
    pub(crate) limits: &'a OutboundLimits,
    pub(crate) namespace: Option<Arc<str>>,
    pub(crate) key: Option<Arc<str>>,
}

impl Upstream for ToolAttempt<'_> {
    type Target = UpstreamTarget;
    type Output = String;

    async fn attempt(
        &self,
        target: &UpstreamTarget,
        _timeouts: &Timeouts,
    ) -> Result<String, Failure> {
        let context = CallContext {
            namespace: self.namespace.clone(),
            key: self.key.clone(),
            grants: target.grants.clone(),
            credential: target.credential.clone(),
            outbound: Some(self.limits.clone()),
            upstream: target.target.clone(),
        };
        self.plugin
            .invoke(&context, self.tool, self.arguments)
            .await
            .map_err(|error| {
                let mut failure = call_failure(error, &target.label, None);
                // The upstream may echo its own key in an error text: never relay it.
                if let Some(secret) = &target.secret
                    && failure.message.contains(secret.expose())
                {
                    failure.message = failure.message.replace(secret.expose(), "***");
                }
                scrubbed(self.gateway, failure)
            })
    }
}
