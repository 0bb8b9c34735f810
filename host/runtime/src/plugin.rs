//! A loaded provider plugin: its compiled component, its descriptor, and a pool of warm instances.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use wasmtime::component::{Component, ResourceAny};

use crate::bindings::ProviderPluginPre;
use crate::bindings::aigw::plugin::types::Failure as WitFailure;
use crate::bindings::exports::aigw::plugin::provider as wit_provider;
use crate::engine::Runtime;
use crate::instance::{HostState, Instance};
use crate::types::{Chunk, Descriptor, HttpRequest, HttpResponse, Step};
use crate::{CallError, Fault, convert};

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
    runtime: Arc<Runtime>,
    path: PathBuf,
    pre: ProviderPluginPre<HostState>,
    descriptor: Descriptor,
    /// Warm instances. Lock-free: taking and returning one is on every call's path.
    warm: ArrayQueue<Instance>,
}

impl Plugin {
    /// Compiles the component at `path`, checks it is a provider plugin of this WIT package,
    /// asks it to describe itself, and warms `Limits::warm_instances` instances.
    pub async fn load(runtime: &Arc<Runtime>, path: &Path) -> Result<Arc<Plugin>, LoadError> {
        let fail = |message: String| LoadError {
            path: path.to_owned(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let engine = runtime.engine.clone();
        // Compiling takes tens of milliseconds (seconds for Python/JS guests): off the async
        // threads.
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| fail(format!("compile task failed: {e}")))?
            .map_err(|e| fail(format!("not a valid component: {e:#}")))?;
        let instance_pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(|e| fail(format!("imports not satisfied by aigw:plugin@0.1.0: {e:#}")))?;
        let pre = ProviderPluginPre::new(instance_pre).map_err(|e| {
            fail(format!(
                "does not export aigw:plugin/provider@0.1.0 (is it a provider plugin?): {e:#}"
            ))
        })?;

        let label = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let limits = runtime.limits();
        let mut first = Instance::new(&pre, &label, limits.memory_bytes, limits.call_timeout)
            .await
            .map_err(|f| fail(f.message))?;
        first.arm(limits.call_timeout);
        let described = first
            .bindings
            .aigw_plugin_provider()
            .call_describe(&mut first.store)
            .await;
        let descriptor = match described {
            Ok(d) => {
                first.disarm();
                convert::descriptor(d)
            }
            Err(e) => return Err(fail(format!("describe failed: {}", first.fault(e).message))),
        };
        if descriptor.name.is_empty() {
            return Err(fail("describe returned an empty name".into()));
        }

        let warm = ArrayQueue::new(limits.warm_instances.max(1));
        let plugin = Plugin {
            runtime: Arc::clone(runtime),
            path: path.to_owned(),
            pre,
            descriptor,
            warm,
        };
        let _ = plugin.warm.push(first);
        while plugin.warm.len() < limits.warm_instances {
            let instance = plugin.instantiate().await.map_err(|f| fail(f.message))?;
            if plugin.warm.push(instance).is_err() {
                break;
            }
        }
        Ok(Arc::new(plugin))
    }

    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Warm instances ready right now (for readiness and tests).
    pub fn warm_instances(&self) -> usize {
        self.warm.len()
    }

    /// Creates one fresh instance and drops it: what a call costs when no warm instance is
    /// free. For the benchmark command; serving never needs it.
    pub async fn instantiate_cold(&self) -> Result<(), Fault> {
        self.instantiate().await.map(drop)
    }

    async fn instantiate(&self) -> Result<Instance, Fault> {
        let limits = self.runtime.limits();
        Instance::new(
            &self.pre,
            &self.descriptor.name,
            limits.memory_bytes,
            limits.call_timeout,
        )
        .await
    }

    async fn acquire(&self) -> Result<Instance, Fault> {
        match self.warm.pop() {
            Some(instance) => Ok(instance),
            // All warm instances are busy: a fresh one costs ~50 µs; it joins the pool after
            // the call if there is room.
            None => self.instantiate().await,
        }
    }

    fn release(&self, instance: Instance) {
        // A full pool means the burst is over: drop the extra instance.
        let _ = self.warm.push(instance);
    }

    /// OpenAI request JSON → the upstream request for `target`.
    pub async fn encode(
        &self,
        target: &PluginTarget,
        request_json: &str,
    ) -> Result<HttpRequest, CallError> {
        let mut instance = self.acquire().await?;
        instance.arm(self.runtime.limits().call_timeout);
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .call_encode(&mut instance.store, &target.0, request_json)
            .await;
        self.settle(instance, result).await.map(convert::request)
    }

    /// An upstream response → the next step, or the plugin's classification of the failure.
    pub async fn decode(
        &self,
        target: &PluginTarget,
        response: HttpResponse,
    ) -> Result<Step, CallError> {
        let mut instance = self.acquire().await?;
        instance.arm(self.runtime.limits().call_timeout);
        let response = convert::response(response);
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .call_decode(&mut instance.store, &target.0, &response)
            .await;
        self.settle(instance, result).await.map(convert::step)
    }

    /// Starts decoding one streamed response. The decoder holds an instance until it is closed.
    pub async fn stream_decoder(
        self: &Arc<Self>,
        target: &PluginTarget,
    ) -> Result<StreamDecoder, CallError> {
        let mut instance = self.acquire().await?;
        instance.arm(self.runtime.limits().call_timeout);
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .stream_decoder()
            .call_constructor(&mut instance.store, &target.0)
            .await;
        match result {
            Ok(handle) => {
                instance.disarm();
                Ok(StreamDecoder {
                    plugin: Arc::clone(self),
                    instance: Some(instance),
                    handle,
                })
            }
            Err(error) => Err(CallError::Fault(self.discard(instance, error).await)),
        }
    }

    /// Ends a call: a normal answer returns the instance to the pool, a fault replaces it.
    async fn settle<T>(
        &self,
        mut instance: Instance,
        result: wasmtime::Result<Result<T, WitFailure>>,
    ) -> Result<T, CallError> {
        match result {
            Ok(answer) => {
                instance.disarm();
                self.release(instance);
                answer.map_err(|f| CallError::Failure(convert::failure(f)))
            }
            Err(error) => Err(CallError::Fault(self.discard(instance, error).await)),
        }
    }

    /// Classifies a fault, drops the poisoned instance (wasmtime refuses to re-enter it) and
    /// puts a fresh one in its place, so faults do not drain the warm pool.
    async fn discard(&self, instance: Instance, error: wasmtime::Error) -> Fault {
        let fault = instance.fault(error);
        tracing::warn!(plugin = %self.descriptor.name, kind = fault.kind.as_str(), "{}", fault.message);
        if let Ok(fresh) = self.instantiate().await {
            self.release(fresh);
        }
        fault
    }
}

/// A streamed response being decoded. Dropping it without [`StreamDecoder::close`] (a client that
/// went away, a fault) discards its instance rather than returning it with a live resource.
pub struct StreamDecoder {
    plugin: Arc<Plugin>,
    instance: Option<Instance>,
    handle: ResourceAny,
}

impl StreamDecoder {
    /// The next piece of the body → the chunks it completes.
    pub async fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, CallError> {
        let mut instance = self.take()?;
        instance.arm(self.plugin.runtime.limits().call_timeout);
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .stream_decoder()
            .call_feed(&mut instance.store, self.handle, bytes)
            .await;
        self.settle(instance, result).await
    }

