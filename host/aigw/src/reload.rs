//! Config reload: on `SIGHUP`, and when the config file changes (polled like the plugins
//! directory, every `[plugins] watch_interval_ms`), the file is read and validated again. A bad
//! config is logged with its `file:line:column` error and the running one stays; a good one is
//! applied by [`Swapper::reload`] (a new state over the registry's plugins, swapped in; the
//! sections that need a restart keep their running values, with a warning naming them).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::swap::Swapper;
use crate::watch::FileStamp;

/// Reloads on every `SIGHUP` and, with `interval`, whenever the file at `path` changes, until
/// `swapper` is dropped.
pub fn spawn(
    swapper: &Arc<Swapper>,
    path: PathBuf,
    interval: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    let weak: Weak<Swapper> = Arc::downgrade(swapper);
    // Taken now, not in the task: a write once this returns is a change.
    let mut seen = FileStamp::of(&path);
    let mut acted = seen;
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP; the config reloads only on change");
            None
        }
    };
    tokio::spawn(async move {
        loop {
            #[cfg(unix)]
            let hup = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await.is_some(),
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup = std::future::pending::<bool>();
            let tick = async {
                match interval {
                    Some(interval) => tokio::time::sleep(interval).await,
                    None => std::future::pending().await,
                }
            };
            let signalled = tokio::select! {
                got = hup => got,
                () = tick => false,
            };
            let Some(swapper) = weak.upgrade() else {
                return;
            };
            if signalled {
                tracing::info!(config = %path.display(), "SIGHUP: reloading the config");
                reload(&swapper, &path).await;
                acted = FileStamp::of(&path);
                seen = acted;
                continue;
            }
            // A change is acted on once the file held still for one poll (an editor's write
            // may take more than one).
            let now = FileStamp::of(&path);
            let settled = now == seen;
            seen = now;
            if settled && now != acted && now.is_some() {
                acted = now;
                tracing::info!(config = %path.display(), "the config file changed: reloading");
                reload(&swapper, &path).await;
            }
        }
    })
}

/// Reads, validates and applies the config at `path`; logs what happened.
pub async fn reload(swapper: &Swapper, path: &Path) {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(
                config = %path.display(),
                "config reload refused: cannot read the file ({e}); the running config stays"
            );
            return;
        }
    };
    let config = match crate::config::parse(path, &text, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("config reload refused: {e}; the running config stays");
            return;
        }
    };
    // The config parsed, so its text is TOML.
    let table = match text.parse::<toml::Table>() {
        Ok(table) => table,
        Err(e) => {
            tracing::error!("config reload refused: {e}; the running config stays");
            return;
        }
    };
    if let Err(e) = swapper.reload(config, table).await {
        tracing::error!("config reload refused: {e:#}; the running config stays");
    }
}
