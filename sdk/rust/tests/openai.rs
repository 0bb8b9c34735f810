//! The OpenAI-compatible translator: encode, non-stream decode, and stream decoding of the
//! recorded bodies in `fixtures/` (`docs/wire-formats.md`, OpenAI baseline).

// Helpers outside `#[test]` functions are not covered by clippy's allow-unwrap-in-tests; in a test
// crate a panic is a test failure with a location, which is what we want.
#![allow(clippy::unwrap_used)]

use aigw_plugin_sdk::openai::{
    ChunkStream, Compatible, Dialect, decode_completion, join_url, parse_usage,
};
use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Descriptor, Failure, Header, HttpResponse, Provider, ResponseHead,
    Step, StreamDecoder, StreamEnd, Target, Usage,
};
use serde_json::{Value, json};

struct OpenAi;

impl Dialect for OpenAi {
    fn describe() -> Descriptor {
        Descriptor {
            name: "openai".to_owned(),
            version: "0.0.0".to_owned(),
            default_base_url: "https://api.openai.com/v1".to_owned(),
            origins: Vec::new(),
            credential: CredentialPlacement::bearer(),
            credential_required: true,
            models: Vec::new(),
        }
    }
}

type Plain = Compatible<OpenAi>;

const TOOL_CALL_STREAM: &str = include_str!("fixtures/openai_tool_call.sse");
const PARALLEL_TOOL_CALLS_STREAM: &str = include_str!("fixtures/openai_parallel_tool_calls.sse");

fn target() -> Target {
    Target {
        base_url: "https://api.example.test/v1/".to_owned(),
        model: "served-model".to_owned(),
    }
}

fn body_of(request_json: &str) -> Value {
    let request = Plain::encode(&target(), request_json).unwrap();
    serde_json::from_slice(&request.body).unwrap()
}

fn sse_head() -> ResponseHead {
    ResponseHead {
        status: 200,
        headers: vec![Header::new("content-type", "text/event-stream")],
    }
}

fn decode_with(head: &ResponseHead, body: &[u8], cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_as::<OpenAi>(head, body, cut_every)
}

fn decode_as<D: Dialect>(
    head: &ResponseHead,
    body: &[u8],
    cut_every: usize,
) -> Result<Vec<Chunk>, Failure> {
    let mut decoder = ChunkStream::<D>::new(head);
    let mut chunks = Vec::new();
    for piece in body.chunks(cut_every.max(1)) {
        chunks.extend(decoder.feed(piece)?);
    }
    match decoder.finish()? {
        StreamEnd::Done(last) => chunks.extend(last),
        StreamEnd::Follow(follow) => panic!("an OpenAI stream never follows: {follow:?}"),
    }
    Ok(chunks)
}

fn decode_all(body: &[u8], cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_with(&sse_head(), body, cut_every)
}

fn json_of(chunk: &Chunk) -> Value {
    serde_json::from_str(&chunk.json).unwrap()
}

/// Concatenates each tool call's argument fragments by `index`, as a client would.
fn tool_call_arguments(chunks: &[Chunk]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in chunks {
        let value = json_of(chunk);
        let Some(deltas) = value["choices"][0]["delta"]["tool_calls"].as_array() else {
            continue;
        };
        for delta in deltas {
            let index = delta["index"].as_u64().unwrap() as usize;
            if calls.len() <= index {
                calls.resize(index + 1, Default::default());
            }
            if let Some(id) = delta["id"].as_str() {
                calls[index].0 = id.to_owned();
            }
            if let Some(name) = delta["function"]["name"].as_str() {
                calls[index].1 = name.to_owned();
            }
            if let Some(arguments) = delta["function"]["arguments"].as_str() {
                calls[index].2.push_str(arguments);
            }
        }
    }
    calls
}

