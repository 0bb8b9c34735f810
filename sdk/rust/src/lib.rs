//! The Rust SDK for aigw plugins: provider plugins and tool plugins.
//!
//! A provider plugin is a WebAssembly component (WASI preview 2) exporting the `provider-plugin`
//! world of `wit/worlds.wit` (the contract itself is `wit/provider.wit` and `wit/types.wit`).
//! This crate owns the wit-bindgen bindings for that world, so a plugin implements the
//! plain-Rust [`Provider`] trait (or just an [`openai::Dialect`]) and calls [`export_provider!`];
//! it never sees generated code.
//!
//! The helpers are independent of the bindings and unit-testable natively:
//! - [`sse`]: an incremental Server-Sent Events parser;
//! - [`openai`]: the OpenAI chat-completions translator most providers reuse;
//! - [`failure`]: classification of upstream errors into [`Failure`]s.
//!
//! A tool plugin exports the `tool-plugin` world (`wit/tool.wit`): it implements [`tool::Tool`]
//! and calls [`export_tool!`]. It reaches its upstreams through [`http`] (the host's `outbound`
//! import), builds URLs with [`query`], describes its arguments with [`schema`], reads them with
//! [`args`] and classifies its upstreams' answers with [`answer`]. It reads and writes the
//! gateway's shared memory (entries and conversations of the caller's namespace) with
//! [`memory`].

pub mod answer;
pub mod args;
pub mod failure;
pub mod http;
pub mod json;
pub mod log;
pub mod memory;
pub mod openai;
pub mod query;
mod raw;
pub mod schema;
pub mod sse;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tool;
pub mod types;

#[doc(hidden)]
pub mod export;
#[doc(hidden)]
pub mod tool_export;

pub use tool::{NamedUrl, Tool, ToolDescriptor, ToolSpec, ToolTarget, Upstream};
pub use types::{
    Chunk, Completion, CredentialPlacement, Descriptor, Failure, Follow, Header, HttpRequest,
    HttpResponse, ResponseHead, Step, StreamEnd, Target, Usage,
};

/// The generated bindings of the `provider-plugin` world. Only `export.rs` and `log.rs` use
/// them; plugins should not.
#[doc(hidden)]
#[allow(unsafe_code)] // wit-bindgen's canonical-ABI glue is unsafe by nature
pub mod bindings {
    wit_bindgen::generate!({
        world: "provider-plugin",
        path: "../../wit",
        // The plugin crate invokes the export macro (through `export_provider!`), so it must be
        // public and must find the bindings in this crate.
        pub_export_macro: true,
        export_macro_name: "export_provider_bindings",
        default_bindings_module: "::aigw_plugin_sdk::bindings",
    });
}

/// The generated bindings of the `tool-plugin` world. `types` and `log` are the provider
/// bindings' own (`with`), so one `Failure` conversion serves both worlds. Only `tool_export.rs`
/// and `http.rs` use them.
///
/// Two worlds in one crate work because of `pub_export_macro`: the custom section this module
/// leaves in every plugin describes only the world's imports (which `wit-component` drops when
/// a plugin does not call them), and the exports are described by the section the export macro
/// emits in the plugin that invokes it. A provider plugin therefore exports `provider` only and
/// imports `log` only, a tool plugin exports `tool` only.
#[doc(hidden)]
#[allow(unsafe_code)] // wit-bindgen's canonical-ABI glue is unsafe by nature
pub mod tool_bindings {
    wit_bindgen::generate!({
        world: "tool-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_tool_bindings",
        default_bindings_module: "::aigw_plugin_sdk::tool_bindings",
        with: {
            "aigw:plugin/types@0.1.0": crate::bindings::aigw::plugin::types,
            "aigw:plugin/log@0.1.0": crate::bindings::aigw::plugin::log,
        },
    });
}

/// A provider plugin: the `provider` interface of the WIT in plain Rust types.
///
/// The host keeps warm instances and reuses them for any caller (it replaces one only after a
/// trap), so a plugin's globals survive between calls and are shared by unrelated requests: keep
/// no per-request state in globals. All functions are associated functions; what one request
/// needs between steps travels in the [`Follow`] requests it asks for, or lives in its
/// [`StreamDecoder`].
pub trait Provider: 'static {
    type StreamDecoder: StreamDecoder;

    fn describe() -> Descriptor;

    /// The client's OpenAI request JSON to the upstream request for `target`.
    fn encode(target: &Target, request_json: &str) -> Result<HttpRequest, Failure>;

    /// An upstream response (any status for a non-streamed call, non-2xx for a streamed one or
    /// a stream-side follow) to the next step or a classified failure.
    fn decode(target: &Target, response: HttpResponse) -> Result<Step, Failure>;

    /// A decoder for one streamed answer, whose first 2xx response has `head`.
    fn stream_decoder(target: Target, head: ResponseHead) -> Self::StreamDecoder;
}

/// Decodes one streamed answer: the response body `encode`'s request got, fed in arbitrary
/// pieces, then the bodies of any follows [`StreamDecoder::finish`] asked for.
pub trait StreamDecoder: 'static {
    /// The next piece of the body: the OpenAI chunks it completes.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, Failure>;

    /// The body ended: the last chunks ([`StreamEnd::Done`]), a request whose response body
    /// continues the answer ([`StreamEnd::Follow`]; it is fed to this decoder, then `finish` is
    /// called again), or a failure if the stream was cut short.
    fn finish(&mut self) -> Result<StreamEnd, Failure>;
}

/// Exports a [`Provider`] as the component's `aigw:plugin/provider` implementation:
/// `aigw_plugin_sdk::export_provider!(Groq);`. Use it once, at the plugin crate's root.
///
/// The export glue is only emitted for wasm32: native builds (unit tests, clippy) have no
/// component model to link against, and only check that the type is a [`Provider`].
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::export::assert_provider::<$provider>();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type AigwProviderExport = $crate::export::Export<$provider>;
            $crate::bindings::export_provider_bindings!(
                AigwProviderExport with_types_in $crate::bindings
            );
        };
    };
}
