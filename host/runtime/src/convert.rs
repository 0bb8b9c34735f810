//! The one place that maps generated WIT types to the host's plain types and back.

use crate::bindings::provider::exports::aigw::plugin::provider as wit_provider;
use crate::bindings::tool::aigw::plugin::memory as wit_memory;
use crate::bindings::tool::exports::aigw::plugin::tool as wit_tool;
use crate::bindings::types as wit;
use std::time::Duration;

use aigw_egress::Placement;

use crate::types::{
    Chunk, Completion, Descriptor, Failure, Follow, HttpRequest, HttpResponse, MemoryEntry,
    MemoryError, MemoryItem, MemorySearchHit, ResponseHead, Step, StreamEnd, ToolDescriptor,
    ToolSpec, ToolTarget, ToolUpstream, Usage,
};

pub(crate) fn request(r: wit::HttpRequest) -> HttpRequest {
    HttpRequest {
        method: r.method,
        url: r.url,
        headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        body: r.body,
    }
}

pub(crate) fn response(r: HttpResponse) -> wit::HttpResponse {
    wit::HttpResponse {
        status: r.status,
        headers: r
            .headers
            .into_iter()
            .map(|(name, value)| wit::Header { name, value })
            .collect(),
        body: r.body,
    }
}

pub(crate) fn failure(f: wit::Failure) -> Failure {
    match f {
        wit::Failure::RateLimited(r) => Failure::RateLimited {
            retry_after_seconds: r.retry_after_seconds,
            message: r.message,
        },
        wit::Failure::Unavailable(m) => Failure::Unavailable(m),
        wit::Failure::ContextLengthExceeded(m) => Failure::ContextLengthExceeded(m),
        wit::Failure::InvalidRequest(m) => Failure::InvalidRequest(m),
        wit::Failure::ContentFiltered(m) => Failure::ContentFiltered(m),
        wit::Failure::Unauthorized(m) => Failure::Unauthorized(m),
        wit::Failure::NoCredit(m) => Failure::NoCredit(m),
        wit::Failure::BadResponse(m) => Failure::BadResponse(m),
    }
}

fn usage(u: wit::Usage) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens,
    }
}

pub(crate) fn step(s: wit_provider::Step) -> Step {
    match s {
        wit_provider::Step::Done(c) => Step::Done(Completion {
            json: c.json,
            usage: c.usage.map(usage),
        }),
        wit_provider::Step::Follow(f) => Step::Follow(follow(f)),
    }
}

fn follow(f: wit_provider::FollowRequest) -> Follow {
    Follow {
        request: request(f.request),
        after: Duration::from_millis(u64::from(f.after_ms)),
    }
}

pub(crate) fn stream_end(e: wit_provider::StreamEnd) -> StreamEnd {
    match e {
        wit_provider::StreamEnd::Done(cs) => StreamEnd::Done(chunks(cs)),
        wit_provider::StreamEnd::Follow(f) => StreamEnd::Follow(follow(f)),
    }
}

pub(crate) fn response_head(h: ResponseHead) -> wit_provider::ResponseHead {
    wit_provider::ResponseHead {
        status: h.status,
        headers: h
            .headers
            .into_iter()
            .map(|(name, value)| wit::Header { name, value })
            .collect(),
    }
}

pub(crate) fn chunks(cs: Vec<wit_provider::Chunk>) -> Vec<Chunk> {
    cs.into_iter()
        .map(|c| Chunk {
            json: c.json,
            usage: c.usage.map(usage),
        })
        .collect()
}

pub(crate) fn descriptor(d: wit_provider::Descriptor) -> Descriptor {
    Descriptor {
        name: d.name,
        version: d.version,
        default_base_url: d.default_base_url,
        origins: d.origins,
        credential: placement(d.credential),
        credential_required: d.credential_required,
        models: d.models,
    }
}

