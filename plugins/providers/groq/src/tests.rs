use aigw_plugin_sdk::openai::Compatible;
use aigw_plugin_sdk::testing::{decode_in_pieces, response, sse_head};
use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Failure, Header, HttpResponse, Provider, Step, StreamDecoder,
    Target, Usage,
};
use serde_json::{Value, json};

use super::Groq;

type GroqProvider = Compatible<Groq>;

const TEXT_STREAM: &str = include_str!("../tests/fixtures/groq_text.sse");
const TEXT_STREAM_WITH_USAGE_CHUNK: &str =
    include_str!("../tests/fixtures/groq_text_with_usage_chunk.sse");
const MID_STREAM_ERROR: &str = include_str!("../tests/fixtures/groq_mid_stream_error.sse");

fn target() -> Target {
    Target {
        base_url: "https://api.groq.com/openai/v1".to_owned(),
        model: "llama-3.1-8b-instant".to_owned(),
    }
}

fn encode(request: Value) -> Result<Value, Failure> {
    let request = GroqProvider::encode(&target(), &request.to_string())?;
    Ok(serde_json::from_slice(&request.body).unwrap())
}

fn decode_stream(body: &str, cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_in_pieces(
        GroqProvider::stream_decoder(target(), sse_head()),
        body,
        cut_every,
    )
}

fn decode(response: HttpResponse) -> Result<Step, Failure> {
    GroqProvider::decode(&target(), response)
}

#[test]
fn describes_groq() {
    let descriptor = GroqProvider::describe();
    assert_eq!(descriptor.name, "groq");
    assert_eq!(descriptor.version, "0.1.0");
    assert_eq!(
        descriptor.default_base_url,
        "https://api.groq.com/openai/v1"
    );
    assert_eq!(
        descriptor.credential,
        CredentialPlacement::Header {
            name: "authorization".to_owned(),
            prefix: "Bearer ".to_owned()
        }
    );
    assert!(descriptor.credential_required);
    assert!(
        descriptor
            .models
            .iter()
            .any(|model| model == "llama-3.1-8b-instant")
    );
    assert!(
        descriptor
            .models
            .iter()
            .any(|model| model == "llama-3.3-70b-versatile")
    );
}

#[test]
fn encode_posts_to_groq_with_the_targets_model() {
    let request = GroqProvider::encode(
        &target(),
        r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
    )
    .unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "https://api.groq.com/openai/v1/chat/completions"
    );
    assert!(
        request
            .headers
            .contains(&Header::new("content-type", "application/json"))
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "hi"}],
               "stream": true, "stream_options": {"include_usage": true}})
    );
}

#[test]
fn logprobs_top_logprobs_and_logit_bias_are_rejected_by_name() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for (field, value) in [
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("logit_bias", json!({"50256": -100})),
    ] {
        let mut request = base.clone();
        request[field] = value;
        assert_eq!(
            encode(request),
            Err(Failure::InvalidRequest(format!(
                "groq does not support `{field}`"
            )))
        );
    }
}

#[test]
fn harmless_forms_of_unsupported_fields_are_dropped() {
    let request = json!({"model": "m", "messages": [], "logprobs": false, "top_logprobs": null,
                         "logit_bias": null, "n": 1});
    let body = encode(request).unwrap();
    assert_eq!(body.get("logprobs"), None);
    assert_eq!(body.get("top_logprobs"), None);
    assert_eq!(body.get("logit_bias"), None);
    assert_eq!(body["n"], json!(1));
}

#[test]
fn n_above_one_is_rejected() {
    let result = encode(json!({"model": "m", "messages": [], "n": 2}));
    assert!(
        matches!(result, Err(Failure::InvalidRequest(ref message)) if message.contains("`n`")),
        "{result:?}"
    );
}

