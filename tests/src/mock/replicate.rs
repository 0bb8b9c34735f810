//! Replicate's Predictions API (`docs/wire-formats.md`, Replicate): the whole of
//! [`Flavor::Replicate`] — routes, prediction jobs and their lifecycle, the `urls.stream` SSE, and
//! problem-details errors.
//!
//! Models are `owner/name`; the part after the `/` picks the [`Behaviour`] (`mock/ok`,
//! `mock/rate-limit`, `mock/processing-3`). A create on `POST /predictions` picks it from the
//! `version` string instead (so `owner/name:rate-limit` works through the plugin; a real 64-hex
//! version is `ok`).
//!
//! | model name | create (`POST …/predictions`) | later |
//! |---|---|---|
//! | `ok` (and anything not listed) | with `Prefer: wait`: 201 `succeeded`, `output` = `"mock reply to: <last user text>"` in word pieces; without: 201 `starting`, `output: null` | without `Prefer: wait` the first `GET urls.get` is `succeeded` |
//! | `processing-<n>` | 201 `starting`, `output: null`, no `metrics` (the sync window ran out) | GETs 1…n-1 are `processing` with the first words; GET n is `succeeded` |
//! | `runs-<ms>` | the job ends `<ms>` after its creation, on the wall clock, however often it is polled. With `Prefer: wait` the create is held for the mock's [`SYNC_WINDOW`] (1 s; `wait=N` if shorter) or until the job ends, then answered as it is: 201 `processing` (or `succeeded`) | every GET before the end is `processing` with the words written so far (word `i` of `n` at `(i + 1) / (n + 1)` of the run), then `succeeded`; the stream URL sends each word at that time and `done` at the end |
//! | `tool-call`, `tool-call-parallel`, `no-done` | as `ok` (the plugin rejects tools before calling) | `no-done`: the stream URL never sends `event: done` |
//! | `slow-<ms>` | waits `<ms>`, then as `ok` | as `ok` |
//! | `rate-limit` | 429 `{"detail":"Request was throttled. Your rate limit resets in ~7s.","status":429}`, no `retry-after` | |
//! | `rate-limit-no-header` | 429 `{"detail":"Request was throttled.","status":429}` | |
//! | `error-500` | 500 problem details, detail [`SERVER_ERROR_MESSAGE`] | |
//! | `error-200` | as `error-500` | |
//! | `unavailable-503`, `capacity-498` | 503 problem details, detail [`OVERLOADED_MESSAGE`] | |
//! | `context-length` | 201 `failed`, `error` [`CONTEXT_LENGTH_ERROR`], `output: null` | |
//! | `bad-request` | 422 problem details whose detail contains [`BAD_REQUEST_MESSAGE`] | |
//! | `reset` | the connection closes, no response | |
//! | `cut-stream`, `cut-stream-<n>` | not streamed: 201 whose JSON body stops half-way (full `content-length`), then the connection fails; streamed (`"stream": true`): answered as `ok` | the stream URL of a streamed create sends `n` words (2 for `cut-stream`), then the connection fails |
//! | `stream-error` | 201 `failed` in sync mode (`starting` without), `error` [`SERVER_ERROR_MESSAGE`] | the stream URL sends one `output`, `event: error` `{"detail":…}`, `event: done` `{"reason":"error"}` |
//! | `no-credit` | 402 "Insufficient credit" | |
//! | `forbidden` | 403 "You do not have permission to perform this action." | |
//! | `content-filter` | 201 `failed`, `error` [`CONTENT_FILTER_ERROR`] (Replicate's E005) | |
//! | `flaky-<status>-<n>` | the first `n` creates for this model (`owner/name`, or the `version` string) answer as `error-500` (500 and any unknown status), `unavailable-503` or `rate-limit` (429); later ones as `ok` | |
//! | `slow-first-<ms>` | not streamed: as `slow-<ms>`; streamed: answered at once | the stream URL of a streamed create sends its headers at once and the first event after `<ms>` |
//! | `stall-<n>` | not streamed: 201 with half its JSON body, then silence for up to 60 s, then the connection fails; streamed: answered as `ok` | the stream URL of a streamed create sends `n` words, then silence for up to 60 s, then the connection fails |
//! | `malformed-<n>` | 201 `application/json` whose body is the prediction cut in half (`content-length` of what is sent) | |
//!
//! Sync mode is `Prefer: wait` or `Prefer: wait=N`. Without it every prediction (failed ones too)
//! comes back `starting` and finishes on its first poll (or when its stream URL is read), like a
//! fast model on the real API; a client that streams creates without it (`"stream": true`) and
//! reads `urls.stream`.
//!
//! [`MockUpstream::prediction_polls`] and [`MockUpstream::stream_reads`] list the polls and
//! stream reads a client made, with their arrival times.
//!
//! Routes under `/v1`: `POST /models/{owner}/{name}/predictions`, `POST /predictions`,
//! `GET /predictions` (list), `GET /predictions/{id}`, `POST /predictions/{id}/cancel`,
//! `GET /stream/{id}` (stands in for `https://stream.replicate.com/v1/files/…`), `GET /models`,
//! `GET /models/{owner}/{name}`. Anything else is a 404 problem-details body. A body that is
//! not JSON, or has no `input.prompt`, is a 422 "Input validation failed".
//!
//! `urls.get`, `urls.cancel` and `urls.stream` are absolute URLs on the origin the request came
//! to (its `Host`), so a client following them reaches this mock with the same credential.
//!
//! Usage lives in `metrics` (the only place Replicate reports it): `input_token_count` is
//! `8 + chars(prompt + system_prompt) / 4`, `output_token_count` the whitespace-separated words
//! of the answer. The timings are a pretend 50 tokens/s model, plus real wall-clock queueing in
//! `total_time`.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde_json::{Value, json};

