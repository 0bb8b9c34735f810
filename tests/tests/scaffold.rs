//! `aigw plugin new|build|check` through the real binary: exactly a newcomer's three commands per
//! language and kind — `aigw plugin new`, `aigw plugin build`, and the result loaded into a
//! running gateway (`aigw serve` with a config naming the `.wasm`), answering a chat completion
//! through the mock (a provider) or `POST /v1/tools/<name>/invoke` (a tool). Rust always; Python
//! and JS with the toolchains `cargo xtask examples` installs under `target/toolchains/` (put on
//! `PATH` for the commands, as a newcomer's shell would have them). Without `CI` a missing
//! toolchain is reported and the case returns; with `CI` set it fails.
//!
//! Also `check` on every bundled plugin (world, version, imports) and on junk, and the errors of
//! `new` (a bad name, an existing folder) and `build` (no `aigw-plugin.toml`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use aigw_tests::gateway::{Gateway, GatewayBuilder, status_and_json};
use aigw_tests::mock::tools::{ToolApi, ToolMock};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::paths;
use aigw_tests::setup::{plugins_section, toml_str};
use serde_json::{Map, Value, json};

/// The key the provider tests configure; the mock requires it, so it proves the credential
/// placement the template describes.
const PROVIDER_KEY: &str = "sk-scaffold-e2e-7c1d";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// Where `cargo xtask examples` installs the language's toolchain binaries, under
    /// `$AIGW_TOOLCHAINS` or `<root>/target/toolchains` (`None`: Rust, whose toolchain is the one
    /// running these tests).
    fn toolchain_bin(self) -> Option<PathBuf> {
        let toolchains = std::env::var_os("AIGW_TOOLCHAINS").map_or_else(
            || paths::workspace_root().join("target").join("toolchains"),
            PathBuf::from,
        );
        match self {
            Lang::Rust => None,
            Lang::Python => Some(toolchains.join("python").join("bin")),
            Lang::Js => Some(toolchains.join("js").join("node_modules").join(".bin")),
        }
    }

    /// The tool `build` runs, which must be in [`Lang::toolchain_bin`].
    fn tool(self) -> &'static str {
        match self {
            Lang::Rust => "cargo",
            Lang::Python => "componentize-py",
            Lang::Js => "jco",
        }
    }
}

/// The environment the commands run with: the language's toolchain first on `PATH`. A Rust
/// project builds into `plugins/target` (the guest workspace's target dir, whose compiled
/// dependencies it reuses: the same crates at the same versions, see [`new_project`]) and
/// offline, since everything it needs is already there.
/// `None` when the toolchain is missing (outside CI); a panic when it is missing under `CI`.
fn toolchain_env(lang: Lang) -> Option<Vec<(OsString, OsString)>> {
    let mut env = cache_env();
    if let Some(bin) = lang.toolchain_bin() {
        if !bin.join(lang.tool()).exists() {
            let message = format!(
                "the {} toolchain is missing ({} not in {}): `cargo xtask examples` installs it",
                lang.as_str(),
                lang.tool(),
                bin.display()
            );
            assert!(std::env::var_os("CI").is_none(), "{message}");
            eprintln!("not run: {message}");
            return None;
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined =
            std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path))).unwrap();
        env.push(("PATH".into(), joined));
    } else {
        env.push((
            "CARGO_TARGET_DIR".into(),
            paths::workspace_root()
                .join("plugins")
                .join("target")
                .into(),
        ));
        env.push(("CARGO_NET_OFFLINE".into(), "true".into()));
    }
    Some(env)
}

/// The compile cache every command shares with the test gateways (theirs is the default
/// `cache_dir` under `XDG_CACHE_HOME`, see `aigw_tests::gateway`): the component `build` checks
/// is compiled once, and the gateway serving it starts warm, as a newcomer's would.
fn cache_env() -> Vec<(OsString, OsString)> {
    vec![("XDG_CACHE_HOME".into(), paths::compile_cache_home().into())]
}

/// `aigw <args>` with the shared compile cache.
fn aigw<const N: usize>(args: [&str; N]) -> Output {
    aigw_with(&args, &cache_env())
}

