//! Plain Rust mirrors of the WIT records, so SDK helpers and plugin logic never touch generated
//! bindings and can be tested natively. `export.rs` converts them at the component boundary.

/// One HTTP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The first value of header `name`, compared case-insensitively (HTTP header names are).
pub fn header_value<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case(name))
        .map(|header| header.value.as_str())
}

/// An upstream request for the host to send. The host adds the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// What the upstream answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

/// Why a call failed; see the `failure` variant in `wit/types.wit` for what the host does with
/// each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    RateLimited {
        retry_after_seconds: Option<u32>,
        message: String,
    },
    Unavailable(String),
    ContextLengthExceeded(String),
    InvalidRequest(String),
    ContentFiltered(String),
    /// The credential was rejected or is missing: the operator must fix the key.
    Unauthorized(String),
    /// The account has no credit or quota left (402, OpenAI's 429 `insufficient_quota`,
    /// Novita's 403 `NOT_ENOUGH_BALANCE`): waiting does not cure it, the operator must top up.
    NoCredit(String),
    BadResponse(String),
}

impl Failure {
    /// The human-readable reason, whatever the class.
    pub fn message(&self) -> &str {
        match self {
            Failure::RateLimited { message, .. } => message,
            Failure::Unavailable(message)
            | Failure::ContextLengthExceeded(message)
            | Failure::InvalidRequest(message)
            | Failure::ContentFiltered(message)
            | Failure::Unauthorized(message)
            | Failure::NoCredit(message)
            | Failure::BadResponse(message) => message,
        }
    }
}

/// Token counts in OpenAI's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    /// Usage from an upstream's token counts, whatever it calls them: `None` when it gave
    /// neither a prompt nor a completion count; a missing count is 0, a missing total is the
    /// sum; counts beyond `u32` saturate.
    pub fn from_counts(
        prompt: Option<u64>,
        completion: Option<u64>,
        total: Option<u64>,
    ) -> Option<Usage> {
        let clamp = |count: u64| u32::try_from(count).unwrap_or(u32::MAX);
        if prompt.is_none() && completion.is_none() {
            return None;
        }
        let prompt_tokens = prompt.map_or(0, clamp);
        let completion_tokens = completion.map_or(0, clamp);
        Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: total
                .map_or_else(|| prompt_tokens.saturating_add(completion_tokens), clamp),
        })
    }
}

/// The upstream a call goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub base_url: String,
    pub model: String,
}

/// A complete, non-streamed answer in OpenAI `chat.completion` JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub json: String,
    pub usage: Option<Usage>,
}

/// A request the host sends on the plugin's behalf after a delay: the next poll of a job, or the
/// stream an answer continues in. The host stops following at the attempt's deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    pub request: HttpRequest,
    /// How long the host waits before sending `request`, in milliseconds.
    pub after_ms: u32,
}

impl Follow {
    /// Send `request` at once (a multi-step API, a stream URL).
    pub fn now(request: HttpRequest) -> Self {
        Follow {
            request,
            after_ms: 0,
        }
    }

    /// Send `request` after `delay` (a poll); delays beyond `u32::MAX` ms saturate.
    pub fn after(request: HttpRequest, delay: std::time::Duration) -> Self {
        Follow {
            request,
            after_ms: u32::try_from(delay.as_millis()).unwrap_or(u32::MAX),
        }
    }
}

/// What `decode` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The answer is complete.
    Done(Completion),
    /// Send this request (after its delay) and pass its response to `decode` again.
    Follow(Follow),
}

/// The status and headers of the 2xx response a stream decoder is made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<Header>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// Whether the response says its body is JSON (`application/json`, `…+json`), not an event
    /// stream: a server that ignored `stream: true`, or an API that streams over a second request.
    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|value| {
            let media = value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            media == "application/json" || media.ends_with("+json")
        })
    }
}

/// How a streamed body ended, as [`crate::StreamDecoder::finish`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The answer is complete: the last chunks.
    Done(Vec<Chunk>),
    /// The answer continues in the response to this request: the host feeds its 2xx body to the
    /// same decoder and calls `finish` again; a non-2xx answer goes to `decode`.
    Follow(Follow),
}

/// One OpenAI `chat.completion.chunk` JSON; `usage` is set only on the final `choices: []` usage
/// chunk, which the host forwards only to clients that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub json: String,
    pub usage: Option<Usage>,
}

/// Where the host puts the operator's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialPlacement {
    None,
    Header { name: String, prefix: String },
    Query(String),
}

impl CredentialPlacement {
    /// `Authorization: Bearer <key>`, what nearly every OpenAI-compatible API wants.
    pub fn bearer() -> Self {
        CredentialPlacement::Header {
            name: "authorization".to_owned(),
            prefix: "Bearer ".to_owned(),
        }
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub name: String,
    pub version: String,
    pub default_base_url: String,
    /// Other origins (`scheme://host[:port]`) this provider's own requests go to besides the
    /// default base URL's (Replicate's `https://stream.replicate.com`). The host sends the
    /// credential there only while the operator keeps the default base URL.
    pub origins: Vec<String>,
    pub credential: CredentialPlacement,
    pub credential_required: bool,
    pub models: Vec<String>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn follow_delays_are_milliseconds_and_saturate() {
        assert_eq!(Follow::now(get("http://x/1")).after_ms, 0);
        let follow = Follow::after(get("http://x/1"), Duration::from_millis(1_500));
        assert_eq!(follow.after_ms, 1_500);
        assert_eq!(follow.request.url, "http://x/1");
        let forever = Follow::after(get("http://x/1"), Duration::from_secs(u64::MAX));
        assert_eq!(forever.after_ms, u32::MAX);
    }

    #[test]
    fn a_head_is_json_by_its_media_type_only() {
        let head = |value: &str| ResponseHead {
            status: 200,
            headers: vec![Header::new("Content-Type", value)],
        };
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
        ] {
            assert!(head(json).is_json(), "{json}");
        }
        for other in ["text/event-stream", "text/plain", "application/jsonl", ""] {
            assert!(!head(other).is_json(), "{other}");
        }
        let none = ResponseHead {
            status: 200,
            headers: Vec::new(),
        };
        assert!(!none.is_json());
    }

    #[test]
    fn no_credit_has_its_message() {
        assert_eq!(Failure::NoCredit("top up".to_owned()).message(), "top up");
    }
}