#[test]
fn encode_posts_to_chat_completions_with_the_targets_model() {
    let request = Plain::encode(
        &target(),
        r#"{"model":"client-alias","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://api.example.test/v1/chat/completions");
    assert_eq!(
        request
            .headers
            .iter()
            .map(|header| (header.name.as_str(), header.value.as_str()))
            .collect::<Vec<_>>(),
        vec![("content-type", "application/json")]
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "served-model", "messages": [{"role": "user", "content": "hi"}]})
    );
}

#[test]
fn encode_passes_tools_tool_messages_and_response_format_through_faithfully() {
    let request = json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "auto"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\":18}"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "strict": false}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": true,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": true}},
        "max_completion_tokens": 256, "temperature": 0.7, "top_p": 1, "stop": ["\n\n"], "seed": 42,
        "logprobs": true, "top_logprobs": 2, "logit_bias": {"50256": -100}, "user": "end-user-id"
    });
    let mut expected = request.clone();
    expected["model"] = json!("served-model");
    assert_eq!(body_of(&request.to_string()), expected);
}

#[test]
fn encode_asks_for_stream_usage_and_keeps_other_stream_options() {
    let body = body_of(r#"{"model":"a","messages":[],"stream":true}"#);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));

    let body = body_of(
        r#"{"model":"a","messages":[],"stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":false}}"#,
    );
    assert_eq!(
        body["stream_options"],
        json!({"include_usage": true, "continuous_usage_stats": false})
    );

    let request = Plain::encode(&target(), r#"{"model":"a","messages":[],"stream":true}"#).unwrap();
    assert!(
        request
            .headers
            .iter()
            .any(|header| header.name == "accept" && header.value == "text/event-stream")
    );

    // Not streamed: no stream_options invented.
    let body = body_of(r#"{"model":"a","messages":[],"stream":false}"#);
    assert_eq!(body.get("stream_options"), None);
}

#[test]
fn encode_rejects_bodies_that_are_not_json_objects() {
    assert!(matches!(
        Plain::encode(&target(), "not json"),
        Err(Failure::InvalidRequest(ref message)) if message.contains("not valid JSON")
    ));
    assert!(matches!(
        Plain::encode(&target(), "[1,2]"),
        Err(Failure::InvalidRequest(ref message)) if message.contains("JSON object")
    ));
}

#[test]
fn join_url_has_exactly_one_slash() {
    assert_eq!(
        join_url("http://h/v1", "chat/completions"),
        "http://h/v1/chat/completions"
    );
    assert_eq!(
        join_url("http://h/v1//", "/chat/completions"),
        "http://h/v1/chat/completions"
    );
}

const COMPLETION: &str = r#"{"id":"chatcmpl-abc","object":"chat.completion","created":1730000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":52,"completion_tokens":17,"total_tokens":69,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

#[test]
fn decode_passes_a_completion_through_verbatim_with_its_usage() {
    let step = Plain::decode(
        &target(),
        HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: COMPLETION.as_bytes().to_vec(),
        },
    )
    .unwrap();
    let Step::Done(completion) = step else {
        panic!("expected a completion");
    };
    assert_eq!(completion.json, COMPLETION);
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
fn decode_without_usage_has_none() {
    let completion = decode_completion(
        br#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#.to_vec(),
    )
    .unwrap();
    assert_eq!(completion.usage, None);
}

#[test]
fn decode_classifies_non_2xx() {
    let result = Plain::decode(
        &target(),
        HttpResponse {
            status: 401,
            headers: Vec::new(),
            body: br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#.to_vec(),
        },
    );
    assert_eq!(
        result,
        Err(Failure::Unauthorized(
            "Incorrect API key provided".to_owned()
        ))
    );
}

#[test]
fn decode_of_an_unparseable_2xx_is_a_bad_response() {
    for body in [
        &b"<html>oops</html>"[..],
        b"[]",
        br#"{"id":"x"}"#,
        b"\xff\xfe",
    ] {
        let result = Plain::decode(
            &target(),
            HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: body.to_vec(),
            },
        );
        assert!(
            matches!(result, Err(Failure::BadResponse(_))),
            "{result:?} for {body:?}"
        );
    }
}

#[test]
fn decode_of_an_error_body_on_200_is_a_failure() {
    let result = decode_completion(
        br#"{"error":{"code":502,"message":"Provider returned error"}}"#.to_vec(),
    );
    assert_eq!(
        result,
        Err(Failure::Unavailable("Provider returned error".to_owned()))
    );
}

#[test]
fn usage_parsing() {
    assert_eq!(parse_usage(&Value::Null), None);
    assert_eq!(parse_usage(&json!({})), None);
    assert_eq!(
        parse_usage(&json!({"prompt_tokens": 3, "completion_tokens": 4})),
        Some(Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
            total_tokens: 7
        })
    );
    assert_eq!(
        parse_usage(
            &json!({"prompt_tokens": 5_000_000_000u64, "completion_tokens": 1, "total_tokens": 2})
        ),
        Some(Usage {
            prompt_tokens: u32::MAX,
            completion_tokens: 1,
            total_tokens: 2
        })
    );
}

#[test]
fn stream_tool_call_arguments_arrive_intact_and_usage_is_marked() {
    for cut_every in [1, 2, 3, 7, 64, TOOL_CALL_STREAM.len()] {
        let chunks = decode_all(TOOL_CALL_STREAM.as_bytes(), cut_every).unwrap();
        assert_eq!(chunks.len(), 5, "cut every {cut_every}");
        // Chunks pass through verbatim.
        let frames: Vec<&str> = TOOL_CALL_STREAM
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .collect();
        assert_eq!(
            chunks
                .iter()
                .map(|chunk| chunk.json.as_str())
                .collect::<Vec<_>>(),
            frames
        );
        assert!(chunks[..4].iter().all(|chunk| chunk.usage.is_none()));
        assert_eq!(
            chunks[4].usage,
            Some(Usage {
                prompt_tokens: 52,
                completion_tokens: 17,
                total_tokens: 69
            })
        );
        assert_eq!(
            tool_call_arguments(&chunks),
            vec![(
                "call_1".to_owned(),
                "get_weather".to_owned(),
                r#"{"city":"Paris"}"#.to_owned()
            )]
        );
    }
}

#[test]
fn stream_parallel_tool_calls_keep_their_indexes() {
    let crlf = PARALLEL_TOOL_CALLS_STREAM.replace('\n', "\r\n");
    for body in [PARALLEL_TOOL_CALLS_STREAM.to_owned(), crlf] {
        for cut_every in [1, 5, 4096] {
            let chunks = decode_all(body.as_bytes(), cut_every).unwrap();
            assert_eq!(chunks.len(), 8);
            assert_eq!(
                tool_call_arguments(&chunks),
                vec![
                    (
                        "call_a".to_owned(),
                        "get_weather".to_owned(),
                        r#"{"city": "Paris"}"#.to_owned()
                    ),
                    (
                        "call_b".to_owned(),
                        "get_weather".to_owned(),
                        r#"{"city": "Tōkyō"}"#.to_owned()
                    ),
                ]
            );
            assert_eq!(
                chunks.last().and_then(|chunk| chunk.usage),
                Some(Usage {
                    prompt_tokens: 80,
                    completion_tokens: 40,
                    total_tokens: 120
                })
            );
        }
    }
}

#[test]
fn stream_without_done_but_with_finish_reason_is_complete() {
    let body = TOOL_CALL_STREAM.replace("data: [DONE]\n\n", "");
    let chunks = decode_all(body.as_bytes(), 10).unwrap();
    assert_eq!(chunks.len(), 5);
}

#[test]
fn stream_without_done_or_finish_reason_is_cut_short() {
    let cut: String = TOOL_CALL_STREAM.split_inclusive("\n\n").take(3).collect();
    let mut decoder = ChunkStream::<OpenAi>::new(&sse_head());
    assert_eq!(decoder.feed(cut.as_bytes()).unwrap().len(), 3);
    assert_eq!(
        decoder.finish(),
        Err(Failure::Unavailable(
            "stream ended before completion".to_owned()
        ))
    );
}

#[test]
fn stream_error_frame_is_a_failure() {
    let body = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\ndata: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\"}}\n\n";
    let mut decoder = ChunkStream::<OpenAi>::new(&sse_head());
    let (first, second) = body.split_at(body.find("data: {\"error").unwrap());
    assert_eq!(decoder.feed(first.as_bytes()).unwrap().len(), 1);
    assert_eq!(
        decoder.feed(second.as_bytes()),
        Err(Failure::Unavailable(
            "The server had an error while processing your request.".to_owned()
        ))
    );
}

#[test]
fn stream_openrouter_style_error_chunk_with_choices_is_a_failure() {
    let body = r#"data: {"id":"gen-1","object":"chat.completion.chunk","created":1,"model":"m","error":{"code":"server_error","message":"Provider disconnected"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}

"#;
    assert_eq!(
        decode_all(body.as_bytes(), 4096),
        Err(Failure::Unavailable("Provider disconnected".to_owned()))
    );
}

#[test]
fn stream_garbage_frame_is_a_bad_response_not_a_panic() {
    assert!(matches!(
        decode_all(b"data: {not json\n\n", 4096),
        Err(Failure::BadResponse(_))
    ));
    assert!(matches!(
        decode_all(b"data: 42\n\n", 4096),
        Err(Failure::BadResponse(_))
    ));
}

#[test]
fn stream_ignores_comments_empty_frames_and_anything_after_done() {
    let body = ": OPENROUTER PROCESSING\n\ndata: \n\ndata: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\ndata: {\"error\":{\"message\":\"late\"}}\n\n";
    let chunks = decode_all(body.as_bytes(), 3).unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(json_of(&chunks[0])["choices"][0]["delta"]["content"], "x");
}

#[test]
fn stream_usage_beside_choices_becomes_a_separate_usage_chunk_at_the_end() {
    // Some servers (Cerebras, vLLM's continuous usage stats) put usage on content chunks; marking
    // such a chunk as the usage chunk would make the host drop its content.
    let body = "data: {\"id\":\"c\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}\n\ndata: {\"id\":\"c\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n";
    let chunks = decode_all(body.as_bytes(), 4096).unwrap();
    assert_eq!(chunks.len(), 3);
    assert!(chunks[..2].iter().all(|chunk| chunk.usage.is_none()));
    // Only the final chunk carries usage, as in OpenAI's form; the content survives.
    assert!(
        chunks[..2]
            .iter()
            .all(|chunk| json_of(chunk)["usage"].is_null())
    );
    assert_eq!(json_of(&chunks[0])["choices"][0]["delta"]["content"], "a");
    assert_eq!(json_of(&chunks[1])["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        chunks[2].usage,
        Some(Usage {
            prompt_tokens: 4,
            completion_tokens: 2,
            total_tokens: 6
        })
    );
    assert_eq!(
        json_of(&chunks[2]),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 5, "model": "m",
               "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}})
    );
}

fn json_head(content_type: &str) -> ResponseHead {
    ResponseHead {
        status: 200,
        headers: vec![Header::new("Content-Type", content_type)],
    }
}

#[test]
fn a_json_answer_to_a_stream_request_is_replayed_as_chunks_at_every_split() {
    // A server that ignored `stream: true`: a whole completion with a tool call and usage.
    let body = json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 7, "model": "m",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
            "message": {"role": "assistant", "content": "Checking.",
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    })
    .to_string();
    for content_type in ["application/json", "application/json; charset=utf-8"] {
        for cut in [1, 9, body.len()] {
            let chunks = decode_with(&json_head(content_type), body.as_bytes(), cut).unwrap();
            assert_eq!(chunks.len(), 2, "{content_type}, cut every {cut}");
            let first = json_of(&chunks[0]);
            assert_eq!(first["object"], json!("chat.completion.chunk"));
            assert_eq!(first["id"], json!("chatcmpl-9"));
            assert_eq!(first["system_fingerprint"], json!("fp_1"));
            let choice = &first["choices"][0];
            assert_eq!(choice["finish_reason"], json!("tool_calls"));
            assert_eq!(choice["delta"]["content"], json!("Checking."));
            assert_eq!(choice["delta"]["role"], json!("assistant"));
            assert_eq!(choice["delta"]["tool_calls"][0]["index"], json!(0));
            assert_eq!(
                choice["delta"]["tool_calls"][0]["function"]["name"],
                json!("get_weather")
            );
            assert_eq!(chunks[0].usage, None);
            let usage = json_of(&chunks[1]);
            assert_eq!(usage["choices"], json!([]));
            assert_eq!(usage["usage"]["total_tokens"], json!(8));
            assert_eq!(
                chunks[1].usage,
                Some(Usage {
                    prompt_tokens: 5,
                    completion_tokens: 3,
                    total_tokens: 8
                })
            );
        }
    }
    // Without usage and finish reason: one chunk, finished as `stop`.
    let bare = r#"{"id":"c","choices":[{"message":{"role":"assistant","content":"hi"}}]}"#;
    let chunks = decode_with(&json_head("application/json"), bare.as_bytes(), 3).unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        json_of(&chunks[0])["choices"][0]["finish_reason"],
        json!("stop")
    );
    assert_eq!(json_of(&chunks[0])["choices"][0]["index"], json!(0));
}

