//! The Replicate provider plugin: OpenAI chat completions over Replicate's Predictions API
//! (`docs/wire-formats.md`, Replicate). Replicate is not OpenAI-shaped, so this implements
//! [`Provider`] directly.
//!
//! - encode: `POST {base}/models/{owner}/{name}/predictions` (or `POST {base}/predictions` with
//!   `version` for a model written `owner/name:version` or a bare 64-hex version id), with
//!   `Prefer: wait` (sync mode). The OpenAI messages become the model's `prompt` (the
//!   conversation as text, last turn last) and `system_prompt`; sampling parameters map to the
//!   Llama-style inputs. Tools, `n` > 1, `logprobs` and JSON response formats are rejected: the
//!   Predictions API has no equivalent.
//! - decode: a `succeeded` prediction becomes a `chat.completion` (output pieces joined, usage
//!   from `metrics`); a `starting`/`processing` one (sync mode returned before the model finished)
//!   becomes a follow of `GET urls.get` after the poll interval of [`poll`] (500 ms growing to
//!   2 s with the prediction's age), so the host polls until it ends or the attempt's deadline
//!   passes; `failed` / `canceled` / `aborted` become failures; non-2xx problem-details bodies
//!   are classified by status (402 "insufficient credit" is no-credit).
//! - streaming: see [`stream`]. A streamed request creates the prediction without `Prefer: wait`
//!   (the answer must not wait for the whole output); its JSON names `urls.stream`, which the
//!   decoder asks the host to follow, and the SSE there becomes the chunks. The stream host
//!   `https://stream.replicate.com` is in the descriptor's `origins`, so it gets the credential.

use aigw_plugin_sdk::failure::{UpstreamError, classify, is_context_length};
use aigw_plugin_sdk::openai::{is_stream, join_url, parse_request};
use aigw_plugin_sdk::{
    Completion, CredentialPlacement, Descriptor, Failure, Follow, Header, HttpRequest,
    HttpResponse, Provider, ResponseHead, Step, Target, Usage,
};
use serde_json::{Map, Value, json};

mod poll;
mod stream;

pub use stream::PredictionStream;

pub struct Replicate;

/// Where Replicate serves `urls.stream`.
pub const STREAM_ORIGIN: &str = "https://stream.replicate.com";

aigw_plugin_sdk::export_provider!(Replicate);

impl Provider for Replicate {
    type StreamDecoder = PredictionStream;

