use aigw_plugin_sdk::testing::{decode_in_pieces, json_of, response, sse_head};
use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Failure, Header, HttpResponse, Provider, Step, StreamDecoder,
    Target, Usage,
};
use serde_json::{Value, json};

use super::{NovitaProvider, versioned_base};

const TEXT_STREAM: &str = include_str!("../tests/fixtures/novita_text.sse");
const TOOL_CALL_STREAM: &str = include_str!("../tests/fixtures/novita_tool_call.sse");
const MID_STREAM_ERROR: &str = include_str!("../tests/fixtures/novita_mid_stream_error.sse");

fn target() -> Target {
    Target {
        base_url: "https://api.novita.ai/openai".to_owned(),
        model: "meta-llama/llama-3.3-70b-instruct".to_owned(),
    }
}

fn decode_stream(body: &str, cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_in_pieces(
        NovitaProvider::stream_decoder(target(), sse_head()),
        body,
        cut_every,
    )
}

fn decode(response: HttpResponse) -> Result<Step, Failure> {
    NovitaProvider::decode(&target(), response)
}

#[test]
fn describes_novita() {
    let descriptor = NovitaProvider::describe();
    assert_eq!(descriptor.name, "novita");
    assert_eq!(descriptor.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(descriptor.default_base_url, "https://api.novita.ai/openai");
    assert_eq!(descriptor.credential, CredentialPlacement::bearer());
    assert!(descriptor.credential_required);
    assert!(
        descriptor
            .models
            .iter()
            .any(|model| model == "meta-llama/llama-3.3-70b-instruct")
    );
    assert!(
        descriptor
            .models
            .iter()
            .any(|model| model == "deepseek/deepseek-v3")
    );
}

#[test]
fn encode_posts_to_the_v1_chat_path_with_extras_kept() {
    let request = NovitaProvider::encode(
        &target(),
        r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"stream":true,"top_k":40,"min_p":0.05,"repetition_penalty":1.1,"separate_reasoning":true,"enable_thinking":false}"#,
    )
    .unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "https://api.novita.ai/openai/v1/chat/completions"
    );
    assert!(
        request
            .headers
            .contains(&Header::new("accept", "text/event-stream"))
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "meta-llama/llama-3.3-70b-instruct",
               "messages": [{"role": "user", "content": "hi"}],
               "stream": true, "stream_options": {"include_usage": true},
               "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1,
               "separate_reasoning": true, "enable_thinking": false})
    );
}

