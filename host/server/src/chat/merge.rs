//! The stream merge of a tool loop: several upstream streams (one per step of
//! [`super::tool_loop`]) reach the client as one answer. Content deltas go out as they arrive;
//! what belongs to the loop and not to the answer is held back: tool-call deltas (the step's
//! calls are known whole only at its end; the client gets only its own calls, re-indexed, in
//! one chunk), intermediate finish chunks, later steps' role deltas and usage chunks (the
//! summed usage goes out once, at the end, when the client asked for it). Every chunk carries
//! the first step's `id`, `created` and `model`, so the client sees one completion.

use aigw_runtime::Usage;
use serde_json::{Map, Value, json};

/// The answer's identity and what the steps so far held back.
#[derive(Debug, Default)]
pub(crate) struct Merge {
    id: Option<Value>,
    created: Option<Value>,
    model: Option<Value>,
    /// The first step's role delta went out; later ones are dropped.
    role_sent: bool,
    /// The current step's finish reason, held back until the loop knows whether it is the last.
    finish: Option<Value>,
}

impl Merge {
    /// One chunk of a step's upstream stream: what the client gets of it now, if anything.
    /// A chunk that is not a JSON object goes out untouched: judging it is not the merge's job.
    pub(crate) fn chunk(&mut self, json: &str) -> Option<String> {
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(json) else {
            return Some(json.to_owned());
        };
        self.identify(&mut chunk);
        let Some(Value::Array(choices)) = chunk.get_mut("choices") else {
            // A usage-only chunk without `choices`: summed and sent at the end.
            return None;
        };
        choices.retain_mut(|choice| self.keep(choice));
        if choices.is_empty() {
            return None;
        }
        chunk.remove("usage");
        Some(Value::Object(chunk).to_string())
    }

    /// The finish reason of the step that just ended (`stop` when it gave none).
    pub(crate) fn take_finish(&mut self) -> Value {
        self.finish.take().unwrap_or_else(|| json!("stop"))
    }

    /// The chunks that end the answer: the client's own tool calls (if any, as one delta,
    /// re-indexed from 0), the finish chunk, and the summed usage when the client asked for it.
    pub(crate) fn closing(
        &self,
        calls: &[Value],
        finish: Value,
        usage: Option<Usage>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if !calls.is_empty() {
            let deltas: Vec<Value> = calls
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
            out.push(self.frame(json!([{"index": 0, "delta": {"tool_calls": deltas}}]), None));
        }
        out.push(self.frame(
            json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
            None,
        ));
        if let Some(usage) = usage {
            out.push(self.frame(json!([]), Some(usage)));
        }
        out
    }

    /// A chunk of the answer, with its identity.
    fn frame(&self, choices: Value, usage: Option<Usage>) -> String {
        let mut chunk = Map::new();
        chunk.insert("id".to_owned(), self.id.clone().unwrap_or(json!("")));
        chunk.insert("object".to_owned(), json!("chat.completion.chunk"));
        chunk.insert(
            "created".to_owned(),
            self.created.clone().unwrap_or(json!(0)),
        );
        chunk.insert("model".to_owned(), self.model.clone().unwrap_or(json!("")));
        chunk.insert("choices".to_owned(), choices);
        if let Some(u) = usage {
            chunk.insert(
                "usage".to_owned(),
                json!({
                    "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens,
                    "total_tokens": u.total_tokens,
                }),
            );
        }
        Value::Object(chunk).to_string()
    }

    /// The first step's `id`, `created` and `model` name the answer; later steps' are replaced.
    fn identify(&mut self, chunk: &mut Map<String, Value>) {
        for (field, kept) in [
            ("id", &mut self.id),
            ("created", &mut self.created),
            ("model", &mut self.model),
        ] {
            match kept {
                Some(value) => {
                    chunk.insert(field.to_owned(), value.clone());
                }
                None => *kept = chunk.get(field).cloned(),
            }
        }
    }

