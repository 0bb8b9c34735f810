//! `/metrics` through the real binary against the mock upstreams: after a served request, a
//! failover (the first target 503s), a stream, tool calls and a quota refusal, the scrape shows
//! exactly those counts with the right labels, and a stream continued on another target counts
//! one continuation; a model name a client typed that no route serves
//! never becomes a label value; a target's breaker state flips when it fails; the endpoint needs
//! the admin key (401 without, 403 with a virtual key), answers OpenMetrics when asked, and is
//! served without credentials on `[metrics] listen`; `enabled = false` turns it off (404).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use aigw_tests::gateway::{Gateway, read_stream};
use aigw_tests::mock::scripted::Scripted;
use aigw_tests::paths;
use aigw_tests::setup::{Upstreams, toml_str};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "admin-e2e-metrics-0123456789abcdef";

/// One sample of the exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of a Prometheus text exposition (`name{k="v",…} value` lines; comments skipped).
/// Label values here never hold `,` or `"`, so splitting on them is exact.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').unwrap()),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap();
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// The samples of `name` whose labels include every one of `want`.
fn matching<'a>(samples: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .collect()
}

/// The value of the one sample of `name` with `want` among its labels.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    let found = matching(samples, name, want);
    assert_eq!(found.len(), 1, "{name} {want:?}: {found:?}");
    found[0].value
}

/// Scrapes `/metrics` with the admin key.
async fn scrape(gateway: &Gateway) -> Vec<Sample> {
    let response = gateway
        .client()
        .get(gateway.url("/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", gateway.stderr());
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&response.text().await.unwrap())
}

async fn chat(gateway: &Gateway, secret: &str, body: Value) -> reqwest::Response {
    gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]})
}

/// Two routes (`fast`: a target that 503s, then one that serves; `solo`: one target), the
/// `tool-echo` plugin over `tool_upstream`, a store at `db`, and `extra`.
fn config(upstreams: &Upstreams, db: &Path, tool_upstream: &str, extra: &str) -> String {
    upstreams.config(&format!(
        "[memory]\npath = {db}\n\n\
         [models.fast]\ntargets = [\"local/unavailable-503\", \"groq/ok\"]\nretries = 0\n\n\
         [models.solo]\ntargets = [\"local/ok\"]\n\n\
         [prices.\"local/ok\"]\ninput = 1000\noutput = 1000\n\n\
         [tools.echo]\nplugin = {plugin}\n\n\
         [[tools.echo.upstream]]\nname = \"primary\"\nendpoints = {{ base = {tool} }}\n\n{extra}",
        db = toml_str(&db.to_string_lossy()),
        plugin = toml_str(&paths::test_plugin("tool-echo").to_string_lossy()),
        tool = toml_str(tool_upstream),
    ))
}

