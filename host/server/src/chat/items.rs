//! Conversation items and chat messages, both ways, as pure functions: a conversation's history
//! (Responses items) as the chat messages a completion is sent ([`history`], within its item and
//! token budget), and a turn's chat messages and answer as the items recorded for it
//! ([`input_items`], [`answer_items`]).
//!
//! The mapping: a `message` item is a message of its role with its text (images kept as image
//! parts); adjacent `function_call` items are one assistant message with `tool_calls` (joined to
//! the assistant's text just before them, as a chat answer with both would have been); a
//! `function_call_output` is a `tool` message. Other item kinds (reasoning, web search calls)
//! have no chat form and are left out.

use serde_json::{Map, Value, json};

use super::continuation::estimate_tokens;

/// A conversation item's fields (a Responses item).
pub(crate) type ItemFields = Map<String, Value>;

/// The roles whose messages instruct rather than converse: kept whatever the budget, and never
/// recorded from a request (a client sends its own instructions every turn).
pub(crate) fn is_instruction(message: &Value) -> bool {
    matches!(
        message.get("role").and_then(Value::as_str),
        Some("system" | "developer")
    )
}

/// The chat messages of a conversation's history (`items`, oldest first), within `max_tokens`
/// (estimated from their text): the oldest dropped first, a tool call with its results as one,
/// system and developer messages always kept. Results whose call is not in the history (the item
/// limit cut it off) are left out, as a model would refuse a result without its call.
pub(crate) fn history<'a>(
    items: impl IntoIterator<Item = &'a ItemFields>,
    max_tokens: u32,
) -> Vec<Value> {
    let messages = messages_of(items);
    // Units: a message with the tool results that follow it.
    let mut units: Vec<(usize, usize)> = Vec::new();
    for (at, message) in messages.iter().enumerate() {
        let is_result = message.get("role").and_then(Value::as_str) == Some("tool");
        match units.last_mut() {
            Some((_, end)) if is_result => *end = at + 1,
            // An orphaned result at the start: its call was cut off.
            None if is_result => {}
            _ => units.push((at, at + 1)),
        }
    }
    let cost = |&(start, end): &(usize, usize)| -> u64 {
        messages[start..end]
            .iter()
            .map(|m| u64::from(estimate_tokens(chars_of(m))))
            .sum()
    };
    let mut total: u64 = units.iter().map(cost).sum();
    let mut kept = vec![true; units.len()];
    for (unit, keep) in units.iter().zip(kept.iter_mut()) {
        if total <= u64::from(max_tokens) {
            break;
        }
        if !is_instruction(&messages[unit.0]) {
            *keep = false;
            total -= cost(unit);
        }
    }
    let mut out = Vec::new();
    let mut messages: Vec<Option<Value>> = messages.into_iter().map(Some).collect();
    for (&(start, end), keep) in units.iter().zip(kept) {
        if keep {
            out.extend(messages[start..end].iter_mut().filter_map(Option::take));
        }
    }
    out
}

/// Every item with a chat form, as chat messages in order (adjacent calls grouped).
fn messages_of<'a>(items: impl IntoIterator<Item = &'a ItemFields>) -> Vec<Value> {
    let mut messages: Vec<Value> = Vec::new();
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            // An item without a type is a message (the Responses API's easy input form).
            Some("message") | None => {
                let Some(role) = item.get("role").and_then(Value::as_str) else {
                    continue;
                };
                let content = chat_content(item.get("content"));
                messages.push(json!({"role": role, "content": content}));
            }
            Some("function_call") => {
                let call = json!({
                    "id": text_field(item, "call_id"),
                    "type": "function",
                    "function": {
                        "name": text_field(item, "name"),
                        "arguments": text_field(item, "arguments"),
                    },
                });
                // Joined to the assistant message just before: the calls of one answer.
                let joins = messages
                    .last()
                    .is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
                if let Some(last) = messages.last_mut().filter(|_| joins) {
                    if let Some(calls) = last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                        calls.push(call);
                    } else if let Some(object) = last.as_object_mut() {
                        object.insert("tool_calls".to_owned(), Value::Array(vec![call]));
                    }
                } else {
                    messages
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
                }
            }
            Some("function_call_output") => {
                let output = match item.get("output") {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(parts)) => parts_text(parts),
                    _ => String::new(),
                };
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": text_field(item, "call_id"),
                    "content": output,
                }));
            }
            Some(_) => {}
        }
    }
    messages
}

