//! The config's behaviour: defaults, every section's keys and checks, and where errors point.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use aigw_router::{HealthSettings, Strategy};
use aigw_server::{RouteOptions, ServerOptions, TargetOptions, TimeoutOverrides};

use super::{Config, ConfigError, parse};

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("/etc/aigw/aigw.toml"), text, &no_env)
}

#[test]
fn empty_config_gets_the_documented_defaults() {
    let c = parse_str("").unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(c.plugins.dir, PathBuf::from("/etc/aigw/dist/plugins"));
    let limits = &c.plugins.limits;
    assert_eq!(limits.warm_instances, 4);
    assert_eq!(limits.max_instances, 1000);
    assert_eq!(limits.call_timeout, Duration::from_secs(1));
    assert_eq!(limits.instantiate_timeout, Duration::from_secs(10));
    assert_eq!(limits.memory_bytes, 64 << 20);
    assert!(c.providers.is_empty() && c.routes.is_empty());
    // Absent keys are exactly the served shapes' defaults.
    assert_eq!(c.server, ServerOptions::default());
    assert_eq!(c.failover, HealthSettings::default());
    // The memory store sits beside the config file.
    assert_eq!(c.memory.path, PathBuf::from("/etc/aigw/aigw.db"));
    assert_eq!(c.memory.durability, aigw_memory::Durability::Process);
}

#[test]
fn the_memory_section_sets_path_durability_and_busy_timeout() {
    let c = parse_str(
        "[memory]\npath = \"data/memory.db\"\ndurability = \"power\"\nbusy_timeout_ms = 250\n",
    )
    .unwrap();
    assert_eq!(c.memory.path, PathBuf::from("/etc/aigw/data/memory.db"));
    assert_eq!(c.memory.durability, aigw_memory::Durability::Power);
    assert_eq!(c.memory.busy_timeout, Duration::from_millis(250));
    assert_eq!(c.memory.max_item_bytes, 1 << 20);
    let c = parse_str("[memory]\nmax_item_bytes = 2048\n").unwrap();
    assert_eq!(c.memory.max_item_bytes, 2048);
    let err = parse_str("[memory]\nmax_item_bytes = 0\n").unwrap_err();
    assert!(err.message.contains("memory.max_item_bytes"), "{err}");
    let err = parse_str("[memory]\ndurability = \"sometimes\"\n").unwrap_err();
    assert_eq!(err.at, Some((2, 14)));
    assert!(err.message.contains("memory.durability"), "{err}");
    let err = parse_str("[memory]\nbusy_timeout_ms = 0\n").unwrap_err();
    assert!(err.message.contains("memory.busy_timeout_ms"), "{err}");
    assert_eq!(c.memory.sweep_interval, Duration::from_secs(60));
    let c = parse_str("[memory]\nsweep_interval_secs = 5\n").unwrap();
    assert_eq!(c.memory.sweep_interval, Duration::from_secs(5));
    let err = parse_str("[memory]\nsweep_interval_secs = 0\n").unwrap_err();
    assert_eq!(err.at, Some((2, 23)));
    assert!(err.message.contains("memory.sweep_interval_secs"), "{err}");
}

#[test]
fn a_libsql_server_url_is_refused_naming_the_key() {
    for url in [
        "libsql://db.example.turso.io",
        "https://db.example",
        "ws://127.0.0.1:8080",
    ] {
        let err = parse_str(&format!("[memory]\npath = \"{url}\"\n")).unwrap_err();
        assert_eq!(err.at, Some((2, 8)), "{url}");
        assert!(err.message.contains("memory.path"), "{err}");
        assert!(err.message.contains("libsql server"), "{err}");
    }
}

#[test]
fn the_memory_section_bounds_session_history() {
    let c = parse_str("").unwrap();
    assert_eq!(c.sessions, aigw_server::SessionOptions::default());
    let c = parse_str("[memory]\nsession_max_items = 0\nsession_max_tokens = 500\n").unwrap();
    assert_eq!((c.sessions.max_items, c.sessions.max_tokens), (0, 500));
    let err = parse_str("[memory]\nsession_max_items = 10001\n").unwrap_err();
    assert_eq!(err.at, Some((2, 21)));
    assert!(err.message.contains("memory.session_max_items"), "{err}");
    let err = parse_str("[memory]\nsession_max_tokens = 99999999999\n").unwrap_err();
    assert!(err.message.contains("memory.session_max_tokens"), "{err}");
}

