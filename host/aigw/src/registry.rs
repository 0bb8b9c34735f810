//! The plugin registry of a running gateway: every loaded plugin by name (the file stem a
//! config's `plugin = "<name>"` names), with its component's bytes, where it came from and when
//! it was loaded, and the version a rollback brings back. Served states take their plugins from
//! here, so a plugin whose file did not change is never compiled twice, and a swap replaces one
//! entry while the others stay loaded as they are.
//!
//! The current version's bytes are kept in memory (the watcher may already have seen its file
//! replaced, and a rollback must still be able to write it back); the previous version's live
//! only on disk, under `<plugins.dir>/.previous/<name>.wasm`, with its version and digest here.
//! The registry itself only records: loading, files and swapping are `swap.rs`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use aigw_runtime::{LoadedPlugin, Plugin, ToolPlugin, WorldKind};
use aigw_server::{PluginEntry, PreviousVersion};

/// One loaded version of a plugin.
pub struct Version {
    pub plugin: LoadedPlugin,
    /// The component's bytes, kept so a replaced version can be written back for a rollback.
    pub bytes: Arc<[u8]>,
    /// Where it came from: its file, or `upload` (then also written to its file).
    pub source: Source,
    pub loaded_at: SystemTime,
}

/// Where a version came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Read from this file (at start, by a config reload, or by the directory watcher).
    File(PathBuf),
    /// `PUT /admin/plugins/{name}`.
    Upload,
    /// `POST /admin/plugins/{name}/rollback`.
    Rollback,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Upload => f.write_str("upload"),
            Source::Rollback => f.write_str("rollback"),
        }
    }
}

impl Version {
    pub fn digest(&self) -> &str {
        &self.plugin.facts().digest
    }

    pub fn kind(&self) -> WorldKind {
        self.plugin.kind()
    }

    /// The provider plugin, if it is one.
    pub fn provider(&self) -> Option<Arc<Plugin>> {
        match &self.plugin {
            LoadedPlugin::Provider(plugin) => Some(Arc::clone(plugin)),
            LoadedPlugin::Tool(_) => None,
        }
    }

    /// The tool plugin, if it is one.
    pub fn tool(&self) -> Option<Arc<ToolPlugin>> {
        match &self.plugin {
            LoadedPlugin::Tool(plugin) => Some(Arc::clone(plugin)),
            LoadedPlugin::Provider(_) => None,
        }
    }
}

/// The version a rollback restores: its bytes are in `file`.
#[derive(Debug, Clone)]
pub struct Previous {
    pub version: String,
    pub digest: String,
    pub file: PathBuf,
}

#[derive(Default)]
struct Entry {
    /// `None` once unloaded (the previous version may remain, for a rollback).
    current: Option<Arc<Version>>,
    previous: Option<Previous>,
}

/// Every plugin loaded in this process, by name.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Registry {
    fn entries(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding this lock cannot leave an entry half-written (each change is
        // one assignment), so a poisoned lock is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The version of `name` serving now.
    pub fn current(&self, name: &str) -> Option<Arc<Version>> {
        self.entries().get(name).and_then(|e| e.current.clone())
    }

    /// The version a rollback of `name` would restore.
    pub fn previous(&self, name: &str) -> Option<Previous> {
        self.entries().get(name).and_then(|e| e.previous.clone())
    }

    /// Every loaded plugin's current version, by name.
    pub fn snapshot(&self) -> BTreeMap<String, Arc<Version>> {
        self.entries()
            .iter()
            .filter_map(|(name, e)| Some((name.clone(), e.current.clone()?)))
            .collect()
    }

    /// Makes `version` the current one of `name`; `previous` (when given) replaces the kept
    /// previous version.
    pub fn install(&self, name: &str, version: Arc<Version>, previous: Option<Previous>) {
        let mut entries = self.entries();
        let entry = entries.entry(name.to_owned()).or_default();
        entry.current = Some(version);
        if previous.is_some() {
            entry.previous = previous;
        }
    }

    /// Unloads `name` (dropped once the last state and call holding it end), keeping
    /// `previous` for a rollback.
    pub fn remove(&self, name: &str, previous: Option<Previous>) {
        let mut entries = self.entries();
        if let Some(entry) = entries.get_mut(name) {
            entry.current = None;
            if previous.is_some() {
                entry.previous = previous;
            }
        }
    }

    /// What the admin API shows of `name`; `used_by` is who uses it in the running config.
    pub fn entry(&self, name: &str, used_by: Vec<String>) -> Option<PluginEntry> {
        let entries = self.entries();
        let entry = entries.get(name)?;
        let current = entry.current.as_ref()?;
        Some(shown(name, current, entry.previous.as_ref(), used_by))
    }
}

/// A version as the admin API shows it.
fn shown(
    name: &str,
    version: &Version,
    previous: Option<&Previous>,
    used_by: Vec<String>,
) -> PluginEntry {
    let facts = version.plugin.facts();
    PluginEntry {
        name: name.to_owned(),
        kind: facts.world.as_str().to_owned(),
        world: facts.world.world().to_owned(),
        wit_version: facts.wit_version.clone(),
        version: version.plugin.version().to_owned(),
        digest: facts.digest.clone(),
        size_bytes: facts.size_bytes,
        loaded_at: version
            .loaded_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        calls: version.plugin.calls(),
        used_by,
        previous: previous.map(|p| PreviousVersion {
            version: p.version.clone(),
            digest: p.digest.clone(),
        }),
        source: version.source.to_string(),
    }
}

/// The registry's name of the plugin file `path`: its stem (`dist/plugins/groq.wasm` → `groq`).
pub fn name_of(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}
