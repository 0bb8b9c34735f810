//! The toolbox's arm for a remote tool: after the toolbox's grant, quota and argument checks,
//! one `tools/call` to the tool's server, its answer as a [`ToolAnswer`] and its failure as a
//! [`ToolError`] (the tool's own `isError` an `invalid_request`, the server's failures by
//! class).

use std::sync::Arc;
use std::time::Instant;

use aigw_router::FailureClass;
use serde_json::Value;

use super::{RemoteFailure, RemoteServer, RemoteSource};
use crate::tools::{CacheStatus, ToolAnswer, ToolError};

/// Calls `source`'s tool on `server` (the toolbox's server of that name; `None` cannot happen
/// for a tool the toolbox listed, and is answered as unavailable). The attempt count is 1 when
/// the server was asked; `failed` receives the failure, for the call's report.
pub(crate) async fn call(
    server: Option<&Arc<RemoteServer>>,
    source: &RemoteSource,
    arguments: &Value,
    failed: &mut String,
    started: Instant,
) -> Result<(ToolAnswer, usize), (ToolError, usize)> {
    let Some(server) = server else {
        return Err((
            ToolError::Unavailable(format!("MCP server `{}` is not configured", source.server)),
            0,
        ));
    };
    let upstream = format!("mcp:{}", source.server);
    match server.call(&source.remote, arguments).await {
        Ok(value) => Ok((
            ToolAnswer {
                text: value.to_string(),
                value,
                cache: CacheStatus::Off,
                upstream: Some(upstream),
                elapsed: started.elapsed(),
            },
            1,
        )),
        Err(failure) => {
            failed.push_str(&format!(
                "{upstream} {:?}: {}",
                failure.class, failure.message
            ));
            Err((error(failure), 1))
        }
    }
}

/// A remote failure as the caller hears it. A 429 with a `retry-after` keeps it, so the client
/// is told when to come back.
fn error(failure: RemoteFailure) -> ToolError {
    match failure {
        RemoteFailure {
            class: FailureClass::RateLimited,
            message,
            retry_after: Some(retry_after),
            ..
        } => ToolError::Limited {
            message,
            retry_after: Some(retry_after),
        },
        RemoteFailure { class, message, .. } => ToolError::Failed { class, message },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn failures_keep_their_class_and_a_rate_limits_retry_after() {
        let tool = error(RemoteFailure::tool("no such city"));
        assert_eq!(tool.api().status.as_u16(), 400);
        assert_eq!(tool.message(), "no such city");
        let unauthorized = error(RemoteFailure::new(FailureClass::Unauthorized, "refused"));
        assert_eq!(unauthorized.api().status.as_u16(), 502);
        let limited = error(RemoteFailure {
            retry_after: Some(Duration::from_secs(3)),
            ..RemoteFailure::new(FailureClass::RateLimited, "slow down")
        });
        assert!(matches!(
            limited,
            ToolError::Limited { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        let timeout = error(RemoteFailure::new(FailureClass::Timeout, "no answer"));
        assert_eq!(timeout.api().status.as_u16(), 504);
    }
}