/// Runs `aigw <args>` with `env` (blocking; async tests call it on a blocking thread).
fn aigw_with(args: &[&str], env: &[(OsString, OsString)]) -> Output {
    let bin = paths::aigw_bin();
    std::process::Command::new(&bin)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Command one: `aigw plugin new <name> --kind <kind> --lang <lang> --dir <root>/<name>`. A Rust
/// project also gets the guest workspace's `Cargo.lock`, so it resolves the same crate versions
/// `plugins/target` already holds compiled (a newcomer's project would resolve its own).
fn new_project(root: &Path, name: &str, kind: &str, lang: Lang) -> PathBuf {
    let dir = root.join(name);
    let output = aigw([
        "plugin",
        "new",
        name,
        "--kind",
        kind,
        "--lang",
        lang.as_str(),
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("aigw-plugin.toml"), "{all}");
    assert!(stdout.contains("aigw plugin build"), "{all}");
    let manifest = std::fs::read_to_string(dir.join("aigw-plugin.toml")).unwrap();
    assert!(
        manifest.contains(&format!("name = \"{name}\"")),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!("kind = \"{kind}\"")),
        "{manifest}"
    );
    if lang == Lang::Rust {
        std::fs::copy(
            paths::workspace_root().join("plugins").join("Cargo.lock"),
            dir.join("Cargo.lock"),
        )
        .unwrap();
    } else {
        assert!(dir.join("wit").join("worlds.wit").is_file(), "{all}");
    }
    dir
}

/// Command two: `aigw plugin build <dir>`; returns the `.wasm` and `build`'s stdout (`check`'s
/// report of it).
async fn build_project(
    dir: &Path,
    name: &str,
    env: Vec<(OsString, OsString)>,
) -> (PathBuf, String) {
    let arg = dir.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || aigw_with(&["plugin", "build", &arg], &env))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let wasm = dir.join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "no {} after build", wasm.display());
    (wasm, String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `aigw plugin check --json <file>`, parsed.
fn check_json(file: &Path) -> Value {
    let output = aigw(["plugin", "check", "--json", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)))
}

/// A gateway builder for a plugin in `lang`. Python and JS components are large: `build`'s check
/// has compiled them into the shared cache, so the start is warm, but a start that has to
/// compile after all (a cache written by another engine build) gets the longer start-up time.
fn gateway_for(lang: Lang) -> GatewayBuilder {
    match lang {
        Lang::Rust => Gateway::builder(),
        Lang::Python | Lang::Js => Gateway::builder().compiles_large_plugins(),
    }
}

/// A provider, three commands: new, build, and a chat completion through a gateway serving it
/// in front of an OpenAI-flavoured mock that requires the configured key.
async fn provider_three_commands(lang: Lang) {
    let Some(env) = toolchain_env(lang) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let name = format!("scaffold-{}-provider", lang.as_str());
    let dir = new_project(root.path(), &name, "provider", lang);
    let (wasm, report) = build_project(&dir, &name, env).await;
    assert!(report.contains("world: provider-plugin"), "{report}");
    assert!(report.contains(&format!("provider {name} ")), "{report}");
    assert!(report.contains("ok: the gateway loads it"), "{report}");

    let mock = MockUpstream::start(Flavor::OpenAi)
        .await
        .with_api_key(PROVIDER_KEY);
    let config = format!(
        "{}\n[providers.fresh]\nplugin = {}\nbase_url = {}\napi_key = {}\n\n[models.fast]\ntargets = [\"fresh/ok\"]\n",
        plugins_section(),
        toml_str(&wasm.to_string_lossy()),
        toml_str(&mock.base_url()),
        toml_str(PROVIDER_KEY),
    );
    let gateway = gateway_for(lang).start(&config).await;
    let response = gateway
        .chat(&json!({"model": "fast", "messages": [{"role": "user", "content": "hello"}]}))
        .await;
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}\n{}", gateway.stderr());
    assert_eq!(body["object"], "chat.completion", "{body}");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(!content.is_empty(), "{body}");
    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "one upstream request");
    assert!(
        requests[0].path.ends_with("/chat/completions"),
        "{}",
        requests[0].path
    );
    assert_eq!(
        requests[0].body["model"], "ok",
        "the route's model reached the upstream"
    );
}

