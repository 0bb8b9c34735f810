use aigw_plugin_sdk::testing::{decode_in_pieces, json_head, json_of, sse_head};
use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Failure, Header, HttpResponse, Provider, Step, StreamDecoder,
    Target, Usage,
};
use serde_json::{Value, json};

use super::Gemini;

const TEXT_STREAM: &str = include_str!("../tests/fixtures/text.sse");
const FUNCTION_CALL_STREAM: &str = include_str!("../tests/fixtures/function_call.sse");
const CUT_SHORT_STREAM: &str = include_str!("../tests/fixtures/cut_short.sse");
const MID_STREAM_ERROR: &str = include_str!("../tests/fixtures/mid_stream_error.sse");
const TEXT: &str = include_str!("../tests/fixtures/text.json");
const FUNCTION_CALL: &str = include_str!("../tests/fixtures/function_call.json");
const SAFETY: &str = include_str!("../tests/fixtures/safety.json");
const BLOCKED_PROMPT: &str = include_str!("../tests/fixtures/blocked_prompt.json");
const ERROR_INVALID_ARGUMENT: &str = include_str!("../tests/fixtures/error_invalid_argument.json");
const ERROR_API_KEY_INVALID: &str = include_str!("../tests/fixtures/error_api_key_invalid.json");
const ERROR_CONTEXT_LENGTH: &str = include_str!("../tests/fixtures/error_context_length.json");
const ERROR_PERMISSION_DENIED: &str =
    include_str!("../tests/fixtures/error_permission_denied.json");
const ERROR_RATE_LIMITED: &str = include_str!("../tests/fixtures/error_rate_limited.json");
const ERROR_INTERNAL: &str = include_str!("../tests/fixtures/error_internal.json");
const ERROR_UNAVAILABLE: &str = include_str!("../tests/fixtures/error_unavailable.json");

fn target() -> Target {
    Target {
        base_url: "https://generativelanguage.googleapis.com/v1beta".to_owned(),
        model: "gemini-2.5-flash".to_owned(),
    }
}

fn encode_request(request: Value) -> Result<aigw_plugin_sdk::HttpRequest, Failure> {
    Gemini::encode(&target(), &request.to_string())
}

fn encode(request: Value) -> Result<Value, Failure> {
    let request = encode_request(request)?;
    Ok(serde_json::from_slice(&request.body).unwrap())
}

fn response(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![Header::new("content-type", "application/json")],
        body: body.as_bytes().to_vec(),
    }
}

fn decode(status: u16, body: &str) -> Result<(Value, Option<Usage>), Failure> {
    match Gemini::decode(&target(), response(status, body))? {
        Step::Done(completion) => Ok((
            serde_json::from_str(&completion.json).unwrap(),
            completion.usage,
        )),
        Step::Follow(request) => panic!("unexpected follow-up request {request:?}"),
    }
}

fn decode_stream(body: &str, cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_in_pieces(
        Gemini::stream_decoder(target(), sse_head()),
        body,
        cut_every,
    )
}

