use aigw_plugin_sdk::openai::Compatible;
use aigw_plugin_sdk::testing::{decode_in_pieces, json_of, sse_head};
use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Failure, Header, HttpResponse, Provider, Step, StreamDecoder,
    Target, Usage,
};
use serde_json::{Value, json};

use super::HuggingFace;

type Hf = Compatible<HuggingFace>;

const GROQ_BACKEND_STREAM: &str = include_str!("../tests/fixtures/hf_groq_backend.sse");
const MID_STREAM_ERROR: &str = include_str!("../tests/fixtures/hf_mid_stream_error.sse");

fn target() -> Target {
    Target {
        base_url: "https://router.huggingface.co/v1".to_owned(),
        model: "deepseek-ai/DeepSeek-V3-0324:novita".to_owned(),
    }
}

fn encode(request: Value) -> Result<Value, Failure> {
    let request = Hf::encode(&target(), &request.to_string())?;
    Ok(serde_json::from_slice(&request.body).unwrap())
}

fn decode_stream(body: &str, cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_in_pieces(Hf::stream_decoder(target(), sse_head()), body, cut_every)
}

fn response(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: Vec::<Header>::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn decode(response: HttpResponse) -> Result<Step, Failure> {
    Hf::decode(&target(), response)
}

#[test]
fn describes_huggingface() {
    let descriptor = Hf::describe();
    assert_eq!(descriptor.name, "huggingface");
    assert_eq!(descriptor.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        descriptor.default_base_url,
        "https://router.huggingface.co/v1"
    );
    assert_eq!(descriptor.credential, CredentialPlacement::bearer());
    assert!(descriptor.credential_required);
    assert!(
        descriptor
            .models
            .iter()
            .any(|model| model == "Qwen/Qwen3-8B")
    );
}

#[test]
fn encode_keeps_the_provider_suffix_on_the_model() {
    let request = Hf::encode(
        &target(),
        r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"stream":true,"stop":["a","b"],"top_logprobs":5,"logprobs":true}"#,
    )
    .unwrap();
    assert_eq!(
        request.url,
        "https://router.huggingface.co/v1/chat/completions"
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "deepseek-ai/DeepSeek-V3-0324:novita",
               "messages": [{"role": "user", "content": "hi"}],
               "stream": true, "stream_options": {"include_usage": true},
               "stop": ["a", "b"], "top_logprobs": 5, "logprobs": true})
    );
}

#[test]
fn too_many_stop_sequences_or_top_logprobs_are_rejected_by_name() {
    assert_eq!(
        encode(json!({"messages": [], "stop": ["1", "2", "3", "4", "5"]})),
        Err(Failure::InvalidRequest(
            "huggingface accepts at most 4 `stop` sequences (got 5)".to_owned()
        ))
    );
    assert_eq!(
        encode(json!({"messages": [], "logprobs": true, "top_logprobs": 10})),
        Err(Failure::InvalidRequest(
            "huggingface accepts `top_logprobs` up to 5 (got 10)".to_owned()
        ))
    );
}