#[test]
fn message_names_are_dropped_and_everything_else_kept() {
    let body = encode(json!({
        "model": "m",
        "messages": [
            {"role": "system", "name": "rules", "content": "Be terse."},
            {"role": "user", "name": "alice", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "reasoning_format": "parsed"
    }))
    .unwrap();
    assert_eq!(
        body,
        json!({
            "model": "llama-3.1-8b-instant",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "tool_choice": "auto",
            "response_format": {"type": "json_object"},
            "reasoning_format": "parsed"
        })
    );
}

#[test]
fn stream_usage_in_x_groq_becomes_an_openai_usage_chunk() {
    for cut_every in [1, 3, 17, 4096] {
        let chunks = decode_stream(TEXT_STREAM, cut_every).unwrap();
        assert_eq!(chunks.len(), 5, "cut every {cut_every}");
        assert!(chunks[..4].iter().all(|chunk| chunk.usage.is_none()));
        let text: String = chunks[..4]
            .iter()
            .filter_map(|chunk| {
                serde_json::from_str::<Value>(&chunk.json).unwrap()["choices"][0]["delta"]
                    ["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, "Bonjour à tous");
        let usage_chunk = &chunks[4];
        assert_eq!(
            usage_chunk.usage,
            Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15
            })
        );
        let value: Value = serde_json::from_str(&usage_chunk.json).unwrap();
        assert_eq!(value["id"], "chatcmpl-123");
        assert_eq!(value["object"], "chat.completion.chunk");
        assert_eq!(value["created"], 1234567890);
        assert_eq!(value["model"], "llama-3.1-8b-instant");
        assert_eq!(value["choices"], json!([]));
        assert_eq!(value["usage"]["total_tokens"], 15);
    }
}

#[test]
fn stream_usage_chunk_from_upstream_is_not_duplicated() {
    let chunks = decode_stream(TEXT_STREAM_WITH_USAGE_CHUNK, 7).unwrap();
    assert_eq!(chunks.len(), 3);
    let with_usage: Vec<&Chunk> = chunks
        .iter()
        .filter(|chunk| chunk.usage.is_some())
        .collect();
    assert_eq!(with_usage.len(), 1);
    // The upstream's own chunk, verbatim.
    assert_eq!(
        with_usage[0].json,
        r#"{"id":"chatcmpl-124","object":"chat.completion.chunk","created":1234567891,"model":"llama-3.3-70b-versatile","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}"#
    );
}

#[test]
fn stream_cut_after_the_finish_chunk_still_yields_usage() {
    let body = TEXT_STREAM.replace("data: [DONE]\n\n", "");
    let chunks = decode_stream(&body, 4096).unwrap();
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks[4].usage.map(|usage| usage.total_tokens), Some(15));
}

#[test]
fn stream_cut_before_the_finish_chunk_is_unavailable() {
    let body: String = TEXT_STREAM.split_inclusive("\n\n").take(2).collect();
    assert_eq!(
        decode_stream(&body, 4096),
        Err(Failure::Unavailable(
            "stream ended before completion".to_owned()
        ))
    );
}

#[test]
fn mid_stream_error_frame_is_a_failure() {
    let mut decoder = GroqProvider::stream_decoder(target(), sse_head());
    let (first, rest) = MID_STREAM_ERROR.split_at(MID_STREAM_ERROR.find("\n\n").unwrap() + 2);
    assert_eq!(decoder.feed(first.as_bytes()).unwrap().len(), 1);
    assert_eq!(
        decoder.feed(rest.as_bytes()),
        Err(Failure::Unavailable("Service Unavailable".to_owned()))
    );
}

#[test]
fn non_stream_usage_is_read_from_usage() {
    let body = r#"{"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"llama-3.1-8b-instant","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"queue_time":0.02,"prompt_tokens":24,"prompt_time":0.001,"completion_tokens":8,"completion_time":0.007,"total_tokens":32,"total_time":0.008},"system_fingerprint":"fp_1","x_groq":{"id":"req_9"}}"#;
    let Ok(Step::Done(completion)) = decode(response(200, &[], body)) else {
        panic!("expected a completion");
    };
    assert_eq!(completion.json, body);
    assert_eq!(
        completion.usage,
        Some(Usage {
            prompt_tokens: 24,
            completion_tokens: 8,
            total_tokens: 32
        })
    );
}

#[test]
fn rate_limit_429_reads_retry_after_then_the_body_delay() {
    let body = r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_1` service tier on_demand on tokens per minute (TPM): Limit 15000, Used 11972, Requested 4351. Please try again in 5.289s. Need more tokens?","type":"tokens","code":"rate_limit_exceeded"}}"#;
    assert!(matches!(
        decode(response(429, &[("retry-after", "9")], body)),
        Err(Failure::RateLimited {
            retry_after_seconds: Some(9),
            ..
        })
    ));
    assert!(matches!(
        decode(response(429, &[], body)),
        Err(Failure::RateLimited {
            retry_after_seconds: Some(6),
            ..
        })
    ));
    assert!(matches!(
        decode(response(
            429,
            &[("x-ratelimit-reset-tokens", "7.66s")],
            r#"{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}"#
        )),
        Err(Failure::RateLimited {
            retry_after_seconds: Some(8),
            ..
        })
    ));
}

#[test]
fn request_over_the_tpm_budget_413_is_rate_limited() {
    let body = r#"{"error":{"message":"Request too large for model `llama-3.1-8b-instant` in organization `org_1` service tier `on_demand` on tokens per minute (TPM): Limit 6000, Requested 9000, please reduce your message size and try again.","type":"tokens","code":"rate_limit_exceeded"}}"#;
    assert!(matches!(
        decode(response(413, &[], body)),
        Err(Failure::RateLimited { ref message, .. }) if message.starts_with("Request too large")
    ));
}

#[test]
fn flex_capacity_498_is_unavailable() {
    let body = r#"{"error":{"message":"Flex tier capacity exceeded. This is a known issue and we are working on it. Please try again later.","type":"capacity_exceeded","code":"capacity_exceeded"}}"#;
    assert_eq!(
        decode(response(498, &[], body)),
        Err(Failure::Unavailable(
            "Flex tier capacity exceeded. This is a known issue and we are working on it. Please try again later.".to_owned()
        ))
    );
}

#[test]
fn tool_use_failed_is_unavailable_not_the_clients_fault() {
    let body = r#"{"error":{"message":"Failed to call a function. Please adjust your prompt. See 'failed_generation' for more details.","type":"invalid_request_error","code":"tool_use_failed","failed_generation":"<function=get_weather{\"city\": \"Paris\"}</function>"}}"#;
    assert_eq!(
        decode(response(400, &[], body)),
        Err(Failure::Unavailable(
            "Failed to call a function. Please adjust your prompt. See 'failed_generation' for more details.".to_owned()
        ))
    );
}

#[test]
fn other_errors_keep_the_shared_classification() {
    assert_eq!(
        decode(response(
            401,
            &[],
            r#"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#
        )),
        Err(Failure::Unauthorized("Invalid API Key".to_owned()))
    );
    assert_eq!(
        decode(response(
            404,
            &[],
            r#"{"error":{"message":"The model `x` does not exist or you do not have access to it.","type":"invalid_request_error","code":"model_not_found"}}"#
        )),
        Err(Failure::InvalidRequest(
            "The model `x` does not exist or you do not have access to it.".to_owned()
        ))
    );
    assert!(matches!(
        decode(response(
            400,
            &[],
            r#"{"error":{"message":"Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages"}}"#
        )),
        Err(Failure::ContextLengthExceeded(_))
    ));
    assert!(matches!(
        decode(response(503, &[], "")),
        Err(Failure::Unavailable(_))
    ));
}
