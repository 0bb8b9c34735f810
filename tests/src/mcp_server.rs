//! The test MCP server (`tests/python/mcp_server.py`, written with the official Python SDK) run
//! as a child process: the venv's Python, a loopback port it picks (or one given, for a server
//! that comes up after the gateway), the bearer token it checks, the era it speaks; killed on
//! drop.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::paths;

/// How long the server may take to bind its port (Python imports the SDK first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which revisions the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// The SDK as it is: 2026-07-28 and the 2025-11-25 handshake on one endpoint.
    Both,
    /// Only the handshake: a modern request is refused as a pre-2026 server refuses it.
    Legacy,
}

/// Which requests must carry the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Every request to the endpoint.
    All,
    /// Only `tools/call`: the tools can be listed without the credential.
    Calls,
}

/// A running test MCP server.
pub struct McpServer {
    child: Child,
    port: u16,
    client: reqwest::Client,
}

impl McpServer {
    /// Starts it on a free port, checking `token`.
    pub async fn start(token: &str, era: Era) -> McpServer {
        McpServer::start_with(0, token, era, Guard::All).await
    }

    /// Starts it on `port` (0: a free one).
    ///
    /// # Panics
    /// When Python or the SDK is missing, or the server does not print its port in time.
    pub async fn start_with(port: u16, token: &str, era: Era, guard: Guard) -> McpServer {
        let guard = match guard {
            Guard::All => "all",
            Guard::Calls => "calls",
        };
        let script = paths::workspace_root().join("tests/python/mcp_server.py");
        let era = match era {
            Era::Both => "both",
            Era::Legacy => "legacy",
        };
        let python = paths::python();
        let mut child = Command::new(&python)
            .arg(&script)
            .args([
                "--port",
                &port.to_string(),
                "--token",
                token,
                "--era",
                era,
                "--guard",
                guard,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} {}: {e}; `cargo xtask test` installs the SDK into target/py \
                     (or set AIGW_PYTHON)",
                    python.display(),
                    script.display()
                )
            });
        let Some(stdout) = child.stdout.take() else {
            panic!("the MCP server's stdout is not piped");
        };
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let port = match first {
            Ok(Ok(Some(line))) => line
                .strip_prefix("listening on ")
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("the MCP server printed {line:?}, not its port")),
            Ok(Ok(None)) => panic!("the MCP server exited before listening (see its stderr)"),
            Ok(Err(e)) => panic!("cannot read the MCP server's stdout: {e}"),
            Err(_) => panic!("the MCP server did not listen within {START_TIMEOUT:?}"),
        };
        // The rest of its stdout is drained so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        McpServer {
            child,
            port,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_else(|e| panic!("cannot build a client: {e}")),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its streamable HTTP endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// What it saw: `{"calls": {tool: n}, "discover": n, "initialize": n, "session_calls": n}`.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn stats(&self) -> Value {
        let url = format!("http://127.0.0.1:{}/stats", self.port);
        match self.client.get(&url).send().await {
            Ok(response) => response
                .json()
                .await
                .unwrap_or_else(|e| panic!("the MCP server's stats are not JSON: {e}")),
            Err(e) => panic!("the MCP server does not answer {url}: {e}"),
        }
    }

    /// Calls of remote tool `name` so far.
    pub async fn calls(&self, name: &str) -> u64 {
        self.stats().await["calls"][name].as_u64().unwrap_or(0)
    }

    /// Stops it now.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A loopback port nothing listens on at the moment (for a server started later).
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(address) => address.port(),
        Err(e) => panic!("cannot find a free port: {e}"),
    }
}