use super::wire::split_words;
use super::{
    BAD_REQUEST_MESSAGE, Behaviour, Body, FAULT_PAUSE, Flavor, OVERLOADED_MESSAGE,
    RETRY_AFTER_SECONDS, RecordedRequest, Reset, SERVER_ERROR_MESSAGE, STALL_HOLD, State, Step,
    json_response, raw_json_response, streamed,
};

/// The `error` of the `context-length` model's failed prediction: a model runtime's wording,
/// ending in the phrase the plugin (and the SDK) read as context length.
pub const CONTEXT_LENGTH_ERROR: &str = "Prompt length (9000) exceeds maximum input length \
     (8192). This model's maximum context length is 8192 tokens.";

/// The `error` of the `content-filter` model's failed prediction: Replicate's moderation error.
pub const CONTENT_FILTER_ERROR: &str = "The input or output was flagged as sensitive. Please try \
     again with different inputs. (E005)";

/// The 402 detail of the `no-credit` model, Replicate's own words.
const NO_CREDIT_DETAIL: &str = "You have insufficient credit to run this model. Go to \
     https://replicate.com/account/billing#billing to purchase credit. Once you purchase credit, \
     please wait a few minutes before retrying.";

/// How long sync mode holds a create for a `runs-<ms>` job. Replicate's window is 60 s; the
/// mock's is short so a test sees a prediction outlive it without waiting a minute.
pub const SYNC_WINDOW: Duration = Duration::from_secs(1);

/// What a create was scripted to do: the shared [`Behaviour`], plus Replicate's own
/// `runs-<ms>` (a job that ends `<ms>` after its creation, on the wall clock).
#[derive(Clone, Copy, Debug)]
struct Script {
    behaviour: Behaviour,
    runs_for: Option<Duration>,
}

impl Script {
    /// The script of model `name` (`runs-20000`, `ok`, …) whose shared behaviour is `behaviour`.
    fn new(behaviour: Behaviour, name: &str) -> Script {
        let runs_for = name
            .strip_prefix("runs-")
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis);
        Script {
            behaviour,
            runs_for,
        }
    }
}

/// The model `POST /predictions` reports: a version id does not say which model it belongs to.
const VERSIONED_MODEL: &str = "mock/versioned-model";

/// The most jobs kept. Sync-mode predictions are finished when created but stay readable; a
/// benchmark creating millions must not grow the mock without bound, so the oldest go first.
const MAX_JOBS: usize = 10_000;

/// The pretend model's speed, which the `metrics` timings are computed from.
const TOKENS_PER_SECOND: f64 = 50.0;
const TIME_TO_FIRST_TOKEN: f64 = 0.05;

/// The models `GET /models` lists: the plugin's known models and the mock's own.
const LISTED_MODELS: [&str; 5] = [
    "mock/ok",
    "meta/meta-llama-3-8b-instruct",
    "meta/meta-llama-3-70b-instruct",
    "meta/meta-llama-3.1-405b-instruct",
    "mistralai/mixtral-8x7b-instruct-v0.1",
];

/// The prediction jobs the mock is running, by id.
#[derive(Default)]
pub(super) struct Predictions {
    jobs: Mutex<Jobs>,
}

#[derive(Default)]
struct Jobs {
    by_id: HashMap<String, Job>,
    /// Ids in creation order, for eviction and the list endpoint.
    order: VecDeque<String>,
}

