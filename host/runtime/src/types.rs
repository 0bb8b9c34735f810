//! Plain Rust mirrors of the WIT types the rest of the host works with. The generated bindings
//! stay inside this crate; [`crate::convert`] is the one place that maps between the two.

/// An HTTP request a plugin asks the host to send upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the upstream answered, handed back to the plugin to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Token counts in OpenAI's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// Why the plugin says an upstream call failed (the WIT `failure` variant).
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
    Unauthorized(String),
    NoCredit(String),
    BadResponse(String),
}

impl Failure {
    /// The upstream's own words, whatever the class.
    pub fn message(&self) -> &str {
        match self {
            Failure::RateLimited { message, .. }
            | Failure::Unavailable(message)
            | Failure::ContextLengthExceeded(message)
            | Failure::InvalidRequest(message)
            | Failure::ContentFiltered(message)
            | Failure::Unauthorized(message)
            | Failure::NoCredit(message)
            | Failure::BadResponse(message) => message,
        }
    }
}

/// A complete OpenAI `chat.completion` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub json: String,
    pub usage: Option<Usage>,
}

/// What `decode` asks for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Done(Completion),
    /// Send this request and decode its response (polling, multi-step APIs).
    Follow(Follow),
}

/// A request the plugin asks the host to send next, after a pause (a poll interval). The host
/// stops following at the attempt's deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    pub request: HttpRequest,
    pub after: std::time::Duration,
}

/// The status and headers of a streamed response, given to its decoder when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// How a streamed body ended, as the decoder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The stream is complete: these are its last chunks.
    Done(Vec<Chunk>),
    /// The stream goes on in the body of another request (Replicate's `urls.stream`): send it
    /// after the pause and feed its body to the same decoder.
    Follow(Follow),
}

/// One OpenAI `chat.completion.chunk`; `usage` is set on the final usage chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub json: String,
    pub usage: Option<Usage>,
}

/// What a provider plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub name: String,
    pub version: String,
    pub default_base_url: String,
    /// Other origins of the provider (besides the default base URL's) its requests go to.
    pub origins: Vec<String>,
    /// Where the host puts the operator's credential: the egress's own shape, since the egress
    /// is what places it.
    pub credential: aigw_egress::Placement,
    pub credential_required: bool,
    pub models: Vec<String>,
}

/// One tool a tool plugin offers agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters_schema: String,
}

/// One message of a memory session's history (the WIT `memory.message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryMessage {
    pub role: String,
    pub content: String,
    pub agent: Option<String>,
}
