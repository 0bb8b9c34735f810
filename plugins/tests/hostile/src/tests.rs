use aigw_plugin_sdk::{CredentialPlacement, HttpResponse, Provider, Step, StreamDecoder, Target};
use serde_json::{Value, json};

use super::Hostile;

fn target(model: &str) -> Target {
    Target {
        base_url: "http://127.0.0.1:9/v1".to_owned(),
        model: model.to_owned(),
    }
}

const COMPLETION: &str = r#"{"id":"x","object":"chat.completion","created":1,"model":"ok","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

fn ok_response() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: Vec::new(),
        body: COMPLETION.as_bytes().to_vec(),
    }
}

#[test]
fn describes_itself_without_a_credential() {
    let descriptor = Hostile::describe();
    assert_eq!(descriptor.name, "hostile");
    assert_eq!(descriptor.credential, CredentialPlacement::None);
    assert!(!descriptor.credential_required);
}

#[test]
fn ok_model_encodes_like_openai_compatible() {
    let request = Hostile::encode(&target("ok"), r#"{"model":"any","messages":[]}"#).unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "http://127.0.0.1:9/v1/chat/completions");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body, json!({"model": "ok", "messages": []}));
}

#[test]
#[should_panic(expected = "trap requested")]
fn trap_model_panics_in_encode() {
    let _ = Hostile::encode(&target("trap"), r#"{"messages":[]}"#);
}

#[test]
fn decode_behaves_normally_except_for_trap_decode() {
    assert!(matches!(
        Hostile::decode(&target("trap"), ok_response()),
        Ok(Step::Done(ref completion)) if completion.json == COMPLETION
    ));
}

#[test]
#[should_panic(expected = "trap in decode")]
fn trap_decode_model_panics_in_decode() {
    let _ = Hostile::decode(&target("trap-decode"), ok_response());
}

#[test]
#[should_panic(expected = "trap in the stream decoder")]
fn trap_stream_model_panics_on_first_feed() {
    let mut decoder = Hostile::stream_decoder(target("trap-stream"));
    let _ = decoder.feed(b"data: {}\n\n");
}

#[test]
fn stream_decoder_of_other_models_is_openai_compatible() {
    let mut decoder = Hostile::stream_decoder(target("ok"));
    let chunks = decoder
        .feed(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
        .unwrap();
    assert_eq!(chunks.len(), 1);
    assert!(decoder.finish().unwrap().is_empty());
}
