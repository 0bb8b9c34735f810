//! The response cache: an exact-match cache of chat completions in the shared store's `cache`
//! table (scope `chat/<namespace>/<key id>`, key the digest of the request's semantic fields),
//! so every process on one database answers from it. Off unless a TTL applies to the route
//! (`[models.<alias>] cache_ttl_s`, else `[response_cache] default_ttl_s`): a sampled answer
//! served again changes what a client gets, so the operator opts in.
//!
//! Only a complete answer is kept: one choice that ended with a `finish_reason`, not larger than
//! `max_entry_bytes`; a stream is kept once it finished cleanly, assembled from the chunks the
//! client was sent ([`Assembler`]). A hit is the kept `chat.completion` as it was (non-streamed)
//! or replayed as chunks of it ([`replay`]); it costs no upstream call, no attempt and no
//! target. The store never fails a request: a failed read is a miss, a failed write is logged,
//! and writes run beside the answer ([`Keep`]), at most [`MAX_PENDING_WRITES`] at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aigw_memory::{Namespace, Store};
use aigw_runtime::Usage;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::session::Reply;

/// The request header opting a request out (`off`) and the response header saying what the
/// cache did (`hit`, `miss`, `off`).
pub(crate) const CACHE_HEADER: &str = "x-aigw-cache";

/// Cache writes in flight at once per served state; an answer finishing while all are busy is
/// not kept (the store is slow: adding writes would only queue them).
pub(crate) const MAX_PENDING_WRITES: usize = 64;

/// Body fields that do not change the answer, left out of the key: how it is delivered
/// (`stream`, `stream_options`) and what only labels the request for the provider (`user`,
/// `metadata`, `store`, `safety_identifier`, `prompt_cache_key`). Every other field counts,
/// known or not: an unknown field may change the answer, so it never shares one.
pub(crate) const IGNORED_FIELDS: [&str; 7] = [
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "safety_identifier",
    "prompt_cache_key",
];

/// `[response_cache]` and the routes' `cache_ttl_s`, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseCacheOptions {
    /// Off: nothing is cached, whatever the TTLs say.
    pub enabled: bool,
    /// The TTL of routes that set none (`None`: they are not cached).
    pub default_ttl: Option<Duration>,
    /// Answers larger than this (their JSON) are not kept.
    pub max_entry_bytes: usize,
    /// Each alias's own TTL (zero: not cached, whatever the default).
    pub route_ttls: HashMap<String, Duration>,
}

impl Default for ResponseCacheOptions {
    fn default() -> ResponseCacheOptions {
        ResponseCacheOptions {
            enabled: true,
            default_ttl: None,
            max_entry_bytes: 1 << 20,
            route_ttls: HashMap::new(),
        }
    }
}

impl ResponseCacheOptions {
    /// The TTL answers for `model` (an alias or a `provider/model`) are kept for, if cached.
    pub fn ttl(&self, model: &str) -> Option<Duration> {
        // Without any TTL (the default) a request pays two checks and no hashing.
        if !self.enabled || (self.route_ttls.is_empty() && self.default_ttl.is_none()) {
            return None;
        }
        let ttl = match self.route_ttls.get(model) {
            Some(ttl) => Some(*ttl),
            None => self.default_ttl,
        };
        ttl.filter(|ttl| !ttl.is_zero())
    }
}

/// The response cache of one served state: its options and its bound on writes in flight.
#[derive(Clone)]
pub(crate) struct ResponseCache {
    pub(crate) options: ResponseCacheOptions,
    writes: Arc<Semaphore>,
}

impl ResponseCache {
    pub(crate) fn new(options: ResponseCacheOptions) -> ResponseCache {
        ResponseCache {
            options,
            writes: Arc::new(Semaphore::new(MAX_PENDING_WRITES)),
        }
    }
}

impl Default for ResponseCache {
    fn default() -> ResponseCache {
        ResponseCache::new(ResponseCacheOptions::default())
    }
}

/// What the request's headers ask of the cache: `x-aigw-cache: off` (neither look up nor
/// keep), `Cache-Control: no-cache` (do not look up; keep the fresh answer), `no-store` (look
/// up; do not keep), and the namespace it acts in (`x-aigw-namespace`), part of the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asked {
    lookup: bool,
    store: bool,
    /// `None`: [`Namespace::DEFAULT`] (nothing allocated for the usual request).
    namespace: Option<String>,
}

