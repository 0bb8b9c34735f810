//! Support for the hot-swap tests (`plugins_admin`, `reload`, `swap_load`): a plugins directory
//! of the test's own (the gateway writes into it), a config over it, and the `/admin/plugins`
//! calls.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::gateway::Gateway;
use crate::mock::MockUpstream;
use crate::paths;
use crate::setup::toml_str;

/// The bytes of a built plugin, `dist/plugins/<name>.wasm`.
pub fn plugin_bytes(name: &str) -> Vec<u8> {
    read(&paths::built(&format!("plugins/{name}.wasm")))
}

/// The bytes of a test plugin, `dist/test-plugins/<name>.wasm`.
pub fn test_plugin_bytes(name: &str) -> Vec<u8> {
    read(&paths::built(&format!("test-plugins/{name}.wasm")))
}

fn read(path: &Path) -> Vec<u8> {
    match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

/// `bytes` (a built component) as if built against `aigw:plugin@<version>`: every
/// `aigw:plugin/<interface>@0.1.0` name it imports or exports renamed (same length, so the
/// binary stays well formed).
pub fn as_wit_version(bytes: &[u8], version: &str) -> Vec<u8> {
    assert_eq!(version.len(), "0.1.0".len(), "same length only");
    let mut out = bytes.to_vec();
    let prefix = b"aigw:plugin/";
    let mut i = 0;
    let mut renamed = 0;
    while let Some(at) = find(&out[i..], prefix) {
        let start = i + at + prefix.len();
        // The interface name, then `@0.1.0`.
        let mut end = start;
        while end < out.len() && (out[end].is_ascii_lowercase() || out[end] == b'-') {
            end += 1;
        }
        if out[end..].starts_with(b"@0.1.0") {
            out[end + 1..end + 6].copy_from_slice(version.as_bytes());
            renamed += 1;
        }
        i = end;
    }
    assert!(renamed > 0, "no aigw:plugin name to rename");
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A plugins directory of the test's own, which the gateway reads and writes.
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    /// A directory holding `<name>.wasm` for each `(name, built plugin)`, e.g.
    /// `("chat", "openai-compatible")`.
    pub fn with(files: &[(&str, &str)]) -> PluginDir {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a plugins directory: {e}"),
        };
        let made = PluginDir { dir };
        for (name, built) in files {
            made.write(name, &plugin_bytes(built));
        }
        made
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<dir>/<name>.wasm`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.wasm"))
    }

    /// Writes `<name>.wasm` the way an operator's `cp` would (in place, not atomically).
    pub fn write(&self, name: &str, bytes: &[u8]) {
        if let Err(e) = std::fs::write(self.file(name), bytes) {
            panic!("cannot write the plugin {name}: {e}");
        }
    }

    /// The `[plugins]` section over this directory, polled every `watch_ms` (0: not watched).
    pub fn section(&self, watch_ms: u64) -> String {
        format!(
            "[plugins]\ndir = {}\nwarm_instances = 2\ncall_timeout_ms = 1000\nwatch_interval_ms = {watch_ms}\n",
            toml_str(&self.path().to_string_lossy())
        )
    }
}

/// `[providers.<provider>]` over the plugin `<plugin>` (a registry name), at `mock`, with a key
/// (the groq plugin wants one; the OpenAI mock takes any).
pub fn provider(provider: &str, plugin: &str, mock: &MockUpstream) -> String {
    format!(
        "[providers.{provider}]\nplugin = {}\nbase_url = {}\napi_key = \"sk-swap-test\"\n",
        toml_str(plugin),
        toml_str(&mock.base_url())
    )
}

/// One admin call: `method path` with the admin key (if any) and `body` as the raw bytes.
pub async fn admin(
    gateway: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut request = gateway.client().request(method.clone(), gateway.url(path));
    if let Some(key) = gateway.admin_key() {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        // Components to `/admin/plugins`, JSON elsewhere (`/admin/keys`).
        let content_type = if path.starts_with("/admin/plugins") {
            "application/wasm"
        } else {
            "application/json"
        };
        request = request.header("content-type", content_type).body(body);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => panic!(
            "{method} {path} failed: {e}\n--- stderr ---\n{}",
            gateway.stderr()
        ),
    };
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// `PUT /admin/plugins/<name>` with `bytes`.
pub async fn put(gateway: &Gateway, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    admin(
        gateway,
        reqwest::Method::PUT,
        &format!("/admin/plugins/{name}"),
        Some(bytes),
    )
    .await
}

/// `GET /admin/plugins/<name>`.
pub async fn get(gateway: &Gateway, name: &str) -> (u16, Value) {
    admin(
        gateway,
        reqwest::Method::GET,
        &format!("/admin/plugins/{name}"),
        None,
    )
    .await
}

/// The digest the admin API shows for `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The model ids `GET /v1/models` lists.
pub async fn models(gateway: &Gateway) -> Vec<String> {
    let response = gateway.get("/v1/models").await;
    let body: Value = response.json().await.unwrap_or_default();
    body["data"]
        .as_array()
        .map(|data| {
            data.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
