//! The mock upstream's Gemini flavor (`docs/wire-formats.md`, Gemini native), talked to directly:
//! if these wire shapes drift from Google's, the gemini plugin's end-to-end tests prove nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_tests::mock::{Flavor, MockUpstream, RETRY_AFTER_SECONDS};
use serde_json::{Value, json};

/// A Gemini request body with one user turn.
fn ask(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

fn weather_tools() -> Value {
    json!([{"functionDeclarations": [
        {"name": "get_weather", "description": "Current weather",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "get_time", "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}}}},
    ]}])
}

/// `POST {base}/models/{model}:{method}` (method may carry a query string).
async fn call(mock: &MockUpstream, model: &str, method: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/models/{model}:{method}", mock.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The SSE frames of a body, checking Google's framing on the way: CRLF separators, `data: `
/// prefixes, and no `[DONE]`.
fn sse_frames(body: &str) -> Vec<Value> {
    assert!(
        body.ends_with("\r\n\r\n"),
        "frames end with CRLF CRLF: {body:?}"
    );
    assert!(!body.contains("[DONE]"), "Gemini sends no [DONE]: {body}");
    body.strip_suffix("\r\n\r\n")
        .unwrap()
        .split("\r\n\r\n")
        .map(|frame| {
            let data = frame.strip_prefix("data: ").expect("a data: frame");
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

fn text_of(response: &Value) -> String {
    response["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|part| part["text"].as_str())
        .collect()
}

#[tokio::test]
async fn generate_content_answers_the_last_user_text_with_usage_metadata() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    assert!(mock.base_url().ends_with("/v1beta"));
    let body = json!({
        "systemInstruction": {"parts": [{"text": "be terse"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "first question"}]},
            {"role": "model", "parts": [{"text": "first answer"}]},
            {"role": "user", "parts": [{"text": "hello "}, {"text": "there"}]},
        ],
    });
    let response = call(&mock, "ok", "generateContent", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=UTF-8"
    );
    let answer: Value = response.json().await.unwrap();
    let candidate = &answer["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(text_of(&answer), "mock reply to: hello there");
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(candidate["index"], 0);
    assert!(candidate["safetyRatings"].is_array());
    // "be terse" + "first question" + "first answer" + "hello there" = 45 characters.
    let usage = &answer["usageMetadata"];
    assert_eq!(usage["promptTokenCount"], 8 + 45 / 4);
    assert_eq!(usage["candidatesTokenCount"], 5);
    assert_eq!(usage["totalTokenCount"], 8 + 45 / 4 + 5);
    assert_eq!(usage["promptTokensDetails"][0]["modality"], "TEXT");
    assert_eq!(answer["modelVersion"], "ok");
    assert!(!answer["responseId"].as_str().unwrap().is_empty());

    let recorded = mock.chat_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1beta/models/ok:generateContent");
    assert_eq!(recorded[0].model(), Some("ok"));
}

#[tokio::test]
async fn sse_stream_sends_one_word_per_crlf_frame_and_usage_on_the_last() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    let response = call(
        &mock,
        "ok",
        "streamGenerateContent?alt=sse",
        &ask("stream me"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let frames = sse_frames(&response.text().await.unwrap());
    assert_eq!(frames.len(), 5, "one frame per word of the answer");
    let texts: Vec<String> = frames.iter().map(text_of).collect();
    assert_eq!(texts.concat(), "mock reply to: stream me");
    assert_eq!(texts[1], " reply", "each frame holds only the new text");

    let (last, rest) = frames.split_last().unwrap();
    for frame in rest {
        assert!(frame["candidates"][0].get("finishReason").is_none());
        assert_eq!(frame["usageMetadata"]["promptTokenCount"], 10);
        assert!(frame["usageMetadata"].get("candidatesTokenCount").is_none());
    }
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 5);
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 15);
    let ids: Vec<&Value> = frames.iter().map(|f| &f["responseId"]).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one responseId per answer"
    );
}

#[tokio::test]
async fn stream_without_alt_sse_is_one_json_array() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    let response = call(&mock, "ok", "streamGenerateContent", &ask("hello there")).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(!body.contains("data:"), "not SSE: {body}");
    let frames: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(frames.len(), 5);
    let text: String = frames.iter().map(text_of).collect();
    assert_eq!(text, "mock reply to: hello there");
    assert_eq!(frames[4]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn tool_calls_are_function_call_parts_and_function_responses_are_answered() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    let mut body = ask("weather and time?");
    body["tools"] = weather_tools();

    let answer: Value = call(&mock, "tool-call-parallel", "generateContent", &body)
        .await
        .json()
        .await
        .unwrap();
    let candidate = &answer["candidates"][0];
    assert_eq!(
        candidate["finishReason"], "STOP",
        "Gemini has no tool_calls reason"
    );
    let parts = candidate["content"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts[0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    // Upper-case (Gemini schema) types still get a value of the right kind.
    assert_eq!(
        parts[1]["functionCall"],
        json!({"name": "get_time", "args": {"location": "London"}})
    );
    assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 4);

    // Streamed, the calls arrive whole in one finished frame.
    let response = call(&mock, "tool-call", "streamGenerateContent?alt=sse", &body).await;
    let frames = sse_frames(&response.text().await.unwrap());
    assert_eq!(frames.len(), 1);
    assert!(frames[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"].is_object());
    assert_eq!(frames[0]["candidates"][0]["finishReason"], "STOP");

    // The plugin sends tool results as `functionResponse` parts in a user turn.
    body["contents"] = json!([
        {"role": "user", "parts": [{"text": "weather and time?"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {"location": "London"}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"result": "18C"}}},
            {"functionResponse": {"name": "get_time", "response": {"hour": 9}}},
        ]},
    ]);
    let answer: Value = call(&mock, "tool-call-parallel", "generateContent", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(text_of(&answer), "tool said: 18C\ntool said: {\"hour\":9}");

    // Without declarations there is nothing to call.
    let response = call(&mock, "tool-call", "generateContent", &ask("weather?")).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
}

#[tokio::test]
async fn rate_limit_puts_the_wait_in_retry_info_not_in_headers() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    let response = call(&mock, "rate-limit", "generateContent", &ask("hi")).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());
    assert!(
        response
            .headers()
            .keys()
            .all(|name| !name.as_str().starts_with("x-ratelimit")),
        "{:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], 429);
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    let kinds: Vec<&str> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["@type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "type.googleapis.com/google.rpc.Help",
            "type.googleapis.com/google.rpc.QuotaFailure",
            "type.googleapis.com/google.rpc.RetryInfo",
        ]
    );
    let delay = error["details"][2]["retryDelay"].as_str().unwrap();
    let seconds: f64 = delay.strip_suffix('s').unwrap().parse().unwrap();
    assert!(
        seconds.fract() > 0.0,
        "a fractional protobuf duration: {delay}"
    );
    assert_eq!(seconds.ceil() as u64, RETRY_AFTER_SECONDS);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!("Please retry in {delay}.")),
        "{message}"
    );
    assert_eq!(
        error["details"][1]["violations"][0]["quotaDimensions"]["model"],
        "rate-limit"
    );

    let body: Value = call(&mock, "rate-limit-no-header", "generateContent", &ask("hi"))
        .await
        .json()
        .await
        .unwrap();
    let error = &body["error"];
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(error["details"].as_array().unwrap().len(), 2);
    assert!(
        !error["message"]
            .as_str()
            .unwrap()
            .contains("Please retry in")
    );
}

#[tokio::test]
async fn a_blocked_prompt_is_200_without_candidates() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    let response = call(
        &mock,
        "content-filter",
        "generateContent",
        &ask("something bad"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("candidates").is_none(), "{body}");
    assert_eq!(body["promptFeedback"]["blockReason"], "SAFETY");
    assert!(body["promptFeedback"]["safetyRatings"].is_array());
    assert_eq!(body["usageMetadata"]["promptTokenCount"], 11);
    assert_eq!(body["usageMetadata"]["totalTokenCount"], 11);

    let response = call(
        &mock,
        "content-filter",
        "streamGenerateContent?alt=sse",
        &ask("something bad"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let frames = sse_frames(&response.text().await.unwrap());
    assert_eq!(frames.len(), 1);
    assert!(frames[0].get("candidates").is_none());
    assert_eq!(frames[0]["promptFeedback"]["blockReason"], "SAFETY");
}

#[tokio::test]
async fn a_wrong_key_is_400_api_key_invalid_and_a_missing_key_is_403() {
    let mock = MockUpstream::start(Flavor::Gemini).await.with_api_key("k");
    let url = format!("{}/models/ok:generateContent", mock.base_url());
    let client = reqwest::Client::new();

    let wrong = client
        .post(&url)
        .header("x-goog-api-key", "nope")
        .json(&ask("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.status(),
        400,
        "Google answers a bad key with 400, not 401"
    );
    assert_eq!(
        wrong.headers()["content-type"],
        "application/json; charset=UTF-8"
    );
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        body["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(body["error"]["details"][0]["reason"], "API_KEY_INVALID");
    assert_eq!(body["error"]["details"][0]["domain"], "googleapis.com");

    let missing = client.post(&url).json(&ask("hi")).send().await.unwrap();
    assert_eq!(missing.status(), 403);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unregistered callers")
    );

    // A Bearer token is not how Gemini takes API keys.
    let bearer = client
        .post(&url)
        .bearer_auth("k")
        .json(&ask("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 403);

    for request in [
        client.post(&url).header("x-goog-api-key", "k"),
        client.post(format!("{url}?key=k")),
    ] {
        let ok = request.json(&ask("hi")).send().await.unwrap();
        assert_eq!(ok.status(), 200);
    }
}

#[tokio::test]
async fn a_cut_stream_ends_in_a_body_error_before_any_finish_reason() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    let mut response = call(
        &mock,
        "cut-stream-3",
        "streamGenerateContent?alt=sse",
        &ask("hello there"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let failure = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => received.extend_from_slice(&bytes),
            Ok(None) => panic!(
                "the body ended cleanly: {}",
                String::from_utf8_lossy(&received)
            ),
            Err(error) => break error,
        }
    };
    assert!(failure.is_body() || failure.is_decode(), "{failure:?}");
    let frames = sse_frames(std::str::from_utf8(&received).unwrap());
    assert_eq!(frames.len(), 3);
    assert_eq!(
        frames.iter().map(text_of).collect::<String>(),
        "mock reply to:"
    );
    assert!(
        frames
            .iter()
            .all(|f| f["candidates"][0].get("finishReason").is_none())
    );

    // Without a stream, the JSON body stops half-way short of its content-length.
    let response = call(&mock, "cut-stream", "generateContent", &ask("hello there")).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err());
}

#[tokio::test]
async fn errors_use_the_google_rpc_status_envelope() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    for (model, status, grpc, message) in [
        (
            "error-500",
            500,
            "INTERNAL",
            Flavor::Gemini.server_error_message(),
        ),
        (
            "unavailable-503",
            503,
            "UNAVAILABLE",
            Flavor::Gemini.overloaded_message(),
        ),
        (
            "capacity-498",
            503,
            "UNAVAILABLE",
            Flavor::Gemini.overloaded_message(),
        ),
        (
            "context-length",
            400,
            "INVALID_ARGUMENT",
            "The input token count (9000) exceeds the maximum number of tokens allowed (8192).",
        ),
        (
            "bad-request",
            400,
            "INVALID_ARGUMENT",
            aigw_tests::mock::BAD_REQUEST_MESSAGE,
        ),
        (
            "no-credit",
            402,
            "RESOURCE_EXHAUSTED",
            "credits are depleted",
        ),
        ("forbidden", 403, "PERMISSION_DENIED", "reported as leaked"),
        (
            "stream-error",
            500,
            "INTERNAL",
            Flavor::Gemini.server_error_message(),
        ),
    ] {
        let response = call(&mock, model, "generateContent", &ask("hi")).await;
        assert_eq!(response.status(), status, "{model}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], status, "{model}");
        assert_eq!(body["error"]["status"], grpc, "{model}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(message),
            "{model}: {body}"
        );
    }

    // A stream that fails after its headers says so in an `{"error":…}` frame.
    let response = call(
        &mock,
        "stream-error",
        "streamGenerateContent?alt=sse",
        &ask("hi"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let frames = sse_frames(&response.text().await.unwrap());
    assert_eq!(frames.len(), 2);
    assert_eq!(text_of(&frames[0]), "partial");
    assert_eq!(
        frames[1],
        json!({"error": {"code": 500, "message": Flavor::Gemini.server_error_message(), "status": "INTERNAL"}})
    );

    let not_json = reqwest::Client::new()
        .post(format!("{}/models/ok:generateContent", mock.base_url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON payload received.")
    );

    // OpenAI's roles are not Gemini's.
    let openai_role = json!({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]});
    let response = call(&mock, "ok", "generateContent", &openai_role).await;
    assert_eq!(response.status(), 400);

    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&ask("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(body["error"]["code"], 404);
}

#[tokio::test]
async fn the_model_list_is_paged() {
    let mock = MockUpstream::start(Flavor::Gemini).await;
    let client = reqwest::Client::new();
    let all: Value = client
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let models = all["models"].as_array().unwrap();
    assert!(models.len() >= 2);
    assert_eq!(models[0]["name"], "models/gemini-2.5-flash");
    assert!(
        models[0]["supportedGenerationMethods"]
            .as_array()
            .unwrap()
            .contains(&json!("generateContent"))
    );
    assert!(all.get("nextPageToken").is_none());

    let first: Value = client
        .get(format!("{}/models?pageSize=1", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["models"].as_array().unwrap().len(), 1);
    let token = first["nextPageToken"].as_str().unwrap();
    let rest: Value = client
        .get(format!("{}/models?pageToken={token}", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["models"].as_array().unwrap().len(), models.len() - 1);
    assert_eq!(rest["models"][0], models[1]);
}
