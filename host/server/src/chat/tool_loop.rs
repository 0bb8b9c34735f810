//! The gateway-executed tool loop inside a chat completion. A request whose `tools` name aigw
//! tools (`{"type": "aigw_tool", "name": "weather_*"}`) is sent to the model with those tools
//! as OpenAI function definitions beside the client's own; while the model answers with calls
//! to aigw tools only, the gateway runs them ([`Tools::call`], in parallel, bounded), appends
//! the assistant message and one `tool` message per call, and asks again — each step the
//! normal routed call (failover, stream continuation, the request's record), never a fork of
//! it. The loop ends with the first answer that calls no aigw tool; an answer that calls any
//! of the client's tools goes to the client with only the client's calls (the gateway never
//! runs a client's tool, and it cannot hand back half a turn: the aigw calls of that turn were
//! not run, and the client's next request, with its results, lets the model call them again).
//!
//! Bounds (`[tool_loop]`): at step `max_steps` the model is sent `tool_choice: "none"`, so it
//! must answer (one that calls tools anyway is answered with what it said, `finish_reason:
//! "length"`); past `timeout_ms` the request ends with a 504 (a stream: an error event, no
//! `[DONE]`); at most `max_parallel_calls` of one step's calls run at once.
//!
//! Streamed, each step is streamed from the upstream through the relay with a [`Merge`]:
//! content reaches the client as it arrives, the loop's own tool calls and intermediate finish
//! chunks never do, and `[DONE]` is written only at the real end (invariant 9).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use aigw_router::{Attempt, Commitment, Exhausted, Request, Skip, Strategy};
use aigw_runtime::Usage;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

use super::attempt::{Answer, Call};
use super::continuation::add_usage;
use super::merge::Merge;
use super::record::{Finished, RequestRecord, debug_header, label};
use super::relay::{self, Carried, Carrying, Relay, shutdown_error};
use super::session::Turn;
use super::{STREAM_BUFFER, estimate, next_seed, served_headers};
use crate::body::Body;
use crate::error::ApiError;
use crate::gateway::{Gateway, ServedRoute};
use crate::options::ToolLoopOptions;
use crate::peer::Peer;
use crate::streams::StreamSlot;
use crate::trace::RequestTrace;

/// The `tools[i].type` of an entry naming aigw tools.
pub(crate) const AIGW_TOOL: &str = "aigw_tool";

/// One aigw tool offered to the model.
#[derive(Debug, Clone)]
pub(crate) struct Offered {
    pub(crate) name: Arc<str>,
    /// Its OpenAI function definition (`{"type":"function","function":{…}}`).
    pub(crate) function: Value,
}

/// What the loop needs of the tool service, for one request: the server's is the toolbox
/// acting for the request's key ([`super::toolbox`]).
pub(crate) trait Tools: Send + Sync + 'static {
    /// The aigw tools `name` (an exact name, `prefix*` or `*`) offers the caller, sorted by
    /// name. The error is the client's, naming `param`: an exact name no tool has (400), a
    /// tool the key may not use (403).
    fn offer(&self, name: &str, param: &str) -> Result<Vec<Offered>, ApiError>;

    /// Runs one call: the result's compact JSON, or the error the model is shown.
    fn call(
        &self,
        name: Arc<str>,
        arguments: String,
    ) -> impl Future<Output = Result<String, ApiError>> + Send;
}

/// The request as the loop sends it: the client's body with the aigw entries of `tools`
/// replaced by their function definitions, and the messages the steps added.
#[derive(Debug)]
pub(crate) struct Prepared {
    request: Map<String, Value>,
    /// The names of the aigw tools offered: a call to any other name is the client's.
    aigw: HashSet<Arc<str>>,
    /// The messages the loop added (assistant calls, tool results), for a session's turn.
    added: Vec<Value>,
}

