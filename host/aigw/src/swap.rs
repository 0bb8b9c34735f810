//! Hot swap: the one path every change of a running gateway's plugins or config takes
//! (`/admin/plugins`, the plugins-directory watcher, a config reload). A change loads what it
//! needs off the request path (compile, describe, warm), builds a complete new served state
//! from the running config and the registry with the change applied (so a provider or tool
//! that refuses the new plugin refuses the change, and the old state goes on serving), writes
//! the plugin's file (atomically, the replaced version kept under `.previous/`), and only then
//! swaps the state in ([`Service::swap`]): calls and streams in flight finish on the state, and
//! so the plugin instances, they started on; the old version is dropped when its last user
//! ends. Changes are applied one at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Instant, SystemTime};

use aigw_server::{Pending, PluginControl, PluginEntry, PluginError, Put, Service};

use crate::config::Config;
use crate::registry::{Previous, Registry, Source, Version};
use crate::state::{self, Process, short};

/// The folder under `[plugins] dir` the replaced versions are kept in.
pub const PREVIOUS_DIR: &str = ".previous";

/// The config a running gateway serves, with its TOML tables (to tell which sections a reload
/// changed).
pub struct Running {
    pub config: Config,
    pub table: toml::Table,
}

/// A running gateway's plugins and config, and how they change.
pub struct Swapper {
    pub process: Process,
    pub registry: Registry,
    dir: PathBuf,
    max_upload: usize,
    running: Mutex<Arc<Running>>,
    service: OnceLock<Weak<Service>>,
    /// Held by each change from its first check to its swap, so changes do not interleave
    /// (two uploads of one name, an upload and a reload).
    turn: tokio::sync::Mutex<()>,
}

