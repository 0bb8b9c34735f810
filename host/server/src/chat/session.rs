//! Session-aware chat completions: a request that names a conversation (`x-aigw-conversation`)
//! is sent that conversation's history, and once it succeeded its new messages and its answer are
//! recorded there, so the next request that names it sees this turn.
//!
//! [`requested`] reads the headers (one lookup when the header is absent: requests without it
//! never reach the store). [`open`] loads the newest items in the caller's namespace (an id from
//! another namespace is as unknown as one that never existed), and places their chat messages
//! ([`items::history`], within `[memory] session_max_*`) after the request's own leading
//! system and developer messages. The [`Turn`] it returns records the turn in one write: a
//! completion's answer once it is complete ([`Turn::record_completion`]), a stream's once it
//! finished cleanly, from what the client was sent ([`Reply`], a continued stream's rejoined
//! answer included) — the caller answers (or writes `[DONE]`) only after that write committed.

use std::borrow::Cow;

use aigw_memory::conversations::{self, ConversationError, NewItem};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::items::{self, ItemFields, answer_items, input_items, is_instruction};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::memory::{self, Caller};

/// The header naming the conversation a chat completion continues.
pub(crate) const CONVERSATION_HEADER: &str = "x-aigw-conversation";

/// The longest conversation id accepted, in bytes.
const MAX_CONVERSATION_ID_BYTES: usize = 128;

/// A chat completion that names a conversation: who asks, and which conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requested {
    pub(crate) caller: Caller,
    pub(crate) conversation: String,
}

/// The conversation a request names, if it names one; a malformed id, namespace or agent is a
/// 400 naming its header.
pub(crate) fn requested(
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<Option<Requested>, ApiError> {
    let Some(value) = headers.get(CONVERSATION_HEADER) else {
        return Ok(None);
    };
    let raw = value.as_bytes();
    let valid = !raw.is_empty()
        && raw.len() <= MAX_CONVERSATION_ID_BYTES
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    let conversation = match std::str::from_utf8(raw) {
        Ok(id) if valid => id.to_owned(),
        _ => {
            return Err(ApiError::invalid_request(format!(
                "{CONVERSATION_HEADER}: a conversation id is 1 to {MAX_CONVERSATION_ID_BYTES} \
                 ASCII letters, digits, `_` or `-` (as `conv_…` ids are)"
            ))
            .param(CONVERSATION_HEADER)
            .code("invalid_conversation_id"));
        }
    };
    let caller = Caller::from_headers(principal, headers)?;
    Ok(Some(Requested {
        caller,
        conversation,
    }))
}

/// The session's part of one request: what is recorded once the completion succeeded.
#[derive(Debug)]
pub(crate) struct Turn {
    caller: Caller,
    conversation: String,
    /// The request's own messages (not its instructions), as items.
    input: Vec<ItemFields>,
}

/// Loads the conversation `requested` names and returns the body to send instead of `body` (the
/// history placed after its leading system and developer messages) with the [`Turn`] to record.
/// `body` was already checked by the head's parse.
pub(crate) async fn open(
    gateway: &Gateway,
    requested: Requested,
    body: &[u8],
) -> Result<(Bytes, Turn), ApiError> {
    let store = memory::store(gateway)?;
    let unreadable = |e: serde_json::Error| {
        ApiError::invalid_request(format!("request body is not valid JSON: {e}"))
            .code("invalid_json")
    };
    let mut request: Map<String, Value> = serde_json::from_slice(body).map_err(unreadable)?;
    let Some(Value::Array(messages)) = request.remove("messages") else {
        return Err(
            ApiError::invalid_request("Missing required parameter: 'messages'.")
                .param("messages")
                .code("missing_required_parameter"),
        );
    };
    let Requested {
        caller,
        conversation,
    } = requested;
    let sessions = gateway.sessions;
    let recent = conversations::recent(
        store,
        &caller.namespace,
        &conversation,
        sessions.max_items as usize,
    )
    .await
    .map_err(memory::store_error)?
    .ok_or_else(|| not_found(&conversation))?;
    let history = items::history(recent.iter().map(|i| &i.item), sessions.max_tokens);
    let lead = messages.iter().take_while(|m| is_instruction(m)).count();
    let input = input_items(&messages[lead..]);
    let mut sent = Vec::with_capacity(messages.len() + history.len());
    let mut messages = messages.into_iter();
    sent.extend(messages.by_ref().take(lead));
    sent.extend(history);
    sent.extend(messages);
    request.insert("messages".to_owned(), Value::Array(sent));
    let body = serde_json::to_vec(&request).map_err(unreadable)?;
    let turn = Turn {
        caller,
        conversation,
        input,
    };
    Ok((Bytes::from(body), turn))
}

fn not_found(conversation: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Conversation with id '{conversation}' not found."),
    )
    .param(CONVERSATION_HEADER)
    .code("conversation_not_found")
}

