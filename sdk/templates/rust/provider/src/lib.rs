//! `{{name}}`: an aigw provider plugin for a server that speaks the OpenAI chat-completions API.
//!
//! The SDK's OpenAI translator does the work (`Compatible<{{class}}>`): it sets the model, sends
//! `POST <base_url>/chat/completions`, reads answers and event streams, and classifies every
//! error envelope so the gateway knows when to fail over. Override a hook of `Dialect`
//! (`adjust_request`, `classify`, `stream_usage`, `stream_error`) only where your provider
//! differs from OpenAI.

use aigw_plugin_sdk::openai::{Compatible, Dialect};
use aigw_plugin_sdk::{CredentialPlacement, Descriptor};

pub struct {{class}};

aigw_plugin_sdk::export_provider!(Compatible<{{class}}>);

impl Dialect for {{class}} {
    fn describe() -> Descriptor {
        Descriptor {
            name: "{{name}}".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            // Where requests go unless the operator sets `base_url` for the provider.
            default_base_url: "https://api.example.com/v1".to_owned(),
            // Other origins its requests go to (none: only the base URL's).
            origins: Vec::new(),
            // The host adds the operator's key as `Authorization: Bearer <key>`; the plugin
            // never sees it.
            credential: CredentialPlacement::bearer(),
            // Without a key its targets are skipped (set false for a local server).
            credential_required: true,
            // Listed by `GET /v1/models`; any model can still be asked for by name.
            models: vec!["example-large".to_owned()],
        }
    }
}

#[cfg(test)]
mod tests {
    use aigw_plugin_sdk::testing::{decode_in_pieces, sse_head};
    use aigw_plugin_sdk::{Provider, Target};

    use super::*;

    type Plugin = Compatible<{{class}}>;

    fn target() -> Target {
        Target {
            base_url: "http://127.0.0.1:8000/v1".to_owned(),
            model: "example-large".to_owned(),
        }
    }

    #[test]
    fn encode_sends_the_target_model_to_chat_completions() {
        let request = Plugin::encode(
            &target(),
            r#"{"model":"alias","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(request.url, "http://127.0.0.1:8000/v1/chat/completions");
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["model"], "example-large");
    }

    #[test]
    fn a_stream_split_anywhere_decodes_to_its_chunks() {
        let body = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        for piece in 1..8 {
            let chunks =
                decode_in_pieces(Plugin::stream_decoder(target(), sse_head()), body, piece)
                    .unwrap();
            assert_eq!(chunks.len(), 1, "pieces of {piece} bytes");
        }
    }
}
