//! Continuing a stream that broke after commitment, as pure functions over what the client
//! received: the [`Transcript`] of the answer so far, the request bodies that ask another
//! target to carry on from it ([`continuation_bodies`]), and the rewrite that makes the
//! continuing target's chunks belong to the client's stream ([`rejoin`]).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// The most answer text kept for continuing a broken stream; a longer answer that breaks ends
/// with an error event instead.
pub(crate) const MAX_TRANSCRIPT_BYTES: usize = 4 << 20;

/// What the gateway asks a target that continues another's broken answer without prefill.
pub(crate) const CONTINUE_PROMPT: &str = "Continue your previous answer exactly where it \
     stopped. Do not repeat anything already written and do not add any preamble.";

/// What the client has received of a stream, enough to continue it elsewhere: the stream's id
/// and the answer text. Each chunk is read with a borrowed, typed probe (no tree; unknown fields
/// skipped), so a long stream costs its text in memory, not its JSON.
#[derive(Default)]
pub(crate) struct Transcript {
    id: Option<String>,
    text: String,
    /// Tool calls were streamed, another choice appeared, a chunk did not parse, the answer
    /// finished, or the text passed its cap: the answer cannot be continued.
    stuck: bool,
}

#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<ChoiceProbe<'a>>,
}

#[derive(Deserialize)]
struct ChoiceProbe<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<DeltaProbe<'a>>,
    /// Set on the chunk that ends the answer (null before).
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct DeltaProbe<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    tool_calls: Option<IgnoredAny>,
}

impl Transcript {
    /// A transcript that records nothing: for a stream that has no other target to continue
    /// on, reading its chunks would be work for nothing.
    pub(crate) fn off() -> Transcript {
        Transcript {
            stuck: true,
            ..Transcript::default()
        }
    }

    pub(crate) fn record(&mut self, json: &str) {
        if self.stuck {
            return;
        }
        let Ok(chunk) = serde_json::from_str::<ChunkProbe<'_>>(json) else {
            self.stuck = true;
            return;
        };
        if self.id.is_none() {
            self.id = chunk.id.map(Cow::into_owned);
        }
        for choice in chunk.choices {
            // The client has the whole answer: a break after this (e.g. while the decoder reads
            // usage) has nothing to continue, and continuing would add to a finished answer.
            if choice.finish_reason.is_some() {
                self.stuck = true;
                self.text = String::new();
                return;
            }
            let Some(delta) = choice.delta else { continue };
            if choice.index != 0 || delta.tool_calls.is_some() {
                self.stuck = true;
                return;
            }
            if let Some(content) = delta.content {
                self.text.push_str(&content);
            }
        }
        if self.text.len() > MAX_TRANSCRIPT_BYTES {
            self.stuck = true;
            self.text = String::new();
        }
    }

    /// The stream's id and the answer text so far; `None` when the answer cannot be continued.
    pub(crate) fn partial(&self) -> Option<(Option<String>, &str)> {
        (!self.stuck).then(|| (self.id.clone(), self.text.as_str()))
    }
}

/// The request bodies that ask a target to continue a broken answer.
#[derive(Debug)]
pub(crate) struct Continuation {
    /// The partial answer as the last (assistant) message, for targets that continue it.
    pub(crate) prefill: String,
    /// The partial answer followed by a user message asking to continue, for the others.
    pub(crate) prompt: String,
}

impl Continuation {
    /// The body for a target: prefill where it continues a partial assistant message.
    pub(crate) fn body_for(&self, prefill: bool) -> &str {
        if prefill { &self.prefill } else { &self.prompt }
    }
}

/// The continuation requests for a partial answer (the client's request with the partial
/// answer appended), or `None` if the client's body cannot be extended.
pub(crate) fn continuation_bodies(body: &[u8], partial: &str) -> Option<Continuation> {
    let mut request: Value = serde_json::from_slice(body).ok()?;
    let messages = request.get_mut("messages")?.as_array_mut()?;
    if partial.is_empty() {
        // Nothing reached the client but the role: a fresh answer is a continuation.
        let text = request.to_string();
        return Some(Continuation {
            prefill: text.clone(),
            prompt: text,
        });
    }
    messages.push(serde_json::json!({"role": "assistant", "content": partial}));
    let prefill = request.to_string();
    let messages = request.get_mut("messages")?.as_array_mut()?;
    messages.push(serde_json::json!({"role": "user", "content": CONTINUE_PROMPT}));
    Some(Continuation {
        prefill,
        prompt: request.to_string(),
    })
}