impl Default for Asked {
    fn default() -> Asked {
        Asked {
            lookup: true,
            store: true,
            namespace: None,
        }
    }
}

impl Asked {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Asked {
        let mut asked = Asked::default();
        let off = || Asked {
            lookup: false,
            store: false,
            ..Asked::default()
        };
        if headers
            .get(CACHE_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"off"))
        {
            return off();
        }
        for value in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else {
                continue;
            };
            for directive in value.split(',').map(str::trim) {
                if directive.eq_ignore_ascii_case("no-store") {
                    asked.store = false;
                } else if directive.eq_ignore_ascii_case("no-cache") {
                    asked.lookup = false;
                }
            }
        }
        if let Some(value) = headers.get(crate::memory::NAMESPACE_HEADER) {
            // A namespace the memory would refuse: no scope to keep the answer in. The request
            // itself is not refused for it (chat completions do not act in a namespace).
            match value.to_str().ok().map(Namespace::parse) {
                Some(Ok(namespace)) => asked.namespace = Some(namespace.as_str().to_owned()),
                _ => return off(),
            }
        }
        asked
    }
}

/// What the cache does for one request.
pub(crate) enum Plan {
    /// The route is not cached (or there is no store): no header, no work.
    None,
    /// The route is cached but this request is not (opted out, or not cacheable): `off`.
    Off,
    /// Looked up and/or kept under this row.
    On(Row),
}

/// One request's cache row, and what it may do with it.
pub(crate) struct Row {
    store: Arc<Store>,
    scope: String,
    key: String,
    ttl: Duration,
    lookup: bool,
    keep: bool,
    max_entry_bytes: usize,
    writes: Arc<Semaphore>,
}

/// Why a request is not cached though its route is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Uncacheable {
    /// `n` above 1: several choices are not replayed as one stream.
    Choices,
    /// The body is not a JSON object (the head's parse says so first; kept for safety).
    NotAnObject,
}

/// The key of a request: the digest of its body without [`IGNORED_FIELDS`], with `model` the
/// model as routed (the alias the client named).
pub(crate) fn semantic_key(model: &str, body: &str) -> Result<String, Uncacheable> {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(body) else {
        return Err(Uncacheable::NotAnObject);
    };
    if fields
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1)
    {
        return Err(Uncacheable::Choices);
    }
    for field in IGNORED_FIELDS {
        fields.remove(field);
    }
    fields.insert("model".to_owned(), Value::String(model.to_owned()));
    Ok(crate::canonical::digest(&Value::Object(fields)))
}

impl Plan {
    /// The plan of a request for `model` with `body`, for `key_id` (`None`: no key), as
    /// `asked`. `excluded`: it runs aigw tools or names a conversation, never cached.
    pub(crate) fn new(
        cache: &ResponseCache,
        memory: Option<&Arc<Store>>,
        model: &str,
        body: &str,
        key_id: Option<&str>,
        asked: &Asked,
        excluded: bool,
    ) -> Plan {
        let (Some(ttl), Some(store)) = (cache.options.ttl(model), memory) else {
            return Plan::None;
        };
        if excluded || !(asked.lookup || asked.store) {
            return Plan::Off;
        }
        let Ok(key) = semantic_key(model, body) else {
            return Plan::Off;
        };
        Plan::On(Row {
            store: Arc::clone(store),
            // Namespaces hold no `/`: the scope reads back one way only.
            scope: format!(
                "chat/{}/{}",
                asked.namespace.as_deref().unwrap_or(Namespace::DEFAULT),
                key_id.unwrap_or("")
            ),
            key,
            ttl,
            lookup: asked.lookup,
            keep: asked.store,
            max_entry_bytes: cache.options.max_entry_bytes,
            writes: Arc::clone(&cache.writes),
        })
    }