fn text_field(item: &ItemFields, name: &str) -> String {
    item.get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// An item's content as a chat message's: its text as a string, or parts when it holds images.
fn chat_content(content: Option<&Value>) -> Value {
    let parts = match content {
        Some(Value::String(text)) => return Value::String(text.clone()),
        Some(Value::Array(parts)) => parts,
        _ => return Value::String(String::new()),
    };
    let image = |p: &Value| p.get("type").and_then(Value::as_str) == Some("input_image");
    if !parts.iter().any(image) {
        return Value::String(parts_text(parts));
    }
    let chat_parts: Vec<Value> = parts
        .iter()
        .filter_map(|part| {
            if image(part) {
                let url = part.get("image_url").and_then(Value::as_str)?;
                let detail = part.get("detail").and_then(Value::as_str).unwrap_or("auto");
                Some(json!({"type": "image_url", "image_url": {"url": url, "detail": detail}}))
            } else {
                part_text(part).map(|text| json!({"type": "text", "text": text}))
            }
        })
        .collect();
    Value::Array(chat_parts)
}

/// The text of a content part: `input_text`, `output_text`, `text`, or a refusal's reason.
fn part_text(part: &Value) -> Option<&str> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => part.get("text").and_then(Value::as_str),
        Some("refusal") => part.get("refusal").and_then(Value::as_str),
        _ => None,
    }
}

fn parts_text(parts: &[Value]) -> String {
    parts.iter().filter_map(part_text).collect()
}

/// The characters of a chat message's text, what its tokens are estimated from: contents,
/// text parts, and each tool call's name and arguments.
fn chars_of(message: &Value) -> usize {
    let chars = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, |t| t.chars().count());
    let content = match message.get("content") {
        Some(Value::Array(parts)) => parts.iter().map(|p| chars(p.get("text"))).sum(),
        other => chars(other),
    };
    let calls: usize = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| chars(c.pointer("/function/name")) + chars(c.pointer("/function/arguments")))
        .sum();
    content + calls
}

/// The items a turn's messages are recorded as: every message but instructions (system,
/// developer) and the legacy `function` role, in order.
pub(crate) fn input_items(messages: &[Value]) -> Vec<ItemFields> {
    let mut items = Vec::new();
    for message in messages {
        match message.get("role").and_then(Value::as_str) {
            Some("assistant") => assistant_items(message, &mut items),
            Some("tool") => items.push(object(json!({
                "type": "function_call_output",
                "call_id": message.get("tool_call_id").and_then(Value::as_str).unwrap_or_default(),
                "output": message_text(message.get("content")),
                "status": "completed",
            }))),
            Some("user") => items.push(message_item("user", input_parts(message.get("content")))),
            _ => {}
        }
    }
    items
}

/// The items an answer (a completion's `choices[0].message`) is recorded as: its text as an
/// assistant message, its tool calls as function calls.
pub(crate) fn answer_items(message: &Value) -> Vec<ItemFields> {
    let mut items = Vec::new();
    assistant_items(message, &mut items);
    items
}