impl Predictions {
    /// Runs `f` on the jobs. A test that panicked while holding the lock poisons it; the jobs
    /// are still consistent (every update is a single assignment), so go on with them.
    fn with<R>(&self, f: impl FnOnce(&mut Jobs) -> R) -> R {
        match self.jobs.lock() {
            Ok(mut jobs) => f(&mut jobs),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Stores a new job under a fresh id and returns that id.
    fn insert(&self, mut job: Job) -> String {
        self.with(|jobs| {
            while jobs.by_id.contains_key(&job.id) {
                job.id = prediction_id();
            }
            let id = job.id.clone();
            while jobs.order.len() >= MAX_JOBS {
                if let Some(oldest) = jobs.order.pop_front() {
                    jobs.by_id.remove(&oldest);
                }
            }
            jobs.order.push_back(id.clone());
            jobs.by_id.insert(id.clone(), job);
            id
        })
    }
}

/// Where a prediction is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    Processing,
    Finished,
    Canceled,
}

/// How a prediction ends when it runs to completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed(&'static str),
}

/// One prediction: what it was asked, how it will end, and how far it has got.
#[derive(Clone, Debug)]
struct Job {
    id: String,
    model: String,
    version: String,
    input: Value,
    behaviour: Behaviour,
    outcome: Outcome,
    /// The answer in output pieces: `"mock"`, `" reply"`, `" to:"`, …
    pieces: Vec<String>,
    input_tokens: u64,
    output_tokens: u64,
    phase: Phase,
    /// Polls still needed before the prediction finishes.
    polls_left: usize,
    /// Polls seen while it was running; a `processing` prediction shows this many pieces.
    polls_seen: usize,
    /// `runs-<ms>`: the job ends this long after its creation, however often it is polled.
    runs_for: Option<Duration>,
    /// Whether the create asked for a stream (`"stream": true`).
    streamed: bool,
    created: SystemTime,
    started: Option<SystemTime>,
    completed: Option<SystemTime>,
}

impl Job {
    /// A poll: one step closer to the end while running, the same answer once it has ended.
    fn poll(&mut self) {
        if !matches!(self.phase, Phase::Starting | Phase::Processing) {
            return;
        }
        if let Some(runs_for) = self.runs_for {
            let now = SystemTime::now();
            self.started.get_or_insert(self.created);
            self.polls_seen += 1;
            if self.elapsed(now) >= runs_for {
                self.phase = Phase::Finished;
                self.completed = Some(self.created + runs_for);
            } else {
                self.phase = Phase::Processing;
            }
            return;
        }
        self.polls_seen += 1;
        self.polls_left = self.polls_left.saturating_sub(1);
        let now = SystemTime::now();
        self.started.get_or_insert(now);
        if self.polls_left == 0 {
            self.phase = Phase::Finished;
            self.completed = Some(now);
        } else {
            self.phase = Phase::Processing;
        }
    }

    /// Runs the job to its end at once (sync mode, or a stream read to `done`).
    fn finish(&mut self) {
        if matches!(self.phase, Phase::Starting | Phase::Processing) {
            let now = SystemTime::now();
            self.started.get_or_insert(now);
            self.completed = Some(now);
            self.polls_left = 0;
            self.phase = Phase::Finished;
        }
    }

    fn cancel(&mut self) {
        if matches!(self.phase, Phase::Starting | Phase::Processing) {
            self.phase = Phase::Canceled;
            self.completed = Some(SystemTime::now());
        }
    }

    fn elapsed(&self, now: SystemTime) -> Duration {
        now.duration_since(self.created).unwrap_or(Duration::ZERO)
    }

    /// How many pieces a `runs-<ms>` job has written `elapsed` into its run: piece `i` of `n`
    /// comes at `(i + 1) / (n + 1)` of the run, so the last one comes before the end.
    fn pieces_by(&self, runs_for: Duration, elapsed: Duration) -> usize {
        let n = self.pieces.len();
        if runs_for.is_zero() {
            return n;
        }
        let fraction = elapsed.as_secs_f64() / runs_for.as_secs_f64();
        ((fraction * (n + 1) as f64).floor() as usize).min(n)
    }

    /// The pieces written so far.
    fn partial_pieces(&self) -> &[String] {
        let written = match self.runs_for {
            Some(runs_for) => self.pieces_by(runs_for, self.elapsed(SystemTime::now())),
            None => self.polls_seen,
        };
        match self.outcome {
            Outcome::Succeeded => &self.pieces[..written.min(self.pieces.len())],
            // A rejected prompt never produced anything.
            Outcome::Failed(_) => &[],
        }
    }