impl Swapper {
    pub fn new(process: Process, registry: Registry, running: Running) -> Swapper {
        Swapper {
            dir: running.config.plugins.dir.clone(),
            max_upload: running.config.plugins.max_upload_bytes,
            process,
            registry,
            running: Mutex::new(Arc::new(running)),
            service: OnceLock::new(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// The service new states are swapped into (held weakly: the service holds this).
    pub fn attach(&self, service: &Arc<Service>) {
        let _ = self.service.set(Arc::downgrade(service));
    }

    /// The config serving now.
    pub fn running(&self) -> Arc<Running> {
        Arc::clone(
            &self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn service(&self) -> Result<Arc<Service>, PluginError> {
        self.service
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| PluginError::Storage("the gateway is shutting down".into()))
    }

    /// The folder plugin files are read from and written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, name: &str) -> Option<PluginEntry> {
        let running = self.running();
        self.registry
            .entry(name, state::used_by(&running.config, name))
    }

    /// Adds or replaces the plugin `name` with `bytes` (from an upload, or the file the
    /// watcher saw change): the whole path of a swap. Bytes equal to the loaded version's
    /// change nothing.
    pub async fn replace(
        &self,
        name: &str,
        bytes: Vec<u8>,
        source: Source,
    ) -> Result<(Put, PluginEntry), PluginError> {
        if bytes.is_empty() {
            return Err(PluginError::Invalid(
                "the component is empty (0 bytes); send its bytes (curl --data-binary @file.wasm)"
                    .into(),
            ));
        }
        let _turn = self.turn.lock().await;
        let started = Instant::now();
        let old = self.registry.current(name);
        let digest = digest_of(&bytes);
        if let Some(old) = &old
            && old.digest() == digest
        {
            let entry = self
                .entry(name)
                .ok_or_else(|| PluginError::NotFound(name.into()))?;
            return Ok((Put::Unchanged, entry));
        }
        let facts = aigw_runtime::inspect(&bytes).map_err(PluginError::Invalid)?;
        let running = self.running();
        let used_by = state::used_by(&running.config, name);
        if let Some(old) = &old
            && old.kind() != facts.world
            && !used_by.is_empty()
        {
            return Err(PluginError::InUse {
                message: format!(
                    "the plugin `{name}` is a {} plugin used by {}; a {} plugin cannot replace \
                     it while they use it",
                    old.kind().as_str(),
                    used_by.join(", "),
                    facts.world.as_str()
                ),
                used_by,
            });
        }
        let kept: Arc<[u8]> = Arc::from(bytes.as_slice());
        // Labelled with its file (where it is, or is about to be, written), as at start.
        let label = match &source {
            Source::File(path) => path.display().to_string(),
            Source::Upload | Source::Rollback => self.file_of(name).display().to_string(),
        };
        let plugin = aigw_runtime::load(&self.process.runtime, &label, bytes)
            .await
            .map_err(|e| PluginError::Invalid(e.message))?;
        let version = Arc::new(Version {
            plugin,
            bytes: Arc::clone(&kept),
            source: source.clone(),
            loaded_at: SystemTime::now(),
        });
        // Nothing serves a plugin no config names yet: it is loaded (so validated) and listed.
        let next = if used_by.is_empty() {
            None
        } else {
            Some(self.rebuilt(&running.config, name, Some(Arc::clone(&version)))?)
        };
        let previous = match &old {
            Some(old) => Some(self.keep_previous(name, old).await?),
            None => self.registry.previous(name),
        };
        if !matches!(source, Source::File(_)) {
            write_atomic(&self.file_of(name), &kept)
                .await
                .map_err(PluginError::Storage)?;
        }
        self.registry.install(name, Arc::clone(&version), previous);
        if let Some(next) = next {
            self.service()?.swap(next);
        }
        log_swap(name, old.as_deref(), &version, &source, started);
        let entry = self
            .entry(name)
            .ok_or_else(|| PluginError::NotFound(name.into()))?;
        Ok((
            if old.is_some() {
                Put::Replaced
            } else {
                Put::Added
            },
            entry,
        ))
    }

    /// Unloads the unused plugin `name`, keeping its bytes as the previous version; its file is
    /// removed unless `file_gone` (the watcher saw it removed).
    pub async fn unload(&self, name: &str, file_gone: bool) -> Result<(), PluginError> {
        let _turn = self.turn.lock().await;
        let Some(old) = self.registry.current(name) else {
            return Err(PluginError::NotFound(name.into()));
        };
        let used_by = state::used_by(&self.running().config, name);
        if !used_by.is_empty() {
            return Err(PluginError::InUse {
                message: format!(
                    "the plugin `{name}` is used by {}; change the config first",
                    used_by.join(", ")
                ),
                used_by,
            });
        }
        let previous = self.keep_previous(name, &old).await?;
        if !file_gone {
            match tokio::fs::remove_file(self.file_of(name)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(PluginError::Storage(format!("removing its file: {e}"))),
            }
        }
        self.registry.remove(name, Some(previous));
        tracing::info!(
            plugin = name,
            version = old.plugin.version(),
            digest = %short(old.digest()),
            "plugin unloaded"
        );
        Ok(())
    }

    /// Brings back the previous version of `name` (its file too); the version it replaces
    /// becomes the previous one, so a second rollback undoes the first.
    pub async fn roll_back(&self, name: &str) -> Result<(Put, PluginEntry), PluginError> {
        let Some(previous) = self.registry.previous(name) else {
            return Err(match self.registry.current(name) {
                Some(_) => PluginError::NoPrevious(name.into()),
                None => PluginError::NotFound(name.into()),
            });
        };
        let bytes = tokio::fs::read(&previous.file).await.map_err(|e| {
            PluginError::Storage(format!(
                "cannot read the previous version {}: {e}",
                previous.file.display()
            ))
        })?;
        if digest_of(&bytes) != previous.digest {
            return Err(PluginError::Storage(format!(
                "{} no longer holds the previous version (its digest changed)",
                previous.file.display()
            )));
        }
        // The same path as an upload (which takes the turn): a change that lands between
        // reading the previous version and this is rolled back over, which is what was asked.
        self.replace(name, bytes, Source::Rollback).await
    }

    /// Applies a new config (validated, with its TOML tables): sections that need a restart
    /// keep their running values (and are named in a warning), plugins it names that are not
    /// loaded yet are loaded, and a new state is built and swapped in. A config that cannot be
    /// served is refused with its reason; the running one stays.
    pub async fn reload(&self, config: Config, table: toml::Table) -> anyhow::Result<()> {
        let _turn = self.turn.lock().await;
        let started = Instant::now();
        let running = self.running();
        let mut config = config;
        let kept = restart_sections(&running.table, &table);
        if !kept.is_empty() {
            tracing::warn!(
                sections = %kept.join(", "),
                "config reload: these sections changed but need a restart; their running values \
                 stay until then"
            );
        }
        let old = &running.config;
        config.server = old.server.clone();
        config.plugins = old.plugins.clone();
        config.memory = old.memory.clone();
        config.sessions = old.sessions;
        config.auth = old.auth.clone();
        config.limits = old.limits.clone();
        config.usage = old.usage;
        config.failover = old.failover.clone();
        state::load_missing(&config, &self.process.runtime, &self.registry).await?;
        let service = self.service().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let current = service.state();
        // A remote MCP server whose table did not change keeps its client (and its listing);
        // a new or changed one starts listing when its state serves (the old client's lister
        // stops once the state holding it is gone: it holds the client weakly).
        let mut existing = state::remote_by_name(&current);
        let mut remote = Vec::with_capacity(config.mcp_servers.len());
        let mut fresh = Vec::new();
        for options in &config.mcp_servers {
            let unchanged = section(&running.table, "mcp_servers", &options.name)
                == section(&table, "mcp_servers", &options.name);
            match existing.remove(&options.name) {
                Some(server) if unchanged => remote.push(server),
                _ => {
                    let server = state::remote_server(&config, options)?;
                    fresh.push(Arc::clone(&server));
                    remote.push(server);
                }
            }
        }
        let plugins = self.registry.snapshot();
        let next = state::build(
            &config,
            &plugins,
            Arc::clone(current.health()),
            &self.process,
            remote,
        )?;
        state::warn_about(&next);
        drop(current);
        service.swap(next);
        for server in &fresh {
            drop(server.spawn_lister());
        }
        *self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Arc::new(Running { config, table });
        tracing::info!(
            took_ms = started.elapsed().as_millis() as u64,
            "config reloaded; the new state serves"
        );
        Ok(())
    }

    /// The state serving now, rebuilt with `name` replaced by `version` (or removed).
    fn rebuilt(
        &self,
        config: &Config,
        name: &str,
        version: Option<Arc<Version>>,
    ) -> Result<aigw_server::Gateway, PluginError> {
        let current = self.service()?.state();
        let plugins = state::with_replaced(&self.registry, name, version);
        let remote = current.tools.remote().to_vec();
        state::build(
            config,
            &plugins,
            Arc::clone(current.health()),
            &self.process,
            remote,
        )
        .map_err(|e| PluginError::Invalid(format!("{e:#}")))
    }

    /// Writes `old`'s bytes to `.previous/<name>.wasm`, for a rollback.
    async fn keep_previous(&self, name: &str, old: &Version) -> Result<Previous, PluginError> {
        let file = self.dir.join(PREVIOUS_DIR).join(format!("{name}.wasm"));
        write_atomic(&file, &old.bytes)
            .await
            .map_err(PluginError::Storage)?;
        Ok(Previous {
            version: old.plugin.version().to_owned(),
            digest: old.digest().to_owned(),
            file,
        })
    }

    /// `<dir>/<name>.wasm`.
    pub fn file_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wasm"))
    }
}

impl PluginControl for Swapper {
    fn list(&self) -> Vec<PluginEntry> {
        let running = self.running();
        self.registry
            .snapshot()
            .keys()
            .filter_map(|name| {
                self.registry
                    .entry(name, state::used_by(&running.config, name))
            })
            .collect()
    }

    fn get(&self, name: &str) -> Option<PluginEntry> {
        self.entry(name)
    }

    fn max_upload_bytes(&self) -> usize {
        self.max_upload
    }

    fn put(
        &self,
        name: String,
        bytes: Vec<u8>,
    ) -> Pending<'_, Result<(Put, PluginEntry), PluginError>> {
        Box::pin(async move { self.replace(&name, bytes, Source::Upload).await })
    }

    fn delete(&self, name: String) -> Pending<'_, Result<(), PluginError>> {
        Box::pin(async move { self.unload(&name, false).await })
    }

