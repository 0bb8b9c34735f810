//! The real `aigw` binary, run as a child process on an ephemeral port.
//!
//! ```no_run
//! # async fn demo() {
//! use aigw_tests::gateway::Gateway;
//! let gateway = Gateway::start("[models.fast]\ntargets = [\"local/ok\"]\n").await;
//! let response = gateway.chat(&serde_json::json!({"model": "fast", "messages": []})).await;
//! # }
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::paths;

/// How long the gateway may take to load its plugins and bind.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The same for a gateway that compiles a Python or JavaScript component (an 18 MB CPython
/// component takes 15 s of CPU to compile in a debug host, more on a loaded machine):
/// [`GatewayBuilder::compiles_large_plugins`].
pub const LARGE_PLUGIN_STARTUP_TIMEOUT: Duration = Duration::from_secs(240);

/// How long one HTTP exchange with the gateway may take before a test fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `aigw serve`. The process is killed when this is dropped.
pub struct Gateway {
    child: Child,
    addr: SocketAddr,
    stderr: watch::Receiver<String>,
    config_path: PathBuf,
    /// `http`, or `https` for a gateway serving TLS ([`GatewayBuilder::https`]).
    scheme: &'static str,
    client: reqwest::Client,
    admin_key: Option<String>,
    _readers: [JoinHandle<()>; 2],
    _dir: tempfile::TempDir,
}

/// Options for [`Gateway`]: extra environment and flags.
#[derive(Default)]
pub struct GatewayBuilder {
    env: Vec<(OsString, OsString)>,
    env_removed: Vec<OsString>,
    args: Vec<OsString>,
    /// `prlimit` options the gateway runs under (`--nofile=N:N`, `--fsize=N:N`).
    limits: Vec<String>,
    /// Files written beside the config before the gateway starts.
    files: Vec<(String, Vec<u8>)>,
    /// The CA (PEM) the gateway's certificate is trusted through, when it serves TLS.
    https: Option<Vec<u8>>,
    /// `--listen`'s address; `127.0.0.1:0` unless set.
    listen: Option<String>,
    /// The admin key it is started with (`AIGW_ADMIN_KEY`), which [`Gateway::get`] presents.
    admin_key: Option<String>,
    /// How long it may take to print its address; [`STARTUP_TIMEOUT`] unless set.
    startup_timeout: Option<Duration>,
}

impl GatewayBuilder {
    /// Gives the gateway [`LARGE_PLUGIN_STARTUP_TIMEOUT`] to start: its config names a Python
    /// or JavaScript component, compiled at start.
    pub fn compiles_large_plugins(mut self) -> Self {
        self.startup_timeout = Some(LARGE_PLUGIN_STARTUP_TIMEOUT);
        self
    }

    /// Sets an environment variable for the gateway (e.g. the API key a config expands).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Runs the gateway without this environment variable (e.g. `AIGW_LOG`, to see the
    /// binary's own default).
    pub fn env_remove(mut self, name: &str) -> Self {
        self.env_removed.push(name.into());
        self
    }

    /// Turns authentication on with `key` as the admin key (through `AIGW_ADMIN_KEY`);
    /// [`Gateway::get`] presents it, so the `/admin` helpers keep working.
    pub fn admin_key(mut self, key: &str) -> Self {
        self.admin_key = Some(key.to_owned());
        self.env("AIGW_ADMIN_KEY", key)
    }

    /// Listens on `address` (`--listen`) instead of `127.0.0.1:0`.
    pub fn listen(mut self, address: &str) -> Self {
        self.listen = Some(address.to_owned());
        self
    }

    /// Passes `--log-format <format>` (`human` or `json`).
    pub fn log_format(mut self, format: &str) -> Self {
        self.args.push("--log-format".into());
        self.args.push(format.into());
        self
    }

    /// Runs the gateway with at most `limit` open file descriptors (`prlimit --nofile`), to
    /// see what it does when it runs out.
    pub fn max_open_files(mut self, limit: u32) -> Self {
        self.limits.push(format!("--nofile={limit}:{limit}"));
        self
    }

