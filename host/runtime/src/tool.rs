//! A loaded tool plugin: its compiled component, the tools it offers (asked once at load), its
//! warm pool, and `invoke`, which runs each call with the caller's [`CallContext`] so the
//! plugin's `outbound` and `memory` imports act for that caller and nobody else.

use std::path::Path;
use std::sync::Arc;
use tracing::Instrument;

use crate::bindings::tool::{ToolPlugin as ToolWorld, ToolPluginPre};
use crate::calls::{CallStats, Calls};
use crate::context::CallContext;
use crate::engine::Runtime;
use crate::inspect::{ComponentFacts, WorldKind};
use crate::plugin::{LoadError, answer, file_label, inspect_as, link, read};
use crate::pool::Pool;
use crate::types::{Failure, ToolDescriptor, ToolSpec};
use crate::{CallError, convert};

/// A tool plugin ready to take calls.
pub struct ToolPlugin {
    /// The file it was loaded from, or the label its bytes came with.
    label: String,
    facts: ComponentFacts,
    descriptor: ToolDescriptor,
    /// Calls made into the guest: invokes.
    calls: Calls,
    pool: Pool<ToolWorld>,
}

impl ToolPlugin {
    /// Reads the component at `path` and loads it as [`ToolPlugin::from_bytes`] does,
    /// labelled with the path.
    pub async fn load(runtime: &Arc<Runtime>, path: &Path) -> Result<Arc<ToolPlugin>, LoadError> {
        let label = path.display().to_string();
        let bytes = read(path).map_err(|m| LoadError::new(&label, m))?;
        ToolPlugin::from_bytes(runtime, &label, bytes).await
    }

    /// Checks that `bytes` are a tool plugin of a supported WIT version ([`inspect`]: no
    /// compiling yet), compiles them (through the runtime's compile cache), asks the plugin for
    /// its tools (with the empty context: describing acts for nobody), and warms
    /// `Limits::warm_instances` instances. A plugin offering no tool, a tool without a name or
    /// two tools of one name is refused.
    pub async fn from_bytes(
        runtime: &Arc<Runtime>,
        label: &str,
        bytes: Vec<u8>,
    ) -> Result<Arc<ToolPlugin>, LoadError> {
        let facts = inspect_as(label, &bytes, WorldKind::Tool)?;
        ToolPlugin::from_facts(runtime, label, bytes, facts).await
    }

    /// Loads an inspected tool plugin, with the bindings of its WIT version.
    pub(crate) async fn from_facts(
        runtime: &Arc<Runtime>,
        label: &str,
        bytes: Vec<u8>,
        facts: ComponentFacts,
    ) -> Result<Arc<ToolPlugin>, LoadError> {
        let fail = |message: String| LoadError::new(label, message);
        let instance_pre = link(runtime, label, bytes, &facts).await?;
        let pre = ToolPluginPre::new(instance_pre).map_err(|e| {
            fail(format!(
                "does not export aigw:plugin/tool@0.1.0 (is it a tool plugin?): {e:#}"
            ))
        })?;

        // A tool plugin is named in logs by its file (or label), as tools.toml refers to it.
        let pool = Pool::<ToolWorld>::new(runtime, pre, file_label(Path::new(label)));
        let mut first = pool.begin(None).await.map_err(|f| fail(f.message))?;
        let described = first
            .bindings
            .aigw_plugin_tool()
            .call_describe(&mut first.store)
            .await;
        let descriptor = match described {
            Ok(descriptor) => convert::tool_descriptor(descriptor),
            Err(e) => return Err(fail(format!("describe failed: {}", first.fault(e).message))),
        };
        first.end();
        check_descriptor(&descriptor).map_err(fail)?;
        pool.release(first);
        pool.fill().await.map_err(|f| fail(f.message))?;
        Ok(Arc::new(ToolPlugin {
            label: label.to_owned(),
            facts,
            descriptor,
            calls: Calls::default(),
            pool,
        }))
    }

    /// What the plugin described at load: its name, version, tools and upstreams.
    pub fn descriptor(&self) -> &ToolDescriptor {
        &self.descriptor
    }

    /// The tools the plugin offers, as it described them at load.
    pub fn describe(&self) -> &[ToolSpec] {
        &self.descriptor.tools
    }

    /// The plugin's name in logs: its file name without extension.
    pub fn name(&self) -> &str {
        self.pool.plugin()
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

    /// Calls made into the guest since load (invokes; a name refused before the guest is not
    /// one).
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

    /// [`ToolPlugin::label`] as a path (what `load(path)` was given).
    pub fn path(&self) -> &Path {
        Path::new(&self.label)
    }

    /// Warm instances ready right now (for readiness and tests).
    pub fn warm_instances(&self) -> usize {
        self.pool.warm()
    }

    /// Creates one fresh instance and drops it: what a call costs when no warm instance is
    /// free. For the benchmarks; serving never needs it.
    pub async fn instantiate_cold(&self) -> Result<(), crate::Fault> {
        self.pool.instantiate().await.map(drop)
    }

    /// Calls tool `name` with its JSON arguments for the caller in `context`, on the upstream
    /// `context.upstream` names (whose endpoints the context's grants and credential should
    /// be): the result text, the plugin's failure, or a fault. A name the plugin did not
    /// describe is refused without entering the guest.
    pub async fn invoke(
        &self,
        context: &CallContext,
        name: &str,
        args_json: &str,
    ) -> Result<String, CallError> {
        if !self.descriptor.tools.iter().any(|t| t.name == name) {
            return Err(CallError::Failure(Failure::InvalidRequest(format!(
                "tool plugin {} has no tool named {name:?}",
                self.name()
            ))));
        }
        let started = self.calls.count();
        let answered = async {
            let mut instance = self.pool.begin(Some(context.clone())).await?;
            let result = instance
                .bindings
                .aigw_plugin_tool()
                .call_invoke(
                    &mut instance.store,
                    name,
                    args_json,
                    &convert::tool_target(&context.upstream),
                )
                .await;
            answer(self.pool.finish(instance, result).await)
        }
        .instrument(crate::spans::call(self.name(), "invoke"))
        .await;
        self.calls.ended(started, &answered);
        answered
    }
}

/// The longest tool name: OpenAI's limit on function names.
const MAX_TOOL_NAME: usize = 64;

fn check_descriptor(descriptor: &ToolDescriptor) -> Result<(), String> {
    let tools = &descriptor.tools;
    if tools.is_empty() {
        return Err("describe returned no tools".into());
    }
    for (i, tool) in tools.iter().enumerate() {
        if tool.name.is_empty() {
            return Err(format!("describe returned a tool without a name (#{i})"));
        }
        if tool.name.len() > MAX_TOOL_NAME
            || !tool
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "tool name {:?} is not 1-{MAX_TOOL_NAME} characters of a-z A-Z 0-9 _ -",
                tool.name
            ));
        }
        if tools[..i].iter().any(|t| t.name == tool.name) {
            return Err(format!("describe returned tool {:?} twice", tool.name));
        }
    }
    for (i, upstream) in descriptor.upstreams.iter().enumerate() {
        if upstream.name.is_empty() {
            return Err(format!(
                "describe returned an upstream without a name (#{i})"
            ));
        }
        if descriptor.upstreams[..i]
            .iter()
            .any(|u| u.name == upstream.name)
        {
            return Err(format!(
                "describe returned upstream {:?} twice",
                upstream.name
            ));
        }
        if upstream.endpoints.is_empty() {
            return Err(format!("upstream {:?} has no endpoint", upstream.name));
        }
    }
    Ok(())
}
