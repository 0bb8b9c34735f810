//! A loaded provider plugin: its compiled component, its descriptor, its warm pool, and the
//! calls of the `provider` interface (encode, decode, stream decoders). Provider calls run with
//! the empty call context: the world imports only `log`.

use std::path::Path;
use std::sync::Arc;

use tracing::Instrument;
use wasmtime::component::{Component, InstancePre, ResourceAny};

use crate::bindings::provider::exports::aigw::plugin::provider as wit_provider;
use crate::bindings::provider::{ProviderPlugin, ProviderPluginPre};
use crate::bindings::types::Failure as WitFailure;
use crate::calls::{CallStats, Calls};
use crate::decoders::{Host, Hosts, InFlight, lost};
use crate::engine::{Engines, Runtime};
use crate::inspect::{ComponentFacts, WorldKind, inspect};
use crate::pool::Pool;
use crate::state::HostState;
use crate::types::{
    Chunk, Descriptor, Failure, HttpRequest, HttpResponse, ResponseHead, Step, StreamEnd,
};
use crate::{CallError, Fault, convert, spans};

/// Why a plugin could not be loaded. `label` says which: the file's path, or what the bytes
/// came as (`"upload groq"`), so the message reads "plugin <label>: <why>" either way.
#[derive(Debug, thiserror::Error)]
#[error("plugin {label}: {message}")]
pub struct LoadError {
    pub label: String,
    pub message: String,
}

impl LoadError {
    pub(crate) fn new(label: &str, message: impl Into<String>) -> LoadError {
        LoadError {
            label: label.to_owned(),
            message: message.into(),
        }
    }
}

/// A target as a plugin sees it, converted once when routes are built, not on every call.
#[derive(Debug, Clone)]
pub struct PluginTarget(wit_provider::Target);

impl PluginTarget {
    pub fn new(base_url: &str, model: &str) -> PluginTarget {
        PluginTarget(convert::target(base_url, model))
    }

    pub fn base_url(&self) -> &str {
        &self.0.base_url
    }

    pub fn model(&self) -> &str {
        &self.0.model
    }
}

/// A provider plugin ready to take calls.
pub struct Plugin {
    /// The file it was loaded from, or the label its bytes came with.
    label: String,
    facts: ComponentFacts,
    descriptor: Descriptor,
    /// Calls made into the guest: encodes, decodes and stream decoders started.
    calls: Calls,
    pool: Pool<ProviderPlugin>,
    /// The instances hosting this plugin's open stream decoders.
    decoders: Hosts,
}

impl Plugin {
    /// Reads the component at `path` and loads it as [`Plugin::from_bytes`] does, labelled
    /// with the path.
    pub async fn load(runtime: &Arc<Runtime>, path: &Path) -> Result<Arc<Plugin>, LoadError> {
        let label = path.display().to_string();
        let bytes = read(path).map_err(|m| LoadError::new(&label, m))?;
        Plugin::from_bytes(runtime, &label, bytes).await
    }

    /// Checks that `bytes` are a provider plugin of a supported WIT version ([`inspect`]: no
    /// compiling yet), compiles them (through the runtime's compile cache), asks the plugin to
    /// describe itself, and warms `Limits::warm_instances` instances. `label` names it in
    /// errors and, until it has described itself, in logs.
    pub async fn from_bytes(
        runtime: &Arc<Runtime>,
        label: &str,
        bytes: Vec<u8>,
    ) -> Result<Arc<Plugin>, LoadError> {
        let facts = inspect_as(label, &bytes, WorldKind::Provider)?;
        Plugin::from_facts(runtime, label, bytes, facts).await
    }

    /// Loads an inspected provider plugin, with the bindings of its WIT version.
    pub(crate) async fn from_facts(
        runtime: &Arc<Runtime>,
        label: &str,
        bytes: Vec<u8>,
        facts: ComponentFacts,
    ) -> Result<Arc<Plugin>, LoadError> {
        let fail = |message: String| LoadError::new(label, message);
        let instance_pre = link(runtime, label, bytes, &facts).await?;
        let pre = ProviderPluginPre::new(instance_pre).map_err(|e| {
            fail(format!(
                "does not export aigw:plugin/provider@0.1.0 (is it a provider plugin?): {e:#}"
            ))
        })?;

        // Described once on a first instance named after the file; the pool then names its
        // instances after the plugin and keeps this one.
        let pool = Pool::<ProviderPlugin>::new(runtime, pre, file_label(Path::new(label)));
        let mut first = pool.begin(None).await.map_err(|f| fail(f.message))?;
        let described = first
            .bindings
            .aigw_plugin_provider()
            .call_describe(&mut first.store)
            .await;
        let d = match described {
            Ok(d) => d,
            Err(e) => return Err(fail(format!("describe failed: {}", first.fault(e).message))),
        };
        first.end();
        let descriptor = convert::descriptor(d);
        if descriptor.name.is_empty() {
            return Err(fail("describe returned an empty name".into()));
        }
        let pool = pool.renamed(Arc::from(descriptor.name.as_str()));
        first.store.data_mut().plugin = Arc::clone(pool.plugin());
        pool.release(first);
        pool.fill().await.map_err(|f| fail(f.message))?;
        Ok(Arc::new(Plugin {
            label: label.to_owned(),
            facts,
            descriptor,
            calls: Calls::default(),
            pool,
            decoders: Hosts::default(),
        }))
    }

    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// What was read from the component's bytes at load.
    pub fn facts(&self) -> &ComponentFacts {
        &self.facts
    }