#[test]
fn unknown_key_names_file_line_column_and_key() {
    let err = parse_str("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("/etc/aigw/aigw.toml:3:1: "), "{text}");
    assert!(text.contains("unknown field `lisen`"), "{text}");
}

#[test]
fn unknown_key_inside_a_provider_is_located() {
    let err = parse_str("[providers.groq]\nplugin = \"groq\"\napi_kee = \"x\"\n").unwrap_err();
    assert_eq!(err.at, Some((3, 1)), "{err}");
    assert!(err.message.contains("unknown field `api_kee`"), "{err}");
}

#[test]
fn providers_and_routes_resolve_in_order() {
    let c = parse(
        Path::new("/srv/aigw.toml"),
        r#"
[plugins]
dir = "plugins"
[providers.groq]
plugin = "groq"
api_key = "${GROQ_API_KEY}"
timeout_ms = 300
[providers.local]
plugin = "/opt/p/openai-compatible.wasm"
base_url = "http://127.0.0.1:11434/v1"
[models.fast]
targets = ["groq/llama-3.1-8b-instant", "local/llama3.2"]
"#,
        &|name| (name == "GROQ_API_KEY").then(|| "gsk_test".to_owned()),
    )
    .unwrap();
    assert_eq!(c.providers.len(), 2);
    let groq = &c.providers[0];
    assert_eq!(groq.name, "groq");
    assert_eq!(groq.plugin, PathBuf::from("/srv/plugins/groq.wasm"));
    assert_eq!(groq.api_key.as_deref(), Some("gsk_test"));
    assert_eq!(groq.timeout, Duration::from_millis(300));
    assert_eq!(groq.connect_timeout, Duration::from_secs(5));
    let local = &c.providers[1];
    assert_eq!(local.plugin, PathBuf::from("/opt/p/openai-compatible.wasm"));
    assert_eq!(local.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
    assert_eq!(c.routes.keys().collect::<Vec<_>>(), ["fast"]);
    let pairs: Vec<(&str, &str)> = c.routes["fast"]
        .targets
        .iter()
        .map(|t| (t.provider.as_str(), t.model.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("groq", "llama-3.1-8b-instant"), ("local", "llama3.2")]
    );
}

#[test]
fn unset_api_key_variable_is_reported_not_fatal() {
    let c =
        parse_str("[providers.groq]\nplugin = \"groq\"\napi_key = \"${GROQ_API_KEY}\"\n").unwrap();
    assert_eq!(c.providers[0].api_key, None);
    assert_eq!(
        c.providers[0].api_key_missing.as_deref(),
        Some("GROQ_API_KEY is not set")
    );
}

#[test]
fn unset_variable_elsewhere_is_an_error_at_its_line() {
    let err =
        parse_str("[providers.groq]\nplugin = \"groq\"\nbase_url = \"${BASE}\"\n").unwrap_err();
    assert_eq!(err.at, Some((3, 12)));
    assert!(err.message.contains("BASE is not set"), "{err}");
    assert!(err.message.contains("providers.groq.base_url"), "{err}");
}

#[test]
fn target_with_unknown_provider_is_located_and_lists_known_ones() {
    let err = parse_str(
        "[providers.groq]\nplugin = \"groq\"\n[models.fast]\ntargets = [\"groq/a\", \"nope/b\"]\n",
    )
    .unwrap_err();
    assert_eq!(err.at, Some((4, 22)));
    assert!(
        err.message
            .contains("unknown provider `nope` (configured: groq)"),
        "{err}"
    );
}

#[test]
fn bad_values_are_rejected_with_their_key() {
    for (text, needle) in [
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[server]\nmax_body_bytes = 0\n", "server.max_body_bytes"),
        (
            "[providers.g]\nplugin = \"g\"\nbase_url = \"ftp://x\"\n",
            "providers.g.base_url",
        ),
        ("[models.m]\ntargets = []\n", "models.m.targets"),
        ("[models.m]\ntargets = [\"no-slash\"]\n", "provider/model"),
        ("[server]\nlisten = 5\n", "invalid type"),
        (
            "[server]\nheader_read_timeout_ms = 0\n",
            "server.header_read_timeout_ms",
        ),
        (
            "[server]\nbody_read_timeout_ms = 0\n",
            "server.body_read_timeout_ms",
        ),
        ("[server]\nidle_timeout_ms = 0\n", "server.idle_timeout_ms"),
        ("[server]\nmax_connections = 0\n", "server.max_connections"),
        (
            "[server]\nmax_connections = 2000000\n",
            "server.max_connections",
        ),
        ("[server]\nworkers = 0\n", "server.workers"),
        ("[server]\nworkers = 5000\n", "server.workers"),
        (
            "[server]\ncors_origins = [\"https://app.example/\"]\n",
            "server.cors_origins",
        ),
        (
            "[server]\ncors_origins = [\"app.example\"]\n",
            "server.cors_origins",
        ),
        ("[server]\ncors_origins = [\"*\"]\n", "server.cors_origins"),
        ("[server]\nallowed_hosts = [\"\"]\n", "server.allowed_hosts"),
        (
            "[server]\nallowed_hosts = [\"http://gw.example\"]\n",
            "server.allowed_hosts",
        ),
        (
            "[server]\nallowed_hosts = [\"*.example\"]\n",
            "server.allowed_hosts",
        ),
    ] {
        let err = parse_str(text).unwrap_err();
        assert!(err.at.is_some(), "{text}: {err}");
        assert!(err.message.contains(needle), "{text}: {err}");
    }
}

#[test]
fn the_edge_keys_are_read_into_the_server_options() {
    let c = parse_str(
        "[server]\nheader_read_timeout_ms = 300\nbody_read_timeout_ms = 400\n\
         idle_timeout_ms = 500\nmax_connections = 7\nworkers = 3\n\
         cors_origins = [\"https://app.example\", \"http://localhost:3000\"]\n\
         allowed_hosts = [\"gw.example\", \"[::1]:8080\", \"*\"]\n",
    )
    .unwrap();
    let s = &c.server;
    assert_eq!(s.header_read_timeout, Duration::from_millis(300));
    assert_eq!(s.body_read_timeout, Duration::from_millis(400));
    assert_eq!(s.idle_timeout, Duration::from_millis(500));
    assert_eq!(s.max_connections, 7);
    assert_eq!(s.workers.map(|n| n.get()), Some(3));
    assert_eq!(parse_str("").unwrap().server.workers, None, "one per core");
    assert_eq!(
        s.cors_origins,
        ["https://app.example", "http://localhost:3000"]
    );
    assert_eq!(
        s.allowed_hosts.as_deref(),
        Some(
            &[
                "gw.example".to_owned(),
                "[::1]:8080".to_owned(),
                "*".to_owned()
            ][..]
        )
    );
}

const TWO_PROVIDERS: &str =
    "[providers.groq]\nplugin = \"groq\"\n[providers.cerebras]\nplugin = \"cerebras\"\n";

/// Parses `TWO_PROVIDERS` followed by `rest` (so `rest` starts at line 5).
fn with_providers(rest: &str) -> Result<Config, ConfigError> {
    parse_str(&format!("{TWO_PROVIDERS}{rest}"))
}

fn ms(millis: u64) -> Option<Duration> {
    Some(Duration::from_millis(millis))
}

#[test]
fn plain_string_targets_are_tried_in_list_order_with_weight_1() {
    let c = with_providers("[models.m]\ntargets = [\"groq/a\", \"cerebras/b/c\", \"groq/d\"]\n")
        .unwrap();
    let t = &c.routes["m"].targets;
    let got: Vec<(&str, &str, u32, u32)> = t
        .iter()
        .map(|t| (t.provider.as_str(), t.model.as_str(), t.priority, t.weight))
        .collect();
    assert_eq!(
        got,
        [
            ("groq", "a", 0, 1),
            ("cerebras", "b/c", 1, 1),
            ("groq", "d", 2, 1)
        ]
    );
    for target in t {
        assert_eq!(target.context_window, None);
        assert!(!target.prefill);
        assert_eq!(target.timeouts, TimeoutOverrides::default());
    }
}

#[test]
fn table_target_takes_every_key() {
    let c = with_providers(
        r#"[models.smart]
targets = [
  "groq/llama-3.3-70b-versatile",
  { target = "cerebras/llama-3.3-70b", priority = 0, weight = 3, context_window = 65536,
prefill = true, connect_timeout_ms = 2000, first_byte_timeout_ms = 10000,
stall_timeout_ms = 5000, total_timeout_ms = 120000 },
  { target = "groq/llama-3.1-8b-instant" },
]
"#,
    )
    .unwrap();
    let t = &c.routes["smart"].targets;
    assert_eq!(t.len(), 3);
    assert_eq!(
        t[1],
        TargetOptions {
            provider: "cerebras".to_owned(),
            model: "llama-3.3-70b".to_owned(),
            priority: 0,
            weight: 3,
            context_window: Some(65536),
            prefill: true,
            timeouts: TimeoutOverrides {
                connect: ms(2000),
                first_byte: ms(10_000),
                stall: ms(5000),
                total: ms(120_000),
            },
        }
    );
    // A table with only `target` gets the same defaults as a plain string at its position.
    assert_eq!(
        t[2],
        TargetOptions {
            provider: "groq".to_owned(),
            model: "llama-3.1-8b-instant".to_owned(),
            priority: 2,
            weight: 1,
            context_window: None,
            prefill: false,
            timeouts: TimeoutOverrides::default(),
        }
    );
    assert_eq!((t[0].priority, t[0].weight), (0, 1));
}

#[test]
fn route_keys_have_defaults_and_can_be_set() {
    let c = with_providers(
        r#"[models.plain]
targets = ["groq/a"]
[models.tuned]
targets = ["groq/a", "cerebras/b"]
strategy = "latency"
connect_timeout_ms = 3000
first_byte_timeout_ms = 15000
stall_timeout_ms = 10000
total_timeout_ms = 300000
retries = 0
retry_budget = 1
hedge_after_ms = 400
"#,
    )
    .unwrap();
    assert_eq!(c.routes.keys().collect::<Vec<_>>(), ["plain", "tuned"]);
    let plain = &c.routes["plain"];
    assert_eq!(plain.strategy, Strategy::Weighted);
    assert_eq!(plain.timeouts, TimeoutOverrides::default());
    assert_eq!(plain.retries, 1);
    assert_eq!(plain.retry_budget, 0.2);
    assert_eq!(plain.hedge_after, None);
    assert_eq!(
        RouteOptions {
            targets: Vec::new(),
            ..plain.clone()
        },
        RouteOptions::default()
    );
    let tuned = &c.routes["tuned"];
    assert_eq!(tuned.strategy, Strategy::Latency);
    assert_eq!(
        tuned.timeouts,
        TimeoutOverrides {
            connect: ms(3000),
            first_byte: ms(15_000),
            stall: ms(10_000),
            total: ms(300_000),
        }
    );
    assert_eq!(tuned.retries, 0);
    assert_eq!(tuned.retry_budget, 1.0);
    assert_eq!(tuned.hedge_after, ms(400));
    // Route timeouts are defaults for the engine, not copied into the targets.
    assert_eq!(tuned.targets[0].timeouts, TimeoutOverrides::default());
}

#[test]
fn targets_and_strategy_expand_environment_variables() {
    let c = parse(
        Path::new("/etc/aigw/aigw.toml"),
        &format!(
            "{TWO_PROVIDERS}[models.m]\ntargets = [\"${{FAST:-groq/a}}\", {{ target = \"cerebras/${{MODEL}}\" }}]\nstrategy = \"${{STRATEGY}}\"\n"
        ),
        &|name| match name {
            "MODEL" => Some("llama-3.3-70b".to_owned()),
            "STRATEGY" => Some("latency".to_owned()),
            _ => None,
        },
    )
    .unwrap();
    let m = &c.routes["m"];
    assert_eq!(
        (m.targets[0].provider.as_str(), m.targets[0].model.as_str()),
        ("groq", "a")
    );
    assert_eq!(m.targets[1].model, "llama-3.3-70b");
    assert_eq!(m.strategy, Strategy::Latency);

    let err =
        with_providers("[models.m]\ntargets = [{ target = \"groq/${MODEL}\" }]\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/aigw/aigw.toml:6:23: `models.m.targets[0].target`: environment variable MODEL is not set"
    );
}

#[test]
fn provider_phase_timeouts_are_optional() {
    let c = parse_str(
        "[providers.a]\nplugin = \"a\"\n[providers.b]\nplugin = \"b\"\nfirst_byte_timeout_ms = 7000\nstall_timeout_ms = 8000\ntotal_timeout_ms = 9000\n",
    )
    .unwrap();
    assert_eq!(c.providers[0].timeouts, TimeoutOverrides::default());
    assert_eq!(
        c.providers[1].timeouts,
        TimeoutOverrides {
            connect: None,
            first_byte: ms(7000),
            stall: ms(8000),
            total: ms(9000),
        }
    );
    assert_eq!(c.providers[1].connect_timeout, Duration::from_secs(5));
    assert_eq!(c.providers[1].timeout, Duration::from_secs(120));
}

#[test]
fn failover_section_has_defaults_and_can_be_set() {
    let defaults = parse_str("").unwrap().failover;
    assert_eq!(defaults, HealthSettings::default());
    assert_eq!(
        defaults,
        HealthSettings {
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            misconfigured_cooldown: Duration::from_secs(300),
            rate_limit_backoff: Duration::from_secs(1),
            rate_limit_backoff_max: Duration::from_secs(60),
            retry_delay: Duration::from_millis(50),
        }
    );
    let set = parse_str(
        r#"[failover]
breaker_failures = 2
breaker_cooldown_ms = 1000
misconfigured_cooldown_ms = 2000
rate_limit_backoff_ms = 250
rate_limit_backoff_max_ms = 250
retry_delay_ms = 0
"#,
    )
    .unwrap()
    .failover;
    assert_eq!(
        set,
        HealthSettings {
            breaker_failures: 2,
            breaker_cooldown: Duration::from_secs(1),
            misconfigured_cooldown: Duration::from_secs(2),
            rate_limit_backoff: Duration::from_millis(250),
            rate_limit_backoff_max: Duration::from_millis(250),
            retry_delay: Duration::ZERO,
        }
    );
}

#[test]
fn new_keys_are_checked_with_file_line_column_and_key() {
    let route = |rest: &str| format!("{TWO_PROVIDERS}[models.smart]\n{rest}");
    let cases = [
        (
            route("targets = [{ target = \"groq/a\", weight = 0 }]\n"),
            "6:42",
            "`models.smart.targets[0].weight` must be at least 1",
        ),
        (
            route("targets = [{ target = \"groq/a\", wieght = 2 }]\n"),
            "6:33",
            "unknown field `wieght`, expected one of `target`, `priority`, `weight`",
        ),
        (
            route("targets = [\"groq/a\", { priority = 1 }]\n"),
            "6:22",
            "`models.smart.targets[1]`: missing key `target`",
        ),
        (
            route("targets = [{ target = \"nope/a\" }]\n"),
            "6:23",
            "`models.smart.targets[0].target`: unknown provider `nope` (configured: cerebras, groq)",
        ),
        (
            route("targets = [{ target = \"groq\" }]\n"),
            "6:23",
            "`models.smart.targets[0].target`: \"groq\" must be `provider/model`",
        ),
        (
            route("targets = [{ target = \"groq/a\", context_window = 0 }]\n"),
            "6:50",
            "`models.smart.targets[0].context_window` must be at least 1",
        ),
        (
            route("targets = [{ target = \"groq/a\", total_timeout_ms = 0 }]\n"),
            "6:52",
            "`models.smart.targets[0].total_timeout_ms` must be greater than 0",
        ),
        (
            route("targets = [\"groq/a\"]\nstrategy = \"fastest\"\n"),
            "7:12",
            "`models.smart.strategy` must be \"weighted\" or \"latency\" or \"cost\", got \"fastest\"",
        ),
        (
            route("targets = [\"groq/a\"]\nretry_budget = 1.5\n"),
            "7:16",
            "`models.smart.retry_budget` must be between 0.0 and 1.0, got 1.5",
        ),
        (
            route("targets = [\"groq/a\"]\nretries = 6\n"),
            "7:11",
            "`models.smart.retries` must be at most 5",
        ),
        (
            route("targets = [\"groq/a\"]\nstall_timeout_ms = 0\n"),
            "7:20",
            "`models.smart.stall_timeout_ms` must be greater than 0",
        ),
        (
            route("targets = [\"groq/a\"]\nhedge_after_ms = 0\n"),
            "7:18",
            "`models.smart.hedge_after_ms` must be greater than 0",
        ),
        (
            route("targets = [\"groq/a\"]\nretry = 1\n"),
            "7:1",
            "unknown field `retry`",
        ),
        (
            "[providers.groq]\nplugin = \"groq\"\nfirst_byte_timeout_ms = 0\n".to_owned(),
            "3:25",
            "`providers.groq.first_byte_timeout_ms` must be greater than 0",
        ),
        (
            "[failover]\nrate_limit_backoff_ms = 5000\nrate_limit_backoff_max_ms = 4000\n"
                .to_owned(),
            "3:29",
            "`failover.rate_limit_backoff_max_ms` (4000) must be at least \
             `failover.rate_limit_backoff_ms` (5000)",
        ),
        (
            "[failover]\nrate_limit_backoff_ms = 90000\n".to_owned(),
            "2:25",
            "`failover.rate_limit_backoff_ms` (90000) exceeds the default \
             `failover.rate_limit_backoff_max_ms` (60000)",
        ),
        (
            "[failover]\nbreaker_failures = 0\n".to_owned(),
            "2:20",
            "`failover.breaker_failures` must be at least 1",
        ),
        (
            "[failover]\nbreaker_cooldown_ms = 0\n".to_owned(),
            "2:23",
            "`failover.breaker_cooldown_ms` must be greater than 0",
        ),
        (
            "[failover]\nretry_delay = 10\n".to_owned(),
            "2:1",
            "unknown field `retry_delay`",
        ),
    ];
    for (text, place, needle) in cases {
        let err = parse_str(&text).unwrap_err().to_string();
        let prefix = format!("/etc/aigw/aigw.toml:{place}: ");
        assert!(err.starts_with(&prefix), "{text}\n{err}\nwanted {prefix}");
        assert!(err.contains(needle), "{text}\n{err}\nwanted {needle}");
    }
}

#[test]
fn each_tool_plugins_memory_quota_is_configurable_and_positive() {
    use aigw_runtime::MemoryQuota;
    assert_eq!(
        parse_str("").unwrap().plugins.memory_quota,
        MemoryQuota::default()
    );
    let c = parse_str("[plugins]\nmemory_quota_entries = 50\nmemory_quota_mib = 2\n").unwrap();
    assert_eq!(
        c.plugins.memory_quota,
        MemoryQuota {
            entries: 50,
            bytes: 2 << 20
        }
    );
    let error = parse_str("[plugins]\nmemory_quota_mib = 0\n")
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("2:20")
            && error.contains("`plugins.memory_quota_mib` must be greater than 0"),
        "{error}"
    );
}

const ONE_PROVIDER: &str = "[providers.groq]\nplugin = \"groq\"\n";

#[test]
fn prices_are_read_by_target_label() {
    let c = parse_str(&format!(
        "{ONE_PROVIDER}[prices.\"groq/llama-3.1-8b-instant\"]\ninput = 0.05\noutput = 1\n"
    ))
    .unwrap();
    let price = c.prices["groq/llama-3.1-8b-instant"];
    assert_eq!(price.input_per_million(), 0.05);
    assert_eq!(price.output_per_million(), 1.0);
    assert!(parse_str("").unwrap().prices.is_empty());
}

#[test]
fn a_bad_price_is_an_error_naming_line_and_key() {
    let cases = [
        (
            "[prices.\"groq/m\"]\ninput = -1\noutput = 1\n",
            "/etc/aigw/aigw.toml:4:9: `prices.\"groq/m\".input` must be USD per million tokens",
        ),
        (
            "[prices.\"groq/m\"]\ninput = 1\noutput = nan\n",
            "/etc/aigw/aigw.toml:5:10: `prices.\"groq/m\".output` must be USD per million tokens",
        ),
        (
            "[prices.\"groq/m\"]\ninput = 1\noutput = inf\n",
            "`prices.\"groq/m\".output` must be USD per million tokens",
        ),
        (
            "[prices.\"nobody/m\"]\ninput = 1\noutput = 1\n",
            "`prices.\"nobody/m\"` names the provider `nobody`, which is not configured",
        ),
        (
            "[prices.\"groq\"]\ninput = 1\noutput = 1\n",
            "`prices.\"groq\"`: the key must be a target, `provider/model`",
        ),
        ("[prices.\"groq/m\"]\ninput = 1\n", "missing field `output`"),
        (
            "[prices.\"groq/m\"]\ninput = 1\noutput = 1\ncached = 1\n",
            "unknown field `cached`",
        ),
    ];
    for (text, expected) in cases {
        let error = parse_str(&format!("{ONE_PROVIDER}{text}")).unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{text}\n{error}\nexpected: {expected}"
        );
    }
}

