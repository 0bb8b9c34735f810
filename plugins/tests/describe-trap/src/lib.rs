//! A test-only provider plugin whose `describe` panics: a component that is a well-formed
//! provider plugin by its exports (inspect accepts it) and fails at load, when the host asks it
//! to describe itself. The host must refuse it with the trap's message and keep running. Every
//! other call is refused (`invalid-request`); the host never gets that far.

use aigw_plugin_sdk::{
    Chunk, Descriptor, Failure, HttpRequest, HttpResponse, Provider, ResponseHead, Step,
    StreamDecoder, StreamEnd, Target,
};

pub struct DescribeTrap;

aigw_plugin_sdk::export_provider!(DescribeTrap);

/// What the panic says, so a test can find it in the load error.
pub const PANIC_MESSAGE: &str = "describe-trap: this plugin cannot describe itself";

impl Provider for DescribeTrap {
    type StreamDecoder = Refused;

    fn describe() -> Descriptor {
        panic!("{PANIC_MESSAGE}");
    }

    fn encode(_target: &Target, _request_json: &str) -> Result<HttpRequest, Failure> {
        Err(refused())
    }

    fn decode(_target: &Target, _response: HttpResponse) -> Result<Step, Failure> {
        Err(refused())
    }

    fn stream_decoder(_target: Target, _head: ResponseHead) -> Refused {
        Refused
    }
}

pub struct Refused;

impl StreamDecoder for Refused {
    fn feed(&mut self, _bytes: &[u8]) -> Result<Vec<Chunk>, Failure> {
        Err(refused())
    }

    fn finish(&mut self) -> Result<StreamEnd, Failure> {
        Err(refused())
    }
}

fn refused() -> Failure {
    Failure::InvalidRequest("describe-trap serves no calls".to_owned())
}
