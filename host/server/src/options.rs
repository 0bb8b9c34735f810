//! What the server is configured with: the shapes the binary's config produces (server,
//! providers, routes and their targets, per-level timeouts), each with the one `Default` impl
//! that holds its documented defaults (`docs/config.md`, checked against these by a test in the
//! binary). Plain data: [`crate::Gateway::new`] resolves names and builds the served state.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use aigw_router::{Policy, Strategy, Timeouts};

/// The session part of `[memory]`: how much of a conversation's history a chat completion that
/// names it (`x-aigw-conversation`) is sent. The newest items within both bounds are prepended;
/// system and developer messages among them are kept whatever the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// The most items read from the conversation (its newest).
    pub max_items: u32,
    /// The most tokens of history, estimated at one per four characters of text.
    pub max_tokens: u32,
}

impl Default for SessionOptions {
    fn default() -> SessionOptions {
        SessionOptions {
            max_items: 100,
            max_tokens: 8_000,
        }
    }
}

/// `[mcp]`: the MCP server at `/mcp`, which offers the tools a key may use to MCP clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpOptions {
    /// Whether `/mcp` answers at all (off: it is an unknown path).
    pub enabled: bool,
    /// How long a session of the handshake revisions (2025-11-25 and before) lives unused;
    /// each use renews it.
    pub session_ttl: Duration,
    /// What `initialize` and `server/discover` tell the client about the server, for its model.
    pub instructions: String,
}

impl Default for McpOptions {
    fn default() -> McpOptions {
        McpOptions {
            enabled: true,
            session_ttl: Duration::from_secs(3600),
            instructions: "Tools of the aigw gateway: each call runs under your key's grants and \
                           quotas; a failed call answers with isError and the reason."
                .to_owned(),
        }
    }
}

/// `[tool_loop]`: the bounds of the gateway-executed tool loop inside a chat completion
/// (a request naming aigw tools, `docs/tools.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolLoopOptions {
    /// The most model calls one request makes; the last is sent `tool_choice: "none"`.
    pub max_steps: u32,
    /// The whole loop's time, model calls and tool calls together (504 past it).
    pub timeout: Duration,
    /// The most tool calls of one step run at once.
    pub max_parallel_calls: usize,
}

impl Default for ToolLoopOptions {
    fn default() -> ToolLoopOptions {
        ToolLoopOptions {
            max_steps: 8,
            timeout: Duration::from_secs(120),
            max_parallel_calls: 8,
        }
    }
}

/// `[auth]`: who may ask. With an admin key, authentication is on: `/admin` needs that key and
/// every client surface a virtual key; without one, every request is answered openly, which
/// the binary allows only on a loopback address unless `allow_unauthenticated` says otherwise.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// The operator's key for `/admin` (from `admin_key`, `admin_key_file` or `AIGW_ADMIN_KEY`).
    pub admin_key: Option<aigw_egress::Secret>,
    /// Serve without authentication on a non-loopback address (the operator's explicit choice).
    pub allow_unauthenticated: bool,
    /// How often each process checks the store for keys changed by another process.
    pub key_refresh: Duration,
}

impl Default for AuthOptions {
    fn default() -> AuthOptions {
        AuthOptions {
            admin_key: None,
            allow_unauthenticated: false,
            key_refresh: Duration::from_millis(1000),
        }
    }
}

/// `[server]`: where to listen, how large a request and an upstream answer may be, how many
/// streams one client may hold open, how long a client may take, how many connections may be
/// open, and which browsers and `Host` names are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest whole (non-streamed) upstream answer read into memory; a larger one fails its
    /// attempt as a bad response.
    pub max_upstream_body_bytes: usize,
    /// Streams one client (its virtual key, else its IP address) may have open at once; the next
    /// gets 429.
    pub max_streams_per_client: u32,
    /// A request's head (request line and headers) must arrive within this, counted from the
    /// accept for a connection's first request and from the first byte for a later one.
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this, counted once its head is read; else 408.
    pub body_read_timeout: Duration,
    /// A kept-alive connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Open client connections at most; one more is accepted and closed at once.
    pub max_connections: usize,
    /// The event loops connections are served on (`workers.rs`); `None`: one per core.
    pub workers: Option<NonZeroUsize>,
    /// Origins (`https://app.example.com`) whose pages may call the API from a browser;
    /// empty: none, and no CORS header is ever sent.
    pub cors_origins: Vec<String>,
    /// `Host` names answered (`name` on any port, `name:port` on that one, `*` any); `None`:
    /// the listen address's own names (`hosts.rs`).
    pub allowed_hosts: Option<Vec<String>>,
    /// `Some`: HTTPS only, with this certificate and key (`tls.rs`); `None`: plain HTTP.
    pub tls: Option<TlsOptions>,
    /// After SIGTERM: how long readiness is false (and new connections still served) before the
    /// listener closes, so a load balancer stops sending first (`drain.rs`).
    pub drain_delay: Duration,
    /// After SIGTERM: how long requests and streams in flight may take in all (the drain delay
    /// included) before the streams still open are ended.
    pub shutdown_grace: Duration,
}

