use aigw_plugin_sdk::testing::{
    decode_in_pieces, feed_in_pieces, head, json_head, response, sse_head,
};
use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Failure, Follow, Header, HttpRequest, HttpResponse, Provider,
    ResponseHead, Step, StreamDecoder, StreamEnd, Target, Usage,
};
use serde_json::{Value, json};

use super::{ModelRoute, Replicate, model_route, parse_rfc3339, parse_rfc3339_ms};

const SUCCEEDED: &str = include_str!("../tests/fixtures/prediction_succeeded.json");
const STARTING: &str = include_str!("../tests/fixtures/prediction_starting.json");
const FAILED_CONTEXT: &str = include_str!("../tests/fixtures/prediction_failed_context.json");
const STREAM_TEXT: &str = include_str!("../tests/fixtures/stream_text.sse");
const STREAM_ERROR: &str = include_str!("../tests/fixtures/stream_error.sse");
const STREAM_CANCELED: &str = include_str!("../tests/fixtures/stream_canceled.sse");

const GET_URL: &str = "https://api.replicate.com/v1/predictions/ufawqhfynnddngldkgtslldrkq";

fn target() -> Target {
    Target {
        base_url: "https://api.replicate.com/v1".to_owned(),
        model: "meta/meta-llama-3-8b-instruct".to_owned(),
    }
}

fn encode_request(request: Value) -> Result<HttpRequest, Failure> {
    Replicate::encode(&target(), &request.to_string())
}

fn encode(request: Value) -> Result<Value, Failure> {
    let request = encode_request(request)?;
    Ok(serde_json::from_slice(&request.body).unwrap())
}

fn user(text: &str) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": text}]})
}

fn decode(response: HttpResponse) -> Result<Step, Failure> {
    Replicate::decode(&target(), response)
}

fn completion(body: &str) -> (Value, Option<Usage>) {
    match decode(response(201, &[], body)).unwrap() {
        Step::Done(completion) => (
            serde_json::from_str(&completion.json).unwrap(),
            completion.usage,
        ),
        Step::Follow(follow) => panic!(
            "expected a completion, got a follow to {}",
            follow.request.url
        ),
    }
}

fn with_status(status: &str) -> String {
    let mut prediction: Value = serde_json::from_str(SUCCEEDED).unwrap();
    prediction["status"] = json!(status);
    prediction.to_string()
}

/// A stream decoder for a response whose head says nothing about its body (it sniffs).
fn unlabelled() -> ResponseHead {
    head(200, &[])
}

fn decode_with(head: ResponseHead, body: &str, cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_in_pieces(Replicate::stream_decoder(target(), head), body, cut_every)
}

/// The SSE of `urls.stream`.
fn decode_sse(body: &str, cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_with(sse_head(), body, cut_every)
}

/// A prediction body (`application/json`) as the first response of a stream.
fn decode_json(body: &str, cut_every: usize) -> Result<Vec<Chunk>, Failure> {
    decode_with(
        head(201, &[("content-type", "application/json")]),
        body,
        cut_every,
    )
}

/// The current time in RFC 3339 (`2026-12-01T09:00:00.000Z`).
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rest) = (i64::try_from(secs / 86_400).unwrap(), secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    assert_eq!(parse_rfc3339(&text), Some(secs), "{text}");
    text
}

fn stream_follow() -> Follow {
    Follow {
        request: HttpRequest {
            method: "GET".to_owned(),
            url: "https://stream.replicate.com/v1/files/bcwr-3okdfv3o2wehstv5f2okyftwxy57hhypqsi6osiim5iaq5k7u24a".to_owned(),
            headers: vec![
                Header::new("accept", "text/event-stream"),
                Header::new("cache-control", "no-store"),
            ],
            body: Vec::new(),
        },
        after_ms: 0,
    }
}

fn poll_follow(after_ms: u32) -> Follow {
    Follow {
        request: HttpRequest {
            method: "GET".to_owned(),
            url: GET_URL.to_owned(),
            headers: vec![Header::new("accept", "application/json")],
            body: Vec::new(),
        },
        after_ms,
    }
}

fn parsed(chunks: &[Chunk]) -> Vec<Value> {
    chunks
        .iter()
        .map(|chunk| serde_json::from_str(&chunk.json).unwrap())
        .collect()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect()
}

