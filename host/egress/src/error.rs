//! The egress's own error: a kind the caller maps onto its failure classes, a message that
//! already says what happened (with the client's chain of causes, never a secret, never the
//! upstream's URL or host: it is relayed to clients, to whom an internal address is none of their
//! business), and, for transport failures, the detail an operator needs (the URL included) for
//! the logs.

use std::fmt;

/// What went wrong, coarse enough that a caller can map it without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request's origin is not in the caller's grants. Nothing was sent.
    Denied,
    /// The caller's request was malformed (method, URL or a header). Nothing was sent.
    InvalidRequest,
    /// The egress, a credential or an origin could not be built from its configuration; or a
    /// send asked for a connect timeout the egress was not built with. Nothing was sent.
    Setup,
    /// No connection, or it failed before the answer's status line and headers arrived.
    Connect,
    /// The exchange's time limit (connect or whole) ran out.
    Timeout,
    /// The answer's status and headers arrived, then its body broke off.
    BodyBroken,
    /// The answer's body is larger than the caller said it would read.
    TooLarge,
}

/// An egress failure. `Display` prints the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressError {
    kind: ErrorKind,
    message: String,
    detail: Option<String>,
}

impl EgressError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EgressError {
        EgressError {
            kind,
            message: message.into(),
            detail: None,
        }
    }

    /// Adds what only the logs may show (the upstream's URL, say).
    pub fn with_detail(mut self, detail: impl Into<String>) -> EgressError {
        self.detail = Some(detail.into());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What happened, fit for the client: no secret, no upstream URL or host.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What happened, for the operator's logs: the message with the upstream's URL (never a
    /// secret), or the message alone when there is nothing more to say.
    pub fn detail(&self) -> &str {
        self.detail.as_deref().unwrap_or(&self.message)
    }
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EgressError {}

/// `text` with every mention of `host` replaced by "the upstream": a cause deep in the chain
/// (a TLS name mismatch, say) may name the host the client must not learn.
pub(crate) fn without_host(text: String, host: Option<&str>) -> String {
    match host {
        Some(host) if !host.is_empty() && text.contains(host) => text.replace(host, "the upstream"),
        _ => text,
    }
}

/// An error and its causes on one line: the HTTP client's top-level message alone ("error
/// sending request") rarely says why.
pub(crate) fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
