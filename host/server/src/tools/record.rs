//! The report of a finished tool call: one log line (target `aigw::tool`: tool, surface, key,
//! upstream, attempts, cache, outcome, latency; upstream text capped, every field escaped by
//! the log format as the chat record's are) and, for a call that reached an answer, a usage row
//! for the key with model `tool:<name>` (one request), so `/admin/usage` shows tool calls.

use std::time::Duration;

use aigw_access::Tokens;
use aigw_access::usage::OPEN_KEY_ID;
use aigw_telemetry::ToolObservation;

use super::{CacheStatus, ToolCaller};
use crate::chat::record::capped;
use crate::gateway::Gateway;

/// What one finished call reports.
pub(super) struct CallReport<'a> {
    pub(super) tool: &'a str,
    pub(super) upstream: Option<&'a str>,
    pub(super) attempts: usize,
    pub(super) cache: CacheStatus,
    /// `ok`, else the error's outcome.
    pub(super) outcome: &'static str,
    pub(super) error: Option<&'a str>,
    pub(super) failed_attempts: &'a str,
    pub(super) elapsed: Duration,
}

/// The usage label of tool `name`.
pub fn usage_label(name: &str) -> String {
    format!("tool:{name}")
}

impl CallReport<'_> {
    pub(super) fn finish(self, gateway: &Gateway, caller: &ToolCaller<'_>) {
        gateway.telemetry().tool(&ToolObservation {
            // A name no tool has is client text: never a label value.
            tool: if self.outcome == "not_found" {
                aigw_telemetry::names::OTHER
            } else {
                self.tool
            },
            error: (self.outcome != "ok").then_some(self.outcome),
            cache_hit: self.cache == CacheStatus::Hit,
            duration: self.elapsed,
        });
        let key = caller.principal.key();
        // Counted when the caller got an answer (cached or not): what the key used.
        if self.outcome == "ok"
            && let Some(ledger) = &gateway.usage
        {
            let key_id = key.map_or(OPEN_KEY_ID, |k| k.id.as_str());
            ledger.record(key_id, &usage_label(self.tool), Tokens::default(), 0, true);
        }
        if !tracing::enabled!(target: "aigw::tool", tracing::Level::INFO) {
            return;
        }
        let key_name = key.map(|k| k.spec.name.as_deref().unwrap_or(k.id.as_str()));
        tracing::info!(
            target: "aigw::tool",
            // The name a client asked for (a path segment): capped like any client text.
            tool = capped(self.tool).as_ref(),
            via = caller.via.as_str(),
            key = key_name.unwrap_or("-"),
            request_id = caller.request_id,
            upstream = self.upstream.unwrap_or("-"),
            attempts = self.attempts,
            cache = self.cache.as_str(),
            outcome = self.outcome,
            latency_ms = %aigw_telemetry::Decimal::millis(self.elapsed),
            failed_attempts = %capped(self.failed_attempts),
            error = capped(self.error.unwrap_or("")).as_ref(),
            "tool call"
        );
    }
}