#[test]
fn a_route_may_order_by_cost() {
    let c = parse_str(&format!(
        "{ONE_PROVIDER}[models.m]\ntargets = [\"groq/a\", \"groq/b\"]\nstrategy = \"cost\"\n"
    ))
    .unwrap();
    assert_eq!(c.routes["m"].strategy, Strategy::Cost);
}

#[test]
fn a_tools_table_enables_a_tool_plugin_with_its_upstreams_in_order() {
    let c = parse_str("[tools.weather]\n").unwrap();
    let weather = &c.tools[0].options;
    assert_eq!(weather.name, "weather");
    assert_eq!(
        weather.plugin,
        PathBuf::from("/etc/aigw/dist/plugins/weather.wasm"),
        "the plugin is the table's name in plugins.dir"
    );
    assert_eq!(weather.timeout, Duration::from_secs(10));
    assert_eq!(weather.max_response_bytes, 1 << 20);
    assert_eq!(weather.cache_ttl, None, "each tool keeps its plugin's TTL");
    assert!(weather.upstreams.is_none(), "every upstream of the plugin");

    let env = |name: &str| (name == "FINNHUB_API_KEY").then(|| "fh-secret".to_owned());
    let text = "[tools.stocks]\nplugin = \"plugins/stocks.wasm\"\ntimeout_ms = 500\n\
                max_response_bytes = 2048\ncache_ttl_seconds = 0\n\
                [[tools.stocks.upstream]]\nname = \"finnhub\"\napi_key = \"${FINNHUB_API_KEY}\"\n\
                endpoints = { quote = \"http://127.0.0.1:9100/api\" }\n\
                [[tools.stocks.upstream]]\nname = \"alpha-vantage\"\napi_key = \"${AV_KEY}\"\n";
    let c = parse(Path::new("/etc/aigw/aigw.toml"), text, &env).unwrap();
    let stocks = &c.tools[0].options;
    assert_eq!(
        stocks.plugin,
        PathBuf::from("/etc/aigw/plugins/stocks.wasm")
    );
    assert_eq!(stocks.timeout, Duration::from_millis(500));
    assert_eq!(stocks.max_response_bytes, 2048);
    assert_eq!(stocks.cache_ttl, Some(Duration::ZERO));
    let upstreams = stocks.upstreams.as_ref().unwrap();
    let names: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["finnhub", "alpha-vantage"],
        "in order of preference"
    );
    assert_eq!(upstreams[0].api_key.as_deref(), Some("fh-secret"));
    assert_eq!(
        upstreams[0].endpoints,
        [("quote".to_owned(), "http://127.0.0.1:9100/api".to_owned())]
    );
    // An unset variable is recorded, not fatal: the upstream is left out if it needs a key.
    assert_eq!(upstreams[1].api_key, None);
    assert_eq!(
        upstreams[1].api_key_missing.as_deref(),
        Some("AV_KEY is not set")
    );
    assert!(
        !format!("{stocks:?}").contains("fh-secret"),
        "never in debug output"
    );
}

