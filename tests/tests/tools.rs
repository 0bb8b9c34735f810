//! The tool service through the real binary, over the `tool-echo` test plugin and scripted
//! upstreams: `GET /v1/tools` filtered by the key's grant; `POST /v1/tools/{name}/invoke`
//! answering, and every way it refuses (unknown tool 404, not granted 403, invalid arguments
//! 400 naming the field, over the key's tool quota 429 with `retry-after`, also across two
//! processes on one database); the shared cache (a hit in `x-aigw-cache`, shared by two
//! processes, expired after its TTL); failover from a failing upstream to the next (the cooled
//! one skipped on the next call); and the egress's denied paths (an origin not granted, a
//! redirect to another origin, the credential only on its own upstream, the response cap and
//! the timeout). Every call's log line and usage row are checked once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aigw_tests::gateway::{Gateway, GatewayBuilder, status_and_json};
use aigw_tests::mock::scripted::Scripted;
use aigw_tests::paths;
use aigw_tests::setup::toml_str;
use serde_json::{Value, json};

const ADMIN_KEY: &str = "admin-e2e-tools-0123456789abcdef";
/// The operator's key of the `primary` upstream; it must reach the primary's mock only.
const PRIMARY_KEY: &str = "echo-SECRET-primary-7c1f0a";

/// How a test configures `[tools.echo]`.
struct Echo<'a> {
    primary: &'a str,
    secondary: &'a str,
    /// More keys of `[tools.echo]`.
    extra: &'a str,
    db: &'a Path,
}

fn config(echo: &Echo<'_>) -> String {
    format!(
        "[memory]\npath = {db}\n\n[tools.echo]\nplugin = {plugin}\n{extra}\n\n\
         [[tools.echo.upstream]]\nname = \"primary\"\nendpoints = {{ base = {primary} }}\n\
         api_key = {key}\n\n\
         [[tools.echo.upstream]]\nname = \"secondary\"\nendpoints = {{ base = {secondary} }}\n",
        db = toml_str(&echo.db.to_string_lossy()),
        plugin = toml_str(&paths::test_plugin("tool-echo").to_string_lossy()),
        extra = echo.extra,
        primary = toml_str(echo.primary),
        secondary = toml_str(echo.secondary),
        key = toml_str(PRIMARY_KEY),
    )
}

async fn start(echo: &Echo<'_>) -> Gateway {
    GatewayBuilder::default().start(&config(echo)).await
}

async fn start_with_keys(echo: &Echo<'_>) -> Gateway {
    GatewayBuilder::default()
        .admin_key(ADMIN_KEY)
        .start(&config(echo))
        .await
}