// ---------------------------------------------------------------------------------- describe

#[test]
fn describes_replicate() {
    let descriptor = Replicate::describe();
    assert_eq!(descriptor.name, "replicate");
    assert_eq!(descriptor.version, "0.1.0");
    assert_eq!(descriptor.default_base_url, "https://api.replicate.com/v1");
    assert_eq!(
        descriptor.credential,
        CredentialPlacement::Header {
            name: "authorization".to_owned(),
            prefix: "Bearer ".to_owned()
        }
    );
    assert!(descriptor.credential_required);
    assert_eq!(descriptor.origins, ["https://stream.replicate.com"]);
    for model in [
        "meta/meta-llama-3-8b-instruct",
        "meta/meta-llama-3-70b-instruct",
    ] {
        assert!(descriptor.models.iter().any(|known| known == model));
    }
}

// ------------------------------------------------------------------------------------ encode

#[test]
fn encode_posts_to_the_models_predictions_with_prefer_wait() {
    let request = encode_request(user("Tell me a story")).unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "https://api.replicate.com/v1/models/meta/meta-llama-3-8b-instruct/predictions"
    );
    assert!(request.headers.contains(&Header::new("prefer", "wait")));
    assert!(
        request
            .headers
            .contains(&Header::new("content-type", "application/json"))
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body, json!({"input": {"prompt": "Tell me a story"}}));
}

#[test]
fn a_streamed_request_creates_the_prediction_without_sync_mode() {
    let mut request = user("Tell me a story");
    request["stream"] = json!(true);
    let request = encode_request(request).unwrap();
    assert_eq!(request.method, "POST");
    assert!(
        request
            .headers
            .iter()
            .all(|header| !header.name.eq_ignore_ascii_case("prefer")),
        "{:?}",
        request.headers
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["stream"], json!(true));
}

#[test]
fn a_trailing_slash_on_the_base_url_is_tolerated() {
    let target = Target {
        base_url: "http://127.0.0.1:9000/v1/".to_owned(),
        model: "meta/meta-llama-3-70b-instruct".to_owned(),
    };
    let request = Replicate::encode(&target, &user("hi").to_string()).unwrap();
    assert_eq!(
        request.url,
        "http://127.0.0.1:9000/v1/models/meta/meta-llama-3-70b-instruct/predictions"
    );
}

#[test]
fn a_versioned_model_posts_to_predictions_with_the_version() {
    let version = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";
    for model in [
        format!("meta/meta-llama-3-8b-instruct:{version}"),
        version.to_owned(),
    ] {
        let target = Target {
            base_url: "https://api.replicate.com/v1".to_owned(),
            model,
        };
        let request = Replicate::encode(&target, &user("hi").to_string()).unwrap();
        assert_eq!(request.url, "https://api.replicate.com/v1/predictions");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, json!({"version": version, "input": {"prompt": "hi"}}));
    }
}

#[test]
fn malformed_model_names_are_rejected_not_put_in_the_url() {
    for model in [
        "llama", "a/b/c", "a/../b", "../x", "a/b?x=1", "a/b#c", "a/ b", "a/b:",
    ] {
        assert!(
            matches!(model_route(model), Err(Failure::InvalidRequest(_))),
            "{model}"
        );
    }
    assert_eq!(
        model_route("mistralai/mixtral-8x7b-instruct-v0.1"),
        Ok(ModelRoute::Official(
            "models/mistralai/mixtral-8x7b-instruct-v0.1".to_owned()
        ))
    );
}

#[test]
fn the_conversation_becomes_prompt_and_system_prompt_with_the_last_user_turn_last() {
    let body = encode(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "Hi, I am Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is "},
                                         {"type": "text", "text": "my name?"}]}
        ]
    }))
    .unwrap();
    assert_eq!(
        body["input"]["prompt"],
        json!("User: Hi, I am Ada.\n\nAssistant: Hello Ada.\n\nUser: What is my name?")
    );
    assert!(
        body["input"]["prompt"]
            .as_str()
            .unwrap()
            .ends_with("User: What is my name?")
    );
    assert_eq!(
        body["input"]["system_prompt"],
        json!("You are terse.\n\nAnswer in English.")
    );
}

