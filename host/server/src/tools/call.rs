//! [`Toolbox::call`]: the one path of a tool call, in order — the tool by name, the key's grant
//! (a tool that exists but is not granted is `NotGranted`, so a client can tell it from a typo),
//! the key's tool quota, the arguments against the tool's schema, the shared cache, the walk
//! over the tool's upstreams with the router's engine, and the one report of the call.

use std::sync::Arc;
use std::time::Instant;

use aigw_router::{Attempt, Exhausted, FailureClass, Request, serve};
use aigw_telemetry::names;
use serde_json::Value;
use tracing::Instrument;
use tracing::field::Empty;

use super::cache::{Kept, Slot};
use super::quota;
use super::record::CallReport;
use super::upstreams::ToolAttempt;
use super::{
    CacheStatus, PluginTool, Tool, ToolAnswer, ToolCaller, ToolError, ToolSource, Toolbox,
};
use crate::gateway::Gateway;

impl Toolbox {
    /// Calls tool `name` with `arguments` for `caller`: the answer, or why not. Every call is
    /// reported once (a log line; a usage row when answered).
    pub async fn call(
        &self,
        gateway: &Gateway,
        caller: &ToolCaller<'_>,
        name: &str,
        arguments: &Value,
    ) -> Result<ToolAnswer, ToolError> {
        let started = Instant::now();
        let mut report = CallReport {
            tool: name,
            upstream: None,
            attempts: 0,
            cache: CacheStatus::Off,
            outcome: "ok",
            error: None,
            failed_attempts: "",
            elapsed: started.elapsed(),
        };
        let mut failed = String::new();
        let span = tracing::info_span!(
            target: names::TRACE_TARGET,
            names::SPAN_TOOL,
            { names::OTEL_NAME } = format_args!("{} {name}", names::SPAN_TOOL),
            { names::OTEL_KIND } = "internal",
            { names::OTEL_STATUS_CODE } = Empty,
            { names::GEN_AI_OPERATION_NAME } = names::OPERATION_EXECUTE_TOOL,
            { names::GEN_AI_TOOL_NAME } = name,
            { names::AIGW_TOOL_CACHE } = Empty,
            { names::ERROR_TYPE } = Empty,
        );
        let answer = self
            .answer(gateway, caller, name, arguments, &mut failed, started)
            .instrument(span.clone())
            .await;
        if !span.is_disabled() {
            match &answer {
                Ok((answer, _)) => {
                    span.record(names::AIGW_TOOL_CACHE, answer.cache.as_str());
                }
                Err((error, _)) => {
                    span.record(names::ERROR_TYPE, error.outcome());
                    span.record(names::OTEL_STATUS_CODE, "ERROR");
                }
            }
        }
        report.failed_attempts = &failed;
        report.elapsed = started.elapsed();
        match &answer {
            Ok((answer, attempts)) => {
                report.upstream = answer.upstream.as_deref();
                report.attempts = *attempts;
                report.cache = answer.cache;
                report.finish(gateway, caller);
            }
            Err((error, attempts)) => {
                report.attempts = *attempts;
                report.outcome = error.outcome();
                report.error = Some(error.message());
                report.finish(gateway, caller);
            }
        }
        answer.map(|(a, _)| a).map_err(|(e, _)| e)
    }

    /// The call's answer and how many upstream attempts it took (or the error, with the same).
    /// `failed` gathers the failed attempts, for the report.
    async fn answer(
        &self,
        gateway: &Gateway,
        caller: &ToolCaller<'_>,
        name: &str,
        arguments: &Value,
        failed: &mut String,
        started: Instant,
    ) -> Result<(ToolAnswer, usize), (ToolError, usize)> {
        let tool = self.admit(caller, name).map_err(|e| (e, 0))?;
        // Held until the call ends (it holds nothing after; tool calls charge nothing more).
        let _ticket = quota::admit(gateway, caller).await.map_err(|e| (e, 0))?;
        tool.schema().check(arguments).map_err(|e| {
            (
                ToolError::InvalidArguments {
                    field: e.field,
                    message: e.message,
                },
                0,
            )
        })?;
        let ttl = tool.cache_ttl();
        let cache = match (&gateway.memory, ttl.is_zero()) {
            (Some(store), false) => Some((store, Slot::new(name, arguments))),
            _ => None,
        };
        if let Some((store, slot)) = &cache
            && let Some(kept) = slot.get(store).await
        {
            return Ok((
                ToolAnswer {
                    text: kept.value.to_string(),
                    value: kept.value,
                    cache: CacheStatus::Hit,
                    upstream: kept.upstream,
                    elapsed: started.elapsed(),
                },
                0,
            ));
        }
        let (mut answer, attempts) = match &tool.source {
            ToolSource::Plugin(plugin) => {
                walk(gateway, caller, &tool, plugin, arguments, failed, started).await?
            }
            ToolSource::Remote(remote) => {
                let server = self.remote.iter().find(|s| s.name() == remote.server);
                super::remote::call(server, remote, arguments, failed, started).await?
            }
        };
        if let Some((store, slot)) = &cache {
            let kept = Kept {
                value: answer.value.clone(),
                upstream: answer.upstream.clone(),
            };
            slot.put(store, &kept, ttl).await;
            answer.cache = CacheStatus::Miss;
            answer.elapsed = started.elapsed();
        }
        Ok((answer, attempts))
    }

