//! The tool loop's tools: the gateway's tool service ([`crate::tools::Toolbox`]) acting for
//! the request's key. Offering checks a `tools[i].name` against the catalog and the key's
//! grant; calling goes through `Toolbox::call` (`via: Chat`), which checks the grant again,
//! the key's tool quota and the arguments, and writes the call's own record.

use std::sync::Arc;

use aigw_access::Pattern;
use http::StatusCode;
use serde_json::Value;

use super::tool_loop::{Offered, Tools};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::tools::{ToolCaller, Via};

/// Seeds request ids for the tool calls of chat completions, without a lock.
fn next_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("chat-{:x}-{n}", std::process::id())
}

/// The toolbox of the state a request started on, for its principal.
pub(crate) struct ChatTools {
    gateway: Arc<Gateway>,
    principal: Principal,
    /// Names the request in the tool calls' records.
    request_id: String,
    /// The memory namespace the calls act in: the key's default (`None` without a key).
    namespace: Option<String>,
}

impl ChatTools {
    pub(crate) fn new(gateway: &Arc<Gateway>, principal: &Principal) -> ChatTools {
        ChatTools {
            gateway: Arc::clone(gateway),
            principal: principal.clone(),
            request_id: next_request_id(),
            namespace: principal.key().and_then(|key| key.namespace(None).ok()),
        }
    }

    fn granted(&self, name: &str) -> bool {
        self.principal
            .key()
            .is_none_or(|key| key.may_use_tool(name))
    }
}

impl Tools for ChatTools {
    fn offer(&self, name: &str, param: &str) -> Result<Vec<Offered>, ApiError> {
        let pattern = Pattern::parse(name).map_err(|why| {
            ApiError::invalid_request(format!("Invalid value for '{param}': {why}"))
                .param(param.to_owned())
                .code("invalid_value")
        })?;
        let toolbox = &self.gateway.tools;
        let offered = |tool: &crate::tools::Tool| Offered {
            name: Arc::clone(&tool.name),
            function: tool.function(),
        };
        let Some(exact) = pattern.exact() else {
            // A pattern offers what the key may use of what it matches (maybe nothing).
            return Ok(toolbox
                .visible(&self.principal)
                .iter()
                .filter(|tool| pattern.matches(&tool.name))
                .map(|tool| offered(tool))
                .collect());
        };
        let Some(tool) = toolbox.get(exact) else {
            return Err(ApiError::invalid_request(format!(
                "Invalid value for '{param}': there is no aigw tool `{}` (GET /v1/tools lists \
                 the tools this key may use)",
                quoted(exact)
            ))
            .param(param.to_owned())
            .code("tool_not_found"));
        };
        if !self.granted(exact) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                format!("aigw key limit: this key may not use the tool `{exact}`"),
            )
            .param(param.to_owned())
            .code("tool_not_allowed"));
        }
        Ok(vec![offered(&tool)])
    }

    async fn call(&self, name: Arc<str>, arguments: String) -> Result<String, ApiError> {
        // Models send `""` for a call without arguments.
        let arguments: Value = match arguments.trim() {
            "" => Value::Object(Default::default()),
            text => serde_json::from_str(text).map_err(|e| {
                ApiError::invalid_request(format!("the tool call's arguments are not JSON: {e}"))
                    .code("invalid_tool_arguments")
            })?,
        };
        let caller = ToolCaller {
            principal: &self.principal,
            namespace: self.namespace.as_deref(),
            via: Via::Chat,
            request_id: &self.request_id,
        };
        self.gateway
            .tools
            .call(&self.gateway, &caller, &name, &arguments)
            .await
            .map(|answer| answer.text)
            .map_err(|error| error.api())
    }
}

/// A client's name, cut short for an error message.
fn quoted(name: &str) -> &str {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}
