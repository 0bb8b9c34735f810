//! `bench --tool-loop`: what one step of the chat tool loop adds. The gateway also serves
//! `tooled`, the mock's `tool-call` model with the `tool-echo` plugin's `echo` as an aigw tool:
//! each request is two model calls (the call, then the answer after its result) and one tool
//! call. Its row beside "through aigw" (one model call) shows the step's cost: one more mock
//! round trip (the "direct to mock" row's latency) plus the gateway's tool call and loop work.

use std::path::Path;

use bytes::Bytes;

use super::Mode;

/// The row's label.
pub(super) const LABEL: &str = "through aigw, one tool-loop step";

/// The alias the tool loop's requests name.
pub(super) const ALIAS: &str = "tooled";

/// The config the tool-loop row adds: the `tool-echo` test plugin (`plugin`) as the tool
/// `echo`, and the alias on the mock's `tool-call` model.
pub(super) fn config(plugin: &Path) -> String {
    format!(
        "\n[tools.chat-echo]\nplugin = \"{}\"\n\n[models.{ALIAS}]\ntargets = [\"groq/tool-call\"]\n",
        plugin.display()
    )
}

/// The request: the usual prompt, with `echo` named as an aigw tool.
pub(super) fn body(mode: Mode) -> Bytes {
    let body = serde_json::json!({
        "model": ALIAS,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "In one sentence: why do HTTP clients keep connections alive?"},
        ],
        "max_tokens": 64,
        "tools": [{"type": "aigw_tool", "name": "echo"}],
        "stream": mode == Mode::Stream,
    });
    Bytes::from(body.to_string())
}
