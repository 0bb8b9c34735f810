//! Why a tool call was not answered, and how each reason reaches a client: the OpenAI error
//! shape with its status (REST and the chat loop), or the same message as an MCP tool error.

use std::time::Duration;

use aigw_router::FailureClass;
use http::StatusCode;

use crate::error::ApiError;

/// Why a tool call was not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// No tool of this name (or none the caller may see).
    NotFound(String),
    /// The tool exists; the caller's key is not granted it.
    NotGranted(String),
    /// The arguments do not fit the tool's schema: the field at fault (dotted) and why.
    InvalidArguments { field: String, message: String },
    /// The key's tool quota is spent (aigw's own limit, not an upstream's).
    Limited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Every upstream tried failed; the decisive failure's class and reason.
    Failed {
        class: FailureClass,
        message: String,
    },
    /// No upstream could be tried (none configured with a key, all cooling or broken), or the
    /// gateway could not take the call.
    Unavailable(String),
}

impl ToolError {
    /// The message a caller hears.
    pub fn message(&self) -> &str {
        match self {
            ToolError::NotFound(m)
            | ToolError::NotGranted(m)
            | ToolError::Unavailable(m)
            | ToolError::InvalidArguments { message: m, .. }
            | ToolError::Limited { message: m, .. }
            | ToolError::Failed { message: m, .. } => m,
        }
    }

    /// A short name for logs: `not_found`, `not_granted`, `invalid_arguments`, `limited`,
    /// the failure class, `unavailable`.
    pub fn outcome(&self) -> &'static str {
        match self {
            ToolError::NotFound(_) => "not_found",
            ToolError::NotGranted(_) => "not_granted",
            ToolError::InvalidArguments { .. } => "invalid_arguments",
            ToolError::Limited { .. } => "limited",
            ToolError::Failed { class, .. } => class.as_str(),
            ToolError::Unavailable(_) => "unavailable",
        }
    }

    /// The error in the OpenAI shape, with its status: 404 `tool_not_found`, 403
    /// `tool_not_allowed`, 400 `invalid_tool_arguments` (`param`: the field), 429
    /// `rate_limit_exceeded` with `retry-after`, an upstream failure's 4xx/502/503/504 by its
    /// class, 503 `tool_unavailable`.
    pub fn api(&self) -> ApiError {
        match self {
            ToolError::NotFound(m) => {
                ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", m.clone())
                    .code("tool_not_found")
            }
            ToolError::NotGranted(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "invalid_request_error", m.clone())
                    .code("tool_not_allowed")
            }
            ToolError::InvalidArguments { field, message } => {
                let error =
                    ApiError::invalid_request(message.clone()).code("invalid_tool_arguments");
                if field.is_empty() {
                    error.param("arguments")
                } else {
                    error.param(field.clone())
                }
            }
            ToolError::Limited {
                message,
                retry_after,
            } => {
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    message.clone(),
                )
                .code("rate_limit_exceeded");
                if let Some(wait) = retry_after {
                    error.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
                    error.retry_after_ms =
                        Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                }
                error
            }
            ToolError::Failed { class, message } => ApiError::failed(*class, message.clone()),
            ToolError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "upstream_error", m.clone())
                    .code("tool_unavailable")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_status_and_code() {
        let cases = [
            (ToolError::NotFound("x".into()), 404, "tool_not_found"),
            (ToolError::NotGranted("x".into()), 403, "tool_not_allowed"),
            (
                ToolError::InvalidArguments {
                    field: "city".into(),
                    message: "x".into(),
                },
                400,
                "invalid_tool_arguments",
            ),
            (
                ToolError::Limited {
                    message: "x".into(),
                    retry_after: Some(Duration::from_millis(1500)),
                },
                429,
                "rate_limit_exceeded",
            ),
            (
                ToolError::Failed {
                    class: FailureClass::Timeout,
                    message: "x".into(),
                },
                504,
                "timeout",
            ),
            (
                ToolError::Failed {
                    class: FailureClass::Unauthorized,
                    message: "x".into(),
                },
                502,
                "unauthorized",
            ),
            (
                ToolError::Failed {
                    class: FailureClass::InvalidRequest,
                    message: "x".into(),
                },
                400,
                "invalid_request",
            ),
            (ToolError::Unavailable("x".into()), 503, "tool_unavailable"),
        ];
        for (error, status, code) in cases {
            let api = error.api();
            assert_eq!(api.status.as_u16(), status, "{error:?}");
            assert_eq!(api.code, Some(code), "{error:?}");
        }
        let limited = ToolError::Limited {
            message: "x".into(),
            retry_after: Some(Duration::from_millis(1500)),
        }
        .api();
        assert_eq!(
            (limited.retry_after, limited.retry_after_ms),
            (Some(2), Some(1500))
        );
        let invalid = ToolError::InvalidArguments {
            field: "at.lat".into(),
            message: "x".into(),
        }
        .api();
        assert_eq!(invalid.param.as_deref(), Some("at.lat"));
    }
}