#[test]
fn sampling_parameters_map_to_replicate_inputs() {
    let body = encode(json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 256, "temperature": 0.7, "top_p": 0.9,
        "presence_penalty": 0.5, "frequency_penalty": 0.25, "seed": 42,
        "stop": ["\n\n", "User:"], "stream": true,
        "stream_options": {"include_usage": true}, "user": "end-user-id"
    }))
    .unwrap();
    assert_eq!(
        body,
        json!({
            "input": {
                "prompt": "hi", "max_tokens": 256, "max_new_tokens": 256,
                "temperature": 0.7, "top_p": 0.9, "presence_penalty": 0.5,
                "frequency_penalty": 0.25, "seed": 42, "stop_sequences": "\n\n,User:"
            },
            "stream": true
        })
    );
}

#[test]
fn max_completion_tokens_wins_and_a_single_stop_string_passes_through() {
    let body = encode(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 64, "max_tokens": 999, "stop": "END", "stream": false
    }))
    .unwrap();
    assert_eq!(body["input"]["max_tokens"], json!(64));
    assert_eq!(body["input"]["max_new_tokens"], json!(64));
    assert_eq!(body["input"]["stop_sequences"], json!("END"));
    assert_eq!(body.get("stream"), None);
}

#[test]
fn tools_tool_choice_and_tool_messages_are_rejected() {
    let tool = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]);
    let mut with_tools = user("Weather in Paris?");
    with_tools["tools"] = tool;
    let Err(Failure::InvalidRequest(message)) = encode(with_tools) else {
        panic!("tools must be rejected");
    };
    assert!(message.contains("`tools`") && message.contains("function calling"));

    let mut with_choice = user("hi");
    with_choice["tool_choice"] = json!("required");
    assert!(matches!(
        encode(with_choice),
        Err(Failure::InvalidRequest(message)) if message.contains("`tool_choice`")
    ));

    let history = json!({"model": "m", "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\":18}"}
    ]});
    assert!(matches!(encode(history), Err(Failure::InvalidRequest(_))));

    // Harmless forms pass.
    let mut harmless = user("hi");
    harmless["tools"] = json!([]);
    harmless["tool_choice"] = json!("none");
    harmless["n"] = json!(1);
    assert!(encode(harmless).is_ok());
}

#[test]
fn n_above_one_and_other_unsupported_fields_are_rejected() {
    let mut two = user("hi");
    two["n"] = json!(2);
    assert_eq!(
        encode(two),
        Err(Failure::InvalidRequest(
            "replicate does not support `n` other than 1 (got 2)".to_owned()
        ))
    );
    let mut logprobs = user("hi");
    logprobs["logprobs"] = json!(true);
    assert!(matches!(encode(logprobs), Err(Failure::InvalidRequest(_))));
    let mut json_mode = user("hi");
    json_mode["response_format"] = json!({"type": "json_object"});
    assert!(matches!(encode(json_mode), Err(Failure::InvalidRequest(_))));
    let mut image = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]});
    assert!(
        matches!(encode(image.clone()), Err(Failure::InvalidRequest(m)) if m.contains("image_url"))
    );
    image["messages"] = json!([{"role": "system", "content": "only a system prompt"}]);
    assert!(matches!(encode(image), Err(Failure::InvalidRequest(_))));
    assert!(matches!(
        Replicate::encode(&target(), "not json"),
        Err(Failure::InvalidRequest(_))
    ));
    assert!(matches!(
        encode(json!({"model": "m"})),
        Err(Failure::InvalidRequest(m)) if m.contains("messages")
    ));
}

// ------------------------------------------------------------------------------------ decode