/// Where a credential goes, as the host's egress takes it.
fn placement(p: wit::CredentialPlacement) -> Placement {
    match p {
        wit::CredentialPlacement::None => Placement::None,
        wit::CredentialPlacement::Header(h) => Placement::Header {
            name: h.name,
            prefix: h.prefix,
        },
        wit::CredentialPlacement::Query(q) => Placement::Query(q),
    }
}

pub(crate) fn target(base_url: &str, model: &str) -> wit_provider::Target {
    wit_provider::Target {
        base_url: base_url.to_owned(),
        model: model.to_owned(),
    }
}

pub(crate) fn tool_descriptor(d: wit_tool::Descriptor) -> ToolDescriptor {
    ToolDescriptor {
        name: d.name,
        version: d.version,
        tools: d
            .tools
            .into_iter()
            .map(|s| ToolSpec {
                name: s.name,
                title: s.title,
                description: s.description,
                parameters_schema: s.parameters_schema,
                output_schema: s.output_schema,
                cache_ttl: Duration::from_secs(u64::from(s.cache_ttl_seconds)),
            })
            .collect(),
        upstreams: d
            .upstreams
            .into_iter()
            .map(|u| ToolUpstream {
                name: u.name,
                endpoints: u.endpoints.into_iter().map(|e| (e.name, e.url)).collect(),
                credential: placement(u.credential),
                credential_required: u.credential_required,
            })
            .collect(),
    }
}

pub(crate) fn tool_target(t: &ToolTarget) -> wit_tool::Target {
    wit_tool::Target {
        upstream: t.upstream.clone(),
        endpoints: t
            .endpoints
            .iter()
            .map(|(name, url)| wit::NamedUrl {
                name: name.clone(),
                url: url.clone(),
            })
            .collect(),
    }
}

pub(crate) fn to_wit_entry(e: MemoryEntry) -> wit_memory::Entry {
    wit_memory::Entry {
        path: e.path,
        key: e.key,
        value_json: e.value_json,
        version: e.version,
        created_at_ms: e.created_at_ms,
        updated_at_ms: e.updated_at_ms,
        expires_at_ms: e.expires_at_ms,
        agent: e.agent,
    }
}

pub(crate) fn to_wit_hit(h: MemorySearchHit) -> wit_memory::SearchHit {
    wit_memory::SearchHit {
        entry: to_wit_entry(h.entry),
        score: h.score,
    }
}

pub(crate) fn to_wit_item(i: MemoryItem) -> wit_memory::Item {
    wit_memory::Item {
        id: i.id,
        item_json: i.item_json,
        agent: i.agent,
    }
}

pub(crate) fn to_wit_memory_error(e: MemoryError) -> wit_memory::MemoryError {
    use wit_memory::MemoryError as Wit;
    match e {
        MemoryError::NotFound => Wit::NotFound,
        MemoryError::Conflict { current } => Wit::Conflict(current),
        MemoryError::TooLarge(m) => Wit::TooLarge(m),
        MemoryError::Quota(m) => Wit::Quota(m),
        MemoryError::Invalid(m) => Wit::Invalid(m),
        MemoryError::Unavailable(m) => Wit::Unavailable(m),
    }
}

/// A tool plugin's outbound request, as the egress takes it.
pub(crate) fn egress_request(r: wit::HttpRequest) -> aigw_egress::Request {
    aigw_egress::Request {
        method: r.method,
        url: r.url,
        headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        body: r.body,
    }
}

/// An egress answer, its body read, as a tool plugin receives it.
pub(crate) fn egress_response(
    status: u16,
    headers: &aigw_egress::Headers,
    body: Vec<u8>,
) -> wit::HttpResponse {
    wit::HttpResponse {
        status,
        headers: headers
            .iter()
            .map(|(name, value)| wit::Header {
                name: name.to_owned(),
                value: value.into_owned(),
            })
            .collect(),
        body,
    }
}