/// Reads a request whose `tools` name aigw tools (or whose route offers `route_tools`) and
/// offers them; the error is the client's (before any upstream is asked). The route's tools
/// are the operator's choice: those the key may not use are left out, not refused.
pub(crate) fn prepare(
    text: &str,
    tools: &impl Tools,
    route_tools: &[String],
) -> Result<Prepared, ApiError> {
    let invalid = |e: serde_json::Error| {
        ApiError::invalid_request(format!("request body is not valid JSON: {e}"))
            .code("invalid_json")
    };
    let mut request: Map<String, Value> = serde_json::from_str(text).map_err(invalid)?;
    let entries = match request.remove("tools") {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    let client: HashSet<&str> = entries
        .iter()
        .filter(|e| e.get("type").and_then(Value::as_str) != Some(AIGW_TOOL))
        .filter_map(|e| e.pointer("/function/name").and_then(Value::as_str))
        .collect();
    let mut aigw: HashSet<Arc<str>> = HashSet::new();
    let mut sent = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        if entry.get("type").and_then(Value::as_str) != Some(AIGW_TOOL) {
            sent.push(entry.clone());
            continue;
        }
        let param = format!("tools[{i}].name");
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            return Err(ApiError::invalid_request(format!(
                "Missing required parameter: '{param}' (an aigw tool's name, `prefix*` or `*`)."
            ))
            .param(param)
            .code("missing_required_parameter"));
        };
        for offered in tools.offer(name, &param)? {
            if client.contains(&*offered.name) {
                return Err(ApiError::invalid_request(format!(
                    "the client's function `{}` has the name of an aigw tool that {param} \
                     offers; rename the function or name the aigw tools more narrowly",
                    offered.name
                ))
                .param(param)
                .code("tool_name_conflict"));
            }
            if aigw.insert(Arc::clone(&offered.name)) {
                sent.push(offered.function);
            }
        }
    }
    for pattern in route_tools {
        for offered in tools.offer(pattern, "tools").unwrap_or_default() {
            if !client.contains(&*offered.name) && aigw.insert(Arc::clone(&offered.name)) {
                sent.push(offered.function);
            }
        }
    }
    // An empty `tools` is refused by OpenAI: a pattern that offered nothing leaves none.
    if !sent.is_empty() {
        request.insert("tools".to_owned(), Value::Array(sent));
    }
    Ok(Prepared {
        request,
        aigw,
        added: Vec::new(),
    })
}

impl Prepared {
    /// The body of the next step; the last step tells the model to answer without tools.
    fn body(&mut self, last: bool, stream: bool) -> String {
        if last && self.request.contains_key("tools") {
            self.request.insert("tool_choice".to_owned(), json!("none"));
        }
        if stream {
            // Each step's usage is charged, so each step asks for it; the client sees the sum
            // only when it asked.
            let options = self
                .request
                .entry("stream_options")
                .or_insert_with(|| json!({}));
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".to_owned(), json!(true));
            }
        }
        Value::Object(self.request.clone()).to_string()
    }

    /// Appends a step's assistant message and its calls' results. A `tool_choice` forcing a
    /// call ("required", a named function) applied to the first step: kept, it would make the
    /// model call again at every step, so the steps after a tool step are sent `auto`.
    fn push(&mut self, message: Value, results: Vec<Value>) {
        if matches!(self.request.get("tool_choice"), Some(Value::Object(_)))
            || self.request.get("tool_choice").and_then(Value::as_str) == Some("required")
        {
            self.request.insert("tool_choice".to_owned(), json!("auto"));
        }
        if let Some(Value::Array(messages)) = self.request.get_mut("messages") {
            messages.push(message.clone());
            messages.extend(results.iter().cloned());
        }
        self.added.push(message);
        self.added.extend(results);
    }

    /// What the model's answer asks of the loop.
    fn next(&self, message: &Value) -> Next {
        let calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty());
        let Some(calls) = calls else {
            return Next::Answer;
        };
        let ours = |call: &Value| {
            call.pointer("/function/name")
                .and_then(Value::as_str)
                .is_some_and(|name| self.aigw.contains(name))
        };
        if calls.iter().all(ours) {
            Next::Run(calls.clone())
        } else {
            // A name that is neither the client's nor ours (a model's invention) is the
            // client's to judge too: the gateway only runs what it offered.
            Next::Client(calls.iter().filter(|c| !ours(c)).cloned().collect())
        }
    }
}

/// What an answer asks of the loop.
#[derive(Debug, PartialEq)]
enum Next {
    /// No tool calls: the answer is final.
    Answer,
    /// Calls to aigw tools only: run them and ask again.
    Run(Vec<Value>),
    /// Some calls are the client's: the answer goes to the client with only those.
    Client(Vec<Value>),
}

