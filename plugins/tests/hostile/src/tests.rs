use aigw_plugin_sdk::testing::{response, sse_head};
use aigw_plugin_sdk::{
    CredentialPlacement, Follow, HttpRequest, HttpResponse, Provider, Step, StreamDecoder,
    StreamEnd, Target,
};
use serde_json::{Value, json};

use super::{FOREVER_FOLLOW_MS, Hostile};

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
    let mut decoder = Hostile::stream_decoder(target("trap-stream"), sse_head());
    let _ = decoder.feed(b"data: {}\n\n");
}

#[test]
fn stream_decoder_of_other_models_is_openai_compatible() {
    let mut decoder = Hostile::stream_decoder(target("ok"), sse_head());
    let chunks = decoder
        .feed(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
        .unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(decoder.finish(), Ok(StreamEnd::Done(Vec::new())));
}

fn models_follow() -> Follow {
    Follow {
        request: HttpRequest {
            method: "GET".to_owned(),
            url: "http://127.0.0.1:9/v1/models".to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        },
        after_ms: u32::try_from(FOREVER_FOLLOW_MS).unwrap(),
    }
}

#[test]
fn follow_forever_models_never_finish() {
    // `decode` follows whatever it is given, success or error.
    for answer in [ok_response(), response(500, &[], "boom")] {
        assert_eq!(
            Hostile::decode(&target("follow-forever"), answer),
            Ok(Step::Follow(models_follow()))
        );
    }
    // The stream decoder asks for another body at the end of every body.
    let mut decoder = Hostile::stream_decoder(target("stream-follow-forever"), sse_head());
    for body in [&b"data: {}\n\n"[..], b"{\"object\":\"list\",\"data\":[]}"] {
        assert_eq!(decoder.feed(body), Ok(Vec::new()));
        assert_eq!(decoder.finish(), Ok(StreamEnd::Follow(models_follow())));
    }
}
