//! A tool plugin's upstreams as the failover engine's targets: each with the endpoints the
//! operator configured, exactly those endpoints' origins as its grants, and its credential
//! (placed as the plugin says, only on those origins). One attempt is one `invoke` of the
//! plugin on that upstream ([`ToolAttempt`]); its failures are mapped onto the engine's classes
//! by the chat attempt's own mapping, so a rate-limited upstream cools down and a rejected key
//! takes it out exactly as a provider's would, while a fault of the plugin on a call is the
//! call's (as a fault while encoding a chat request is), never the upstream's.

use std::sync::Arc;

use aigw_egress::{Credential, Grants, Secret};
use aigw_router::{Failure, FailureClass, Timeouts, Upstream};
use aigw_runtime::{CallContext, CallError, OutboundLimits, ToolPlugin, ToolTarget};

use crate::chat::attempt::{encode_failure, scrubbed};
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
                let denied = denied_origin(&error);
                // A fault (trap, deadline, memory cap) is mapped as an `encode`'s: one invoke
                // both reads the caller's arguments and the upstream's answer, and a caller
                // whose arguments make the plugin fail must not open a healthy upstream's
                // breaker for everyone. A failure the plugin classified is mapped as for any
                // provider call.
                let mut failure = encode_failure(error, &target.label);
                if denied {
                    // The plugin asked for an origin its upstream was not granted (a URL from
                    // the arguments, a redirect it followed): the call's fault, not the
                    // upstream's key, so it neither takes the upstream out nor fails over.
                    failure.class = FailureClass::RequestFault;
                    failure.message = format!(
                        "tool plugin refused by the egress on upstream `{}`: {}",
                        target.name(),
                        failure.message
                    );
                }
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

/// Whether the plugin's failure is the `outbound` import's refusal of an origin the call was
/// not granted: the runtime reports it as `unauthorized` with the egress's own words
/// (`origin … is not granted to this caller`), which an upstream's 401 never carries.
fn denied_origin(error: &CallError) -> bool {
    match error {
        CallError::Failure(aigw_runtime::Failure::Unauthorized(message)) => {
            message.contains(DENIED_PHRASE)
        }
        _ => false,
    }
}

/// The egress's refusal of an origin not granted (`aigw_egress`'s `Denied`).
const DENIED_PHRASE: &str = " is not granted to this caller";
