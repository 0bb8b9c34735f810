//! The generic OpenAI-compatible provider plugin: any server speaking the OpenAI chat-completions
//! API (vLLM, Ollama, llama.cpp server, LM Studio). The SDK's translator as is; it already
//! tolerates servers that never send usage or omit `[DONE]` (a `finish_reason` counts as the end).

use aigw_plugin_sdk::openai::{Compatible, Dialect};
use aigw_plugin_sdk::{CredentialPlacement, Descriptor};

pub struct OpenAiCompatible;

aigw_plugin_sdk::export_provider!(Compatible<OpenAiCompatible>);

impl Dialect for OpenAiCompatible {
    // OpenAI's hooks as they are: the request and the finish frame are edited as text.
    const FRAME_HOOKS: bool = false;
    const REQUEST_HOOK: bool = false;

    fn describe() -> Descriptor {
        Descriptor {
            name: "openai-compatible".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            // vLLM's default; the operator configures the real server.
            default_base_url: "http://127.0.0.1:8000/v1".to_owned(),
            origins: Vec::new(),
            credential: CredentialPlacement::bearer(),
            // Local servers usually run without a key.
            credential_required: false,
            models: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