    /// The tool, if it exists and the caller's key is granted it.
    fn admit(&self, caller: &ToolCaller<'_>, name: &str) -> Result<Arc<Tool>, ToolError> {
        let Some(tool) = self.get(name) else {
            return Err(ToolError::NotFound(format!("no tool named `{name}`")));
        };
        if !super::may_use(caller.principal, name) {
            return Err(ToolError::NotGranted(format!(
                "this key may not use the tool `{name}`"
            )));
        }
        Ok(tool)
    }
}

/// Walks the plugin's upstreams until one answers.
async fn walk(
    gateway: &Gateway,
    caller: &ToolCaller<'_>,
    tool: &Tool,
    source: &PluginTool,
    arguments: &Value,
    failed: &mut String,
    started: Instant,
) -> Result<(ToolAnswer, usize), (ToolError, usize)> {
    let plugins = &source.plugin;
    if plugins.route.entries.is_empty() {
        let why: Vec<String> = plugins
            .upstreams
            .iter()
            .filter_map(|u| u.left_out.as_ref().map(|why| format!("{}: {why}", u.name)))
            .collect();
        return Err((
            ToolError::Unavailable(format!(
                "tool `{}` has no upstream it can call (tool plugin `{}`: {})",
                tool.name,
                plugins.name,
                if why.is_empty() {
                    "none is enabled".to_owned()
                } else {
                    why.join("; ")
                }
            )),
            0,
        ));
    }
    let text = arguments.to_string();
    let key = caller
        .principal
        .key()
        .map(|k| Arc::from(k.spec.name.as_deref().unwrap_or(k.id.as_str())));
    let attempt = ToolAttempt {
        gateway,
        plugin: &plugins.plugin,
        tool: &tool.name,
        arguments: &text,
        limits: &plugins.limits,
        namespace: caller.namespace.map(Arc::from),
        key,
    };
    let request = Request {
        seed: crate::chat::next_seed(),
        ..Request::default()
    };
    let label = |index: usize| {
        plugins
            .route
            .entries
            .get(index)
            .map_or_else(String::new, |e| e.target.label.to_string())
    };
    match serve(&attempt, &plugins.route, &request).await {
        Ok(served) => {
            gather(failed, served.attempts.iter(), &label);
            let attempts = served.attempts.len();
            let upstream = plugins
                .route
                .entries
                .get(served.target)
                .map(|e| e.target.name())
                .filter(|name| !name.is_empty())
                .map(str::to_owned);
            let answer = parsed(served.output, &tool.name).map_err(|e| (e, attempts))?;
            Ok((
                ToolAnswer {
                    text: answer.to_string(),
                    value: answer,
                    cache: CacheStatus::Off,
                    upstream,
                    elapsed: started.elapsed(),
                },
                attempts,
            ))
        }
        Err(exhausted) => {
            gather(failed, exhausted.attempts.iter(), &label);
            let attempts = exhausted.attempts.len();
            Err((exhausted_error(&exhausted, &tool.name, &label), attempts))
        }
    }
}

/// Appends each failed attempt (`label failure`) to `failed`.
fn gather<'a>(
    failed: &mut String,
    attempts: impl Iterator<Item = &'a Attempt>,
    label: &impl Fn(usize) -> String,
) {
    for attempt in attempts {
        if let Some(failure) = attempt.failure() {
            if !failed.is_empty() {
                failed.push_str("; ");
            }
            failed.push_str(&format!("{} {failure}", label(attempt.target)));
        }
    }
}

/// The plugin's result text as JSON (`null` for a tool that returns nothing).
fn parsed(output: String, tool: &str) -> Result<Value, ToolError> {
    if output.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&output).map_err(|e| ToolError::Failed {
        class: FailureClass::BadResponse,
        message: format!("tool `{tool}` answered something that is not JSON: {e}"),
    })
}

/// Why no upstream answered: every one resting (cooling after rate limits, or broken), or the
/// decisive failure with every attempt named.
fn exhausted_error(
    exhausted: &Exhausted,
    tool: &str,
    label: &impl Fn(usize) -> String,
) -> ToolError {
    if let Some((wait, all_cooling)) = exhausted.unavailable_for() {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        return if all_cooling {
            ToolError::Failed {
                class: FailureClass::RateLimited,
                message: format!(
                    "every upstream of tool `{tool}` is cooling down after rate limits; retry \
                     in {seconds} s"
                ),
            }
        } else {
            ToolError::Unavailable(format!(
                "no upstream of tool `{tool}` is available (circuit open after repeated \
                 failures); retry in {seconds} s"
            ))
        };
    }
    let Some((last, failure)) = exhausted
        .attempts
        .iter()
        .rev()
        .find_map(|a| a.failure().map(|f| (a.target, f)))
    else {
        return ToolError::Unavailable(format!(
            "tool `{tool}` has no upstream that could be tried"
        ));
    };
    let mut message = format!("{}: {}", label(last), failure.message);
    if exhausted.attempts.len() > 1 {
        message.push_str(&format!(
            " (all {} attempts failed)",
            exhausted.attempts.len()
        ));
    }
    ToolError::Failed {
        class: failure.class,
        message,
    }
}