/// Runs one step's calls, at most `max_parallel` at once, and returns their `tool` messages in
/// the calls' order. A failed call's message is `{"error":{"code","message"}}`, so the model
/// can react (ask again with other arguments, answer without the tool).
async fn run_calls<T: Tools>(tools: &Arc<T>, calls: &[Value], max_parallel: usize) -> Vec<Value> {
    let permits = Arc::new(Semaphore::new(max_parallel.max(1)));
    let mut running = JoinSet::new();
    for (index, call) in calls.iter().enumerate() {
        let field = |pointer: &str| {
            call.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let name: Arc<str> = field("/function/name").into();
        let arguments = field("/function/arguments");
        let tools = Arc::clone(tools);
        let permits = Arc::clone(&permits);
        running.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (index, tools.call(name, arguments).await)
        });
    }
    let mut results: Vec<Option<Result<String, ApiError>>> = calls.iter().map(|_| None).collect();
    while let Some(joined) = running.join_next().await {
        if let Ok((index, result)) = joined
            && let Some(slot) = results.get_mut(index)
        {
            *slot = Some(result);
        }
    }
    calls
        .iter()
        .zip(results)
        .map(|(call, result)| {
            let content = match result {
                Some(Ok(text)) => text,
                Some(Err(error)) => failed_call(&error),
                None => failed_call(&ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the tool call ended without an answer",
                )),
            };
            json!({
                "role": "tool",
                "tool_call_id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
                "content": content,
            })
        })
        .collect()
}

/// A failed call as the model is shown it.
fn failed_call(error: &ApiError) -> String {
    json!({"error": {"code": error.code.unwrap_or(error.kind), "message": error.message}})
        .to_string()
}

/// One chat completion with a tool loop, from the point the request was admitted.
pub(crate) struct Loop<T> {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) route: Arc<ServedRoute>,
    pub(crate) tools: Arc<T>,
    pub(crate) prepared: Prepared,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    pub(crate) debug_attempts: bool,
    pub(crate) record: RequestRecord,
    pub(crate) turn: Option<Turn>,
    pub(crate) peer: Option<Peer>,
    /// The client's stream slot, freed when the answer ends.
    pub(crate) _slot: Option<StreamSlot>,
}

/// What the steps so far did, for the answer and its record.
#[derive(Default)]
struct Progress {
    steps: u32,
    calls: u32,
    /// What each finished step's attempts consumed, each on its own target (by label): the
    /// answer's usage is their sum and the final step's.
    parts: Vec<(Arc<str>, Usage)>,
    attempts: Vec<Attempt>,
    skipped: Vec<Skip>,
    /// The route entry that served the latest step: an answer that fails later is still
    /// accounted to it (with the steps' spend).
    served: Option<usize>,
}

impl Progress {
    fn walked(&mut self, commitment: &Commitment) {
        self.served = Some(commitment.target);
        self.attempts.extend(commitment.attempts.iter().cloned());
        self.skipped.extend(commitment.skipped.iter().copied());
    }

    fn exhausted(&mut self, exhausted: &Exhausted) {
        self.attempts.extend(exhausted.attempts.iter().cloned());
        self.skipped.extend(exhausted.skipped.iter().copied());
    }

    /// The answer's usage: every step's, the final one's included.
    fn total(&self, last: Option<Usage>) -> Option<Usage> {
        self.parts
            .iter()
            .map(|(_, u)| *u)
            .chain(last)
            .reduce(add_usage)
    }
}

/// The timeout's answer.
fn timed_out(options: &ToolLoopOptions, steps: u32) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout_error",
        format!(
            "the tool loop did not finish within {} ms ([tool_loop] timeout_ms; {steps} steps \
             taken)",
            options.timeout.as_millis()
        ),
    )
    .code("tool_loop_timeout")
}

/// One walk of the route for one step's body.
async fn serve_step(
    gateway: &Gateway,
    route: &ServedRoute,
    body: &str,
    stream: bool,
    trace: &RequestTrace,
) -> Result<(Answer, Commitment), Exhausted> {
    let call = Call {
        gateway,
        body,
        continuation: None,
        stream,
        trace,
    };
    let costs = match route.policy.strategy {
        Strategy::Cost => estimate::costs(route, &gateway.prices, body),
        Strategy::Weighted | Strategy::Latency => Vec::new(),
    };
    let request = Request {
        stream,
        seed: next_seed(),
        exclude: Vec::new(),
        costs,
    };
    let served = aigw_router::serve(&call, route, &request).await?;
    Ok(served.commit(&request))
}

