//! The component boundary: implements the generated `Guest` traits for any [`Provider`] and
//! converts between the generated types and the SDK's plain types. Used by [`crate::export_provider!`].

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::aigw::plugin::types as wit;
use crate::bindings::exports::aigw::plugin::provider as wit_provider;
use crate::types::{
    Chunk, Completion, CredentialPlacement, Descriptor, Failure, Follow, Header, HttpRequest,
    HttpResponse, ResponseHead, Step, StreamEnd, Target, Usage,
};
use crate::{Provider, StreamDecoder};

/// Compiles only for a [`Provider`]; what `export_provider!` checks in native builds.
pub const fn assert_provider<P: Provider>() {}

/// The type the export macro is pointed at for provider `P`.
pub struct Export<P>(PhantomData<P>);

/// The `stream-decoder` resource for provider `P`. The generated trait takes `&self` (a resource
/// may be borrowed more than once), so the decoder's state lives in a `RefCell`.
pub struct DecoderResource<P: Provider>(RefCell<P::StreamDecoder>);

impl<P: Provider> wit_provider::Guest for Export<P> {
    type StreamDecoder = DecoderResource<P>;

    fn describe() -> wit_provider::Descriptor {
        descriptor_to_wit(P::describe())
    }

    fn encode(
        t: wit_provider::Target,
        request_json: String,
    ) -> Result<wit::HttpRequest, wit::Failure> {
        P::encode(&target_from_wit(t), &request_json)
            .map(request_to_wit)
            .map_err(failure_to_wit)
    }

    fn decode(
        t: wit_provider::Target,
        response: wit::HttpResponse,
    ) -> Result<wit_provider::Step, wit::Failure> {
        P::decode(&target_from_wit(t), response_from_wit(response))
            .map(step_to_wit)
            .map_err(failure_to_wit)
    }
}

impl<P: Provider> wit_provider::GuestStreamDecoder for DecoderResource<P> {
    fn new(t: wit_provider::Target, head: wit_provider::ResponseHead) -> Self {
        let head = ResponseHead {
            status: head.status,
            headers: headers_from_wit(head.headers),
        };
        DecoderResource(RefCell::new(P::stream_decoder(target_from_wit(t), head)))
    }

    fn feed(&self, bytes: Vec<u8>) -> Result<Vec<wit_provider::Chunk>, wit::Failure> {
        let mut decoder = self.0.try_borrow_mut().map_err(|_| busy())?;
        decoder
            .feed(&bytes)
            .map(chunks_to_wit)
            .map_err(failure_to_wit)
    }

    fn finish(&self) -> Result<wit_provider::StreamEnd, wit::Failure> {
        let mut decoder = self.0.try_borrow_mut().map_err(|_| busy())?;
        decoder
            .finish()
            .map(|end| match end {
                StreamEnd::Done(chunks) => wit_provider::StreamEnd::Done(chunks_to_wit(chunks)),
                StreamEnd::Follow(follow) => wit_provider::StreamEnd::Follow(follow_to_wit(follow)),
            })
            .map_err(failure_to_wit)
    }
}

/// A re-entrant call cannot happen with a well-behaved host; fail rather than panic if it does.
fn busy() -> wit::Failure {
    wit::Failure::Unavailable("stream decoder called re-entrantly".to_owned())
}

fn target_from_wit(t: wit_provider::Target) -> Target {
    Target {
        base_url: t.base_url,
        model: t.model,
    }
}

fn headers_to_wit(headers: Vec<Header>) -> Vec<wit::Header> {
    headers
        .into_iter()
        .map(|header| wit::Header {
            name: header.name,
            value: header.value,
        })
        .collect()
}

fn request_to_wit(request: HttpRequest) -> wit::HttpRequest {
    wit::HttpRequest {
        method: request.method,
        url: request.url,
        headers: headers_to_wit(request.headers),
        body: request.body,
    }
}

fn headers_from_wit(headers: Vec<wit::Header>) -> Vec<Header> {
    headers
        .into_iter()
        .map(|header| Header {
            name: header.name,
            value: header.value,
        })
        .collect()
}