#[test]
fn bad_tools_tables_are_errors_at_their_place() {
    for (text, at, says) in [
        (
            "[tools.weather]\ntimeout = 5\n",
            (2, 1),
            "unknown field `timeout`",
        ),
        (
            "[tools.weather]\ntimeout_ms = 0\n",
            (2, 14),
            "tools.weather.timeout_ms",
        ),
        (
            "[tools.weather]\ncache_ttl_seconds = 999999999\n",
            (2, 21),
            "tools.weather.cache_ttl_seconds",
        ),
        (
            "[[tools.w.upstream]]\nname = \"a\"\nendpoints = { x = \"ftp://h\" }\n",
            (3, 19),
            "tools.w.upstream[0].endpoints.x",
        ),
        (
            "[[tools.w.upstream]]\nname = \"a\"\n[[tools.w.upstream]]\nname = \"a\"\n",
            (4, 8),
            "listed twice",
        ),
        (
            "[[tools.w.upstream]]\nname = \"a\"\napi_key = \"k\"\napi_key_file = \"f\"\n",
            (4, 16),
            "both set",
        ),
        (
            "[[tools.w.upstream]]\nnam = \"a\"\n",
            (2, 1),
            "unknown field `nam`",
        ),
        ("[tools.\"a b\"]\n", (1, 1), "tool plugin name `a b`"),
    ] {
        let err = parse_str(text).unwrap_err();
        assert!(err.message.contains(says), "{text}: {err}");
        assert_eq!(err.at, Some(at), "{text}: {err}");
    }
}