/// Arguments that satisfy a tool's schema: each required property given a value of its type in
/// its bounds (a number's midpoint, an enum's first value, `Berlin` for a free string).
fn arguments_for(schema: &Value) -> Value {
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut arguments = Map::new();
    for name in required {
        let property = &properties[name];
        let kind = match &property["type"] {
            Value::Array(kinds) => kinds.first().and_then(Value::as_str).unwrap_or("string"),
            kind => kind.as_str().unwrap_or("string"),
        };
        let middle =
            |default: f64| match (property["minimum"].as_f64(), property["maximum"].as_f64()) {
                (Some(min), Some(max)) => (min + max) / 2.0,
                (Some(min), None) => min,
                (None, Some(max)) => max,
                (None, None) => default,
            };
        let value = match kind {
            "number" => json!(middle(1.5)),
            "integer" => json!(middle(1.0).round() as i64),
            "boolean" => json!(true),
            _ => property["enum"]
                .as_array()
                .and_then(|values| values.first().cloned())
                .unwrap_or_else(|| json!("Berlin")),
        };
        arguments.insert(name.to_owned(), value);
    }
    Value::Object(arguments)
}

/// The key every tool upstream of the tests gets.
const UPSTREAM_KEY: &str = "k-scaffold-e2e-3f9a";

/// A request an upstream received: its path (with the query, for [`Lookup`]) and its headers
/// (names in lower case).
type Sent = (String, Vec<(String, String)>);

/// The upstream of the Python and JS tool templates (`<crate>_lookup`): `GET /v1/lookup?q=<term>`
/// answers `{"answer": "<term> is known"}`. Every request's path with its query, and its
/// headers, is recorded.
struct Lookup {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Sent>>>,
    _server: JoinHandle<()>,
}

impl Lookup {
    async fn start() -> Lookup {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let answer = service_fn(move |request: Request<Incoming>| {
                        let recorded = Arc::clone(&recorded);
                        async move { Ok::<_, Infallible>(Lookup::answer(&request, &recorded)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), answer)
                        .await;
                });
            }
        });
        Lookup {
            addr,
            seen,
            _server: server,
        }
    }

    fn answer(request: &Request<Incoming>, recorded: &Mutex<Vec<Sent>>) -> Response<Full<Bytes>> {
        let headers = request
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = value.to_str().unwrap_or_default().to_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let target = request.uri().to_string();
        recorded.lock().unwrap().push((target, headers));
        let term = request.uri().query().and_then(|query| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("q="))
                .map(str::to_owned)
        });
        let (status, body) = match (request.uri().path(), term) {
            ("/v1/lookup", Some(term)) => (200, json!({"answer": format!("{term} is known")})),
            _ => (404, json!({"error": "not found"})),
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Sent> {
        self.seen.lock().unwrap().clone()
    }
}