    /// The `x-aigw-cache` value of a request that was not a hit.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        match self {
            Plan::None => None,
            Plan::Off => Some(HeaderValue::from_static("off")),
            Plan::On(_) => Some(HeaderValue::from_static("miss")),
        }
    }

    /// What the record reports of a request that was not a hit.
    pub(crate) fn status(&self) -> Option<&'static str> {
        match self {
            Plan::On(_) => Some("miss"),
            Plan::None | Plan::Off => None,
        }
    }

    /// The kept answer, if the plan looks up and one is fresh. A store that cannot be read, or
    /// a row that is not an answer, is a miss.
    pub(crate) async fn lookup(&self) -> Option<Hit> {
        let Plan::On(row) = self else {
            return None;
        };
        if !row.lookup {
            return None;
        }
        let cached = match aigw_memory::cache::get(&row.store, &row.scope, &row.key).await {
            Ok(cached) => cached?,
            Err(e) => {
                tracing::warn!(error = %e, "response cache: read failed, answering uncached");
                return None;
            }
        };
        let json = Bytes::from(cached.value);
        match serde_json::from_slice::<Value>(&json) {
            Ok(answer) if complete(&answer) => Some(Hit { json, answer }),
            _ => {
                tracing::warn!(scope = %row.scope, "response cache: an unreadable row, ignored");
                None
            }
        }
    }

    /// What keeps this request's answer, if the plan keeps one.
    pub(crate) fn keep(&self) -> Option<Keep> {
        match self {
            Plan::On(row) if row.keep => Some(Keep {
                store: Arc::clone(&row.store),
                scope: row.scope.clone(),
                key: row.key.clone(),
                ttl: row.ttl,
                max_entry_bytes: row.max_entry_bytes,
                writes: Arc::clone(&row.writes),
            }),
            _ => None,
        }
    }
}

/// A kept answer found fresh.
pub(crate) struct Hit {
    /// The `chat.completion` as it was kept: a non-streamed hit's body, byte for byte.
    pub(crate) json: Bytes,
    pub(crate) answer: Value,
}

/// Keeps one answer, beside the response.
pub(crate) struct Keep {
    store: Arc<Store>,
    scope: String,
    key: String,
    ttl: Duration,
    max_entry_bytes: usize,
    writes: Arc<Semaphore>,
}

impl Keep {
    /// Keeps a non-streamed answer if it is complete and not too large; the write, if one
    /// was started.
    pub(crate) fn answer(self, json: Bytes) -> Option<JoinHandle<()>> {
        if json.len() > self.max_entry_bytes {
            return None;
        }
        match serde_json::from_slice::<Value>(&json) {
            Ok(answer) if complete(&answer) => self.write(json.to_vec()),
            _ => None,
        }
    }

    /// A stream's assembler, to pass to [`Keep::stream`] once the stream finished cleanly.
    pub(crate) fn assembler(&self) -> Assembler {
        Assembler {
            max_bytes: self.max_entry_bytes,
            ..Assembler::default()
        }
    }

    /// Keeps a stream's answer, assembled from what the client was sent, with `usage` (every
    /// attempt's), if it is complete and faithful.
    pub(crate) fn stream(
        self,
        assembler: Assembler,
        usage: Option<Usage>,
    ) -> Option<JoinHandle<()>> {
        let answer = assembler.finish(usage)?;
        let json = answer.to_string();
        if json.len() > self.max_entry_bytes {
            return None;
        }
        self.write(json.into_bytes())
    }

    /// The write, spawned: the response does not wait for it. With
    /// [`MAX_PENDING_WRITES`] already in flight it is dropped.
    fn write(self, value: Vec<u8>) -> Option<JoinHandle<()>> {
        let Ok(permit) = Arc::clone(&self.writes).try_acquire_owned() else {
            tracing::debug!("response cache: too many writes in flight, answer not kept");
            return None;
        };
        Some(tokio::spawn(async move {
            let _permit = permit;
            match aigw_memory::cache::put(&self.store, &self.scope, &self.key, value, self.ttl)
                .await
            {
                Ok(()) => {
                    tracing::debug!(ttl_s = self.ttl.as_secs(), "response cache: answer stored")
                }
                Err(e) => tracing::warn!(error = %e, "response cache: write failed"),
            }
        }))
    }
}

/// An answer worth keeping and replaying: a `chat.completion` with exactly one choice, which
/// has a message and ended with a `finish_reason`.
fn complete(answer: &Value) -> bool {
    let Some([choice]) = answer
        .get("choices")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    else {
        return false;
    };
    choice.get("message").is_some_and(Value::is_object)
        && choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty())
}

/// A streamed answer put back together from the chunks the client was sent: the first chunk's
/// identity, the message ([`Reply`]), the finish reason. A stream it could not put back
/// faithfully (another choice, log probabilities, too large) is not kept.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    id: Option<Value>,
    created: Option<Value>,
    model: Option<Value>,
    system_fingerprint: Option<Value>,
    reply: Reply,
    finish_reason: Option<String>,
    unfaithful: bool,
    bytes: usize,
    max_bytes: usize,
}