/// The concatenated `delta.content` of choice 0 across chunks.
fn streamed_text(chunks: &[Chunk]) -> String {
    chunks
        .iter()
        .map(json_of)
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

// ---------------------------------------------------------------- describe

#[test]
fn describes_gemini() {
    let descriptor = Gemini::describe();
    assert_eq!(descriptor.name, "gemini");
    assert_eq!(descriptor.version, "0.1.0");
    assert_eq!(
        descriptor.default_base_url,
        "https://generativelanguage.googleapis.com/v1beta"
    );
    assert_eq!(
        descriptor.credential,
        CredentialPlacement::Header {
            name: "x-goog-api-key".to_owned(),
            prefix: String::new(),
        }
    );
    assert!(descriptor.credential_required);
    assert!(
        descriptor
            .models
            .iter()
            .any(|model| model == "gemini-2.5-flash")
    );
}

// ---------------------------------------------------------------- encode

#[test]
fn encodes_url_and_headers_for_plain_and_streamed_calls() {
    let request = encode_request(json!({
        "model": "anything", "messages": [{"role": "user", "content": "Hi"}]
    }))
    .unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert!(
        request
            .headers
            .contains(&Header::new("content-type", "application/json"))
    );
    // The host adds the credential; the plugin never sets it.
    assert!(
        !request
            .headers
            .iter()
            .any(|header| header.name.eq_ignore_ascii_case("x-goog-api-key"))
    );

    let streamed = encode_request(json!({
        "model": "m", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hi"}]
    }))
    .unwrap();
    assert_eq!(
        streamed.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert!(
        streamed
            .headers
            .contains(&Header::new("accept", "text/event-stream"))
    );
    let body: Value = serde_json::from_slice(&streamed.body).unwrap();
    assert!(body.get("stream").is_none());
    assert!(body.get("stream_options").is_none());
    assert!(body.get("model").is_none());
}

#[test]
fn encodes_models_prefix_and_trailing_slash() {
    let target = Target {
        base_url: "http://127.0.0.1:9000/v1beta/".to_owned(),
        model: "models/gemini-2.5-pro".to_owned(),
    };
    let request = Gemini::encode(
        &target,
        &json!({"messages": [{"role": "user", "content": "Hi"}]}).to_string(),
    )
    .unwrap();
    assert_eq!(
        request.url,
        "http://127.0.0.1:9000/v1beta/models/gemini-2.5-pro:generateContent"
    );
}

#[test]
fn encodes_system_multi_turn_tools_and_tool_results() {
    let body = encode(json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Weather in Paris and Lyon?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\":18}"},
            {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
            {"role": "assistant", "content": "18°C à Paris."},
            {"role": "user", "content": [
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]}
        ],
        "tools": [
            {"type": "function", "function": {
                "name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": false},
                "strict": true}},
            {"type": "function", "function": {"name": "get_time"}}
        ],
        "tool_choice": "auto"
    }))
    .unwrap();

    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]})
    );
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Paris and Lyon?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}}
            ]},
            {"role": "model", "parts": [{"text": "18°C à Paris."}]},
            {"role": "user", "parts": [
                {"text": "And this picture?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
            ]}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [
            {"name": "get_weather", "description": "Current weather",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}},
            {"name": "get_time"}
        ]}])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );
    assert!(body.get("messages").is_none());
    assert!(body.get("tool_choice").is_none());
}

#[test]
fn tool_result_name_comes_from_the_latest_matching_call() {
    // Ids repeat across turns (`call_0` every turn); the latest earlier call names the result.
    let body = encode(json!({
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function",
                "function": {"name": "first", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "[1,2]"},
            {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function",
                "function": {"name": "second", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "42"}
        ]
    }))
    .unwrap();
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "first", "response": {"result": [1, 2]}})
    );
    assert_eq!(
        body["contents"][4]["parts"][0]["functionResponse"],
        json!({"name": "second", "response": {"result": 42}})
    );
}

#[test]
fn rejects_tool_result_without_matching_call() {
    let failure = encode(json!({
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "tool", "tool_call_id": "call_x", "content": "1"}
        ]
    }))
    .unwrap_err();
    assert!(
        matches!(&failure, Failure::InvalidRequest(message) if message.contains("call_x")),
        "{failure:?}"
    );
}

#[test]
fn rejects_malformed_tool_call_arguments() {
    let failure = encode(json!({
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": "{not json"}}]}
        ]
    }))
    .unwrap_err();
    assert!(matches!(failure, Failure::InvalidRequest(_)), "{failure:?}");
}

#[test]
fn maps_tool_choice() {
    let choice = |tool_choice: Value| {
        encode(json!({
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": tool_choice
        }))
        .map(|body| body["toolConfig"]["functionCallingConfig"].clone())
    };
    assert_eq!(choice(json!("none")).unwrap(), json!({"mode": "NONE"}));
    assert_eq!(choice(json!("required")).unwrap(), json!({"mode": "ANY"}));
    assert_eq!(
        choice(json!({"type": "function", "function": {"name": "f"}})).unwrap(),
        json!({"mode": "ANY", "allowedFunctionNames": ["f"]})
    );
    assert!(matches!(
        choice(json!("sometimes")),
        Err(Failure::InvalidRequest(_))
    ));
}