#[test]
fn a_json_error_or_garbage_answer_to_a_stream_request_is_a_failure() {
    let error = r#"{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}"#;
    assert!(matches!(
        decode_with(&json_head("application/json"), error.as_bytes(), 5),
        Err(Failure::RateLimited { .. })
    ));
    assert!(matches!(
        decode_with(&json_head("application/json"), b"{\"choi", 2),
        Err(Failure::BadResponse(_))
    ));
    // The same bytes under an event-stream head (or no content type) are read as SSE.
    let sse = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    let unlabelled = ResponseHead {
        status: 200,
        headers: Vec::new(),
    };
    assert_eq!(
        decode_with(&unlabelled, sse.as_bytes(), 7).unwrap().len(),
        1
    );
    assert!(!unlabelled.is_json());
    assert!(json_head("application/problem+json").is_json());
    assert!(!json_head("text/event-stream").is_json());
}

/// A dialect whose usage rides on content frames under its own key: it asks to see them.
struct Metered;

impl Dialect for Metered {
    fn describe() -> Descriptor {
        OpenAi::describe()
    }

    fn stream_usage(chunk: &serde_json::Map<String, Value>) -> Option<&Value> {
        chunk.get("x_meter")
    }

    fn hooks_see_content_frame(data: &str) -> bool {
        data.contains("\"x_meter\"")
    }
}

