use aigw_plugin_sdk::testing::{decode_in_pieces, json_of, response, sse_head};
use std::time::{SystemTime, UNIX_EPOCH};

use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Failure, HttpResponse, Provider, Step, StreamDecoder, Target, Usage,
};
use serde_json::{Value, json};

use super::OpenRouterProvider;

const TOOL_CALL_STREAM: &str = include_str!("../tests/fixtures/openrouter_tool_call.sse");
const TEXT_STREAM: &str = include_str!("../tests/fixtures/openrouter_text.sse");
const MID_STREAM_ERROR: &str = include_str!("../tests/fixtures/openrouter_mid_stream_error.sse");

fn target() -> Target {
    Target {
        base_url: "https://openrouter.ai/api/v1".to_owned(),
        model: "meta-llama/llama-3.3-70b-instruct:free".to_owned(),
    }
}

fn encode(request: Value) -> Result<Value, Failure> {
    let request = OpenRouterProvider::encode(&target(), &request.to_string())?;
    Ok(serde_json::from_slice(&request.body).unwrap())
}

fn decode_stream(body: &str, cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_in_pieces(
        OpenRouterProvider::stream_decoder(target(), sse_head()),
        body,
        cut_every,
    )
}

fn decode(response: HttpResponse) -> Result<Step, Failure> {
    OpenRouterProvider::decode(&target(), response)
}

fn epoch_ms_in(seconds: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (now.as_millis() as u64 + seconds * 1000).to_string()
}

#[test]
fn describes_openrouter() {
    let descriptor = OpenRouterProvider::describe();
    assert_eq!(descriptor.name, "openrouter");
    assert_eq!(descriptor.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(descriptor.default_base_url, "https://openrouter.ai/api/v1");
    assert_eq!(descriptor.credential, CredentialPlacement::bearer());
    assert!(descriptor.credential_required);
    assert!(
        descriptor
            .models
            .iter()
            .any(|model| model == "openai/gpt-4o")
    );
    assert!(
        descriptor
            .models
            .iter()
            .any(|model| model == "anthropic/claude-sonnet-4")
    );
}

#[test]
fn encode_posts_to_openrouter_keeping_extras_and_the_variant_suffix() {
    let request = OpenRouterProvider::encode(
        &target(),
        r#"{"model":"cheap","messages":[{"role":"user","content":"hi"}],"stream":true,
            "provider":{"order":["Together"],"allow_fallbacks":false},"reasoning":{"effort":"low"},
            "transforms":["middle-out"],"top_k":40}"#,
    )
    .unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://openrouter.ai/api/v1/chat/completions");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "meta-llama/llama-3.3-70b-instruct:free",
               "messages": [{"role": "user", "content": "hi"}],
               "stream": true, "stream_options": {"include_usage": true},
               "provider": {"order": ["Together"], "allow_fallbacks": false},
               "reasoning": {"effort": "low"}, "transforms": ["middle-out"], "top_k": 40})
    );
}

#[test]
fn client_model_fallback_list_is_dropped() {
    let body = encode(json!({"model": "x", "messages": [],
        "models": ["openai/gpt-4o", "anthropic/claude-sonnet-4"], "route": "fallback"}))
    .unwrap();
    assert_eq!(body.get("models"), None);
    assert_eq!(body.get("route"), None);
    assert_eq!(body["model"], "meta-llama/llama-3.3-70b-instruct:free");
}

#[test]
fn non_stream_completion_passes_through_with_usage() {
    let body = r#"{"id":"gen-1730000000-abc","provider":"OpenAI","model":"openai/gpt-4o","object":"chat.completion","created":1730000000,"choices":[{"logprobs":null,"finish_reason":"tool_calls","native_finish_reason":"tool_calls","index":0,"message":{"role":"assistant","content":"","refusal":null,"reasoning":null,"tool_calls":[{"id":"call_1","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}}],"usage":{"prompt_tokens":52,"completion_tokens":17,"total_tokens":69,"cost":0.0003,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;
    let Ok(Step::Done(completion)) = decode(response(200, &[], body)) else {
        panic!("expected a completion");
    };
    assert_eq!(completion.json, body);
    assert_eq!(
        completion.usage,
        Some(Usage {
            prompt_tokens: 52,
            completion_tokens: 17,
            total_tokens: 69
        })
    );
}

#[test]
fn error_body_on_a_200_is_classified_by_its_numeric_code() {
    assert_eq!(
        decode(response(
            200,
            &[],
            r#"{"error":{"code":502,"message":"Provider returned error","metadata":{"provider_name":"Together","raw":"upstream timeout"}}}"#
        )),
        Err(Failure::Unavailable("Provider returned error".to_owned()))
    );
}