/// A tool plugin, three commands: new, build, and an invoke through a gateway serving it. Its
/// upstreams come from `check --json`: every endpoint pointed at the template's upstream (the
/// Open-Meteo mock for Rust's temperature tool, [`Lookup`] for Python's and JS's lookup tool),
/// each with a key, which must arrive where the plugin's descriptor places it.
async fn tool_three_commands(lang: Lang) {
    let Some(env) = toolchain_env(lang) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let name = format!("scaffold-{}-tool", lang.as_str());
    let dir = new_project(root.path(), &name, "tool", lang);
    let (wasm, report) = build_project(&dir, &name, env).await;
    assert!(report.contains("world: tool-plugin"), "{report}");
    assert!(report.contains(&format!("tool plugin {name} ")), "{report}");

    let facts = check_json(&wasm);
    assert_eq!(facts["kind"], "tool", "{facts}");
    // Only the JS toolchain (componentize-qjs) emits the async ABI's built-ins.
    assert_eq!(facts["async_abi"], matches!(lang, Lang::Js), "{facts}");
    let describes = &facts["describes"];
    let tool = &describes["tools"][0];
    let tool_name = tool["name"].as_str().unwrap();
    assert!(
        tool_name.starts_with(&name.replace('-', "_")),
        "{tool_name}"
    );
    let meteo = ToolMock::start(ToolApi::OpenMeteo).await;
    let lookup = Lookup::start().await;
    let upstream_url = match lang {
        Lang::Rust => meteo.url(),
        Lang::Python | Lang::Js => lookup.url(),
    };
    let mut upstreams = String::new();
    let mut placements = Vec::new();
    for upstream in describes["upstreams"].as_array().unwrap() {
        let endpoints: Vec<String> = upstream["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} = {}",
                    e["name"].as_str().unwrap(),
                    toml_str(&upstream_url)
                )
            })
            .collect();
        upstreams.push_str(&format!(
            "[[tools.fresh.upstream]]\nname = {}\nendpoints = {{ {} }}\napi_key = {}\n",
            toml_str(upstream["name"].as_str().unwrap()),
            endpoints.join(", "),
            toml_str(UPSTREAM_KEY),
        ));
        placements.push(upstream["credential"].clone());
    }
    let db = root.path().join("aigw.db");
    let config = format!(
        "{}\n[memory]\npath = {}\n\n[tools.fresh]\nplugin = {}\n{upstreams}",
        plugins_section(),
        toml_str(&db.to_string_lossy()),
        toml_str(&wasm.to_string_lossy()),
    );
    let gateway = gateway_for(lang).start(&config).await;
    let arguments = arguments_for(&tool["parameters"]);
    let response = gateway
        .client()
        .post(gateway.url(&format!("/v1/tools/{tool_name}/invoke")))
        .json(&json!({ "arguments": arguments }))
        .send()
        .await
        .unwrap();
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{arguments} → {body}\n{}", gateway.stderr());
    let result = &body["result"];
    assert!(result.is_object(), "{body}");

    // What reached the upstream, and the key where the descriptor puts it.
    let sent: Vec<Sent> = match lang {
        Lang::Rust => meteo
            .requests()
            .into_iter()
            .map(|r| (r.path, r.headers))
            .collect(),
        Lang::Python | Lang::Js => lookup.seen(),
    };
    assert_eq!(sent.len(), 1, "one upstream request: {sent:?}");
    let (path, headers) = &sent[0];
    if let Some(placement) = placements.first()
        && placement["placement"] == "header"
    {
        let header = placement["name"].as_str().unwrap().to_ascii_lowercase();
        let expected = format!("{}{UPSTREAM_KEY}", placement["prefix"].as_str().unwrap());
        let got = headers
            .iter()
            .find(|(name, _)| *name == header)
            .map(|(_, v)| v);
        assert_eq!(got, Some(&expected), "the key in `{header}`: {headers:?}");
    }
    match lang {
        Lang::Rust => {
            // The temperature tool: its name, its request, its result.
            assert_eq!(tool_name, name.replace('-', "_"));
            assert_eq!(path, "/v1/forecast");
            assert!(result["temperature"].is_number(), "{body}");
            assert_eq!(result["unit"], "°C", "{body}");
        }
        Lang::Python | Lang::Js => {
            assert!(path.starts_with("/v1/lookup?"), "{path}");
            assert_eq!(result["answer"], "Berlin is known", "{body}");
        }
    }
}

#[tokio::test]
async fn rust_provider_new_build_serve() {
    provider_three_commands(Lang::Rust).await;
}

#[tokio::test]
async fn rust_tool_new_build_invoke() {
    tool_three_commands(Lang::Rust).await;
}

#[tokio::test]
async fn python_provider_new_build_serve() {
    provider_three_commands(Lang::Python).await;
}

#[tokio::test]
async fn python_tool_new_build_invoke() {
    tool_three_commands(Lang::Python).await;
}

#[tokio::test]
async fn js_provider_new_build_serve() {
    provider_three_commands(Lang::Js).await;
}

#[tokio::test]
async fn js_tool_new_build_invoke() {
    tool_three_commands(Lang::Js).await;
}