#[test]
fn versioned_bases_get_only_the_chat_path() {
    assert_eq!(
        versioned_base("https://api.novita.ai/openai"),
        "https://api.novita.ai/openai/v1"
    );
    assert_eq!(
        versioned_base("https://api.novita.ai/openai/"),
        "https://api.novita.ai/openai/v1"
    );
    assert_eq!(
        versioned_base("https://api.novita.ai/v3/openai"),
        "https://api.novita.ai/v3/openai"
    );
    assert_eq!(
        versioned_base("https://api.novita.ai/openai/v1/"),
        "https://api.novita.ai/openai/v1"
    );
    assert_eq!(
        versioned_base("http://127.0.0.1:8080"),
        "http://127.0.0.1:8080/v1"
    );
    let legacy = Target {
        base_url: "https://api.novita.ai/v3/openai".to_owned(),
        model: "deepseek/deepseek-v3".to_owned(),
    };
    let request = NovitaProvider::encode(&legacy, r#"{"messages":[]}"#).unwrap();
    assert_eq!(
        request.url,
        "https://api.novita.ai/v3/openai/chat/completions"
    );
}

#[test]
fn non_stream_completion_with_reasoning_content_passes_through() {
    let body = r#"{"id":"chatcmpl-n0","object":"chat.completion","created":1730000099,"model":"deepseek/deepseek-r1","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there","reasoning_content":"The user says hi."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21},"system_fingerprint":""}"#;
    let Ok(Step::Done(completion)) = decode(response(200, &[], body)) else {
        panic!("expected a completion");
    };
    assert_eq!(completion.json, body);
    assert_eq!(
        completion.usage,
        Some(Usage {
            prompt_tokens: 9,
            completion_tokens: 12,
            total_tokens: 21
        })
    );
}

#[test]
fn non_stream_tool_call_passes_through() {
    let body = r#"{"id":"chatcmpl-n5","object":"chat.completion","created":1,"model":"meta-llama/llama-3.3-70b-instruct","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":52,"completion_tokens":17}}"#;
    let Ok(Step::Done(completion)) = decode(response(200, &[], body)) else {
        panic!("expected a completion");
    };
    let value: Value = serde_json::from_str(&completion.json).unwrap();
    assert_eq!(
        value["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    // A missing total is the sum.
    assert_eq!(completion.usage.map(|usage| usage.total_tokens), Some(69));
}

#[test]
fn stream_text_with_reasoning_and_usage_chunk() {
    for cut_every in [1, 9, 4096] {
        let chunks = decode_stream(TEXT_STREAM, cut_every).unwrap();
        assert_eq!(chunks.len(), 4, "cut every {cut_every}");
        assert_eq!(
            json_of(&chunks[0])["choices"][0]["delta"]["reasoning_content"],
            "The user says hi."
        );
        let text: String = chunks[..3]
            .iter()
            .filter_map(|chunk| {
                json_of(chunk)["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, "Hello there");
        assert!(chunks[..3].iter().all(|chunk| chunk.usage.is_none()));
        assert_eq!(
            chunks[3].usage,
            Some(Usage {
                prompt_tokens: 9,
                completion_tokens: 12,
                total_tokens: 21
            })
        );
    }
}

#[test]
fn stream_tool_call_deltas_and_usage_on_the_finish_chunk() {
    let chunks = decode_stream(TOOL_CALL_STREAM, 5).unwrap();
    assert_eq!(chunks.len(), 5);
    let arguments: String = chunks
        .iter()
        .filter_map(|chunk| {
            json_of(chunk)["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(arguments, r#"{"city":"Paris"}"#);
    assert!(chunks[..4].iter().all(|chunk| chunk.usage.is_none()));
    assert_eq!(chunks[4].usage.map(|usage| usage.total_tokens), Some(69));
    assert_eq!(json_of(&chunks[4])["choices"], json!([]));
}

#[test]
fn novita_envelope_mid_stream_is_a_failure() {
    let mut decoder = NovitaProvider::stream_decoder(target(), sse_head());
    let (first, rest) = MID_STREAM_ERROR.split_at(MID_STREAM_ERROR.find("\n\n").unwrap() + 2);
    assert_eq!(decoder.feed(first.as_bytes()).unwrap().len(), 1);
    assert_eq!(
        decoder.feed(rest.as_bytes()),
        Err(Failure::Unavailable(
            "backend overloaded, please retry later".to_owned()
        ))
    );
}

#[test]
fn openai_error_frame_mid_stream_is_a_failure() {
    let body = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\ndata: {\"error\":{\"message\":\"internal error\",\"type\":\"server_error\"}}\n\n";
    assert_eq!(
        decode_stream(body, 4096),
        Err(Failure::Unavailable("internal error".to_owned()))
    );
}

#[test]
fn not_enough_balance_403_is_no_credit_other_403s_unauthorized() {
    assert_eq!(
        decode(response(
            403,
            &[],
            r#"{"code":403,"reason":"NOT_ENOUGH_BALANCE","message":"Your account balance is insufficient, please recharge.","metadata":{}}"#
        )),
        Err(Failure::NoCredit(
            "Your account balance is insufficient, please recharge.".to_owned()
        ))
    );
    // The same envelope mid-stream.
    let frame = "data: {\"code\":403,\"reason\":\"NOT_ENOUGH_BALANCE\",\"message\":\"Your account balance is insufficient\",\"metadata\":{}}\n\n";
    assert_eq!(
        decode_stream(frame, 7),
        Err(Failure::NoCredit(
            "Your account balance is insufficient".to_owned()
        ))
    );
    assert_eq!(
        decode(response(
            403,
            &[],
            r#"{"code":403,"reason":"model_access_denied","message":"Identity verification is required to access this model.","metadata":{}}"#
        )),
        Err(Failure::Unauthorized(
            "Identity verification is required to access this model.".to_owned()
        ))
    );
    assert_eq!(
        decode(response(
            401,
            &[],
            r#"{"code":401,"reason":"INVALID_API_KEY","message":"Invalid API key","metadata":{}}"#
        )),
        Err(Failure::Unauthorized("Invalid API key".to_owned()))
    );
}

#[test]
fn rate_limits_are_rate_limited_in_either_envelope() {
    assert_eq!(
        decode(response(
            429,
            &[("retry-after", "4")],
            r#"{"code":429,"reason":"RATE_LIMIT_EXCEEDED","message":"Rate limit exceeded, please try again later.","metadata":{}}"#
        )),
        Err(Failure::RateLimited {
            retry_after_seconds: Some(4),
            message: "Rate limit exceeded, please try again later.".to_owned()
        })
    );
    assert_eq!(
        decode(response(
            400,
            &[],
            r#"{"code":400,"reason":"RATE_LIMIT_TPM","message":"tokens per minute exceeded","metadata":{}}"#
        )),
        Err(Failure::RateLimited {
            retry_after_seconds: None,
            message: "tokens per minute exceeded".to_owned()
        })
    );
    assert!(matches!(
        decode(response(
            429,
            &[],
            r#"{"error":{"message":"Too many requests","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#
        )),
        Err(Failure::RateLimited { ref message, .. }) if message == "Too many requests"
    ));
}

#[test]
fn invalid_context_and_overload_errors() {
    assert_eq!(
        decode(response(
            400,
            &[],
            r#"{"code":400,"reason":"INVALID_REQUEST_BODY","message":"temperature must be between 0 and 2","metadata":{}}"#
        )),
        Err(Failure::InvalidRequest(
            "temperature must be between 0 and 2".to_owned()
        ))
    );
    assert!(matches!(
        decode(response(
            400,
            &[],
            r#"{"error":{"message":"This model's maximum context length is 131072 tokens. However, you requested 140000 tokens (139000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#
        )),
        Err(Failure::ContextLengthExceeded(_))
    ));
    assert_eq!(
        decode(response(
            503,
            &[],
            r#"{"code":503,"reason":"SERVICE_UNAVAILABLE","message":"service overloaded","metadata":{}}"#
        )),
        Err(Failure::Unavailable("service overloaded".to_owned()))
    );
    assert!(matches!(
        decode(response(504, &[], "<html>Gateway Time-out</html>")),
        Err(Failure::Unavailable(ref message)) if message == "<html>Gateway Time-out</html>"
    ));
}