impl<T: Tools> Loop<T> {
    /// Answers the request: steps until a final answer, as JSON or as one stream.
    pub(crate) async fn answer(mut self) -> Response<Body> {
        let options = self.gateway.tool_loop;
        let deadline = Instant::now() + options.timeout;
        let mut progress = Progress::default();
        let mut first: Option<(Value, Value)> = None;
        loop {
            progress.steps += 1;
            let body = self
                .prepared
                .body(progress.steps >= options.max_steps, self.stream);
            let walked = timeout_at(
                deadline,
                serve_step(
                    &self.gateway,
                    &self.route,
                    &body,
                    self.stream,
                    self.record.trace(),
                ),
            )
            .await;
            let (answer, commitment) = match walked {
                Err(_) => return self.refuse(&progress, timed_out(&options, progress.steps)),
                Ok(Err(exhausted)) => return self.exhausted(progress, &exhausted),
                Ok(Ok(served)) => served,
            };
            self.record.walked(&commitment.attempts);
            let (json, usage) = match answer {
                // The stream's attempts join the progress once it is carried (continuations
                // included).
                Answer::Stream(open) => {
                    let body = Bytes::from(body);
                    return self.stream(*open, commitment, body, progress, deadline);
                }
                Answer::Complete { json, usage } => (json, usage),
            };
            progress.walked(&commitment);
            let served_by = &self.route.entries[commitment.target].target;
            let Ok(mut completion) = serde_json::from_str::<Value>(&json) else {
                let error = ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "the model's answer is not JSON",
                )
                .code("bad_response");
                return self.refuse(&progress, error);
            };
            first.get_or_insert_with(|| {
                (
                    completion.get("id").cloned().unwrap_or(Value::Null),
                    completion.get("created").cloned().unwrap_or(Value::Null),
                )
            });
            let message = completion
                .pointer("/choices/0/message")
                .cloned()
                .unwrap_or(Value::Null);
            let last = progress.steps >= options.max_steps;
            let next = self.prepared.next(&message);
            if let (Next::Run(calls), false) = (&next, last) {
                progress
                    .parts
                    .push((Arc::clone(&served_by.label), usage.unwrap_or_default()));
                progress.calls += calls.len() as u32;
                let ran = timeout_at(
                    deadline,
                    run_calls(&self.tools, calls, options.max_parallel_calls),
                )
                .await;
                let Ok(results) = ran else {
                    return self.refuse(&progress, timed_out(&options, progress.steps));
                };
                self.prepared.push(message, results);
                continue;
            }
            // The answer: the client's calls only, the first step's identity, every step's usage.
            let message = match next {
                Next::Answer => message,
                Next::Client(calls) => {
                    finish_with(&mut completion, "tool_calls", Some(calls));
                    completion
                        .pointer("/choices/0/message")
                        .cloned()
                        .unwrap_or(Value::Null)
                }
                Next::Run(_) => {
                    // The last step still called tools: what it said, cut by the bound.
                    finish_with(&mut completion, "length", Some(Vec::new()));
                    completion
                        .pointer("/choices/0/message")
                        .cloned()
                        .unwrap_or(Value::Null)
                }
            };
            if let (Some((id, created)), Some(fields)) = (&first, completion.as_object_mut()) {
                fields.insert("id".to_owned(), id.clone());
                fields.insert("created".to_owned(), created.clone());
                if let Some(total) = progress.total(usage) {
                    fields.insert("usage".to_owned(), usage_json(total));
                }
            }
            if let Some(turn) = self.turn.take()
                && let Err(error) = turn
                    .record_steps(&self.gateway, &self.prepared.added, &message)
                    .await
            {
                return self.refuse(&progress, error);
            }
            let mut response = Response::new(Body::full(completion.to_string()));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            served_headers(headers, served_by, progress.attempts.len());
            if self.debug_attempts {
                debug_header(headers, &self.route, &progress.attempts, &progress.skipped);
            }
            self.record.tool_loop(progress.steps, progress.calls);
            self.record.finish(Finished {
                status: 200,
                attempts: &progress.attempts,
                skipped: &progress.skipped,
                served: Some(served_by),
                usage,
                broken: &progress.parts,
                error: None,
                answer: None,
            });
            return response;
        }
    }

    /// Answers with an error before anything was sent (or instead of a non-streamed answer);
    /// the steps that were served are still charged.
    fn refuse(self, progress: &Progress, error: ApiError) -> Response<Body> {
        self.report_failure(progress, None, &error);
        error.response()
    }

    /// The record of a request the loop ended with `error`: its steps and calls, every attempt,
    /// the target of the last served step, and the usage of the steps served.
    fn report_failure(self, progress: &Progress, usage: Option<Usage>, error: &ApiError) {
        let served = progress
            .served
            .and_then(|i| self.route.entries.get(i))
            .map(|e| &e.target);
        let mut record = self.record;
        record.tool_loop(progress.steps, progress.calls);
        record.finish(Finished {
            status: error.status.as_u16(),
            attempts: &progress.attempts,
            skipped: &progress.skipped,
            served,
            usage,
            broken: &progress.parts,
            error: Some(&error.message),
            answer: None,
        });
    }

    /// A step no target served: the route's exhausted answer.
    fn exhausted(self, mut progress: Progress, exhausted: &Exhausted) -> Response<Body> {
        self.record.walked(&exhausted.attempts);
        progress.exhausted(exhausted);
        let error = ApiError::exhausted(exhausted, self.record.model(), |i| label(&self.route, i));
        let attempts = progress.attempts.len();
        let debug = self
            .debug_attempts
            .then(|| (Arc::clone(&self.route), exhausted.attempts.clone()));
        let mut response = self.refuse(&progress, error);
        let headers = response.headers_mut();
        headers.insert("x-aigw-attempts", HeaderValue::from(attempts));
        if let Some((route, attempts)) = debug {
            debug_header(headers, &route, &attempts, &exhausted.skipped);
        }
        response
    }

    /// The first step committed a stream: the response head goes out now, and the steps are
    /// carried on in a task that owns the rest of the request.
    fn stream(
        self,
        open: super::attempt::OpenStream,
        commitment: Commitment,
        body: Bytes,
        progress: Progress,
        deadline: Instant,
    ) -> Response<Body> {
        let span = self.record.trace().span.clone();
        let route = Arc::clone(&self.route);
        let debug_attempts = self.debug_attempts;
        let target = commitment.target;
        let (attempts, skipped) = (commitment.attempts.clone(), commitment.skipped.clone());
        // Run as the body is read (`body.rs`).
        let body = Body::stream(STREAM_BUFFER, |tx| {
            self.carry(open, commitment, body, tx, progress, deadline)
                .instrument(span)
        });
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        served_headers(headers, &route.entries[target].target, attempts.len());
        if debug_attempts {
            debug_header(headers, &route, &attempts, &skipped);
        }
        response
    }

    /// Carries every step's stream to the client as one answer.
    async fn carry(
        mut self,
        open: super::attempt::OpenStream,
        commitment: Commitment,
        body: Bytes,
        tx: mpsc::Sender<Bytes>,
        mut progress: Progress,
        deadline: Instant,
    ) {
        let options = self.gateway.tool_loop;
        let mut merge = Merge::default();
        let mut step = Some((open, commitment, body));
        loop {
            let (open, mut commitment, body) = match step.take() {
                Some(step) => step,
                None => {
                    progress.steps += 1;
                    let body = self
                        .prepared
                        .body(progress.steps >= options.max_steps, true);
                    let walked = timeout_at(
                        deadline,
                        serve_step(&self.gateway, &self.route, &body, true, self.record.trace()),
                    )
                    .await;
                    match walked {
                        Err(_) => {
                            let error = timed_out(&options, progress.steps);
                            return self.end_with(&tx, progress, None, error).await;
                        }
                        Ok(Err(exhausted)) => {
                            self.record.walked(&exhausted.attempts);
                            progress.exhausted(&exhausted);
                            let error = ApiError::exhausted(&exhausted, self.record.model(), |i| {
                                label(&self.route, i)
                            });
                            return self.end_with(&tx, progress, None, error).await;
                        }
                        Ok(Ok((Answer::Stream(open), commitment))) => {
                            self.record.walked(&commitment.attempts);
                            (*open, commitment, Bytes::from(body))
                        }
                        Ok(Ok((Answer::Complete { .. }, _))) => {
                            let error = ApiError::new(
                                StatusCode::BAD_GATEWAY,
                                "upstream_error",
                                "a streamed step was answered whole",
                            );
                            return self.end_with(&tx, progress, None, error).await;
                        }
                    }
                }
            };
            let mut relay = Relay::new(
                tx.clone(),
                &self.route,
                false,
                self.peer.clone(),
                true,
                Some(merge),
            );
            let carried = timeout_at(
                deadline,
                relay::carry_committed(
                    open,
                    &mut commitment,
                    &mut relay,
                    Carrying {
                        gateway: &self.gateway,
                        route: &self.route,
                        body: &body,
                    },
                    &mut self.record,
                ),
            )
            .await;
            progress.walked(&commitment);
            let served_by = Arc::clone(&self.route.entries[commitment.target].target.label);
            let (usage, broken) = relay.usage();
            progress.parts.extend(broken.iter().cloned());
            match carried {
                Err(_) => {
                    progress.parts.extend(usage.map(|u| (served_by, u)));
                    let error = timed_out(&options, progress.steps);
                    return self.end_with(&tx, progress, None, error).await;
                }
                Ok(Carried::ClientGone) => {
                    progress.parts.extend(usage.map(|u| (served_by, u)));
                    let error = ApiError::new(
                        StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                        "client_closed_request",
                        "client went away",
                    );
                    return self.end_with(&tx, progress, None, error).await;
                }
                Ok(Carried::ShutDown) => {
                    progress.parts.extend(usage.map(|u| (served_by, u)));
                    return self.end_with(&tx, progress, None, shutdown_error()).await;
                }
                Ok(Carried::Failed(failure)) => {
                    progress.parts.extend(usage.map(|u| (served_by, u)));
                    let entry = &self.route.entries[commitment.target].target;
                    let message = format!("{}: {}", entry.label, failure.message);
                    let error = ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", message)
                        .code(failure.class.as_str());
                    return self.end_with(&tx, progress, None, error).await;
                }
                Ok(Carried::Finished) => {}
            }
            let (message, usage, next_merge) = relay.into_step();
            merge = next_merge;
            let finish = merge.take_finish();
            let last = progress.steps >= options.max_steps;
            let next = self.prepared.next(&message);
            if let (Next::Run(calls), false) = (&next, last) {
                progress.parts.push((served_by, usage.unwrap_or_default()));
                progress.calls += calls.len() as u32;
                let ran = timeout_at(
                    deadline,
                    run_calls(&self.tools, calls, options.max_parallel_calls),
                )
                .await;
                let Ok(results) = ran else {
                    let error = timed_out(&options, progress.steps);
                    return self.end_with(&tx, progress, None, error).await;
                };
                self.prepared.push(message, results);
                continue;
            }
            let (calls, finish) = match next {
                Next::Answer => (Vec::new(), finish),
                Next::Client(calls) => (calls, json!("tool_calls")),
                Next::Run(_) => (Vec::new(), json!("length")),
            };
            let mut message = message;
            if let Some(fields) = message.as_object_mut() {
                if calls.is_empty() {
                    fields.remove("tool_calls");
                } else {
                    fields.insert("tool_calls".to_owned(), Value::Array(calls.clone()));
                }
            }
            let total = progress.total(usage);
            let closing = merge.closing(&calls, finish, total.filter(|_| self.include_usage));
            if let Some(turn) = self.turn.take()
                && let Err(error) = turn
                    .record_steps(&self.gateway, &self.prepared.added, &message)
                    .await
            {
                relay::send_chunks(&tx, &closing, false).await;
                return self.end_with(&tx, progress, usage, error).await;
            }
            let status = if relay::send_chunks(&tx, &closing, true).await {
                200
            } else {
                499
            };
            let served = &self.route.entries[commitment.target].target;
            self.record.tool_loop(progress.steps, progress.calls);
            self.record.finish(Finished {
                status,
                attempts: &progress.attempts,
                skipped: &progress.skipped,
                served: Some(served),
                usage,
                broken: &progress.parts,
                error: (status != 200).then_some("client went away"),
                answer: None,
            });
            return;
        }
    }

    /// Ends a stream that cannot go on: its error event (no `[DONE]`), and the record.
    async fn end_with(
        self,
        tx: &mpsc::Sender<Bytes>,
        progress: Progress,
        usage: Option<Usage>,
        error: ApiError,
    ) {
        if error.status.as_u16() != 499 {
            relay::send_event(tx, &error).await;
        }
        self.report_failure(&progress, usage, &error);
    }
}