    /// Whether the component uses the component model's async ABI, so that it runs on the
    /// engine with wasmtime's concurrency support (each call a little dearer; see [`Runtime`]).
    pub fn async_abi(&self) -> bool {
        self.pool.async_abi()
    }

    /// Calls made into the guest since load: encodes, decodes, stream decoders started.
    pub fn calls(&self) -> u64 {
        self.calls.get()
    }

    /// What its calls did since load: counts, faults by kind, durations.
    pub fn call_stats(&self) -> CallStats {
        self.calls.stats()
    }

    /// The file it was loaded from, or the label its bytes came with.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// [`Plugin::label`] as a path (what `load(path)` was given).
    pub fn path(&self) -> &Path {
        Path::new(&self.label)
    }

    /// Warm instances ready right now (for readiness and tests).
    pub fn warm_instances(&self) -> usize {
        self.pool.warm()
    }

    /// Creates one fresh instance and drops it: what a call costs when no warm instance is
    /// free. For the benchmark command; serving never needs it.
    pub async fn instantiate_cold(&self) -> Result<(), Fault> {
        self.pool.instantiate().await.map(drop)
    }

    /// OpenAI request JSON → the upstream request for `target`.
    pub async fn encode(
        &self,
        target: &PluginTarget,
        request_json: &str,
    ) -> Result<HttpRequest, CallError> {
        let started = self.calls.count();
        let answered = async {
            let mut instance = self.pool.begin(None).await?;
            let result = instance
                .bindings
                .aigw_plugin_provider()
                .call_encode(&mut instance.store, &target.0, request_json)
                .await;
            answer(self.pool.finish(instance, result).await).map(convert::request)
        }
        .instrument(spans::call(&self.descriptor.name, "encode"))
        .await;
        self.calls.ended(started, &answered);
        answered
    }

    /// An upstream response → the next step, or the plugin's classification of the failure.
    pub async fn decode(
        &self,
        target: &PluginTarget,
        response: HttpResponse,
    ) -> Result<Step, CallError> {
        let started = self.calls.count();
        let answered = async {
            let mut instance = self.pool.begin(None).await?;
            let response = convert::response(response);
            let result = instance
                .bindings
                .aigw_plugin_provider()
                .call_decode(&mut instance.store, &target.0, &response)
                .await;
            answer(self.pool.finish(instance, result).await).map(convert::step)
        }
        .instrument(spans::call(&self.descriptor.name, "decode"))
        .await;
        self.calls.ended(started, &answered);
        answered
    }

    /// Starts decoding one streamed response, given its status and headers. The decoder lives
    /// on an instance it shares with other streams' decoders (see `decoders`), locked only
    /// while one of them is called.
    pub async fn stream_decoder(
        self: &Arc<Self>,
        target: &PluginTarget,
        head: ResponseHead,
    ) -> Result<StreamDecoder, CallError> {
        let started = self.calls.count();
        let decoder = self.start_stream_decoder(target, head).await;
        self.calls.ended(started, &decoder);
        decoder
    }

    async fn start_stream_decoder(
        self: &Arc<Self>,
        target: &PluginTarget,
        head: ResponseHead,
    ) -> Result<StreamDecoder, CallError> {
        let host = self.decoders.place(&self.pool).await?;
        let head = convert::response_head(head);
        let span = spans::call(&self.descriptor.name, "stream-decoder");
        let constructed = async {
            let timeout = self.pool.runtime().limits.call_timeout;
            let mut call = InFlight::begin(&self.decoders, &host, timeout).await?;
            let instance = call.instance()?;
            let result = instance
                .bindings
                .aigw_plugin_provider()
                .stream_decoder()
                .call_constructor(&mut instance.store, &target.0, &head)
                .await;
            call.end(&self.pool, result).await
        }
        .instrument(span)
        .await;
        match constructed {
            Ok(handle) => Ok(StreamDecoder {
                plugin: Arc::clone(self),
                host: Some(host),
                handle,
                partial_line: 0,
            }),
            Err(fault) => {
                self.decoders.leave(&host, &self.pool).await;
                Err(CallError::Fault(fault))
            }
        }
    }