#[test]
fn maps_generation_config() {
    let body = encode(json!({
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 100,
        "max_completion_tokens": 256,
        "temperature": 0.7,
        "top_p": 0.95,
        "stop": ["\n\n", "END"],
        "seed": 42,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "response_format": {"type": "json_object"},
        "n": 1,
        "user": "end-user",
        "parallel_tool_calls": true
    }))
    .unwrap();
    assert_eq!(
        body["generationConfig"],
        json!({
            "maxOutputTokens": 256, "temperature": 0.7, "topP": 0.95,
            "stopSequences": ["\n\n", "END"], "seed": 42,
            "presencePenalty": 0.5, "frequencyPenalty": 0.25,
            "responseMimeType": "application/json"
        })
    );
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        2,
        "only contents and generationConfig: {keys:?}"
    );

    let body = encode(json!({
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 64,
        "stop": "STOP",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "integer"}},
                       "additionalProperties": false}}}
    }))
    .unwrap();
    assert_eq!(
        body["generationConfig"],
        json!({
            "maxOutputTokens": 64, "stopSequences": ["STOP"],
            "responseMimeType": "application/json",
            "responseSchema": {"type": "object", "properties": {"a": {"type": "integer"}}}
        })
    );
}

#[test]
fn rejects_n_greater_than_one() {
    let failure =
        encode(json!({"messages": [{"role": "user", "content": "Hi"}], "n": 2})).unwrap_err();
    assert!(
        matches!(&failure, Failure::InvalidRequest(message) if message.contains("`n`")),
        "{failure:?}"
    );
}

#[test]
fn rejects_bad_requests() {
    for request in [
        json!([]),
        json!({"messages": []}),
        json!({"messages": [{"role": "system", "content": "only a system prompt"}]}),
        json!({"messages": [{"role": "wizard", "content": "Hi"}]}),
        json!({"messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "retrieval"}]}),
    ] {
        let failure = encode(request.clone()).unwrap_err();
        assert!(
            matches!(failure, Failure::InvalidRequest(_)),
            "{request}: {failure:?}"
        );
    }
    assert!(matches!(
        Gemini::encode(&target(), "{not json"),
        Err(Failure::InvalidRequest(_))
    ));
}

// ---------------------------------------------------------------- decode

#[test]
fn decodes_text_and_usage() {
    let (completion, usage) = decode(200, TEXT).unwrap();
    assert_eq!(completion["id"], "chatcmpl-Il0taoSY");
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "gemini-2.5-flash");
    assert!(completion["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        completion["choices"],
        json!([{
            "index": 0,
            "message": {"role": "assistant", "content": "It is 18°C in Paris."},
            "logprobs": null,
            "finish_reason": "stop"
        }])
    );
    assert_eq!(completion["usage"]["prompt_tokens"], 15);
    assert_eq!(completion["usage"]["completion_tokens"], 6);
    assert_eq!(completion["usage"]["total_tokens"], 21);
    assert_eq!(
        usage,
        Some(Usage {
            prompt_tokens: 15,
            completion_tokens: 6,
            total_tokens: 21
        })
    );
}

#[test]
fn decodes_function_calls_and_counts_thoughts_as_completion() {
    let (completion, usage) = decode(200, FUNCTION_CALL).unwrap();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    // The thought part is not surfaced as content.
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "call_0");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[1]["id"], "call_1");
    let arguments = calls[1]["function"]["arguments"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(arguments).unwrap(),
        json!({"city": "Lyon"})
    );
    assert_eq!(
        usage,
        Some(Usage {
            prompt_tokens: 52,
            completion_tokens: 47,
            total_tokens: 99
        })
    );
    assert_eq!(
        completion["usage"]["completion_tokens_details"]["reasoning_tokens"],
        30
    );
}