/// What an invoke answered: status, the `x-aigw-cache` and `retry-after` headers, the body.
struct Invoked {
    status: u16,
    cache: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

impl Invoked {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

async fn invoke_at(
    client: &reqwest::Client,
    base: &str,
    secret: Option<&str>,
    tool: &str,
    arguments: Value,
) -> Invoked {
    let mut request = client
        .post(format!("{base}/v1/tools/{tool}/invoke"))
        .json(&json!({ "arguments": arguments }));
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (cache, retry_after) = (header("x-aigw-cache"), header("retry-after"));
    let body: Value = response.json().await.unwrap();
    Invoked {
        status,
        cache,
        retry_after,
        body,
    }
}

async fn invoke(gateway: &Gateway, secret: Option<&str>, tool: &str, arguments: Value) -> Invoked {
    invoke_at(gateway.client(), &gateway.url(""), secret, tool, arguments).await
}

async fn listed(gateway: &Gateway, secret: &str) -> Vec<String> {
    let response = gateway
        .client()
        .get(gateway.url("/v1/tools"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    let (status, _, body) = status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits, when less than `needed` is left of the current wall-clock minute, for the next one:
/// per-minute counts start afresh at each minute, so a test counting in one minute must fit in it.
async fn fresh_minute(needed: Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    let left = Duration::from_secs(60) - into;
    if left < needed {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_list_holds_the_tools_the_key_is_granted_as_function_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let up = Scripted::start().await;
    let gateway = start_with_keys(&Echo {
        primary: &up.base_url(),
        secondary: &up.base_url(),
        extra: "",
        db: &dir.path().join("aigw.db"),
    })
    .await;
    let (_, all) = gateway.create_key(&json!({})).await;
    let (_, some) = gateway
        .create_key(&json!({"tools": ["echo", "upstream_*"]}))
        .await;
    let (_, none) = gateway.create_key(&json!({"tools": []})).await;

    let every = listed(&gateway, &all).await;
    assert_eq!(
        every,
        [
            "constructor-probe",
            "echo",
            "fetch",
            "panic",
            "recall",
            "remember",
            "stderr",
            "upstream_get"
        ],
        "sorted by name"
    );
    assert_eq!(listed(&gateway, &some).await, ["echo", "upstream_get"]);
    assert!(listed(&gateway, &none).await.is_empty());

    // Each entry is an OpenAI function definition, with the title beside it.
    let response = gateway
        .client()
        .get(gateway.url("/v1/tools"))
        .bearer_auth(&some)
        .send()
        .await
        .unwrap();
    let (_, _, body) = status_and_json(response).await;
    let entry = &body["data"][1];
    assert_eq!(entry["type"], "function");
    assert_eq!(entry["function"]["name"], "upstream_get");
    assert_eq!(entry["function"]["parameters"]["required"], json!(["path"]));
    assert!(
        entry["function"]["description"]
            .as_str()
            .unwrap()
            .contains("GET")
    );
    assert_eq!(entry["title"], "upstream_get");
}

#[tokio::test]
async fn an_invoke_answers_and_every_refusal_has_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let up = Scripted::start().await;
    let gateway = start_with_keys(&Echo {
        primary: &up.base_url(),
        secondary: &up.base_url(),
        extra: "",
        db: &dir.path().join("aigw.db"),
    })
    .await;
    let (key_id, secret) = gateway
        .create_key(&json!({"tools": ["echo", "upstream_get"]}))
        .await;

    let ok = invoke(&gateway, Some(&secret), "echo", json!({"city": "Zürich"})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["tool"], "echo");
    assert_eq!(ok.body["result"], json!({"city": "Zürich"}));
    assert_eq!(ok.body["cached"], false);
    assert_eq!(ok.cache.as_deref(), Some("off"), "tool-echo's TTL is 0");

    let got = invoke(
        &gateway,
        Some(&secret),
        "upstream_get",
        json!({"path": "/ok"}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["upstream"], "primary");
    assert_eq!(got.body["result"]["status"], 200);
    assert_eq!(got.body["result"]["body"], "ok /ok");

    let unknown = invoke(&gateway, Some(&secret), "no_such_tool", json!({})).await;
    assert_eq!((unknown.status, unknown.code()), (404, "tool_not_found"));

    let denied = invoke(&gateway, Some(&secret), "fetch", json!({"url": "http://x"})).await;
    assert_eq!((denied.status, denied.code()), (403, "tool_not_allowed"));
    assert!(denied.message().contains("fetch"), "{}", denied.body);

    for (arguments, field) in [(json!({}), "path"), (json!({"path": 5}), "path")] {
        let invalid = invoke(&gateway, Some(&secret), "upstream_get", arguments).await;
        assert_eq!(
            (invalid.status, invalid.code()),
            (400, "invalid_tool_arguments"),
            "{}",
            invalid.body
        );
        assert_eq!(invalid.body["error"]["param"], field);
        assert!(invalid.message().contains("`path`"), "{}", invalid.body);
    }
    // Refused calls never reach an upstream: only the one GET did.
    assert_eq!(up.seen().len(), 1);

    // A plugin that traps on a call fails that call (the call's fault: no failover), and the
    // upstreams keep their health: the next call is served by the primary again.
    let (_, all) = gateway.create_key(&json!({})).await;
    let trapped = invoke(&gateway, Some(&all), "panic", json!({})).await;
    assert_eq!(
        (trapped.status, trapped.code()),
        (400, "request_fault"),
        "{}",
        trapped.body
    );
    assert!(trapped.message().contains("trap"), "{}", trapped.body);
    let after = invoke(
        &gateway,
        Some(&secret),
        "upstream_get",
        json!({"path": "/ok"}),
    )
    .await;
    assert_eq!(after.body["upstream"], "primary", "{}", after.body);

    // One log line per call, naming the tool, surface, key and outcome.
    let line = gateway
        .wait_for_log(Duration::from_secs(10), |l| {
            l.contains("tool call") && l.contains("not_granted")
        })
        .await
        .expect("the refused call's log line");
    assert!(line.contains("fetch") && line.contains("rest"), "{line}");
    let ok_line = gateway
        .wait_for_log(Duration::from_secs(10), |l| {
            l.contains("tool call") && l.contains("upstream_get") && l.contains("primary")
        })
        .await
        .expect("the answered call's log line");
    assert!(ok_line.contains(&key_id), "{ok_line}");

    // Answered calls are in the usage, per key, as `tool:<name>`.
    let response = gateway.get("/admin/usage").await;
    let (status, _, usage) = status_and_json(response).await;
    assert_eq!(status, 200, "{usage}");
    let rows = usage["data"].as_array().unwrap();
    let count = |model: &str| {
        rows.iter()
            .filter(|r| r["model"] == model && r["key_id"] == key_id.as_str())
            .map(|r| r["requests"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(count("tool:echo"), 1, "{usage}");
    assert_eq!(count("tool:upstream_get"), 2, "{usage}");
    assert_eq!(
        count("tool:fetch"),
        0,
        "a refused call is not usage: {usage}"
    );
}

#[tokio::test]
async fn a_key_over_its_tool_quota_gets_429_with_retry_after_across_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aigw.db");
    let up = Scripted::start().await;
    let echo = Echo {
        primary: &up.base_url(),
        secondary: &up.base_url(),
        extra: "",
        db: &db,
    };
    let first = start_with_keys(&echo).await;
    let second = start_with_keys(&echo).await;
    let (id, secret) = first.create_key(&json!({"tool_calls_per_minute": 3})).await;
    // The quota is part of the key in the admin API: shown, patched, checked.
    let admin = |method: reqwest::Method, body: Option<Value>| {
        let mut request = first
            .client()
            .request(method, first.url(&format!("/admin/keys/{id}")))
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let (status, _, shown) =
        status_and_json(admin(reqwest::Method::GET, None).await.unwrap()).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["tool_calls_per_minute"], 3, "{shown}");
    let (status, _, patched) = status_and_json(
        admin(
            reqwest::Method::PATCH,
            Some(json!({"tool_calls_per_day": 100})),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["tool_calls_per_day"], 100, "{patched}");
    let (status, _, refused) = status_and_json(
        admin(
            reqwest::Method::PATCH,
            Some(json!({"tool_calls_per_minute": 0})),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "tool_calls_per_minute");
    // The second process learns of the key at its next directory refresh.
    let deadline = Instant::now() + Duration::from_secs(10);
    while invoke(&second, Some(&secret), "no_such_tool", json!({}))
        .await
        .status
        == 401
    {
        assert!(
            Instant::now() < deadline,
            "the second process never saw the key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fresh_minute(Duration::from_secs(20)).await;
    let mut admitted = 0;
    let mut refused = Vec::new();
    for i in 0..8 {
        let gateway = if i % 2 == 0 { &first } else { &second };
        let answer = invoke(gateway, Some(&secret), "echo", json!({"i": i})).await;
        match answer.status {
            200 => admitted += 1,
            429 => refused.push(answer),
            other => panic!("{other}: {}", answer.body),
        }
    }
    assert_eq!(
        admitted, 3,
        "the per-minute limit holds across both processes"
    );
    let refusal = &refused[0];
    assert_eq!(refusal.code(), "rate_limit_exceeded");
    assert!(
        refusal.message().contains("aigw tool quota"),
        "{}",
        refusal.body
    );
    let wait: u64 = refusal.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The tool quota is the key's tool calls only: its chat requests are not limited by it.
    let unknown = invoke(&first, Some(&secret), "no_such_tool", json!({})).await;
    assert_eq!(
        unknown.status, 404,
        "an unknown tool is refused before the quota"
    );
}

#[tokio::test]
async fn a_cached_answer_is_shared_by_two_processes_and_expires_after_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aigw.db");
    let up = Scripted::start().await;
    let echo = Echo {
        primary: &up.base_url(),
        secondary: &up.base_url(),
        extra: "cache_ttl_seconds = 600",
        db: &db,
    };
    let first = start(&echo).await;
    let second = start(&echo).await;
    let args = json!({"path": "/ok", "n": {"b": 1, "a": 2}});
    let miss = invoke(&first, None, "upstream_get", args.clone()).await;
    assert_eq!(
        (miss.status, miss.cache.as_deref()),
        (200, Some("miss")),
        "{}",
        miss.body
    );
    assert_eq!(miss.body["cached"], false);
    // The same arguments in another order, from the other process: the same row.
    let hit = invoke(
        &second,
        None,
        "upstream_get",
        json!({"n": {"a": 2, "b": 1}, "path": "/ok"}),
    )
    .await;
    assert_eq!(
        (hit.status, hit.cache.as_deref()),
        (200, Some("hit")),
        "{}",
        hit.body
    );
    assert_eq!(hit.body["cached"], true);
    assert_eq!(hit.body["result"], miss.body["result"]);
    assert_eq!(hit.body["upstream"], "primary");
    assert_eq!(up.seen().len(), 1, "the hit called no upstream");
    let other = invoke(&second, None, "upstream_get", json!({"path": "/other"})).await;
    assert_eq!(other.cache.as_deref(), Some("miss"));
    // A failure is never cached.
    for _ in 0..2 {
        let failed = invoke(&first, None, "upstream_get", json!({"path": "/status/400"})).await;
        assert_eq!(failed.status, 400, "{}", failed.body);
    }
    assert_eq!(
        up.seen().len(),
        4,
        "both failing calls reached the upstream"
    );
    drop((first, second));

    // A one-second TTL: the answer is served until it expires, then asked again.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("aigw.db");
    let short = start(&Echo {
        extra: "cache_ttl_seconds = 1",
        db: &db,
        ..echo
    })
    .await;
    let args = json!({"path": "/short"});
    let first_answer = invoke(&short, None, "upstream_get", args.clone()).await;
    assert_eq!(first_answer.cache.as_deref(), Some("miss"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut hits = 0;
    loop {
        let again = invoke(&short, None, "upstream_get", args.clone()).await;
        match again.cache.as_deref() {
            Some("hit") => hits += 1,
            Some("miss") => break,
            other => panic!("{other:?}: {}", again.body),
        }
        assert!(Instant::now() < deadline, "the answer never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hits >= 1, "served from the cache before it expired");
    let asked = up.seen().iter().filter(|s| s.target == "/short").count();
    assert_eq!(asked, 2, "asked once, then once more after the TTL");
}

#[tokio::test]
async fn a_failing_upstream_fails_over_to_the_next_and_a_cooled_one_is_skipped() {
    for (status, skipped_next) in [(429, true), (401, true), (503, false)] {
        let dir = tempfile::tempdir().unwrap();
        let failing = Scripted::fixed(status).await;
        let healthy = Scripted::start().await;
        let gateway = start(&Echo {
            primary: &failing.base_url(),
            secondary: &healthy.base_url(),
            extra: "",
            db: &dir.path().join("aigw.db"),
        })
        .await;
        let answer = invoke(&gateway, None, "upstream_get", json!({"path": "/ok"})).await;
        assert_eq!(answer.status, 200, "{status}: {}", answer.body);
        assert_eq!(answer.body["upstream"], "secondary", "{status}");
        assert_eq!(failing.seen().len(), 1, "{status}: tried once, not retried");
        let again = invoke(&gateway, None, "upstream_get", json!({"path": "/ok"})).await;
        assert_eq!(again.body["upstream"], "secondary", "{status}");
        let expected = if skipped_next { 1 } else { 2 };
        assert_eq!(failing.seen().len(), expected, "{status}: on the next call");
        // `/admin/targets` shows the upstreams by their labels.
        let response = gateway.get("/admin/targets").await;
        let (_, _, targets) = status_and_json(response).await;
        let text = targets.to_string();
        assert!(
            text.contains("tool:echo/primary") && text.contains("tool:echo/secondary"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn every_upstream_failing_is_the_decisive_failure_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let failing = Scripted::fixed(503).await;
    let gateway = start(&Echo {
        primary: &failing.base_url(),
        secondary: &failing.base_url(),
        extra: "",
        db: &dir.path().join("aigw.db"),
    })
    .await;
    let answer = invoke(&gateway, None, "upstream_get", json!({"path": "/x"})).await;
    assert_eq!(
        (answer.status, answer.code()),
        (503, "unavailable"),
        "{}",
        answer.body
    );
    assert!(
        answer.message().contains("tool:echo/secondary"),
        "{}",
        answer.body
    );
    assert!(answer.message().contains("2 attempts"), "{}", answer.body);
}

#[tokio::test]
async fn the_egress_denies_what_the_upstream_was_not_granted() {
    let dir = tempfile::tempdir().unwrap();
    let granted = Scripted::start().await;
    let elsewhere = Scripted::start().await;
    let secondary = Scripted::start().await;
    let gateway = start(&Echo {
        primary: &granted.base_url(),
        secondary: &secondary.base_url(),
        extra: "",
        db: &dir.path().join("aigw.db"),
    })
    .await;
    let elsewhere_url = format!("{}/ok", elsewhere.base_url());

    // (a) An origin no upstream was granted: refused before a connection opens, named.
    let denied = invoke(&gateway, None, "fetch", json!({"url": elsewhere_url})).await;
    assert_eq!(
        (denied.status, denied.code()),
        (400, "request_fault"),
        "{}",
        denied.body
    );
    assert!(
        denied.message().contains(&elsewhere.base_url()),
        "the error names the origin: {}",
        denied.body
    );
    assert!(elsewhere.seen().is_empty());

    // (b) A redirect to another origin is not followed by the host...
    let redirect = format!("{}/redirect?to={elsewhere_url}", granted.base_url());
    let unfollowed = invoke(&gateway, None, "fetch", json!({"url": redirect})).await;
    assert_eq!(unfollowed.status, 200, "{}", unfollowed.body);
    assert_eq!(unfollowed.body["result"]["status"], 302);
    assert!(elsewhere.seen().is_empty());
    // ...and followed by the plugin, it is denied.
    let followed = invoke(
        &gateway,
        None,
        "fetch",
        json!({"url": redirect, "follow": true}),
    )
    .await;
    assert_eq!(
        (followed.status, followed.code()),
        (400, "request_fault"),
        "{}",
        followed.body
    );
    assert!(
        followed.message().contains(&elsewhere.base_url()),
        "{}",
        followed.body
    );
    assert!(
        elsewhere.seen().is_empty(),
        "nothing reached the other origin"
    );

    // (c) The credential reaches its own upstream, and neither the output nor another origin.
    let got = invoke(&gateway, None, "upstream_get", json!({"path": "/ok"})).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let seen = granted.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.header("x-echo-key"), Some(PRIMARY_KEY));
    assert!(!got.body.to_string().contains(PRIMARY_KEY));
    assert!(
        granted
            .seen()
            .iter()
            .filter(|s| s.target.starts_with("/redirect"))
            .count()
            >= 2,
        "the redirecting requests went to the granted origin"
    );
    drop(gateway);

    // The secondary upstream (another origin, no key of its own) never gets the primary's.
    let failing = Scripted::fixed(503).await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(&Echo {
        primary: &failing.base_url(),
        secondary: &secondary.base_url(),
        extra: "",
        db: &dir.path().join("aigw.db"),
    })
    .await;
    let over = invoke(&gateway, None, "upstream_get", json!({"path": "/ok"})).await;
    assert_eq!(over.body["upstream"], "secondary", "{}", over.body);
    assert_eq!(failing.seen()[0].header("x-echo-key"), Some(PRIMARY_KEY));
    assert!(
        secondary
            .seen()
            .iter()
            .all(|s| s.header("x-echo-key").is_none())
    );
    assert!(
        !gateway.stderr().contains(PRIMARY_KEY),
        "the key is never logged"
    );
}

#[tokio::test]
async fn the_response_cap_and_the_timeout_fail_the_call_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let up = Scripted::start().await;
    let gateway = start(&Echo {
        primary: &up.base_url(),
        secondary: &up.base_url(),
        extra: "timeout_ms = 300\nmax_response_bytes = 1000",
        db: &dir.path().join("aigw.db"),
    })
    .await;
    let fits = invoke(&gateway, None, "upstream_get", json!({"path": "/big/1000"})).await;
    assert_eq!(fits.status, 200, "{}", fits.body);
    let large = invoke(&gateway, None, "upstream_get", json!({"path": "/big/5000"})).await;
    assert_eq!(
        (large.status, large.code()),
        (502, "bad_response"),
        "{}",
        large.body
    );
    assert!(large.message().contains("over the limit"), "{}", large.body);

    let started = Instant::now();
    let stalled = invoke(&gateway, None, "upstream_get", json!({"path": "/stall"})).await;
    assert!(
        matches!(stalled.status, 502..=504),
        "{}: {}",
        stalled.status,
        stalled.body
    );
    assert!(
        stalled.message().contains("within 300 ms"),
        "{}",
        stalled.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "two sends of at most 300 ms each, not the stall's 60 s"
    );
}

#[test]
fn check_lists_each_tool_plugin_with_its_upstreams_and_tools() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aigw.toml");
    std::fs::write(
        &path,
        config(&Echo {
            primary: "http://127.0.0.1:9101",
            secondary: "http://127.0.0.1:9102",
            extra: "timeout_ms = 700",
            db: &dir.path().join("aigw.db"),
        }),
    )
    .unwrap();
    let output = aigw_tests::gateway::aigw(["check", "--config", &path.to_string_lossy()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("tools:\n  echo: plugin tool-echo"),
        "{stdout}"
    );
    assert!(stdout.contains("timeout 700 ms"), "{stdout}");
    assert!(
        stdout.contains("upstream primary: credential set; endpoints base http://127.0.0.1:9101"),
        "{stdout}"
    );
    assert!(
        stdout.contains("upstream secondary: no credential; endpoints base http://127.0.0.1:9102"),
        "{stdout}"
    );
    assert!(
        stdout.contains("offered: constructor-probe, echo, fetch"),
        "{stdout}"
    );
    assert!(!stdout.contains(PRIMARY_KEY), "{stdout}");
}

#[tokio::test]
async fn a_config_naming_an_unknown_upstream_or_endpoint_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = toml_str(&paths::test_plugin("tool-echo").to_string_lossy());
    for (table, expected) in [
        (
            "[[tools.echo.upstream]]\nname = \"tertiary\"\n",
            "aigw.toml:6:8: `tools.echo.upstream[0].name`: the plugin has no upstream `tertiary`",
        ),
        (
            "[[tools.echo.upstream]]\nname = \"primary\"\nendpoints = { bsae = \"http://127.0.0.1:1\" }\n",
            "aigw.toml:7:15: `tools.echo.upstream[0].endpoints.bsae`: the upstream has no endpoint `bsae`",
        ),
    ] {
        let path = dir.path().join("aigw.toml");
        std::fs::write(
            &path,
            format!("[memory]\npath = \"aigw.db\"\n[tools.echo]\nplugin = {plugin}\n{table}"),
        )
        .unwrap();
        let output = aigw_tests::gateway::aigw(["check", "--config", &path.to_string_lossy()]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    // Two tool plugins offering one tool name: refused, both named.
    let path = dir.path().join("aigw.toml");
    std::fs::write(
        &path,
        format!("[tools.a]\nplugin = {plugin}\n[tools.b]\nplugin = {plugin}\n"),
    )
    .unwrap();
    let output = aigw_tests::gateway::aigw(["check", "--config", &path.to_string_lossy()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is offered by both tool plugins `a` and `b`"),
        "{stderr}"
    );
}