    /// The body ended → the last chunks, or a failure if the stream was cut short.
    pub async fn finish(&mut self) -> Result<Vec<Chunk>, CallError> {
        let mut instance = self.take()?;
        instance.arm(self.plugin.runtime.limits().call_timeout);
        let result = instance
            .bindings
            .aigw_plugin_provider()
            .stream_decoder()
            .call_finish(&mut instance.store, self.handle)
            .await;
        self.settle(instance, result).await
    }

    /// Frees the guest's decoder and returns the instance to the warm pool.
    pub async fn close(mut self) {
        if let Some(instance) = self.instance.take() {
            recycle(Arc::clone(&self.plugin), instance, self.handle).await;
        }
    }

    fn take(&mut self) -> Result<Instance, CallError> {
        self.instance.take().ok_or_else(|| {
            CallError::Fault(Fault {
                kind: crate::FaultKind::Trap,
                message: "stream decoder used after a fault".into(),
            })
        })
    }

    async fn settle(
        &mut self,
        mut instance: Instance,
        result: wasmtime::Result<
            Result<Vec<wit_provider::Chunk>, crate::bindings::aigw::plugin::types::Failure>,
        >,
    ) -> Result<Vec<Chunk>, CallError> {
        match result {
            Ok(answer) => {
                instance.disarm();
                self.instance = Some(instance);
                answer
                    .map(convert::chunks)
                    .map_err(|f| CallError::Failure(convert::failure(f)))
            }
            Err(error) => Err(CallError::Fault(self.plugin.discard(instance, error).await)),
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
async fn recycle(plugin: Arc<Plugin>, mut instance: Instance, handle: ResourceAny) {
    instance.arm(plugin.runtime.limits().call_timeout);
    if handle
        .resource_drop_async(&mut instance.store)
        .await
        .is_ok()
    {
        instance.disarm();
        plugin.release(instance);
    }
}