    fn rollback(&self, name: String) -> Pending<'_, Result<PluginEntry, PluginError>> {
        Box::pin(async move { self.roll_back(&name).await.map(|(_, entry)| entry) })
    }
}

/// The sections whose settings are fixed for the process (listen address, TLS, limits, the
/// store, authentication, the limiter, usage, the plugin runtime, target health's settings).
const RESTART_SECTIONS: &[&str] = &[
    "server", "plugins", "memory", "auth", "limits", "usage", "failover",
];

/// The restart-only sections `next` changes from `running`, as `[name]`.
pub fn restart_sections(running: &toml::Table, next: &toml::Table) -> Vec<String> {
    RESTART_SECTIONS
        .iter()
        .filter(|name| running.get(**name) != next.get(**name))
        .map(|name| format!("[{name}]"))
        .collect()
}

/// The table `[<section>.<name>]` of `table`, if any.
fn section<'t>(table: &'t toml::Table, section: &str, name: &str) -> Option<&'t toml::Value> {
    table.get(section)?.as_table()?.get(name)
}

/// `sha256:<hex>` of `bytes`, as the runtime's facts spell a digest.
pub fn digest_of(bytes: &[u8]) -> String {
    aigw_runtime::digest(bytes)
}

/// Writes `bytes` to `path` so a reader sees the old file or the new one, never a part:
/// a temporary file beside it (a dot name, which the watcher skips), synced, then renamed.
async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let bytes = bytes.to_vec();
    let shown = path.to_owned();
    let (path, parent) = (path.to_owned(), parent.to_owned());
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&parent)?;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, &path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("writing {}: {e}", shown.display())),
        Err(e) => Err(format!("writing {}: {e}", shown.display())),
    }
}