    /// Runs the gateway with files limited to `bytes` (`prlimit --fsize`): a write past it
    /// fails as on a full disk.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.limits.push(format!("--fsize={bytes}:{bytes}"));
        self
    }

    /// Writes `contents` to `name` (relative, folders created) beside the config before the
    /// gateway starts (a certificate or a credential file the config names, say).
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.to_owned(), contents.into()));
        self
    }

    /// The gateway serves HTTPS (its config sets `[server] tls`) with a certificate issued by
    /// `ca_pem`: [`Gateway::url`] is `https://…` and [`Gateway::client`] trusts that CA.
    pub fn https(mut self, ca_pem: &str) -> Self {
        self.https = Some(ca_pem.as_bytes().to_vec());
        self
    }

    /// Writes `config_toml` to a fresh directory and runs
    /// `aigw serve --config <file> --listen 127.0.0.1:0` until it prints `listening on <addr>`.
    ///
    /// # Panics
    /// When the gateway exits or does not bind within 30 s; the message carries its stderr.
    pub async fn start(self, config_toml: &str) -> Gateway {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a directory for the gateway config: {e}"),
        };
        let config_path = dir.path().join("aigw.toml");
        if let Err(e) = std::fs::write(&config_path, config_toml) {
            panic!("cannot write {}: {e}", config_path.display());
        }
        for (name, contents) in &self.files {
            let path = dir.path().join(name);
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, contents));
            if let Err(e) = written {
                panic!("cannot write {}: {e}", path.display());
            }
        }

        // Start-up compiles the plugins, which is CPU-bound: with every test of a file starting
        // its own gateway at once, unbounded start-ups would starve each other past the timeout.
        // The permit is held until the gateway is listening (or has failed).
        let _starting = match startup_slots().acquire().await {
            Ok(permit) => permit,
            Err(e) => panic!("gateway start-up slots closed: {e}"),
        };

        let mut command = if self.limits.is_empty() {
            Command::new(paths::aigw_bin())
        } else {
            let mut prlimit = Command::new("prlimit");
            prlimit.args(&self.limits).arg("--").arg(paths::aigw_bin());
            prlimit
        };
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .args(["--listen", self.listen.as_deref().unwrap_or("127.0.0.1:0")])
            .args(&self.args)
            .current_dir(dir.path())
            .env("AIGW_LOG", "info")
            // One compile cache for every test gateway of the run (the config's default
            // `cache_dir` is under XDG_CACHE_HOME): each component is compiled once per
            // target dir, not once per gateway, and nothing lands in the user's home.
            .env("XDG_CACHE_HOME", paths::compile_cache_home())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        for name in &self.env_removed {
            command.env_remove(name);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => panic!("cannot run {}: {e}", paths::aigw_bin().display()),
        };

        let (stderr_tx, stderr) = watch::channel(String::new());
        let (stdout_tx, mut stdout) = watch::channel(String::new());
        let readers = [
            spawn_collector(child.stderr.take(), stderr_tx),
            spawn_collector(child.stdout.take(), stdout_tx),
        ];

        let startup_timeout = self.startup_timeout.unwrap_or(STARTUP_TIMEOUT);
        let bound = tokio::time::timeout(startup_timeout, async {
            loop {
                if let Some(addr) = listening_addr(&stdout.borrow_and_update()) {
                    return Some(addr);
                }
                if stdout.changed().await.is_err() {
                    // stdout closed: the process is gone.
                    return listening_addr(&stdout.borrow());
                }
            }
        })
        .await;

        let addr = match bound {
            Ok(Some(addr)) => addr,
            failed => {
                let _ = child.start_kill();
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                // Let the reader drain what the process wrote before it died.
                let mut stderr = stderr;
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while stderr.changed().await.is_ok() {}
                })
                .await;
                let why = match failed {
                    Err(_) => {
                        format!("did not print `listening on <addr>` within {startup_timeout:?}")
                    }
                    Ok(_) => format!("exited ({status:?}) without printing `listening on <addr>`"),
                };
                let stdout = stdout.borrow().clone();
                let stderr = stderr.borrow().clone();
                panic!(
                    "aigw serve {why}\n--- config ---\n{config_toml}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
                );
            }
        };

        let client = match client(self.https.as_deref()) {
            Ok(client) => client,
            Err(e) => panic!("cannot build an HTTP client: {e}"),
        };
        Gateway {
            child,
            addr,
            stderr,
            config_path,
            scheme: if self.https.is_some() {
                "https"
            } else {
                "http"
            },
            client,
            admin_key: self.admin_key,
            _readers: readers,
            _dir: dir,
        }
    }
}

