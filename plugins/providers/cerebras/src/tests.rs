use aigw_plugin_sdk::testing::{decode_in_pieces, json_of, response, sse_head};
use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Failure, Header, HttpResponse, Provider, Step, StreamDecoder,
    Target, Usage,
};
use serde_json::{Value, json};

use super::CerebrasProvider;

const TOOL_CALL_STREAM: &str = include_str!("../tests/fixtures/cerebras_tool_call.sse");
const USAGE_CHUNK_STREAM: &str = include_str!("../tests/fixtures/cerebras_text_usage_chunk.sse");
const MID_STREAM_ERROR: &str = include_str!("../tests/fixtures/cerebras_mid_stream_error.sse");

fn target() -> Target {
    Target {
        base_url: "https://api.cerebras.ai/v1".to_owned(),
        model: "gpt-oss-120b".to_owned(),
    }
}

fn encode(request: Value) -> Result<Value, Failure> {
    let request = CerebrasProvider::encode(&target(), &request.to_string())?;
    Ok(serde_json::from_slice(&request.body).unwrap())
}

fn decode_stream(body: &str, cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_in_pieces(
        CerebrasProvider::stream_decoder(target(), sse_head()),
        body,
        cut_every,
    )
}

fn decode(response: HttpResponse) -> Result<Step, Failure> {
    CerebrasProvider::decode(&target(), response)
}

#[test]
fn describes_cerebras() {
    let descriptor = CerebrasProvider::describe();
    assert_eq!(descriptor.name, "cerebras");
    assert_eq!(descriptor.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(descriptor.default_base_url, "https://api.cerebras.ai/v1");
    assert_eq!(descriptor.credential, CredentialPlacement::bearer());
    assert!(descriptor.credential_required);
    for model in ["llama3.1-8b", "gpt-oss-120b", "qwen-3-32b"] {
        assert!(descriptor.models.iter().any(|m| m == model), "{model}");
    }
}

#[test]
fn encode_posts_to_cerebras_with_the_targets_model() {
    let request = CerebrasProvider::encode(
        &target(),
        r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"stream":true,"max_completion_tokens":64,"reasoning_effort":"low"}"#,
    )
    .unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://api.cerebras.ai/v1/chat/completions");
    assert!(
        request
            .headers
            .contains(&Header::new("content-type", "application/json"))
    );
    assert!(
        request
            .headers
            .contains(&Header::new("accept", "text/event-stream"))
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}],
               "stream": true, "stream_options": {"include_usage": true},
               "max_completion_tokens": 64, "reasoning_effort": "low"})
    );
}

#[test]
fn unsupported_sampling_fields_are_rejected_by_name() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for (field, value) in [
        ("frequency_penalty", json!(0.5)),
        ("presence_penalty", json!(-1)),
        ("logit_bias", json!({"50256": -100})),
    ] {
        let mut request = base.clone();
        request[field] = value;
        assert_eq!(
            encode(request),
            Err(Failure::InvalidRequest(format!(
                "cerebras does not support `{field}`"
            )))
        );
    }
    assert_eq!(
        encode(json!({"model": "m", "messages": [], "n": 3})),
        Err(Failure::InvalidRequest(
            "cerebras does not support `n` other than 1 (got 3)".to_owned()
        ))
    );
}

