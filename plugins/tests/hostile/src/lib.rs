//! A test-only provider plugin that misbehaves on demand, to prove the host's sandbox: the target's
//! model picks the behaviour (the scripted-fake pattern), so a test needs no special host hooks.
//!
//! `encode`: `trap` panics, `loop` spins forever (the host's epoch deadline must stop it),
//! `memory` allocates until the host's memory cap stops it; any other model (`ok`) encodes like
//! the openai-compatible plugin. `decode` and the stream decoder behave like openai-compatible,
//! except that model `trap-decode` panics in `decode`, model `trap-stream` panics on the first
//! `feed`, model `loop-stream` spins in its first `feed`, model `elsewhere` sends the request to the URL in the request's `user` field (an
//! origin its provider was not granted), and the models `follow-forever` (`decode`) and `stream-follow-forever` (the stream
//! decoder's `finish`) never finish: they follow `GET {base}/models` every
//! [`FOREVER_FOLLOW_MS`], so only the host's attempt deadline ends the call.

use std::time::Duration;

use aigw_plugin_sdk::openai::{ChunkStream, Compatible, Dialect, join_url};
use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Descriptor, Failure, Follow, HttpRequest, HttpResponse, Provider,
    ResponseHead, Step, StreamDecoder, StreamEnd, Target,
};

pub struct Hostile;

aigw_plugin_sdk::export_provider!(Hostile);

/// The well-behaved half: plain OpenAI-compatible translation.
struct Plain;

impl Dialect for Plain {
    fn describe() -> Descriptor {
        Descriptor {
            name: "hostile".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            default_base_url: "http://127.0.0.1:8000/v1".to_owned(),
            origins: Vec::new(),
            credential: CredentialPlacement::None,
            credential_required: false,
            models: [
                "ok",
                "trap",
                "loop",
                "memory",
                "trap-decode",
                "trap-stream",
                "loop-stream",
                "follow-forever",
                "elsewhere",
                "stream-follow-forever",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

/// How much `memory` allocates before giving up; far above any sane per-instance cap.
const MEMORY_GOAL_BYTES: usize = 2 << 30;
const MEMORY_STEP_BYTES: usize = 1 << 20;

/// The delay of each endless follow: short enough to pile up requests against a host that
/// ignores its deadline, long enough not to flood the test's mock.
pub const FOREVER_FOLLOW_MS: u64 = 20;

/// `GET {base}/models` after [`FOREVER_FOLLOW_MS`]: a request every OpenAI-style mock answers.
fn forever_follow(target: &Target) -> Follow {
    Follow::after(
        HttpRequest {
            method: "GET".to_owned(),
            url: join_url(&target.base_url, "models"),
            headers: Vec::new(),
            body: Vec::new(),
        },
        Duration::from_millis(FOREVER_FOLLOW_MS),
    )
}

/// The request as the openai-compatible plugin would send it, but to the URL the client put in
/// its `user` field: a plugin trying to reach an origin its provider was not granted.
fn send_elsewhere(target: &Target, request_json: &str) -> Result<HttpRequest, Failure> {
    let mut request = Compatible::<Plain>::encode(target, request_json)?;
    let body: serde_json::Value = serde_json::from_str(request_json)
        .map_err(|e| Failure::InvalidRequest(format!("not JSON: {e}")))?;
    let Some(url) = body.get("user").and_then(serde_json::Value::as_str) else {
        return Err(Failure::InvalidRequest(
            "model `elsewhere` needs the URL to send to in `user`".to_owned(),
        ));
    };
    request.url = url.to_owned();
    Ok(request)
}

impl Provider for Hostile {
    type StreamDecoder = HostileStream;

    fn describe() -> Descriptor {
        Plain::describe()
    }

    #[allow(clippy::panic)]
    fn encode(target: &Target, request_json: &str) -> Result<HttpRequest, Failure> {
        match target.model.as_str() {
            "trap" => panic!("hostile plugin: trap requested by the target's model"),
            "loop" => spin_forever(),
            "memory" => exhaust_memory(),
            "elsewhere" => send_elsewhere(target, request_json),
            _ => Compatible::<Plain>::encode(target, request_json),
        }
    }

    #[allow(clippy::panic)]
    fn decode(target: &Target, response: HttpResponse) -> Result<Step, Failure> {
        if target.model == "trap-decode" {
            panic!("hostile plugin: trap in decode requested by the target's model");
        }
        if target.model == "follow-forever" {
            return Ok(Step::Follow(forever_follow(target)));
        }
        Compatible::<Plain>::decode(target, response)
    }

    fn stream_decoder(target: Target, head: ResponseHead) -> HostileStream {
        HostileStream {
            trap_on_feed: target.model == "trap-stream",
            loop_on_feed: target.model == "loop-stream",
            follow_forever: (target.model == "stream-follow-forever").then(|| target.clone()),
            inner: ChunkStream::new(&head),
        }
    }
}

pub struct HostileStream {
    trap_on_feed: bool,
    /// `loop-stream`: the first `feed` never returns (only the host's deadline ends it).
    loop_on_feed: bool,
    /// The target to follow forever from, for `stream-follow-forever`.
    follow_forever: Option<Target>,
    inner: ChunkStream<Plain>,
}

impl StreamDecoder for HostileStream {
    #[allow(clippy::panic)]
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, Failure> {
        if self.trap_on_feed {
            panic!("hostile plugin: trap in the stream decoder requested by the target's model");
        }
        if self.loop_on_feed {
            spin_forever();
        }
        if self.follow_forever.is_some() {
            // Whatever the bodies say, the answer never ends.
            return Ok(Vec::new());
        }
        self.inner.feed(bytes)
    }

    fn finish(&mut self) -> Result<StreamEnd, Failure> {
        match &self.follow_forever {
            Some(target) => Ok(StreamEnd::Follow(forever_follow(target))),
            None => self.inner.finish(),
        }
    }
}

/// Loops forever; `black_box` keeps the optimiser from proving the loop has no effect (an
/// effect-free infinite loop is undefined behaviour in LLVM and may be deleted).
fn spin_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Allocates and touches memory 1 MiB at a time until the host's cap traps the instance. Filling
/// each block (rather than only reserving it) makes the pages real; `black_box` keeps the blocks
/// from being optimised away.
fn exhaust_memory() -> Result<HttpRequest, Failure> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    while blocks.len() * MEMORY_STEP_BYTES < MEMORY_GOAL_BYTES {
        let fill = u8::try_from(blocks.len() % 251)
            .unwrap_or(1)
            .wrapping_add(1);
        blocks.push(std::hint::black_box(vec![fill; MEMORY_STEP_BYTES]));
    }
    let total: usize = std::hint::black_box(&blocks).iter().map(Vec::len).sum();
    Err(Failure::Unavailable(format!(
        "hostile plugin: allocated {total} bytes and the host did not stop it"
    )))
}

#[cfg(test)]
mod tests;