impl Turn {
    /// Records the turn of a whole (non-streamed) completion, `json` its answer.
    pub(crate) async fn record_completion(
        self,
        gateway: &Gateway,
        json: &[u8],
    ) -> Result<(), ApiError> {
        let answer = serde_json::from_slice::<Value>(json)
            .ok()
            .and_then(|mut v| v.pointer_mut("/choices/0/message").map(Value::take))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "the completion has no message to record in the conversation",
                )
                .code("bad_response")
            })?;
        self.record(gateway, answer_items(&answer)).await
    }

    /// Records the turn of a stream that finished cleanly, from what the client was sent.
    pub(crate) async fn record_stream(
        self,
        gateway: &Gateway,
        reply: &Reply,
    ) -> Result<(), ApiError> {
        self.record(gateway, answer_items(&reply.message())).await
    }

    /// Appends the turn's input and `answer` in one write: all of it or nothing.
    /// Records a tool loop's turn: the request's messages, then each step's assistant tool
    /// calls (`function_call` items) and their results (`function_call_output`), then the
    /// final answer `message`.
    pub(crate) async fn record_steps(
        self,
        gateway: &Gateway,
        steps: &[Value],
        message: &Value,
    ) -> Result<(), ApiError> {
        let mut items = input_items(steps);
        items.extend(answer_items(message));
        self.record(gateway, items).await
    }

    async fn record(self, gateway: &Gateway, answer: Vec<ItemFields>) -> Result<(), ApiError> {
        let store = memory::store(gateway)?;
        let agent = self.caller.agent;
        let items: Vec<NewItem> = self
            .input
            .into_iter()
            .chain(answer)
            .map(|mut item| {
                gateway.redactor.item(&mut item);
                NewItem {
                    item,
                    agent: agent.clone(),
                }
            })
            .collect();
        match conversations::append(store, &self.caller.namespace, &self.conversation, items).await
        {
            Ok(_) => Ok(()),
            // Deleted while the completion ran.
            Err(ConversationError::ConversationNotFound) => Err(not_found(&self.conversation)),
            Err(ConversationError::Store(error)) => Err(memory::store_error(error)),
            Err(ConversationError::ItemTooLarge { bytes, limit, .. }) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!(
                    "the turn cannot be recorded: one of its items is {bytes} bytes, more than \
                     the conversation item limit of {limit}; nothing was recorded"
                ),
            )
            .code("item_too_large")),
            Err(other) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                format!("the turn could not be recorded: {other}"),
            )
            .code("memory_error")),
        }
    }
}

/// What a stream's client was sent of the answer (choice 0), gathered as it goes out: text,
/// refusal and tool calls. Each chunk is read with a borrowed, typed probe.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    text: String,
    refusal: Option<String>,
    calls: Vec<CallParts>,
}

#[derive(Debug, Default)]
struct CallParts {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceProbe<'a>>>,
}

#[derive(Deserialize)]
struct ChoiceProbe<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<DeltaProbe<'a>>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<CallProbe<'a>>>,
}

#[derive(Deserialize)]
struct CallProbe<'a> {
    #[serde(default)]
    index: usize,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<FunctionProbe<'a>>,
}