#[test]
fn a_succeeded_prediction_becomes_a_chat_completion_with_usage_from_metrics() {
    let (json, usage) = completion(SUCCEEDED);
    assert_eq!(json["object"], json!("chat.completion"));
    assert_eq!(json["id"], json!("chatcmpl-ufawqhfynnddngldkgtslldrkq"));
    assert_eq!(json["created"], json!(1_735_689_600));
    assert_eq!(json["model"], json!("meta/meta-llama-3-8b-instruct"));
    assert_eq!(
        json["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Once upon a time"},
                "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(
        json["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 60, "total_tokens": 68})
    );
    assert_eq!(
        usage,
        Some(Usage {
            prompt_tokens: 8,
            completion_tokens: 60,
            total_tokens: 68
        })
    );
    // A 200 (polled `GET urls.get`) decodes the same way.
    assert!(matches!(
        decode(response(200, &[], SUCCEEDED)),
        Ok(Step::Done(_))
    ));
}

#[test]
fn string_output_is_used_as_is_and_missing_metrics_mean_no_usage() {
    let mut prediction: Value = serde_json::from_str(SUCCEEDED).unwrap();
    prediction["output"] = json!("A whole answer.");
    prediction.as_object_mut().unwrap().remove("metrics");
    let (json, usage) = completion(&prediction.to_string());
    assert_eq!(
        json["choices"][0]["message"]["content"],
        json!("A whole answer.")
    );
    assert_eq!(json.get("usage"), None);
    assert_eq!(usage, None);

    prediction["output"] = json!(null);
    let (json, _) = completion(&prediction.to_string());
    assert_eq!(json["choices"][0]["message"]["content"], json!(""));
}

#[test]
fn starting_and_processing_follow_the_exact_get_url_after_the_poll_interval() {
    for status in ["starting", "processing"] {
        let mut prediction: Value = serde_json::from_str(STARTING).unwrap();
        prediction["status"] = json!(status);
        let step = decode(response(201, &[], &prediction.to_string())).unwrap();
        // Created in 2025, so long-running: the longest interval.
        assert_eq!(step, Step::Follow(poll_follow(2_000)), "{status}");
    }
}

#[test]
fn a_prediction_that_just_missed_the_sync_window_is_polled_every_half_second() {
    let mut prediction: Value = serde_json::from_str(STARTING).unwrap();
    prediction["created_at"] = json!(rfc3339_now());
    let Ok(Step::Follow(follow)) = decode(response(201, &[], &prediction.to_string())) else {
        panic!("expected a follow");
    };
    assert_eq!(follow.request.url, GET_URL);
    assert_eq!(follow.after_ms, 500);
    // No creation time: the short interval too.
    prediction.as_object_mut().unwrap().remove("created_at");
    let Ok(Step::Follow(follow)) = decode(response(201, &[], &prediction.to_string())) else {
        panic!("expected a follow");
    };
    assert_eq!(follow.after_ms, 500);
}

#[test]
fn a_pending_prediction_without_urls_is_polled_by_id_on_the_base_url() {
    let mut prediction: Value = serde_json::from_str(STARTING).unwrap();
    prediction.as_object_mut().unwrap().remove("urls");
    let Ok(Step::Follow(follow)) = decode(response(201, &[], &prediction.to_string())) else {
        panic!("expected a follow");
    };
    assert_eq!(follow.request.url, GET_URL);
    prediction.as_object_mut().unwrap().remove("id");
    assert!(matches!(
        decode(response(201, &[], &prediction.to_string())),
        Err(Failure::BadResponse(_))
    ));
}

#[test]
fn failed_predictions_are_context_length_or_unavailable() {
    let Err(Failure::ContextLengthExceeded(message)) = decode(response(201, &[], FAILED_CONTEXT))
    else {
        panic!("expected context-length-exceeded");
    };
    assert!(message.contains("q3k5xw7c4drj00cjz2vb3zg4r0"));
    assert!(message.contains("maximum context length is 8192 tokens"));

    let mut prediction: Value = serde_json::from_str(FAILED_CONTEXT).unwrap();
    // TGI's wording alone, without a "context length" sentence.
    prediction["error"] = json!("Prompt length (9000) exceeds maximum input length (8192)");
    assert!(matches!(
        decode(response(201, &[], &prediction.to_string())),
        Err(Failure::ContextLengthExceeded(_))
    ));
    prediction["error"] = json!("CUDA out of memory");
    assert_eq!(
        decode(response(201, &[], &prediction.to_string())),
        Err(Failure::Unavailable(
            "replicate prediction q3k5xw7c4drj00cjz2vb3zg4r0 failed: CUDA out of memory".to_owned()
        ))
    );
    prediction["error"] = json!(null);
    assert_eq!(
        decode(response(201, &[], &prediction.to_string())),
        Err(Failure::Unavailable(
            "replicate prediction q3k5xw7c4drj00cjz2vb3zg4r0 failed".to_owned()
        ))
    );
}

#[test]
fn a_prediction_flagged_as_sensitive_is_content_filtered() {
    let mut prediction: Value = serde_json::from_str(FAILED_CONTEXT).unwrap();
    prediction["error"] = json!(
        "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
    );
    assert_eq!(
        decode(response(201, &[], &prediction.to_string())),
        Err(Failure::ContentFiltered(
            "replicate prediction q3k5xw7c4drj00cjz2vb3zg4r0 failed: The input or output was \
             flagged as sensitive. Please try again with different inputs. (E005)"
                .to_owned()
        ))
    );
    // The streamed path replays the same prediction and fails the same way.
    assert!(matches!(
        decode_json(&prediction.to_string(), 7),
        Err(Failure::ContentFiltered(_))
    ));
}

#[test]
fn canceled_and_aborted_predictions_are_unavailable() {
    for status in ["canceled", "aborted"] {
        let Err(Failure::Unavailable(message)) = decode(response(200, &[], &with_status(status)))
        else {
            panic!("{status} must be unavailable");
        };
        assert!(message.contains(status), "{message}");
    }
}

#[test]
fn bad_prediction_bodies_are_bad_responses_not_panics() {
    for body in [
        "",
        "not json",
        "[1,2]",
        "{}",
        r#"{"status":"exploded","id":"x"}"#,
        r#"{"status":"succeeded","output":{"weird":[1,{"a":null}]},"metrics":{"input_token_count":-3}}"#,
        r#"{"status":"processing","urls":{"get":42},"id":"../../etc"}"#,
    ] {
        let result = decode(response(201, &[], body));
        assert!(
            matches!(result, Err(Failure::BadResponse(_)) | Ok(Step::Done(_))),
            "{body}: {result:?}"
        );
    }
}

#[test]
fn error_bodies_are_classified_by_status() {
    type Case<'a> = (u16, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        (
            401,
            &[],
            r#"{"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401}"#,
        ),
        (
            402,
            &[],
            r#"{"title":"Insufficient credit","detail":"You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing to purchase credit.","status":402}"#,
        ),
        (
            404,
            &[],
            r#"{"title":"Not found","detail":"The requested resource could not be found.","status":404}"#,
        ),
        (
            422,
            &[],
            r#"{"title":"Input validation failed","detail":"- input: prompt is required","status":422}"#,
        ),
        (
            429,
            &[],
            r#"{"detail":"Request was throttled. Your rate limit resets in ~30s.","status":429}"#,
        ),
        (
            429,
            &[("retry-after", "7")],
            r#"{"detail":"Request was throttled.","status":429}"#,
        ),
        (
            500,
            &[],
            r#"{"title":"Internal server error","detail":"Something went wrong","status":500}"#,
        ),
    ];
    let results: Vec<Failure> = cases
        .iter()
        .map(|(status, headers, body)| decode(response(*status, headers, body)).unwrap_err())
        .collect();
    assert_eq!(
        results,
        vec![
            Failure::Unauthorized("You did not pass a valid authentication token".to_owned()),
            Failure::NoCredit(
                "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing to purchase credit."
                    .to_owned()
            ),
            Failure::InvalidRequest("The requested resource could not be found.".to_owned()),
            Failure::InvalidRequest("- input: prompt is required".to_owned()),
            Failure::RateLimited {
                retry_after_seconds: Some(30),
                message: "Request was throttled. Your rate limit resets in ~30s.".to_owned()
            },
            Failure::RateLimited {
                retry_after_seconds: Some(7),
                message: "Request was throttled.".to_owned()
            },
            Failure::Unavailable("Something went wrong".to_owned()),
        ]
    );
    assert!(matches!(
        decode(response(503, &[], "<html>bad gateway</html>")),
        Err(Failure::Unavailable(_))
    ));
}

