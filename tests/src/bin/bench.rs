//! `bench`: what aigw adds to a request, measured in one run.
//!
//! Starts `mock-upstream` (Groq dialect) and `aigw serve` in front of it, then drives the same
//! closed-loop load twice: straight to the mock, and through the gateway. Prints requests/s, p50
//! and p99 for both, the added latency and the throughput ratio, as a Markdown table; then the
//! gateway's peak RSS. Normally run through `cargo xtask bench`, which builds everything first.
//!
//! With `--keys N` a second gateway of the same binary runs beside the first with
//! authentication on: N virtual keys are created through its admin API, and the load is sent
//! with one of them, which has requests/tokens per minute, concurrency and budget limits high
//! enough never to refuse: the third row is what key checking and quota accounting add.
//!
//! With `--baseline PATH` a gateway of another binary (the build before a change) runs beside the
//! first on the same config and takes the same load right after it: the A/B of a change in one
//! run, with a comparison row per mode.
//!
//! Each row also gives the CPU time the server under load used per request (user + system, from
//! `/proc`, over the measured window): the mock's for the direct row, the gateway's for the others.
//!
//! With `--tool-loop` the gateway also serves a request that takes one step of the chat tool
//! loop (`bench/tool_loop.rs`): a fourth row.
//! With `--tools` the tool service is measured too: a scripted upstream (its own thread and
//! runtime) answers `tool-echo`'s `upstream_get`, and the same load is sent straight to it,
//! through `POST /v1/tools/upstream_get/invoke` of a gateway without a cache, and through one
//! whose cache answers every call after the first: the tool call's overhead over the upstream's
//! own latency, and what a cache hit costs.
//!
//! The load generator runs on a single-threaded tokio runtime so that most of the CPU is left to
//! the two servers. All three processes share the machine's cores over loopback: the absolute
//! numbers say little about production, the same-run comparison is the point.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aigw_tests::bench::{Server, cpu_time, percentile};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::process::Command;

#[path = "bench/tool_loop.rs"]
mod tool_loop;