    /// The prediction object as `docs/wire-formats.md` (Replicate) describes it, with URLs on
    /// `origin`.
    fn render(&self, origin: &str) -> Value {
        let id = &self.id;
        let (status, output, error) = match (self.phase, self.outcome) {
            (Phase::Starting, _) => ("starting", Value::Null, Value::Null),
            (Phase::Processing, _) => ("processing", json!(self.partial_pieces()), Value::Null),
            (Phase::Canceled, _) => ("canceled", json!(self.partial_pieces()), Value::Null),
            (Phase::Finished, Outcome::Succeeded) => ("succeeded", json!(self.pieces), Value::Null),
            (Phase::Finished, Outcome::Failed(error)) => ("failed", Value::Null, json!(error)),
        };
        let mut prediction = json!({
            "id": id,
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "logs": "",
            "output": output,
            "data_removed": false,
            "error": error,
            "status": status,
            "created_at": iso8601(self.created),
            "urls": {
                "get": format!("{origin}/v1/predictions/{id}"),
                "cancel": format!("{origin}/v1/predictions/{id}/cancel"),
                "stream": format!("{origin}/v1/stream/{id}"),
                "web": format!("https://replicate.com/p/{id}"),
            },
        });
        // A starting prediction has neither started nor finished: the real API leaves the
        // times out rather than sending nulls.
        if let Some(started) = self.started {
            prediction["started_at"] = json!(iso8601(started));
        }
        if let Some(completed) = self.completed {
            prediction["completed_at"] = json!(iso8601(completed));
            prediction["metrics"] = self.metrics(completed);
        }
        prediction
    }

    /// `metrics` of an ended prediction; token counts only when the model ran to the end.
    fn metrics(&self, completed: SystemTime) -> Value {
        let queued = completed
            .duration_since(self.created)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        if self.phase != Phase::Finished || self.outcome != Outcome::Succeeded {
            let predict_time = round3(TIME_TO_FIRST_TOKEN);
            return json!({"predict_time": predict_time, "total_time": round3(predict_time + queued)});
        }
        let predict_time =
            round3(TIME_TO_FIRST_TOKEN + self.output_tokens as f64 / TOKENS_PER_SECOND);
        json!({
            "predict_time": predict_time,
            "total_time": round3(predict_time + queued),
            "input_token_count": self.input_tokens,
            "output_token_count": self.output_tokens,
            "time_to_first_token": TIME_TO_FIRST_TOKEN,
            "tokens_per_second": TOKENS_PER_SECOND,
        })
    }
}

impl super::MockUpstream {
    /// Replicate: the polls (`GET …/predictions/{id}`) seen so far, in arrival order, so a test
    /// can check how often a client polled (each has its arrival time, `at`).
    pub fn prediction_polls(&self) -> Vec<RecordedRequest> {
        self.requests_to(|method, route| method == "GET" && route.starts_with("/predictions/"))
    }

    /// Replicate: the reads of a stream URL (`GET …/stream/{id}`) seen so far, in arrival order.
    pub fn stream_reads(&self) -> Vec<RecordedRequest> {
        self.requests_to(|method, route| method == "GET" && route.starts_with("/stream/"))
    }

    fn requests_to(&self, wanted: impl Fn(&str, &str) -> bool) -> Vec<RecordedRequest> {
        let base = Flavor::Replicate.base_path();
        let mut requests = self.requests();
        requests.retain(|request| {
            request
                .path
                .strip_prefix(base)
                .is_some_and(|route| wanted(&request.method, route))
        });
        requests
    }
}

