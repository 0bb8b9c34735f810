//! The OpenAI chat-completions translator that OpenAI-compatible providers reuse.
//!
//! Such a provider only needs a [`Dialect`]: its descriptor plus whichever hooks differ from
//! OpenAI (request checks, error classification, where stream usage hides). [`Compatible`] turns
//! a dialect into a full [`Provider`].

use std::marker::PhantomData;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::failure::{classify, classify_error_value};
use crate::raw;
use crate::sse::{Event, SseParser};
use crate::types::{
    Chunk, Completion, Descriptor, Failure, Header, HttpRequest, HttpResponse, ResponseHead, Step,
    StreamEnd, Target, Usage,
};
use crate::{Provider, StreamDecoder};

/// What sets one OpenAI-compatible API apart from OpenAI. Every hook but `describe` defaults to
/// OpenAI's behaviour.
pub trait Dialect: 'static {
    fn describe() -> Descriptor;

    /// Checks and rewrites the request body, after `model` and `stream_options` are set. Reject
    /// what the provider would 400 on with a clear [`Failure::InvalidRequest`]; drop what it
    /// would 400 on but the client would not miss.
    fn adjust_request(_body: &mut Map<String, Value>) -> Result<(), Failure> {
        Ok(())
    }

    /// Classifies a non-2xx response.
    fn classify(response: &HttpResponse) -> Failure {
        classify(response)
    }

    /// Usage a streamed chunk carries somewhere other than an OpenAI `choices: []` usage chunk
    /// (Groq's `x_groq.usage` on the finish chunk). The decoder turns the last one seen into an
    /// OpenAI usage chunk at the end, unless the upstream sent a real usage chunk.
    fn stream_usage(_chunk: &Map<String, Value>) -> Option<&Value> {
        None
    }

    /// A mid-stream error frame in the provider's own shape (Cerebras' flat object, Novita's
    /// envelope, OpenRouter's numeric codes): the failure it reports, or `None` to let the
    /// decoder treat the frame as usual (including OpenAI's `{"error":…}` frames).
    fn stream_error(_frame: &Map<String, Value>) -> Option<Failure> {
        None
    }

    /// Whether the hooks above must see a plain content frame: one with non-empty `choices`,
    /// no `finish_reason`, and no (or a null) `usage` and `error`. Most frames of a stream are
    /// such frames, and the decoder passes them through as they came without building their
    /// JSON tree (the cost that grows with every chunk) and without calling `stream_error` or
    /// `stream_usage`. A dialect whose hooks read something such a frame can carry returns
    /// `true` for it (Groq: frames naming `x_groq`).
    fn hooks_see_content_frame(_data: &str) -> bool {
        false
    }

    /// Whether this dialect has stream hooks of its own (`stream_usage`, `stream_error`, or
    /// `hooks_see_content_frame`). `false` says it keeps OpenAI's defaults: the hooks are then
    /// never called, and the frames they would see (the finish frame, frames with usage) are
    /// read without building their JSON tree, their `usage` cut out of the text as it came.
    /// The default, `true`, is right for any dialect; `false` only saves work.
    const FRAME_HOOKS: bool = true;

    /// Whether `adjust_request` is this dialect's own. `false` says it is OpenAI's (it is then
    /// never called), and the request is pointed at the target's model, and a stream asked for
    /// usage, in its text as it came: no JSON tree built of it, nothing written again but those
    /// fields. The default, `true`, is right for any dialect; `false` only saves work.
    const REQUEST_HOOK: bool = true;
}

/// What the decoder needs to know of a frame to pass it through untouched: read without
/// building the frame's tree (the other fields are skipped, not kept).
#[derive(serde::Deserialize)]
struct Skim {
    #[serde(default)]
    choices: Option<SkimChoices>,
    #[serde(default)]
    usage: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

/// A frame's `choices`, counted as they are read instead of collected: every frame has them,
/// and a list per frame was an allocation per frame.
struct SkimChoices {
    count: usize,
    finished: bool,
}

#[derive(serde::Deserialize)]
struct SkimChoice {
    #[serde(default)]
    finish_reason: Option<serde::de::IgnoredAny>,
}

impl<'de> serde::Deserialize<'de> for SkimChoices {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Choices;
        impl<'de> serde::de::Visitor<'de> for Choices {
            type Value = SkimChoices;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SkimChoices, A::Error> {
                let mut choices = SkimChoices {
                    count: 0,
                    finished: false,
                };
                while let Some(choice) = seq.next_element::<SkimChoice>()? {
                    choices.count += 1;
                    choices.finished |= choice.finish_reason.is_some();
                }
                Ok(choices)
            }
        }
        deserializer.deserialize_seq(Choices)
    }
}