#[test]
fn rfc3339_times_parse_with_fractions_and_offsets() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    // Milliseconds, for the poll interval: fractions are padded or cut to three digits.
    for (text, ms) in [
        ("2025-01-01T00:00:01.250Z", 1_735_689_601_250),
        ("2025-01-01T00:00:01.5Z", 1_735_689_601_500),
        ("2025-01-01T02:00:01.123456+02:00", 1_735_689_601_123),
        ("2025-01-01T00:00:01Z", 1_735_689_601_000),
    ] {
        assert_eq!(parse_rfc3339_ms(text), Some(ms), "{text}");
    }
    assert_eq!(
        parse_rfc3339("2025-01-01T00:00:01.000Z"),
        Some(1_735_689_601)
    );
    assert_eq!(
        parse_rfc3339("2025-01-01T02:00:00.123456+02:00"),
        Some(1_735_689_600)
    );
    assert_eq!(parse_rfc3339("2024-02-29T12:00:00Z"), Some(1_709_208_000));
    for bad in [
        "",
        "yesterday",
        "2025-13-01T00:00:00Z",
        "2025-01-01T00:00:00",
        "２０２５",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

// --------------------------------------------------------------------------------- streaming

#[test]
fn sse_output_events_become_chunks_at_every_split() {
    let whole = parsed(&decode_sse(STREAM_TEXT, STREAM_TEXT.len()).unwrap());
    assert_eq!(whole.len(), 4);
    assert_eq!(
        whole[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "Once upon a time"})
    );
    assert_eq!(whole[0]["object"], json!("chat.completion.chunk"));
    assert_eq!(whole[0]["model"], json!("meta/meta-llama-3-8b-instruct"));
    assert_eq!(
        whole[1]["choices"][0]["delta"],
        json!({"content": " there was"})
    );
    assert_eq!(
        whole[2]["choices"][0]["delta"],
        json!({"content": "\na llama"})
    );
    assert_eq!(whole[3]["choices"][0]["delta"], json!({}));
    assert_eq!(whole[3]["choices"][0]["finish_reason"], json!("stop"));
    for chunk in &whole[..3] {
        assert_eq!(chunk["choices"][0]["finish_reason"], json!(null));
    }
    // No usage in Replicate's SSE: no usage chunk.
    let chunks = decode_sse(STREAM_TEXT, 7).unwrap();
    assert!(chunks.iter().all(|chunk| chunk.usage.is_none()));

    let crlf = STREAM_TEXT.replace('\n', "\r\n");
    for body in [STREAM_TEXT.to_owned(), crlf] {
        for cut in 1..=body.len() {
            let chunks = parsed(&decode_sse(&body, cut).unwrap());
            assert_eq!(
                streamed_text(&chunks),
                "Once upon a time there was\na llama",
                "cut every {cut}"
            );
            assert_eq!(chunks.len(), 4, "cut every {cut}");
            assert_eq!(chunks[3]["choices"][0]["finish_reason"], json!("stop"));
        }
    }
}

