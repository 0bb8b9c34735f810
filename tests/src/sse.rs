//! Reading Server-Sent Events the way an OpenAI client does.

use serde_json::Value;

/// One `data:` event of a stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `data: [DONE]`.
    Done,
    /// `data: <json>`.
    Json(Value),
    /// `data: <anything else>`, kept verbatim so a test can show it.
    Other(String),
}

impl Event {
    pub fn json(&self) -> Option<&Value> {
        match self {
            Event::Json(value) => Some(value),
            _ => None,
        }
    }
}

/// Splits an event-stream body into its `data` events. Comment lines (`:`) and other fields are
/// skipped; multi-line data is joined with `\n`; CRLF is tolerated.
pub fn parse(body: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    let mut flush = |data: &mut Option<String>| {
        if let Some(payload) = data.take() {
            events.push(if payload == "[DONE]" {
                Event::Done
            } else {
                match serde_json::from_str(&payload) {
                    Ok(value) => Event::Json(value),
                    Err(_) => Event::Other(payload),
                }
            });
        }
    };
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            flush(&mut data);
        } else if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(existing) => {
                    existing.push('\n');
                    existing.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    // An unterminated last event still counts: a cut stream may end without a blank line.
    flush(&mut data);
    events
}

/// What a client makes of a streamed chat completion.
#[derive(Debug, Default)]
pub struct Transcript {
    pub events: Vec<Event>,
    /// The concatenated `delta.content` of choice 0.
    pub content: String,
    /// Tool calls of choice 0 reassembled from their deltas, by index: `(id, name, arguments)`.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
    /// Chunks with `choices: []` and a `usage` object.
    pub usage_chunks: Vec<Value>,
    /// Frames carrying an `error` object.
    pub errors: Vec<Value>,
}

impl Transcript {
    pub fn from_body(body: &str) -> Transcript {
        let events = parse(body);
        let mut transcript = Transcript::default();
        for event in &events {
            let Some(chunk) = event.json() else { continue };
            if let Some(error) = chunk.get("error") {
                transcript.errors.push(error.clone());
                continue;
            }
            let choices = chunk.get("choices").and_then(Value::as_array);
            if choices.is_some_and(|c| c.is_empty())
                && chunk.get("usage").is_some_and(Value::is_object)
            {
                transcript.usage_chunks.push(chunk.clone());
            }
            for choice in choices.into_iter().flatten() {
                if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                    continue;
                }
                let delta = &choice["delta"];
                if let Some(text) = delta.get("content").and_then(Value::as_str) {
                    transcript.content.push_str(text);
                }
                for call in delta
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    transcript.add_tool_call_delta(call);
                }
                if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                    transcript.finish_reason = Some(reason.to_owned());
                }
            }
        }
        transcript.events = events;
        transcript
    }

    fn add_tool_call_delta(&mut self, delta: &Value) {
        let index = delta.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        while self.tool_calls.len() <= index {
            self.tool_calls.push(Default::default());
        }
        let call = &mut self.tool_calls[index];
        if let Some(id) = delta.get("id").and_then(Value::as_str) {
            call.0.push_str(id);
        }
        if let Some(name) = delta.pointer("/function/name").and_then(Value::as_str) {
            call.1.push_str(name);
        }
        if let Some(arguments) = delta.pointer("/function/arguments").and_then(Value::as_str) {
            call.2.push_str(arguments);
        }
    }

    /// Whether the last event is `[DONE]`.
    pub fn ends_with_done(&self) -> bool {
        self.events.last() == Some(&Event::Done)
    }

    /// Whether `[DONE]` appears anywhere.
    pub fn has_done(&self) -> bool {
        self.events.contains(&Event::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_data_events_done_and_comments() {
        let body = ": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\ndata: [DONE]\n\n";
        assert_eq!(
            parse(body),
            vec![Event::Json(serde_json::json!({"a": 1})), Event::Done]
        );
    }

    #[test]
    fn reassembles_tool_call_arguments_by_index() {
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
        );
        let t = Transcript::from_body(body);
        assert_eq!(
            t.tool_calls,
            vec![("call_1".into(), "f".into(), "{\"a\":1}".into())]
        );
        assert_eq!(t.finish_reason.as_deref(), Some("tool_calls"));
        assert!(!t.has_done());
    }
}