impl Gateway {
    /// Starts `aigw serve` with this config and no extra options.
    pub async fn start(config_toml: &str) -> Gateway {
        GatewayBuilder::default().start(config_toml).await
    }

    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>` (`https://` when it serves TLS), e.g. `gateway.url("/v1/models")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// The admin key it was started with, if any.
    pub fn admin_key(&self) -> Option<&str> {
        self.admin_key.as_deref()
    }

    /// The config file the gateway was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// An HTTP client with a bounded per-request timeout.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `POST /v1/chat/completions` with a JSON body.
    ///
    /// # Panics
    /// When the exchange fails at the transport level (the gateway must always answer).
    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.chat_with(body, &[]).await
    }

    /// `POST /v1/chat/completions` with `x-aigw-debug: attempts`, so the answer describes
    /// every attempt in `x-aigw-attempt-log`.
    ///
    /// # Panics
    /// When the exchange fails at the transport level.
    pub async fn chat_debug(&self, body: &Value) -> reqwest::Response {
        self.chat_with(body, &[("x-aigw-debug", "attempts")]).await
    }

    /// `POST /admin/keys` with `spec`, authorised with the admin key the gateway was started
    /// with; the new key's id and secret.
    ///
    /// # Panics
    /// When the gateway has no admin key, or the key is not created (201).
    pub async fn create_key(&self, spec: &Value) -> (String, String) {
        let Some(admin) = self.admin_key.as_deref() else {
            panic!("create_key: the gateway was started without an admin key");
        };
        let response = match self
            .client
            .post(self.url("/admin/keys"))
            .bearer_auth(admin)
            .json(spec)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => panic!(
                "POST /admin/keys failed: {e}\n--- stderr ---\n{}",
                self.stderr()
            ),
        };
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let field = |name: &str| body[name].as_str().map(str::to_owned);
        match (status.as_u16(), field("id"), field("key")) {
            (201, Some(id), Some(secret)) => (id, secret),
            _ => panic!(
                "POST /admin/keys {spec}: {status} {body}\n--- stderr ---\n{}",
                self.stderr()
            ),
        }
    }

    async fn chat_with(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/v1/chat/completions"))
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.send().await {
            Ok(response) => response,
            Err(e) => panic!(
                "POST /v1/chat/completions failed: {e}\n--- stderr ---\n{}",
                self.stderr()
            ),
        }
    }

    /// The `GET /admin/targets` entry of `target` (`provider/model`).
    ///
    /// # Panics
    /// When the gateway does not list the target.
    pub async fn target_health(&self, target: &str) -> Value {
        let response = self.get("/admin/targets").await;
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(e) => panic!("/admin/targets is not JSON: {e}"),
        };
        body["targets"]
            .as_array()
            .and_then(|all| all.iter().find(|t| t["target"] == target))
            .cloned()
            .unwrap_or_else(|| panic!("/admin/targets does not list {target}: {body}"))
    }

    /// `GET <path>` (with the admin key, if the gateway has one).
    ///
    /// # Panics
    /// When the exchange fails at the transport level.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(key) = &self.admin_key {
            request = request.bearer_auth(key);
        }
        match request.send().await {
            Ok(response) => response,
            Err(e) => panic!("GET {path} failed: {e}\n--- stderr ---\n{}", self.stderr()),
        }
    }

    /// Everything the gateway logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.borrow().clone()
    }

    /// Waits (up to `timeout`) for a log line matching `matches` and returns it. The gateway may
    /// log a request after answering it, so tests wait for the line instead of reading at once.
    pub async fn wait_for_log(
        &self,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let mut stderr = self.stderr.clone();
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(line) = stderr.borrow_and_update().lines().find(|l| matches(l)) {
                    return Some(line.to_owned());
                }
                if stderr.changed().await.is_err() {
                    return stderr
                        .borrow()
                        .lines()
                        .find(|l| matches(l))
                        .map(str::to_owned);
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Waits (up to `timeout`) until at least `count` log lines match, and returns them all.
    pub async fn wait_for_log_lines(
        &self,
        timeout: Duration,
        count: usize,
        matches: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut stderr = self.stderr.clone();
        let collect = |log: &str| {
            log.lines()
                .filter(|l| matches(l))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let lines = collect(&stderr.borrow_and_update());
                if lines.len() >= count || stderr.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        let _ = waited;
        collect(&self.stderr.borrow())
    }

    /// Sends `signal` (a `kill` name: `HUP`, `TERM`) to the gateway.
    ///
    /// # Panics
    /// When the process is gone or the signal cannot be sent.
    pub async fn signal(&self, signal: &str) {
        let Some(pid) = self.child.id() else {
            panic!("the gateway has already exited");
        };
        let sent = tokio::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .await;
        assert!(
            sent.as_ref().is_ok_and(std::process::ExitStatus::success),
            "cannot send SIG{signal} to the gateway: {sent:?}"
        );
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the process as an operator does, with SIGTERM (a graceful stop: in-flight requests
    /// finish, the usage ledger is flushed), and waits for it to exit.
    ///
    /// # Panics
    /// When the signal cannot be sent or the process does not exit within 30 s.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let Some(pid) = self.child.id() else {
            panic!("the gateway has already exited");
        };
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        assert!(
            sent.as_ref().is_ok_and(std::process::ExitStatus::success),
            "cannot send SIGTERM to the gateway: {sent:?}"
        );
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => status,
            other => panic!(
                "the gateway did not stop after SIGTERM: {other:?}\n--- stderr ---\n{}",
                self.stderr()
            ),
        }
    }

    /// Waits up to `timeout` for the process to exit by itself (after a [`Gateway::signal`]):
    /// its status, or `None` if it is still running then.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(e)) => panic!("cannot wait for the gateway: {e}"),
            Err(_) => None,
        }
    }

    /// Kills the process with SIGKILL (no shutdown, no flush: a crash) and waits for it.
    ///
    /// # Panics
    /// When the process cannot be killed.
    pub async fn kill(&mut self) {
        if let Err(e) = self.child.kill().await {
            panic!("cannot kill the gateway: {e}");
        }
    }
}