#[test]
fn decodes_finish_reasons() {
    let with_reason = |reason: &str| {
        let body = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]},
            "finishReason": reason, "index": 0}]});
        decode(200, &body.to_string()).unwrap().0["choices"][0]["finish_reason"].clone()
    };
    assert_eq!(with_reason("STOP"), "stop");
    assert_eq!(with_reason("MAX_TOKENS"), "length");
    for filtered in [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
    ] {
        assert_eq!(with_reason(filtered), "content_filter", "{filtered}");
    }
    assert_eq!(with_reason("OTHER"), "stop");
}

#[test]
fn decodes_candidate_safety_block_as_content_filter() {
    let (completion, usage) = decode(200, SAFETY).unwrap();
    assert_eq!(completion["id"], "chatcmpl-s1");
    assert_eq!(completion["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(completion["choices"][0]["message"]["content"], "");
    assert_eq!(usage.unwrap().prompt_tokens, 9);
}

#[test]
fn blocked_prompt_on_http_200_is_content_filtered() {
    let failure = decode(200, BLOCKED_PROMPT).unwrap_err();
    assert!(
        matches!(&failure, Failure::ContentFiltered(message) if message.contains("SAFETY")),
        "{failure:?}"
    );
}

#[test]
fn malformed_function_call_without_content_is_unavailable() {
    let body = json!({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0,
        "finishMessage": "Malformed function call: print(x"}]});
    let failure = decode(200, &body.to_string()).unwrap_err();
    assert!(matches!(failure, Failure::Unavailable(_)), "{failure:?}");
}

#[test]
fn bad_success_bodies_are_bad_responses() {
    for body in ["not json", "[]", "{}", r#"{"candidates": []}"#] {
        let failure = decode(200, body).unwrap_err();
        assert!(
            matches!(failure, Failure::BadResponse(_)),
            "{body}: {failure:?}"
        );
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn classifies_invalid_argument() {
    assert_eq!(
        decode(400, ERROR_INVALID_ARGUMENT).unwrap_err(),
        Failure::InvalidRequest(
            "Invalid JSON payload received. Unknown name \"x\": Cannot find field.".to_owned()
        )
    );
}

#[test]
fn classifies_api_key_invalid_as_unauthorized() {
    assert_eq!(
        decode(400, ERROR_API_KEY_INVALID).unwrap_err(),
        Failure::Unauthorized("API key not valid. Please pass a valid API key.".to_owned())
    );
}

#[test]
fn classifies_permission_denied_as_unauthorized() {
    let failure = decode(403, ERROR_PERMISSION_DENIED).unwrap_err();
    assert!(
        matches!(&failure, Failure::Unauthorized(message) if message.contains("leaked")),
        "{failure:?}"
    );
}

#[test]
fn classifies_context_length() {
    let failure = decode(400, ERROR_CONTEXT_LENGTH).unwrap_err();
    assert!(
        matches!(&failure, Failure::ContextLengthExceeded(message)
            if message.contains("The input token count (1200000) exceeds the maximum number of tokens allowed")),
        "{failure:?}"
    );
}

#[test]
fn classifies_rate_limit_with_retry_info() {
    let failure = decode(429, ERROR_RATE_LIMITED).unwrap_err();
    match failure {
        Failure::RateLimited {
            retry_after_seconds,
            message,
        } => {
            // RetryInfo.retryDelay "47.884324799s" wins over the message's 23.47s, rounded up.
            assert_eq!(retry_after_seconds, Some(48));
            assert!(message.starts_with("You exceeded your current quota"));
        }
        other => panic!("expected rate-limited, got {other:?}"),
    }
}

#[test]
fn rate_limit_falls_back_to_the_message_delay() {
    let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "Quota exceeded.\nPlease retry in 23.47s."}});
    assert_eq!(
        decode(429, &body.to_string()).unwrap_err(),
        Failure::RateLimited {
            retry_after_seconds: Some(24),
            message: "Quota exceeded.\nPlease retry in 23.47s.".to_owned()
        }
    );
    let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Slow down",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}]}});
    assert!(matches!(
        decode(429, &body.to_string()).unwrap_err(),
        Failure::RateLimited {
            retry_after_seconds: Some(30),
            ..
        }
    ));
}