    fn describe() -> Descriptor {
        Descriptor {
            name: "replicate".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            default_base_url: "https://api.replicate.com/v1".to_owned(),
            // `urls.stream` of every prediction points there.
            origins: vec![STREAM_ORIGIN.to_owned()],
            credential: CredentialPlacement::bearer(),
            credential_required: true,
            models: [
                "meta/meta-llama-3-8b-instruct",
                "meta/meta-llama-3-70b-instruct",
                "meta/meta-llama-3.1-405b-instruct",
                "mistralai/mixtral-8x7b-instruct-v0.1",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    fn encode(target: &Target, request_json: &str) -> Result<HttpRequest, Failure> {
        let request = parse_request(request_json)?;
        let input = build_input(&request)?;
        let mut body = Map::new();
        let url = match model_route(&target.model)? {
            ModelRoute::Official(path) => {
                join_url(&target.base_url, &format!("{path}/predictions"))
            }
            ModelRoute::Version(version) => {
                body.insert("version".to_owned(), Value::String(version.to_owned()));
                join_url(&target.base_url, "predictions")
            }
        };
        body.insert("input".to_owned(), Value::Object(input));
        let mut headers = vec![
            Header::new("content-type", "application/json"),
            Header::new("accept", "application/json"),
        ];
        if is_stream(&request) {
            // The legacy flag; Replicate returns `urls.stream` either way. No sync mode: the
            // create must answer at once so the stream can start while the model runs.
            body.insert("stream".to_owned(), Value::Bool(true));
        } else {
            // Sync mode: hold the request open (up to 60 s) until the prediction finishes.
            headers.push(Header::new("prefer", "wait"));
        }
        let body = serde_json::to_vec(&Value::Object(body)).map_err(|error| {
            Failure::InvalidRequest(format!("the request could not be serialised: {error}"))
        })?;
        Ok(HttpRequest {
            method: "POST".to_owned(),
            url,
            headers,
            body,
        })
    }

    fn decode(target: &Target, response: HttpResponse) -> Result<Step, Failure> {
        if !(200..300).contains(&response.status) {
            return Err(classify(&response));
        }
        let prediction = Prediction::parse(&response.body)?;
        match prediction.status()? {
            Status::Succeeded => Ok(Step::Done(prediction.completion(target))),
            Status::Pending => Ok(Step::Follow(prediction.poll(target)?)),
            Status::Failed | Status::Canceled | Status::Aborted => Err(prediction.failure()),
        }
    }

    fn stream_decoder(target: Target, head: ResponseHead) -> PredictionStream {
        PredictionStream::new(target, &head)
    }
}

/// Where a model's predictions are created.
#[derive(Debug, PartialEq, Eq)]
enum ModelRoute<'a> {
    /// An official model, `owner/name`: `POST /models/owner/name/predictions`.
    Official(String),
    /// A specific version (`owner/name:version` or a bare version id): `POST /predictions`.
    Version(&'a str),
}

fn model_route(model: &str) -> Result<ModelRoute<'_>, Failure> {
    let valid_segment = |segment: &str| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
            && segment != "."
            && segment != ".."
    };
    let invalid = || {
        Failure::InvalidRequest(format!(
            "replicate model `{model}` is not `owner/name`, `owner/name:version` or a version id"
        ))
    };
    if let Some((name, version)) = model.split_once(':') {
        let mut parts = name.split('/');
        let ok = parts.next().is_some_and(valid_segment)
            && parts.next().is_some_and(valid_segment)
            && parts.next().is_none()
            && valid_segment(version);
        return if ok {
            Ok(ModelRoute::Version(version))
        } else {
            Err(invalid())
        };
    }
    if model.len() == 64 && model.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Ok(ModelRoute::Version(model));
    }
    let mut parts = model.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(owner), Some(name), None) if valid_segment(owner) && valid_segment(name) => {
            Ok(ModelRoute::Official(format!("models/{owner}/{name}")))
        }
        _ => Err(invalid()),
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::InvalidRequest(message.into())
}

fn is_set(value: Option<&Value>) -> bool {
    value.is_some_and(|value| !value.is_null())
}

