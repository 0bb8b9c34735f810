//! The request head: the few fields of a chat completion the gateway itself needs. Everything
//! else stays in the raw body for the plugin; parsing it also validates the whole body as JSON
//! and checks its shape and size ([`super::shape`]): the one parse on the host.

use std::borrow::Cow;

use http::StatusCode;

use super::shape::{self, Problem};
use crate::error::ApiError;

/// The longest model name a request may name. Model names are echoed in headers
/// (`x-aigw-target`), error messages and log lines, and a `provider/model` named directly is
/// remembered with its route: a cap keeps all of those small (OpenAI's and every provider's model
/// ids are far shorter).
pub(crate) const MAX_MODEL_NAME_BYTES: usize = 256;

/// What the gateway read from a valid request body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head<'a> {
    pub(crate) model: Cow<'a, str>,
    /// The body as text, for the plugin (it was just validated as JSON).
    pub(crate) text: &'a str,
    pub(crate) stream: bool,
    /// `stream_options.include_usage`: forward the final usage chunk.
    pub(crate) include_usage: bool,
    /// Some `tools` entry names aigw tools (`{"type": "aigw_tool", "name": …}`).
    pub(crate) aigw_tools: bool,
}

/// Parses and validates a chat completion body; the error names the field or the position.
pub(crate) fn parse(body: &[u8]) -> Result<Head<'_>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::invalid_request(format!(
            "request body is not valid JSON: it is not UTF-8 (at byte {})",
            e.valid_up_to()
        ))
        .code("invalid_json")
    })?;
    let fields = shape::check(text).map_err(|(problem, e)| match problem {
        Some(problem) => refused(problem),
        None => ApiError::invalid_request(format!(
            "request body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
        .code("invalid_json"),
    })?;
    let Some(model) = fields.model else {
        return Err(
            ApiError::invalid_request("you must provide a model parameter")
                .param("model")
                .code("missing_model"),
        );
    };
    if model.len() > MAX_MODEL_NAME_BYTES {
        return Err(ApiError::invalid_request(format!(
            "the model name is {} bytes long; at most {MAX_MODEL_NAME_BYTES} are allowed",
            model.len()
        ))
        .param("model")
        .code("model_name_too_long"));
    }
    if !fields.messages {
        return Err(
            ApiError::invalid_request("Missing required parameter: 'messages'.")
                .param("messages")
                .code("missing_required_parameter"),
        );
    }
    Ok(Head {
        model,
        text,
        stream: fields.stream.unwrap_or(false),
        include_usage: fields.include_usage.unwrap_or(false),
        aigw_tools: fields.aigw_tools,
    })
}

/// The client's error for a body of the wrong shape (400) or with too many values (413).
fn refused(problem: Problem) -> ApiError {
    let mut error = if problem.too_large {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            problem.message,
        )
    } else {
        ApiError::invalid_request(problem.message)
    }
    .code(problem.code);
    error.param = problem.param.map(Cow::Owned);
    error
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};

    use super::*;
    use crate::chat::shape::MAX_JSON_VALUES;

    /// The error for a body: its status, `param` and `code`.
    fn refusal(body: &Value) -> (u16, Option<String>, &'static str) {
        let e = parse(body.to_string().as_bytes()).unwrap_err();
        (
            e.status.as_u16(),
            e.param.map(|p| p.into_owned()),
            e.code.unwrap_or(""),
        )
    }

    fn with_messages(messages: Value) -> Value {
        json!({"model": "m", "messages": messages})
    }

    #[test]
    fn a_valid_body_gives_model_stream_and_usage_option() {
        let body = br#"{"model":"fast","stream":true,"stream_options":{"include_usage":true},
                        "messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#;
        let head = parse(body).unwrap();
        assert_eq!(head.model, "fast");
        assert!(head.stream && head.include_usage);
        assert_eq!(head.text.len(), body.len());
        let plain = parse(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert!(!plain.stream && !plain.include_usage);
        let escaped = parse(br#"{"model":"p\/m","messages":[{"role":"user","content":"a"}]}"#);
        assert_eq!(escaped.unwrap().model, "p/m");
    }

    #[test]
    fn an_aigw_tool_entry_is_noticed_by_the_shape_pass() {
        let tooled = |tools: Value| {
            let body = json!({"model": "m", "messages": [{"role": "user", "content": "a"}],
                              "tools": tools, "response_format": {"type": "aigw_tool"}});
            parse(body.to_string().as_bytes()).unwrap().aigw_tools
        };
        assert!(tooled(
            json!([{"type": "function", "function": {"name": "f"}},
                              {"type": "aigw_tool", "name": "weather_*"}])
        ));
        assert!(!tooled(
            json!([{"type": "function", "function": {"name": "aigw_tool"}}])
        ));
        // Elsewhere (here `response_format.type`) the word means nothing.
        assert!(!tooled(Value::Null));
        // A tool entry's other values are still counted and its type may be anything.
        assert!(!tooled(json!([{"type": 7, "function": {"name": "f"}}])));
    }

    #[test]
    fn every_shape_a_real_conversation_uses_passes() {
        let body = json!({
            "model": "m",
            "stream": false,
            "stream_options": null,
            "max_tokens": 100, "max_completion_tokens": null, "n": 1, "seed": -3,
            "temperature": 1, "top_p": 0.5, "presence_penalty": -0.5,
            "stop": ["\n\n", "END"], "user": "u-1", "logprobs": false, "top_logprobs": 2,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_object"},
            "parallel_tool_calls": true,
            "metadata": {"anything": [1, "goes", {"here": null}]},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "really"}]},
                {"role": "user", "name": "ann", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
                {"role": "assistant", "tool_calls": [{"id": "c2", "type": "function",
                    "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "43"}]},
                {"role": "function", "name": "f", "content": null},
                {"role": "assistant", "content": "it is 42", "refusal": null},
                {"role": "assistant", "content": null, "refusal": "no"},
                {"role": "user", "content": ""}
            ]
        });
        let text = body.to_string();
        assert_eq!(parse(text.as_bytes()).unwrap().model, "m");
        // `stop` may be a single string too.
        let mut one_stop = body.clone();
        one_stop["stop"] = json!("END");
        parse(one_stop.to_string().as_bytes()).unwrap();
    }

    #[test]
    fn each_malformed_message_is_refused_naming_the_field() {
        let user = |content: Value| json!({"role": "user", "content": content});
        for (messages, param, code) in [
            (json!("hi"), "messages", "invalid_type"),
            (json!([1, 2, 3]), "messages[0]", "invalid_type"),
            (json!({"role": "user"}), "messages", "invalid_type"),
            (json!([]), "messages", "empty_array"),
            (
                json!([user(json!("a")), "b"]),
                "messages[1]",
                "invalid_type",
            ),
            (
                json!([{"content": "a"}]),
                "messages[0].role",
                "missing_required_parameter",
            ),
            (
                json!([{"role": 7, "content": "a"}]),
                "messages[0].role",
                "invalid_type",
            ),
            (
                json!([{"role": "boss", "content": "a"}]),
                "messages[0].role",
                "invalid_value",
            ),
            (
                json!([{"role": "user"}]),
                "messages[0].content",
                "missing_required_parameter",
            ),
            (
                json!([user(Value::Null)]),
                "messages[0].content",
                "invalid_type",
            ),
            (
                json!([user(json!(5))]),
                "messages[0].content",
                "invalid_type",
            ),
            (
                json!([user(json!({"text": "a"}))]),
                "messages[0].content",
                "invalid_type",
            ),
            (
                json!([user(json!(["a"]))]),
                "messages[0].content[0]",
                "invalid_type",
            ),
            (
                json!([user(json!([{"text": "a"}]))]),
                "messages[0].content[0].type",
                "missing_required_parameter",
            ),
            (
                json!([user(json!([{"type": "text", "text": "a"}, {"type": 1}]))]),
                "messages[0].content[1].type",
                "invalid_type",
            ),
            (
                json!([user(json!("a")), {"role": "assistant", "content": null}]),
                "messages[1].content",
                "invalid_type",
            ),
            (
                json!([user(json!("a")), {"role": "assistant"}]),
                "messages[1].content",
                "missing_required_parameter",
            ),
            (
                json!([{"role": "assistant", "tool_calls": "f()"}]),
                "messages[0].tool_calls",
                "invalid_type",
            ),
            (
                json!([{"role": "assistant", "tool_calls": [{"id": "c"}, 3]}]),
                "messages[0].tool_calls[1]",
                "invalid_type",
            ),
            (
                json!([{"role": "tool", "content": "42"}]),
                "messages[0].tool_call_id",
                "missing_required_parameter",
            ),
            (
                json!([{"role": "tool", "tool_call_id": 1, "content": "42"}]),
                "messages[0].tool_call_id",
                "invalid_type",
            ),
            (
                json!([
                    user(json!("a")),
                    user(json!("b")),
                    user(json!("c")),
                    user(json!(false))
                ]),
                "messages[3].content",
                "invalid_type",
            ),
        ] {
            let body = with_messages(messages.clone());
            assert_eq!(
                refusal(&body),
                (400, Some(param.to_owned()), code),
                "messages: {messages}"
            );
        }
    }

    #[test]
    fn the_common_scalar_fields_must_have_their_types() {
        for (field, value) in [
            ("stream", json!("yes")),
            ("stream", json!(1)),
            ("max_tokens", json!("100")),
            ("max_tokens", json!(1.5)),
            ("max_completion_tokens", json!([1])),
            ("n", json!(true)),
            ("temperature", json!("hot")),
            ("top_p", json!({})),
            ("stop", json!(4)),
            ("tools", json!({"type": "function"})),
            ("tool_choice", json!(1)),
            ("user", json!(["u"])),
            ("stream_options", json!("usage")),
            ("model", json!(["m"])),
        ] {
            let mut body = with_messages(json!([{"role": "user", "content": "a"}]));
            body[field] = value.clone();
            assert_eq!(
                refusal(&body),
                (400, Some(field.to_owned()), "invalid_type"),
                "{field}: {value}"
            );
        }
        let mut body = with_messages(json!([{"role": "user", "content": "a"}]));
        body["stop"] = json!(["a", 1]);
        assert_eq!(refusal(&body).1.as_deref(), Some("stop[1]"));
        body["stop"] = Value::Null;
        body["tools"] = json!([{"type": "function"}, "f"]);
        assert_eq!(refusal(&body).1.as_deref(), Some("tools[1]"));
        body["tools"] = Value::Null;
        body["stream_options"] = json!({"include_usage": "yes"});
        assert_eq!(
            refusal(&body).1.as_deref(),
            Some("stream_options.include_usage")
        );
    }

    #[test]
    fn messages_say_what_was_expected_and_quote_little() {
        let e = parse(with_messages(json!("hi")).to_string().as_bytes()).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid type for 'messages': expected an array of objects, but got a string instead."
        );
        let role = "r".repeat(10_000);
        let body = with_messages(json!([{"role": role, "content": "a"}]));
        let e = parse(body.to_string().as_bytes()).unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message);
        assert!(
            e.message
                .starts_with("Invalid value for 'messages[0].role': 'rrr"),
            "{}",
            e.message
        );
        let body = json!({"model": "m", "stream": "x".repeat(10_000), "messages": []});
        let e = parse(body.to_string().as_bytes()).unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message);
    }

    #[test]
    fn a_body_with_too_many_values_is_refused_however_small_its_values() {
        let items = vec![0u8; MAX_JSON_VALUES];
        let body =
            json!({"model": "m", "messages": [{"role": "user", "content": "a"}], "x": items});
        let e = parse(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.code, Some("too_many_values"));
        // Counted inside messages as well: a content part list of empty objects.
        let parts: Vec<Value> = (0..MAX_JSON_VALUES)
            .map(|_| json!({"type": "text"}))
            .collect();
        let body = with_messages(json!([{"role": "user", "content": parts}]));
        let e = parse(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.code, Some("too_many_values"));
        // Just below the cap passes.
        let items = vec![0u8; MAX_JSON_VALUES - 10];
        let body =
            json!({"model": "m", "messages": [{"role": "user", "content": "a"}], "x": items});
        parse(body.to_string().as_bytes()).unwrap();
    }

    #[test]
    fn nesting_is_bounded_by_the_parser() {
        let deep = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"a"}}],"x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let e = parse(deep.as_bytes()).unwrap_err();
        assert_eq!(e.code, Some("invalid_json"));
        assert!(e.message.contains("recursion limit"), "{}", e.message);
    }

    #[test]
    fn bad_bodies_name_the_field_or_the_position() {
        let messages = r#"[{"role":"user","content":"a"}]"#;
        let e = parse(format!(r#"{{"messages":{messages}}}"#).as_bytes()).unwrap_err();
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("model"), Some("missing_model"))
        );
        let e = parse(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("messages"), Some("missing_required_parameter"))
        );
        let e = parse(b"{\"model\":\"m\xff\"}").unwrap_err();
        assert_eq!(e.code, Some("invalid_json"));
        assert!(
            e.message.contains("not UTF-8 (at byte 11)"),
            "{}",
            e.message
        );
        let e = parse(b"{\"model\":\n \"m\",}").unwrap_err();
        assert_eq!(e.code, Some("invalid_json"));
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = parse(br#"[{"model":"m"}]"#).unwrap_err();
        assert_eq!((e.param.as_deref(), e.code), (None, Some("invalid_type")));
        let e =
            parse(format!(r#"{{"model":"m","messages":{messages}}} x"#).as_bytes()).unwrap_err();
        assert_eq!(e.code, Some("invalid_json"));
        let long = format!(
            r#"{{"model":"p/{}","messages":{messages}}}"#,
            "x".repeat(MAX_MODEL_NAME_BYTES)
        );
        let e = parse(long.as_bytes()).unwrap_err();
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("model"), Some("model_name_too_long"))
        );
        assert!(
            e.message.len() < 100,
            "the name is not echoed: {}",
            e.message
        );
    }
}