/// The parts of a frame the decoder reads when the dialect has no frame hooks
/// ([`Dialect::FRAME_HOOKS`]), borrowed from the frame's text: nothing is built, and the
/// frame is still checked to be valid JSON whole. A null is kept as the text `null`.
#[derive(serde::Deserialize)]
struct FrameParts<'a> {
    #[serde(default, borrow, deserialize_with = "raw::field")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "raw::field")]
    created: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "raw::field")]
    model: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "raw::field")]
    system_fingerprint: Option<&'a RawValue>,
    #[serde(default)]
    choices: Option<SkimChoices>,
    #[serde(default, borrow, deserialize_with = "raw::field")]
    usage: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "raw::field")]
    error: Option<&'a RawValue>,
}

impl<'a> FrameParts<'a> {
    /// `None` when the frame is not an object of this shape (not JSON, `choices` not a list of
    /// objects, a field twice): the full parse then says what it is.
    fn read(data: &'a str) -> Option<FrameParts<'a>> {
        if !raw::is_object(data) {
            return None;
        }
        serde_json::from_str(data).ok()
    }

    /// An OpenAI usage chunk for the stream this frame belongs to, written from the frame's own
    /// text: the same chunk [`usage_chunk`] makes from a parsed frame, key for key.
    fn usage_chunk(&self, raw_usage: &RawValue, usage: Usage) -> Chunk {
        let mut json = String::with_capacity(96 + raw_usage.get().len());
        json.push_str(r#"{"choices":[]"#);
        // The order of a parsed frame's keys (serde_json's map is sorted).
        for (key, value) in [
            ("created", self.created),
            ("id", self.id),
            ("model", self.model),
        ] {
            push_field(&mut json, key, value);
        }
        json.push_str(r#","object":"chat.completion.chunk""#);
        push_field(&mut json, "system_fingerprint", self.system_fingerprint);
        push_field(&mut json, "usage", Some(raw_usage));
        json.push('}');
        Chunk {
            json,
            usage: Some(usage),
        }
    }
}

fn push_field(json: &mut String, key: &str, value: Option<&RawValue>) {
    if let Some(value) = value {
        json.push_str(",\"");
        json.push_str(key);
        json.push_str("\":");
        json.push_str(value.get());
    }
}

/// The token counts of a `usage` value given as its text.
fn parse_raw_usage(raw: &RawValue) -> Option<Usage> {
    serde_json::from_str::<Value>(raw.get())
        .ok()
        .as_ref()
        .and_then(parse_usage)
}

impl Skim {
    /// A plain content frame (see [`Dialect::hooks_see_content_frame`]).
    fn is_plain_content(data: &str) -> bool {
        // `[[{}]]` would read as a frame with one choice.
        if !raw::is_object(data) {
            return false;
        }
        match serde_json::from_str::<Skim>(data) {
            Ok(skim) => {
                skim.usage.is_none()
                    && skim.error.is_none()
                    && skim
                        .choices
                        .is_some_and(|choices| choices.count > 0 && !choices.finished)
            }
            // Not an object of that shape: the full parse says what is wrong with it.
            Err(_) => false,
        }
    }
}

/// A [`Provider`] for an OpenAI-compatible API: `export_provider!(Compatible<MyDialect>);`.
pub struct Compatible<D>(PhantomData<D>);

impl<D: Dialect> Provider for Compatible<D> {
    type StreamDecoder = ChunkStream<D>;

    fn describe() -> Descriptor {
        D::describe()
    }

    fn encode(target: &Target, request_json: &str) -> Result<HttpRequest, Failure> {
        if !D::REQUEST_HOOK
            && let Some((body, stream)) = prepared_text(target, request_json)
        {
            return Ok(post_chat_completions(
                &target.base_url,
                body.into_bytes(),
                stream,
            ));
        }
        let mut body = parse_request(request_json)?;
        prepare_request(target, &mut body);
        D::adjust_request(&mut body)?;
        chat_completions_request(&target.base_url, &body)
    }

    fn decode(_target: &Target, response: HttpResponse) -> Result<Step, Failure> {
        if !(200..300).contains(&response.status) {
            return Err(D::classify(&response));
        }
        decode_completion(response.body).map(Step::Done)
    }

    fn stream_decoder(_target: Target, head: ResponseHead) -> ChunkStream<D> {
        ChunkStream::new(&head)
    }
}

/// Parses the client's request JSON, which must be an object.
pub fn parse_request(request_json: &str) -> Result<Map<String, Value>, Failure> {
    match serde_json::from_str::<Value>(request_json) {
        Ok(Value::Object(body)) => Ok(body),
        Ok(_) => Err(Failure::InvalidRequest(
            "the request body must be a JSON object".to_owned(),
        )),
        Err(error) => Err(Failure::InvalidRequest(format!(
            "the request body is not valid JSON: {error}"
        ))),
    }
}

/// Whether the client asked for a streamed answer.
pub fn is_stream(body: &Map<String, Value>) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

/// Points the request at the target's model and, for a stream, asks for the usage chunk (the host
/// accounts usage whether or not the client asked; it strips the chunk for clients that did not).
/// Everything else passes through untouched.
pub fn prepare_request(target: &Target, body: &mut Map<String, Value>) {
    body.insert("model".to_owned(), Value::String(target.model.clone()));
    if is_stream(body) {
        let options = body
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if !options.is_object() {
            *options = Value::Object(Map::new());
        }
        if let Value::Object(options) = options {
            options.insert("include_usage".to_owned(), Value::Bool(true));
        }
    }
}

/// The fields of a request that [`prepare_request`] reads or sets, as slices of its text.
#[derive(serde::Deserialize)]
struct RequestParts<'a> {
    #[serde(default, borrow, deserialize_with = "raw::field")]
    model: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "raw::field")]
    stream: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "raw::field")]
    stream_options: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct StreamOptionsParts<'a> {
    #[serde(default, borrow, deserialize_with = "raw::field")]
    include_usage: Option<&'a RawValue>,
}