    /// Strips a choice of what the loop holds back; false when nothing of it is left to send.
    fn keep(&mut self, choice: &mut Value) -> bool {
        let Some(choice) = choice.as_object_mut() else {
            return true;
        };
        if let Some(reason) = choice.get_mut("finish_reason")
            && !reason.is_null()
        {
            self.finish = Some(reason.take());
        }
        let Some(Value::Object(delta)) = choice.get_mut("delta") else {
            return false;
        };
        delta.remove("tool_calls");
        delta.remove("function_call");
        if delta.contains_key("role") {
            if self.role_sent {
                delta.remove("role");
            } else {
                self.role_sent = true;
            }
        }
        // Null fields some providers send beside the content say nothing.
        delta.retain(|_, v| !v.is_null());
        let said = !delta.is_empty();
        said || choice.get("logprobs").is_some_and(|l| !l.is_null())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn chunk(id: &str, created: u64, choice: Value) -> String {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": "m",
               "choices": [choice]})
        .to_string()
    }

    fn parsed(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_tool_step_sends_nothing_and_the_next_step_joins_the_first_ones_identity() {
        let mut merge = Merge::default();
        // Step 1: role, a tool call in two fragments, the finish chunk, a usage chunk.
        let role = merge
            .chunk(&chunk(
                "a",
                1,
                json!({"index": 0, "delta": {"role": "assistant", "content": null}}),
            ))
            .unwrap();
        assert_eq!(
            parsed(&role)["choices"][0]["delta"],
            json!({"role": "assistant"})
        );
        for choice in [
            json!({"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                   "function": {"name": "echo", "arguments": "{\"a\""}}]}}),
            json!({"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}),
            json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"}),
        ] {
            assert_eq!(merge.chunk(&chunk("a", 1, choice)), None);
        }
        let usage = json!({"id": "a", "choices": [], "usage": {"prompt_tokens": 3}}).to_string();
        assert_eq!(merge.chunk(&usage), None);
        assert_eq!(merge.take_finish(), json!("tool_calls"));
        // Step 2: its role is dropped, its content goes out under step 1's id and created.
        assert_eq!(
            merge.chunk(&chunk(
                "b",
                9,
                json!({"index": 0, "delta": {"role": "assistant"}})
            )),
            None
        );
        let text = merge
            .chunk(&chunk(
                "b",
                9,
                json!({"index": 0, "delta": {"content": "hi"}}),
            ))
            .unwrap();
        let text = parsed(&text);
        assert_eq!(
            (text["id"].clone(), text["created"].clone()),
            (json!("a"), json!(1))
        );
        assert_eq!(text["choices"][0]["delta"], json!({"content": "hi"}));
        assert_eq!(
            merge.chunk(&chunk(
                "b",
                9,
                json!({"index": 0, "delta": {}, "finish_reason": "stop"})
            )),
            None
        );
        assert_eq!(merge.take_finish(), json!("stop"));
        // With no finish chunk at all, the answer still ends with one.
        assert_eq!(merge.take_finish(), json!("stop"));
    }

    #[test]
    fn content_beside_a_tool_call_in_one_chunk_still_goes_out() {
        let mut merge = Merge::default();
        let out = merge
            .chunk(&chunk("a", 1, json!({"index": 0, "delta": {"content": "let me look",
                "tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]},
                "finish_reason": null})))
            .unwrap();
        assert_eq!(
            parsed(&out)["choices"][0],
            json!({"index": 0, "delta": {"content": "let me look"}, "finish_reason": null})
        );
    }

    #[test]
    fn the_closing_chunks_carry_the_clients_calls_reindexed_the_finish_and_the_summed_usage() {
        let mut merge = Merge::default();
        merge.chunk(&chunk(
            "a",
            5,
            json!({"index": 0, "delta": {"role": "assistant"}}),
        ));
        let call = json!({"id": "c2", "type": "function",
                          "function": {"name": "client_f", "arguments": "{}"}});
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 4,
            total_tokens: 14,
        };
        let out: Vec<Value> = merge
            .closing(&[call], json!("tool_calls"), Some(usage))
            .iter()
            .map(|j| parsed(j))
            .collect();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["id"], "a");
        assert_eq!(out[0]["created"], 5);
        assert_eq!(
            out[0]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "c2", "type": "function",
                    "function": {"name": "client_f", "arguments": "{}"}}])
        );
        assert_eq!(out[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out[2]["choices"], json!([]));
        assert_eq!(out[2]["usage"]["total_tokens"], 14);
        // Without calls nor usage: the finish chunk alone.
        assert_eq!(merge.closing(&[], json!("stop"), None).len(), 1);
    }

    #[test]
    fn a_chunk_that_is_not_an_object_goes_out_untouched() {
        let mut merge = Merge::default();
        assert_eq!(merge.chunk("[1]").as_deref(), Some("[1]"));
    }
}
