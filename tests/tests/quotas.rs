//! Keys' quotas and budgets through the real binary: a key over its requests per minute gets
//! OpenAI's 429 (`rate_limit_exceeded`, `retry-after`, `retry-after-ms`, a message naming aigw's
//! own limit), every answer for a key with limits carries `x-ratelimit-*`, streamed usage counts
//! against tokens per minute, a spent budget is `insufficient_quota`, the official openai SDK
//! raises `RateLimitError` with those codes; and across **three gateway processes on one
//! database**: the requests admitted for one key never exceed its limit, tokens and spend stay
//! within the documented overshoot (limit + what the requests in flight consume), and a killed
//! process's concurrency slots come back once its hold expires.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aigw_tests::gateway::Gateway;
use aigw_tests::python::Check;
use aigw_tests::setup::{Upstreams, error_message, header, toml_str};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "admin-e2e-quotas-0123456789abcdef";

/// Every request of these tests: the mock answers "mock reply to: hello there", 5 completion
/// tokens, and counts 8 + 11 / 4 = 10 prompt tokens: 15 tokens each.
const TOKENS_PER_REQUEST: u64 = 15;

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "local/ok",
        "stream": stream,
        "messages": [{"role": "user", "content": "hello there"}],
    })
}

/// A config on `db`, with a price for `local/ok` (1000 USD per million tokens either way: 15
/// tokens cost 0.015 USD) and `extra`.
fn config(upstreams: &Upstreams, db: &Path, extra: &str) -> String {
    upstreams.config(&format!(
        "[memory]\npath = {}\n\n[prices.\"local/ok\"]\ninput = 1000\noutput = 1000\n{extra}",
        toml_str(&db.to_string_lossy())
    ))
}

async fn chat(
    client: &reqwest::Client,
    base: &str,
    secret: &str,
    stream: bool,
) -> reqwest::Response {
    client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&chat_body(stream))
        .send()
        .await
        .unwrap()
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

/// The seconds of OpenAI's duration format (`59.5s`, `6m0s`, `20ms`).
fn openai_seconds(text: &str) -> f64 {
    let mut rest = text;
    let mut total = 0.0;
    for (unit, factor) in [("h", 3600.0), ("m", 60.0)] {
        if let Some((n, after)) = rest.split_once(unit)
            && !after.starts_with('s')
        {
            total += n.parse::<f64>().unwrap() * factor;
            rest = after;
        }
    }
    if let Some(ms) = rest.strip_suffix("ms") {
        total + ms.parse::<f64>().unwrap() / 1000.0
    } else {
        total + rest.strip_suffix('s').unwrap().parse::<f64>().unwrap()
    }
}

#[tokio::test]
async fn a_key_over_its_requests_per_minute_gets_openai_s_429_with_the_headers() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN_KEY)
        .start(&config(&upstreams, &dir.path().join("aigw.db"), ""))
        .await;
    let (id, secret) = gateway
        .create_key(&json!({"rpm_limit": 3, "tpm_limit": 100000}))
        .await;
    let client = reqwest::Client::new();
    let base = gateway.url("");
    fresh_minute(Duration::from_secs(20)).await;
    for remaining in [2, 1, 0] {
        let response = chat(&client, &base, &secret, false).await;
        assert_eq!(response.status(), 200, "{}", gateway.stderr());
        let headers = response.headers();
        assert_eq!(header(headers, "x-ratelimit-limit-requests"), "3");
        assert_eq!(
            header(headers, "x-ratelimit-remaining-requests"),
            remaining.to_string()
        );
        let reset = openai_seconds(header(headers, "x-ratelimit-reset-requests"));
        assert!(reset > 0.0 && reset <= 60.0, "{reset}");
        assert_eq!(header(headers, "x-ratelimit-limit-tokens"), "100000");
        assert!(
            header(headers, "x-ratelimit-remaining-tokens")
                .parse::<u64>()
                .unwrap()
                < 100000
        );
        assert!(openai_seconds(header(headers, "x-ratelimit-reset-tokens")) <= 60.0);
    }
    let refused = chat(&client, &base, &secret, false).await;
    assert_eq!(refused.status(), 429);
    let headers = refused.headers().clone();
    let retry: u64 = header(&headers, "retry-after").parse().unwrap();
    let retry_ms: u64 = header(&headers, "retry-after-ms").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(
        retry_ms <= 60_000 && retry_ms.div_ceil(1000).max(1) == retry,
        "{retry_ms}"
    );
    assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), "0");
    let body: Value = refused.json().await.unwrap();
    let message = error_message(&body);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    assert!(
        message.starts_with(&format!(
            "aigw key limit: 3 requests per minute reached for key {id}; retry in "
        )),
        "{message}"
    );
    assert!(!message.contains(&secret) && !gateway.stderr().contains(&secret));
    // Every chat answer for the key carries them, an error before any limit too.
    let unknown = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(header(unknown.headers(), "x-ratelimit-limit-requests"), "3");
    assert_eq!(
        header(unknown.headers(), "x-ratelimit-remaining-requests"),
        "0"
    );
    // A key without a rate limit gets no rate-limit headers.
    let (_, unlimited) = gateway.create_key(&json!({})).await;
    let response = chat(&client, &base, &unlimited, false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "x-ratelimit-limit-requests"), "");
}