/// An assistant message's items: its text (or refusal) as a message, then each tool call.
fn assistant_items(message: &Value, items: &mut Vec<ItemFields>) {
    let text = message_text(message.get("content"));
    let refusal = message.get("refusal").and_then(Value::as_str);
    let calls = message.get("tool_calls").and_then(Value::as_array);
    if !text.is_empty() || (refusal.is_none() && calls.is_none_or(Vec::is_empty)) {
        items.push(message_item(
            "assistant",
            vec![json!({"type": "output_text", "text": text, "annotations": []})],
        ));
    }
    if let Some(refusal) = refusal {
        items.push(message_item(
            "assistant",
            vec![json!({"type": "refusal", "refusal": refusal})],
        ));
    }
    for call in calls.into_iter().flatten() {
        let field = |pointer: &str| {
            call.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        items.push(object(json!({
            "type": "function_call",
            "call_id": field("/id"),
            "name": field("/function/name"),
            "arguments": field("/function/arguments"),
            "status": "completed",
        })));
    }
}

fn message_item(role: &str, content: Vec<Value>) -> ItemFields {
    object(json!({"type": "message", "role": role, "content": content, "status": "completed"}))
}

fn object(value: Value) -> ItemFields {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A chat content's text: the string, or its text parts joined.
fn message_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// A user message's content as input parts: text as `input_text`, images as `input_image`
/// (other parts, audio and files, have no item form here and are left out).
fn input_parts(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let text = part.get("text").and_then(Value::as_str)?;
                    Some(json!({"type": "input_text", "text": text}))
                }
                Some("image_url") => {
                    let url = part.pointer("/image_url/url").and_then(Value::as_str)?;
                    let detail = part
                        .pointer("/image_url/detail")
                        .and_then(Value::as_str)
                        .unwrap_or("auto");
                    Some(json!({"type": "input_image", "image_url": url, "detail": detail}))
                }
                _ => None,
            })
            .collect(),
        other => vec![json!({"type": "input_text", "text": message_text(other)})],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn items(values: Value) -> Vec<ItemFields> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    }

    fn said(role: &str, text: &str) -> Value {
        let kind = if role == "assistant" {
            "output_text"
        } else {
            "input_text"
        };
        json!({"type": "message", "role": role, "status": "completed",
               "content": [{"type": kind, "text": text}]})
    }

    fn call(id: &str, name: &str) -> Value {
        json!({"type": "function_call", "call_id": id, "name": name, "arguments": "{\"city\":\"Paris\"}"})
    }

    fn output(id: &str, text: &str) -> Value {
        json!({"type": "function_call_output", "call_id": id, "output": text})
    }

    #[test]
    fn items_become_messages_with_adjacent_calls_grouped() {
        let history = items(json!([
            said("system", "be brief"),
            said("user", "weather in Paris and London?"),
            call("c1", "weather"),
            call("c2", "weather"),
            output("c1", "sunny"),
            output("c2", "rain"),
            said("assistant", "Paris sunny, London rain."),
            {"type": "reasoning", "summary": []},
            said("user", "thanks"),
        ]));
        let messages = history.iter().collect::<Vec<_>>();
        let out = super::history(messages, u32::MAX);
        assert_eq!(
            Value::Array(out),
            json!([
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "weather in Paris and London?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": "rain"},
                {"role": "assistant", "content": "Paris sunny, London rain."},
                {"role": "user", "content": "thanks"},
            ])
        );
    }

    #[test]
    fn calls_join_the_assistant_text_before_them() {
        let history = items(json!([
            said("assistant", "let me look"),
            call("c1", "f"),
            output("c1", "42")
        ]));
        let out = super::history(&history, u32::MAX);
        assert_eq!(out[0]["content"], "let me look");
        assert_eq!(out[0]["tool_calls"][0]["id"], "c1");
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn the_oldest_go_first_and_instructions_stay() {
        // 40 characters each: 10 tokens each.
        let text = |c: char| c.to_string().repeat(40);
        let history = items(json!([
            said("user", &text('a')),
            said("developer", &text('d')),
            said("assistant", &text('b')),
            said("user", &text('c')),
            said("assistant", &text('e')),
        ]));
        let texts = |max| -> Vec<String> {
            super::history(&history, max)
                .iter()
                .map(|m| m["content"].as_str().unwrap()[..1].to_owned())
                .collect()
        };
        assert_eq!(texts(50), ["a", "d", "b", "c", "e"]);
        assert_eq!(texts(49), ["d", "b", "c", "e"]);
        assert_eq!(texts(30), ["d", "c", "e"]);
        assert_eq!(texts(20), ["d", "e"]);
        // The developer message stays even over the budget.
        assert_eq!(texts(0), ["d"]);
    }

    #[test]
    fn a_call_goes_with_its_results_and_orphaned_results_are_dropped() {
        let long = "x".repeat(400);
        let history = items(json!([
            // The item limit cut off this result's call.
            output("c0", "orphan"),
            said("user", "go"),
            call("c1", "f"),
            output("c1", &long),
            said("assistant", "done"),
        ]));
        let all = super::history(&history, u32::MAX);
        assert_eq!(all[0]["content"], "go", "the orphan is left out: {all:?}");
        // The result's 100 tokens do not fit in 50: the call goes with it, never alone.
        let out = super::history(&history, 50);
        assert_eq!(
            Value::Array(out),
            json!([{"role": "assistant", "content": "done"}])
        );
    }

    #[test]
    fn images_and_refusals_keep_their_meaning() {
        let history = items(json!([
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ]},
            {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "user", "content": "plain"},
        ]));
        let out = super::history(&history, u32::MAX);
        assert_eq!(
            out[0]["content"],
            json!([{"type": "text", "text": "what is this?"},
                   {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}])
        );
        assert_eq!(out[1], json!({"role": "assistant", "content": "no"}));
        assert_eq!(out[2], json!({"role": "user", "content": "plain"}));
    }

    #[test]
    fn a_turn_is_recorded_without_its_instructions() {
        let messages = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                                         {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "42"}]},
            {"role": "developer", "content": "mid-way"},
        ]);
        let items = input_items(messages.as_array().unwrap());
        assert_eq!(
            Value::Array(items.into_iter().map(Value::Object).collect()),
            json!([
                {"type": "message", "role": "user", "status": "completed", "content": [
                    {"type": "input_text", "text": "hi"},
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "status": "completed"},
                {"type": "function_call_output", "call_id": "c1", "output": "42", "status": "completed"},
            ])
        );
    }

    #[test]
    fn answers_are_a_message_or_calls_and_read_back_the_same() {
        let text = answer_items(&json!({"role": "assistant", "content": "it is 42"}));
        assert_eq!(
            Value::Object(text[0].clone()),
            json!({"type": "message", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": "it is 42", "annotations": []}]})
        );
        let answer = json!({"role": "assistant", "content": "checking", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]});
        let calls = answer_items(&answer);
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[1]["type"], "function_call");
        // What was recorded reads back as the answer it came from.
        let back = super::history(&calls, u32::MAX);
        assert_eq!(back, vec![answer]);
        // An empty answer is still a turn: an empty assistant message.
        let empty = answer_items(&json!({"role": "assistant", "content": null}));
        assert_eq!(empty[0]["content"][0]["text"], "");
    }
}