#[test]
fn classifies_server_errors_as_unavailable() {
    let failure = decode(500, ERROR_INTERNAL).unwrap_err();
    assert!(
        matches!(&failure, Failure::Unavailable(message) if message.starts_with("An internal error")),
        "{failure:?}"
    );
    assert_eq!(
        decode(503, ERROR_UNAVAILABLE).unwrap_err(),
        Failure::Unavailable("The model is overloaded. Please try again later.".to_owned())
    );
    let failure = decode(502, "<html>Bad Gateway</html>").unwrap_err();
    assert!(matches!(failure, Failure::Unavailable(_)), "{failure:?}");
}

#[test]
fn classifies_other_statuses() {
    let not_found = json!({"error": {"code": 404, "status": "NOT_FOUND",
        "message": "models/x is not found for API version v1beta, or is not supported for generateContent."}});
    assert!(matches!(
        decode(404, &not_found.to_string()).unwrap_err(),
        Failure::InvalidRequest(_)
    ));
    let region = json!({"error": {"code": 400, "status": "FAILED_PRECONDITION",
        "message": "User location is not supported for the API use."}});
    assert!(matches!(
        decode(400, &region.to_string()).unwrap_err(),
        Failure::Unauthorized(_)
    ));
    // Prepaid credit exhausted: no credit, not a rate limit although the status says
    // RESOURCE_EXHAUSTED, and not a rejected key.
    let credit = json!({"error": {"code": 402, "status": "RESOURCE_EXHAUSTED",
        "message": "Your prepaid credits are depleted."}});
    assert_eq!(
        decode(402, &credit.to_string()).unwrap_err(),
        Failure::NoCredit("Your prepaid credits are depleted.".to_owned())
    );
    let timeout = json!({"error": {"code": 504, "status": "DEADLINE_EXCEEDED",
        "message": "The request timed out. Please try again."}});
    assert!(matches!(
        decode(504, &timeout.to_string()).unwrap_err(),
        Failure::Unavailable(_)
    ));
}

// ---------------------------------------------------------------- stream

#[test]
fn streams_text_at_every_split() {
    let whole = decode_stream(TEXT_STREAM, TEXT_STREAM.len()).unwrap();
    for cut_every in [1, 2, 3, 5, 7, 64] {
        let chunks = decode_stream(TEXT_STREAM, cut_every).unwrap();
        assert_eq!(chunks, whole, "cut every {cut_every}");
    }
    assert_eq!(whole.len(), 4, "{whole:?}");
    let first = json_of(&whole[0]);
    assert_eq!(first["id"], "chatcmpl-r1");
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "gemini-2.5-flash");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": "It is"})
    );
    assert_eq!(first["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(streamed_text(&whole), "It is 18°C.");
    let finish = json_of(&whole[2]);
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(whole[..3].iter().all(|chunk| chunk.usage.is_none()));

    let usage_chunk = json_of(&whole[3]);
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["id"], "chatcmpl-r1");
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 15, "completion_tokens": 6, "total_tokens": 21})
    );
    assert_eq!(
        whole[3].usage,
        Some(Usage {
            prompt_tokens: 15,
            completion_tokens: 6,
            total_tokens: 21
        })
    );
}

#[test]
fn streams_text_with_crlf_framing() {
    let crlf = TEXT_STREAM.replace('\n', "\r\n");
    let lf = decode_stream(TEXT_STREAM, 1000).unwrap();
    for cut_every in [1, 2, 3, 11] {
        let chunks = decode_stream(&crlf, cut_every).unwrap();
        assert_eq!(
            streamed_text(&chunks),
            "It is 18°C.",
            "cut every {cut_every}"
        );
        assert_eq!(chunks.len(), lf.len());
        assert_eq!(chunks.last().unwrap().usage, lf.last().unwrap().usage);
    }
}