/// What [`prepare_request`] does to the parsed request, done on its text: the request JSON for
/// `target`, and whether it asks for a stream. `None` when the text is not an object of that
/// shape (not JSON, a field twice): the full parse says what is wrong.
fn prepared_text(target: &Target, request_json: &str) -> Option<(String, bool)> {
    if !raw::is_object(request_json) {
        return None;
    }
    let parts: RequestParts<'_> = serde_json::from_str(request_json).ok()?;
    let stream = parts.stream.is_some_and(|stream| stream.get() == "true");
    let model = serde_json::to_string(&target.model).ok()?;
    let mut edits = Vec::with_capacity(2);
    // Fields the request lacks go first in the object, each followed by a comma.
    let mut added = String::new();
    match parts.model {
        Some(value) => edits.push((raw::span(request_json, value)?, model.as_str())),
        None => {
            added.push_str(r#""model":"#);
            added.push_str(&model);
            added.push(',');
        }
    }
    if stream {
        const ASK: &str = r#"{"include_usage":true}"#;
        match parts.stream_options {
            None => {
                added.push_str(r#""stream_options":"#);
                added.push_str(ASK);
                added.push(',');
            }
            Some(options) if raw::is_object(options.get()) => {
                let read: StreamOptionsParts<'_> = serde_json::from_str(options.get()).ok()?;
                match read.include_usage {
                    Some(value) => edits.push((raw::span(request_json, value)?, "true")),
                    None => {
                        let open = raw::span(request_json, options)?.start + 1;
                        let field = match raw::is_empty_object(options.get()) {
                            true => r#""include_usage":true"#,
                            false => r#""include_usage":true,"#,
                        };
                        edits.push((open..open, field));
                    }
                }
            }
            // `null`, or not an object: replaced, as the parsed path does.
            Some(options) => edits.push((raw::span(request_json, options)?, ASK)),
        }
    }
    if !added.is_empty() {
        // No comma before the closing brace of an object that had no fields.
        if raw::is_empty_object(request_json) {
            added.pop();
        }
        let open = request_json.find('{')? + 1;
        edits.push((open..open, added.as_str()));
    }
    Some((raw::edited(request_json, edits)?, stream))
}

/// `POST {base_url}/chat/completions` with the body as JSON.
pub fn chat_completions_request(
    base_url: &str,
    body: &Map<String, Value>,
) -> Result<HttpRequest, Failure> {
    let json = serde_json::to_vec(body).map_err(|error| {
        Failure::InvalidRequest(format!("the request could not be serialised: {error}"))
    })?;
    Ok(post_chat_completions(base_url, json, is_stream(body)))
}

fn post_chat_completions(base_url: &str, body: Vec<u8>, stream: bool) -> HttpRequest {
    let mut headers = vec![Header::new("content-type", "application/json")];
    if stream {
        headers.push(Header::new("accept", "text/event-stream"));
    }
    HttpRequest {
        method: "POST".to_owned(),
        url: join_url(base_url, "chat/completions"),
        headers,
        body,
    }
}

/// `base` and `path` with exactly one `/` between them.
pub fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// A 2xx non-streamed body: passed through verbatim when it is a completion, with its usage read.
/// An `{"error":…}` body on a 2xx is classified like a mid-stream error.
pub fn decode_completion(body: Vec<u8>) -> Result<Completion, Failure> {
    // Read only the three fields needed, without building a tree of the whole answer: this runs
    // on every non-streamed call and the tree was most of its cost.
    let probe: CompletionProbe = serde_json::from_slice(&body).map_err(|error| {
        Failure::BadResponse(format!(
            "the completion is not a valid JSON object: {error}"
        ))
    })?;
    if probe.error.is_some() {
        // Rare: classify from the full body.
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        return Err(classify_error_value(&value));
    }
    if probe.choices.is_none() {
        return Err(Failure::BadResponse(
            "the completion has no `choices` array".to_owned(),
        ));
    }
    let usage = probe.usage.and_then(UsageProbe::into_usage);
    let json = String::from_utf8(body)
        .map_err(|_| Failure::BadResponse("the completion is not UTF-8".to_owned()))?;
    Ok(Completion { json, usage })
}

#[derive(serde::Deserialize)]
struct CompletionProbe {
    /// Present and non-null on an error body (`null` deserialises to `None`).
    error: Option<serde::de::IgnoredAny>,
    choices: Option<Vec<serde::de::IgnoredAny>>,
    usage: Option<UsageProbe>,
}

#[derive(serde::Deserialize)]
struct UsageProbe {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

impl UsageProbe {
    /// Same rules as [`parse_usage`].
    fn into_usage(self) -> Option<Usage> {
        Usage::from_counts(
            self.prompt_tokens,
            self.completion_tokens,
            self.total_tokens,
        )
    }
}

/// The text of an OpenAI message's `content` (`index` in `messages`), for providers that take
/// text only: a string, or the `text` parts of an array joined; nothing when absent or null.
/// Any other part (`image_url`, `input_audio`, …) is refused, naming `provider`.
pub fn content_text(
    content: Option<&Value>,
    index: usize,
    provider: &str,
) -> Result<String, Failure> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    Some(other) => {
                        return Err(Failure::InvalidRequest(format!(
                            "{provider} does not support `{other}` content parts here \
                             (messages[{index}])"
                        )));
                    }
                    None => {
                        return Err(Failure::InvalidRequest(format!(
                            "`messages[{index}].content` has a part without `type`"
                        )));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(Failure::InvalidRequest(format!(
            "`messages[{index}].content` must be a string or an array of parts"
        ))),
    }
}

/// An OpenAI `usage` object; `None` when it is absent, null or has no token counts. A missing
/// total is the sum; counts beyond `u32` saturate.
pub fn parse_usage(value: &Value) -> Option<Usage> {
    let object = value.as_object()?;
    let count = |key: &str| object.get(key).and_then(Value::as_u64);
    Usage::from_counts(
        count("prompt_tokens"),
        count("completion_tokens"),
        count("total_tokens"),
    )
}

/// The most JSON buffered when a server answers a streamed request with a whole completion.
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// Decodes an OpenAI chat-completions SSE body into chunks.
///
/// Chunks pass through verbatim. `[DONE]` ends the stream; a frame with an `error` is a failure;
/// the `choices: []` chunk with `usage` is returned with `usage` set. A stream that ends without
/// `[DONE]` is still complete if a `finish_reason` was seen (Ollama and some servers omit it).
///
/// A server that ignores `stream: true` and answers a whole `application/json` completion (some
/// local servers and proxies do) is buffered and replayed as chunks at the end: one chunk per
/// choice with the whole message as its delta, then the usage chunk.
pub struct ChunkStream<D> {
    sse: SseParser,
    /// The buffered body when the response head said JSON.
    json: Option<Vec<u8>>,
    done: bool,
    finish_seen: bool,
    usage_chunk_seen: bool,
    /// Usage seen outside a usage chunk, as the OpenAI usage chunk to emit at the end.
    pending_usage: Option<Chunk>,
    dialect: PhantomData<D>,
}

impl<D: Dialect> Default for ChunkStream<D> {
    /// A decoder for an event stream.
    fn default() -> Self {
        ChunkStream {
            sse: SseParser::new(),
            json: None,
            done: false,
            finish_seen: false,
            usage_chunk_seen: false,
            pending_usage: None,
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> ChunkStream<D> {
    /// A decoder for the response with `head`: an event stream, or a whole completion when the
    /// head says JSON.
    pub fn new(head: &ResponseHead) -> Self {
        ChunkStream {
            json: head.is_json().then(Vec::new),
            ..ChunkStream::default()
        }
    }

    fn handle_events(&mut self, events: Vec<Event>) -> Result<Vec<Chunk>, Failure> {
        let mut chunks = Vec::with_capacity(events.len());
        for event in events {
            if self.done {
                break; // nothing after `[DONE]` belongs to the answer
            }
            self.handle_event(event, &mut chunks)?;
        }
        Ok(chunks)
    }

    fn handle_event(&mut self, event: Event, chunks: &mut Vec<Chunk>) -> Result<(), Failure> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done = true;
            chunks.extend(self.take_pending_usage());
            return Ok(());
        }
        // Most frames: passed through as they came, which is what the full path below does
        // with them too (no hook, no usage, no finish to note).
        let hooks_see_it = D::FRAME_HOOKS && D::hooks_see_content_frame(data);
        if !hooks_see_it && Skim::is_plain_content(data) {
            chunks.push(Chunk {
                json: event.data,
                usage: None,
            });
            return Ok(());
        }
        // The skim above has read this frame once already; reading every frame by its parts
        // instead (one read) cost ~32,000 more instructions per 53-chunk stream: the parts keep
        // four more fields of each plain frame than the skim looks at.
        if !D::FRAME_HOOKS
            && let Some(parts) = FrameParts::read(data)
            && raw::non_null(parts.error).is_none()
            && let Some(outcome) = self.read_parts(data, &parts)
        {
            chunks.push(match outcome {
                Parted::UsageChunk(usage) => Chunk {
                    json: event.data,
                    usage: Some(usage),
                },
                Parted::AsItCame => Chunk {
                    json: event.data,
                    usage: None,
                },
                Parted::Rewritten(json) => Chunk { json, usage: None },
            });
            return Ok(());
        }
        let value: Value = serde_json::from_str(data).map_err(|error| {
            Failure::BadResponse(format!("a stream frame is not valid JSON: {error}"))
        })?;
        let Value::Object(mut object) = value else {
            return Err(Failure::BadResponse(
                "a stream frame is not a JSON object".to_owned(),
            ));
        };
        if let Some(failure) = D::stream_error(&object) {
            return Err(failure);
        }
        if object.get("error").is_some_and(|error| !error.is_null()) {
            return Err(classify_error_value(&Value::Object(object)));
        }
        let choices = object.get("choices").and_then(Value::as_array);
        let usage = object.get("usage").filter(|usage| !usage.is_null());
        if choices.is_none_or(|choices| choices.is_empty())
            && let Some(usage) = usage.and_then(parse_usage)
        {
            self.usage_chunk_seen = true;
            self.pending_usage = None;
            chunks.push(Chunk {
                json: event.data,
                usage: Some(usage),
            });
            return Ok(());
        }
        if choices.is_some_and(|choices| {
            choices.iter().any(|choice| {
                choice
                    .get("finish_reason")
                    .is_some_and(|reason| !reason.is_null())
            })
        }) {
            self.finish_seen = true;
        }
        // Usage riding on a content chunk (Groq's `x_groq.usage`, servers that put `usage` beside
        // `choices`) must not mark that chunk as the usage chunk: the host drops the usage chunk
        // for clients that did not ask for usage, and would drop content with it.
        if !self.usage_chunk_seen
            && let Some(raw_usage) = usage.or_else(|| D::stream_usage(&object))
            && let Some(parsed) = parse_usage(raw_usage)
        {
            self.pending_usage = Some(usage_chunk(&object, raw_usage, parsed));
        }
        // In OpenAI's form only the final `choices: []` chunk carries usage (the others say
        // `"usage": null`); a client summing every `usage` it sees would count this one twice.
        // Rewriting costs one serialisation, once per stream.
        let json = if usage.is_some() {
            object.insert("usage".to_owned(), Value::Null);
            crate::json::text(&Value::Object(object))
        } else {
            event.data
        };
        chunks.push(Chunk { json, usage: None });
        Ok(())
    }

    /// What the full path below does with a frame, done on its parts instead of its tree (for
    /// dialects without frame hooks; `parts` has no error). `None`, with nothing changed, when
    /// the frame's usage cannot be cut out of its text.
    fn read_parts(&mut self, data: &str, parts: &FrameParts<'_>) -> Option<Parted> {
        let raw_usage = raw::non_null(parts.usage);
        let usage = raw_usage.and_then(parse_raw_usage);
        let no_choices = parts
            .choices
            .as_ref()
            .is_none_or(|choices| choices.count == 0);
        if no_choices && let Some(usage) = usage {
            self.usage_chunk_seen = true;
            self.pending_usage = None;
            return Some(Parted::UsageChunk(usage));
        }
        // As below: the frame goes on with `"usage": null`, its usage in a chunk of its own.
        let rewritten = match raw_usage {
            Some(usage) => Some(raw::edited(data, vec![(raw::span(data, usage)?, "null")])?),
            None => None,
        };
        if parts
            .choices
            .as_ref()
            .is_some_and(|choices| choices.finished)
        {
            self.finish_seen = true;
        }
        if !self.usage_chunk_seen
            && let (Some(raw), Some(usage)) = (raw_usage, usage)
        {
            self.pending_usage = Some(parts.usage_chunk(raw, usage));
        }
        Some(rewritten.map_or(Parted::AsItCame, Parted::Rewritten))
    }

    fn take_pending_usage(&mut self) -> Option<Chunk> {
        self.pending_usage.take()
    }
}

/// What becomes of a frame read by its parts.
enum Parted {
    /// The frame is the stream's usage chunk, passed on as it came.
    UsageChunk(Usage),
    /// A content frame passed on as it came.
    AsItCame,
    /// A content frame that carried usage, passed on with `"usage": null`.
    Rewritten(String),
}

/// An OpenAI usage chunk (`choices: []` + `usage`) for the stream `chunk` belongs to.
fn usage_chunk(chunk: &Map<String, Value>, raw_usage: &Value, usage: Usage) -> Chunk {
    let mut out = Map::new();
    for key in ["id", "created", "model", "system_fingerprint"] {
        if let Some(value) = chunk.get(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    out.insert(
        "object".to_owned(),
        Value::String("chat.completion.chunk".to_owned()),
    );
    out.insert("choices".to_owned(), Value::Array(Vec::new()));
    out.insert("usage".to_owned(), raw_usage.clone());
    Chunk {
        json: crate::json::text(&Value::Object(out)),
        usage: Some(usage),
    }
}

impl<D: Dialect> StreamDecoder for ChunkStream<D> {
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, Failure> {
        if let Some(body) = &mut self.json {
            if body.len().saturating_add(bytes.len()) > MAX_JSON_BYTES {
                return Err(Failure::BadResponse(format!(
                    "the completion is larger than {MAX_JSON_BYTES} bytes"
                )));
            }
            body.extend_from_slice(bytes);
            return Ok(Vec::new());
        }
        let events = self.sse.feed(bytes);
        self.handle_events(events)
    }

    fn finish(&mut self) -> Result<StreamEnd, Failure> {
        if let Some(body) = self.json.take() {
            return completion_chunks(body).map(StreamEnd::Done);
        }
        let events = self.sse.finish();
        let mut chunks = self.handle_events(events)?;
        if !self.done && !self.finish_seen {
            return Err(Failure::Unavailable(
                "stream ended before completion".to_owned(),
            ));
        }
        chunks.extend(self.take_pending_usage());
        Ok(StreamEnd::Done(chunks))
    }
}

/// A whole `chat.completion` body as the chunks a stream of it would have carried: per choice,
/// one chunk whose delta is the whole message (tool calls get their `index`) with the choice's
/// `finish_reason`, then the usage chunk when the body has usage. An error body is a failure.
pub fn completion_chunks(body: Vec<u8>) -> Result<Vec<Chunk>, Failure> {
    let completion = decode_completion(body)?;
    let value: Value = serde_json::from_str(&completion.json).map_err(|error| {
        Failure::BadResponse(format!("the completion is not valid JSON: {error}"))
    })?;
    let Value::Object(object) = value else {
        return Err(Failure::BadResponse(
            "the completion is not a JSON object".to_owned(),
        ));
    };
    let mut head = Map::new();
    for key in ["id", "created", "model", "system_fingerprint"] {
        if let Some(value) = object.get(key) {
            head.insert(key.to_owned(), value.clone());
        }
    }
    head.insert(
        "object".to_owned(),
        Value::String("chat.completion.chunk".to_owned()),
    );
    let choices = object
        .get("choices")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut chunks = Vec::with_capacity(choices.len() + 1);
    for (position, choice) in choices.iter().enumerate() {
        let mut delta = match choice.get("message") {
            Some(Value::Object(message)) => message.clone(),
            _ => Map::new(),
        };
        if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
            for (index, call) in calls.iter_mut().enumerate() {
                if let Value::Object(call) = call {
                    call.entry("index").or_insert_with(|| Value::from(index));
                }
            }
        }
        let mut chunk = head.clone();
        chunk.insert(
            "choices".to_owned(),
            Value::Array(vec![Value::Object(Map::from_iter([
                (
                    "index".to_owned(),
                    choice
                        .get("index")
                        .cloned()
                        .unwrap_or_else(|| Value::from(position)),
                ),
                ("delta".to_owned(), Value::Object(delta)),
                (
                    "logprobs".to_owned(),
                    choice.get("logprobs").cloned().unwrap_or(Value::Null),
                ),
                (
                    "finish_reason".to_owned(),
                    // The answer is whole, so it did finish; say how, or `stop`.
                    choice
                        .get("finish_reason")
                        .filter(|reason| !reason.is_null())
                        .cloned()
                        .unwrap_or_else(|| Value::String("stop".to_owned())),
                ),
            ]))]),
        );
        chunks.push(Chunk {
            json: crate::json::text(&Value::Object(chunk)),
            usage: None,
        });
    }
    if let (Some(usage), Some(raw_usage)) = (completion.usage, object.get("usage")) {
        let mut chunk = head;
        chunk.insert("choices".to_owned(), Value::Array(Vec::new()));
        chunk.insert("usage".to_owned(), raw_usage.clone());
        chunks.push(Chunk {
            json: crate::json::text(&Value::Object(chunk)),
            usage: Some(usage),
        });
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::Skim;

    #[test]
    fn the_skim_passes_only_content_frames_that_have_choices_none_finished() {
        let plain = [
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{}},{"delta":{},"finish_reason":null}],"usage":null}"#,
        ];
        for frame in plain {
            assert!(Skim::is_plain_content(frame), "{frame}");
        }
        let not_plain = [
            // A finished choice, even beside one that is not.
            r#"{"choices":[{"finish_reason":null},{"finish_reason":"stop"}]}"#,
            // No choices at all, or none listed (the usage chunk's shape).
            r#"{"id":"c"}"#,
            r#"{"choices":[]}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
            // Usage or an error beside content.
            r#"{"choices":[{"delta":{}}],"usage":{"total_tokens":2}}"#,
            r#"{"choices":[{"delta":{}}],"error":{"message":"x"}}"#,
            // Not the shape, or not JSON: the full parse says what is wrong.
            r#"{"choices":{"0":{}}}"#,
            r#"{"choices":[1]}"#,
            r#"{"choices":[{"delta":{}}]"#,
            "[DONE]",
            // An array, which a derived struct would read field by field.
            r#"[[{"delta":{}}]]"#,
        ];
        for frame in not_plain {
            assert!(!Skim::is_plain_content(frame), "{frame}");
        }
    }
}