/// The prediction `input` for an OpenAI request.
fn build_input(request: &Map<String, Value>) -> Result<Map<String, Value>, Failure> {
    if request
        .get("tools")
        .is_some_and(|tools| !tools.is_null() && tools.as_array().is_none_or(|t| !t.is_empty()))
        || request.get("functions").is_some_and(|f| !f.is_null())
    {
        return Err(invalid(
            "replicate does not support `tools`: its language models have no function calling",
        ));
    }
    if let Some(choice) = request.get("tool_choice").filter(|c| !c.is_null())
        && choice.as_str() != Some("none")
    {
        return Err(invalid(
            "replicate does not support `tool_choice`: its language models have no function calling",
        ));
    }
    if let Some(n) = request.get("n").filter(|n| !n.is_null())
        && n.as_u64() != Some(1)
    {
        return Err(invalid(format!(
            "replicate does not support `n` other than 1 (got {n})"
        )));
    }
    if request.get("logprobs").and_then(Value::as_bool) == Some(true)
        || is_set(request.get("top_logprobs"))
    {
        return Err(invalid("replicate does not support `logprobs`"));
    }
    if let Some(format) = request.get("response_format").filter(|f| !f.is_null())
        && format.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(invalid(
            "replicate does not support `response_format` other than `text`",
        ));
    }

    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("the request has no `messages` array"))?;
    let (prompt, system_prompt) = render_messages(messages)?;

    let mut input = Map::new();
    input.insert("prompt".to_owned(), Value::String(prompt));
    if let Some(system_prompt) = system_prompt {
        input.insert("system_prompt".to_owned(), Value::String(system_prompt));
    }
    let max_tokens = [
        request.get("max_completion_tokens"),
        request.get("max_tokens"),
    ]
    .into_iter()
    .flatten()
    .find(|value| !value.is_null());
    if let Some(max_tokens) = max_tokens {
        if max_tokens.as_u64().is_none() {
            return Err(invalid("`max_tokens` must be a non-negative integer"));
        }
        // Llama 3 and most current models call it `max_tokens`; older ones `max_new_tokens`.
        input.insert("max_tokens".to_owned(), max_tokens.clone());
        input.insert("max_new_tokens".to_owned(), max_tokens.clone());
    }
    for field in [
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
    ] {
        if let Some(value) = request.get(field).filter(|value| !value.is_null()) {
            if !value.is_number() {
                return Err(invalid(format!("`{field}` must be a number")));
            }
            input.insert(field.to_owned(), value.clone());
        }
    }
    if let Some(seed) = request.get("seed").filter(|seed| !seed.is_null()) {
        if seed.as_i64().is_none() {
            return Err(invalid("`seed` must be an integer"));
        }
        input.insert("seed".to_owned(), seed.clone());
    }
    match request.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(stop)) => {
            input.insert("stop_sequences".to_owned(), Value::String(stop.clone()));
        }
        Some(Value::Array(stops)) => {
            let stops = stops
                .iter()
                .map(|stop| {
                    stop.as_str()
                        .ok_or_else(|| invalid("`stop` must hold strings"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if !stops.is_empty() {
                input.insert("stop_sequences".to_owned(), Value::String(stops.join(",")));
            }
        }
        Some(_) => return Err(invalid("`stop` must be a string or an array of strings")),
    }
    Ok(input)
}

/// The conversation as `(prompt, system_prompt)`. A lone user turn is the prompt verbatim (the
/// model's own prompt template wraps it); a longer conversation is rendered turn by turn as
/// `User: …` / `Assistant: …` blocks, in order, so the last turn comes last.
fn render_messages(messages: &[Value]) -> Result<(String, Option<String>), Failure> {
    let mut system = Vec::new();
    let mut turns: Vec<(&str, String)> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("`messages[{index}]` has no `role`")))?;
        if is_set(message.get("tool_calls")) || is_set(message.get("function_call")) {
            return Err(invalid(
                "replicate does not support tool calls: its language models have no function calling",
            ));
        }
        let text = message_text(message.get("content"), index)?;
        match role {
            "system" | "developer" => system.push(text),
            "user" => turns.push(("User", text)),
            "assistant" => turns.push(("Assistant", text)),
            "tool" | "function" => {
                return Err(invalid(
                    "replicate does not support tool results: its language models have no function calling",
                ));
            }
            other => {
                return Err(invalid(format!(
                    "`messages[{index}]` has unsupported role `{other}`"
                )));
            }
        }
    }
    if turns.is_empty() {
        return Err(invalid(
            "the request needs at least one user or assistant message",
        ));
    }
    let prompt = match turns.as_slice() {
        [("User", text)] => text.clone(),
        _ => turns
            .iter()
            .map(|(speaker, text)| format!("{speaker}: {text}"))
            .collect::<Vec<_>>()
            .join("\n\n"),
    };
    let system = system
        .into_iter()
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>();
    Ok((prompt, (!system.is_empty()).then(|| system.join("\n\n"))))
}

/// A message's text: Replicate's LLMs take text only.
fn message_text(content: Option<&Value>, index: usize) -> Result<String, Failure> {
    aigw_plugin_sdk::openai::content_text(content, index, "replicate")
}

/// A prediction's status, grouped by what the plugin does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Succeeded,
    Failed,
    Canceled,
    Aborted,
}

/// A parsed prediction object.
struct Prediction(Map<String, Value>);