pub(super) async fn handle(
    state: &State,
    parts: &Parts,
    body: Option<Value>,
) -> Result<Response<Body>, Reset> {
    let path = parts.uri.path();
    let route = path
        .strip_prefix(Flavor::Replicate.base_path())
        .unwrap_or("");
    let segments: Vec<&str> = route.split('/').skip(1).collect();
    let origin = origin(parts);
    let predictions = &state.predictions;
    match (&parts.method, segments.as_slice()) {
        (&Method::POST, ["models", owner, name, "predictions"]) => {
            let model = format!("{owner}/{name}");
            let version = official_version(&model);
            let behaviour = state.behaviour_counted_as(&model, name);
            let script = Script::new(behaviour, name);
            create(predictions, parts, body, model, version, script).await
        }
        (&Method::POST, ["predictions"]) => {
            let Some(version) = body
                .as_ref()
                .and_then(|b| b.get("version"))
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                return Ok(invalid_input(
                    "- version: version is required",
                    "version",
                    "version is required",
                ));
            };
            let behaviour = state.behaviour(&version);
            let script = Script::new(behaviour, &version);
            let model = VERSIONED_MODEL.to_owned();
            create(predictions, parts, body, model, version, script).await
        }
        (&Method::GET, ["predictions"]) => {
            let results = predictions.with(|jobs| {
                jobs.order
                    .iter()
                    .rev()
                    .filter_map(|id| jobs.by_id.get(id))
                    .map(|job| job.render(&origin))
                    .collect::<Vec<_>>()
            });
            Ok(ok_json(
                StatusCode::OK,
                &json!({"next": null, "previous": null, "results": results}),
            ))
        }
        (&Method::GET, ["predictions", id]) => Ok(with_job(predictions, id, &origin, Job::poll)),
        (&Method::POST, ["predictions", id, "cancel"]) => {
            Ok(with_job(predictions, id, &origin, Job::cancel))
        }
        (&Method::GET, ["stream", id]) => {
            let job = predictions.with(|jobs| {
                let job = jobs.by_id.get_mut(*id)?;
                // Reading the stream to its end means waiting for the prediction to end; a
                // `runs-<ms>` job ends on its own clock, as the stream's pacing shows.
                if job.runs_for.is_none() {
                    job.finish();
                }
                Some(job.clone())
            });
            Ok(match job {
                Some(job) => stream(&job),
                None => not_found(path),
            })
        }
        (&Method::GET, ["models"]) => {
            let results: Vec<Value> = LISTED_MODELS.iter().map(|m| model_object(m)).collect();
            Ok(ok_json(
                StatusCode::OK,
                &json!({"next": null, "previous": null, "results": results}),
            ))
        }
        (&Method::GET, ["models", owner, name]) => Ok(ok_json(
            StatusCode::OK,
            &model_object(&format!("{owner}/{name}")),
        )),
        _ => Ok(not_found(path)),
    }
}

pub(super) fn unauthorized(_missing: bool) -> Response<Body> {
    // Replicate answers a missing and a wrong token alike.
    problem(
        StatusCode::UNAUTHORIZED,
        &json!({"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}),
    )
}

/// A create request: the behaviour's error, or a new prediction job.
async fn create(
    predictions: &Predictions,
    parts: &Parts,
    body: Option<Value>,
    model: String,
    version: String,
    script: Script,
) -> Result<Response<Body>, Reset> {
    let Script {
        behaviour,
        runs_for,
    } = script;
    let created = SystemTime::now();
    // Replicate streams over `urls.stream`: a create that asks for a stream answers normally,
    // and the stream-shaped faults (`cut-stream`, `stall`, `slow-first`) happen on the stream.
    let streamed = body
        .as_ref()
        .and_then(|b| b.get("stream"))
        .and_then(Value::as_bool)
        == Some(true);
    let Some(input) = body
        .as_ref()
        .and_then(|b| b.get("input"))
        .filter(|input| input.is_object())
    else {
        return Ok(prompt_required());
    };
    let Some(prompt) = input.get("prompt").and_then(Value::as_str) else {
        return Ok(prompt_required());
    };
    let system_prompt = input
        .get("system_prompt")
        .and_then(Value::as_str)
        .unwrap_or("");

    let outcome = match behaviour {
        Behaviour::RateLimit { retry_after } => return Ok(rate_limited(retry_after)),
        // The OpenAI dialects' 200 carrying an error: Replicate answers errors with their status.
        Behaviour::ServerError | Behaviour::ErrorIn200 | Behaviour::EchoError => {
            return Ok(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"title": "Internal Server Error", "detail": SERVER_ERROR_MESSAGE, "status": 500}),
            ));
        }
        Behaviour::Unavailable | Behaviour::Capacity => {
            return Ok(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"title": "Service Unavailable", "detail": OVERLOADED_MESSAGE, "status": 503}),
            ));
        }
        Behaviour::BadRequest => {
            return Ok(invalid_input(
                &format!("- input.temperature: {BAD_REQUEST_MESSAGE}"),
                "input.temperature",
                BAD_REQUEST_MESSAGE,
            ));
        }
        Behaviour::NoCredit => {
            return Ok(problem(
                StatusCode::PAYMENT_REQUIRED,
                &json!({"title": "Insufficient credit", "detail": NO_CREDIT_DETAIL, "status": 402}),
            ));
        }
        Behaviour::Forbidden => {
            return Ok(problem(
                StatusCode::FORBIDDEN,
                &json!({"title": "Forbidden", "detail": "You do not have permission to perform this action.", "status": 403}),
            ));
        }
        Behaviour::Reset => return Err(Reset),
        // The create is the answer's first byte here; a streamed `slow-first` is slow on its
        // stream instead.
        Behaviour::SlowFirst(_) if streamed => Outcome::Succeeded,
        Behaviour::Slow(delay) | Behaviour::SlowFirst(delay) | Behaviour::Paced(delay) => {
            tokio::time::sleep(delay).await;
            Outcome::Succeeded
        }
        Behaviour::ContextLength => Outcome::Failed(CONTEXT_LENGTH_ERROR),
        Behaviour::StreamError => Outcome::Failed(SERVER_ERROR_MESSAGE),
        Behaviour::ContentFilter => Outcome::Failed(CONTENT_FILTER_ERROR),
        Behaviour::Ok
        | Behaviour::NoDone
        | Behaviour::ToolCall { .. }
        | Behaviour::CutStream { .. }
        | Behaviour::Stall { .. }
        | Behaviour::Malformed { .. }
        | Behaviour::Processing { .. }
        // Resolved into an error or `Ok` by `State::behaviour` before it gets here.
        | Behaviour::Flaky { .. } => Outcome::Succeeded,
    };

    let answer = format!("mock reply to: {}", last_user_text(prompt));
    let chars = prompt.chars().count() + system_prompt.chars().count();
    let mut job = Job {
        id: prediction_id(),
        model,
        version,
        input: input.clone(),
        behaviour,
        outcome,
        pieces: split_words(&answer),
        input_tokens: 8 + chars as u64 / 4,
        output_tokens: answer.split_whitespace().count() as u64,
        phase: Phase::Starting,
        polls_left: 1,
        polls_seen: 0,
        runs_for,
        streamed,
        created,
        started: None,
        completed: None,
    };
    let wait = sync_wait(parts);
    match (behaviour, runs_for) {
        // A job on its own clock: sync mode holds the create for the mock's window at most,
        // then answers it as it is by then (`processing`, unless it was quick).
        (_, Some(runs_for)) => {
            if let Some(wait) = wait {
                tokio::time::sleep(wait.min(runs_for)).await;
                job.poll();
            }
        }
        // The sync window "ran out": the client has to poll, `processing-0` included.
        (Behaviour::Processing { polls }, None) => job.polls_left = polls.max(1),
        _ if wait.is_some() => job.finish(),
        _ => {}
    }
    let origin = origin(parts);
    let prediction = job.render(&origin);
    predictions.insert(job);

    match behaviour {
        Behaviour::CutStream { .. } | Behaviour::Stall { .. } if streamed => {
            Ok(ok_json(StatusCode::CREATED, &prediction))
        }
        Behaviour::CutStream { .. } => Ok(cut_short(&prediction, FAULT_PAUSE)),
        Behaviour::Stall { .. } => Ok(cut_short(&prediction, STALL_HOLD)),
        Behaviour::Malformed { .. } => {
            let full = Bytes::from(prediction.to_string());
            let half = full.slice(..full.len() / 2);
            Ok(raw_json_response(
                Flavor::Replicate,
                StatusCode::CREATED,
                half,
            ))
        }
        _ => Ok(ok_json(StatusCode::CREATED, &prediction)),
    }
}

