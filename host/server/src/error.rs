//! Errors in the OpenAI shape `{"error":{"message","type","param","code"}}`, with their status.

use std::borrow::Cow;

use aigw_router::{Exhausted, Failure, FailureClass};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::body::Body;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// The request field at fault, as OpenAI names it (`model`, `messages[3].content`).
    pub param: Option<Cow<'static, str>>,
    pub code: Option<&'static str>,
    pub retry_after: Option<u64>,
    /// The same wait in milliseconds (`retry-after-ms`, which the openai SDKs read first).
    pub retry_after_ms: Option<u64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
            retry_after_ms: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn param(mut self, param: impl Into<Cow<'static, str>>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    pub fn code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// The JSON body alone (also used as an SSE error event).
    pub fn json(&self) -> Bytes {
        let envelope = Envelope {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        // Serialising plain strings cannot fail; the fallback keeps the shape anyway.
        serde_json::to_vec(&envelope)
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from_static(br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#))
    }

    pub fn response(&self) -> Response<Body> {
        let mut response = Response::new(Body::full(self.json()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(ms) = self.retry_after_ms {
            headers.insert("retry-after-ms", HeaderValue::from(ms));
        }
        response
    }

    /// An upstream failure of class `class` on its own (no route walk to report): the status
    /// and type a chat completion's decisive failure would have, the class as its code.
    pub(crate) fn failed(class: FailureClass, message: String) -> ApiError {
        let failure = Failure::new(class, message);
        ApiError::new(status_for(&failure), kind_for(class), failure.message).code(class.as_str())
    }

    /// The answer when no target could serve `model`. When every target was resting (cooling
    /// down after rate limits, or behind open breakers) and none was tried: 429 or 503 at once,
    /// with when the soonest is back. Otherwise the decisive upstream failure's status and
    /// reason, with every attempt named so the operator can see what happened.
    pub fn exhausted(
        exhausted: &Exhausted,
        model: &str,
        label: impl Fn(usize) -> String,
    ) -> ApiError {
        if let Some((wait, all_cooling)) = exhausted.unavailable_for() {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut error = if all_cooling {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    format!(
                        "every target of `{model}` is cooling down after rate limits; retry in \
                         {seconds} s"
                    ),
                )
                .code("rate_limited")
            } else {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream_error",
                    format!(
                        "no target of `{model}` is available (circuit open after repeated \
                         failures); retry in {seconds} s"
                    ),
                )
                .code("unavailable")
            };
            error.retry_after = Some(seconds);
            return error;
        }
        let Some((last, failure)) = exhausted
            .attempts
            .iter()
            .rev()
            .find_map(|a| a.failure().map(|f| (a.target, f)))
        else {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_error",
                "the route has no target that could be tried",
            )
            .code("no_targets");
        };
        let mut message = format!("{}: {}", label(last), failure.message);
        if exhausted.attempts.len() > 1 {
            let tried: Vec<String> = exhausted
                .attempts
                .iter()
                .filter_map(|a| a.failure().map(|f| (a.target, f)))
                .map(|(t, f)| format!("{} {}", label(t), short(f)))
                .collect();
            message.push_str(&format!(
                " (all {} attempts failed: {})",
                exhausted.attempts.len(),
                tried.join("; ")
            ));
        }
        let mut error = ApiError::new(status_for(failure), kind_for(failure.class), message)
            .code(failure.class.as_str());
        error.retry_after = failure.retry_after.map(|d| d.as_secs().max(1));
        error
    }
}

fn short(f: &Failure) -> String {
    match f.status {
        Some(status) => format!("{} ({status})", f.class.as_str()),
        None => f.class.as_str().to_owned(),
    }
}

fn status_for(failure: &Failure) -> StatusCode {
    // The rejected credential is the gateway's, not the client's: passing on the upstream's
    // 401/403 (or Gemini's 400 for a bad key) would tell the client to fix its own request.
    // So is an account without credit: waiting does not cure it, so it is never the 429 a
    // provider may have said it with.
    if matches!(
        failure.class,
        FailureClass::Unauthorized | FailureClass::NoCredit
    ) {
        return StatusCode::BAD_GATEWAY;
    }
    // A policy rejection is the client's to fix, whatever status the provider said it with
    // (OpenRouter's moderation 403, Gemini's blocked prompt on a 200): 400, as OpenAI answers.
    if failure.class == FailureClass::ContentFiltered {
        return StatusCode::BAD_REQUEST;
    }
    // OpenAI answers an invalid request 400 (404 for an unknown model, 413 for a body too
    // large); a provider's 409/422 would surprise OpenAI clients (the SDKs raise a different
    // error class), so those become 400 with the provider's reason.
    if failure.class == FailureClass::InvalidRequest
        && failure
            .status
            .is_some_and(|s| (400..500).contains(&s) && s != 404 && s != 413)
    {
        return StatusCode::BAD_REQUEST;
    }
    if failure.class == FailureClass::Overloaded {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if let Some(status) = failure
        .status
        .filter(|s| *s >= 400)
        .and_then(|s| StatusCode::from_u16(s).ok())
    {
        return status;
    }
    match failure.class {
        FailureClass::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        FailureClass::InvalidRequest
        | FailureClass::ContextLengthExceeded
        | FailureClass::ContentFiltered
        | FailureClass::RequestFault => StatusCode::BAD_REQUEST,
        FailureClass::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        FailureClass::Timeout => StatusCode::GATEWAY_TIMEOUT,
        FailureClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        FailureClass::Connect
        | FailureClass::BadResponse
        | FailureClass::PluginFault
        | FailureClass::Unauthorized
        | FailureClass::NoCredit => StatusCode::BAD_GATEWAY,
    }
}

fn kind_for(class: FailureClass) -> &'static str {
    match class {
        FailureClass::RateLimited => "rate_limit_error",
        FailureClass::InvalidRequest
        | FailureClass::ContextLengthExceeded
        | FailureClass::ContentFiltered
        | FailureClass::RequestFault => "invalid_request_error",
        FailureClass::PluginFault => "plugin_error",
        FailureClass::Overloaded => "server_error",
        FailureClass::Unavailable
        | FailureClass::Timeout
        | FailureClass::Connect
        | FailureClass::Unauthorized
        | FailureClass::NoCredit
        | FailureClass::BadResponse => "upstream_error",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use aigw_router::{Attempt, AttemptKind, Outcome};
    use std::time::Duration;

    fn attempt(target: usize, failure: Failure) -> Attempt {
        Attempt {
            target,
            kind: AttemptKind::First,
            at: Duration::ZERO,
            latency: Duration::ZERO,
            outcome: Outcome::Failed(failure),
        }
    }

    #[test]
    fn exhausted_route_reports_the_last_upstream_status_reason_and_every_attempt() {
        let exhausted = Exhausted {
            attempts: vec![
                attempt(
                    0,
                    Failure::new(FailureClass::Unavailable, "boom").with_status(500),
                ),
                attempt(
                    1,
                    Failure::new(FailureClass::RateLimited, "slow down")
                        .with_status(429)
                        .with_retry_after(Some(Duration::from_secs(7))),
                ),
            ],
            skipped: Vec::new(),
        };
        let e = ApiError::exhausted(&exhausted, "m", |i| format!("p/m{i}"));
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.kind, "rate_limit_error");
        assert_eq!(e.code, Some("rate_limited"));
        assert_eq!(e.retry_after, Some(7));
        assert_eq!(
            e.message,
            "p/m1: slow down (all 2 attempts failed: p/m0 unavailable (500); p/m1 rate_limited (429))"
        );
        let r = e.response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }

    #[test]
    fn failures_without_an_upstream_status_map_to_gateway_statuses() {
        for (class, status) in [
            (FailureClass::Timeout, StatusCode::GATEWAY_TIMEOUT),
            (FailureClass::Connect, StatusCode::BAD_GATEWAY),
            (FailureClass::PluginFault, StatusCode::BAD_GATEWAY),
            (FailureClass::Unauthorized, StatusCode::BAD_GATEWAY),
        ] {
            let exhausted = Exhausted {
                attempts: vec![attempt(0, Failure::new(class, "x"))],
                skipped: Vec::new(),
            };
            assert_eq!(
                ApiError::exhausted(&exhausted, "m", |_| "t".into()).status,
                status
            );
        }
    }

    #[test]
    fn a_route_whose_targets_all_rest_answers_at_once_with_the_soonest_return() {
        use aigw_router::{Skip, SkipReason};
        let skip = |target, reason| Skip { target, reason };
        let cooling = Exhausted {
            attempts: Vec::new(),
            skipped: vec![
                skip(0, SkipReason::Cooling(Duration::from_millis(6200))),
                skip(1, SkipReason::Cooling(Duration::from_millis(2100))),
            ],
        };
        let e = ApiError::exhausted(&cooling, "fast", |_| "t".into());
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after, Some(3));
        assert!(
            e.message.contains("`fast` is cooling down"),
            "{}",
            e.message
        );
        let open = Exhausted {
            attempts: Vec::new(),
            skipped: vec![
                skip(0, SkipReason::Cooling(Duration::from_secs(9))),
                skip(1, SkipReason::Open(Duration::from_millis(400))),
            ],
        };
        let e = ApiError::exhausted(&open, "fast", |_| "t".into());
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(1));
        assert!(e.message.contains("circuit open"), "{}", e.message);
    }

    #[test]
    fn invalid_requests_are_400_except_not_found_and_too_large() {
        for (upstream, expected) in [
            (400, StatusCode::BAD_REQUEST),
            (422, StatusCode::BAD_REQUEST),
            (409, StatusCode::BAD_REQUEST),
            (404, StatusCode::NOT_FOUND),
            (413, StatusCode::PAYLOAD_TOO_LARGE),
        ] {
            let exhausted = Exhausted {
                attempts: vec![attempt(
                    0,
                    Failure::new(FailureClass::InvalidRequest, "input: prompt is required")
                        .with_status(upstream),
                )],
                skipped: Vec::new(),
            };
            let e = ApiError::exhausted(&exhausted, "m", |_| "replicate/m".into());
            assert_eq!(e.status, expected, "{upstream}");
            assert!(e.message.contains("prompt is required"));
        }
    }

    #[test]
    fn a_content_filter_rejection_is_a_400_whatever_the_upstream_said() {
        for upstream in [200, 400, 403] {
            let exhausted = Exhausted {
                attempts: vec![attempt(
                    0,
                    Failure::new(FailureClass::ContentFiltered, "flagged for harassment")
                        .with_status(upstream),
                )],
                skipped: Vec::new(),
            };
            let e = ApiError::exhausted(&exhausted, "m", |_| "openrouter/m".into());
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{upstream}");
            assert!(e.message.contains("flagged for harassment"));
        }
    }

    #[test]
    fn a_rejected_gateway_credential_is_a_gateway_error_whatever_the_upstream_said() {
        for upstream in [400, 401, 403] {
            let exhausted = Exhausted {
                attempts: vec![attempt(
                    0,
                    Failure::new(FailureClass::Unauthorized, "API key not valid")
                        .with_status(upstream),
                )],
                skipped: Vec::new(),
            };
            let e = ApiError::exhausted(&exhausted, "m", |_| "gemini/m".into());
            assert_eq!(e.status, StatusCode::BAD_GATEWAY, "{upstream}");
            assert!(e.message.contains("API key not valid"));
        }
    }

    #[test]
    fn an_account_without_credit_is_a_gateway_error_never_a_rate_limit() {
        for upstream in [402, 403, 429] {
            let exhausted = Exhausted {
                attempts: vec![attempt(
                    0,
                    Failure::new(FailureClass::NoCredit, "insufficient balance")
                        .with_status(upstream),
                )],
                skipped: Vec::new(),
            };
            let e = ApiError::exhausted(&exhausted, "m", |_| "novita/m".into());
            assert_eq!(e.status, StatusCode::BAD_GATEWAY, "{upstream}");
            assert_eq!(e.code, Some("no_credit"));
            assert_eq!(e.retry_after, None);
        }
    }

    #[test]
    fn error_json_has_the_openai_shape() {
        let e = ApiError::invalid_request("bad")
            .param("model")
            .code("missing_model");
        let v: serde_json::Value = serde_json::from_slice(&e.json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"message":"bad","type":"invalid_request_error","param":"model","code":"missing_model"}})
        );
    }
}
