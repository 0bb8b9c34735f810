//! Failure classification: every status and error envelope of `docs/wire-formats.md` (OpenAI
//! baseline, Groq, Error classification across providers, Error envelopes).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aigw_plugin_sdk::failure::{
    UpstreamError, classify, classify_error, classify_error_value, parse_go_duration,
    retry_after_seconds,
};
use aigw_plugin_sdk::{Failure, Header, HttpResponse};
use serde_json::json;

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: headers
            .iter()
            .map(|(name, value)| Header::new(*name, *value))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

fn rate_limited(retry_after_seconds: Option<u32>, message: &str) -> Failure {
    Failure::RateLimited {
        retry_after_seconds,
        message: message.to_owned(),
    }
}

const GROQ_429: &str = r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` service tier on_demand on tokens per minute (TPM): Limit 15000, Used 11972, Requested 4351. Please try again in 5.289s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing","type":"tokens","code":"rate_limit_exceeded"}}"#;

#[test]
fn rate_limit_prefers_the_retry_after_header_in_seconds() {
    let failure = classify(&response(429, &[("Retry-After", "17")], GROQ_429));
    assert!(matches!(
        failure,
        Failure::RateLimited { retry_after_seconds: Some(17), ref message }
            if message.starts_with("Rate limit reached for model")
    ));
}

#[test]
fn rate_limit_reads_an_http_date_retry_after() {
    let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
    let headers = [Header::new("retry-after", "Wed, 21 Oct 2015 07:28:42 GMT")];
    assert_eq!(retry_after_seconds(&headers, None, now), Some(42));
    // A date in the past means "now".
    let later = now + Duration::from_secs(3600);
    assert_eq!(retry_after_seconds(&headers, None, later), Some(0));
}

#[test]
fn rate_limit_falls_back_to_the_groq_message_rounded_up() {
    let failure = classify(&response(429, &[], GROQ_429));
    assert!(
        matches!(
            failure,
            Failure::RateLimited {
                retry_after_seconds: Some(6),
                ..
            }
        ),
        "{failure:?}"
    );
}

#[test]
fn rate_limit_message_delays_in_other_forms() {
    let now = SystemTime::now();
    let in_message = |message: &str| retry_after_seconds(&[], Some(message), now);
    assert_eq!(in_message("Please try again in 1m30.5s."), Some(91));
    assert_eq!(in_message("Please try again in 850ms"), Some(1));
    assert_eq!(
        in_message("Request was throttled. Your rate limit resets in ~30s."),
        Some(30)
    );
    assert_eq!(in_message("Slow down"), None);
}

#[test]
fn rate_limit_falls_back_to_reset_headers_preferring_the_exhausted_dimension() {
    let failure = classify(&response(
        429,
        &[
            ("x-ratelimit-remaining-requests", "14370"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "7.66s"),
        ],
        r#"{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}"#,
    ));
    assert_eq!(failure, rate_limited(Some(8), "Rate limit reached"));

    let requests_exhausted = classify(&response(
        429,
        &[
            ("x-ratelimit-reset-tokens", "7.66s"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
        ],
        "{}",
    ));
    assert!(matches!(
        requests_exhausted,
        Failure::RateLimited {
            retry_after_seconds: Some(180),
            ..
        }
    ));

    // Nothing exhausted: the soonest reset; Cerebras sends float seconds.
    let cerebras = classify(&response(
        429,
        &[
            ("x-ratelimit-reset-requests-day", "33011.38"),
            ("x-ratelimit-reset-tokens-minute", "11.38"),
        ],
        r#"{"message":"Tokens per minute limit exceeded","type":"too_many_tokens_error","param":"quota","code":"token_quota_exceeded"}"#,
    ));
    assert_eq!(
        cerebras,
        rate_limited(Some(12), "Tokens per minute limit exceeded")
    );
}

#[test]
fn openrouter_reset_header_is_an_epoch_in_milliseconds() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let headers = [Header::new("X-RateLimit-Reset", "1700000004500")];
    assert_eq!(retry_after_seconds(&headers, None, now), Some(5));
}

#[test]
fn rate_limit_without_any_delay_has_none() {
    let failure = classify(&response(429, &[], "Too Many Requests"));
    assert_eq!(failure, rate_limited(None, "Too Many Requests"));
}

#[test]
fn go_durations() {
    assert_eq!(parse_go_duration("7.66s"), Some(7.66));
    assert_eq!(parse_go_duration("2m59.56s"), Some(179.56));
    assert_eq!(parse_go_duration("6ms"), Some(0.006));
    assert_eq!(parse_go_duration("1h0m0s"), Some(3600.0));
    assert_eq!(parse_go_duration("11.38"), Some(11.38));
    assert_eq!(parse_go_duration("6m0s"), Some(360.0));
    assert_eq!(parse_go_duration(""), None);
    assert_eq!(parse_go_duration("soon"), None);
    assert_eq!(parse_go_duration("5x"), None);
    assert_eq!(parse_go_duration("s"), None);
}

#[test]
fn groq_413_over_the_tpm_budget_is_rate_limited() {
    let failure = classify(&response(
        413,
        &[],
        r#"{"error":{"message":"Request too large for model `llama-3.1-8b-instant` in organization `org_1` on tokens per minute (TPM): Limit 6000, Requested 9000, please reduce your message size and try again.","type":"tokens","code":"rate_limit_exceeded"}}"#,
    ));
    assert!(
        matches!(failure, Failure::RateLimited { ref message, .. } if message.starts_with("Request too large")),
        "{failure:?}"
    );
    // A 413 that is only a too-large body is the client's problem.
    assert!(matches!(
        classify(&response(413, &[], "payload too large")),
        Failure::InvalidRequest(_)
    ));
}

#[test]
fn auth_failures_are_unauthorized() {
    assert_eq!(
        classify(&response(
            401,
            &[],
            r#"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#
        )),
        Failure::Unauthorized("Invalid API Key".to_owned())
    );
    // Cerebras without an auth header: FastAPI's `detail`.
    assert_eq!(
        classify(&response(403, &[], r#"{"detail":"Not authenticated"}"#)),
        Failure::Unauthorized("Not authenticated".to_owned())
    );
    // Replicate problem details.
    assert_eq!(
        classify(&response(
            401,
            &[],
            r#"{"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401}"#
        )),
        Failure::Unauthorized("You did not pass a valid authentication token".to_owned())
    );
}

#[test]
fn an_account_without_credit_is_no_credit_not_unauthorized_or_rate_limited() {
    // Novita: no balance is a 403 in its own envelope; other 403s stay unauthorized.
    assert_eq!(
        classify(&response(
            403,
            &[],
            r#"{"code":403,"reason":"NOT_ENOUGH_BALANCE","message":"Your balance is not enough","metadata":{}}"#
        )),
        Failure::NoCredit("Your balance is not enough".to_owned())
    );
    assert_eq!(
        classify(&response(
            403,
            &[],
            r#"{"code":403,"reason":"model_access_denied","message":"no access","metadata":{}}"#
        )),
        Failure::Unauthorized("no access".to_owned())
    );
    // OpenAI: no credit is a 429 that no wait cures, even with a `retry-after`.
    assert_eq!(
        classify(&response(
            429,
            &[("retry-after", "20")],
            r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#
        )),
        Failure::NoCredit(
            "You exceeded your current quota, please check your plan and billing details."
                .to_owned()
        )
    );
    // Any 402, whatever envelope: OpenRouter's numeric code, Hugging Face's string, Replicate's
    // problem details, an empty body.
    for (body, message) in [
        (
            r#"{"error":{"code":402,"message":"Insufficient credits"}}"#,
            "Insufficient credits",
        ),
        (
            r#"{"error":"You have exceeded your monthly included credits"}"#,
            "You have exceeded your monthly included credits",
        ),
        (
            r#"{"title":"Insufficient credit","detail":"You have insufficient credit to run this model.","status":402}"#,
            "You have insufficient credit to run this model.",
        ),
        ("", "upstream answered HTTP 402"),
    ] {
        assert_eq!(
            classify(&response(402, &[], body)),
            Failure::NoCredit(message.to_owned()),
            "{body}"
        );
    }
    // Mid-stream: a frame with the status as its numeric code, or OpenAI's code.
    assert_eq!(
        classify_error_value(&json!({"error": {"code": 402, "message": "out of credits"}})),
        Failure::NoCredit("out of credits".to_owned())
    );
    assert_eq!(
        classify_error_value(
            &json!({"error": {"code": "insufficient_quota", "message": "quota gone"}})
        ),
        Failure::NoCredit("quota gone".to_owned())
    );
    // A plain rate limit is still one.
    assert!(matches!(
        classify(&response(429, &[], GROQ_429)),
        Failure::RateLimited { .. }
    ));
}

#[test]
fn context_length_is_recognised_by_code_and_by_each_known_text() {
    let openai = r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
    assert!(matches!(
        classify(&response(400, &[], openai)),
        Failure::ContextLengthExceeded(ref message) if message.starts_with("This model's maximum context length is 8192")
    ));
    let by_code_only = r#"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
    assert_eq!(
        classify(&response(400, &[], by_code_only)),
        Failure::ContextLengthExceeded("too long".to_owned())
    );
    for text in [
        "Please reduce the length of the messages or completion.",
        "This endpoint's maximum context length is 131072 tokens. However, you requested about 200000 tokens.",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        "Input validation error: `inputs` tokens + `max_new_tokens` is longer than the model's context length",
    ] {
        let body = json!({"error": {"message": text, "type": "invalid_request_error"}}).to_string();
        assert_eq!(
            classify(&response(400, &[], &body)),
            Failure::ContextLengthExceeded(text.to_owned()),
            "{text}"
        );
    }
    // Gemini's OpenAI endpoint wraps the error in an array.
    let gemini_compat = r#"[{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}]"#;
    assert!(matches!(
        classify(&response(400, &[], gemini_compat)),
        Failure::ContextLengthExceeded(_)
    ));
}

#[test]
fn client_errors_are_invalid_requests_with_the_upstream_message_verbatim() {
    let model_not_found = r#"{"error":{"message":"The model `x` does not exist or you do not have access to it.","type":"invalid_request_error","code":"model_not_found"}}"#;
    assert_eq!(
        classify(&response(404, &[], model_not_found)),
        Failure::InvalidRequest(
            "The model `x` does not exist or you do not have access to it.".to_owned()
        )
    );
    assert_eq!(
        classify(&response(
            400,
            &[],
            r#"{"error":{"message":"'messages' must contain at least one message","type":"invalid_request_error"}}"#
        )),
        Failure::InvalidRequest("'messages' must contain at least one message".to_owned())
    );
    // Replicate validation and FastAPI-style detail lists.
    assert_eq!(
        classify(&response(
            422,
            &[],
            r#"{"title":"Input validation failed","detail":"- input: prompt is required","status":422}"#
        )),
        Failure::InvalidRequest("- input: prompt is required".to_owned())
    );
    assert_eq!(
        classify(&response(
            422,
            &[],
            r#"{"detail":[{"loc":["body","messages"],"msg":"field required","type":"missing"},{"loc":["body","model"],"msg":"str type expected","type":"type_error"}]}"#
        )),
        Failure::InvalidRequest("field required; str type expected".to_owned())
    );
    // Hugging Face's `{"error":"text"}`.
    assert_eq!(
        classify(&response(
            400,
            &[],
            r#"{"error":"Model meta-llama/x is not supported"}"#
        )),
        Failure::InvalidRequest("Model meta-llama/x is not supported".to_owned())
    );
}

#[test]
fn content_policy_rejections_are_content_filtered() {
    assert_eq!(
        classify(&response(
            400,
            &[],
            r#"{"error":{"message":"Your request was rejected as a result of our safety system.","type":"invalid_request_error","code":"content_policy_violation"}}"#
        )),
        Failure::ContentFiltered(
            "Your request was rejected as a result of our safety system.".to_owned()
        )
    );
    // OpenRouter moderation is a 403, which would otherwise read as a credential problem.
    assert_eq!(
        classify(&response(
            403,
            &[],
            r#"{"error":{"code":403,"message":"Your chosen model requires moderation and your input was flagged","metadata":{"reasons":["violence"]}}}"#
        )),
        Failure::ContentFiltered(
            "Your chosen model requires moderation and your input was flagged".to_owned()
        )
    );
}

#[test]
fn transient_statuses_are_unavailable() {
    for status in [408, 409, 425, 498, 500, 502, 503, 504, 529] {
        let failure = classify(&response(
            status,
            &[],
            r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error"}}"#,
        ));
        assert_eq!(
            failure,
            Failure::Unavailable(
                "The engine is currently overloaded, please try again later".to_owned()
            ),
            "status {status}"
        );
    }
    // Groq flex tier full, and an HTML error page from a proxy: the text, shortened.
    assert_eq!(
        classify(&response(
            498,
            &[],
            r#"{"error":{"message":"Flex tier capacity exceeded. This is a known issue","type":"capacity_exceeded"}}"#
        )),
        Failure::Unavailable("Flex tier capacity exceeded. This is a known issue".to_owned())
    );
    let html = format!("<html><body>{}</body></html>", "x".repeat(2000));
    let Failure::Unavailable(message) = classify(&response(502, &[], &html)) else {
        panic!("502 must be unavailable");
    };
    assert!(message.starts_with("<html><body>xxx"));
    assert_eq!(message.chars().count(), 501);
}

#[test]
fn empty_body_message_names_the_status_and_code() {
    assert_eq!(
        classify(&response(503, &[], "")),
        Failure::Unavailable("upstream answered HTTP 503".to_owned())
    );
    assert_eq!(
        classify(&response(500, &[], r#"{"error":{"code":"server_error"}}"#)),
        Failure::Unavailable("upstream answered HTTP 500 (server_error)".to_owned())
    );
}

#[test]
fn unexpected_statuses_are_bad_responses() {
    assert!(matches!(
        classify(&response(302, &[], "")),
        Failure::BadResponse(ref message) if message.contains("302")
    ));
}

#[test]
fn upstream_error_reads_every_envelope() {
    let parse = |body: &str| UpstreamError::parse(body.as_bytes());
    let openai = parse(
        r#"{"error":{"message":"m1","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
    );
    assert_eq!(openai.message.as_deref(), Some("m1"));
    assert_eq!(openai.code.as_deref(), Some("invalid_api_key"));
    assert_eq!(openai.kind.as_deref(), Some("invalid_request_error"));

    let cerebras = parse(
        r#"{"message":"Wrong API Key","type":"invalid_request_error","param":"api_key","code":"wrong_api_key"}"#,
    );
    assert_eq!(cerebras.message.as_deref(), Some("Wrong API Key"));
    assert_eq!(cerebras.code.as_deref(), Some("wrong_api_key"));

    let openrouter = parse(r#"{"error":{"code":402,"message":"Insufficient credits"}}"#);
    assert_eq!(openrouter.message.as_deref(), Some("Insufficient credits"));
    assert_eq!(openrouter.code.as_deref(), Some("402"));

    let gemini = parse(
        r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#,
    );
    assert_eq!(gemini.code.as_deref(), Some("INVALID_ARGUMENT"));
    assert_eq!(
        gemini.message.as_deref(),
        Some("API key not valid. Please pass a valid API key.")
    );

    let novita = parse(r#"{"code":403,"reason":"NOT_ENOUGH_BALANCE","message":"low"}"#);
    assert_eq!(novita.code.as_deref(), Some("NOT_ENOUGH_BALANCE"));

    let replicate = parse(r#"{"title":"Unauthenticated","status":401}"#);
    assert_eq!(replicate.message.as_deref(), Some("Unauthenticated"));
    assert_eq!(replicate.code, None);

    let hf = parse(r#"{"error":"Model is currently loading","estimated_time":20.0}"#);
    assert_eq!(hf.message.as_deref(), Some("Model is currently loading"));

    assert_eq!(
        parse("  upstream timeout \n").message.as_deref(),
        Some("upstream timeout")
    );
    assert_eq!(parse("").message, None);
    assert_eq!(parse("null"), UpstreamError::default());
}

#[test]
fn error_values_on_a_2xx_are_classified_by_numeric_code_or_known_code() {
    assert!(matches!(
        classify_error_value(&json!({"error": {"code": 429, "message": "slow down"}})),
        Failure::RateLimited { ref message, .. } if message == "slow down"
    ));
    assert_eq!(
        classify_error_value(
            &json!({"error": {"message": "Service Unavailable", "type": "internal_server_error"}})
        ),
        Failure::Unavailable("Service Unavailable".to_owned())
    );
    assert!(matches!(
        classify_error_value(
            &json!({"error": {"message": "too long", "code": "context_length_exceeded"}})
        ),
        Failure::ContextLengthExceeded(_)
    ));
    assert!(matches!(
        classify_error_value(
            &json!({"error": {"message": "Rate limit reached. Please try again in 2s.", "code": "rate_limit_exceeded"}})
        ),
        Failure::RateLimited {
            retry_after_seconds: Some(2),
            ..
        }
    ));
}

#[test]
fn classify_error_is_deterministic_given_a_clock() {
    let error = UpstreamError {
        message: Some("busy".to_owned()),
        ..UpstreamError::default()
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    assert_eq!(
        classify_error(
            429,
            &[Header::new("retry-after", "Wed, 21 Oct 2015 07:29:00 GMT")],
            &error,
            now
        ),
        rate_limited(Some(60), "busy")
    );
}