#[derive(Deserialize)]
struct FunctionProbe<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// Tool calls one answer may make, at most: a chunk naming a larger index is not believed.
const MAX_CALLS: usize = 128;

impl Reply {
    /// Takes one chunk the client was sent (JSON of a `chat.completion.chunk`).
    pub(crate) fn record(&mut self, json: &str) {
        let Ok(chunk) = serde_json::from_str::<ChunkProbe<'_>>(json) else {
            return;
        };
        let choices = chunk.choices.into_iter().flatten();
        for delta in choices.filter(|c| c.index == 0).filter_map(|c| c.delta) {
            if let Some(text) = delta.content {
                self.text.push_str(&text);
            }
            if let Some(refusal) = delta.refusal {
                self.refusal.get_or_insert_default().push_str(&refusal);
            }
            for call in delta.tool_calls.into_iter().flatten() {
                if call.index >= MAX_CALLS {
                    continue;
                }
                if self.calls.len() <= call.index {
                    self.calls.resize_with(call.index + 1, CallParts::default);
                }
                let parts = &mut self.calls[call.index];
                if let Some(id) = call.id {
                    parts.id.push_str(&id);
                }
                if let Some(function) = call.function {
                    if let Some(name) = function.name {
                        parts.name.push_str(&name);
                    }
                    if let Some(arguments) = function.arguments {
                        parts.arguments.push_str(&arguments);
                    }
                }
            }
        }
    }

    /// The answer as a chat assistant message.
    pub(crate) fn message(&self) -> Value {
        let mut message = serde_json::json!({"role": "assistant", "content": self.text});
        if let Some(refusal) = &self.refusal {
            message["refusal"] = Value::String(refusal.clone());
        }
        if !self.calls.is_empty() {
            let calls: Vec<Value> = self
                .calls
                .iter()
                .map(|c| {
                    serde_json::json!({"id": c.id, "type": "function",
                                       "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            message["tool_calls"] = Value::Array(calls);
        }
        message
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use http::HeaderValue;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_header_is_checked_and_brings_the_caller() {
        assert_eq!(
            requested(&Principal::Open, &HeaderMap::new()).unwrap(),
            None
        );
        let mut headers = HeaderMap::new();
        headers.insert(CONVERSATION_HEADER, HeaderValue::from_static("conv_abc-1"));
        headers.insert("x-aigw-namespace", HeaderValue::from_static("team-a"));
        headers.insert("x-aigw-agent", HeaderValue::from_static("planner"));
        let asked = requested(&Principal::Open, &headers).unwrap().unwrap();
        assert_eq!(asked.conversation, "conv_abc-1");
        assert_eq!(asked.caller.namespace.as_str(), "team-a");
        assert_eq!(asked.caller.agent.as_deref(), Some("planner"));
        for bad in ["", "conv/../x", "conv abc", &"c".repeat(129)] {
            headers.insert(CONVERSATION_HEADER, HeaderValue::from_str(bad).unwrap());
            let e = requested(&Principal::Open, &headers).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert_eq!(e.param.as_deref(), Some(CONVERSATION_HEADER));
        }
        headers.insert(CONVERSATION_HEADER, HeaderValue::from_static("conv_1"));
        headers.insert("x-aigw-namespace", HeaderValue::from_static("a/b"));
        let e = requested(&Principal::Open, &headers).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("x-aigw-namespace"));
    }

    #[test]
    fn a_reply_gathers_text_and_tool_calls_from_deltas() {
        let mut reply = Reply::default();
        for chunk in [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "Hello"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": " world"}}]}),
            // Another choice is not the answer recorded.
            json!({"choices": [{"index": 1, "delta": {"content": "other"}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "{\"a\":"}},
                {"index": 1, "id": "c2", "function": {"name": "g", "arguments": "{}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "1}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 1}}),
        ] {
            reply.record(&chunk.to_string());
        }
        reply.record("not json");
        assert_eq!(
            reply.message(),
            json!({"role": "assistant", "content": "Hello world", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ]})
        );
    }
}