#[test]
fn streams_function_calls() {
    let chunks = decode_stream(FUNCTION_CALL_STREAM, 13).unwrap();
    assert_eq!(chunks.len(), 3, "{chunks:?}");
    let calls = json_of(&chunks[0]);
    let delta = &calls["choices"][0]["delta"];
    assert_eq!(delta["role"], "assistant");
    assert_eq!(
        delta["tool_calls"],
        json!([
            {"index": 0, "id": "call_0", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"index": 1, "id": "call_1", "type": "function",
             "function": {"name": "get_time", "arguments": "{\"tz\":\"Europe/Paris\"}"}}
        ])
    );
    let finish = json_of(&chunks[1]);
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        chunks[2].usage,
        Some(Usage {
            prompt_tokens: 52,
            completion_tokens: 17,
            total_tokens: 69
        })
    );
}

#[test]
fn a_json_answer_to_a_stream_request_gives_the_chunks_of_its_frames() {
    // Without `alt=sse` Gemini answers the array of the responses its frames would carry.
    let frames: Vec<Value> = TEXT_STREAM
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let array = Value::Array(frames).to_string();
    let from_sse = decode_stream(TEXT_STREAM, 11).unwrap();
    for cut in [1, 13, array.len()] {
        let decoder = Gemini::stream_decoder(target(), json_head());
        let from_json = decode_in_pieces(decoder, &array, cut).unwrap();
        assert_eq!(from_json.len(), from_sse.len(), "cut every {cut}");
        assert_eq!(streamed_text(&from_json), "It is 18°C.");
        assert_eq!(
            from_json.last().unwrap().usage,
            from_sse.last().unwrap().usage
        );
    }
    // One whole response object is read the same way.
    let decoder = Gemini::stream_decoder(target(), json_head());
    let chunks = decode_in_pieces(decoder, TEXT, 7).unwrap();
    assert_eq!(streamed_text(&chunks), "It is 18°C in Paris.");
    // A JSON error body under a 200 is the error it reports.
    let decoder = Gemini::stream_decoder(target(), json_head());
    assert!(matches!(
        decode_in_pieces(decoder, ERROR_UNAVAILABLE, 5),
        Err(Failure::Unavailable(_))
    ));
}

#[test]
fn stream_without_finish_reason_is_unavailable() {
    let failure = decode_stream(CUT_SHORT_STREAM, 9).unwrap_err();
    assert_eq!(
        failure,
        Failure::Unavailable("gemini stream ended before a finishReason".to_owned())
    );
    let failure = decode_stream("", 1).unwrap_err();
    assert!(matches!(failure, Failure::Unavailable(_)));
}

