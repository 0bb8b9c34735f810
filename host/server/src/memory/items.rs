//! Conversation items as clients send them, checked and normalised into the one shape the
//! store keeps: the Responses item shapes (`message`, `function_call`, `function_call_output`)
//! the OpenAI SDKs send and parse. A message may come in the easy form without `type` (what
//! the Agents SDK sends) and with string content; it is stored with `type`, content parts and
//! a `status`, so every reader gets the full shape. A client's `id` is dropped: ids are the
//! store's.

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The roles a message item may have.
const ROLES: [&str; 4] = ["user", "assistant", "system", "developer"];

/// The `index`-th item of a request, normalised; a bad one is a 400 naming the field.
pub(crate) fn normalise(value: Value, index: usize) -> Result<Map<String, Value>, ApiError> {
    let at = |field: &str| format!("items[{index}]{field}");
    let Value::Object(mut item) = value else {
        return Err(
            ApiError::invalid_request(format!("{} must be an object", at(""))).param(at("")),
        );
    };
    item.remove("id");
    let kind = match item.get("type") {
        None if item.contains_key("role") => "message".to_owned(),
        None => {
            return Err(ApiError::invalid_request(format!(
                "{} is missing: an item is a message (with `role` and `content`), a \
                 function_call or a function_call_output",
                at(".type")
            ))
            .param(at(".type")));
        }
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(not_string(&at(".type"))),
    };
    match kind.as_str() {
        "message" => {
            let role = required_string(&item, "role", &at)?;
            if !ROLES.contains(&role.as_str()) {
                return Err(ApiError::invalid_request(format!(
                    "{} must be one of {}, not {role:?}",
                    at(".role"),
                    ROLES.join(", ")
                ))
                .param(at(".role")));
            }
            let content = match item.remove("content") {
                None | Some(Value::Null) => return Err(missing(&at(".content"))),
                Some(Value::String(text)) => {
                    let part = if role == "assistant" {
                        json!({"type": "output_text", "text": text, "annotations": []})
                    } else {
                        json!({"type": "input_text", "text": text})
                    };
                    vec![part]
                }
                Some(Value::Array(parts)) => parts
                    .into_iter()
                    .enumerate()
                    .map(|(n, part)| content_part(part, &at(&format!(".content[{n}]"))))
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(ApiError::invalid_request(format!(
                        "{} must be a string or a list of content parts",
                        at(".content")
                    ))
                    .param(at(".content")));
                }
            };
            item.insert("type".into(), json!("message"));
            item.insert("content".into(), Value::Array(content));
        }
        "function_call" => {
            for field in ["call_id", "name", "arguments"] {
                required_string(&item, field, &at)?;
            }
        }
        "function_call_output" => {
            required_string(&item, "call_id", &at)?;
            match item.get("output") {
                None | Some(Value::Null) => return Err(missing(&at(".output"))),
                Some(Value::String(_) | Value::Array(_)) => {}
                Some(_) => {
                    return Err(ApiError::invalid_request(format!(
                        "{} must be a string or a list of content parts",
                        at(".output")
                    ))
                    .param(at(".output")));
                }
            }
        }
        other => {
            return Err(ApiError::invalid_request(format!(
                "{} {other:?} is not supported: an item is a message, a function_call or a \
                 function_call_output",
                at(".type")
            ))
            .param(at(".type"))
            .code("unsupported_item_type"));
        }
    }
    match item.get("status") {
        None | Some(Value::Null) => {
            item.insert("status".into(), json!("completed"));
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(not_string(&at(".status"))),
    }
    Ok(item)
}

/// One content part: text parts are checked (and an `output_text` gets the `annotations` list
/// the SDK's type requires); other parts (`input_image`, `input_file`, `refusal`, …) are kept
/// as given.
fn content_part(part: Value, at: &str) -> Result<Value, ApiError> {
    let Value::Object(mut part) = part else {
        return Err(
            ApiError::invalid_request(format!("{at} must be an object")).param(at.to_owned())
        );
    };
    let kind = match part.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        None => return Err(missing(&format!("{at}.type"))),
        Some(_) => return Err(not_string(&format!("{at}.type"))),
    };
    if matches!(kind.as_str(), "input_text" | "output_text" | "text") {
        match part.get("text") {
            Some(Value::String(_)) => {}
            None => return Err(missing(&format!("{at}.text"))),
            Some(_) => return Err(not_string(&format!("{at}.text"))),
        }
    }
    if kind == "output_text" && !part.contains_key("annotations") {
        part.insert("annotations".into(), json!([]));
    }
    Ok(Value::Object(part))
}