#[test]
fn plain_content_frames_pass_through_byte_for_byte_and_the_rest_still_see_the_hooks() {
    // Odd spacing and key order survive: a plain frame is not rebuilt.
    let frame = r#"{ "choices" : [ {"delta":{"content":"a"}, "finish_reason" : null, "index":0} ], "id":"c", "usage": null }"#;
    let body = format!(
        "data: {frame}\n\ndata: {{\"choices\":[{{\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: [DONE]\n\n"
    );
    let chunks = decode_all(body.as_bytes(), 5).unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].json, frame);
    assert_eq!(chunks[0].usage, None);

    // A frame that starts like a plain one but is cut is still a bad response.
    assert!(matches!(
        decode_all(b"data: {\"choices\":[{\"delta\":{}}]\n\n", 4096),
        Err(Failure::BadResponse(_))
    ));

    // A dialect that asks to see content frames gets its usage from them.
    let metered = "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"x_meter\":{\"prompt_tokens\":2,\"completion_tokens\":1,\"total_tokens\":3}}\n\ndata: [DONE]\n\n";
    let mut decoder = ChunkStream::<Metered>::new(&sse_head());
    let mut chunks = decoder.feed(metered.as_bytes()).unwrap();
    match decoder.finish().unwrap() {
        StreamEnd::Done(rest) => chunks.extend(rest),
        other => panic!("not done: {other:?}"),
    }
    assert_eq!(
        chunks.last().and_then(|c| c.usage),
        Some(Usage {
            prompt_tokens: 2,
            completion_tokens: 1,
            total_tokens: 3
        })
    );
}

