//! The Gemini provider plugin: Google's native `generateContent` API (`docs/wire-formats.md`,
//! Gemini native), fully translated to and from OpenAI chat completions.
//!
//! - [`encode`]: OpenAI request → `POST {base}/models/{model}:generateContent` (or
//!   `:streamGenerateContent?alt=sse`) with `systemInstruction`, `contents`, `tools`,
//!   `toolConfig` and `generationConfig`.
//! - [`decode`]: `GenerateContentResponse` → `chat.completion`; error bodies → failures.
//! - [`stream`]: SSE frames (no `[DONE]`; the connection just closes) → `chat.completion.chunk`s
//!   and a final usage chunk.
//! - [`errors`]: Google's `google.rpc.Status` envelope → failures, including `RetryInfo` delays
//!   and the bad-key-is-400 quirk.

use aigw_plugin_sdk::{
    CredentialPlacement, Descriptor, Failure, HttpRequest, HttpResponse, Provider, ResponseHead,
    Step, Target,
};

mod decode;
mod encode;
mod errors;
mod stream;

pub use stream::GeminiStream;

pub struct Gemini;

aigw_plugin_sdk::export_provider!(Gemini);

impl Provider for Gemini {
    type StreamDecoder = GeminiStream;

    fn describe() -> Descriptor {
        Descriptor {
            name: "gemini".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            default_base_url: "https://generativelanguage.googleapis.com/v1beta".to_owned(),
            origins: Vec::new(),
            credential: CredentialPlacement::Header {
                name: "x-goog-api-key".to_owned(),
                prefix: String::new(),
            },
            credential_required: true,
            models: [
                "gemini-2.5-flash",
                "gemini-2.5-flash-lite",
                "gemini-2.5-pro",
                "gemini-2.0-flash",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    fn encode(target: &Target, request_json: &str) -> Result<HttpRequest, Failure> {
        encode::encode(target, request_json)
    }

    fn decode(target: &Target, response: HttpResponse) -> Result<Step, Failure> {
        decode::decode(target, response)
    }

    fn stream_decoder(target: Target, head: ResponseHead) -> GeminiStream {
        GeminiStream::new(target, &head)
    }
}

/// Seconds since the Unix epoch for `created` (0 if the clock is unavailable).
pub(crate) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