#[test]
fn sse_error_events_fail_at_every_split() {
    for cut in 1..=STREAM_ERROR.len() {
        assert_eq!(
            decode_sse(STREAM_ERROR, cut),
            Err(Failure::Unavailable(
                "replicate stream error: CUDA out of memory".to_owned()
            )),
            "cut every {cut}"
        );
    }
    let context = "event: error\ndata: {\"detail\":\"Prompt is too long for the model\"}\n\n";
    assert!(matches!(
        decode_sse(context, 3),
        Err(Failure::ContextLengthExceeded(_))
    ));
    let flagged = "event: error\ndata: {\"detail\":\"The input or output was flagged as sensitive. (E005)\"}\n\n";
    assert!(matches!(
        decode_sse(flagged, 7),
        Err(Failure::ContentFiltered(message)) if message.contains("E005")
    ));
}

#[test]
fn sse_done_with_a_reason_is_a_failure() {
    for cut in 1..=STREAM_CANCELED.len() {
        assert!(
            matches!(
                decode_sse(STREAM_CANCELED, cut),
                Err(Failure::Unavailable(message)) if message.contains("canceled")
            ),
            "cut every {cut}"
        );
    }
    let errored = "event: done\ndata: {\"reason\":\"error\"}\n\n";
    assert!(matches!(
        decode_sse(errored, 5),
        Err(Failure::Unavailable(message)) if message.contains("`error`")
    ));
}