#[test]
fn the_compile_cache_defaults_to_the_xdg_cache_home_and_can_be_moved_or_turned_off() {
    let env = |var: &str| match var {
        "XDG_CACHE_HOME" => Some("/var/cache/me".to_owned()),
        "HOME" => Some("/home/me".to_owned()),
        _ => None,
    };
    let home_only = |var: &str| (var == "HOME").then(|| "/home/me".to_owned());
    let relative_xdg = |var: &str| match var {
        "XDG_CACHE_HOME" => Some("cache".to_owned()),
        "HOME" => Some("/home/me".to_owned()),
        _ => None,
    };
    let file = Path::new("/etc/aigw/aigw.toml");
    let cache = |text: &str, env: &dyn Fn(&str) -> Option<String>| {
        parse(file, text, env).unwrap().plugins.compile_cache
    };
    assert_eq!(
        cache("", &env),
        Some(PathBuf::from("/var/cache/me/aigw/compiled"))
    );
    assert_eq!(
        cache("", &home_only),
        Some(PathBuf::from("/home/me/.cache/aigw/compiled"))
    );
    // The XDG spec: a relative XDG_CACHE_HOME is invalid and ignored.
    assert_eq!(
        cache("", &relative_xdg),
        Some(PathBuf::from("/home/me/.cache/aigw/compiled"))
    );
    // No home at all (a service user): nothing is cached, nothing fails.
    assert_eq!(cache("", &no_env), None);
    assert_eq!(
        cache("[plugins]\ncache_dir = \"state/compiled\"\n", &no_env),
        Some(PathBuf::from("/etc/aigw/state/compiled"))
    );
    assert_eq!(
        cache(
            "[plugins]\ncompile_cache = false\ncache_dir = \"/tmp/x\"\n",
            &env
        ),
        None
    );
    let error = parse(file, "[plugins]\ncompile_cache = \"yes\"\n", &no_env)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("aigw.toml:2:17") && error.contains("expected a boolean"),
        "{error}"
    );
}

