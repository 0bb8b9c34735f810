//! A loaded tool plugin: its compiled component, the tools it offers (asked once at load), its
//! warm pool, and `invoke`, which runs each call with the caller's [`CallContext`] so the
//! plugin's `outbound` and `memory` imports act for that caller and nobody else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bindings::tool::{ToolPlugin as ToolWorld, ToolPluginPre};
use crate::context::CallContext;
use crate::engine::Runtime;
use crate::plugin::{LoadError, answer, compile, file_label};
use crate::pool::Pool;
use crate::types::{Failure, ToolDescriptor, ToolSpec};
use crate::{CallError, convert};

/// A tool plugin ready to take calls.
pub struct ToolPlugin {
    path: PathBuf,
    descriptor: ToolDescriptor,
    pool: Pool<ToolWorld>,
}

impl ToolPlugin {
    /// Compiles the component at `path`, checks it is a tool plugin of this WIT package, asks it
    /// for its tools (with the empty context: describing acts for nobody), and warms
    /// `Limits::warm_instances` instances. A plugin offering no tool, a tool without a name or
    /// two tools of one name is refused.
    pub async fn load(runtime: &Arc<Runtime>, path: &Path) -> Result<Arc<ToolPlugin>, LoadError> {
        let fail = |message: String| LoadError {
            path: path.to_owned(),
            message,
        };
        let component = compile(runtime, path).await.map_err(fail)?;
        let instance_pre = runtime
            .tool_linker
            .instantiate_pre(&component)
            .map_err(|e| {
                fail(format!(
                    "imports not satisfied by the tool-plugin world of aigw:plugin@0.1.0: {e:#}"
                ))
            })?;
        let pre = ToolPluginPre::new(instance_pre).map_err(|e| {
            fail(format!(
                "does not export aigw:plugin/tool@0.1.0 (is it a tool plugin?): {e:#}"
            ))
        })?;

        // A tool plugin has no name of its own: its file names it in logs.
        let pool = Pool::<ToolWorld>::new(runtime, pre, file_label(path));
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
            path: path.to_owned(),
            descriptor,
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

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Warm instances ready right now (for readiness and tests).
    pub fn warm_instances(&self) -> usize {
        self.pool.warm()
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
