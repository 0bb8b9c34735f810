//! A test-only provider plugin that misbehaves on demand, to prove the host's sandbox: the target's
//! model picks the behaviour (the scripted-fake pattern), so a test needs no special host hooks.
//!
//! `encode`: `trap` panics, `loop` spins forever (the host's epoch deadline must stop it),
//! `memory` allocates until the host's memory cap stops it; any other model (`ok`) encodes like
//! the openai-compatible plugin. `decode` and the stream decoder behave like openai-compatible,
//! except that model `trap-decode` panics in `decode` and model `trap-stream` panics on the first
//! `feed`.

use aigw_plugin_sdk::openai::{ChunkStream, Compatible, Dialect};
use aigw_plugin_sdk::{
    Chunk, CredentialPlacement, Descriptor, Failure, HttpRequest, HttpResponse, Provider, Step,
    StreamDecoder, Target,
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
            credential: CredentialPlacement::None,
            credential_required: false,
            models: ["ok", "trap", "loop", "memory", "trap-decode", "trap-stream"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

/// How much `memory` allocates before giving up; far above any sane per-instance cap.
const MEMORY_GOAL_BYTES: usize = 2 << 30;
const MEMORY_STEP_BYTES: usize = 1 << 20;

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
            _ => Compatible::<Plain>::encode(target, request_json),
        }
    }

    #[allow(clippy::panic)]
    fn decode(target: &Target, response: HttpResponse) -> Result<Step, Failure> {
        if target.model == "trap-decode" {
            panic!("hostile plugin: trap in decode requested by the target's model");
        }
        Compatible::<Plain>::decode(target, response)
    }

    fn stream_decoder(target: Target) -> HostileStream {
        HostileStream {
            trap_on_feed: target.model == "trap-stream",
            inner: ChunkStream::new(),
        }
    }
}

pub struct HostileStream {
    trap_on_feed: bool,
    inner: ChunkStream<Plain>,
}

impl StreamDecoder for HostileStream {
    #[allow(clippy::panic)]
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, Failure> {
        if self.trap_on_feed {
            panic!("hostile plugin: trap in the stream decoder requested by the target's model");
        }
        self.inner.feed(bytes)
    }

    fn finish(&mut self) -> Result<Vec<Chunk>, Failure> {
        self.inner.finish()
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