#[test]
fn the_shutdown_keys_are_read_and_the_delay_must_leave_time_in_the_grace() {
    let s = parse_str("[server]\ndrain_delay_ms = 0\nshutdown_grace_ms = 1500\n")
        .unwrap()
        .server;
    assert_eq!(s.drain_delay, Duration::ZERO);
    assert_eq!(s.shutdown_grace, Duration::from_millis(1500));
    // Unset, the delay is the default unless that would eat more than half a short grace.
    let s = parse_str("[server]\nshutdown_grace_ms = 4000\n")
        .unwrap()
        .server;
    assert_eq!(s.drain_delay, Duration::from_millis(2000));
    let s = parse_str("").unwrap().server;
    assert_eq!(s.drain_delay, Duration::from_secs(5));
    assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    for (text, needle, line) in [
        (
            "[server]\ndrain_delay_ms = 3000\nshutdown_grace_ms = 3000\n",
            "must be less than `server.shutdown_grace_ms`",
            2,
        ),
        (
            "[server]\ndrain_delay_ms = 40000\n",
            "must be less than `server.shutdown_grace_ms`",
            2,
        ),
        (
            "[server]\nshutdown_grace_ms = 0\n",
            "server.shutdown_grace_ms",
            2,
        ),
        (
            "[server]\n\nshutdown_grace_ms = 99999999\n",
            "server.shutdown_grace_ms",
            3,
        ),
    ] {
        let err = parse_str(text).unwrap_err();
        assert_eq!(err.at.map(|(l, _)| l), Some(line), "{text}: {err}");
        assert!(err.message.contains(needle), "{text}: {err}");
    }
}
