//! The egress's own error: a kind the caller maps onto its failure classes, and a message that
//! already says what happened (with the client's chain of causes, never a secret).

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
}

impl EgressError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EgressError {
        EgressError {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EgressError {}

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