#[tokio::test]
async fn streamed_usage_counts_against_tokens_per_minute() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN_KEY)
        .start(&config(&upstreams, &dir.path().join("aigw.db"), ""))
        .await;
    let limit = 40;
    let (id, secret) = gateway.create_key(&json!({"tpm_limit": limit})).await;
    let client = reqwest::Client::new();
    let base = gateway.url("");
    fresh_minute(Duration::from_secs(20)).await;
    let mut admitted = 0u64;
    let refusal = loop {
        let response = chat(&client, &base, &secret, true).await;
        if response.status() == 429 {
            break response;
        }
        assert_eq!(response.status(), 200, "{}", gateway.stderr());
        assert_eq!(header(response.headers(), "x-ratelimit-limit-tokens"), "40");
        let text = response.text().await.unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        admitted += 1;
        assert!(admitted <= 10, "the streamed tokens were never counted");
    };
    // One request at a time: each finished before the next, so the overshoot is at most the
    // one request admitted while allowance was left.
    let used = admitted * TOKENS_PER_REQUEST;
    assert!(used >= limit, "refused at {used} tokens of {limit}");
    assert!(
        used <= limit + TOKENS_PER_REQUEST,
        "{used} tokens for a limit of {limit}"
    );
    assert_eq!(
        header(refusal.headers(), "x-ratelimit-remaining-tokens"),
        "0"
    );
    let body: Value = refusal.json().await.unwrap();
    assert_eq!(body["error"]["type"], "tokens");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(
        error_message(&body).starts_with(&format!(
            "aigw key limit: 40 tokens per minute reached for key {id}"
        )),
        "{body}"
    );
}

#[tokio::test]
async fn a_spent_budget_is_insufficient_quota_until_its_period_ends() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN_KEY)
        .start(&config(&upstreams, &dir.path().join("aigw.db"), ""))
        .await;
    // 0.02 USD a day; each request costs 0.015.
    let (id, secret) = gateway
        .create_key(&json!({"max_budget": 0.02, "budget_duration": "day"}))
        .await;
    let client = reqwest::Client::new();
    let base = gateway.url("");
    let mut admitted = 0;
    let refusal = loop {
        let response = chat(&client, &base, &secret, admitted % 2 == 1).await;
        if response.status() == 429 {
            break response;
        }
        assert_eq!(response.status(), 200, "{}", gateway.stderr());
        let _ = response.text().await.unwrap();
        admitted += 1;
        assert!(admitted <= 5, "the spend was never counted");
    };
    assert_eq!(admitted, 2, "0.015 USD, then 0.030 ≥ 0.02: refused");
    let retry: u64 = header(refusal.headers(), "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let body: Value = refusal.json().await.unwrap();
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "insufficient_quota");
    let message = error_message(&body);
    assert!(
        message.starts_with(&format!(
            "aigw key limit: the budget of 0.02 USD per day (UTC) is spent for key {id}; it renews in"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn the_openai_sdk_raises_its_rate_limit_error_with_aigw_s_codes() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN_KEY)
        .start(&config(&upstreams, &dir.path().join("aigw.db"), ""))
        .await;
    let (_, rpm) = gateway.create_key(&json!({"rpm_limit": 1})).await;
    let (_, budget) = gateway.create_key(&json!({"max_budget": 0})).await;
    fresh_minute(Duration::from_secs(30)).await;
    Check {
        script: "quotas_check.py",
        imports: "openai",
        env: &[("AIGW_RPM_KEY", &rpm), ("AIGW_BUDGET_KEY", &budget)],
        expect: &[
            "ok headers",
            "ok rate_limit_exceeded",
            "ok insufficient_quota",
        ],
    }
    .run(&gateway)
    .await;
}

/// Three gateways on one database file, the first with the admin key.
async fn three_gateways(upstreams: &Upstreams, db: &Path, extra: &str) -> Vec<Gateway> {
    let config = config(upstreams, db, extra);
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(
            upstreams
                .gateway_builder()
                .admin_key(ADMIN_KEY)
                .start(&config)
                .await,
        );
    }
    gateways
}