/// Every bundled plugin (`dist/plugins/*.wasm`): its world, WIT version, digest, size and
/// imports, and what it describes, the same as the gateway reads them.
#[test]
fn check_reports_every_bundled_plugin() {
    let mut checked = 0;
    for entry in std::fs::read_dir(paths::plugins_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "wasm") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let output = aigw(["plugin", "check", path.to_str().unwrap()]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stem}: {all}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("aigw:plugin@0.1.0, supported"), "{all}");
        assert!(!stdout.contains("NOT PROVIDED"), "{all}");

        let report = check_json(&path);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(report["wit_version"], "0.1.0", "{report}");
        assert_eq!(report["supported"], true, "{report}");
        assert_eq!(report["async_abi"], false, "{report}");
        assert_eq!(report["size_bytes"], bytes.len(), "{report}");
        let digest = report["digest"].as_str().unwrap();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 7 + 64,
            "{digest}"
        );
        assert_eq!(
            report["name"],
            stem.as_str(),
            "each plugin names itself as its file"
        );
        assert_eq!(report["describes"]["name"], stem.as_str(), "{report}");
        let imports: Vec<&str> = report["imports"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for import in &imports {
            assert!(stdout.contains(import), "the text lists {import}: {all}");
            if import.starts_with("aigw:plugin/") {
                assert!(import.ends_with("@0.1.0"), "{stem}: {import}");
            }
        }
        match report["kind"].as_str() {
            Some("provider") => {
                assert_eq!(report["world"], "provider-plugin");
                assert!(stdout.contains("world: provider-plugin"), "{all}");
                assert!(
                    report["describes"]["default_base_url"].is_string(),
                    "{report}"
                );
                assert!(
                    imports
                        .iter()
                        .all(|i| !i.starts_with("aigw:plugin/outbound")),
                    "a provider imports no outbound: {imports:?}"
                );
            }
            Some("tool") => {
                assert_eq!(report["world"], "tool-plugin");
                assert!(stdout.contains("world: tool-plugin"), "{all}");
                assert!(!report["describes"]["tools"].as_array().unwrap().is_empty());
                // Every bundled tool calls its upstreams through the host's `outbound`.
                assert!(
                    imports.contains(&"aigw:plugin/outbound@0.1.0"),
                    "{stem}: {imports:?}"
                );
                assert!(stdout.contains("  upstream "), "{all}");
            }
            other => panic!("{stem}: kind {other:?}"),
        }
        checked += 1;
    }
    assert!(
        checked >= 8,
        "only {checked} plugins in {}",
        paths::plugins_dir().display()
    );
}

/// Not a component: exit 1 with the reason, for bytes that are not wasm at all and for a core
/// module (what `cargo build` for `wasm32-unknown-unknown` gives).
#[test]
fn check_rejects_junk_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"this is not webassembly").unwrap();
    let output = aigw(["plugin", "check", junk.to_str().unwrap()]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("rejected"),
        "{all}"
    );

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let output = aigw(["plugin", "check", "--json", core.to_str().unwrap()]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("core module"),
        "{all}"
    );
    assert!(output.stdout.is_empty(), "{all}");
}

#[test]
fn new_refuses_a_bad_name_and_an_existing_folder() {
    let root = tempfile::tempdir().unwrap();
    for (name, why) in [
        ("My-Plugin", "lowercase letter"),
        ("9lives", "lowercase letter"),
        ("snake_case", "'_' is not allowed"),
    ] {
        let output = aigw([
            "plugin", "new", name, "--kind", "provider", "--lang", "rust",
        ]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{all}");
        assert!(
            all.contains("invalid plugin name") && all.contains(why),
            "{name}: {all}"
        );
    }
    let long = "a".repeat(65);
    let output = aigw(["plugin", "new", &long, "--kind", "tool", "--lang", "rust"]);
    assert!(text(&output).contains("1 to 64"), "{}", text(&output));

    let taken = root.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    let output = aigw([
        "plugin",
        "new",
        "taken",
        "--kind",
        "tool",
        "--lang",
        "rust",
        "--dir",
        taken.to_str().unwrap(),
    ]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("already exists and is not empty"), "{all}");
    assert_eq!(
        std::fs::read_dir(&taken).unwrap().count(),
        1,
        "nothing was written into it"
    );
}

#[test]
fn build_refuses_a_folder_without_a_manifest() {
    let root = tempfile::tempdir().unwrap();
    let output = aigw(["plugin", "build", root.path().to_str().unwrap()]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("has no aigw-plugin.toml"), "{all}");
    assert!(all.contains("aigw plugin new"), "{all}");
}

/// Without the language's toolchain, `build` installs nothing and says how to get the pinned one.
#[test]
fn build_without_the_toolchain_says_how_to_install_it() {
    let root = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    for (lang, advice) in [
        (Lang::Python, "pip install componentize-py==0.25.1"),
        (
            Lang::Js,
            "npm install --no-save @bytecodealliance/jco@1.35.0",
        ),
    ] {
        let name = format!("bare-{}", lang.as_str());
        let dir = new_project(root.path(), &name, "tool", lang);
        let mut env = cache_env();
        env.push(("PATH".into(), empty.path().into()));
        let output = aigw_with(&["plugin", "build", dir.to_str().unwrap()], &env);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{all}");
        assert!(all.contains(advice), "{lang:?}: {all}");
        assert!(
            !dir.join(format!("{name}.wasm")).exists(),
            "nothing was built: {all}"
        );
    }
}
