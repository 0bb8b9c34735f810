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
    /// 1-64 characters of `a-z A-Z 0-9 _ -`.
    pub name: String,
    pub title: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters_schema: String,
    /// JSON Schema of the result, when results have one shape.
    pub output_schema: Option<String>,
    /// How long a result stays fresh by the plugin's word (zero: never cached).
    pub cache_ttl: std::time::Duration,
}

/// An upstream API a tool plugin's tools call (the WIT `tool.upstream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolUpstream {
    pub name: String,
    /// Endpoint name → default URL, in the plugin's order.
    pub endpoints: Vec<(String, String)>,
    pub credential: aigw_egress::Placement,
    pub credential_required: bool,
}

/// What a tool plugin says of itself at load (the WIT `tool.descriptor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDescriptor {
    pub name: String,
    pub version: String,
    pub tools: Vec<ToolSpec>,
    /// In the plugin's order of preference; empty: its tools reach no network.
    pub upstreams: Vec<ToolUpstream>,
}

/// The upstream one tool call is for, with its endpoints' URLs as configured (the WIT
/// `tool.target`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolTarget {
    pub upstream: String,
    /// Endpoint name → URL, each endpoint of the upstream in the descriptor's order.
    pub endpoints: Vec<(String, String)>,
}

/// A key-value entry of the memory (the WIT `memory.entry`): a JSON object under a path of
/// labels and a key, in the call's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryEntry {
    pub path: Vec<String>,
    pub key: String,
    /// A JSON object, as text.
    pub value_json: String,
    /// 1 when created, one more with each put.
    pub version: u64,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// When the entry expires; `None`: never.
    pub expires_at_ms: Option<u64>,
    /// Who wrote it last (`plugin:<name>` for a plugin's writes).
    pub agent: Option<String>,
}

/// What a plugin asks `put` to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPut {
    pub path: Vec<String>,
    pub key: String,
    pub value_json: String,
    /// Forget the entry this long after the put; `None`: keep it.
    pub ttl: Option<std::time::Duration>,
    /// Compare-and-set: store only if the current version is this one (`Some(0)`: only if the
    /// entry does not exist).
    pub if_version: Option<u64>,
}

/// What a plugin asks `search` for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySearch {
    /// Entries whose path starts with these labels (empty: all).
    pub path_prefix: Vec<String>,
    /// A full-text query over the values' text.
    pub query: Option<String>,
    /// A JSON object of fields the value must match (LangGraph's filter).
    pub filter_json: Option<String>,
    /// At most this many hits (at least 1: the runtime answers a limit of 0 itself).
    pub limit: u32,
}

/// One entry `search` found (the WIT `memory.search-hit`).
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySearchHit {
    pub entry: MemoryEntry,
    /// Full-text relevance, higher is better; `None` without a query.
    pub score: Option<f64>,
}

/// One item of a conversation (the WIT `memory.item`): a Responses item as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryItem {
    pub id: String,
    /// The item, its `id` included.
    pub item_json: String,
    pub agent: Option<String>,
}

/// Why a memory operation did nothing (the WIT `memory.memory-error`); the messages are the
/// plugin's to read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The conversation is not in the call's namespace.
    #[error("not found")]
    NotFound,
    /// A compare-and-set found another version: the current one (0: no entry).
    #[error("version conflict: the current version is {current}")]
    Conflict { current: u64 },
    #[error("{0}")]
    TooLarge(String),
    /// The plugin's quota in the namespace, or its operations in the call, are used up.
    #[error("{0}")]
    Quota(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}