impl Prediction {
    fn parse(body: &[u8]) -> Result<Prediction, Failure> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => Ok(Prediction(object)),
            Ok(_) => Err(Failure::BadResponse(
                "the prediction is not a JSON object".to_owned(),
            )),
            Err(error) => Err(Failure::BadResponse(format!(
                "the prediction is not valid JSON: {error}"
            ))),
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn id(&self) -> &str {
        self.str("id").unwrap_or("unknown")
    }

    fn status(&self) -> Result<Status, Failure> {
        match self.str("status") {
            Some("starting" | "processing") => Ok(Status::Pending),
            Some("succeeded") => Ok(Status::Succeeded),
            Some("failed") => Ok(Status::Failed),
            Some("canceled") => Ok(Status::Canceled),
            Some("aborted") => Ok(Status::Aborted),
            Some(other) => Err(Failure::BadResponse(format!(
                "prediction {} has unknown status `{other}`",
                self.id()
            ))),
            None => {
                // A 2xx that is not a prediction: maybe an error body.
                let error = UpstreamError::from_value(&Value::Object(self.0.clone()));
                Err(Failure::BadResponse(match error.message {
                    Some(message) => format!("replicate answered without a prediction: {message}"),
                    None => "replicate answered without a prediction `status`".to_owned(),
                }))
            }
        }
    }

    /// The output as text: LLMs stream an array of string pieces (joined); other models may
    /// answer a string, or values of their own schema (kept as JSON text).
    fn output_pieces(&self) -> Vec<String> {
        match self.0.get("output") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(text)) => vec![text.clone()],
            Some(Value::Array(pieces)) => pieces
                .iter()
                .filter(|piece| !piece.is_null())
                .map(|piece| match piece {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect(),
            Some(other) => vec![other.to_string()],
        }
    }

    fn usage(&self) -> Option<Usage> {
        let metrics = self.0.get("metrics")?;
        let count = |key: &str| metrics.get(key).and_then(Value::as_u64);
        Usage::from_counts(
            count("input_token_count"),
            count("output_token_count"),
            None,
        )
    }

    fn created(&self) -> u64 {
        self.str("created_at")
            .and_then(parse_rfc3339)
            .unwrap_or_else(now_seconds)
    }

    fn completion_id(&self) -> String {
        format!("chatcmpl-{}", self.id())
    }

    fn completion(&self, target: &Target) -> Completion {
        let usage = self.usage();
        let mut json = json!({
            "id": self.completion_id(),
            "object": "chat.completion",
            "created": self.created(),
            "model": target.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.output_pieces().concat()},
                "logprobs": null,
                "finish_reason": "stop",
            }],
        });
        if let (Some(usage), Value::Object(object)) = (usage, &mut json) {
            object.insert("usage".to_owned(), usage_json(usage));
        }
        Completion {
            json: aigw_plugin_sdk::json::text(&json),
            usage,
        }
    }

    /// `GET urls.get`, or `{base}/predictions/{id}` when the prediction carries no URL.
    fn poll_request(&self, target: &Target) -> Result<HttpRequest, Failure> {
        let url = match self
            .0
            .get("urls")
            .and_then(|urls| urls.get("get"))
            .and_then(Value::as_str)
        {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                url.to_owned()
            }
            _ => match self
                .str("id")
                .filter(|id| !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_alphanumeric()))
            {
                Some(id) => join_url(&target.base_url, &format!("predictions/{id}")),
                None => {
                    return Err(Failure::BadResponse(
                        "a pending prediction has neither `urls.get` nor an `id` to poll"
                            .to_owned(),
                    ));
                }
            },
        };
        Ok(HttpRequest {
            method: "GET".to_owned(),
            url,
            headers: vec![Header::new("accept", "application/json")],
            body: Vec::new(),
        })
    }

    /// The next poll of a pending prediction: `GET urls.get` after the interval its age calls
    /// for.
    fn poll(&self, target: &Target) -> Result<Follow, Failure> {
        let created_ms = self.str("created_at").and_then(parse_rfc3339_ms);
        let delay = poll::delay(created_ms, now_ms());
        Ok(Follow::after(self.poll_request(target)?, delay))
    }

    /// `GET urls.stream` as Replicate's streaming docs ask for it, when the prediction has a
    /// usable stream URL.
    fn stream_request(&self) -> Option<HttpRequest> {
        let url = self
            .0
            .get("urls")
            .and_then(|urls| urls.get("stream"))
            .and_then(Value::as_str)
            .filter(|url| url.starts_with("https://") || url.starts_with("http://"))?;
        Some(HttpRequest {
            method: "GET".to_owned(),
            url: url.to_owned(),
            headers: vec![
                Header::new("accept", "text/event-stream"),
                Header::new("cache-control", "no-store"),
            ],
            body: Vec::new(),
        })
    }

    /// The failure for a `failed`, `canceled` or `aborted` prediction.
    fn failure(&self) -> Failure {
        let id = self.id();
        match self.str("status") {
            Some("canceled") => {
                Failure::Unavailable(format!("replicate prediction {id} was canceled"))
            }
            Some("aborted") => Failure::Unavailable(format!(
                "replicate prediction {id} was aborted before it started (deadline passed)"
            )),
            _ => {
                let error = match self.0.get("error") {
                    None | Some(Value::Null) => None,
                    Some(value) => UpstreamError::from_value(value).message,
                };
                prediction_error(id, error.as_deref())
            }
        }
    }
}