/// OpenAI's dialect, saying it has no frame hooks: its finish and usage frames are read by their
/// parts, not parsed into a tree.
struct Hookless;

impl Dialect for Hookless {
    fn describe() -> Descriptor {
        OpenAi::describe()
    }

    const FRAME_HOOKS: bool = false;
    const REQUEST_HOOK: bool = false;
}

#[test]
fn a_request_edited_as_text_encodes_as_the_parsed_one_does() {
    let requests = [
        r#"{"model":"a","messages":[{"role":"user","content":"hi \"there\" \u00e9"}]}"#,
        r#"  { "messages" : [], "model" : null , "temperature": 0.5 }  "#,
        // No model, an empty object, and a stream in every shape of its options.
        r#"{"messages":[]}"#,
        "{}",
        "{ }",
        r#"{"stream":true}"#,
        r#"{"model":"a","stream":true,"messages":[]}"#,
        r#"{"model":"a","stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":false}}"#,
        r#"{"model":"a","stream":true,"stream_options":{"continuous_usage_stats":true}}"#,
        r#"{"model":"a","stream":true,"stream_options":{ }}"#,
        r#"{"model":"a","stream":true,"stream_options":null}"#,
        r#"{"model":"a","stream":true,"stream_options":[1]}"#,
        r#"{"model":"a","stream":false,"stream_options":{"include_usage":false}}"#,
        r#"{"model":"a","stream":"true"}"#,
        // What the text edit cannot take goes the full way, whose error it gives: not JSON, not
        // an object, a field twice.
        "not json",
        "[1,2]",
        r#"[{"model":"a"}]"#,
        r#"{"model":"a","model":"b"}"#,
        r#"{"model":"a","stream":true,"stream_options":{"include_usage":false,"include_usage":false}}"#,
        r#"{"model":"a""#,
    ];
    for request in requests {
        let parsed = Plain::encode(&target(), request);
        let edited = Compatible::<Hookless>::encode(&target(), request);
        match (&parsed, &edited) {
            (Ok(parsed), Ok(edited)) => {
                assert_eq!(parsed.method, edited.method, "{request}");
                assert_eq!(parsed.url, edited.url, "{request}");
                assert_eq!(parsed.headers, edited.headers, "{request}");
                let body = |r: &aigw_plugin_sdk::HttpRequest| -> Value {
                    serde_json::from_slice(&r.body).unwrap()
                };
                assert_eq!(body(parsed), body(edited), "{request}");
            }
            _ => assert_eq!(parsed, edited, "{request}"),
        }
    }
    // The rest of the text goes on as it came: spacing, key order, numbers as written.
    let edited = Compatible::<Hookless>::encode(
        &target(),
        r#"{"messages": [], "model": "a", "n": 1.50, "stream": true}"#,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(edited.body).unwrap(),
        r#"{"stream_options":{"include_usage":true},"messages": [], "model": "served-model", "n": 1.50, "stream": true}"#
    );
}

