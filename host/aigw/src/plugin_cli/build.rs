//! `aigw plugin build [DIR]`: builds the project in DIR with its language's toolchain (the same
//! commands xtask uses for the example plugins), writes `<DIR>/<name>.wasm`, then prints
//! `check`'s report of it. The toolchain's own output streams through; nothing is installed:
//! a missing tool is an error saying how to get the pinned version.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use super::{Lang, Manifest, check, templates};

/// The componentize-py release the Python SDK and examples are built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let manifest = Manifest::read(dir)?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let out = dir.join(format!("{}.wasm", manifest.name));
    let world = manifest.kind.world();
    eprintln!(
        "building the {} {} plugin `{}` in {}",
        manifest.lang.as_str(),
        manifest.kind.as_str(),
        manifest.name,
        dir.display()
    );
    let started = Instant::now();
    // The toolchains block while they run; keep them off the async workers.
    let built = {
        let dir = dir.clone();
        let out = out.clone();
        let lang = manifest.lang;
        tokio::task::spawn_blocking(move || match lang {
            Lang::Rust => rust(&dir, &out),
            Lang::Python => python(&dir, world, &out),
            Lang::Js => js(&dir, world, &out),
        })
        .await
        .context("the build was interrupted")?
    };
    built?;
    eprintln!(
        "built {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    check::run_for(&out, Some(manifest.kind), false).await
}

/// Runs `command` with its output streaming to ours; an error naming it when it fails.
fn stream(mut command: Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        anyhow::bail!("{what} failed ({status})");
    }
    Ok(())
}

/// An executable named `program` in one of `dirs`, then on `PATH`.
fn find(program: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    dirs.iter()
        .cloned()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// `cargo build --release --target wasm32-wasip2`: the cdylib it produces is the component.
fn rust(dir: &Path, out: &Path) -> anyhow::Result<()> {
    if find("cargo", &[]).is_none() {
        anyhow::bail!("cargo is not on PATH: install Rust (https://rustup.rs)");
    }
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc: install Rust (https://rustup.rs)")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
        anyhow::bail!(
            "the wasm32-wasip2 target is not installed for {}: run `rustup target add \
             wasm32-wasip2`",
            sysroot.display()
        );
    }
    let mut command = Command::new("cargo");
    command
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            // Artifacts as JSON on stdout (read below, to find the .wasm wherever the target
            // dir is), diagnostics rendered on stderr as usual.
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("$ cargo build --release --target wasm32-wasip2");
    let output = command
        .spawn()
        .and_then(|child| child.wait_with_output())
        .context("cannot run cargo")?;
    if !output.status.success() {
        anyhow::bail!("cargo build failed ({})", output.status);
    }
    let artifact = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .filter_map(|message| {
            message["filenames"].as_array().and_then(|files| {
                files
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .find(|file| file.ends_with(".wasm"))
                    .map(PathBuf::from)
            })
        })
        .next_back();
    let Some(artifact) = artifact else {
        anyhow::bail!(
            "cargo built no .wasm: the package needs `crate-type = [\"cdylib\"]` under [lib]"
        );
    };
    std::fs::copy(&artifact, out)
        .with_context(|| format!("cannot copy {} to {}", artifact.display(), out.display()))?;
    Ok(())
}

/// `componentize-py -d wit -w <world> componentize app -p <project> -o <out>`: the project holds
/// `app.py` and its copy of the `aigw_plugin` package.
fn python(dir: &Path, world: &str, out: &Path) -> anyhow::Result<()> {
    let Some(tool) = find("componentize-py", &[dir.join(".venv/bin")]) else {
        anyhow::bail!(
            "componentize-py is not on PATH (nor in {}/.venv/bin): install the pinned version \
             with `pip install componentize-py=={COMPONENTIZE_PY_VERSION}` (in a virtualenv: \
             `python3 -m venv .venv && .venv/bin/pip install \
             componentize-py=={COMPONENTIZE_PY_VERSION}`)",
            dir.display()
        );
    };
    let mut command = Command::new(&tool);
    command
        .arg("-d")
        .arg(dir.join("wit"))
        .args(["-w", world, "componentize", "app", "-p"])
        .arg(dir)
        .arg("-o")
        .arg(out)
        .current_dir(dir);
    eprintln!(
        "$ componentize-py -d wit -w {world} componentize app -p . -o {}",
        out.display()
    );
    stream(command, "componentize-py")
}

/// `jco componentize app.js --backend quickjs --wit wit --world-name <world> -o <out>`, with the
/// jco the project's package.json pins (`npm install`), or one on PATH.
fn js(dir: &Path, world: &str, out: &Path) -> anyhow::Result<()> {
    let Some(tool) = find("jco", &[dir.join("node_modules/.bin")]) else {
        let pins = templates::js_toolchain()
            .unwrap_or_else(|| "@bytecodealliance/jco componentize-qjs".to_owned());
        anyhow::bail!(
            "jco is not in {}/node_modules/.bin nor on PATH: install the pinned toolchain in \
             the project with `npm install --no-save {pins}` (jco with its QuickJS backend)",
            dir.display()
        );
    };
    let mut command = Command::new(&tool);
    command
        .args(["componentize", "app.js", "--backend", "quickjs", "--wit"])
        .arg(dir.join("wit"))
        .args(["--world-name", world, "-o"])
        .arg(out)
        .current_dir(dir);
    eprintln!(
        "$ jco componentize app.js --backend quickjs --wit wit --world-name {world} -o {}",
        out.display()
    );
    stream(command, "jco componentize")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pin named in the advice is the one xtask builds the Python examples with.
    #[test]
    fn the_componentize_py_pin_is_xtasks() {
        let xtask = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/src/main.rs"),
        )
        .unwrap_or_default();
        assert!(
            xtask.contains(&format!(
                "const COMPONENTIZE_PY: &str = \"{COMPONENTIZE_PY_VERSION}\";"
            )),
            "xtask pins another componentize-py than {COMPONENTIZE_PY_VERSION}"
        );
    }
}