#[test]
fn sse_cut_short_is_unavailable_and_an_empty_done_still_finishes() {
    let cut_short = "event: output\ndata: Once\n\n";
    assert_eq!(
        decode_sse(cut_short, 4),
        Err(Failure::Unavailable(
            "replicate stream ended before `event: done`".to_owned()
        ))
    );
    // `done` without the final blank line is still delivered on finish; nothing after `done`
    // belongs to the answer.
    let chunks = parsed(&decode_sse("event: done\ndata: {}", 3).unwrap());
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], json!("stop"));
    let trailing = "event: done\ndata: {}\n\nevent: output\ndata: late\n\n";
    assert_eq!(
        streamed_text(&parsed(&decode_sse(trailing, 2).unwrap())),
        ""
    );
}

#[test]
fn a_succeeded_prediction_body_is_replayed_as_chunks_with_usage() {
    for cut in [1, 13, SUCCEEDED.len()] {
        let chunks = decode_json(SUCCEEDED, cut).unwrap();
        let values = parsed(&chunks);
        assert_eq!(streamed_text(&values), "Once upon a time");
        assert_eq!(
            values[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Once"})
        );
        assert_eq!(
            values[0]["id"],
            json!("chatcmpl-ufawqhfynnddngldkgtslldrkq")
        );
        let finish = &values[values.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], json!("stop"));
        let last = chunks.last().unwrap();
        assert_eq!(
            last.usage,
            Some(Usage {
                prompt_tokens: 8,
                completion_tokens: 60,
                total_tokens: 68
            })
        );
        let usage_chunk: Value = serde_json::from_str(&last.json).unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["usage"]["total_tokens"], json!(68));
        assert_eq!(
            chunks.iter().filter(|chunk| chunk.usage.is_some()).count(),
            1
        );
    }
    // Without metrics: no usage chunk.
    let mut prediction: Value = serde_json::from_str(SUCCEEDED).unwrap();
    prediction.as_object_mut().unwrap().remove("metrics");
    let chunks = decode_json(&prediction.to_string(), 10).unwrap();
    assert!(chunks.iter().all(|chunk| chunk.usage.is_none()));
    assert_eq!(
        parsed(&chunks).last().unwrap()["choices"][0]["finish_reason"],
        json!("stop")
    );
}

#[test]
fn a_pending_prediction_follows_its_stream_url_and_the_sse_there_is_the_answer() {
    for (head, cut) in [
        (json_head(), 9),
        (
            head(201, &[("Content-Type", "application/json; charset=utf-8")]),
            1,
        ),
        // A head without a content type: the `{` says JSON.
        (unlabelled(), STARTING.len()),
    ] {
        let mut decoder = Replicate::stream_decoder(target(), head);
        let (chunks, end) = feed_in_pieces(&mut decoder, &format!("\n  {STARTING}"), cut).unwrap();
        // Nothing is sent before the model speaks, so a failing stream can still fail over.
        assert!(chunks.is_empty());
        assert_eq!(end, StreamEnd::Follow(stream_follow()), "cut every {cut}");

        let (chunks, end) = feed_in_pieces(&mut decoder, STREAM_TEXT, 5).unwrap();
        // Done: the SSE had no usage, so the finished prediction is read for its metrics.
        let StreamEnd::Follow(usage_follow) = end else {
            panic!("no follow for the usage: {end:?}");
        };
        assert_eq!(usage_follow.after_ms, 0);
        assert_eq!(usage_follow.request.method, "GET");
        assert!(
            usage_follow
                .request
                .url
                .ends_with("/predictions/ufawqhfynnddngldkgtslldrkq"),
            "{}",
            usage_follow.request.url
        );
        let (usage_chunks, end) = feed_in_pieces(&mut decoder, SUCCEEDED, 7).unwrap();
        assert!(matches!(end, StreamEnd::Done(_)), "{end:?}");
        assert_eq!(usage_chunks.len(), 1, "{usage_chunks:?}");
        let usage: Value = serde_json::from_str(&usage_chunks[0].json).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert!(usage_chunks[0].usage.is_some());
        let values = parsed(&chunks);
        assert_eq!(
            streamed_text(&values),
            "Once upon a time there was\na llama"
        );
        assert_eq!(values.len(), 4);
        for value in &values {
            // The chunks carry the prediction's id and creation time.
            assert_eq!(value["id"], json!("chatcmpl-ufawqhfynnddngldkgtslldrkq"));
            assert_eq!(value["created"], json!(1_735_689_600));
        }
        assert_eq!(values[3]["choices"][0]["finish_reason"], json!("stop"));
    }
}