/// A failed prediction: context length or content filtered when the text says so, otherwise
/// unavailable (a model-runtime failure another target may not have).
fn prediction_error(id: &str, error: Option<&str>) -> Failure {
    let message = match error {
        Some(error) => format!("replicate prediction {id} failed: {error}"),
        None => format!("replicate prediction {id} failed"),
    };
    if error.is_some_and(is_context_length_text) {
        Failure::ContextLengthExceeded(message)
    } else if error.is_some_and(is_content_filter_text) {
        // A moderation refusal is not an outage: another target would refuse the same input.
        Failure::ContentFiltered(message)
    } else {
        Failure::Unavailable(message)
    }
}

/// Replicate's moderation failure (E005): "The input or output was flagged as sensitive. …".
fn is_content_filter_text(text: &str) -> bool {
    text.to_ascii_lowercase().contains("flagged as sensitive")
}

/// The SDK's context-length texts plus the wordings model runtimes on Replicate use (vLLM,
/// TGI, Cog LLM templates).
fn is_context_length_text(text: &str) -> bool {
    const TEXTS: [&str; 6] = [
        "context length",
        "context window",
        "prompt is too long",
        "maximum sequence length",
        "input is too long",
        // "exceeds the maximum input length" and TGI's "Prompt length (N) exceeds maximum
        // input length (M)".
        "maximum input length",
    ];
    let error = UpstreamError {
        message: Some(text.to_owned()),
        ..UpstreamError::default()
    };
    let lower = text.to_ascii_lowercase();
    is_context_length(&error) || TEXTS.iter().any(|needle| lower.contains(needle))
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

fn now_seconds() -> u64 {
    now_ms() / 1000
}

/// Seconds since the epoch of an RFC 3339 time (`2025-01-01T00:00:01.000Z`, `…+02:00`).
fn parse_rfc3339(text: &str) -> Option<u64> {
    parse_rfc3339_ms(text).map(|ms| ms / 1000)
}

/// Milliseconds since the epoch of an RFC 3339 time; fraction digits past milliseconds are
/// dropped.
fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !matches!(bytes.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|byte| byte.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Read a fraction (milliseconds), then the offset.
    let rest = text.get(19..)?;
    let (millis, rest) = match rest.strip_prefix('.') {
        Some(fraction) => {
            let digits = fraction
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(fraction.len());
            let millis = fraction[..digits]
                .bytes()
                .chain(std::iter::repeat(b'0'))
                .take(3)
                .fold(0_i64, |ms, digit| ms * 10 + i64::from(digit - b'0'));
            (millis, &fraction[digits..])
        }
        None => (0, rest),
    };
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(seconds * 1000 + millis).ok()
}

#[cfg(test)]
mod tests;
