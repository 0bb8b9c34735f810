//! A key's tool quota (`tool_calls_per_minute`, `tool_calls_per_day`), held across processes
//! by the limiter like its requests per minute, in counters of their own (a tool call is not a
//! chat request). A refusal is a 429 whose message says it is aigw's tool quota, with when to
//! retry; a quota store that cannot be asked refuses the call (never admits it unchecked).

use aigw_access::{Metric, Refused, Ticket};

use super::{ToolCaller, ToolError};
use crate::gateway::Gateway;

/// Admits one call of `caller`'s key against its tool quota: the ticket (held until the call
/// ends), `None` for a caller without a key or a gateway without a limiter, or the refusal.
pub(super) async fn admit(
    gateway: &Gateway,
    caller: &ToolCaller<'_>,
) -> Result<Option<Ticket>, ToolError> {
    let (Some(key), Some(limiter)) = (caller.principal.key(), gateway.limiter.as_ref()) else {
        return Ok(None);
    };
    if key.spec.tool_calls_per_minute.is_none() && key.spec.tool_calls_per_day.is_none() {
        return Ok(None);
    }
    match limiter.admit_tool_call(key).await {
        Ok(ticket) => Ok(Some(ticket)),
        Err(Refused::Limit(refusal)) => {
            gateway
                .telemetry()
                .quota_rejected(&aigw_telemetry::QuotaObservation {
                    key: &key.id,
                    limit: match refusal.metric {
                        Metric::DailyRequests => "tool_calls_per_day",
                        _ => "tool_calls_per_minute",
                    },
                });
            let per = match refusal.metric {
                Metric::DailyRequests => "per day (UTC)",
                _ => "per minute",
            };
            let retry = refusal
                .retry_after
                .map(|wait| format!("; retry in {} s", wait.as_secs_f64().ceil().max(1.0)))
                .unwrap_or_default();
            Err(ToolError::Limited {
                message: format!(
                    "aigw tool quota: {} tool calls {per} reached for key {}{retry}",
                    refusal.limit, key.id
                ),
                retry_after: refusal.retry_after,
            })
        }
        Err(Refused::Unavailable(e)) => Err(ToolError::Unavailable(format!(
            "aigw tool quota: the quota store could not be reached ({e}); retry"
        ))),
    }
}
