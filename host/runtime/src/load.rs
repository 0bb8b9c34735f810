//! Loading a plugin of either world from its bytes: [`inspect`] says which world it implements
//! (and refuses an unsupported version) before anything is compiled, and that world's loader
//! does the rest. What the admin API's upload and the plugins-directory watcher call.

use std::sync::Arc;

use crate::engine::Runtime;
use crate::inspect::{ComponentFacts, WorldKind, inspect};
use crate::plugin::{LoadError, Plugin};
use crate::tool::ToolPlugin;

/// A loaded plugin of either world.
#[derive(Clone)]
pub enum LoadedPlugin {
    Provider(Arc<Plugin>),
    Tool(Arc<ToolPlugin>),
}

impl LoadedPlugin {
    /// What was read from the component's bytes at load.
    pub fn facts(&self) -> &ComponentFacts {
        match self {
            LoadedPlugin::Provider(p) => p.facts(),
            LoadedPlugin::Tool(t) => t.facts(),
        }
    }

    /// Whether the component uses the component model's async ABI (see [`crate::Runtime`]).
    pub fn async_abi(&self) -> bool {
        match self {
            LoadedPlugin::Provider(p) => p.async_abi(),
            LoadedPlugin::Tool(t) => t.async_abi(),
        }
    }

    /// The name the plugin describes itself with.
    pub fn name(&self) -> &str {
        match self {
            LoadedPlugin::Provider(p) => &p.descriptor().name,
            LoadedPlugin::Tool(t) => &t.descriptor().name,
        }
    }

    /// The version the plugin describes itself with.
    pub fn version(&self) -> &str {
        match self {
            LoadedPlugin::Provider(p) => &p.descriptor().version,
            LoadedPlugin::Tool(t) => &t.descriptor().version,
        }
    }

    /// Calls made into the guest since load.
    pub fn calls(&self) -> u64 {
        match self {
            LoadedPlugin::Provider(p) => p.calls(),
            LoadedPlugin::Tool(t) => t.calls(),
        }
    }

    /// What its calls did since load: counts, faults by kind, durations.
    pub fn call_stats(&self) -> crate::CallStats {
        match self {
            LoadedPlugin::Provider(p) => p.call_stats(),
            LoadedPlugin::Tool(t) => t.call_stats(),
        }
    }

    /// Warm instances ready to take a call now.
    pub fn warm_instances(&self) -> usize {
        match self {
            LoadedPlugin::Provider(p) => p.warm_instances(),
            LoadedPlugin::Tool(t) => t.warm_instances(),
        }
    }

    pub fn kind(&self) -> WorldKind {
        self.facts().world
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("kind", &self.kind())
            .field("name", &self.name())
            .field("version", &self.version())
            .field("digest", &self.facts().digest)
            .finish()
    }
}

/// Inspects `bytes`, then loads them with their world's loader: compile (through the cache),
/// describe, warm pool. `label` names the plugin in errors ("upload groq", a path).
pub async fn load(
    runtime: &Arc<Runtime>,
    label: &str,
    bytes: Vec<u8>,
) -> Result<LoadedPlugin, LoadError> {
    let facts = inspect(&bytes).map_err(|m| LoadError::new(label, m))?;
    Ok(match facts.world {
        WorldKind::Provider => {
            LoadedPlugin::Provider(Plugin::from_facts(runtime, label, bytes, facts).await?)
        }
        WorldKind::Tool => {
            LoadedPlugin::Tool(ToolPlugin::from_facts(runtime, label, bytes, facts).await?)
        }
    })
}