fn required_string(
    item: &Map<String, Value>,
    field: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<String, ApiError> {
    match item.get(field) {
        Some(Value::String(value)) => Ok(value.clone()),
        None | Some(Value::Null) => Err(missing(&at(&format!(".{field}")))),
        Some(_) => Err(not_string(&at(&format!(".{field}")))),
    }
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid_request(format!("{param} is missing")).param(param.to_owned())
}

fn not_string(param: &str) -> ApiError {
    ApiError::invalid_request(format!("{param} must be a string")).param(param.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ok(value: Value) -> Value {
        Value::Object(normalise(value, 0).expect("a valid item"))
    }

    fn refused(value: Value, index: usize) -> ApiError {
        normalise(value, index).expect_err("an invalid item")
    }

    #[test]
    fn messages_are_normalised_whatever_form_they_come_in() {
        assert_eq!(
            ok(json!({"role": "user", "content": "hi", "id": "__fake_id__"})),
            json!({"type": "message", "role": "user", "status": "completed",
                   "content": [{"type": "input_text", "text": "hi"}]})
        );
        assert_eq!(
            ok(json!({"type": "message", "role": "assistant", "content": "yo"})),
            json!({"type": "message", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": "yo", "annotations": []}]})
        );
        let image =
            json!({"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"});
        assert_eq!(
            ok(
                json!({"type": "message", "role": "user", "status": "incomplete",
                      "content": [{"type": "input_text", "text": "see"}, image.clone()]})
            ),
            json!({"type": "message", "role": "user", "status": "incomplete",
                   "content": [{"type": "input_text", "text": "see"}, image]})
        );
    }

    #[test]
    fn calls_and_outputs_keep_their_fields() {
        assert_eq!(
            ok(json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"})),
            json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}",
                   "status": "completed"})
        );
        assert_eq!(
            ok(json!({"type": "function_call_output", "call_id": "c", "output": "42"})),
            json!({"type": "function_call_output", "call_id": "c", "output": "42",
                   "status": "completed"})
        );
    }

    #[test]
    fn bad_items_name_the_field() {
        let cases = [
            (json!("text"), "items[3]"),
            (json!({"content": "x"}), "items[3].type"),
            (json!({"type": 7}), "items[3].type"),
            (json!({"type": "reasoning", "summary": []}), "items[3].type"),
            (json!({"type": "message", "content": "x"}), "items[3].role"),
            (json!({"role": "wizard", "content": "x"}), "items[3].role"),
            (json!({"role": "user"}), "items[3].content"),
            (json!({"role": "user", "content": 5}), "items[3].content"),
            (
                json!({"role": "user", "content": ["x"]}),
                "items[3].content[0]",
            ),
            (
                json!({"role": "user", "content": [{"text": "x"}]}),
                "items[3].content[0].type",
            ),
            (
                json!({"role": "user", "content": [{"type": "input_text"}]}),
                "items[3].content[0].text",
            ),
            (
                json!({"type": "function_call", "call_id": "c", "name": "f"}),
                "items[3].arguments",
            ),
            (
                json!({"type": "function_call", "call_id": 1, "name": "f", "arguments": ""}),
                "items[3].call_id",
            ),
            (
                json!({"type": "function_call_output", "call_id": "c"}),
                "items[3].output",
            ),
            (
                json!({"type": "function_call_output", "output": "x"}),
                "items[3].call_id",
            ),
            (
                json!({"role": "user", "content": "x", "status": 1}),
                "items[3].status",
            ),
        ];
        for (item, param) in cases {
            let error = refused(item.clone(), 3);
            assert_eq!(error.status, http::StatusCode::BAD_REQUEST, "{item}");
            assert_eq!(
                error.param.as_deref(),
                Some(param),
                "{item}: {}",
                error.message
            );
        }
    }
}