#[test]
fn an_unreadable_prediction_after_a_complete_stream_costs_only_the_usage_chunk() {
    let mut decoder = Replicate::stream_decoder(target(), json_head());
    let (_, end) = feed_in_pieces(&mut decoder, STARTING, 64).unwrap();
    assert_eq!(end, StreamEnd::Follow(stream_follow()));
    let (chunks, end) = feed_in_pieces(&mut decoder, STREAM_TEXT, 64).unwrap();
    assert!(matches!(end, StreamEnd::Follow(_)));
    assert!(!chunks.is_empty());
    let (usage_chunks, end) = feed_in_pieces(&mut decoder, "{not json", 64).unwrap();
    assert!(usage_chunks.is_empty());
    assert_eq!(end, StreamEnd::Done(Vec::new()));
}

#[test]
fn a_stream_url_that_errors_or_ends_early_fails_after_the_follow() {
    for (sse, expected) in [
        (
            STREAM_ERROR,
            Failure::Unavailable("replicate stream error: CUDA out of memory".to_owned()),
        ),
        (
            "event: output\ndata: Once\n\n",
            Failure::Unavailable("replicate stream ended before `event: done`".to_owned()),
        ),
    ] {
        let mut decoder = Replicate::stream_decoder(target(), json_head());
        let (_, end) = feed_in_pieces(&mut decoder, STARTING, 50).unwrap();
        assert_eq!(end, StreamEnd::Follow(stream_follow()));
        assert_eq!(feed_in_pieces(&mut decoder, sse, 3), Err(expected));
    }
}

#[test]
fn a_pending_prediction_without_a_stream_url_is_polled_then_replayed() {
    let mut prediction: Value = serde_json::from_str(STARTING).unwrap();
    prediction["urls"].as_object_mut().unwrap().remove("stream");
    let mut decoder = Replicate::stream_decoder(target(), json_head());
    let (chunks, end) = feed_in_pieces(&mut decoder, &prediction.to_string(), 17).unwrap();
    assert!(chunks.is_empty());
    // Created in 2025: an old prediction is polled at the longest interval.
    assert_eq!(end, StreamEnd::Follow(poll_follow(2_000)));
    // Still processing: poll again.
    prediction["status"] = json!("processing");
    let (_, end) = feed_in_pieces(&mut decoder, &prediction.to_string(), 17).unwrap();
    assert_eq!(end, StreamEnd::Follow(poll_follow(2_000)));
    // Done: the prediction is replayed, usage included.
    let (chunks, end) = feed_in_pieces(&mut decoder, SUCCEEDED, 17).unwrap();
    assert!(matches!(end, StreamEnd::Done(_)));
    assert_eq!(streamed_text(&parsed(&chunks)), "Once upon a time");
    assert_eq!(
        chunks.last().unwrap().usage.map(|usage| usage.total_tokens),
        Some(68)
    );
}

#[test]
fn failed_or_canceled_create_bodies_fail_the_stream() {
    assert!(matches!(
        decode_json(FAILED_CONTEXT, 50),
        Err(Failure::ContextLengthExceeded(_))
    ));
    assert!(matches!(
        decode_json(&with_status("canceled"), 50),
        Err(Failure::Unavailable(_))
    ));
}

#[test]
fn empty_or_garbage_stream_bodies_fail_without_panicking() {
    let sniffed = |body: &str, cut: usize| decode_with(unlabelled(), body, cut);
    assert!(matches!(sniffed("", 1), Err(Failure::BadResponse(_))));
    assert!(matches!(sniffed("  \n", 1), Err(Failure::BadResponse(_))));
    assert!(matches!(
        sniffed("{\"status\":", 2),
        Err(Failure::BadResponse(_))
    ));
    assert!(matches!(
        sniffed("\u{FEFF}garbage without events", 2),
        Err(Failure::Unavailable(_))
    ));
    assert!(matches!(decode_json("", 1), Err(Failure::BadResponse(_))));
    let mut decoder = Replicate::stream_decoder(target(), sse_head());
    assert!(decoder.feed(b"event: output\ndata: \xFF\xFE\n\n").is_ok());
}