#[test]
fn stream_error_frame_is_a_failure() {
    let mut decoder = Gemini::stream_decoder(target(), sse_head());
    let mut chunks = Vec::new();
    let mut failure = None;
    for piece in MID_STREAM_ERROR.as_bytes().chunks(17) {
        match decoder.feed(piece) {
            Ok(more) => chunks.extend(more),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    assert_eq!(streamed_text(&chunks), "It is");
    assert_eq!(
        failure,
        Some(Failure::Unavailable(
            "The model is overloaded. Please try again later.".to_owned()
        ))
    );

    let rate_limited = format!("data: {}\n\n", ERROR_RATE_LIMITED.replace('\n', " "));
    assert!(matches!(
        decode_stream(&rate_limited, 5).unwrap_err(),
        Failure::RateLimited {
            retry_after_seconds: Some(48),
            ..
        }
    ));
}

#[test]
fn stream_blocked_prompt_and_safety_finish() {
    let blocked = "data: {\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},\"responseId\":\"b\"}\n\n";
    assert!(matches!(
        decode_stream(blocked, 4).unwrap_err(),
        Failure::ContentFiltered(_)
    ));

    let safety = "data: {\"candidates\":[{\"finishReason\":\"SAFETY\",\"index\":0}],\"responseId\":\"s\"}\n\n";
    let chunks = decode_stream(safety, 4).unwrap();
    assert_eq!(chunks.len(), 1);
    let finish = json_of(&chunks[0]);
    assert_eq!(finish["choices"][0]["delta"], json!({"role": "assistant"}));
    assert_eq!(finish["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn stream_skips_thoughts_and_comments_and_tolerates_garbage_safely() {
    let body = ": keep-alive\n\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hmm\",\"thought\":true}]},\"index\":0}]}\n\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]},\"finishReason\":\"MAX_TOKENS\",\"index\":0}]}\n\n";
    let chunks = decode_stream(body, 3).unwrap();
    assert_eq!(streamed_text(&chunks), "Hi");
    // A thought-only first frame still opens the message with the role.
    assert_eq!(
        json_of(&chunks[0])["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(
        json_of(chunks.last().unwrap())["choices"][0]["finish_reason"],
        "length"
    );
    // No usage metadata: no usage chunk.
    assert!(chunks.iter().all(|chunk| chunk.usage.is_none()));

    assert!(matches!(
        decode_stream("data: {oops\n\n", 2).unwrap_err(),
        Failure::BadResponse(_)
    ));
    assert!(matches!(
        decode_stream("data: 42\n\n", 2).unwrap_err(),
        Failure::BadResponse(_)
    ));
}

#[test]
fn stream_without_trailing_blank_line_keeps_the_last_frame() {
    let trimmed = TEXT_STREAM.trim_end();
    let chunks = decode_stream(trimmed, 7).unwrap();
    assert_eq!(streamed_text(&chunks), "It is 18°C.");
    assert!(chunks.last().unwrap().usage.is_some());
}

// ---------------------------------------------------------------- thought signatures

fn target_model(model: &str) -> Target {
    Target {
        model: model.to_owned(),
        ..target()
    }
}

fn history_with_call(extra: Option<Value>) -> Value {
    let mut call = json!({"id": "call_0", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}});
    if let Some(extra) = extra {
        call["extra_content"] = extra;
    }
    json!({"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [call,
            {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp_c\":18}"},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"time\":\"12:00\"}"}
    ]})
}

fn model_parts(model: &str, request: &Value) -> Vec<Value> {
    let request = Gemini::encode(&target_model(model), &request.to_string()).unwrap();
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    body["contents"][1]["parts"].as_array().unwrap().clone()
}

#[test]
fn thought_signatures_round_trip_through_extra_content() {
    let body = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJl"}
    ]}, "finishReason": "STOP", "index": 0}]});
    let (completion, _) = decode(200, &body.to_string()).unwrap();
    let call = &completion["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(
        call["extra_content"],
        json!({"google": {"thought_signature": "c2lnbmF0dXJl"}})
    );

    let stream = format!("data: {body}\n\n");
    let chunks = decode_stream(&stream, 10).unwrap();
    assert_eq!(
        json_of(&chunks[0])["choices"][0]["delta"]["tool_calls"][0]["extra_content"]["google"]["thought_signature"],
        "c2lnbmF0dXJl"
    );

    let request = history_with_call(Some(call["extra_content"].clone()));
    let parts = model_parts("gemini-3-pro-preview", &request);
    assert_eq!(parts[0]["thoughtSignature"], "c2lnbmF0dXJl");
    assert!(parts[1].get("thoughtSignature").is_none());
}

#[test]
fn missing_signatures_get_the_documented_placeholder_on_gemini_3_only() {
    let request = history_with_call(None);
    let parts = model_parts("gemini-3-flash-preview", &request);
    assert_eq!(
        parts[0]["thoughtSignature"],
        "skip_thought_signature_validator"
    );
    assert!(parts[1].get("thoughtSignature").is_none());

    for model in ["gemini-2.5-flash", "gemini-2.0-flash", "gemma-3-27b-it"] {
        let parts = model_parts(model, &request);
        assert!(
            parts
                .iter()
                .all(|part| part.get("thoughtSignature").is_none()),
            "{model}: {parts:?}"
        );
    }
}
