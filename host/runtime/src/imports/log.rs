//! The `log` import: a plugin's log lines reach the host's log, tagged with the plugin and, for
//! tool calls, the caller's namespace and key. Every world imports it and it needs no grant:
//! logging reaches nothing outside the host.
//!
//! Per call, a message is cut at [`LOG_MESSAGE_MAX`] bytes and at most [`LOG_LINES_PER_CALL`]
//! lines are forwarded; the rest are counted and reported once when the call ends, so a plugin
//! logging in a loop cannot flood the host's log.

use wasmtime::component::{HasData, Linker};

use crate::bindings::log::{self, Level};
use crate::context::CallContext;
use crate::state::HostState;

/// Longest plugin log message forwarded to the host's log.
pub(crate) const LOG_MESSAGE_MAX: usize = 4096;
/// Lines one call may forward.
pub(crate) const LOG_LINES_PER_CALL: u32 = 64;

/// Lines forwarded and dropped during the running call.
#[derive(Debug, Default)]
pub(crate) struct CallState {
    lines: u32,
    dropped: u32,
}

impl CallState {
    pub(crate) fn end_call(&mut self, plugin: &str) {
        if self.dropped > 0 {
            tracing::warn!(
                plugin,
                dropped = self.dropped,
                "plugin log lines over the limit of {LOG_LINES_PER_CALL} per call were dropped"
            );
        }
        *self = CallState::default();
    }
}

/// What the `log` import sees of the store: the plugin's name, the caller, its counters.
pub(crate) struct LogHost<'a> {
    plugin: &'a str,
    call: Option<&'a CallContext>,
    state: &'a mut CallState,
}

struct LogImport;

impl HasData for LogImport {
    type Data<'a> = LogHost<'a>;
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add_to_linker::<HostState, LogImport>(linker, |s| LogHost {
        plugin: &s.plugin,
        call: s.call.as_ref(),
        state: &mut s.log,
    })
}

impl log::Host for LogHost<'_> {
    async fn emit(&mut self, level: Level, mut message: String) {
        if self.state.lines >= LOG_LINES_PER_CALL {
            self.state.dropped += 1;
            return;
        }
        self.state.lines += 1;
        truncate(&mut message, LOG_MESSAGE_MAX);
        let plugin = self.plugin;
        let namespace = self.call.and_then(|c| c.namespace.as_deref());
        let key = self.call.and_then(|c| c.key.as_deref());
        match level {
            Level::Trace => tracing::trace!(plugin, namespace, key, "{message}"),
            Level::Debug => tracing::debug!(plugin, namespace, key, "{message}"),
            Level::Info => tracing::info!(plugin, namespace, key, "{message}"),
            Level::Warn => tracing::warn!(plugin, namespace, key, "{message}"),
            Level::Error => tracing::error!(plugin, namespace, key, "{message}"),
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_past_the_per_call_limit_are_counted_not_forwarded_and_the_count_resets() {
        let mut state = CallState::default();
        let mut host = LogHost {
            plugin: "p",
            call: None,
            state: &mut state,
        };
        for _ in 0..LOG_LINES_PER_CALL + 5 {
            log::Host::emit(&mut host, Level::Info, "line".into()).await;
        }
        assert_eq!(state.lines, LOG_LINES_PER_CALL);
        assert_eq!(state.dropped, 5);
        state.end_call("p");
        assert_eq!((state.lines, state.dropped), (0, 0));
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let mut text = "aé".repeat(10);
        truncate(&mut text, 4);
        assert_eq!(text, "aéa");
    }
}
