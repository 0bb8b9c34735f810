//! `docs/config.md` against the code: every reference table lists exactly the keys the parser
//! accepts, and every default it states is the one the `Default` impls give (a key whose
//! default is not a fixed value, like `plugin` or `priority`, must say so in words). Changing a
//! default on one side only fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aigw_router::HealthSettings;
use aigw_runtime::Limits;
use aigw_server::{ProviderOptions, RouteOptions, ServerOptions, TargetOptions};

use super::models::STRATEGIES;
use super::plugins::DEFAULT_DIR;

const DOC: &str = include_str!("../../../../docs/config.md");

/// A reference table's rows: key → the default as the doc writes it, `None` when the doc gives
/// no fixed value (written in words, not as a `literal`).
type Table = BTreeMap<String, Option<String>>;

/// Every `| key | default | meaning |` table of the doc, by the heading above it.
fn doc_tables() -> BTreeMap<String, Table> {
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    let mut heading = String::new();
    let mut table: Option<Table> = None;
    for line in DOC.lines() {
        let line = line.trim();
        if let Some(rows) = table.as_mut() {
            if line.starts_with("|---") {
                continue;
            }
            if let Some(row) = line.strip_prefix('|') {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                assert!(cells.len() >= 3, "{heading}: a row needs 3 cells: {line}");
                let key = cells[0]
                    .strip_prefix('`')
                    .and_then(|k| k.strip_suffix('`'))
                    .filter(|k| !k.contains('`'))
                    .unwrap_or_else(|| panic!("{heading}: one `key` per row: {line}"));
                let default = cells[1]
                    .strip_prefix('`')
                    .and_then(|d| d.split_once('`'))
                    .map(|(literal, _)| literal.to_owned());
                let repeated = rows.insert(key.to_owned(), default);
                assert!(repeated.is_none(), "{heading}: `{key}` is listed twice");
                continue;
            }
            let rows = table.take().unwrap_or_default();
            assert!(
                tables.insert(heading.clone(), rows).is_none(),
                "two key tables under {heading}"
            );
        }
        if line.starts_with('#') {
            heading = line.to_owned();
        } else if line == "| key | default | meaning |" {
            table = Some(Table::new());
        }
    }
    if let Some(rows) = table {
        tables.insert(heading, rows);
    }
    tables
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

fn quoted(s: impl std::fmt::Display) -> String {
    format!("\"{s}\"")
}

/// What each table must say, from the `Default` impls, keys in the parser's order.
fn expected_tables() -> BTreeMap<String, Vec<(&'static str, Option<String>)>> {
    let server = ServerOptions::default();
    let limits = Limits::default();
    let quota = aigw_runtime::MemoryQuota::default();
    let provider = ProviderOptions::default();
    let mcp_server = aigw_server::McpServerOptions::default();
    let route = RouteOptions::default();
    let target = TargetOptions::default();
    let failover = HealthSettings::default();
    let memory = aigw_memory::StoreOptions::new(super::memory::DEFAULT_PATH);
    let sessions = aigw_server::SessionOptions::default();
    let redaction = aigw_server::RedactionOptions::default();
    let usage = aigw_access::UsageOptions::default();
    let limiter = aigw_access::LimiterOptions::default();
    let auth = aigw_server::AuthOptions::default();
    let tool_loop = aigw_server::ToolLoopOptions::default();
    let tool = aigw_server::tools::ToolOptions::default();
    let mcp = aigw_server::McpOptions::default();
    let response_cache = aigw_server::ResponseCacheOptions::default();
    let metrics = aigw_telemetry::MetricsOptions::default();
    let strategy = STRATEGIES
        .iter()
        .find(|(_, s)| *s == route.strategy)
        .map(|(name, _)| quoted(name));
    BTreeMap::from([
        (
            "## `[server]`".to_owned(),
            vec![
                ("listen", Some(quoted(server.listen))),
                ("max_body_bytes", Some(server.max_body_bytes.to_string())),
                (
                    "max_upstream_body_bytes",
                    Some(server.max_upstream_body_bytes.to_string()),
                ),
                (
                    "max_streams_per_client",
                    Some(server.max_streams_per_client.to_string()),
                ),
                (
                    "header_read_timeout_ms",
                    Some(ms(server.header_read_timeout)),
                ),
                ("body_read_timeout_ms", Some(ms(server.body_read_timeout))),
                ("idle_timeout_ms", Some(ms(server.idle_timeout))),
                ("max_connections", Some(server.max_connections.to_string())),
                // One per core: not a fixed value.
                ("workers", server.workers.map(|n| n.to_string())),
                (
                    "cors_origins",
                    Some(format!("[{}]", server.cors_origins.join(", "))),
                ),
                // The listen address's own names: not a fixed value.
                ("allowed_hosts", server.allowed_hosts.map(|h| h.join(", "))),
                // None: plain HTTP.
                ("tls", None),
                ("drain_delay_ms", Some(ms(server.drain_delay))),
                ("shutdown_grace_ms", Some(ms(server.shutdown_grace))),
            ],
        ),
        (
            "### `[server.tls]`".to_owned(),
            vec![
                // Required, no default.
                ("cert", None),
                ("key", None),
                (
                    "reload_interval_ms",
                    Some(ms(aigw_server::TlsOptions::new("", "").reload_interval)),
                ),
            ],
        ),
        (
            "## `[plugins]`".to_owned(),
            vec![
                ("dir", Some(quoted(DEFAULT_DIR))),
                ("warm_instances", Some(limits.warm_instances.to_string())),
                ("max_instances", Some(limits.max_instances.to_string())),
                ("call_timeout_ms", Some(ms(limits.call_timeout))),
                (
                    "instantiate_timeout_ms",
                    Some(ms(limits.instantiate_timeout)),
                ),
                (
                    "memory_limit_mib",
                    Some((limits.memory_bytes >> 20).to_string()),
                ),
                ("memory_quota_entries", Some(quota.entries.to_string())),
                ("memory_quota_mib", Some((quota.bytes >> 20).to_string())),
                (
                    "max_upload_mib",
                    Some(super::plugins::DEFAULT_MAX_UPLOAD_MIB.to_string()),
                ),
                (
                    "watch_interval_ms",
                    Some(ms(super::plugins::DEFAULT_WATCH_INTERVAL)),
                ),
                ("compile_cache", Some("true".to_owned())),
                // Depends on the environment: written in words.
                ("cache_dir", None),
            ],
        ),
        (
            "## `[memory]`".to_owned(),
            vec![
                ("path", Some(quoted(super::memory::DEFAULT_PATH))),
                ("durability", Some(quoted(memory.durability.name()))),
                ("busy_timeout_ms", Some(ms(memory.busy_timeout))),
                ("max_item_bytes", Some(memory.max_item_bytes.to_string())),
                (
                    "sweep_interval_secs",
                    Some(memory.sweep_interval.as_secs().to_string()),
                ),
                ("session_max_items", Some(sessions.max_items.to_string())),
                ("session_max_tokens", Some(sessions.max_tokens.to_string())),
            ],
        ),
        (
            "## `[limits]`".to_owned(),
            vec![
                ("lease_percent", Some(limiter.lease_percent.to_string())),
                ("idle_return_ms", Some(ms(limiter.idle_return))),
                ("hold_ttl_ms", Some(ms(limiter.hold_ttl))),
                ("recheck_ms", Some(ms(limiter.recheck))),
                (
                    "sweep_interval_secs",
                    Some(limiter.sweep_interval.as_secs().to_string()),
                ),
            ],
        ),
        (
            "## `[providers.<name>]`".to_owned(),
            vec![
                // Required: the default is only a placeholder for `..Default::default()`.
                ("plugin", None),
                ("base_url", provider.base_url.map(quoted)),
                ("api_key", provider.api_key.map(quoted)),
                // None: no credential from a file.
                ("api_key_file", None),
                ("connect_timeout_ms", Some(ms(provider.connect_timeout))),
                ("timeout_ms", Some(ms(provider.timeout))),
                (
                    "first_byte_timeout_ms",
                    provider.timeouts.first_byte.map(ms),
                ),
                ("stall_timeout_ms", provider.timeouts.stall.map(ms)),
                ("total_timeout_ms", provider.timeouts.total.map(ms)),
            ],
        ),
        (
            "## `[mcp_servers.<name>]`".to_owned(),
            vec![
                ("url", None),
                // None: no credential unless given.
                ("api_key", mcp_server.api_key.clone().map(quoted)),
                ("api_key_file", None),
                ("header", Some(quoted(&mcp_server.header))),
                ("scheme", Some(quoted(&mcp_server.scheme))),
                // The table's name.
                ("prefix", None),
                ("timeout_ms", Some(ms(mcp_server.timeout))),
                (
                    "refresh_seconds",
                    Some(mcp_server.refresh.as_secs().to_string()),
                ),
                ("tools", None),
            ],
        ),
        (
            "## `[models.<alias>]`".to_owned(),
            vec![
                ("targets", None),
                ("strategy", strategy),
                ("connect_timeout_ms", route.timeouts.connect.map(ms)),
                ("first_byte_timeout_ms", route.timeouts.first_byte.map(ms)),
                ("stall_timeout_ms", route.timeouts.stall.map(ms)),
                ("total_timeout_ms", route.timeouts.total.map(ms)),
                ("retries", Some(route.retries.to_string())),
                ("retry_budget", Some(route.retry_budget.to_string())),
                ("hedge_after_ms", route.hedge_after.map(ms)),
                // None: the route offers no aigw tools.
                ("tools", None),
                // None: `[response_cache] default_ttl_s` applies.
                ("cache_ttl_s", None),
            ],
        ),
        (
            "### Targets".to_owned(),
            vec![
                ("target", None),
                // The entry's position in the list, not the Default's placeholder.
                ("priority", None),
                ("weight", Some(target.weight.to_string())),
                (
                    "context_window",
                    target.context_window.map(|w| w.to_string()),
                ),
                ("prefill", Some(target.prefill.to_string())),
                ("connect_timeout_ms", target.timeouts.connect.map(ms)),
                ("first_byte_timeout_ms", target.timeouts.first_byte.map(ms)),
                ("stall_timeout_ms", target.timeouts.stall.map(ms)),
                ("total_timeout_ms", target.timeouts.total.map(ms)),
            ],
        ),
        (
            "## `[redaction]`".to_owned(),
            vec![
                (
                    "patterns",
                    Some(format!("[{}]", redaction.patterns.join(", "))),
                ),
                ("replacement", Some(quoted(&redaction.replacement))),
            ],
        ),
        (
            "## `[tool_loop]`".to_owned(),
            vec![
                ("max_steps", Some(tool_loop.max_steps.to_string())),
                ("timeout_ms", Some(ms(tool_loop.timeout))),
                (
                    "max_parallel_calls",
                    Some(tool_loop.max_parallel_calls.to_string()),
                ),
            ],
        ),
        (
            "## `[auth]`".to_owned(),
            vec![
                ("admin_key", auth.admin_key.map(|k| quoted(k.expose()))),
                ("admin_key_file", None),
                (
                    "allow_unauthenticated",
                    Some(auth.allow_unauthenticated.to_string()),
                ),
                ("key_refresh_ms", Some(ms(auth.key_refresh))),
            ],
        ),
        (
            "## `[failover]`".to_owned(),
            vec![
                (
                    "breaker_failures",
                    Some(failover.breaker_failures.to_string()),
                ),
                ("breaker_cooldown_ms", Some(ms(failover.breaker_cooldown))),
                (
                    "misconfigured_cooldown_ms",
                    Some(ms(failover.misconfigured_cooldown)),
                ),
                (
                    "rate_limit_backoff_ms",
                    Some(ms(failover.rate_limit_backoff)),
                ),
                (
                    "rate_limit_backoff_max_ms",
                    Some(ms(failover.rate_limit_backoff_max)),
                ),
                ("retry_delay_ms", Some(ms(failover.retry_delay))),
            ],
        ),
        (
            "## `[prices.\"<provider>/<model>\"]`".to_owned(),
            // Both required.
            vec![("input", None), ("output", None)],
        ),
        (
            "## `[usage]`".to_owned(),
            vec![("flush_interval_ms", Some(ms(usage.flush_interval)))],
        ),
        (
            "## `[tools.<name>]`".to_owned(),
            vec![
                // The table's name, not a fixed value.
                ("plugin", None),
                ("timeout_ms", Some(ms(tool.timeout))),
                (
                    "max_response_bytes",
                    Some(tool.max_response_bytes.to_string()),
                ),
                // The plugin's own TTL per tool.
                (
                    "cache_ttl_seconds",
                    tool.cache_ttl.map(|t| t.as_secs().to_string()),
                ),
                // Every upstream of the plugin, in its order.
                ("upstream", None),
            ],
        ),
        (
            "### `[[tools.<name>.upstream]]`".to_owned(),
            vec![
                ("name", None),
                ("endpoints", None),
                ("api_key", None),
                ("api_key_file", None),
            ],
        ),
        (
            "## `[mcp]`".to_owned(),
            vec![
                ("enabled", Some(mcp.enabled.to_string())),
                (
                    "session_ttl_seconds",
                    Some(mcp.session_ttl.as_secs().to_string()),
                ),
                // A sentence, written in words.
                ("instructions", None),
            ],
        ),
        (
            "## `[response_cache]`".to_owned(),
            vec![
                ("enabled", Some(response_cache.enabled.to_string())),
                // None: no route is cached unless it sets `cache_ttl_s`.
                (
                    "default_ttl_s",
                    response_cache.default_ttl.map(|t| t.as_secs().to_string()),
                ),
                (
                    "max_entry_bytes",
                    Some(response_cache.max_entry_bytes.to_string()),
                ),
            ],
        ),
        (
            "## `[metrics]`".to_owned(),
            vec![
                ("enabled", Some(metrics.enabled.to_string())),
                (
                    "max_series_per_metric",
                    Some(metrics.max_series_per_metric.to_string()),
                ),
                // No second listener unless one is set.
                ("listen", None),
            ],
        ),
        (
            "## `[tracing]`".to_owned(),
            vec![
                // Unset: traces are off (or the OTEL_* variables say).
                ("otlp_endpoint", None),
                ("service_name", Some(quoted(super::DEFAULT_SERVICE_NAME))),
                (
                    "sample_ratio",
                    Some(format!("{:.1}", super::DEFAULT_SAMPLE_RATIO)),
                ),
                // A table of names and values, none by default.
                ("headers", None),
                ("timeout_ms", Some(ms(super::DEFAULT_TIMEOUT))),
            ],
        ),
    ])
}

/// The keys the parser accepts where `text` puts an unknown key `zzz`, as serde lists them.
fn accepted_keys(text: &str) -> Vec<String> {
    let message = match super::parse(Path::new("aigw.toml"), text, &|_| None) {
        Ok(_) => panic!("an unknown key was accepted:\n{text}"),
        Err(e) => e.message,
    };
    assert!(message.contains("unknown field `zzz`"), "{text}\n{message}");
    let (_, expected) = message.split_once("expected").unwrap();
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_documented_default_is_the_default_impls_value() {
    let doc = doc_tables();
    let expected = expected_tables();
    assert_eq!(
        doc.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "docs/config.md must have one key table under each of these headings"
    );
    for (heading, rows) in &expected {
        let documented = &doc[heading];
        for (key, default) in rows {
            let Some(written) = documented.get(*key) else {
                panic!("docs/config.md, {heading}: `{key}` is not listed");
            };
            assert_eq!(
                written, default,
                "docs/config.md, {heading}: `{key}`'s default (None: not a `literal`)"
            );
        }
        let keys: Vec<&str> = rows.iter().map(|(key, _)| *key).collect();
        for key in documented.keys() {
            assert!(
                keys.contains(&key.as_str()),
                "docs/config.md, {heading}: `{key}` is not a key the config has"
            );
        }
    }
}

#[test]
fn the_checked_keys_are_exactly_the_ones_the_parser_accepts() {
    let expected = expected_tables();
    let keys = |heading: &str| -> Vec<String> {
        expected[heading]
            .iter()
            .map(|(key, _)| (*key).to_owned())
            .collect()
    };
    let sections = [
        ("## `[server]`", "[server]\nzzz = 1\n"),
        ("### `[server.tls]`", "[server.tls]\nzzz = 1\n"),
        ("## `[plugins]`", "[plugins]\nzzz = 1\n"),
        ("## `[providers.<name>]`", "[providers.p]\nzzz = 1\n"),
        ("## `[models.<alias>]`", "[models.m]\nzzz = 1\n"),
        ("### Targets", "[models.m]\ntargets = [{ zzz = 1 }]\n"),
        ("## `[failover]`", "[failover]\nzzz = 1\n"),
        ("## `[memory]`", "[memory]\nzzz = 1\n"),
        ("## `[redaction]`", "[redaction]\nzzz = 1\n"),
        ("## `[limits]`", "[limits]\nzzz = 1\n"),
        (
            "## `[prices.\"<provider>/<model>\"]`",
            "[prices.\"p/m\"]\ninput = 1\noutput = 1\nzzz = 1\n",
        ),
        ("## `[usage]`", "[usage]\nzzz = 1\n"),
        ("## `[auth]`", "[auth]\nzzz = 1\n"),
        (
            "## `[mcp_servers.<name>]`",
            "[mcp_servers.m]\nurl = \"http://x/\"\nzzz = 1\n",
        ),
        ("## `[tool_loop]`", "[tool_loop]\nzzz = 1\n"),
        ("## `[tools.<name>]`", "[tools.t]\nzzz = 1\n"),
        (
            "### `[[tools.<name>.upstream]]`",
            "[[tools.t.upstream]]\nname = \"u\"\nzzz = 1\n",
        ),
        ("## `[mcp]`", "[mcp]\nzzz = 1\n"),
        ("## `[response_cache]`", "[response_cache]\nzzz = 1\n"),
        ("## `[metrics]`", "[metrics]\nzzz = 1\n"),
        ("## `[tracing]`", "[tracing]\nzzz = 1\n"),
    ];
    for (heading, text) in sections {
        assert_eq!(accepted_keys(text), keys(heading), "{heading}");
    }
    let top: Vec<String> = sections
        .iter()
        .filter(|(heading, _)| heading.starts_with("## `["))
        .map(|(heading, _)| {
            let name = heading.trim_start_matches("## `[").trim_end_matches("]`");
            name.split('.').next().unwrap_or(name).to_owned()
        })
        .collect();
    assert_eq!(accepted_keys("zzz = 1\n"), top);
}