/// The harness's client: a bounded per-request timeout, trusting `ca_pem` (as well as the
/// usual roots) when given.
pub fn client(ca_pem: Option<&[u8]>) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
    if let Some(pem) = ca_pem {
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(pem)?)
            .tls_info(true);
    }
    builder.build()
}

/// Reads a child's pipe line by line into a watch channel, so waiters see each new line.
fn spawn_collector<R>(pipe: Option<R>, sink: watch::Sender<String>) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let Some(pipe) = pipe else { return };
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.send_modify(|log| {
                log.push_str(&line);
                log.push('\n');
            });
        }
    })
}

/// How many gateways of this test process may be starting at the same time.
fn startup_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        Semaphore::new(cpus.max(2))
    })
}

fn listening_addr(stdout: &str) -> Option<SocketAddr> {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("listening on "))
        .and_then(|addr| addr.trim().parse().ok())
}

/// Runs `aigw <args>` to completion (for CLI tests such as `aigw check`).
///
/// # Panics
/// When the binary cannot be run.
pub fn aigw<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let bin = paths::aigw_bin();
    match std::process::Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!("cannot run {}: {e}", bin.display()),
    }
}

/// A full body with a status, for assertions that show the body when they fail.
pub async fn status_and_json(
    response: reqwest::Response,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => panic!("reading the response body failed: {e}"),
    };
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not JSON (status {status}): {text}"));
    (status, headers, json)
}

/// Reads a streamed body until it ends, keeping what arrived if the transport fails mid-way.
/// Returns the text and the transport error, if any.
pub async fn read_stream(response: reqwest::Response) -> (String, Option<reqwest::Error>) {
    use futures_util::StreamExt;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(e) => return (String::from_utf8_lossy(&body).into_owned(), Some(e)),
        }
    }
    (String::from_utf8_lossy(&body).into_owned(), None)
}