#[tokio::test]
async fn the_scrape_counts_exactly_what_was_served_with_its_labels() {
    let dir = tempfile::tempdir().unwrap();
    let upstreams = Upstreams::start().await;
    let tools = Scripted::start().await;
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN_KEY)
        .start(&config(
            &upstreams,
            &dir.path().join("aigw.db"),
            &tools.base_url(),
            "",
        ))
        .await;
    let (id, secret) = gateway.create_key(&json!({})).await;
    let (limited_id, limited) = gateway.create_key(&json!({"rpm_limit": 1})).await;

    // A failover: local/unavailable-503 answers 503, groq/ok serves.
    assert_eq!(
        chat(&gateway, &secret, ask("fast", false)).await.status(),
        200
    );
    // A served request and a stream on a one-target route.
    assert_eq!(
        chat(&gateway, &secret, ask("solo", false)).await.status(),
        200
    );
    let stream = chat(&gateway, &secret, ask("solo", true)).await;
    assert_eq!(stream.status(), 200);
    let (text, error) = read_stream(stream).await;
    assert!(error.is_none() && text.contains("[DONE]"), "{text}");
    // A model no route serves, as a client typed it: a 404, and no label value.
    let typed = chat(
        &gateway,
        &secret,
        ask("no-such-model-typed-by-a-client", false),
    )
    .await;
    assert_eq!(typed.status(), 404);
    // A quota refusal: the second request of a key allowed one per minute.
    assert_eq!(
        chat(&gateway, &limited, ask("solo", false)).await.status(),
        200
    );
    assert_eq!(
        chat(&gateway, &limited, ask("solo", false)).await.status(),
        429
    );
    // A tool call that answers, and one for a tool that does not exist.
    for (tool, status) in [("echo", 200), ("no_such_tool_typed", 404)] {
        let response = gateway
            .client()
            .post(gateway.url(&format!("/v1/tools/{tool}/invoke")))
            .bearer_auth(&secret)
            .json(&json!({"arguments": {"city": "Bern"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }

    let raw = gateway
        .client()
        .get(gateway.url("/metrics"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!raw.contains("no-such-model-typed-by-a-client"), "{raw}");
    assert!(!raw.contains("no_such_tool_typed"), "{raw}");
    let m = scrape(&gateway).await;

    // Requests by route, target and status class: 1 on fast, 2 + 1 on solo (the refused one
    // never reached a route's walk: it is counted as a rejection, below).
    assert_eq!(
        value(
            &m,
            "aigw_requests_total",
            &[
                ("route", "fast"),
                ("target", "groq/ok"),
                ("status_class", "2xx")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "aigw_requests_total",
            &[
                ("route", "solo"),
                ("target", "local/ok"),
                ("status_class", "2xx")
            ]
        ),
        3.0
    );
    assert_eq!(
        matching(&m, "aigw_requests_total", &[]).len(),
        2,
        "{:?}",
        matching(&m, "aigw_requests_total", &[])
    );
    // The failover: both attempts, one failover.
    assert_eq!(
        value(
            &m,
            "aigw_attempts_total",
            &[
                ("route", "fast"),
                ("target", "local/unavailable-503"),
                ("outcome", "failed"),
                ("failure_class", "unavailable")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "aigw_attempts_total",
            &[
                ("route", "fast"),
                ("target", "groq/ok"),
                ("outcome", "served")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "aigw_failovers_total",
            &[("route", "fast"), ("target", "groq/ok")]
        ),
        1.0
    );
    assert!(matching(&m, "aigw_failovers_total", &[("route", "solo")]).is_empty());
    // The stream's time to first chunk, under the GenAI names.
    let genai = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_request_model", "solo"),
        ("gen_ai_provider_name", "local"),
        ("target", "local/ok"),
    ];
    assert_eq!(
        value(
            &m,
            "gen_ai_client_operation_time_to_first_chunk_seconds_count",
            &genai
        ),
        1.0
    );
    let mut ok = genai.to_vec();
    ok.push(("error_type", ""));
    assert_eq!(
        value(&m, "gen_ai_client_operation_duration_seconds_count", &ok),
        3.0
    );
    let mut input = genai.to_vec();
    input.push(("gen_ai_token_type", "input"));
    assert_eq!(value(&m, "gen_ai_client_token_usage_count", &input), 3.0);
    // Per key: requests and spend (local/ok is priced; 15 tokens a request cost 0.015 USD).
    assert_eq!(
        value(
            &m,
            "aigw_key_requests_total",
            &[("key", &id), ("route", "solo"), ("status_class", "2xx")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "aigw_key_requests_total",
            &[("key", &id), ("route", "fast")]
        ),
        1.0
    );
    let spend = value(
        &m,
        "aigw_key_spend_usd_total",
        &[("key", &id), ("route", "solo")],
    );
    assert!((spend - 0.03).abs() < 1e-9, "{spend}");
    assert_eq!(
        value(
            &m,
            "aigw_key_quota_rejections_total",
            &[("key", &limited_id), ("limit", "requests_per_minute")]
        ),
        1.0
    );
    assert_eq!(
        matching(&m, "aigw_key_quota_rejections_total", &[]).len(),
        1
    );
    // Tools: the call that answered under its name; the unknown one under `other`.
    assert_eq!(
        value(
            &m,
            "aigw_tool_calls_total",
            &[("tool", "echo"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "aigw_tool_calls_total",
            &[("tool", "other"), ("outcome", "error")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "gen_ai_execute_tool_duration_seconds_count",
            &[("tool", "echo"), ("gen_ai_operation_name", "execute_tool")]
        ),
        1.0
    );
    // Read at scrape time: plugins, breakers, the store.
    assert!(value(&m, "aigw_plugin_calls_total", &[("plugin", "groq")]) >= 2.0);
    assert!(value(&m, "aigw_plugin_calls_total", &[("plugin", "tool-echo")]) >= 1.0);
    assert!(value(&m, "aigw_plugin_pool_size", &[("plugin", "groq")]) >= 1.0);
    assert_eq!(
        value(
            &m,
            "aigw_target_breaker_state",
            &[("target", "groq/ok"), ("state", "closed")]
        ),
        1.0
    );
    assert!(value(&m, "aigw_memory_operations_total", &[("kind", "write")]) >= 1.0);
    assert!(value(&m, "aigw_memory_database_size_bytes", &[]) > 0.0);
}

#[tokio::test]
async fn a_failing_target_s_breaker_opens_in_the_scrape_and_the_endpoint_needs_the_admin_key() {
    let dir = tempfile::tempdir().unwrap();
    let upstreams = Upstreams::start().await;
    let tools = Scripted::start().await;
    let extra = "[failover]\nbreaker_failures = 2\nbreaker_cooldown_ms = 60000\n\n\
                 [models.down]\ntargets = [\"local/unavailable-503\"]\nretries = 0\n";
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN_KEY)
        .start(&config(
            &upstreams,
            &dir.path().join("aigw.db"),
            &tools.base_url(),
            extra,
        ))
        .await;
    let (_, secret) = gateway.create_key(&json!({})).await;

    let state = |m: &[Sample], state: &str| {
        value(
            m,
            "aigw_target_breaker_state",
            &[("target", "local/unavailable-503"), ("state", state)],
        )
    };
    let before = scrape(&gateway).await;
    assert_eq!(state(&before, "closed"), 1.0);
    assert_eq!(state(&before, "open"), 0.0);
    for _ in 0..2 {
        assert_eq!(
            chat(&gateway, &secret, ask("down", false)).await.status(),
            503
        );
    }
    let after = scrape(&gateway).await;
    assert_eq!(state(&after, "open"), 1.0);
    assert_eq!(state(&after, "closed"), 0.0);
    let out_for = value(
        &after,
        "aigw_target_cooldown_seconds",
        &[("target", "local/unavailable-503")],
    );
    assert!(out_for > 50.0 && out_for <= 60.0, "{out_for}");
    assert_eq!(
        value(
            &after,
            "aigw_requests_total",
            &[
                ("route", "down"),
                ("target", "none"),
                ("status_class", "5xx")
            ]
        ),
        2.0
    );
    // No target served them: the attempts name the one that failed.
    assert_eq!(
        value(
            &after,
            "aigw_attempts_total",
            &[
                ("route", "down"),
                ("target", "local/unavailable-503"),
                ("outcome", "failed")
            ]
        ),
        2.0
    );

    // Without credentials 401; with a virtual key 403; both in the OpenAI error shape.
    let anonymous = gateway
        .client()
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    let virtual_key = gateway
        .client()
        .get(gateway.url("/metrics"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(virtual_key.status(), 403);
    let body: Value = virtual_key.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_key_required", "{body}");
    // OpenMetrics when asked for.
    let open = gateway
        .client()
        .get(gateway.url("/metrics"))
        .bearer_auth(ADMIN_KEY)
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        open.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = open.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE aigw_requests counter"), "{text}");
}

/// A port free a moment ago, for a second listener the harness does not report.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_metrics_listener_serves_only_metrics_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let upstreams = Upstreams::start().await;
    let tools = Scripted::start().await;
    let port = free_port();
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN_KEY)
        .start(&config(
            &upstreams,
            &dir.path().join("aigw.db"),
            &tools.base_url(),
            &extra,
        ))
        .await;
    let (_, secret) = gateway.create_key(&json!({})).await;
    assert_eq!(
        chat(&gateway, &secret, ask("solo", false)).await.status(),
        200
    );

    let base = format!("http://127.0.0.1:{port}");
    let response = gateway
        .client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", gateway.stderr());
    let m = parse(&response.text().await.unwrap());
    assert_eq!(
        value(
            &m,
            "aigw_requests_total",
            &[("route", "solo"), ("status_class", "2xx")]
        ),
        1.0
    );
    // Nothing else is served there, with or without a key.
    for path in ["/v1/models", "/admin/keys", "/healthz"] {
        let other = gateway
            .client()
            .get(format!("{base}{path}"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404, "{path}");
    }
    // The main listener still wants the admin key.
    let main = gateway
        .client()
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 401);
}

#[tokio::test]
async fn disabled_metrics_answer_404() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway("[models.solo]\ntargets = [\"local/ok\"]\n\n[metrics]\nenabled = false\n")
        .await;
    assert_eq!(gateway.chat(&ask("solo", false)).await.status(), 200);
    let response = gateway.get("/metrics").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "metrics_disabled", "{body}");
}

#[tokio::test]
async fn a_stream_continued_on_another_target_counts_one_continuation() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway("[models.fast]\ntargets = [\"local/cut-stream-40\", \"groq/restarts\"]\n")
        .await;
    // Long enough that the first target's stream breaks after 40 words of the reply.
    let question: Vec<String> = (1..=57).map(|i| format!("word{i}")).collect();
    let body = json!({"model": "fast", "stream": true,
                      "messages": [{"role": "user", "content": question.join(" ")}]});
    let response = gateway.chat(&body).await;
    assert_eq!(response.status(), 200);
    let (text, error) = read_stream(response).await;
    assert!(error.is_none() && text.contains("[DONE]"), "{text}");

    let response = gateway.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let m = parse(&response.text().await.unwrap());
    assert_eq!(
        value(
            &m,
            "aigw_stream_continuations_total",
            &[("route", "fast"), ("target", "groq/restarts")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "aigw_requests_total",
            &[
                ("route", "fast"),
                ("target", "groq/restarts"),
                ("status_class", "2xx")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "gen_ai_client_operation_time_to_first_chunk_seconds_count",
            &[("gen_ai_request_model", "fast")]
        ),
        1.0
    );
}
