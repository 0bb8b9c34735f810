//! Where the artifacts the tests drive live: the `aigw` binary, the built plugins, Python.

use std::path::{Path, PathBuf};

/// The repository root (the workspace this crate belongs to).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The gateway binary: `$AIGW_BIN`, or `<root>/target/debug/aigw`.
///
/// # Panics
/// When the binary does not exist, saying how to build it.
pub fn aigw_bin() -> PathBuf {
    let path = match std::env::var_os("AIGW_BIN") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("target").join("debug").join("aigw"),
    };
    if !path.is_file() {
        panic!(
            "the aigw binary is missing at {}: build it with `cargo build -p aigw` \
             (cargo xtask test does), or point AIGW_BIN at one",
            path.display()
        );
    }
    path
}

/// The cache home test gateways get as `XDG_CACHE_HOME`, so their compiled plugins are shared
/// under `<root>/target/compile-cache/aigw/compiled` (the config's default `cache_dir`).
pub fn compile_cache_home() -> PathBuf {
    workspace_root().join("target").join("compile-cache")
}

/// A file under `<root>/dist/` that `cargo xtask plugins` builds, e.g. `plugins/groq.wasm` or
/// `test-plugins/hostile.wasm`.
///
/// # Panics
/// When it is missing, saying how to build it.
pub fn built(path: &str) -> PathBuf {
    let file = workspace_root().join("dist").join(path);
    assert!(
        file.exists(),
        "{} is missing: build the plugins with `cargo xtask plugins` (cargo xtask test does)",
        file.display()
    );
    file
}

/// The built provider plugins, one `<plugin>.wasm` each (`groq.wasm`, `gemini.wasm`, …), where
/// `cargo xtask plugins` puts them: `<root>/dist/plugins`.
pub fn plugins_dir() -> PathBuf {
    workspace_root().join("dist").join("plugins")
}

/// A plugin built only for tests, e.g. `test_plugin("hostile")` → `<root>/dist/test-plugins/hostile.wasm`.
pub fn test_plugin(name: &str) -> PathBuf {
    workspace_root()
        .join("dist")
        .join("test-plugins")
        .join(format!("{name}.wasm"))
}

/// The Python with the `openai` SDK: `$AIGW_PYTHON`, or `<root>/target/py/bin/python`
/// (the virtualenv `cargo xtask test` creates).
pub fn python() -> PathBuf {
    match std::env::var_os("AIGW_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => workspace_root()
            .join("target")
            .join("py")
            .join("bin")
            .join("python"),
    }
}