/// Polls, cancels or reads a job by id, answering its prediction (or the 404 of an unknown id).
fn with_job(
    predictions: &Predictions,
    id: &str,
    origin: &str,
    update: impl FnOnce(&mut Job),
) -> Response<Body> {
    let prediction = predictions.with(|jobs| {
        let job = jobs.by_id.get_mut(id)?;
        update(job);
        Some(job.render(origin))
    });
    match prediction {
        Some(prediction) => ok_json(StatusCode::OK, &prediction),
        None => problem(
            StatusCode::NOT_FOUND,
            &json!({"title": "Not found", "detail": "The requested resource could not be found.", "status": 404}),
        ),
    }
}

/// `GET urls.stream`: the answer as `event: output` pieces, then `event: done`. A `runs-<ms>`
/// job streams its pieces over its run (piece `i` of `n` at `(i + 1) / (n + 1)` of it) and
/// `done` at its end; a streamed create's `cut-stream-<n>` / `stall-<n>` send `n` pieces, then
/// cut the connection after a moment / go silent for [`STALL_HOLD`] first; a streamed
/// `slow-first-<ms>` sends the headers at once and the first event after `<ms>`.
fn stream(job: &Job) -> Response<Body> {
    let mut events = Events::new(job);
    match (job.phase, job.outcome) {
        (Phase::Canceled, _) => {
            for piece in job.partial_pieces() {
                events.event("output", piece);
            }
            events.event("done", r#"{"reason":"canceled"}"#);
        }
        _ if job.behaviour == Behaviour::StreamError => {
            if let Some(first) = job.pieces.first() {
                events.event("output", first);
            }
            events.pause(FAULT_PAUSE);
            events.event(
                "error",
                &json!({"detail": SERVER_ERROR_MESSAGE}).to_string(),
            );
            events.event("done", r#"{"reason":"error"}"#);
        }
        (_, Outcome::Failed(error)) => {
            events.event("error", &json!({"detail": error}).to_string());
            events.event("done", r#"{"reason":"error"}"#);
        }
        (_, Outcome::Succeeded) => match (job.runs_for, job.behaviour) {
            (Some(runs_for), _) => {
                let mut at = job.elapsed(SystemTime::now());
                let n = job.pieces.len() as u32;
                for (i, piece) in job.pieces.iter().enumerate() {
                    let due = runs_for * (i as u32 + 1) / (n + 1);
                    events.pause(due.saturating_sub(at));
                    at = at.max(due);
                    events.event("output", piece);
                }
                events.pause(runs_for.saturating_sub(at));
                events.event("done", "{}");
            }
            (None, Behaviour::CutStream { chunks } | Behaviour::Stall { chunks })
                if job.streamed =>
            {
                for piece in job.pieces.iter().take(chunks) {
                    events.event("output", piece);
                }
                let hold = if matches!(job.behaviour, Behaviour::Stall { .. }) {
                    STALL_HOLD
                } else {
                    FAULT_PAUSE
                };
                events.pause(hold);
                events.steps.push(Step::Fail);
            }
            (None, behaviour) => {
                if let Behaviour::SlowFirst(delay) = behaviour
                    && job.streamed
                {
                    events.pause(delay);
                }
                for piece in &job.pieces {
                    events.event("output", piece);
                }
                if behaviour != Behaviour::NoDone {
                    events.event("done", "{}");
                }
            }
        },
    }
    streamed(Flavor::Replicate, StatusCode::OK, events.finish())
}

/// The SSE body of a stream URL, as the steps of a scripted response: frames sent together
/// until a pause.
struct Events {
    /// Replicate's event ids are `<unix seconds of the prediction>:<sequence>`.
    epoch: u64,
    sequence: usize,
    pending: String,
    steps: Vec<Step>,
}

impl Events {
    fn new(job: &Job) -> Events {
        Events {
            epoch: job
                .created
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            sequence: 0,
            pending: String::new(),
            steps: Vec::new(),
        }
    }

    fn event(&mut self, name: &str, data: &str) {
        let frame = &mut self.pending;
        frame.push_str(&format!(
            "event: {name}\nid: {}:{}\n",
            self.epoch, self.sequence
        ));
        // A multi-line payload goes over several `data:` lines, re-joined with `\n` by clients.
        for line in data.split('\n') {
            frame.push_str("data: ");
            frame.push_str(line);
            frame.push('\n');
        }
        frame.push('\n');
        self.sequence += 1;
    }

    /// Sends what is pending, then waits (a zero pause sends only).
    fn pause(&mut self, delay: Duration) {
        self.flush();
        if !delay.is_zero() {
            self.steps.push(Step::Pause(delay));
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let frames = std::mem::take(&mut self.pending);
            self.steps.push(Step::Send(Bytes::from(frames)));
        }
    }

    fn finish(mut self) -> Vec<Step> {
        self.flush();
        self.steps
    }
}

/// A 201 whose prediction JSON stops half-way, stays silent for `hold` and then loses its
/// connection; the `content-length` promises the whole body, so the client sees a truncated
/// message. `cut-stream` holds just long enough for hyper to flush what was sent; `stall` is a
/// hung server.
fn cut_short(prediction: &Value, hold: Duration) -> Response<Body> {
    let full = Bytes::from(prediction.to_string());
    let half = full.slice(..full.len() / 2);
    let steps = vec![Step::Send(half), Step::Pause(hold), Step::Fail];
    let mut response = streamed(Flavor::Replicate, StatusCode::CREATED, steps);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
    headers.remove(header::CACHE_CONTROL);
    response
}

fn rate_limited(with_wait: bool) -> Response<Body> {
    // Replicate sends no `retry-after` (none is documented): the wait is only in the detail.
    let detail = if with_wait {
        format!("Request was throttled. Your rate limit resets in ~{RETRY_AFTER_SECONDS}s.")
    } else {
        "Request was throttled.".to_owned()
    };
    problem(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"detail": detail, "status": 429}),
    )
}

fn prompt_required() -> Response<Body> {
    invalid_input("- input: prompt is required", "input", "prompt is required")
}

/// A 422 "Input validation failed" with one invalid field.
fn invalid_input(detail: &str, field: &str, description: &str) -> Response<Body> {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "title": "Input validation failed",
            "detail": detail,
            "status": 422,
            "invalid_fields": [{"type": "required", "field": field, "description": description}],
        }),
    )
}

