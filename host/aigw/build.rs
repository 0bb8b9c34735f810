//! Embeds what `aigw plugin new` writes into a project: the WIT (`wit/*.wit`), the templates
//! (`sdk/templates/<lang>/<kind>/**`) and the vendored guest SDKs (`sdk/python/aigw_plugin/**`,
//! `sdk/js/aigw-plugin.js`, `sdk/js/src/**`), and the JS toolchain's pins
//! (`sdk/js/toolchain/package.json`). The binary then scaffolds a project anywhere, with
//! no source tree at hand. A folder that does not exist yet embeds nothing: its language is
//! reported as unavailable, and adding its files needs no code change here.
//!
//! Generates `$OUT_DIR/embedded.rs`: `FILES`, every file as (path from the repository root,
//! bytes), sorted by path.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What is embedded, relative to the repository root: folders are walked, files taken as is.
const ROOTS: &[&str] = &[
    "wit",
    "sdk/templates",
    "sdk/python/aigw_plugin",
    "sdk/js/aigw-plugin.js",
    "sdk/js/src",
    // Not written into projects: the pinned JS toolchain, named in `build`'s advice.
    "sdk/js/toolchain/package.json",
];

/// Never part of a project: build outputs, caches, installed dependencies.
const SKIPPED: &[&str] = &[
    "target",
    "node_modules",
    "__pycache__",
    ".venv",
    ".git",
    ".DS_Store",
];

fn main() {
    if let Err(e) = embed() {
        // A build script reports failure by exiting non-zero with the reason on stderr.
        eprintln!("aigw build script: {e}");
        std::process::exit(1);
    }
}

fn embed() -> Result<(), String> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?;
    let root = Path::new(&manifest_dir).join("..").join("..");
    let out_dir = std::env::var_os("OUT_DIR").ok_or("OUT_DIR unset")?;

    let mut files = Vec::new();
    for relative in ROOTS {
        let path = root.join(relative);
        // Cargo reruns the script when anything under a watched folder changes. A path that does
        // not exist would rerun it on every build, so its nearest existing parent is watched
        // instead (its creation is then noticed).
        println!("cargo:rerun-if-changed={}", watched(&path).display());
        if path.is_dir() {
            walk(&path, relative, &mut files)?;
        } else if path.is_file() {
            files.push((relative.to_string(), path));
        }
    }
    files.sort();

    let mut code = String::from(
        "/// Every embedded file: (path from the repository root, its bytes), sorted by path.\n\
         pub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (relative, path) in &files {
        let absolute = path
            .canonicalize()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let absolute = absolute
            .to_str()
            .ok_or_else(|| format!("{}: not UTF-8", absolute.display()))?;
        let _ = writeln!(code, "    ({relative:?}, include_bytes!({absolute:?})),");
    }
    code.push_str("];\n");
    let target = Path::new(&out_dir).join("embedded.rs");
    std::fs::write(&target, code).map_err(|e| format!("{}: {e}", target.display()))
}

fn watched(path: &Path) -> PathBuf {
    let mut current = path.to_path_buf();
    while !current.exists() {
        match current.parent() {
            Some(parent) => current = parent.to_path_buf(),
            None => break,
        }
    }
    current
}

fn walk(dir: &Path, relative: &str, files: &mut Vec<(String, PathBuf)>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(format!("{}: a file name that is not UTF-8", dir.display()));
        };
        if SKIPPED.contains(&name) || name.ends_with(".pyc") {
            continue;
        }
        let path = entry.path();
        let child = format!("{relative}/{name}");
        if path.is_dir() {
            walk(&path, &child, files)?;
        } else {
            files.push((child, path));
        }
    }
    Ok(())
}
