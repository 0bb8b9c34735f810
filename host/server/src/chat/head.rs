//! The request head: the few fields of a chat completion the gateway itself needs. Everything
//! else stays in the raw body for the plugin; parsing into [`RequestHead`] also validates the
//! whole body as JSON (the one parse on the host).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::error::ApiError;

/// The longest model name a request may name. Model names are echoed in headers
/// (`x-aigw-target`), error messages and log lines, and a `provider/model` named directly is
/// remembered with its route: a cap keeps all of those small (OpenAI's and every provider's model
/// ids are far shorter).
pub(crate) const MAX_MODEL_NAME_BYTES: usize = 256;

#[derive(Deserialize)]
struct RequestHead<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    messages: Option<IgnoredAny>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// What the gateway read from a valid request body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head<'a> {
    pub(crate) model: Cow<'a, str>,
    /// The body as text, for the plugin (it was just validated as JSON).
    pub(crate) text: &'a str,
    pub(crate) stream: bool,
    /// `stream_options.include_usage`: forward the final usage chunk.
    pub(crate) include_usage: bool,
}

/// Parses and validates a chat completion body; the error names the field or the position.
pub(crate) fn parse(body: &[u8]) -> Result<Head<'_>, ApiError> {
    let head: RequestHead<'_> = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_request(format!(
            "request body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
        .code("invalid_json")
    })?;
    let Some(model) = head.model else {
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
    if head.messages.is_none() {
        return Err(
            ApiError::invalid_request("you must provide a messages parameter")
                .param("messages")
                .code("missing_messages"),
        );
    }
    // serde_json accepts only UTF-8, so this cannot fail after a successful parse; the check
    // keeps the plugin's `string` argument honest without an unsafe conversion.
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid_request("request body is not UTF-8").code("invalid_json"))?;
    Ok(Head {
        model,
        text,
        stream: head.stream.unwrap_or(false),
        include_usage: head
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_valid_body_gives_model_stream_and_usage_option() {
        let body = br#"{"model":"fast","stream":true,"stream_options":{"include_usage":true},
                        "messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#;
        let head = parse(body).unwrap();
        assert_eq!(head.model, "fast");
        assert!(head.stream && head.include_usage);
        assert_eq!(head.text.len(), body.len());
        let plain = parse(br#"{"model":"m","messages":[]}"#).unwrap();
        assert!(!plain.stream && !plain.include_usage);
    }

    #[test]
    fn bad_bodies_name_the_field_or_the_position() {
        let e = parse(br#"{"messages":[]}"#).unwrap_err();
        assert_eq!((e.param, e.code), (Some("model"), Some("missing_model")));
        let e = parse(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(
            (e.param, e.code),
            (Some("messages"), Some("missing_messages"))
        );
        let e = parse(b"{\"model\":\n \"m\",}").unwrap_err();
        assert_eq!(e.code, Some("invalid_json"));
        assert!(e.message.contains("line 2"), "{}", e.message);
        let long = format!(
            r#"{{"model":"p/{}","messages":[]}}"#,
            "x".repeat(MAX_MODEL_NAME_BYTES)
        );
        let e = parse(long.as_bytes()).unwrap_err();
        assert_eq!(
            (e.param, e.code),
            (Some("model"), Some("model_name_too_long"))
        );
        assert!(
            e.message.len() < 100,
            "the name is not echoed: {}",
            e.message
        );
        let e = parse(br#"{"model":"m","messages":[],"stream":"yes"}"#).unwrap_err();
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
    }
}