/// The one line each swap logs: what, old → new version and digest, where it came from, how
/// long until the new version served.
fn log_swap(name: &str, old: Option<&Version>, new: &Version, source: &Source, started: Instant) {
    let from = old.map_or_else(
        || "none".to_owned(),
        |old| format!("{} {}", old.plugin.version(), short(old.digest())),
    );
    tracing::info!(
        plugin = name,
        from = %from,
        to = %format!("{} {}", new.plugin.version(), short(new.digest())),
        source = %source,
        took_ms = started.elapsed().as_millis() as u64,
        "plugin swapped; the new version serves"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn restart_sections_are_the_changed_fixed_ones() {
        let running = table("[server]\nlisten = \"127.0.0.1:1\"\n[models.a]\ntargets = []\n");
        let next = table(
            "[server]\nlisten = \"127.0.0.1:2\"\n[models.b]\ntargets = []\n[memory]\npath = \"x\"\n",
        );
        assert_eq!(restart_sections(&running, &next), ["[server]", "[memory]"]);
        assert!(restart_sections(&running, &running).is_empty());
    }

    #[tokio::test]
    async fn an_atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("p.wasm");
        write_atomic(&path, b"one").await.unwrap();
        write_atomic(&path, b"two").await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["p.wasm"]);
    }
}