#[test]
fn no_op_forms_of_unsupported_fields_are_dropped_and_the_rest_kept() {
    let body = encode(json!({
        "model": "m",
        "messages": [{"role": "user", "content": "Weather?"}],
        "frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {}, "n": 1,
        "service_tier": "auto",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "parallel_tool_calls": false, "seed": 7, "logprobs": true
    }))
    .unwrap();
    assert_eq!(
        body,
        json!({
            "model": "gpt-oss-120b",
            "messages": [{"role": "user", "content": "Weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "tool_choice": "auto", "parallel_tool_calls": false, "seed": 7, "logprobs": true
        })
    );
}

#[test]
fn non_stream_completion_with_time_info_passes_through_with_usage() {
    let body = r#"{"id":"chatcmpl-292e","object":"chat.completion","created":1723733419,"model":"gpt-oss-120b","system_fingerprint":"fp_70185065a4","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hello!","reasoning":"The user greets."}}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22,"prompt_tokens_details":{"cached_tokens":0}},"time_info":{"queue_time":0.000073,"prompt_time":0.00107,"completion_time":0.00566,"total_time":0.0222,"created":1723733419}}"#;
    let Ok(Step::Done(completion)) = decode(response(200, &[], body)) else {
        panic!("expected a completion");
    };
    assert_eq!(completion.json, body);
    assert_eq!(
        completion.usage,
        Some(Usage {
            prompt_tokens: 12,
            completion_tokens: 10,
            total_tokens: 22
        })
    );
}

#[test]
fn non_stream_tool_call_is_passed_through() {
    let body = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1723733419,"model":"llama-3.3-70b","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}}],"usage":{"prompt_tokens":52,"completion_tokens":17,"total_tokens":69},"time_info":{"total_time":0.01}}"#;
    let Ok(Step::Done(completion)) = decode(response(200, &[], body)) else {
        panic!("expected a completion");
    };
    let value: Value = serde_json::from_str(&completion.json).unwrap();
    assert_eq!(
        value["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(completion.usage.map(|usage| usage.total_tokens), Some(69));
}

#[test]
fn stream_tool_call_deltas_pass_through_and_final_chunk_usage_becomes_a_usage_chunk() {
    for cut_every in [1, 5, 64, 8192] {
        let chunks = decode_stream(TOOL_CALL_STREAM, cut_every).unwrap();
        assert_eq!(chunks.len(), 5, "cut every {cut_every}");
        assert!(chunks[..4].iter().all(|chunk| chunk.usage.is_none()));
        let first = json_of(&chunks[0]);
        assert_eq!(
            first["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        let arguments: String = chunks[..4]
            .iter()
            .filter_map(|chunk| {
                json_of(chunk)["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(arguments, r#"{"city":"Paris"}"#);
        assert_eq!(
            json_of(&chunks[3])["choices"][0]["finish_reason"],
            "tool_calls"
        );
        assert_eq!(
            chunks[4].usage,
            Some(Usage {
                prompt_tokens: 52,
                completion_tokens: 17,
                total_tokens: 69
            })
        );
        let usage_chunk = json_of(&chunks[4]);
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["id"], "chatcmpl-292e");
        assert_eq!(usage_chunk["model"], "gpt-oss-120b");
    }
}

#[test]
fn stream_usage_chunk_with_time_info_is_the_usage_chunk_verbatim() {
    let chunks = decode_stream(USAGE_CHUNK_STREAM, 11).unwrap();
    assert_eq!(chunks.len(), 4);
    let text: String = chunks
        .iter()
        .filter_map(|chunk| {
            json_of(chunk)["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Hello!");
    assert_eq!(
        chunks[3].usage,
        Some(Usage {
            prompt_tokens: 12,
            completion_tokens: 10,
            total_tokens: 22
        })
    );
    assert_eq!(json_of(&chunks[3])["time_info"]["total_time"], 0.0222);
}

#[test]
fn flat_error_frame_mid_stream_is_a_rate_limit_failure() {
    let mut decoder = CerebrasProvider::stream_decoder(target(), sse_head());
    let (first, rest) = MID_STREAM_ERROR.split_at(MID_STREAM_ERROR.find("\n\n").unwrap() + 2);
    assert_eq!(decoder.feed(first.as_bytes()).unwrap().len(), 1);
    assert_eq!(
        decoder.feed(rest.as_bytes()),
        Err(Failure::RateLimited {
            retry_after_seconds: None,
            message: "Tokens per minute limit exceeded - too many tokens processed.".to_owned()
        })
    );
}

#[test]
fn flat_server_error_frame_mid_stream_is_unavailable() {
    let body = "data: {\"message\":\"Internal server error\",\"type\":\"server_error\",\"param\":null,\"code\":\"internal_error\"}\n\n";
    assert_eq!(
        decode_stream(body, 4096),
        Err(Failure::Unavailable("Internal server error".to_owned()))
    );
}

#[test]
fn stream_cut_before_the_finish_chunk_is_unavailable() {
    let body: String = USAGE_CHUNK_STREAM.split_inclusive("\n\n").take(2).collect();
    assert_eq!(
        decode_stream(&body, 4096),
        Err(Failure::Unavailable(
            "stream ended before completion".to_owned()
        ))
    );
}

#[test]
fn wrong_key_401_and_missing_header_403_are_unauthorized() {
    assert_eq!(
        decode(response(
            401,
            &[],
            r#"{"message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key", "code": "wrong_api_key"}"#
        )),
        Err(Failure::Unauthorized("Wrong API Key".to_owned()))
    );
    assert_eq!(
        decode(response(403, &[], r#"{"detail":"Not authenticated"}"#)),
        Err(Failure::Unauthorized("Not authenticated".to_owned()))
    );
}

#[test]
fn payment_required_402_is_no_credit() {
    assert_eq!(
        decode(response(
            402,
            &[],
            r#"{"message":"Payment required","type":"payment_required_error","param":null,"code":"payment_required"}"#
        )),
        Err(Failure::NoCredit("Payment required".to_owned()))
    );
}

#[test]
fn rate_limit_reads_float_second_reset_headers_preferring_the_exhausted_one() {
    let body = r#"{"message":"Tokens per minute limit exceeded - too many tokens processed.","type":"too_many_tokens_error","param":"quota","code":"token_quota_exceeded"}"#;
    let headers = [
        ("x-ratelimit-limit-requests-day", "14400"),
        ("x-ratelimit-remaining-requests-day", "14000"),
        ("x-ratelimit-reset-requests-day", "33011.38"),
        ("x-ratelimit-limit-tokens-minute", "60000"),
        ("x-ratelimit-remaining-tokens-minute", "0"),
        ("x-ratelimit-reset-tokens-minute", "11.38"),
    ];
    assert_eq!(
        decode(response(429, &headers, body)),
        Err(Failure::RateLimited {
            retry_after_seconds: Some(12),
            message: "Tokens per minute limit exceeded - too many tokens processed.".to_owned()
        })
    );
    // `retry-after` wins over the reset headers.
    let mut with_retry_after = headers.to_vec();
    with_retry_after.push(("retry-after", "3"));
    assert!(matches!(
        decode(response(429, &with_retry_after, body)),
        Err(Failure::RateLimited {
            retry_after_seconds: Some(3),
            ..
        })
    ));
}

#[test]
fn quota_code_on_a_non_429_status_is_still_rate_limited() {
    let body = r#"{"message":"Requests per day limit exceeded - too many requests sent.","type":"too_many_requests_error","param":"quota","code":"request_quota_exceeded"}"#;
    assert_eq!(
        decode(response(
            400,
            &[("x-ratelimit-reset-requests-day", "33011.38")],
            body
        )),
        Err(Failure::RateLimited {
            retry_after_seconds: Some(33012),
            message: "Requests per day limit exceeded - too many requests sent.".to_owned()
        })
    );
}

#[test]
fn other_flat_errors_classify_by_status_and_text() {
    assert_eq!(
        decode(response(
            404,
            &[],
            r#"{"message":"Model x does not exist or you do not have access to it.","type":"not_found_error","param":"model","code":"model_not_found"}"#
        )),
        Err(Failure::InvalidRequest(
            "Model x does not exist or you do not have access to it.".to_owned()
        ))
    );
    assert_eq!(
        decode(response(
            400,
            &[],
            r#"{"message":"Please reduce the length of the messages or completion. Current length is 9000 while limit is 8192","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}"#
        )),
        Err(Failure::ContextLengthExceeded(
            "Please reduce the length of the messages or completion. Current length is 9000 while limit is 8192".to_owned()
        ))
    );
    assert_eq!(
        decode(response(
            422,
            &[],
            r#"{"message":"body.temperature: Input should be less than or equal to 1.5","type":"invalid_request_error","param":"body.temperature","code":"wrong_api_format"}"#
        )),
        Err(Failure::InvalidRequest(
            "body.temperature: Input should be less than or equal to 1.5".to_owned()
        ))
    );
    assert_eq!(
        decode(response(
            503,
            &[],
            r#"{"message":"We're experiencing high traffic right now! Please try again soon.","type":"too_many_requests_error","param":"queue","code":"queue_exceeded"}"#
        )),
        Err(Failure::Unavailable(
            "We're experiencing high traffic right now! Please try again soon.".to_owned()
        ))
    );
    assert!(matches!(
        decode(response(500, &[], "Internal Server Error")),
        Err(Failure::Unavailable(ref message)) if message == "Internal Server Error"
    ));
}