#[test]
fn frames_read_by_their_parts_decode_as_the_parsed_ones_do() {
    let finish = |rest: &str| {
        format!(
            "data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"a\"}},\"finish_reason\":null}}]}}\n\ndata: {rest}\n\ndata: [DONE]\n\n"
        )
    };
    let streams = [
        TOOL_CALL_STREAM.to_owned(),
        PARALLEL_TOOL_CALLS_STREAM.to_owned(),
        // The finish frame with usage beside it, spaced oddly, with every field the usage chunk
        // copies (a null among them), and an escaped id.
        finish(
            r#"{ "id" : "c\"1", "object":"chat.completion.chunk", "created": 5, "model":"m", "system_fingerprint": null, "choices":[{"index":0,"delta":{},"finish_reason":"stop"}], "usage" : {"prompt_tokens":4, "completion_tokens":2,"total_tokens":6,"prompt_tokens_details":{"cached_tokens":1}} }"#,
        ),
        // Usage on a content frame, then OpenAI's own usage chunk: that one wins, verbatim.
        finish(
            r#"{"id":"c","choices":[{"delta":{"content":"b"},"finish_reason":null}],"usage":{"prompt_tokens":1,"completion_tokens":1}}

data: {"id":"c","choices":[{"delta":{},"finish_reason":"stop"}],"usage":null}

data: {"id":"c","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#,
        ),
        // Usage without counts, choices null, usage not an object.
        finish(r#"{"choices":[{"finish_reason":"length"}],"usage":{}}"#),
        finish(r#"{"choices":null,"usage":{"total_tokens":3}}"#),
        finish(r#"{"choices":[{"finish_reason":"stop"}],"usage":"lots"}"#),
        // What the parts cannot read goes the full way: an error, a field twice, choices that
        // are not a list of objects, not JSON, not an object.
        finish(r#"{"error":{"message":"overloaded","type":"server_error"},"choices":[]}"#),
        finish(
            r#"{"choices":[{"finish_reason":"stop"}],"usage":{"total_tokens":1},"usage":{"total_tokens":2}}"#,
        ),
        finish(r#"{"choices":{"0":{}},"usage":{"total_tokens":1}}"#),
        finish(r#"{"choices":[1],"usage":{"total_tokens":1}}"#),
        finish(r#"{"choices":[{"finish_reason":"stop"}],"usage":{"total_tokens":1}"#),
        finish("[1,2]"),
        finish(r#"[[{"delta":{}}],{"total_tokens":1}]"#),
        // A stream that never finishes.
        "data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"total_tokens\":1}}\n\n".to_owned(),
    ];
    for stream in &streams {
        for cut in [1, 7, 4096] {
            let parsed = decode_as::<OpenAi>(&sse_head(), stream.as_bytes(), cut);
            let parted = decode_as::<Hookless>(&sse_head(), stream.as_bytes(), cut);
            match (&parsed, &parted) {
                (Ok(parsed), Ok(parted)) => {
                    assert_eq!(parsed.len(), parted.len(), "{stream}");
                    for (a, b) in parsed.iter().zip(parted) {
                        assert_eq!(a.usage, b.usage, "{stream}");
                        assert_eq!(json_of(a), json_of(b), "{stream}");
                        // The usage chunk the decoder writes is the same text either way, up
                        // to its `usage`, which the parts pass on as the upstream wrote it.
                        if a.usage.is_some() {
                            let head =
                                |json: &str| json.split_once(r#""usage":"#).unwrap().0.to_owned();
                            assert_eq!(head(&a.json), head(&b.json), "{stream}");
                        }
                    }
                }
                _ => assert_eq!(parsed, parted, "{stream}"),
            }
        }
    }
}

#[test]
fn a_finish_frame_read_by_its_parts_keeps_its_text_but_the_usage() {
    let frame = r#"{"id":"c", "choices":[{"delta":{},"finish_reason":"stop"}], "usage": {"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}, "x":1}"#;
    let body = format!("data: {frame}\n\ndata: [DONE]\n\n");
    let chunks = decode_as::<Hookless>(&sse_head(), body.as_bytes(), 4096).unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[0].json,
        r#"{"id":"c", "choices":[{"delta":{},"finish_reason":"stop"}], "usage": null, "x":1}"#
    );
    assert_eq!(chunks[0].usage, None);
    assert_eq!(
        chunks[1].json,
        r#"{"choices":[],"id":"c","object":"chat.completion.chunk","usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#
    );
    assert_eq!(
        chunks[1].usage,
        Some(Usage {
            prompt_tokens: 4,
            completion_tokens: 2,
            total_tokens: 6
        })
    );
}
