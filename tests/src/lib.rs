//! End-to-end test support for aigw: everything needed to drive the real `aigw` binary over real
//! sockets, deterministically and offline.
//!
//! - [`mock`] — a scriptable fake provider that speaks one provider's real wire format, chosen by
//!   its [`mock::Flavor`]: Groq, OpenAI, Cerebras, OpenRouter, Novita, Hugging Face, Gemini (native
//!   API) or Replicate (Predictions API). The requested model name picks the behaviour: `ok`,
//!   `tool-call`, `slow-300`, `rate-limit`, `reset`, `cut-stream`, … Also a standalone binary,
//!   `mock-upstream`, for benchmarks and manual runs; the `bench` binary drives the benchmark.
//!   [`mock::tools`] mocks the built-in tools' APIs (Open-Meteo, Finnhub, Alpha Vantage, NewsAPI,
//!   GNews, SearXNG, Brave, Tavily), where the arguments and the key pick the behaviour
//!   (`mock-upstream --tool-api <name>`).
//! - [`gateway`] — runs `aigw serve` on an ephemeral port, collects its logs, kills it on drop.
//! - [`mcp_server`] — the test MCP server (official Python SDK) as a child process.
//! - [`otlp`] — an OTLP/HTTP trace receiver (the official protocol crate's messages) that keeps
//!   the spans aigw exports, for assertions.
//! - [`paths`] — where the binary, the built plugins and the test Python live.
//! - [`sse`] — reads event streams the way an OpenAI client does.
//! - [`setup`] — the usual pair of mock providers and a gateway config naming them.
//!
//! The tests themselves are in `tests/tests/`; `tests/python/` holds the check run with the
//! official `openai` Python SDK.

pub mod bench;
pub mod gateway;
pub mod mcp_server;
pub mod mock;
pub mod otlp;
pub mod paths;
pub mod python;
pub mod setup;
pub mod sse;
pub mod swap;