    /// Stream decoders open right now and the instances hosting them (tests, readiness).
    pub fn stream_decoders(&self) -> (usize, usize) {
        self.decoders.usage()
    }

    /// The instances this plugin's stream decoders are spread over before one hosts a second
    /// decoder (see the runtime's decoder placement).
    pub fn stream_decoder_spread(&self) -> usize {
        crate::decoders::spread(&self.pool)
    }
}

/// Reads a plugin file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
}

/// Compiles a component (through the runtime's compile cache, when it has one) for the lean
/// engine, or for the full one if only that accepts it (see [`Runtime`]).
async fn compile(runtime: &Arc<Runtime>, bytes: Vec<u8>) -> Result<(Component, &Engines), String> {
    let (lean, bytes) = compile_for(&runtime.lean, bytes).await?;
    if let Ok(component) = lean {
        return Ok((component, &runtime.lean));
    }
    // Refused by the lean engine: a component that uses the component model's async ABI is
    // refused there at validation, before any compiling. The full engine's verdict stands
    // (for a component that is simply invalid, its error is the same).
    let full = runtime
        .full()
        .map_err(|e| format!("cannot make the engine for the component model's async ABI: {e}"))?;
    let (component, _) = compile_for(full, bytes).await?;
    let component = component.map_err(|e| format!("not a valid component: {e:#}"))?;
    Ok((component, full))
}

/// Compiles `bytes` for one engine: tens of milliseconds (seconds for Python/JS guests), so
/// off the async threads. The bytes come back for a second try on the other engine.
async fn compile_for(
    engines: &Engines,
    bytes: Vec<u8>,
) -> Result<(wasmtime::Result<Component>, Vec<u8>), String> {
    let engine = engines.engine.clone();
    tokio::task::spawn_blocking(move || (Component::new(&engine, &bytes), bytes))
        .await
        .map_err(|e| format!("compile task failed: {e}"))
}

/// Compiles an inspected plugin of a supported WIT version and links it against its world's
/// linker: the steps every world's loader shares before its own bindings.
pub(crate) async fn link(
    runtime: &Arc<Runtime>,
    label: &str,
    bytes: Vec<u8>,
    facts: &ComponentFacts,
) -> Result<InstancePre<HostState>, LoadError> {
    let fail = |message: String| LoadError::new(label, message);
    // One arm per supported version (see `versions`); inspect refused every other.
    match facts.wit_version.as_str() {
        "0.1.0" => {}
        other => return Err(fail(format!("no bindings for aigw:plugin@{other}"))),
    }
    let (component, engines) = compile(runtime, bytes).await.map_err(fail)?;
    engines
        .linker(facts.world)
        .instantiate_pre(&component)
        .map_err(|e| {
            fail(format!(
                "imports not satisfied by the {} world of aigw:plugin@{}: {e:#}",
                facts.world.world(),
                facts.wit_version
            ))
        })
}

/// The facts of `bytes` if they are a plugin of the `wanted` world and a supported WIT version
/// (read without compiling), else why not.
pub(crate) fn inspect_as(
    label: &str,
    bytes: &[u8],
    wanted: WorldKind,
) -> Result<ComponentFacts, LoadError> {
    let facts = inspect(bytes).map_err(|m| LoadError::new(label, m))?;
    if facts.world != wanted {
        return Err(LoadError::new(label, wrong_world(&facts, wanted)));
    }
    Ok(facts)
}

/// The message for a component of the other world.
fn wrong_world(facts: &ComponentFacts, wanted: WorldKind) -> String {
    format!(
        "is a {} plugin (it exports aigw:plugin/{}@{}), not a {} plugin",
        facts.world,
        facts.world.interface(),
        facts.wit_version,
        wanted
    )
}

/// The plugin's file name without extension: its name in logs until it has described itself.
pub(crate) fn file_label(path: &Path) -> Arc<str> {
    path.file_stem()
        .map(|s| Arc::from(s.to_string_lossy().as_ref()))
        .unwrap_or_else(|| Arc::from(""))
}

/// A finished call's answer: the plugin's own failure, or the fault that ended it.
pub(crate) fn answer<T>(finished: Result<Result<T, WitFailure>, Fault>) -> Result<T, CallError> {
    finished?.map_err(|f| CallError::Failure(convert::failure(f)))
}