const USAGE: &str = "\
usage: bench [--duration SECS] [--warmup SECS] [--connections N] [--no-stream] [--keys N]
             [--tools] [--tool-loop] [--aigw PATH] [--mock PATH] [--plugins DIR] [--tool-plugin FILE]
             [--config-template FILE] [--baseline PATH]

  --duration SECS          measured time per scenario (default 10)
  --warmup SECS            unmeasured load before each scenario (default 2)
  --connections N          concurrent keep-alive HTTP/1.1 connections (default 16)
  --no-stream              skip the streaming (SSE) scenarios
  --keys N                 also measure a gateway with authentication on, N virtual keys in its
                           store, and the load sent with a key that has limits (default 0: off)
  --tools                  also measure tool calls (REST invoke over tool-echo): direct to a
                           scripted upstream, through aigw, and answered from the cache
  --tool-plugin FILE       the tool-echo plugin (default <root>/dist/test-plugins/tool-echo.wasm)
  --aigw PATH              gateway binary (default <root>/target/release/aigw)
  --baseline PATH          also measure this gateway binary (e.g. the build before a change)
                           on the same config, right after --aigw: an A/B in one run
  --mock PATH              mock upstream binary (default <root>/target/release/mock-upstream)
  --plugins DIR            built provider plugins (default <root>/dist/plugins)
  --tool-loop              also measure a chat completion that takes one tool-loop step
                           (the tool-echo plugin of --tool-plugin as the aigw tool `echo`)
  --config-template FILE   gateway config to use instead of the built-in one; `{plugins_dir}`
                           and `{upstream}` (http://host:port of the mock) are substituted";

/// The gateway config: one Groq provider pointing at the mock, one model alias. `{plugins_dir}`
/// and `{upstream}` are filled in at run time.
const CONFIG_TEMPLATE: &str = r#"[plugins]
dir = "{plugins_dir}"

[providers.groq]
plugin = "groq"
base_url = "{upstream}/openai/v1"
api_key = "bench-key"

[models.bench]
targets = ["groq/ok"]
"#;

/// One request may not take longer than this; it bounds the whole run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Args {
    duration: Duration,
    warmup: Duration,
    connections: usize,
    stream: bool,
    aigw: PathBuf,
    baseline: Option<PathBuf>,
    mock: PathBuf,
    plugins: PathBuf,
    config_template: Option<PathBuf>,
    keys: usize,
    tool_loop: bool,
    tools: bool,
    tool_plugin: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let root = {
        let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
        tests.parent().unwrap_or(tests).to_path_buf()
    };
    let release = root.join("target").join("release");
    let mut args = Args {
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        connections: 16,
        stream: true,
        aigw: release.join("aigw"),
        baseline: None,
        mock: release.join("mock-upstream"),
        plugins: root.join("dist").join("plugins"),
        config_template: None,
        keys: 0,
        tool_loop: false,
        tools: false,
        tool_plugin: root
            .join("dist")
            .join("test-plugins")
            .join("tool-echo.wasm"),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => args.duration = Duration::from_secs(number(&arg, &value()?)?),
            "--warmup" => args.warmup = Duration::from_secs(number(&arg, &value()?)?),
            "--connections" => {
                args.connections = usize::try_from(number(&arg, &value()?)?)
                    .map_err(|_| "--connections is too large".to_owned())?;
            }
            "--no-stream" => args.stream = false,
            "--tool-loop" => args.tool_loop = true,
            "--keys" => {
                args.keys = usize::try_from(number(&arg, &value()?)?)
                    .map_err(|_| "--keys is too large".to_owned())?;
            }
            "--tools" => args.tools = true,
            "--tool-plugin" => args.tool_plugin = value()?.into(),
            "--aigw" => args.aigw = value()?.into(),
            "--baseline" => args.baseline = Some(value()?.into()),
            "--mock" => args.mock = value()?.into(),
            "--plugins" => args.plugins = value()?.into(),
            "--config-template" => args.config_template = Some(value()?.into()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.duration.is_zero() || args.connections == 0 {
        return Err("--duration and --connections must be at least 1".into());
    }
    // The gateway runs in a temporary directory: relative paths must not change meaning.
    for path in [
        &mut args.aigw,
        &mut args.mock,
        &mut args.plugins,
        &mut args.tool_plugin,
    ]
    .into_iter()
    .chain(args.baseline.as_mut())
    {
        *path = std::path::absolute(&*path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(args)
}

fn number(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} {value}: expected a whole number"))
}

fn main() -> ExitCode {
    aigw_tests::bench::main("bench", USAGE, parse_args(), |args| async move {
        bench(&args).await
    })
}

async fn bench(args: &Args) -> Result<()> {
    let binaries = [("gateway", &args.aigw), ("mock upstream", &args.mock)];
    for (what, path) in binaries.into_iter().chain(
        args.baseline
            .as_ref()
            .map(|path| ("baseline gateway", path)),
    ) {
        if !path.is_file() {
            bail!(
                "the {what} binary is missing at {} (`cargo xtask bench` builds it)",
                path.display()
            );
        }
    }
    if !args.plugins.join("groq.wasm").is_file() {
        bail!(
            "{} has no groq.wasm (`cargo xtask plugins` builds it)",
            args.plugins.display()
        );
    }

    // Children are killed when these values drop, on every exit path.
    let mut mock_cmd = Command::new(&args.mock);
    mock_cmd.args(["--listen", "127.0.0.1:0", "--flavor", "groq", "--no-record"]);
    let mock = Server::start("mock-upstream", mock_cmd).await?;

    let template = match &args.config_template {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => CONFIG_TEMPLATE.to_owned(),
    };
    let mut config = template
        .replace("{plugins_dir}", &args.plugins.display().to_string())
        .replace("{upstream}", &format!("http://{}", mock.addr));
    if args.tool_loop {
        config.push_str(&tool_loop::config(&args.tool_plugin));
    }
    let (mut aigw, _dir) = start_gateway(&args.aigw, &config, None).await?;
    let baseline = match &args.baseline {
        Some(binary) => Some(start_gateway(binary, &config, None).await?),
        None => None,
    };
    // The keyed gateway and the key its load is sent with.
    let keyed = match args.keys {
        0 => None,
        n => {
            let (gateway, dir) = start_gateway(&args.aigw, &config, Some(BENCH_ADMIN_KEY)).await?;
            eprintln!("creating {n} virtual keys ...");
            let key = create_keys(gateway.addr, n).await?;
            Some((gateway, dir, key))
        }
    };

    let mut modes = vec![Mode::Json];
    if args.stream {
        modes.push(Mode::Stream);
    }
    let scenarios: Vec<(Mode, Vec<(&'static str, Target)>)> = modes
        .into_iter()
        .map(|mode| {
            let direct = Target {
                addr: mock.addr,
                pid: mock.pid(),
                path: "/openai/v1/chat/completions",
                body: request_body("ok", mode),
                mode,
                authorization: HeaderValue::from_static("Bearer bench-key"),
            };
            let through = |gateway: &Server| Target {
                addr: gateway.addr,
                pid: gateway.pid(),
                path: "/v1/chat/completions",
                body: request_body("bench", mode),
                mode,
                authorization: HeaderValue::from_static("Bearer bench-key"),
            };
            let mut targets = vec![("direct to mock", direct), ("through aigw", through(&aigw))];
            if let Some((baseline, _)) = &baseline {
                targets.push((BASELINE, through(baseline)));
            }
            if args.tool_loop {
                targets.push((
                    tool_loop::LABEL,
                    Target {
                        addr: aigw.addr,
                        pid: aigw.pid(),
                        path: "/v1/chat/completions",
                        body: tool_loop::body(mode),
                        mode,
                        authorization: HeaderValue::from_static("Bearer bench-key"),
                    },
                ));
            }
            if let Some((keyed, _, key)) = &keyed {
                targets.push((
                    "through aigw, key + limits",
                    Target {
                        addr: keyed.addr,
                        pid: keyed.pid(),
                        path: "/v1/chat/completions",
                        body: request_body("bench", mode),
                        mode,
                        authorization: key.clone(),
                    },
                ));
            }
            (mode, targets)
        })
        .collect();

    // One request per scenario first: a config or routing mistake fails in a second, with the
    // server's own answer, instead of after minutes of errors.
    for (mode, targets) in &scenarios {
        for (label, target) in targets {
            preflight(target)
                .await
                .with_context(|| format!("{label}, {}: the first request failed", mode.name()))?;
        }
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\naigw benchmark: {} keep-alive HTTP/1.1 connections, closed loop, {} s warm-up + {} s \
         measured per scenario, loopback.\nThe load generator runs on 1 tokio thread and shares \
         {cores} CPU core(s) with mock-upstream and aigw: compare rows of the same run, not \
         absolute figures across machines.\n",
        args.connections,
        args.warmup.as_secs(),
        args.duration.as_secs(),
    );

    let mut rows = Vec::new();
    for (mode, targets) in &scenarios {
        let mut measured = Vec::new();
        for (label, target) in targets {
            eprintln!("running: {label}, {} ...", mode.name());
            let run = load(target, args.connections, args.warmup, args.duration).await;
            if let Some(error) = &run.first_error {
                eprintln!(
                    "  {label}, {}: {} error(s) in the measured window; first error: {error}",
                    mode.name(),
                    run.errors
                );
            }
            if run.latencies_us.is_empty() {
                bail!(
                    "{label}, {}: no request succeeded ({})",
                    mode.name(),
                    run.first_error.as_deref().unwrap_or("no error recorded")
                );
            }
            measured.push(Summary::of(label, run, args.duration));
        }
        rows.push((*mode, measured));
    }

    let peak = aigw.peak_rss();
    println!("{}", table(&rows));
    match peak {
        Some(kib) => println!("aigw peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("aigw peak RSS: unavailable (no /proc/<pid>/status)"),
    }
    aigw.stop().await;
    if let Some((mut baseline, _)) = baseline {
        baseline.stop().await;
    }
    if let Some((mut keyed, _, _)) = keyed {
        keyed.stop().await;
    }
    drop(mock);
    if args.tools {
        bench_tools(args).await?;
    }
    Ok(())
}

/// The gateway config of the tool scenarios: `tool-echo` with both upstreams on the scripted
/// upstream; `{cache}` is its `cache_ttl_seconds`.
const TOOLS_TEMPLATE: &str = r#"[tools.echo]
plugin = "{plugin}"
cache_ttl_seconds = {cache}
[[tools.echo.upstream]]
name = "primary"
endpoints = { base = "{upstream}" }
[[tools.echo.upstream]]
name = "secondary"
endpoints = { base = "{upstream}" }
"#;

/// The tool scenarios (`--tools`): straight to the scripted upstream, a tool call through aigw
/// without a cache, and one answered from the cache.
async fn bench_tools(args: &Args) -> Result<()> {
    if !args.tool_plugin.is_file() {
        bail!(
            "the tool-echo plugin is missing at {} (`cargo xtask plugins` builds it)",
            args.tool_plugin.display()
        );
    }
    // The upstream runs on its own thread and runtime, off the load generator's one thread.
    let (sent, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let upstream = aigw_tests::mock::scripted::Scripted::start().await;
            let _ = sent.send(upstream.base_url());
            std::future::pending::<()>().await;
        });
    });
    let upstream = received
        .recv_timeout(Duration::from_secs(10))
        .context("the scripted upstream did not start")?;
    let addr: SocketAddr = upstream
        .trim_start_matches("http://")
        .parse()
        .context("the scripted upstream's address")?;
    let config = |cache: u32| {
        TOOLS_TEMPLATE
            .replace("{plugin}", &args.tool_plugin.display().to_string())
            .replace("{upstream}", &upstream)
            .replace("{cache}", &cache.to_string())
    };
    let (mut uncached, _dir) = start_gateway(&args.aigw, &config(0), None).await?;
    let (mut cached, _cached_dir) = start_gateway(&args.aigw, &config(3600), None).await?;
    let invoke = Bytes::from_static(br#"{"arguments":{"path":"/ok"}}"#);
    let authorization = HeaderValue::from_static("Bearer bench-key");
    let targets = [
        (
            "direct to the upstream",
            Target {
                addr,
                pid: None,
                path: "/ok",
                body: Bytes::new(),
                mode: Mode::Json,
                authorization: authorization.clone(),
            },
        ),
        (
            "tool call through aigw",
            Target {
                addr: uncached.addr,
                pid: uncached.pid(),
                path: "/v1/tools/upstream_get/invoke",
                body: invoke.clone(),
                mode: Mode::Json,
                authorization: authorization.clone(),
            },
        ),
        (
            "tool call, cache hit",
            Target {
                addr: cached.addr,
                pid: cached.pid(),
                path: "/v1/tools/upstream_get/invoke",
                body: invoke,
                mode: Mode::Json,
                authorization,
            },
        ),
    ];
    for (label, target) in &targets {
        preflight(target)
            .await
            .with_context(|| format!("{label}: the first request failed"))?;
    }
    let mut measured = Vec::new();
    for (label, target) in &targets {
        eprintln!("running: {label} ...");
        let run = load(target, args.connections, args.warmup, args.duration).await;
        if let Some(error) = &run.first_error {
            eprintln!("  {label}: {} error(s); first error: {error}", run.errors);
        }
        if run.latencies_us.is_empty() {
            bail!("{label}: no request succeeded");
        }
        measured.push(Summary::of(label, run, args.duration));
    }
    println!("{}", tools_table(&measured));
    uncached.stop().await;
    cached.stop().await;
    Ok(())
}

/// The tool scenarios' table: each row in µs, then the overheads over the direct row.
fn tools_table(rows: &[Summary]) -> String {
    let mut table = String::from(
        "| tool scenario | requests | errors | req/s | p50 | p99 |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let us = |v: u32| format!("{v} µs");
    for s in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} |\n",
            s.label,
            s.requests,
            s.errors,
            s.per_second,
            us(s.p50_us),
            us(s.p99_us)
        ));
    }
    if let [direct, call, hit] = rows {
        let over = |a: &Summary| {
            (
                i64::from(a.p50_us) - i64::from(direct.p50_us),
                i64::from(a.p99_us) - i64::from(direct.p99_us),
            )
        };
        let (call50, call99) = over(call);
        table.push_str(&format!(
            "\nA tool call adds {call50:+} µs at p50 and {call99:+} µs at p99 over the upstream's \
             own latency; a cache hit answers in {} µs at p50 ({} µs at p99) without an upstream.\n",
            hit.p50_us, hit.p99_us
        ));
    }
    table
}

/// The admin key of the keyed gateway (a local benchmark's, never a real one).
const BENCH_ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";

/// The row of the `--baseline` gateway.
const BASELINE: &str = "through the baseline aigw";

/// Starts `binary serve` on `config` in a fresh directory (its store too), with authentication
/// on when `admin_key` is given. The directory lives as long as the returned guard.
async fn start_gateway(
    binary: &Path,
    config: &str,
    admin_key: Option<&str>,
) -> Result<(Server, tempfile::TempDir)> {
    let dir = tempfile::tempdir().context("creating a directory for the gateway config")?;
    let config_path = dir.path().join("aigw.toml");
    std::fs::write(&config_path, config)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let mut aigw_cmd = Command::new(binary);
    aigw_cmd
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("AIGW_LOG", "warn")
        .env_remove("AIGW_ADMIN_KEY");
    if let Some(key) = admin_key {
        aigw_cmd.env("AIGW_ADMIN_KEY", key);
    }
    match Server::start("aigw", aigw_cmd).await {
        Ok(aigw) => Ok((aigw, dir)),
        Err(e) => {
            eprintln!("--- gateway config ---\n{config}---");
            Err(e)
        }
    }
}

/// Creates `n` keys through the admin API (16 at a time), the last with every limit set high
/// enough never to refuse the benchmark's load; returns that key's `Authorization` value.
async fn create_keys(addr: SocketAddr, n: usize) -> Result<HeaderValue> {
    let started = Instant::now();
    let plain = serde_json::json!({"name": "bench"}).to_string();
    let workers = (0..16).map(|worker| {
        let plain = plain.clone();
        async move {
            let mut sender = connect(addr).await?;
            for _ in (worker..n.saturating_sub(1)).step_by(16) {
                admin_post(&mut sender, addr, "/admin/keys", plain.clone()).await?;
            }
            Ok::<_, anyhow::Error>(())
        }
    });
    for done in futures_util::future::join_all(workers).await {
        done?;
    }
    let limited = serde_json::json!({
        "name": "bench-limited",
        "models": ["bench"],
        "rpm_limit": 1_000_000_000u64,
        "tpm_limit": 1_000_000_000_000u64,
        "max_parallel_requests": 100_000,
        "max_budget": 1_000_000.0,
        "budget_duration": "day",
    });
    let mut sender = connect(addr).await?;
    let created = admin_post(&mut sender, addr, "/admin/keys", limited.to_string()).await?;
    let secret = created
        .get("key")
        .and_then(|k| k.as_str())
        .context("the admin API's answer has no `key`")?;
    eprintln!("  {n} keys in {:.1} s", started.elapsed().as_secs_f64());
    HeaderValue::from_str(&format!("Bearer {secret}")).context("the key is not a header value")
}

/// One admin POST; a non-2xx answer is an error.
async fn admin_post(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    path: &str,
    body: String,
) -> Result<serde_json::Value> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, addr.to_string())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {BENCH_ADMIN_KEY}"))
        .body(Full::new(Bytes::from(body)))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("POST {path}: {}", describe(status, &body));
    }
    Ok(serde_json::from_slice(&body)?)
}

