//! Virtual keys through the real binary: keys made, revoked and rotated through `/admin/keys`;
//! the official openai SDK seeing 401 and 403 as its own exception types; the admin key on
//! `/admin`; a key made in one process working in another on the same database within the
//! refresh interval (and stopping there once revoked); the loopback-only rule without an admin
//! key; no secret in the log; and a flood of wrong keys that does not slow a client with a
//! good one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use aigw_tests::gateway::Gateway;
use aigw_tests::python::Check;
use aigw_tests::setup::{Upstreams, toml_str};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "admin-test-key-0123456789abcdef";

const ROUTES: &str =
    "[models.fast]\ntargets = [\"groq/ok\"]\n\n[models.other]\ntargets = [\"local/ok\"]\n";

/// `method path` on the admin API with the admin key; returns status and body.
async fn admin(
    gateway: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = gateway
        .client()
        .request(method, gateway.url(path))
        .bearer_auth(ADMIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Makes a key; returns (id, secret).
async fn make_key(gateway: &Gateway, spec: Value) -> (String, String) {
    let (status, body) = admin(gateway, reqwest::Method::POST, "/admin/keys", Some(spec)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

async fn models_status(gateway: &Gateway, secret: &str) -> StatusCode {
    gateway
        .client()
        .get(gateway.url("/v1/models"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .status()
}

fn chat_body() -> Value {
    json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
}

/// Asserts that no secret appears in the gateway's log, nor its distinctive part (what follows
/// the `sk-aigw-` prefix).
fn assert_no_secret_logged(gateway: &Gateway, secrets: &[&str]) {
    let log = gateway.stderr();
    for secret in secrets {
        let tail = secret.strip_prefix("sk-aigw-").unwrap_or(secret);
        assert!(!log.contains(tail), "a secret is in the log:\n{log}");
    }
}

#[tokio::test]
async fn the_openai_sdk_sees_keys_grants_and_refusals() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&upstreams.config(ROUTES))
        .await;
    let (_, key) = make_key(&gateway, json!({"name": "all"})).await;
    let (_, narrow) = make_key(&gateway, json!({"models": ["local/*"]})).await;
    let (revoked_id, revoked) = make_key(&gateway, json!({})).await;
    let (rotated_id, rotated_old) = make_key(&gateway, json!({})).await;
    let (status, record) = admin(
        &gateway,
        reqwest::Method::DELETE,
        &format!("/admin/keys/{revoked_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    let (status, record) = admin(
        &gateway,
        reqwest::Method::POST,
        &format!("/admin/keys/{rotated_id}/rotate"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    let rotated_new = record["key"].as_str().unwrap().to_owned();

    Check {
        script: "keys_check.py",
        imports: "openai",
        env: &[
            ("AIGW_MODEL", "fast"),
            ("AIGW_KEY", &key),
            ("AIGW_NARROW_KEY", &narrow),
            ("AIGW_NARROW_MODEL", "local/ok"),
            ("AIGW_REVOKED_KEY", &revoked),
            ("AIGW_ROTATED_OLD", &rotated_old),
            ("AIGW_ROTATED_NEW", &rotated_new),
            ("AIGW_ADMIN_KEY", ADMIN),
        ],
        expect: &[
            "ok chat with a virtual key",
            "ok models listed per key",
            "ok wrong key is AuthenticationError",
            "ok model not granted is PermissionDeniedError",
            "ok revoked key is AuthenticationError",
            "ok rotated key: the old secret stops, the new one works",
            "ok admin key is refused on client calls",
        ],
    }
    .run(&gateway)
    .await;

    // Listings and records show hints only.
    let (status, listed) = admin(
        &gateway,
        reqwest::Method::GET,
        "/admin/keys?limit=100",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"].as_array().unwrap().len(), 4, "{listed}");
    let text = listed.to_string();
    for secret in [&key, &narrow, &revoked, &rotated_old, &rotated_new] {
        assert!(!text.contains(&secret[8..]), "a secret is listed: {text}");
    }
    assert_no_secret_logged(
        &gateway,
        &[ADMIN, &key, &narrow, &revoked, &rotated_old, &rotated_new],
    );
}

#[tokio::test]
async fn admin_paths_need_the_admin_key() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&upstreams.config(ROUTES))
        .await;
    let (_, key) = make_key(&gateway, json!({})).await;
    for path in ["/admin/targets", "/admin/keys"] {
        let client = gateway.client();
        let none = client.get(gateway.url(path)).send().await.unwrap();
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(none.headers()["www-authenticate"], "Bearer");
        let body: Value = none.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        let virtual_key = client
            .get(gateway.url(path))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(virtual_key.status(), StatusCode::FORBIDDEN, "{path}");
        let body: Value = virtual_key.json().await.unwrap();
        assert_eq!(body["error"]["code"], "admin_key_required");
        let with_admin = client
            .get(gateway.url(path))
            .header("x-api-key", ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(with_admin.status(), StatusCode::OK, "{path}");
    }
    // Health checkers need nothing.
    assert_eq!(
        gateway
            .client()
            .get(gateway.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_no_secret_logged(&gateway, &[ADMIN, &key]);
}

#[tokio::test]
async fn a_key_made_in_one_process_works_in_another_within_the_refresh_interval() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = upstreams.config(&format!(
        "{ROUTES}\n[memory]\npath = {}\n\n[auth]\nkey_refresh_ms = 200\n",
        toml_str(&dir.path().join("shared.db").to_string_lossy())
    ));
    let a = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&config)
        .await;
    let b = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&config)
        .await;
    let (id, secret) = make_key(&a, json!({})).await;
    // Through A's own admin API: at once in A.
    assert_eq!(models_status(&a, &secret).await, StatusCode::OK);
    // In B: within the refresh interval (polled, bounded well above it).
    let seen_in = poll(&b, &secret, StatusCode::OK).await;
    eprintln!("a key made in A worked in B after {seen_in:?}");
    let (status, _) = admin(
        &a,
        reqwest::Method::DELETE,
        &format!("/admin/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(models_status(&a, &secret).await, StatusCode::UNAUTHORIZED);
    let stopped_in = poll(&b, &secret, StatusCode::UNAUTHORIZED).await;
    eprintln!("a key revoked in A stopped in B after {stopped_in:?}");
}

/// Polls B's `/v1/models` with `secret` until it answers `want`; at most 10 s (the refresh is
/// every 200 ms).
async fn poll(gateway: &Gateway, secret: &str, want: StatusCode) -> Duration {
    let started = Instant::now();
    loop {
        if models_status(gateway, secret).await == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still not {want} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_an_admin_key_only_loopback_is_served() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("aigw.toml");
    std::fs::write(&config_path, upstreams.config(ROUTES)).unwrap();
    let run = tokio::process::Command::new(aigw_tests::paths::aigw_bin())
        .args(["serve", "--config"])
        .arg(&config_path)
        .args(["--listen", "0.0.0.0:0"])
        .env_remove("AIGW_ADMIN_KEY")
        .env("GROQ_API_KEY", "x")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("aigw serve should refuse at once")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&*config_path.to_string_lossy()), "{stderr}");
    assert!(stderr.contains("0.0.0.0"), "{stderr}");
    assert!(stderr.contains("[auth] admin_key"), "{stderr}");
    assert!(stderr.contains("allow_unauthenticated = true"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening on"),
        "it must not have listened"
    );

    // Said explicitly: served, openly.
    let open = upstreams
        .gateway_builder()
        .env_remove("AIGW_ADMIN_KEY")
        .listen("0.0.0.0:0")
        .start(&upstreams.config(&format!("{ROUTES}\n[auth]\nallow_unauthenticated = true\n")))
        .await;
    assert!(open.chat(&chat_body()).await.status().is_success());
    // On loopback without a key: served, openly, as before.
    let local = upstreams
        .gateway_builder()
        .env_remove("AIGW_ADMIN_KEY")
        .start(&upstreams.config(ROUTES))
        .await;
    assert!(local.chat(&chat_body()).await.status().is_success());
}

#[tokio::test]
async fn a_flood_of_wrong_keys_does_not_slow_a_good_client() {
    const FLOODERS: usize = 8;
    const GUESSES: usize = 500;
    const GOOD_REQUESTS: usize = 100;
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&upstreams.config(ROUTES))
        .await;
    let (_, secret) = make_key(&gateway, json!({})).await;
    let url = gateway.url("/v1/chat/completions");
    let client = gateway.client().clone();

    // The good client alone, for comparison.
    let alone = good_client(&client, &url, &secret, GOOD_REQUESTS).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for n in 0..FLOODERS {
        let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
        flood.push(tokio::spawn(async move {
            let mut refused = 0;
            for i in 0..GUESSES {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let guess = format!("sk-aigw-guess{n:02}{i:030}");
                let response = client
                    .post(&url)
                    .bearer_auth(&guess)
                    .json(&chat_body())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
                refused += 1;
            }
            refused
        }));
    }
    let during = good_client(&client, &url, &secret, GOOD_REQUESTS).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut refused = 0;
    for task in flood {
        refused += task.await.unwrap();
    }
    eprintln!(
        "good client: {GOOD_REQUESTS} requests alone in {alone:?}, during a flood of {refused} \
         wrong keys from {FLOODERS} clients in {during:?}"
    );
    assert!(refused > 0);
    // Every good request succeeded (asserted in `good_client`); and not starved: on a shared
    // 2-core machine the flood competes for the CPU, so the bound is loose, but a check that
    // waited on the store or a lock per wrong key would blow it.
    assert!(
        during < alone * 20 + Duration::from_secs(5),
        "alone {alone:?}, during the flood {during:?}"
    );
    assert_no_secret_logged(&gateway, &[ADMIN, &secret]);
}

/// `count` chat completions one after another with `secret`; every one must succeed.
async fn good_client(client: &reqwest::Client, url: &str, secret: &str, count: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..count {
        let response = client
            .post(url)
            .bearer_auth(secret)
            .json(&chat_body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    started.elapsed()
}

#[tokio::test]
async fn a_teams_grant_narrows_its_keys() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&upstreams.config(ROUTES))
        .await;
    let (status, team) = admin(
        &gateway,
        reqwest::Method::POST,
        "/admin/teams",
        Some(json!({"name": "local only", "models": ["local/*"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let team = team["id"].as_str().unwrap().to_owned();
    // The key grants everything itself: the team narrows it.
    let (_, secret) = make_key(&gateway, json!({"team": team})).await;
    let chat = |model: &'static str| {
        let (gateway, secret) = (&gateway, secret.clone());
        async move {
            gateway
                .client()
                .post(gateway.url("/v1/chat/completions"))
                .bearer_auth(secret)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
        }
    };
    let refused = chat("fast").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_allowed");
    assert_eq!(chat("local/ok").await.status(), StatusCode::OK);
    let listed: Value = gateway
        .client()
        .get(gateway.url("/v1/models"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|id| id.starts_with("local/")),
        "{ids:?}"
    );

    // Widening the team applies at once (a change through this process).
    let (status, _) = admin(
        &gateway,
        reqwest::Method::PATCH,
        &format!("/admin/teams/{team}"),
        Some(json!({"models": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chat("fast").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_attempt_log_is_not_given_to_key_holders() {
    let upstreams = Upstreams::start().await;
    let open = upstreams
        .gateway_builder()
        .start(&upstreams.config(ROUTES))
        .await;
    let keyed = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&upstreams.config(ROUTES))
        .await;
    let (_, secret) = make_key(&keyed, json!({})).await;
    let ask = |gateway: &Gateway, secret: Option<String>| {
        let mut request = gateway
            .client()
            .post(gateway.url("/v1/chat/completions"))
            .header("x-aigw-debug", "attempts")
            .json(&chat_body());
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        request.send()
    };
    let answered = ask(&open, None).await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    assert!(answered.headers().contains_key("x-aigw-attempt-log"));
    // With authentication on, the route's targets and their health stay the operator's.
    let answered = ask(&keyed, Some(secret)).await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    assert!(!answered.headers().contains_key("x-aigw-attempt-log"));
}
