//! The Novita AI provider plugin: Novita's OpenAI-compatible chat completions
//! (`docs/wire-formats.md`, Novita), i.e. the SDK's OpenAI translator plus Novita's quirks.
//!
//! - The base URL is `https://api.novita.ai/openai` and the chat path is `/v1/chat/completions`.
//!   A base that already names an API version (the legacy `https://api.novita.ai/v3/openai`, or
//!   one ending in `/v1`) gets `/chat/completions` only.
//! - Novita extras (`top_k`, `min_p`, `repetition_penalty`, `separate_reasoning`,
//!   `enable_thinking`) and `reasoning_content` in answers pass through.
//! - Errors come as Novita's `{code,reason,message,metadata}` envelope or an OpenAI `{"error":…}`;
//!   both are read. Insufficient balance is **403** `NOT_ENOUGH_BALANCE`: no-credit, like other
//!   providers' 402 (the SDK reads the reason); other 403s (`model_access_denied`) are
//!   unauthorized; a `RATE_LIMIT*` reason is rate-limited whatever the status; 503/504 are
//!   unavailable.
//! - A `{code,reason,message}` frame mid-stream is a failure classified by its `code`.

use std::time::SystemTime;

use aigw_plugin_sdk::failure::{UpstreamError, classify, classify_error};
use aigw_plugin_sdk::openai::{
    ChunkStream, Compatible, Dialect, chat_completions_request, parse_request, prepare_request,
};
use aigw_plugin_sdk::{
    CredentialPlacement, Descriptor, Failure, HttpRequest, HttpResponse, Provider, ResponseHead,
    Step, Target,
};
use serde_json::{Map, Value};

/// The Novita dialect of the OpenAI API.
pub struct Novita;

/// The exported provider: [`Compatible<Novita>`] with Novita's URL layout and error frames.
pub struct NovitaProvider;

aigw_plugin_sdk::export_provider!(NovitaProvider);

impl Provider for NovitaProvider {
    type StreamDecoder = ChunkStream<Novita>;

    fn describe() -> Descriptor {
        Compatible::<Novita>::describe()
    }

    fn encode(target: &Target, request_json: &str) -> Result<HttpRequest, Failure> {
        let mut body = parse_request(request_json)?;
        prepare_request(target, &mut body);
        Novita::adjust_request(&mut body)?;
        chat_completions_request(&versioned_base(&target.base_url), &body)
    }

    fn decode(target: &Target, response: HttpResponse) -> Result<Step, Failure> {
        Compatible::<Novita>::decode(target, response)
    }

    fn stream_decoder(_target: Target, head: ResponseHead) -> ChunkStream<Novita> {
        ChunkStream::new(&head)
    }
}

/// The base to which `chat/completions` is appended: `{base}/v1` unless the base already ends in
/// a version segment (`/v1`, `/v3/openai`).
fn versioned_base(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let last = base.rsplit('/').next().unwrap_or_default();
    let is_version = |segment: &str| {
        segment.len() > 1
            && segment.starts_with('v')
            && segment[1..].bytes().all(|byte| byte.is_ascii_digit())
    };
    let legacy = base
        .strip_suffix("/openai")
        .and_then(|rest| rest.rsplit('/').next())
        .is_some_and(is_version);
    if is_version(last) || legacy {
        base.to_owned()
    } else {
        format!("{base}/v1")
    }
}

impl Dialect for Novita {
    // OpenAI's request as it is (its own stream errors keep `FRAME_HOOKS`): edited as text.
    const REQUEST_HOOK: bool = false;

    fn stream_error(frame: &Map<String, Value>) -> Option<Failure> {
        stream_error(frame)
    }

    fn describe() -> Descriptor {
        Descriptor {
            name: "novita".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            default_base_url: "https://api.novita.ai/openai".to_owned(),
            origins: Vec::new(),
            credential: CredentialPlacement::bearer(),
            credential_required: true,
            models: [
                "meta-llama/llama-3.3-70b-instruct",
                "meta-llama/llama-3.1-8b-instruct",
                "deepseek/deepseek-v3",
                "deepseek/deepseek-r1",
                "qwen/qwen3-32b-fp8",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    fn classify(response: &HttpResponse) -> Failure {
        let error = UpstreamError::parse(&response.body);
        if is_rate_limit_reason(&error) {
            return classify_error(429, &response.headers, &error, SystemTime::now());
        }
        classify(response)
    }
}

/// Novita reasons such as `RATE_LIMIT_EXCEEDED` (the code falls back to `type` for OpenAI bodies).
fn is_rate_limit_reason(error: &UpstreamError) -> bool {
    error
        .code
        .as_deref()
        .is_some_and(|code| code.to_ascii_uppercase().starts_with("RATE_LIMIT"))
}

/// A mid-stream Novita envelope `{code,reason,message}` (no `choices`): classified as the HTTP
/// status its numeric `code` names, else as unavailable. `{"error":…}` frames are left to the
/// SDK decoder.
pub(crate) fn stream_error(frame: &Map<String, Value>) -> Option<Failure> {
    if frame.contains_key("choices") || frame.contains_key("error") {
        return None;
    }
    frame.get("message").and_then(Value::as_str)?;
    if !(frame.contains_key("reason") || frame.contains_key("code")) {
        return None;
    }
    let error = UpstreamError::from_value(&Value::Object(frame.clone()));
    let status = frame
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code));
    let status = if is_rate_limit_reason(&error) {
        Some(429)
    } else {
        status
    };
    Some(match status {
        Some(status) => classify_error(status, &[], &error, SystemTime::now()),
        None => Failure::Unavailable(
            error
                .message
                .unwrap_or_else(|| "the stream reported an error".to_owned()),
        ),
    })
}

#[cfg(test)]
mod tests;