// ---------------------------------------------------------------------------------------- load

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `stream: false`: latency is the time to the complete JSON body.
    Json,
    /// `stream: true`: latency is the time to the last byte of the event stream.
    Stream,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Json => "JSON",
            Mode::Stream => "SSE stream (to last byte)",
        }
    }
}

struct Target {
    addr: SocketAddr,
    /// The server's process, whose CPU time is sampled over the measured window.
    pid: Option<u32>,
    path: &'static str,
    body: Bytes,
    mode: Mode,
    /// The `Authorization` header each request carries.
    authorization: HeaderValue,
}

fn request_body(model: &str, mode: Mode) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "In one sentence: why do HTTP clients keep connections alive?"},
        ],
        "max_tokens": 64,
        "stream": mode == Mode::Stream,
    });
    Bytes::from(body.to_string())
}

/// What one scenario produced.
#[derive(Default)]
struct Run {
    /// Latency of every successful request started inside the measured window, in µs.
    latencies_us: Vec<u32>,
    /// Time to the first byte of the body of each of those requests, in µs.
    first_byte_us: Vec<u32>,
    /// Failed requests (non-2xx, transport errors, truncated streams) in the measured window.
    errors: u64,
    first_error: Option<String>,
    /// CPU time the server used over the measured window.
    cpu: Option<Duration>,
}

