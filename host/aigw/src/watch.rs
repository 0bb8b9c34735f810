//! The plugins-directory watcher: `[plugins] dir` polled every `watch_interval_ms`, the way
//! the TLS certificate is (`host/server/src/tls.rs`): one `stat` per `<name>.wasm` (size,
//! modification time, inode), the file read and digested only when those changed and then
//! held still for one more poll (so a file being copied in is not read half-written). A new or
//! changed file takes the upload's path ([`Swapper::replace`]); bytes equal to the loaded
//! version's (a file this process's `PUT` wrote) change nothing. A broken file is logged with
//! the reason and the old version keeps serving; it is tried again when it changes again. A
//! removed file whose plugin is in use keeps serving (with a warning); an unused one is
//! unloaded. Names starting with `.` (temporary files, `.previous/`) are never looked at.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::registry::Source;
use crate::state;
use crate::swap::Swapper;

/// What one `stat` says of a file; a change of any field means "look again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> Option<FileStamp> {
        std::fs::metadata(path)
            .ok()
            .map(|meta| FileStamp::from(&meta))
    }

    fn from(meta: &Metadata) -> FileStamp {
        FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: inode(meta),
        }
    }
}

#[cfg(unix)]
fn inode(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &Metadata) -> u64 {
    0
}

/// The plugin files of `dir` now: name → (path, stamp).
fn scan(dir: &Path) -> HashMap<String, (PathBuf, FileStamp)> {
    let mut found = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(name) = file_name.strip_suffix(".wasm") else {
            continue;
        };
        if name.starts_with('.') || !aigw_server::valid_plugin_name(name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_file() {
            found.insert(name.to_owned(), (entry.path(), FileStamp::from(&meta)));
        }
    }
    found
}

/// What the watcher knows of each file.
struct Watched {
    /// What the last poll saw.
    seen: HashMap<String, FileStamp>,
    /// What was last acted on (the file at start, or the version last tried).
    acted: HashMap<String, FileStamp>,
    /// Removed files whose plugin is in use, warned about once.
    warned: HashSet<String>,
}

/// Polls `dir` every `interval` until `swapper` is dropped. Files there at start are taken as
/// they are (the plugins the config names were loaded from them).
pub fn spawn(swapper: &Arc<Swapper>, interval: Duration) -> tokio::task::JoinHandle<()> {
    let weak: Weak<Swapper> = Arc::downgrade(swapper);
    let dir = swapper.dir().to_owned();
    // Taken now, not in the task: a file written once this returns is a change.
    let now: HashMap<String, FileStamp> = scan(&dir)
        .into_iter()
        .map(|(name, (_, stamp))| (name, stamp))
        .collect();
    tokio::spawn(async move {
        let mut watched = Watched {
            seen: now.clone(),
            acted: now,
            warned: HashSet::new(),
        };
        loop {
            tokio::time::sleep(interval).await;
            let Some(swapper) = weak.upgrade() else {
                return;
            };
            poll(&swapper, &dir, &mut watched).await;
        }
    })
}

async fn poll(swapper: &Swapper, dir: &Path, watched: &mut Watched) {
    let found = scan(dir);
    for (name, (path, stamp)) in &found {
        let settled = watched.seen.get(name) == Some(stamp);
        watched.seen.insert(name.clone(), *stamp);
        watched.warned.remove(name);
        if !settled || watched.acted.get(name) == Some(stamp) {
            continue;
        }
        watched.acted.insert(name.clone(), *stamp);
        changed(swapper, name, path).await;
    }
    let removed: Vec<String> = watched
        .seen
        .keys()
        .filter(|name| !found.contains_key(*name))
        .cloned()
        .collect();
    for name in removed {
        watched.seen.remove(&name);
        watched.acted.remove(&name);
        if swapper.registry.current(&name).is_none() {
            continue;
        }
        let used_by = state::used_by(&swapper.running().config, &name);
        if used_by.is_empty() {
            match swapper.unload(&name, true).await {
                Ok(()) => tracing::info!(plugin = %name, "plugin file removed; unloaded"),
                Err(e) => tracing::warn!(
                    plugin = %name,
                    reason = %reason(&e),
                    "plugin file removed; could not unload"
                ),
            }
        } else if watched.warned.insert(name.clone()) {
            tracing::warn!(
                plugin = %name,
                used_by = %used_by.join(", "),
                "plugin file removed, but the running config uses it: the loaded version keeps \
                 serving (a restart would fail without the file)"
            );
        }
    }
}

/// A new or changed `<name>.wasm`: loaded and swapped in, or logged with the reason.
async fn changed(swapper: &Swapper, name: &str, path: &Path) {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(plugin = name, file = %path.display(), "cannot read the plugin file: {e}");
            return;
        }
    };
    if let Some(current) = swapper.registry.current(name)
        && current.digest() == aigw_runtime::digest(&bytes)
    {
        // This process wrote it (an upload, a rollback), or it was touched: nothing to do.
        return;
    }
    if let Err(e) = swapper
        .replace(name, bytes, Source::File(path.to_owned()))
        .await
    {
        tracing::warn!(
            plugin = name,
            file = %path.display(),
            reason = %reason(&e),
            "plugin file refused; the loaded version (if any) keeps serving"
        );
    }
}

/// The operator's reason in a refusal.
pub fn reason(error: &aigw_server::PluginError) -> String {
    use aigw_server::PluginError::*;
    match error {
        NotFound(name) => format!("no plugin `{name}`"),
        Invalid(reason) | Storage(reason) => reason.clone(),
        InUse { message, .. } => message.clone(),
        NoPrevious(name) => format!("`{name}` has no previous version"),
        BadName(name) => format!("`{name}` is not a plugin name"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_sees_plugin_files_only_never_hidden_or_temporary_ones() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "groq.wasm",
            "tool_echo.wasm",
            ".groq.wasm.tmp-42",
            ".hidden.wasm",
            "notes.txt",
            "spa ce.wasm",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join(".previous")).unwrap();
        std::fs::write(dir.path().join(".previous/groq.wasm"), b"old").unwrap();
        std::fs::create_dir(dir.path().join("folder.wasm")).unwrap();
        let mut names: Vec<String> = scan(dir.path()).into_keys().collect();
        names.sort();
        assert_eq!(names, ["groq", "tool_echo"]);
    }

    #[test]
    fn a_stamp_changes_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        assert_eq!(FileStamp::of(&path), None);
        std::fs::write(&path, b"one").unwrap();
        let first = FileStamp::of(&path).unwrap();
        std::fs::write(&path, b"three").unwrap();
        assert_ne!(FileStamp::of(&path), Some(first), "the size changed");
    }
}