#[derive(Deserialize)]
struct ChunkFields {
    id: Option<Value>,
    created: Option<Value>,
    model: Option<Value>,
    system_fingerprint: Option<Value>,
    #[serde(default)]
    choices: Vec<ChoiceFields>,
}

#[derive(Deserialize)]
struct ChoiceFields {
    #[serde(default)]
    index: u64,
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Value,
}

impl Assembler {
    /// One chunk the client was sent.
    pub(crate) fn record(&mut self, json: &str) {
        if self.unfaithful {
            return;
        }
        self.bytes += json.len();
        let Ok(chunk) = serde_json::from_str::<ChunkFields>(json) else {
            self.unfaithful = true;
            return;
        };
        if self.bytes > self.max_bytes
            || chunk
                .choices
                .iter()
                .any(|c| c.index != 0 || !c.logprobs.is_null())
        {
            self.unfaithful = true;
            return;
        }
        for (kept, value) in [
            (&mut self.id, chunk.id),
            (&mut self.created, chunk.created),
            (&mut self.model, chunk.model),
            (&mut self.system_fingerprint, chunk.system_fingerprint),
        ] {
            if kept.is_none() {
                *kept = value.filter(|v| !v.is_null());
            }
        }
        if let Some(reason) = chunk.choices.into_iter().find_map(|c| c.finish_reason) {
            self.finish_reason = Some(reason);
        }
        self.reply.record(json);
    }

    /// The `chat.completion` the stream said, if it said one whole.
    pub(crate) fn finish(self, usage: Option<Usage>) -> Option<Value> {
        if self.unfaithful {
            return None;
        }
        let finish_reason = self.finish_reason.filter(|r| !r.is_empty())?;
        let mut message = self.reply.message();
        let calls = message.get("tool_calls").is_some();
        if calls && message["content"].as_str() == Some("") {
            // What a non-streamed answer says of a turn that only calls tools.
            message["content"] = Value::Null;
        }
        let mut answer = Map::new();
        answer.insert("id".to_owned(), self.id.unwrap_or(json!("")));
        answer.insert("object".to_owned(), json!("chat.completion"));
        answer.insert("created".to_owned(), self.created.unwrap_or(json!(0)));
        answer.insert("model".to_owned(), self.model.unwrap_or(json!("")));
        if let Some(fingerprint) = self.system_fingerprint {
            answer.insert("system_fingerprint".to_owned(), fingerprint);
        }
        answer.insert(
            "choices".to_owned(),
            json!([{"index": 0, "message": message, "logprobs": null,
                    "finish_reason": finish_reason}]),
        );
        if let Some(u) = usage {
            answer.insert("usage".to_owned(), usage_json(u));
        }
        Some(Value::Object(answer))
    }
}

fn usage_json(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    })
}