/// Waits until every gateway knows the key (the others load it within their
/// `auth.key_refresh_ms`): `/v1/models` answers it, which counts against no limit.
async fn known_everywhere(gateways: &[Gateway], secret: &str) {
    for gateway in gateways {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let response = gateway
                .client()
                .get(gateway.url("/v1/models"))
                .bearer_auth(secret)
                .send()
                .await
                .unwrap();
            if response.status() == 200 {
                break;
            }
            assert_eq!(response.status(), 401);
            assert!(
                tokio::time::Instant::now() < deadline,
                "the key never reached a gateway"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `clients` concurrent clients per gateway send `each` requests for `secret`; how many were
/// answered 200 (every other answer must be a 429 of the key's limits).
async fn burst(gateways: &[Gateway], secret: &str, clients: usize, each: usize) -> u64 {
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for gateway in gateways {
        for _ in 0..clients {
            let client = reqwest::Client::new();
            let base = gateway.url("");
            let secret = secret.to_owned();
            let admitted = Arc::clone(&admitted);
            tasks.push(tokio::spawn(async move {
                for _ in 0..each {
                    let response = chat(&client, &base, &secret, false).await;
                    match response.status().as_u16() {
                        200 => {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                        429 => {}
                        other => panic!("{other}: {}", response.text().await.unwrap()),
                    }
                    let _ = response.bytes().await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    admitted.load(Ordering::SeqCst)
}

#[tokio::test]
async fn three_processes_on_one_database_never_admit_more_than_the_requests_per_minute() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateways = three_gateways(&upstreams, &dir.path().join("shared.db"), "").await;
    let limit = 30;
    let (_, secret) = gateways[0].create_key(&json!({"rpm_limit": limit})).await;
    known_everywhere(&gateways, &secret).await;
    fresh_minute(Duration::from_secs(30)).await;
    // 3 processes × 4 clients × 20 requests = 240 asks for 30.
    let admitted = burst(&gateways, &secret, 4, 20).await;
    eprintln!("three processes: {admitted} requests admitted of rpm_limit {limit} (240 sent)");
    assert!(
        admitted <= limit,
        "{admitted} admitted for a limit of {limit}"
    );
    // Allowance parked in a process's lease goes to its own next requests: with every process
    // busy to the end, nearly all of the limit is used.
    assert!(admitted >= limit - 6, "only {admitted} of {limit} admitted");
}

#[tokio::test]
async fn three_processes_keep_tokens_and_spend_within_the_overshoot_bound() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gateways = three_gateways(&upstreams, &dir.path().join("shared.db"), "").await;
    let tpm = 300;
    // 0.3 USD a day at 0.015 a request: the budget and the tokens run out together.
    let budget_micro = 300_000;
    let (_, secret) = gateways[0]
        .create_key(&json!({"tpm_limit": tpm, "max_budget": 0.3, "budget_duration": "day"}))
        .await;
    known_everywhere(&gateways, &secret).await;
    fresh_minute(Duration::from_secs(30)).await;
    let clients = 4;
    let admitted = burst(&gateways, &secret, clients, 15).await;
    let tokens = admitted * TOKENS_PER_REQUEST;
    let spend = admitted * TOKENS_PER_REQUEST * 1000;
    // The documented bound: the limit, plus what the requests in flight when it was reached
    // consume (at most one per client).
    let in_flight = (3 * clients) as u64;
    eprintln!(
        "three processes: {admitted} requests, {tokens} tokens for tpm_limit {tpm} (bound {}), \
         {spend} micro-USD for a budget of {budget_micro}",
        tpm + in_flight * TOKENS_PER_REQUEST
    );
    assert!(tokens >= tpm, "refused at {tokens} of {tpm} tokens");
    assert!(
        tokens <= tpm + in_flight * TOKENS_PER_REQUEST,
        "{tokens} tokens"
    );
    assert!(
        spend <= budget_micro + in_flight * TOKENS_PER_REQUEST * 1000,
        "{spend}"
    );
}

#[tokio::test]
async fn a_killed_process_s_concurrency_slots_come_back_after_its_hold_expires() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let config = config(&upstreams, &db, "\n[limits]\nhold_ttl_ms = 3000\n");
    let start = || {
        upstreams
            .gateway_builder()
            .admin_key(ADMIN_KEY)
            .start(&config)
    };
    let mut doomed = start().await;
    let (_, secret) = doomed
        .create_key(&json!({"max_parallel_requests": 2}))
        .await;
    // Started after the key exists: it knows the key from its first request.
    let survivor = start().await;
    // Two slow requests hold both slots in the doomed process.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let client = reqwest::Client::new();
        let url = doomed.url("/v1/chat/completions");
        let secret = secret.clone();
        slow.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(secret)
                .json(&json!({"model": "local/slow-20000", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
        }));
    }
    // Both are at the upstream (each on its own connection) before the kill.
    upstreams.local.connections_until(|open| open >= 2).await;
    doomed.kill().await;
    for request in slow {
        assert!(
            request.await.unwrap().is_err(),
            "the killed gateway answered"
        );
    }
    let client = reqwest::Client::new();
    let base = survivor.url("");
    let refused = chat(&client, &base, &secret, false).await;
    assert_eq!(
        refused.status(),
        429,
        "the dead process's slots were free at once"
    );
    let body: Value = refused.json().await.unwrap();
    assert!(
        error_message(&body).contains("2 concurrent requests reached"),
        "{body}"
    );
    // Back once the hold expires (3 s after its last renewal): polled, bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let response = chat(&client, &base, &secret, false).await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 429);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slots never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