/// Rewrites a completion's first choice: `finish_reason`, and its tool calls (`Some(empty)`:
/// none).
fn finish_with(completion: &mut Value, finish: &str, calls: Option<Vec<Value>>) {
    let Some(choice) = completion.pointer_mut("/choices/0") else {
        return;
    };
    choice["finish_reason"] = json!(finish);
    if let Some(calls) = calls
        && let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut)
    {
        if calls.is_empty() {
            message.remove("tool_calls");
        } else {
            message.insert("tool_calls".to_owned(), Value::Array(calls));
        }
    }
}

/// A usage in OpenAI's shape.
fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A catalog of `weather_current`, `weather_forecast` (not granted) and `echo`.
    struct Fake {
        running: AtomicUsize,
        most: AtomicUsize,
    }

    impl Tools for Fake {
        fn offer(&self, name: &str, param: &str) -> Result<Vec<Offered>, ApiError> {
            let all = ["echo", "weather_current", "weather_forecast"];
            let granted = |n: &str| n != "weather_forecast";
            let offered = |n: &str| Offered {
                name: n.into(),
                function: json!({"type": "function", "function": {"name": n}}),
            };
            match name.strip_suffix('*') {
                Some(prefix) => Ok(all
                    .iter()
                    .filter(|n| n.starts_with(prefix))
                    .filter(|n| granted(n))
                    .map(|n| offered(n))
                    .collect()),
                None if !all.contains(&name) => {
                    Err(ApiError::invalid_request("unknown").param(param.to_owned()))
                }
                None if !granted(name) => {
                    Err(ApiError::new(StatusCode::FORBIDDEN, "x", "no").param(param.to_owned()))
                }
                None => Ok(vec![offered(name)]),
            }
        }

        async fn call(&self, name: Arc<str>, arguments: String) -> Result<String, ApiError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            if &*name == "weather_current" {
                return Err(ApiError::invalid_request("bad city").code("invalid_tool_arguments"));
            }
            Ok(arguments)
        }
    }

    fn fake() -> Fake {
        Fake {
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }

    fn body(tools: Value) -> String {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools})
            .to_string()
    }

    fn call(id: &str, name: &str) -> Value {
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": "{\"a\":1}"}})
    }

    #[test]
    fn aigw_entries_become_function_definitions_beside_the_clients_own() {
        let client = json!({"type": "function", "function": {"name": "mine"}});
        let text = body(json!([client, {"type": "aigw_tool", "name": "weather_*"},
                               {"type": "aigw_tool", "name": "weather_current"}]));
        let mut prepared = prepare(&text, &fake(), &[]).unwrap();
        let sent: Value = serde_json::from_str(&prepared.body(false, false)).unwrap();
        let names: Vec<&str> = sent["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        // The ungranted forecast is not offered by the pattern; the repeated name once.
        assert_eq!(names, ["mine", "weather_current"]);
        assert!(sent.get("tool_choice").is_none());
        let last: Value = serde_json::from_str(&prepared.body(true, true)).unwrap();
        assert_eq!(last["tool_choice"], "none");
        assert_eq!(last["stream_options"]["include_usage"], true);
    }

    #[test]
    fn unknown_ungranted_and_clashing_names_are_the_clients_errors() {
        let refused = |tools: Value| prepare(&body(tools), &fake(), &[]).unwrap_err();
        let e = refused(json!([{"type": "function", "function": {"name": "f"}},
                               {"type": "aigw_tool", "name": "nope"}]));
        assert_eq!(
            (e.status, e.param.as_deref()),
            (StatusCode::BAD_REQUEST, Some("tools[1].name"))
        );
        let e = refused(json!([{"type": "aigw_tool", "name": "weather_forecast"}]));
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let e = refused(json!([{"type": "aigw_tool"}]));
        assert_eq!(e.code, Some("missing_required_parameter"));
        let e = refused(json!([{"type": "function", "function": {"name": "echo"}},
                               {"type": "aigw_tool", "name": "*"}]));
        assert_eq!(e.code, Some("tool_name_conflict"));
        // A pattern that offers nothing leaves no empty `tools`.
        let mut prepared = prepare(
            &body(json!([{"type": "aigw_tool", "name": "x*"}])),
            &fake(),
            &[],
        )
        .unwrap();
        let sent: Value = serde_json::from_str(&prepared.body(true, false)).unwrap();
        assert!(sent.get("tools").is_none() && sent.get("tool_choice").is_none());
    }

    #[test]
    fn an_answer_is_final_ours_to_run_or_the_clients() {
        let text = body(json!([{"type": "function", "function": {"name": "mine"}},
                               {"type": "aigw_tool", "name": "echo"}]));
        let prepared = prepare(&text, &fake(), &[]).unwrap();
        assert_eq!(prepared.next(&json!({"content": "hi"})), Next::Answer);
        assert_eq!(prepared.next(&json!({"tool_calls": []})), Next::Answer);
        let ours = json!({"tool_calls": [call("a", "echo"), call("b", "echo")]});
        assert!(matches!(prepared.next(&ours), Next::Run(calls) if calls.len() == 2));
        let mixed = json!({"tool_calls": [call("a", "echo"), call("b", "mine")]});
        assert_eq!(prepared.next(&mixed), Next::Client(vec![call("b", "mine")]));
    }

    #[test]
    fn a_forcing_tool_choice_applies_to_the_first_step_only() {
        let mut text: Value = serde_json::from_str(&body(json!([{"type": "aigw_tool",
            "name": "echo"}])))
        .unwrap();
        text["tool_choice"] = json!("required");
        let mut prepared = prepare(&text.to_string(), &fake(), &[]).unwrap();
        let first: Value = serde_json::from_str(&prepared.body(false, false)).unwrap();
        assert_eq!(first["tool_choice"], "required");
        let message = json!({"role": "assistant", "tool_calls": [call("a", "echo")]});
        let result = json!({"role": "tool", "tool_call_id": "a", "content": "{}"});
        prepared.push(message.clone(), vec![result.clone()]);
        let second: Value = serde_json::from_str(&prepared.body(false, false)).unwrap();
        assert_eq!(second["tool_choice"], "auto");
        assert_eq!(second["messages"].as_array().unwrap().len(), 3);
        assert_eq!(prepared.added, vec![message, result]);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_run_in_parallel_within_the_bound_and_answer_in_order() {
        let tools = Arc::new(fake());
        let calls: Vec<Value> = (0..5)
            .map(|i| {
                call(
                    &format!("c{i}"),
                    if i == 1 { "weather_current" } else { "echo" },
                )
            })
            .collect();
        let results = run_calls(&tools, &calls, 2).await;
        assert_eq!(tools.most.load(Ordering::SeqCst), 2);
        let ids: Vec<&str> = results
            .iter()
            .map(|r| r["tool_call_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["c0", "c1", "c2", "c3", "c4"]);
        assert_eq!(results[0]["content"], "{\"a\":1}");
        assert_eq!(results[0]["role"], "tool");
        let failed: Value = serde_json::from_str(results[1]["content"].as_str().unwrap()).unwrap();
        assert_eq!(
            failed,
            json!({"error": {"code": "invalid_tool_arguments", "message": "bad city"}})
        );
        let all = Arc::new(fake());
        run_calls(&all, &calls, 8).await;
        assert_eq!(all.most.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_completion_is_rewritten_with_the_clients_calls_only() {
        let mut completion = json!({"choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "tool_calls": [call("a", "echo"), call("b", "mine")]}}]});
        finish_with(&mut completion, "tool_calls", Some(vec![call("b", "mine")]));
        assert_eq!(
            completion["choices"][0]["message"]["tool_calls"],
            json!([call("b", "mine")])
        );
        finish_with(&mut completion, "length", Some(Vec::new()));
        assert_eq!(completion["choices"][0]["finish_reason"], "length");
        assert!(
            completion["choices"][0]["message"]
                .get("tool_calls")
                .is_none()
        );
    }
}
