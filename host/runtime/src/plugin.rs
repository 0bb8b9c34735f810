//! A loaded provider plugin: its compiled component, its descriptor, its warm pool, and the
//! calls of the `provider` interface (encode, decode, stream decoders). Provider calls run with
//! the empty call context: the world imports only `log`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{Component, ResourceAny};

use crate::bindings::provider::exports::aigw::plugin::provider as wit_provider;
use crate::bindings::provider::{ProviderPlugin, ProviderPluginPre};
use crate::bindings::types::Failure as WitFailure;
use crate::engine::Runtime;
use crate::instance::Instance;
use crate::pool::Pool;
use crate::types::{Chunk, Descriptor, HttpRequest, HttpResponse, ResponseHead, Step, StreamEnd};
use crate::{CallError, Fault, FaultKind, convert};

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("plugin {path}: {message}")]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
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
    path: PathBuf,
    descriptor: Descriptor,
    pool: Pool<ProviderPlugin>,
}

impl Plugin {
    /// Compiles the component at `path`, checks it is a provider plugin of this WIT package,
    /// asks it to describe itself, and warms `Limits::warm_instances` instances.
    pub async fn load(runtime: &Arc<Runtime>, path: &Path) -> Result<Arc<Plugin>, LoadError> {
        let fail = |message: String| LoadError {
            path: path.to_owned(),
            message,
        };
        let component = compile(runtime, path).await.map_err(fail)?;
        let instance_pre = runtime
            .provider_linker
            .instantiate_pre(&component)
            .map_err(|e| {
                fail(format!(
                    "imports not satisfied by the provider-plugin world of aigw:plugin@0.1.0: {e:#}"
                ))
            })?;
        let pre = ProviderPluginPre::new(instance_pre).map_err(|e| {
            fail(format!(
                "does not export aigw:plugin/provider@0.1.0 (is it a provider plugin?): {e:#}"
            ))
        })?;

        // Described once on a first instance named after the file; the pool then names its
        // instances after the plugin and keeps this one.
        let pool = Pool::<ProviderPlugin>::new(runtime, pre, file_label(path));
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
            path: path.to_owned(),
            descriptor,
            pool,
        }))
    }

    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        let mut instance = self.pool.begin(None).await?;
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .call_encode(&mut instance.store, &target.0, request_json)
            .await;
        answer(self.pool.finish(instance, result).await).map(convert::request)
    }

    /// An upstream response → the next step, or the plugin's classification of the failure.
    pub async fn decode(
        &self,
        target: &PluginTarget,
        response: HttpResponse,
    ) -> Result<Step, CallError> {
        let mut instance = self.pool.begin(None).await?;
        let response = convert::response(response);
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .call_decode(&mut instance.store, &target.0, &response)
            .await;
        answer(self.pool.finish(instance, result).await).map(convert::step)
    }

    /// Starts decoding one streamed response, given its status and headers. The decoder holds
    /// an instance until it is closed.
    pub async fn stream_decoder(
        self: &Arc<Self>,
        target: &PluginTarget,
        head: ResponseHead,
    ) -> Result<StreamDecoder, CallError> {
        let mut instance = self.pool.begin(None).await?;
        let head = convert::response_head(head);
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .stream_decoder()
            .call_constructor(&mut instance.store, &target.0, &head)
            .await;
        match result {
            Ok(handle) => {
                instance.end();
                Ok(StreamDecoder {
                    plugin: Arc::clone(self),
                    instance: Some(instance),
                    handle,
                })
            }
            Err(error) => Err(CallError::Fault(self.pool.discard(instance, error).await)),
        }
    }
}

/// Reads and compiles a component. Compiling takes tens of milliseconds (seconds for Python/JS
/// guests): off the async threads.
pub(crate) async fn compile(runtime: &Runtime, path: &Path) -> Result<Component, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let engine = runtime.engine.clone();
    tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
        .await
        .map_err(|e| format!("compile task failed: {e}"))?
        .map_err(|e| format!("not a valid component: {e:#}"))
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
/// went away, a fault) frees its guest resource in the background rather than returning the
/// instance with a live resource.
pub struct StreamDecoder {
    plugin: Arc<Plugin>,
    instance: Option<Instance<ProviderPlugin>>,
    handle: ResourceAny,
}

impl StreamDecoder {
    /// The next piece of the body → the chunks it completes.
    pub async fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, CallError> {
        let mut instance = self.take()?;
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .stream_decoder()
            .call_feed(&mut instance.store, self.handle, bytes)
            .await;
        self.settle(instance, result).await.map(convert::chunks)
    }

    /// The body ended → the last chunks, a request whose body continues the stream, or a
    /// failure if the stream was cut short.
    pub async fn finish(&mut self) -> Result<StreamEnd, CallError> {
        let mut instance = self.take()?;
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .stream_decoder()
            .call_finish(&mut instance.store, self.handle)
            .await;
        self.settle(instance, result).await.map(convert::stream_end)
    }

    /// Frees the guest's decoder and returns the instance to the warm pool.
    pub async fn close(mut self) {
        if let Some(instance) = self.instance.take() {
            recycle(Arc::clone(&self.plugin), instance, self.handle).await;
        }
    }

    /// The decoder's instance with a call begun on it.
    fn take(&mut self) -> Result<Instance<ProviderPlugin>, CallError> {
        let mut instance = self.instance.take().ok_or_else(|| {
            CallError::Fault(Fault {
                kind: FaultKind::Trap,
                message: "stream decoder used after a fault".into(),
            })
        })?;
        instance.begin(self.plugin.pool.runtime().limits.call_timeout, None);
        Ok(instance)
    }

    /// Ends a call on the decoder's instance: kept for the next piece, or replaced on a fault.
    async fn settle<T>(
        &mut self,
        mut instance: Instance<ProviderPlugin>,
        result: wasmtime::Result<Result<T, WitFailure>>,
    ) -> Result<T, CallError> {
        match result {
            Ok(answer) => {
                instance.end();
                self.instance = Some(instance);
                answer.map_err(|f| CallError::Failure(convert::failure(f)))
            }
            Err(error) => Err(CallError::Fault(
                self.plugin.pool.discard(instance, error).await,
            )),
        }
    }
}

impl Drop for StreamDecoder {
    fn drop(&mut self) {
        // Dropped without `close` (the client went away, the attempt failed over): free the
        // guest's decoder in the background so the instance can still be reused.
        let Some(instance) = self.instance.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(recycle(Arc::clone(&self.plugin), instance, self.handle));
        }
    }
}

/// Drops the guest resource and returns the instance to the pool; a fault discards it.
async fn recycle(plugin: Arc<Plugin>, mut instance: Instance<ProviderPlugin>, handle: ResourceAny) {
    instance.begin(plugin.pool.runtime().limits.call_timeout, None);
    let result = handle.resource_drop_async(&mut instance.store).await;
    // A fault here only loses the instance; nobody waits for this call's answer.
    let _ = plugin.pool.finish(instance, result).await;
}