/// `[server] tls`: the certificate chain and private key served, both PEM files, reloaded when
/// they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files' size and modification time are looked at.
    pub reload_interval: Duration,
}

impl TlsOptions {
    /// The files, with the default reload interval.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsOptions {
        TlsOptions {
            cert: cert.into(),
            key: key.into(),
            reload_interval: Duration::from_secs(2),
        }
    }
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            max_body_bytes: 4 << 20,
            max_upstream_body_bytes: 32 << 20,
            max_streams_per_client: 1000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            workers: None,
            cors_origins: Vec::new(),
            allowed_hosts: None,
            tls: None,
            drain_delay: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// `[redaction]`: text masked in what the gateway stores in memory and in the upstream text it
/// logs (`redact.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionOptions {
    /// Regular expressions (the `regex` crate's syntax); empty: nothing is redacted.
    pub patterns: Vec<String>,
    /// What each match becomes.
    pub replacement: String,
}

impl Default for RedactionOptions {
    fn default() -> RedactionOptions {
        RedactionOptions {
            patterns: Vec::new(),
            replacement: "[REDACTED]".to_owned(),
        }
    }
}

/// `[providers.<name>]`: an upstream account, which plugin translates for it and how the host
/// reaches it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderOptions {
    /// How routes and clients address the provider (`<name>/<model>`).
    pub name: String,
    /// The plugin's `.wasm` file.
    pub plugin: PathBuf,
    /// `None`: the plugin's default base URL.
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// Why `api_key` is absent although configured (e.g. "GROQ_API_KEY is not set").
    pub api_key_missing: Option<String>,
    pub connect_timeout: Duration,
    /// The fallback of every other time limit that no level sets (`timeout_ms`).
    pub timeout: Duration,
    /// The provider's own first byte, stall and total limits. `connect` is unused at this
    /// level: the provider's connect limit is `connect_timeout`.
    pub timeouts: TimeoutOverrides,
}

impl Default for ProviderOptions {
    fn default() -> ProviderOptions {
        ProviderOptions {
            name: String::new(),
            plugin: PathBuf::new(),
            base_url: None,
            api_key: None,
            api_key_missing: None,
            // The engine's default limits: connect, and first byte for the general fallback.
            connect_timeout: Timeouts::default().connect,
            timeout: Timeouts::default().first_byte,
            timeouts: TimeoutOverrides::default(),
        }
    }
}

// By hand so that the credential never reaches a log or a test failure.
impl fmt::Debug for ProviderOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderOptions")
            .field("name", &self.name)
            .field("plugin", &self.plugin)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("api_key_missing", &self.api_key_missing)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// `[models.<alias>]`: a route over targets, and how it treats failures.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteOptions {
    /// In the order they are listed; `priority` (lower first) decides the order they are tried.
    pub targets: Vec<TargetOptions>,
    /// How targets of equal priority are ordered.
    pub strategy: Strategy,
    /// Defaults for this route's targets (a target's own win).
    pub timeouts: TimeoutOverrides,
    /// Same-target retries per target per request (on 5xx, reset, connect failure).
    pub retries: u32,
    /// Retries may be at most this fraction of the route's requests.
    pub retry_budget: f64,
    /// When to start a hedged attempt; `None`: no hedging.
    pub hedge_after: Option<Duration>,
}

impl Default for RouteOptions {
    fn default() -> RouteOptions {
        // The engine's default policy, so that the default lives in one place.
        let policy = Policy::default();
        RouteOptions {
            targets: Vec::new(),
            strategy: policy.strategy,
            timeouts: TimeoutOverrides::default(),
            retries: policy.retries,
            retry_budget: policy.retry_budget.ratio(),
            hedge_after: policy.hedge_after,
        }
    }
}

/// One target of a route: a provider, by name, and the model name it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOptions {
    /// The name of a configured provider ([`ProviderOptions::name`]).
    pub provider: String,
    pub model: String,
    /// Lower is tried first.
    pub priority: u32,
    /// Share among targets of equal priority; at least 1.
    pub weight: u32,
    /// The model's context window in tokens, when known.
    pub context_window: Option<u32>,
    /// Whether the model continues a partial assistant message sent as the last message.
    pub prefill: bool,
    pub timeouts: TimeoutOverrides,
}

impl Default for TargetOptions {
    fn default() -> TargetOptions {
        TargetOptions {
            provider: String::new(),
            model: String::new(),
            priority: 0,
            weight: 1,
            context_window: None,
            prefill: false,
            timeouts: TimeoutOverrides::default(),
        }
    }
}

/// Time limits set at one level (target, route or provider); unset ones come from the level
/// below: target > route > provider's specific limit > provider's `timeout` (connect: target >
/// route > provider's `connect_timeout`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeoutOverrides {
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub stall: Option<Duration>,
    pub total: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::ProviderOptions;

    #[test]
    fn a_provider_prints_without_its_credential() {
        let options = ProviderOptions {
            name: "groq".to_owned(),
            api_key: Some("gsk_secret".to_owned()),
            ..ProviderOptions::default()
        };
        let printed = format!("{options:?}");
        assert!(!printed.contains("gsk_secret"), "{printed}");
        assert!(printed.contains("\"groq\""), "{printed}");
    }
}
