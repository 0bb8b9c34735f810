use aigw_plugin_sdk::openai::Compatible;
use aigw_plugin_sdk::testing::{decode_in_pieces, json_head, sse_head};
use aigw_plugin_sdk::{Chunk, CredentialPlacement, Failure, HttpResponse, Provider, Step, Target};
use serde_json::{Value, json};

use super::OpenAiCompatible;

type Plugin = Compatible<OpenAiCompatible>;

fn target() -> Target {
    Target {
        base_url: "http://127.0.0.1:11434/v1".to_owned(),
        model: "llama3.2".to_owned(),
    }
}

fn decode_stream(body: &str) -> Result<Vec<Chunk>, Failure> {
    decode_in_pieces(Plugin::stream_decoder(target(), sse_head()), body, 5)
}

/// Ollama-style: no usage chunk, no `[DONE]`.
const OLLAMA_STREAM: &str = "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3.2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\ndata: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3.2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n";

#[test]
fn describes_a_keyless_generic_server() {
    let descriptor = Plugin::describe();
    assert_eq!(descriptor.name, "openai-compatible");
    assert_eq!(descriptor.version, "0.1.0");
    assert_eq!(descriptor.default_base_url, "http://127.0.0.1:8000/v1");
    assert_eq!(descriptor.credential, CredentialPlacement::bearer());
    assert!(!descriptor.credential_required);
    assert!(descriptor.models.is_empty());
}

#[test]
fn encode_replaces_only_the_model() {
    let request = Plugin::encode(
        &target(),
        r#"{"model":"local","messages":[{"role":"user","content":"hi","name":"bob"}],"logprobs":true,"n":2}"#,
    )
    .unwrap();
    assert_eq!(request.url, "http://127.0.0.1:11434/v1/chat/completions");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi", "name": "bob"}],
               "logprobs": true, "n": 2})
    );
}

#[test]
fn stream_without_usage_or_done_completes_on_finish_reason() {
    let chunks = decode_stream(OLLAMA_STREAM).unwrap();
    assert_eq!(chunks.len(), 2);
    assert!(chunks.iter().all(|chunk| chunk.usage.is_none()));
}

#[test]
fn stream_cut_before_any_finish_reason_is_unavailable() {
    let cut = &OLLAMA_STREAM[..OLLAMA_STREAM.find("\n\n").unwrap() + 2];
    assert_eq!(
        decode_stream(cut),
        Err(Failure::Unavailable(
            "stream ended before completion".to_owned()
        ))
    );
}

#[test]
fn decode_classifies_a_vllm_context_error() {
    let body = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#;
    let result = Plugin::decode(
        &target(),
        HttpResponse {
            status: 400,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        },
    );
    assert!(matches!(
        result,
        Err(Failure::ContextLengthExceeded(ref message)) if message.starts_with("This model's maximum context length is 4096")
    ));
}

#[test]
fn decode_passes_a_completion_through() {
    let body = r#"{"id":"x","object":"chat.completion","created":1,"model":"llama3.2","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
    let result = Plugin::decode(
        &target(),
        HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        },
    );
    let Ok(Step::Done(completion)) = result else {
        panic!("expected a completion, got {result:?}");
    };
    assert_eq!(completion.json, body);
    assert_eq!(completion.usage, None);
}

#[test]
fn a_server_that_ignores_stream_true_is_replayed_as_chunks() {
    let completion = r#"{"id":"chatcmpl-8","object":"chat.completion","created":1,"model":"llama3.2","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    let decoder = Plugin::stream_decoder(target(), json_head());
    let chunks = decode_in_pieces(decoder, completion, 6).unwrap();
    assert_eq!(chunks.len(), 2);
    let first: Value = serde_json::from_str(&chunks[0].json).unwrap();
    assert_eq!(first["object"], json!("chat.completion.chunk"));
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": "Hello"})
    );
    assert_eq!(first["choices"][0]["finish_reason"], json!("stop"));
    assert_eq!(chunks[1].usage.map(|usage| usage.total_tokens), Some(4));
}

#[test]
fn openai_out_of_quota_429_is_no_credit_not_a_rate_limit() {
    let body = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let failure = Plugin::decode(
        &target(),
        HttpResponse {
            status: 429,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        },
    );
    assert_eq!(
        failure,
        Err(Failure::NoCredit(
            "You exceeded your current quota, please check your plan and billing details."
                .to_owned()
        ))
    );
}

#[test]
fn usage_on_the_finish_frame_is_cut_out_of_it_into_a_usage_chunk() {
    // vLLM with continuous usage stats, llama.cpp: usage beside the finish reason, no usage chunk
    // of its own. This dialect has no stream hooks, so the frame is read by its parts.
    let body = "data: {\"id\":\"cmpl-3\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"llama3.2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"total_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
    let chunks = decode_stream(body).unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[0].json,
        "{\"id\":\"cmpl-3\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"llama3.2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],\"usage\":null}"
    );
    assert_eq!(chunks[0].usage, None);
    let usage: Value = serde_json::from_str(&chunks[1].json).unwrap();
    assert_eq!(
        usage,
        json!({"id": "cmpl-3", "object": "chat.completion.chunk", "created": 7, "model": "llama3.2",
               "choices": [], "usage": {"prompt_tokens": 5, "total_tokens": 7, "completion_tokens": 2}})
    );
    assert_eq!(
        chunks[1].usage.map(|usage| usage.completion_tokens),
        Some(2)
    );
}