fn not_found(path: &str) -> Response<Body> {
    problem(
        StatusCode::NOT_FOUND,
        &json!({"title": "Not found", "detail": format!("The requested resource could not be found: {path}"), "status": 404}),
    )
}

fn ok_json(status: StatusCode, body: &Value) -> Response<Body> {
    json_response(Flavor::Replicate, status, body)
}

/// An error in problem-details form, with its own media type.
fn problem(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = json_response(Flavor::Replicate, status, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// A model object as `GET /models` lists it.
fn model_object(model: &str) -> Value {
    let (owner, name) = model.split_once('/').unwrap_or(("mock", model));
    json!({
        "url": format!("https://replicate.com/{model}"),
        "owner": owner,
        "name": name,
        "description": "A scriptable mock language model: its name picks its behaviour.",
        "visibility": "public",
        "github_url": null,
        "paper_url": null,
        "license_url": null,
        "run_count": 0,
        "cover_image_url": null,
        "default_example": null,
        "latest_version": {
            "id": official_version(model),
            "created_at": "2025-01-01T00:00:00.000000Z",
            "cog_version": "0.9.4",
            "openapi_schema": {"components": {"schemas": {"Input": {
                "type": "object",
                "required": ["prompt"],
                "properties": {
                    "prompt": {"type": "string"},
                    "system_prompt": {"type": "string"},
                    "max_tokens": {"type": "integer"},
                    "temperature": {"type": "number"},
                },
            }}}},
        },
    })
}

/// Whether the request asks for sync mode: `Prefer: wait` or `Prefer: wait=N`.
/// How long the request asks sync mode to hold a create: `Prefer: wait` is the mock's
/// [`SYNC_WINDOW`], `Prefer: wait=N` N seconds if that is shorter; `None` without sync mode.
fn sync_wait(parts: &Parts) -> Option<Duration> {
    parts
        .headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split([',', ';']))
        .map(str::trim)
        .find_map(|preference| {
            if preference.eq_ignore_ascii_case("wait") {
                return Some(SYNC_WINDOW);
            }
            let seconds = preference
                .get(..5)
                .filter(|key| key.eq_ignore_ascii_case("wait="))
                .and_then(|_| preference[5..].trim().parse::<u64>().ok())?;
            Some(Duration::from_secs(seconds).min(SYNC_WINDOW))
        })
}

/// `http://<host>` of the request, so the URLs a prediction carries lead back to this mock.
fn origin(parts: &Parts) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("http://{host}")
}