impl Run {
    fn merge(&mut self, other: Run) {
        self.latencies_us.extend(other.latencies_us);
        self.first_byte_us.extend(other.first_byte_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One request on a fresh connection, so a config or routing mistake is reported with the
/// server's own answer instead of as a column of errors.
async fn preflight(target: &Target) -> Result<()> {
    let mut sender = connect(target.addr).await?;
    exchange(&mut sender, target)
        .await
        .map(|_| ())
        .map_err(|failure| anyhow::anyhow!("{failure}"))
}

/// `connections` workers, each on its own keep-alive connection, send requests back to back for
/// `warmup + duration`; requests started after the warm-up are measured.
async fn load(target: &Target, connections: usize, warmup: Duration, duration: Duration) -> Run {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let workers =
        futures_util::future::join_all((0..connections).map(|_| worker(target, measure_from, end)));
    let cpu_at_start = async {
        tokio::time::sleep_until(measure_from.into()).await;
        target.pid.and_then(cpu_time)
    };
    let (runs, cpu_from) = tokio::join!(workers, cpu_at_start);
    let cpu_to = target.pid.and_then(cpu_time);
    let mut total = Run::default();
    for run in runs {
        total.merge(run);
    }
    total.cpu = cpu_from
        .zip(cpu_to)
        .map(|(from, to)| to.saturating_sub(from));
    total
}

async fn worker(target: &Target, measure_from: Instant, end: Instant) -> Run {
    let mut run = Run::default();
    let record_error = |run: &mut Run, started: Instant, error: String| {
        if started >= measure_from {
            run.errors += 1;
        }
        run.first_error.get_or_insert(error);
    };
    'connection: while Instant::now() < end {
        let attempt = Instant::now();
        let mut sender = match connect(target.addr).await {
            Ok(sender) => sender,
            Err(e) => {
                record_error(&mut run, attempt, format!("connect: {e:#}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        loop {
            let started = Instant::now();
            if started >= end {
                break 'connection;
            }
            match exchange(&mut sender, target).await {
                Ok(first_byte) => {
                    if started >= measure_from {
                        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                        run.latencies_us.push(us(started.elapsed()));
                        run.first_byte_us
                            .push(us(first_byte.duration_since(started)));
                    }
                }
                Err(Failure::Answer(error)) => record_error(&mut run, started, error),
                Err(Failure::Transport(error)) => {
                    record_error(&mut run, started, error);
                    continue 'connection;
                }
            }
        }
    }
    run
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connect timed out")?
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the peer closes; errors surface on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

enum Failure {
    /// The server answered, but not with a complete success; the connection is still usable.
    Answer(String),
    /// The connection is broken: open a new one.
    Transport(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Answer(e) | Failure::Transport(e) => f.write_str(e),
        }
    }
}

/// Sends one chat completion and reads the whole response body; answers when its first byte
/// came.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
) -> Result<Instant, Failure> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(target.path)
        .header(header::HOST, target.addr.to_string())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, target.authorization.clone())
        .body(Full::new(target.body.clone()))
        .map_err(|e| Failure::Answer(format!("building the request: {e}")))?;
    let exchange = async {
        sender
            .ready()
            .await
            .map_err(|e| Failure::Transport(format!("connection: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::Transport(format!("request: {e}")))?;
        let status = response.status();
        let mut incoming = response.into_body();
        let mut body = Vec::new();
        let mut first_byte = None;
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| Failure::Transport(format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                first_byte.get_or_insert_with(Instant::now);
                body.extend_from_slice(&data);
            }
        }
        Ok::<_, Failure>((status, body, first_byte.unwrap_or_else(Instant::now)))
    };
    let (status, body, first_byte) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            Failure::Transport(format!("no complete answer within {REQUEST_TIMEOUT:?}"))
        })??;
    if !status.is_success() {
        return Err(Failure::Answer(describe(status, &body)));
    }
    // A stream that did not finish is a failure, however fast it was.
    if target.mode == Mode::Stream && !contains(&body, b"data: [DONE]") {
        return Err(Failure::Answer(format!(
            "stream ended without `data: [DONE]`: {}",
            describe(status, &body)
        )));
    }
    Ok(first_byte)
}

fn describe(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(300).collect();
    format!("{status}: {text}")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ------------------------------------------------------------------------------------- results

struct Summary {
    label: &'static str,
    requests: usize,
    errors: u64,
    per_second: f64,
    p50_us: u32,
    p99_us: u32,
    /// Time to the body's first byte, p50.
    first_byte_p50_us: u32,
    /// The server's CPU time per measured request, in µs.
    cpu_us: Option<f64>,
}

impl Summary {
    fn of(label: &'static str, mut run: Run, duration: Duration) -> Summary {
        run.latencies_us.sort_unstable();
        run.first_byte_us.sort_unstable();
        Summary {
            label,
            requests: run.latencies_us.len(),
            errors: run.errors,
            per_second: run.latencies_us.len() as f64 / duration.as_secs_f64(),
            p50_us: percentile(&run.latencies_us, 50.0),
            p99_us: percentile(&run.latencies_us, 99.0),
            first_byte_p50_us: percentile(&run.first_byte_us, 50.0),
            cpu_us: run
                .cpu
                .filter(|_| !run.latencies_us.is_empty())
                .map(|cpu| cpu.as_secs_f64() * 1e6 / run.latencies_us.len() as f64),
        }
    }
}

fn ms(us: u32) -> String {
    format!("{:.2} ms", f64::from(us) / 1000.0)
}

fn signed_ms(us: i64) -> String {
    format!("{:+.2} ms", us as f64 / 1000.0)
}

/// One row over another of the same run: the request rate's and the CPU's ratios (0 over a
/// zero), the latencies' differences as signed ms.
struct Versus {
    rate: f64,
    p50: String,
    p99: String,
    first: String,
    cpu: Option<f64>,
}

impl Versus {
    fn of(new: &Summary, old: &Summary) -> Versus {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let later = |a: u32, b: u32| signed_ms(i64::from(a) - i64::from(b));
        Versus {
            rate: ratio(new.per_second, old.per_second),
            p50: later(new.p50_us, old.p50_us),
            p99: later(new.p99_us, old.p99_us),
            first: later(new.first_byte_p50_us, old.first_byte_p50_us),
            cpu: new.cpu_us.zip(old.cpu_us).map(|(a, b)| ratio(a, b)),
        }
    }
}

/// The Markdown table, then one sentence per mode with the comparison.
fn table(rows: &[(Mode, Vec<Summary>)]) -> String {
    let mut table = String::from(
        "| scenario | requests | errors | req/s | p50 | p99 | first byte p50 | server CPU per request |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut sentences = String::new();
    for (mode, summaries) in rows {
        for s in summaries {
            table.push_str(&format!(
                "| {}, {} | {} | {} | {:.0} | {} | {} | {} | {} |\n",
                s.label,
                mode.name(),
                s.requests,
                s.errors,
                s.per_second,
                ms(s.p50_us),
                ms(s.p99_us),
                ms(s.first_byte_p50_us),
                s.cpu_us
                    .map_or_else(String::new, |us| format!("{us:.1} µs")),
            ));
        }
        if let [direct, gateway, rest @ ..] = summaries.as_slice() {
            let Versus {
                rate: ratio,
                p50,
                p99,
                first,
                ..
            } = Versus::of(gateway, direct);
            table.push_str(&format!(
                "| **aigw vs direct**, {} | | | {ratio:.2}× | {p50} | {p99} | {first} | |\n",
                mode.name(),
            ));
            sentences.push_str(&format!(
                "{}: through aigw, {:.0}% of the direct request rate; latency {p50} at p50, \
                 {p99} at p99.\n",
                mode.name(),
                ratio * 100.0,
            ));
            if let Some(baseline) = rest.iter().find(|s| s.label == BASELINE) {
                let (row, sentence) = versus_baseline(*mode, gateway, baseline);
                table.push_str(&row);
                sentences.push_str(&sentence);
            }
            if let Some(stepped) = rest.iter().find(|s| s.label == tool_loop::LABEL) {
                let Versus { p50, p99, .. } = Versus::of(stepped, gateway);
                table.push_str(&format!(
                    "| **one tool-loop step vs none**, {} | | | | {p50} | {p99} | | |\n",
                    mode.name(),
                ));
            }
            if let Some(keyed) = rest
                .iter()
                .find(|s| s.label == "through aigw, key + limits")
            {
                let Versus {
                    rate: ratio,
                    p50,
                    p99,
                    ..
                } = Versus::of(keyed, gateway);
                table.push_str(&format!(
                    "| **key + limits vs no key**, {} | | | {ratio:.2}× | {p50} | {p99} | | |\n",
                    mode.name(),
                ));
                sentences.push_str(&format!(
                    "{}: a key with limits (checked and accounted on every request) costs {p50} \
                     at p50, {p99} at p99; {:.0}% of the keyless rate.\n",
                    mode.name(),
                    ratio * 100.0,
                ));
            }
        }
    }
    format!("{table}\n{sentences}")
}

/// The comparison row and sentence of `--baseline`: the gateway under test over the baseline
/// binary, both measured in this run on the same config and load.
fn versus_baseline(mode: Mode, gateway: &Summary, baseline: &Summary) -> (String, String) {
    let Versus {
        rate,
        p50,
        p99,
        first,
        cpu: cpu_ratio,
    } = Versus::of(gateway, baseline);
    let cpu = gateway.cpu_us.zip(baseline.cpu_us);
    let row = format!(
        "| **aigw vs baseline**, {} | | | {rate:.2}× | {p50} | {p99} | {first} | {} |\n",
        mode.name(),
        cpu_ratio.map_or_else(String::new, |ratio| format!("{ratio:.2}×")),
    );
    let sentence = format!(
        "{}: aigw serves {:.0}% of the baseline's request rate, {p50} at p50 and {p99} at p99{}.\n",
        mode.name(),
        rate * 100.0,
        cpu.map_or_else(String::new, |(new, old)| format!(
            ", {new:.1} µs of CPU per request against {old:.1} µs"
        )),
    );
    (row, sentence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(label: &'static str, per_second: f64, p50_us: u32, cpu_us: Option<f64>) -> Summary {
        Summary {
            label,
            requests: 1000,
            errors: 0,
            per_second,
            p50_us,
            p99_us: p50_us * 2,
            first_byte_p50_us: p50_us,
            cpu_us,
        }
    }

    #[test]
    fn the_baseline_row_gives_the_new_build_over_the_old() {
        let new = summary("through aigw", 1100.0, 900, Some(50.0));
        let old = summary(BASELINE, 1000.0, 1000, Some(100.0));
        let (row, sentence) = versus_baseline(Mode::Json, &new, &old);
        assert_eq!(
            row,
            "| **aigw vs baseline**, JSON | | | 1.10× | -0.10 ms | -0.20 ms | -0.10 ms | 0.50× |\n"
        );
        assert!(
            sentence.contains("110% of the baseline's request rate"),
            "{sentence}"
        );
        assert!(
            sentence.contains("50.0 µs of CPU per request against 100.0 µs"),
            "{sentence}"
        );
    }

    #[test]
    fn the_table_compares_with_the_baseline_only_when_one_was_measured() {
        let direct = summary("direct to mock", 2000.0, 500, Some(10.0));
        let gateway = summary("through aigw", 1000.0, 900, None);
        let without = table(&[(Mode::Json, vec![direct, gateway])]);
        assert!(!without.contains("vs baseline"), "{without}");
        let direct = summary("direct to mock", 2000.0, 500, Some(10.0));
        let gateway = summary("through aigw", 1000.0, 900, None);
        let baseline = summary(BASELINE, 500.0, 1000, None);
        let with = table(&[(Mode::Json, vec![direct, gateway, baseline])]);
        assert!(
            with.contains("| **aigw vs baseline**, JSON | | | 2.00× |"),
            "{with}"
        );
        // No CPU reading (no /proc): the cell stays empty rather than showing a ratio of zeros.
        assert!(with.contains("-0.10 ms |  |\n"), "{with}");
        assert!(with.contains("| 10.0 µs |"), "{with}");
    }
}