fn response_from_wit(response: wit::HttpResponse) -> HttpResponse {
    HttpResponse {
        status: response.status,
        headers: headers_from_wit(response.headers),
        body: response.body,
    }
}

fn follow_to_wit(follow: Follow) -> wit_provider::FollowRequest {
    wit_provider::FollowRequest {
        request: request_to_wit(follow.request),
        after_ms: follow.after_ms,
    }
}

fn usage_to_wit(usage: Usage) -> wit::Usage {
    wit::Usage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.total_tokens,
    }
}

fn step_to_wit(step: Step) -> wit_provider::Step {
    match step {
        Step::Done(Completion { json, usage }) => {
            wit_provider::Step::Done(wit_provider::Completion {
                json,
                usage: usage.map(usage_to_wit),
            })
        }
        Step::Follow(follow) => wit_provider::Step::Follow(follow_to_wit(follow)),
    }
}

fn chunks_to_wit(chunks: Vec<Chunk>) -> Vec<wit_provider::Chunk> {
    chunks
        .into_iter()
        .map(|chunk| wit_provider::Chunk {
            json: chunk.json,
            usage: chunk.usage.map(usage_to_wit),
        })
        .collect()
}

pub(crate) fn failure_to_wit(failure: Failure) -> wit::Failure {
    match failure {
        Failure::RateLimited {
            retry_after_seconds,
            message,
        } => wit::Failure::RateLimited(wit::RateLimit {
            retry_after_seconds,
            message,
        }),
        Failure::Unavailable(message) => wit::Failure::Unavailable(message),
        Failure::ContextLengthExceeded(message) => wit::Failure::ContextLengthExceeded(message),
        Failure::InvalidRequest(message) => wit::Failure::InvalidRequest(message),
        Failure::ContentFiltered(message) => wit::Failure::ContentFiltered(message),
        Failure::Unauthorized(message) => wit::Failure::Unauthorized(message),
        Failure::NoCredit(message) => wit::Failure::NoCredit(message),
        Failure::BadResponse(message) => wit::Failure::BadResponse(message),
    }
}

/// A failure the host reported (a refused or failed `outbound.send`), in the SDK's terms.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn failure_from_wit(failure: wit::Failure) -> Failure {
    match failure {
        wit::Failure::RateLimited(wit::RateLimit {
            retry_after_seconds,
            message,
        }) => Failure::RateLimited {
            retry_after_seconds,
            message,
        },
        wit::Failure::Unavailable(message) => Failure::Unavailable(message),
        wit::Failure::ContextLengthExceeded(message) => Failure::ContextLengthExceeded(message),
        wit::Failure::InvalidRequest(message) => Failure::InvalidRequest(message),
        wit::Failure::ContentFiltered(message) => Failure::ContentFiltered(message),
        wit::Failure::Unauthorized(message) => Failure::Unauthorized(message),
        wit::Failure::NoCredit(message) => Failure::NoCredit(message),
        wit::Failure::BadResponse(message) => Failure::BadResponse(message),
    }
}

/// Where the host puts the credential, in WIT terms (providers' and tool upstreams').
pub(crate) fn placement_to_wit(placement: CredentialPlacement) -> wit::CredentialPlacement {
    match placement {
        CredentialPlacement::None => wit::CredentialPlacement::None,
        CredentialPlacement::Header { name, prefix } => {
            wit::CredentialPlacement::Header(wit::HeaderCredential { name, prefix })
        }
        CredentialPlacement::Query(name) => wit::CredentialPlacement::Query(name),
    }
}

fn descriptor_to_wit(descriptor: Descriptor) -> wit_provider::Descriptor {
    wit_provider::Descriptor {
        name: descriptor.name,
        version: descriptor.version,
        default_base_url: descriptor.default_base_url,
        origins: descriptor.origins,
        credential: placement_to_wit(descriptor.credential),
        credential_required: descriptor.credential_required,
        models: descriptor.models,
    }
}