#[test]
fn stream_skips_processing_comments_and_synthesises_the_usage_chunk() {
    for cut_every in [1, 7, 100, 8192] {
        let chunks = decode_stream(TOOL_CALL_STREAM, cut_every).unwrap();
        // 4 tool-call chunks + the chunk that carried usage beside `choices` + the usage chunk.
        assert_eq!(chunks.len(), 6, "cut every {cut_every}");
        assert!(chunks[..5].iter().all(|chunk| chunk.usage.is_none()));
        let arguments: String = chunks
            .iter()
            .filter_map(|chunk| {
                json_of(chunk)["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(arguments, r#"{"city":"Paris"}"#);
        assert_eq!(
            json_of(&chunks[0])["choices"][0]["delta"]["tool_calls"][0]["id"],
            "call_1"
        );
        assert_eq!(
            json_of(&chunks[3])["choices"][0]["finish_reason"],
            "tool_calls"
        );
        assert_eq!(
            chunks[5].usage,
            Some(Usage {
                prompt_tokens: 52,
                completion_tokens: 17,
                total_tokens: 69
            })
        );
        let usage_chunk = json_of(&chunks[5]);
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["id"], "gen-1730000000-abc");
        assert_eq!(usage_chunk["usage"]["cost"], 0.0003);
    }
}

#[test]
fn stream_usage_chunk_with_empty_choices_is_used_verbatim() {
    let chunks = decode_stream(TEXT_STREAM, 13).unwrap();
    assert_eq!(chunks.len(), 3);
    let text: String = chunks[..2]
        .iter()
        .filter_map(|chunk| {
            json_of(chunk)["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Bonjour");
    assert_eq!(
        chunks[2].usage,
        Some(Usage {
            prompt_tokens: 8,
            completion_tokens: 2,
            total_tokens: 10
        })
    );
    assert_eq!(json_of(&chunks[2])["usage"]["cost"], 0.0000012);
}

#[test]
fn mid_stream_error_chunk_with_finish_reason_error_is_unavailable() {
    let mut decoder = OpenRouterProvider::stream_decoder(target(), sse_head());
    let split = MID_STREAM_ERROR.find("data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"created\":1730000000,\"model\":\"openai/gpt-4o\",\"provider\":\"openai\"").unwrap();
    let (first, rest) = MID_STREAM_ERROR.split_at(split);
    let chunks = decoder.feed(first.as_bytes()).unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        json_of(&chunks[0])["choices"][0]["delta"]["content"],
        "Half an ans"
    );
    assert_eq!(
        decoder.feed(rest.as_bytes()),
        Err(Failure::Unavailable(
            "Provider disconnected unexpectedly".to_owned()
        ))
    );
}

#[test]
fn mid_stream_error_with_a_numeric_code_is_classified_as_that_status() {
    let body = r#"data: {"id":"gen-3","object":"chat.completion.chunk","created":1,"model":"openai/gpt-4o","error":{"code":429,"message":"Rate limit exceeded: upstream","metadata":{"provider_name":"OpenAI","raw":"..."}},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}

"#;
    assert_eq!(
        decode_stream(body, 4096),
        Err(Failure::RateLimited {
            retry_after_seconds: None,
            message: "Rate limit exceeded: upstream".to_owned()
        })
    );
}

#[test]
fn finish_reason_error_without_an_error_object_is_unavailable() {
    let body = r#"data: {"id":"gen-4","object":"chat.completion.chunk","created":1,"model":"openai/gpt-4o","choices":[{"index":0,"delta":{"content":""},"finish_reason":"error","native_finish_reason":"provider_error"}]}

data: [DONE]

"#;
    assert_eq!(
        decode_stream(body, 4096),
        Err(Failure::Unavailable(
            "the upstream provider ended the stream with an error (provider_error)".to_owned()
        ))
    );
}

#[test]
fn rate_limit_reads_retry_after_then_epoch_ms_reset_header_then_metadata() {
    let body = r#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429,"metadata":{"headers":{"X-RateLimit-Limit":"50","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"RESET"}}}}"#;
    let reset = epoch_ms_in(120);
    let with_reset = body.replace("RESET", &reset);
    assert!(matches!(
        decode(response(429, &[("Retry-After", "30")], &with_reset)),
        Err(Failure::RateLimited {
            retry_after_seconds: Some(30),
            ..
        })
    ));
    let Err(Failure::RateLimited {
        retry_after_seconds: Some(from_header),
        message,
    }) = decode(response(
        429,
        &[
            ("X-RateLimit-Limit", "50"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", &reset),
        ],
        body,
    ))
    else {
        panic!("expected rate-limited with a delay");
    };
    assert!((118..=121).contains(&from_header), "{from_header}");
    assert!(message.starts_with("Rate limit exceeded: free-models-per-day."));
    let Err(Failure::RateLimited {
        retry_after_seconds: Some(from_metadata),
        ..
    }) = decode(response(429, &[], &with_reset))
    else {
        panic!("expected rate-limited with a delay from metadata");
    };
    assert!((118..=121).contains(&from_metadata), "{from_metadata}");
}

#[test]
fn moderation_403_is_content_filtered_with_its_reasons() {
    let body = r#"{"error":{"code":403,"message":"openai/gpt-4o requires moderation on OpenAI. Your input was flagged for \"harassment\". No credits were charged.","metadata":{"reasons":["harassment"],"flagged_input":"you are...","provider_name":"OpenAI","model_slug":"openai/gpt-4o"}}}"#;
    assert_eq!(
        decode(response(403, &[], body)),
        Err(Failure::ContentFiltered(
            "openai/gpt-4o requires moderation on OpenAI. Your input was flagged for \"harassment\". No credits were charged.".to_owned()
        ))
    );
    let terse = r#"{"error":{"code":403,"message":"Blocked by guardrail","metadata":{"reasons":["violence","hate"],"flagged_input":"..."}}}"#;
    assert_eq!(
        decode(response(403, &[], terse)),
        Err(Failure::ContentFiltered(
            "Blocked by guardrail (reasons: violence, hate)".to_owned()
        ))
    );
}

#[test]
fn auth_failures_are_unauthorized_and_402_is_no_credit() {
    assert_eq!(
        decode(response(
            401,
            &[],
            r#"{"error":{"message":"Missing Authentication header","code":401}}"#
        )),
        Err(Failure::Unauthorized(
            "Missing Authentication header".to_owned()
        ))
    );
    assert_eq!(
        decode(response(
            402,
            &[],
            r#"{"error":{"message":"This request requires more credits, or fewer max_tokens. You requested up to 4096 tokens, but can only afford 1000.","code":402}}"#
        )),
        Err(Failure::NoCredit(
            "This request requires more credits, or fewer max_tokens. You requested up to 4096 tokens, but can only afford 1000.".to_owned()
        ))
    );
    // A negative balance says 402 on a 200 body and mid-stream too.
    let no_credit = r#"{"error":{"message":"Insufficient credits","code":402}}"#;
    assert_eq!(
        decode(response(200, &[], no_credit)),
        Err(Failure::NoCredit("Insufficient credits".to_owned()))
    );
    let frame = "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"error\":{\"code\":402,\"message\":\"Insufficient credits\"},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n";
    assert_eq!(
        decode_stream(frame, 9),
        Err(Failure::NoCredit("Insufficient credits".to_owned()))
    );
    assert_eq!(
        decode(response(
            403,
            &[],
            r#"{"error":{"message":"Key is disabled","code":403}}"#
        )),
        Err(Failure::Unauthorized("Key is disabled".to_owned()))
    );
}

#[test]
fn context_overflow_timeouts_and_upstream_failures() {
    let overflow = r#"{"error":{"message":"This endpoint's maximum context length is 131072 tokens. However, you requested about 140000 tokens (139000 of text input, 1000 in the output). Please reduce the length of either one, or use the \"middle-out\" transform to compress your prompt automatically.","code":400}}"#;
    assert!(matches!(
        decode(response(400, &[], overflow)),
        Err(Failure::ContextLengthExceeded(ref message)) if message.starts_with("This endpoint's maximum context length is 131072 tokens.")
    ));
    assert_eq!(
        decode(response(
            400,
            &[],
            r#"{"error":{"message":"temperature: must be <= 2","code":400}}"#
        )),
        Err(Failure::InvalidRequest(
            "temperature: must be <= 2".to_owned()
        ))
    );
    assert_eq!(
        decode(response(
            408,
            &[],
            r#"{"error":{"message":"Request timed out","code":408}}"#
        )),
        Err(Failure::Unavailable("Request timed out".to_owned()))
    );
    assert_eq!(
        decode(response(
            502,
            &[],
            r#"{"error":{"message":"Provider returned error","code":502,"metadata":{"provider_name":"Together","raw":"{\"error\":\"bad gateway\"}"}}}"#
        )),
        Err(Failure::Unavailable("Provider returned error".to_owned()))
    );
    assert_eq!(
        decode(response(
            503,
            &[],
            r#"{"error":{"message":"No endpoints found that can handle the requested parameters.","code":503}}"#
        )),
        Err(Failure::Unavailable(
            "No endpoints found that can handle the requested parameters.".to_owned()
        ))
    );
}