/// A kept `chat.completion` as the SSE body of a stream: the role chunk, the content (and
/// refusal, and tool calls whole) in one chunk each, the finish chunk, the usage chunk when the
/// client asked for it (`stream_options.include_usage`), then `[DONE]`. Every chunk carries the
/// kept answer's `id`, `created` and `model`.
pub(crate) fn replay(answer: &Value, include_usage: bool) -> Vec<u8> {
    let choice = &answer["choices"][0];
    let message = &choice["message"];
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut chunk = Map::new();
        chunk.insert("id".to_owned(), answer["id"].clone());
        chunk.insert("object".to_owned(), json!("chat.completion.chunk"));
        chunk.insert("created".to_owned(), answer["created"].clone());
        chunk.insert("model".to_owned(), answer["model"].clone());
        if let Some(fingerprint) = answer.get("system_fingerprint") {
            chunk.insert("system_fingerprint".to_owned(), fingerprint.clone());
        }
        chunk.insert("choices".to_owned(), choices);
        if let Some(usage) = usage {
            chunk.insert("usage".to_owned(), usage.clone());
        }
        Value::Object(chunk).to_string()
    };
    let delta = |delta: Value| json!([{"index": 0, "delta": delta, "finish_reason": null}]);
    let mut chunks = vec![chunk(
        delta(json!({"role": "assistant", "content": ""})),
        None,
    )];
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        chunks.push(chunk(delta(json!({"content": text})), None));
    }
    if let Some(refusal) = message["refusal"].as_str() {
        chunks.push(chunk(delta(json!({"refusal": refusal})), None));
    }
    if let Some(calls) = message["tool_calls"].as_array() {
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                let mut call = call.clone();
                if let Some(object) = call.as_object_mut() {
                    object.insert("index".to_owned(), json!(index));
                }
                call
            })
            .collect();
        chunks.push(chunk(delta(json!({"tool_calls": calls})), None));
    }
    chunks.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]),
        None,
    ));
    if include_usage && let Some(usage) = answer.get("usage") {
        chunks.push(chunk(json!([]), Some(usage)));
    }
    let mut out = Vec::new();
    for json in chunks {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn body(extra: Value) -> String {
        let mut body = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body.to_string()
    }

    fn key(extra: Value) -> String {
        semantic_key("fast", &body(extra)).unwrap()
    }

    #[test]
    fn equal_semantic_fields_share_a_key_however_written_and_delivered() {
        let plain = key(json!({"temperature": 0.2}));
        assert_eq!(plain.len(), 64);
        // Key order, delivery and labels do not matter.
        let reordered =
            r#"{"temperature":0.2,"messages":[{"content":"hi","role":"user"}],"model":"fast"}"#;
        assert_eq!(semantic_key("fast", reordered).unwrap(), plain);
        assert_eq!(
            key(json!({"temperature": 0.2, "stream": true,
                       "stream_options": {"include_usage": true}, "user": "u-1",
                       "metadata": {"a": "b"}, "store": true, "safety_identifier": "s",
                       "prompt_cache_key": "p"})),
            plain
        );
        // The model is the one routed: a body spelling it with an escape is the same request.
        assert_eq!(
            semantic_key("fast", r#"{"model":"f\u0061st","messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#)
                .unwrap(),
            plain
        );
    }

    #[test]
    fn any_semantic_change_is_another_key() {
        let base = key(json!({}));
        let changed = [
            json!({"messages": [{"role": "user", "content": "hi!"}]}),
            json!({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]}),
            json!({"temperature": 0.2}),
            json!({"top_p": 0.9}),
            json!({"max_tokens": 10}),
            json!({"max_completion_tokens": 10}),
            json!({"stop": ["\n"]}),
            json!({"seed": 7}),
            json!({"response_format": {"type": "json_object"}}),
            json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
            json!({"tool_choice": "none"}),
            json!({"logprobs": true}),
            json!({"n": 1}),
            json!({"presence_penalty": 0.5}),
            json!({"some_future_field": 1}),
        ];
        let mut seen = vec![base.clone()];
        for extra in changed {
            let k = key(extra.clone());
            assert!(!seen.contains(&k), "{extra} gave a key already seen");
            seen.push(k);
        }
        // Another route, same body.
        assert_ne!(semantic_key("slow", &body(json!({}))).unwrap(), base);
        // Several choices are not cached.
        assert_eq!(
            semantic_key("fast", &body(json!({"n": 2}))),
            Err(Uncacheable::Choices)
        );
    }

    #[test]
    fn the_headers_opt_out_and_name_the_namespace() {
        let asked = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(*name, HeaderValue::from_static(value));
            }
            let a = Asked::from_headers(&headers);
            (a.lookup, a.store, a.namespace)
        };
        let default = || None;
        assert_eq!(asked(&[]), (true, true, default()));
        assert_eq!(asked(&[("x-aigw-cache", "OFF")]), (false, false, default()));
        assert_eq!(asked(&[("x-aigw-cache", "on")]), (true, true, default()));
        assert_eq!(
            asked(&[("cache-control", "no-store")]),
            (true, false, default())
        );
        assert_eq!(
            asked(&[("cache-control", "max-age=0, No-Cache")]),
            (false, true, default())
        );
        assert_eq!(
            asked(&[("cache-control", "no-cache"), ("cache-control", "no-store")]),
            (false, false, default())
        );
        assert_eq!(
            asked(&[("x-aigw-namespace", "team-a")]),
            (true, true, Some("team-a".to_owned()))
        );
        // A namespace the memory refuses: nothing is looked up or kept.
        assert_eq!(
            asked(&[("x-aigw-namespace", "a/b")]),
            (false, false, default())
        );
    }

    #[test]
    fn route_ttls_override_the_default_and_zero_turns_a_route_off() {
        let mut options = ResponseCacheOptions::default();
        assert_eq!(options.ttl("fast"), None, "off by default");
        options.default_ttl = Some(Duration::from_secs(60));
        options
            .route_ttls
            .insert("fast".to_owned(), Duration::from_secs(5));
        options.route_ttls.insert("live".to_owned(), Duration::ZERO);
        assert_eq!(options.ttl("fast"), Some(Duration::from_secs(5)));
        assert_eq!(options.ttl("groq/x"), Some(Duration::from_secs(60)));
        assert_eq!(options.ttl("live"), None);
        options.enabled = false;
        assert_eq!(options.ttl("fast"), None);
    }

    fn chunk(choice: Value) -> String {
        json!({"id": "c-1", "object": "chat.completion.chunk", "created": 7, "model": "m",
               "choices": [choice]})
        .to_string()
    }

    fn assembled(chunks: &[String]) -> Option<Value> {
        let mut assembler = Assembler {
            max_bytes: 1 << 20,
            ..Assembler::default()
        };
        for c in chunks {
            assembler.record(c);
        }
        assembler.finish(Some(Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
            total_tokens: 5,
        }))
    }

    #[test]
    fn a_finished_stream_is_assembled_and_replays_as_the_same_answer() {
        let chunks = [
            chunk(json!({"index": 0, "delta": {"role": "assistant", "content": ""}})),
            chunk(json!({"index": 0, "delta": {"content": "Hello"}})),
            chunk(json!({"index": 0, "delta": {"content": " world"}, "logprobs": null})),
            chunk(json!({"index": 0, "delta": {}, "finish_reason": "stop"})),
        ];
        let answer = assembled(&chunks).unwrap();
        assert_eq!(
            answer,
            json!({"id": "c-1", "object": "chat.completion", "created": 7, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world"},
                                "logprobs": null, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
        );
        assert!(complete(&answer));
        // Replayed, then assembled again: the same answer.
        let sse = String::from_utf8(replay(&answer, true)).unwrap();
        assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
        let frames: Vec<String> = sse
            .split("\n\n")
            .filter_map(|f| f.strip_prefix("data: "))
            .filter(|f| *f != "[DONE]")
            .map(str::to_owned)
            .collect();
        assert_eq!(frames.len(), 4, "role, content, finish, usage: {sse}");
        let usage: Value = serde_json::from_str(&frames[3]).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 5);
        assert_eq!(assembled(&frames[..3]).unwrap(), answer);
        // Without include_usage: no usage chunk.
        let plain = String::from_utf8(replay(&answer, false)).unwrap();
        assert!(!plain.contains("\"usage\""), "{plain}");
    }

    #[test]
    fn tool_calls_are_assembled_whole_and_replayed_indexed() {
        let chunks = [
            chunk(json!({"index": 0, "delta": {"role": "assistant", "content": null}})),
            chunk(
                json!({"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": "{\"ci"}}]}}),
            ),
            chunk(
                json!({"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\":\"Paris\"}"}}]}}),
            ),
            chunk(json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"})),
        ];
        let answer = assembled(&chunks).unwrap();
        let message = &answer["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(
            message["tool_calls"],
            json!([{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        let sse = String::from_utf8(replay(&answer, false)).unwrap();
        let calls: Vec<Value> = sse
            .split("\n\n")
            .filter_map(|f| f.strip_prefix("data: "))
            .filter_map(|f| serde_json::from_str::<Value>(f).ok())
            .filter_map(|c| c["choices"][0]["delta"].get("tool_calls").cloned())
            .collect();
        assert_eq!(
            calls,
            [json!([{"index": 0, "id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])]
        );
        assert!(sse.contains(r#""finish_reason":"tool_calls""#), "{sse}");
    }

    #[test]
    fn a_stream_without_a_finish_or_not_said_whole_is_not_kept() {
        let start = chunk(json!({"index": 0, "delta": {"role": "assistant", "content": "Hi"}}));
        assert_eq!(
            assembled(std::slice::from_ref(&start)),
            None,
            "no finish reason"
        );
        let finish = chunk(json!({"index": 0, "delta": {}, "finish_reason": "stop"}));
        let other = chunk(json!({"index": 1, "delta": {"content": "other"}}));
        assert_eq!(assembled(&[start.clone(), other, finish.clone()]), None);
        let logprobs =
            chunk(json!({"index": 0, "delta": {"content": "x"}, "logprobs": {"content": []}}));
        assert_eq!(assembled(&[start.clone(), logprobs, finish.clone()]), None);
        let mut small = Assembler {
            max_bytes: 10,
            ..Assembler::default()
        };
        small.record(&start);
        small.record(&finish);
        assert_eq!(small.finish(None), None, "larger than max_entry_bytes");
    }

    async fn store(clock: Arc<aigw_memory::ManualClock>) -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let mut options = aigw_memory::StoreOptions::new(dir.path().join("aigw.db"));
        options.clock = clock;
        (dir, Arc::new(Store::open(options).await.unwrap()))
    }

    fn answer(text: &str) -> Bytes {
        Bytes::from(
            json!({"id": "c-9", "object": "chat.completion", "created": 1, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop"}]})
            .to_string(),
        )
    }

    #[tokio::test]
    async fn an_answer_is_kept_per_key_and_namespace_until_its_ttl_by_the_stores_clock() {
        let clock = Arc::new(aigw_memory::ManualClock::new(1_000_000));
        let (_dir, store) = store(Arc::clone(&clock)).await;
        let cache = ResponseCache::new(ResponseCacheOptions {
            default_ttl: Some(Duration::from_secs(60)),
            max_entry_bytes: 200,
            ..ResponseCacheOptions::default()
        });
        let request = body(json!({}));
        let asked = Asked::default();
        let plan = |key: Option<&str>, asked: &Asked| {
            Plan::new(&cache, Some(&store), "fast", &request, key, asked, false)
        };
        let mine = plan(Some("key-a"), &asked);
        assert!(mine.lookup().await.is_none());
        assert_eq!(mine.status(), Some("miss"));
        mine.keep()
            .unwrap()
            .answer(answer("hi"))
            .unwrap()
            .await
            .unwrap();
        let hit = plan(Some("key-a"), &asked).lookup().await.unwrap();
        assert_eq!(hit.json, answer("hi"), "the kept answer, byte for byte");
        // Another key, another namespace, the open scope: not theirs.
        assert!(plan(Some("key-b"), &asked).lookup().await.is_none());
        assert!(plan(None, &asked).lookup().await.is_none());
        let team = Asked {
            namespace: Some("team".to_owned()),
            ..Asked::default()
        };
        assert!(plan(Some("key-a"), &team).lookup().await.is_none());
        // Not kept: an unfinished answer, a failure, an answer over max_entry_bytes.
        let unfinished = json!({"choices": [{"index": 0, "message": {"content": "x"},
                                             "finish_reason": null}]});
        for kept in [
            Bytes::from(unfinished.to_string()),
            Bytes::from_static(br#"{"error":{"message":"boom"}}"#),
            answer(&"long ".repeat(50)),
        ] {
            assert!(
                plan(Some("key-c"), &asked)
                    .keep()
                    .unwrap()
                    .answer(kept)
                    .is_none()
            );
        }
        // `no-store` keeps nothing; excluded requests and routes without a TTL do nothing.
        let no_store = Asked {
            store: false,
            ..Asked::default()
        };
        assert!(plan(Some("key-a"), &no_store).keep().is_none());
        assert!(plan(Some("key-a"), &no_store).lookup().await.is_some());
        let excluded = Plan::new(&cache, Some(&store), "fast", &request, None, &asked, true);
        assert!(matches!(excluded, Plan::Off));
        let uncached = Plan::new(
            &ResponseCache::default(),
            Some(&store),
            "fast",
            &request,
            None,
            &asked,
            false,
        );
        assert!(matches!(uncached, Plan::None));
        assert!(uncached.header().is_none());
        // Expiry is by the store's clock.
        clock.advance(Duration::from_secs(59));
        assert!(plan(Some("key-a"), &asked).lookup().await.is_some());
        clock.advance(Duration::from_secs(2));
        assert!(plan(Some("key-a"), &asked).lookup().await.is_none());
    }

    #[test]
    fn only_a_single_finished_choice_is_complete() {
        let choice = json!({"index": 0, "message": {"role": "assistant", "content": "x"},
                            "finish_reason": "stop"});
        assert!(complete(&json!({"choices": [choice.clone()]})));
        assert!(!complete(
            &json!({"choices": [choice.clone(), choice.clone()]})
        ));
        let mut unfinished = choice.clone();
        unfinished["finish_reason"] = Value::Null;
        assert!(!complete(&json!({"choices": [unfinished]})));
        assert!(!complete(&json!({"choices": []})));
        assert!(!complete(&json!({"error": {"message": "x"}})));
    }
}
