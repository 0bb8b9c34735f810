//! Why a call to an external MCP server failed, in the router's failure classes: the egress's
//! transport errors, the HTTP statuses an MCP endpoint answers with, JSON-RPC errors, and a
//! tool's own `isError` result. Every message is fit for a client: it never holds the server's
//! credential (upstream text is masked before it is kept) nor its URL.

use std::time::Duration;

use aigw_egress::{EgressError, ErrorKind, Headers};
use aigw_router::FailureClass;

/// Upstream text kept in a message at most (an error page is not a message).
const MAX_UPSTREAM_TEXT: usize = 300;

/// A failed exchange with an MCP server, or a tool of it that reported a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFailure {
    pub class: FailureClass,
    pub message: String,
    /// From a 429's `retry-after`.
    pub retry_after: Option<Duration>,
    /// The tool ran and said it failed (`isError: true`): its text is for the caller, and the
    /// server itself is fine.
    pub tool_failed: bool,
}

impl RemoteFailure {
    pub fn new(class: FailureClass, message: impl Into<String>) -> RemoteFailure {
        RemoteFailure {
            class,
            message: message.into(),
            retry_after: None,
            tool_failed: false,
        }
    }

    /// The tool's own failure (`isError: true`): no other server would do better, the caller
    /// (the model) hears the reason.
    pub fn tool(message: impl Into<String>) -> RemoteFailure {
        RemoteFailure {
            tool_failed: true,
            ..RemoteFailure::new(FailureClass::InvalidRequest, message)
        }
    }

    /// A transport failure of the egress.
    pub fn egress(server: &str, error: &EgressError) -> RemoteFailure {
        let class = match error.kind() {
            ErrorKind::Connect => FailureClass::Connect,
            ErrorKind::Timeout => FailureClass::Timeout,
            ErrorKind::BodyBroken => FailureClass::Unavailable,
            ErrorKind::TooLarge => FailureClass::BadResponse,
            // The gateway's own setup or grants: another attempt would fail alike.
            ErrorKind::Denied | ErrorKind::InvalidRequest | ErrorKind::Setup => {
                FailureClass::Unavailable
            }
        };
        RemoteFailure::new(class, format!("MCP server `{server}`: {}", error.message()))
    }

    /// A non-2xx answer that is not a JSON-RPC error the caller handles itself. `body` is
    /// the answer's text, already masked.
    pub fn status(server: &str, status: u16, headers: &Headers, body: &str) -> RemoteFailure {
        let said = excerpt(body);
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        };
        match status {
            401 | 403 => RemoteFailure::new(
                FailureClass::Unauthorized,
                format!(
                    "MCP server `{server}` refused the gateway's credential (HTTP {status}); \
                     check `mcp_servers.{server}.api_key`"
                ),
            ),
            429 => RemoteFailure {
                retry_after: retry_after(headers),
                ..RemoteFailure::new(
                    FailureClass::RateLimited,
                    format!("MCP server `{server}` is rate limiting the gateway (HTTP 429)"),
                )
            },
            500..=599 => RemoteFailure::new(
                FailureClass::Unavailable,
                format!("MCP server `{server}` failed (HTTP {status}){said}"),
            ),
            _ => RemoteFailure::new(
                FailureClass::BadResponse,
                format!("MCP server `{server}` answered HTTP {status}{said}"),
            ),
        }
    }

    /// A JSON-RPC error answer to a request. `message` is already masked.
    pub fn rpc(server: &str, method: &str, code: i64, message: &str) -> RemoteFailure {
        let class = match code {
            // Unknown tool, invalid arguments, an invalid request: the call as it stands.
            -32602 | -32600 => FailureClass::InvalidRequest,
            -32603 => FailureClass::Unavailable,
            _ => FailureClass::BadResponse,
        };
        RemoteFailure::new(
            class,
            format!(
                "MCP server `{server}`: {method} failed ({code}): {}",
                excerpt(message)
            ),
        )
    }

    /// An answer the client could not read as MCP.
    pub fn bad(server: &str, what: impl std::fmt::Display) -> RemoteFailure {
        RemoteFailure::new(
            FailureClass::BadResponse,
            format!("MCP server `{server}`: {what}"),
        )
    }
}

/// `text` with every occurrence of `secret` replaced: upstream text may echo what it was sent.
pub fn masked(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() && text.contains(secret) => text.replace(secret, "***"),
        _ => text.to_owned(),
    }
}

/// At most [`MAX_UPSTREAM_TEXT`] characters of `text`, on one line.
fn excerpt(text: &str) -> String {
    let line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_UPSTREAM_TEXT + 1)
        .collect();
    if line.chars().count() > MAX_UPSTREAM_TEXT {
        let cut: String = line.chars().take(MAX_UPSTREAM_TEXT).collect();
        format!("{cut}…")
    } else {
        line
    }
}

/// A `retry-after` in seconds (the form MCP servers behind common proxies send); an HTTP date
/// is not read.
fn retry_after(headers: &Headers) -> Option<Duration> {
    let value = headers.get("retry-after")?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_classes() {
        let headers = Headers::default();
        for (status, class) in [
            (401, FailureClass::Unauthorized),
            (403, FailureClass::Unauthorized),
            (429, FailureClass::RateLimited),
            (500, FailureClass::Unavailable),
            (503, FailureClass::Unavailable),
            (418, FailureClass::BadResponse),
        ] {
            let failure = RemoteFailure::status("tools", status, &headers, "x");
            assert_eq!(failure.class, class, "{status}");
            assert!(!failure.tool_failed);
        }
    }

    #[test]
    fn rpc_codes_map_to_classes() {
        assert_eq!(
            RemoteFailure::rpc("t", "tools/call", -32602, "unknown tool").class,
            FailureClass::InvalidRequest
        );
        assert_eq!(
            RemoteFailure::rpc("t", "tools/call", -32603, "boom").class,
            FailureClass::Unavailable
        );
        let other = RemoteFailure::rpc("t", "tools/list", -32000, "odd");
        assert_eq!(other.class, FailureClass::BadResponse);
        assert!(other.message.contains("tools/list failed (-32000): odd"));
    }

    #[test]
    fn masking_hides_the_secret_and_excerpts_stay_short() {
        assert_eq!(
            masked("token sk-1 echoed sk-1", Some("sk-1")),
            "token *** echoed ***"
        );
        assert_eq!(masked("nothing", None), "nothing");
        let long = "é\n".repeat(400);
        let failure = RemoteFailure::status("t", 502, &Headers::default(), &long);
        assert!(failure.message.ends_with('…'));
        assert!(!failure.message.contains('\n'));
    }
}