#[test]
fn non_stream_completion_passes_through_with_usage() {
    let body = r#"{"id":"chatcmpl-h0","object":"chat.completion","created":1730000199,"model":"deepseek-ai/DeepSeek-V3-0324","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":52,"completion_tokens":17,"total_tokens":69},"system_fingerprint":""}"#;
    let Ok(Step::Done(completion)) = decode(response(200, body)) else {
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
fn groq_backend_stream_usage_in_x_groq_becomes_a_usage_chunk() {
    for cut_every in [1, 10, 4096] {
        let chunks = decode_stream(GROQ_BACKEND_STREAM, cut_every).unwrap();
        assert_eq!(chunks.len(), 4, "cut every {cut_every}");
        let arguments: String = chunks[..3]
            .iter()
            .filter_map(|chunk| {
                json_of(chunk)["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(arguments, r#"{"city":"Paris"}"#);
        assert!(chunks[..3].iter().all(|chunk| chunk.usage.is_none()));
        assert_eq!(
            chunks[3].usage,
            Some(Usage {
                prompt_tokens: 40,
                completion_tokens: 9,
                total_tokens: 49
            })
        );
        assert_eq!(json_of(&chunks[3])["choices"], json!([]));
    }
}

#[test]
fn string_error_frame_mid_stream_is_unavailable() {
    let mut decoder = Hf::stream_decoder(target(), sse_head());
    let (first, rest) = MID_STREAM_ERROR.split_at(MID_STREAM_ERROR.find("\n\n").unwrap() + 2);
    assert_eq!(decoder.feed(first.as_bytes()).unwrap().len(), 1);
    assert_eq!(
        decoder.feed(rest.as_bytes()),
        Err(Failure::Unavailable(
            "Request failed during generation: Server error: CUDA out of memory".to_owned()
        ))
    );
}

#[test]
fn credits_exhausted_402_string_body_is_no_credit() {
    assert_eq!(
        decode(response(402, r#"{"error":"You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get 20x more monthly included credits."}"#)),
        Err(Failure::NoCredit("You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get 20x more monthly included credits.".to_owned()))
    );
    assert_eq!(
        decode(response(
            401,
            r#"{"error":"Invalid credentials in Authorization header"}"#
        )),
        Err(Failure::Unauthorized(
            "Invalid credentials in Authorization header".to_owned()
        ))
    );
    assert!(matches!(
        decode(response(
            403,
            r#"{"error":"This authentication method does not have sufficient permissions to call Inference Providers on behalf of user x"}"#
        )),
        Err(Failure::Unauthorized(_))
    ));
}

#[test]
fn loading_model_503_is_rate_limited_for_the_estimated_time() {
    assert_eq!(
        decode(response(
            503,
            r#"{"error":"Model mistralai/Mistral-7B-Instruct-v0.2 is currently loading","estimated_time":20.4}"#
        )),
        Err(Failure::RateLimited {
            retry_after_seconds: Some(21),
            message: "Model mistralai/Mistral-7B-Instruct-v0.2 is currently loading".to_owned()
        })
    );
    assert_eq!(
        decode(response(503, r#"{"error":"Service Unavailable"}"#)),
        Err(Failure::Unavailable("Service Unavailable".to_owned()))
    );
    assert!(matches!(
        decode(response(504, "")),
        Err(Failure::Unavailable(_))
    ));
}

#[test]
fn router_and_provider_request_errors() {
    assert_eq!(
        decode(response(
            400,
            r#"{"error":{"message":"The requested model 'x' is not supported by any provider you have enabled.","type":"invalid_request_error","param":"model","code":"model_not_supported"}}"#
        )),
        Err(Failure::InvalidRequest(
            "The requested model 'x' is not supported by any provider you have enabled.".to_owned()
        ))
    );
    assert!(matches!(
        decode(response(400, r#"{"error":{"message":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8192. Given: 9000 `inputs` tokens and 100 `max_new_tokens`","type":"validation"}}"#)),
        Err(Failure::ContextLengthExceeded(ref message)) if message.starts_with("Input validation error")
    ));
    assert!(matches!(
        decode(response(
            422,
            r#"{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`","error_type":"validation"}"#
        )),
        Err(Failure::ContextLengthExceeded(_))
    ));
    assert!(matches!(
        decode(response(
            400,
            r#"{"error":{"message":"Input is longer than the model's context length (40960)","type":"invalid_request_error"}}"#
        )),
        Err(Failure::ContextLengthExceeded(_))
    ));
    assert!(matches!(
        decode(response(
            429,
            r#"{"error":"Rate limit reached. You reached free usage limit (reset hourly)."}"#
        )),
        Err(Failure::RateLimited {
            retry_after_seconds: None,
            ..
        })
    ));
}