/// A streamed response being decoded. Dropping it without [`StreamDecoder::close`] (a client that
/// went away, a fault) frees its guest resource in the background.
pub struct StreamDecoder {
    plugin: Arc<Plugin>,
    /// `None` once closed.
    host: Option<Arc<Host>>,
    handle: ResourceAny,
    /// Bytes fed since the last newline: what the guest may be buffering as a partial line.
    partial_line: usize,
}

/// The longest stream line a decoder is fed. A guest buffers an unfinished line until its
/// newline comes; decoders share instances (and their memory cap), so an upstream that never
/// ends a line must fail its own stream before it can exhaust the instance for its neighbours:
/// 32 decoders × 1 MiB stay within the default 64 MiB cap. Real SSE lines are a few hundred
/// bytes; a whole JSON answer sent to a streamed request is rarely above a few hundred KiB.
pub const MAX_STREAM_LINE: usize = 1 << 20;

impl StreamDecoder {
    /// The next piece of the body → the chunks it completes.
    pub async fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, CallError> {
        self.partial_line = match memchr::memrchr(b'\n', bytes) {
            Some(at) => bytes.len() - at - 1,
            None => self.partial_line.saturating_add(bytes.len()),
        };
        if self.partial_line > MAX_STREAM_LINE {
            return Err(CallError::Failure(Failure::BadResponse(format!(
                "upstream stream line longer than {MAX_STREAM_LINE} bytes"
            ))));
        }
        let plugin = &self.plugin;
        let host = self.host.as_ref().ok_or_else(lost)?;
        let handle = self.handle;
        let fed = async {
            let timeout = plugin.pool.runtime().limits.call_timeout;
            let mut call = InFlight::begin(&plugin.decoders, host, timeout).await?;
            let instance = call.instance()?;
            let result = instance
                .bindings
                .aigw_plugin_provider()
                .stream_decoder()
                .call_feed(&mut instance.store, handle, bytes)
                .await;
            call.end(&plugin.pool, result)
                .await
                .map_err(CallError::Fault)
                .and_then(|r| r.map_err(|f| CallError::Failure(convert::failure(f))))
        }
        .instrument(spans::call(&plugin.descriptor.name, "feed"))
        .await;
        plugin.calls.faulted(&fed);
        fed.map(convert::chunks)
    }

    /// The body ended → the last chunks, a request whose body continues the stream, or a
    /// failure if the stream was cut short.
    pub async fn finish(&mut self) -> Result<StreamEnd, CallError> {
        let plugin = &self.plugin;
        let host = self.host.as_ref().ok_or_else(lost)?;
        let handle = self.handle;
        let finished = async {
            let timeout = plugin.pool.runtime().limits.call_timeout;
            let mut call = InFlight::begin(&plugin.decoders, host, timeout).await?;
            let instance = call.instance()?;
            let result = instance
                .bindings
                .aigw_plugin_provider()
                .stream_decoder()
                .call_finish(&mut instance.store, handle)
                .await;
            call.end(&plugin.pool, result)
                .await
                .map_err(CallError::Fault)
                .and_then(|r| r.map_err(|f| CallError::Failure(convert::failure(f))))
        }
        .instrument(spans::call(&plugin.descriptor.name, "finish"))
        .await;
        plugin.calls.faulted(&finished);
        finished.map(convert::stream_end)
    }

    /// Frees the guest's decoder and gives its slot back.
    pub async fn close(mut self) {
        if let Some(host) = self.host.take() {
            retire(Arc::clone(&self.plugin), host, self.handle).await;
        }
    }
}

impl Drop for StreamDecoder {
    fn drop(&mut self) {
        // Dropped without `close` (the client went away, the attempt failed over): free the
        // guest's decoder in the background so its host can be reused.
        let Some(host) = self.host.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(retire(Arc::clone(&self.plugin), host, self.handle));
        }
    }
}

/// Drops the guest resource (unless its host was lost) and gives the decoder's slot back; a
/// fault while dropping loses the host like any other (logged by `discard`; nobody waits for
/// this call's answer).
async fn retire(plugin: Arc<Plugin>, host: Arc<Host>, handle: ResourceAny) {
    let dropped = async {
        let timeout = plugin.pool.runtime().limits.call_timeout;
        let mut call = InFlight::begin(&plugin.decoders, &host, timeout).await?;
        let instance = call.instance()?;
        let result = handle.resource_drop_async(&mut instance.store).await;
        call.end(&plugin.pool, result).await
    };
    let _ = dropped.await;
    plugin.decoders.leave(&host, &plugin.pool).await;
}