/// The user text the answer quotes: the prompt itself, or — when the plugin rendered a
/// conversation as `User: …` / `Assistant: …` blocks separated by blank lines — the last
/// `User:` block.
fn last_user_text(prompt: &str) -> &str {
    const USER: &str = "User: ";
    if !prompt.starts_with(USER) && !prompt.starts_with("Assistant: ") {
        return prompt;
    }
    let start = match prompt.rfind("\n\nUser: ") {
        Some(at) => at + 2 + USER.len(),
        None if prompt.starts_with(USER) => USER.len(),
        None => return prompt,
    };
    let rest = &prompt[start..];
    match rest.find("\n\nAssistant: ") {
        Some(end) => &rest[..end],
        None => rest,
    }
}

/// A fresh 26-character lowercase id like Replicate's (`ufawqhfynnddngldkgtslldrkq`).
fn prediction_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut seed = nanos ^ n.rotate_left(40);
    let mut bits = 0;
    let mut id = String::with_capacity(26);
    for i in 0..26 {
        // 12 characters of 5 bits per 64-bit draw.
        if i % 12 == 0 {
            seed = splitmix64(seed);
            bits = seed;
        }
        id.push(char::from(ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    id
}

fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `version` an official model's predictions report (`dp-` and 32 hex digits), stable per
/// model name.
fn official_version(model: &str) -> String {
    let half = |salt: u8| {
        let mut hasher = DefaultHasher::new();
        (salt, model).hash(&mut hasher);
        hasher.finish()
    };
    format!("dp-{:016x}{:016x}", half(1), half(2))
}

/// `2025-01-01T00:00:01.000Z`.
fn iso8601(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The calendar date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_block_of_a_rendered_conversation_is_quoted() {
        assert_eq!(last_user_text("hello there"), "hello there");
        assert_eq!(
            last_user_text("User: hi\n\nAssistant: hello\n\nUser: how are you?"),
            "how are you?"
        );
        assert_eq!(
            last_user_text("User: first\n\nUser: second\n\nAssistant: prefill"),
            "second"
        );
        assert_eq!(last_user_text("Assistant: only me"), "Assistant: only me");
    }

    #[test]
    fn times_are_iso8601_utc_with_milliseconds() {
        let time = UNIX_EPOCH + Duration::from_millis(1_735_689_601_250);
        assert_eq!(iso8601(time), "2025-01-01T00:00:01.250Z");
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn ids_look_like_replicates() {
        let a = prediction_id();
        let b = prediction_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 26);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