/// Rewrites a continuing target's chunk to belong to the stream the client already has: the
/// original `id`, and no second `role`.
pub(crate) fn rejoin(json: &str, id: Option<&str>) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    if let (Some(id), Some(object)) = (id, value.as_object_mut()) {
        object.insert("id".to_owned(), Value::String(id.to_owned()));
    }
    if let Some(choices) = value.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            if let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) {
                delta.remove("role");
            }
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn chunk(id: &str, delta: Value) -> String {
        serde_json::json!({"id": id, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        .to_string()
    }

    #[test]
    fn the_transcript_gives_the_stream_id_and_the_text_so_far() {
        let mut t = Transcript::default();
        t.record(&chunk(
            "c1",
            serde_json::json!({"role": "assistant", "content": ""}),
        ));
        t.record(&chunk("c1", serde_json::json!({"content": "Hello"})));
        t.record(&chunk("c2", serde_json::json!({"content": " wor"})));
        // A usage chunk has no choices.
        t.record(r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":1}}"#);
        assert_eq!(t.partial(), Some((Some("c1".to_owned()), "Hello wor")));
    }

    #[test]
    fn a_finished_answer_cannot_be_continued() {
        let mut t = Transcript::default();
        t.record(&chunk("c1", serde_json::json!({"content": "Hello"})));
        assert!(t.partial().is_some());
        t.record(
            &serde_json::json!({"id": "c1", "choices": [{"index": 0, "delta": {},
                                 "finish_reason": "stop"}]})
            .to_string(),
        );
        assert_eq!(t.partial(), None);
    }

    #[test]
    fn a_transcript_that_is_off_records_nothing() {
        let mut t = Transcript::off();
        t.record(&chunk("c1", serde_json::json!({"content": "Hello"})));
        assert_eq!(t.partial(), None);
    }

    #[test]
    fn streamed_tool_calls_and_other_choices_cannot_be_continued() {
        let mut t = Transcript::default();
        t.record(&chunk(
            "c1",
            serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
        ));
        assert_eq!(t.partial(), None);
        let mut t = Transcript::default();
        t.record(
            &serde_json::json!({"id": "c", "choices": [{"index": 1, "delta": {"content": "x"}}]})
                .to_string(),
        );
        assert_eq!(t.partial(), None);
        let mut t = Transcript::default();
        t.record("{not json");
        assert_eq!(t.partial(), None);
    }

    #[test]
    fn a_transcript_past_its_cap_turns_continuation_off() {
        let mut t = Transcript::default();
        let big = "x".repeat(MAX_TRANSCRIPT_BYTES / 2 + 1);
        t.record(&chunk("c", serde_json::json!({ "content": big })));
        t.record(&chunk("c", serde_json::json!({ "content": big })));
        assert_eq!(t.partial(), None);
        assert!(t.text.is_empty(), "the memory is given back");
    }

    #[test]
    fn continuation_bodies_append_the_partial_answer_and_for_prompts_a_request_to_go_on() {
        let body = br#"{"model":"fast","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let c = continuation_bodies(body, "Hello wor").unwrap();
        let prefill: Value = serde_json::from_str(c.body_for(true)).unwrap();
        let messages = prefill["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[1],
            serde_json::json!({"role": "assistant", "content": "Hello wor"})
        );
        assert_eq!(prefill["stream"], true);
        let prompt: Value = serde_json::from_str(c.body_for(false)).unwrap();
        let messages = prompt["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["content"], "Hello wor");
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"], CONTINUE_PROMPT);
        // Nothing but the role went out: start over, unchanged.
        let fresh = continuation_bodies(body, "").unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&fresh.prompt).unwrap()["messages"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(continuation_bodies(br#"{"model":"m"}"#, "x").is_none());
    }

    #[test]
    fn rejoined_chunks_take_the_first_streams_id_and_drop_the_second_role() {
        let next = chunk(
            "other",
            serde_json::json!({"role": "assistant", "content": " more"}),
        );
        let joined: Value = serde_json::from_str(&rejoin(&next, Some("c1"))).unwrap();
        assert_eq!(joined["id"], "c1");
        assert_eq!(
            joined["choices"][0]["delta"],
            serde_json::json!({"content": " more"})
        );
        assert_eq!(rejoin("not json", Some("c1")), "not json");
    }
}
