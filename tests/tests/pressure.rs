//! One client pressing on the gateway's shared resources, through the real binary: held
//! streams, a client that leaves a silent stream, one that half-closes, a runaway upstream
//! answer, the gateway's own instance limit. What the other clients see, and what the targets'
//! health says, must not change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, status_and_json};
use aigw_tests::setup::{Upstreams, error_message};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The config of [`Upstreams::config`] with `plugins` and `server` keys added.
fn config(upstreams: &Upstreams, plugins: &str, server: &str, rest: &str) -> String {
    let base = upstreams.config(rest).replacen(
        "warm_instances = 2\n",
        &format!("warm_instances = 2\n{plugins}"),
        1,
    );
    format!("[server]\n{server}\n{base}")
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// Sends a chat request on a raw connection, shuts down the write side (done sending; the read
/// side stays open for the answer) and reads the whole answer.
async fn half_closed_request(gateway: &Gateway, body: &Value) -> String {
    let body = body.to_string();
    let mut socket = TcpStream::connect(gateway.addr()).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        gateway.addr(),
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

/// A client without a per-request timeout, for streams a test holds open.
fn holder() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Asks for a stream of `model`; the answer's head is read, its body not yet.
async fn stream_request(
    client: &reqwest::Client,
    gateway: &Gateway,
    model: &str,
) -> reqwest::Response {
    client
        .post(gateway.url("/v1/chat/completions"))
        .json(&ask(model, true))
        .send()
        .await
        .unwrap()
}

/// Opens a stream and reads until its first chunk, then leaves it open.
async fn hold_stream(
    client: &reqwest::Client,
    gateway: &Gateway,
    model: &str,
) -> reqwest::Response {
    let mut response = stream_request(client, gateway, model).await;
    assert_eq!(response.status(), 200, "{}", gateway.stderr());
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    response
}

/// A target's breaker state and how many failures it has on record.
async fn failures_of(gateway: &Gateway, target: &str) -> (String, u64) {
    let health = gateway.target_health(target).await;
    let failed = health["failed"]
        .as_object()
        .map(|all| all.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    assert!(health["last_error"].is_null(), "{health}");
    (health["state"].as_str().unwrap_or("").to_owned(), failed)
}

#[tokio::test]
async fn held_streams_do_not_take_the_instances_other_requests_need() {
    let upstreams = Upstreams::start().await;
    // Six instances at most: the two plugins' warm pools take four.
    let gateway = upstreams
        .gateway_builder()
        .start(&config(&upstreams, "max_instances = 6\n", "", ""))
        .await;
    let client = holder();
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(hold_stream(&client, &gateway, "local/stall-1").await);
    }
    // Sixty streams sit on a silent upstream; everyone else is still served, on both plugins.
    for model in ["local/ok", "groq/ok"] {
        for stream in [false, true] {
            let response = gateway.chat(&ask(model, stream)).await;
            assert_eq!(response.status(), 200, "{model}: {}", gateway.stderr());
        }
    }
    assert_eq!(
        failures_of(&gateway, "local/ok").await,
        ("closed".into(), 0)
    );
    drop(held);
}

#[tokio::test]
async fn the_gateways_own_limit_is_a_503_that_leaves_the_target_healthy() {
    let upstreams = Upstreams::start().await;
    // Five instances: the warm pools take four; streams fill hosts of 32 decoders until no
    // instance is left for another host.
    let gateway = upstreams
        .gateway_builder()
        .start(&config(&upstreams, "max_instances = 5\n", "", ""))
        .await;
    let client = holder();
    let mut held = Vec::new();
    let refused = loop {
        assert!(
            held.len() < 200,
            "200 streams and the gateway never ran out"
        );
        let mut response = stream_request(&client, &gateway, "local/stall-1").await;
        if response.status() != 200 {
            break response;
        }
        response.chunk().await.unwrap().unwrap();
        held.push(response);
    };
    assert!(held.len() >= 64, "only {} streams fit", held.len());
    let mut refusals = vec![refused];
    for _ in 0..10 {
        refusals.push(gateway.chat(&ask("local/ok", true)).await);
    }
    for refusal in refusals {
        let (status, headers, body) = status_and_json(refusal).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["type"], "server_error", "{body}");
        assert_eq!(body["error"]["code"], "overloaded", "{body}");
        assert!(
            error_message(&body).contains("plugins.max_instances"),
            "{body}"
        );
        assert_eq!(headers["x-aigw-attempts"], "1");
    }
    // Eleven refusals, yet the targets are as healthy as before: the limit was the gateway's.
    for target in ["local/ok", "local/stall-1"] {
        assert_eq!(failures_of(&gateway, target).await, ("closed".into(), 0));
    }
    drop(held);
    // Once the streams are gone (the gateway notices at once), streams are served again.
    upstreams.local.connections_until(|n| n <= 1).await;
    let response = gateway.chat(&ask("local/ok", true)).await;
    assert_eq!(response.status(), 200, "{}", gateway.stderr());
}

#[tokio::test]
async fn a_client_that_leaves_a_silent_stream_is_noticed_at_once() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.json_logged_gateway("").await;
    let client = holder();
    let held = hold_stream(&client, &gateway, "local/stall-1").await;
    assert_eq!(upstreams.local.open_connections(), 1);
    // The upstream stays silent for 60 s; the client leaves now.
    drop(held);
    drop(client);
    let closed = tokio::time::timeout(
        Duration::from_secs(10),
        upstreams.local.connections_until(|n| n == 0),
    )
    .await;
    assert!(
        closed.is_ok(),
        "the upstream connection is still open: {}",
        gateway.stderr()
    );
    let line = gateway
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("chat completion") && l.contains("stall-1")
        })
        .await
        .unwrap();
    assert!(line.contains(r#""status":499"#), "{line}");
    assert!(line.contains("client went away"), "{line}");
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway("").await;
    let answer = half_closed_request(&gateway, &ask("local/ok", false)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("mock reply to: hi"), "{answer}");
}

#[tokio::test]
async fn a_streaming_client_that_half_closes_gets_the_whole_stream() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.json_logged_gateway("").await;
    let answer = half_closed_request(&gateway, &ask("local/slow-first-300", true)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("data: [DONE]"), "{answer}");
    let line = gateway
        .wait_for_log(Duration::from_secs(5), |l| l.contains("slow-first-300"))
        .await
        .unwrap();
    assert!(line.contains(r#""status":200"#), "{line}");
}

#[tokio::test]
async fn an_upstream_answer_past_the_cap_fails_the_attempt_not_the_process() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .start(&config(
            &upstreams,
            "",
            "max_upstream_body_bytes = 4096",
            "",
        ))
        .await;
    // The mock's reply quotes the question: 6,000 characters of it make a reply past 4 KiB.
    let long = "word ".repeat(1200);
    let request = json!({"model": "local/ok", "messages": [{"role": "user", "content": long}]});
    let (status, _, body) = status_and_json(gateway.chat(&request).await).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "bad_response", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("answer larger than 4096 bytes"),
        "{message}"
    );
    assert!(
        message.contains("server.max_upstream_body_bytes"),
        "{message}"
    );
    // A short answer on the same route is served.
    let (status, _, body) = status_and_json(gateway.chat(&ask("local/ok", false)).await).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn one_client_may_hold_only_its_share_of_streams() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .log_format("json")
        .start(&config(&upstreams, "", "max_streams_per_client = 2", ""))
        .await;
    let client = holder();
    let first = hold_stream(&client, &gateway, "local/stall-1").await;
    let _second = hold_stream(&client, &gateway, "local/stall-1").await;
    let (status, _, body) = status_and_json(gateway.chat(&ask("local/ok", true)).await).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert!(
        error_message(&body).contains("max_streams_per_client"),
        "{body}"
    );
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    // Requests that are not streams are not counted.
    let (status, _, body) = status_and_json(gateway.chat(&ask("local/ok", false)).await).await;
    assert_eq!(status, 200, "{body}");
    // When a stream ends (its client left), its slot is free again.
    drop(first);
    gateway
        .wait_for_log(Duration::from_secs(10), |l| l.contains(r#""status":499"#))
        .await
        .unwrap();
    let response = gateway.chat(&ask("local/ok", true)).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn with_keys_each_key_holds_its_own_share_of_streams() {
    const ADMIN: &str = "admin-key-0123456789abcdef";
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .admin_key(ADMIN)
        .start(&config(&upstreams, "", "max_streams_per_client = 1", ""))
        .await;
    let mut secrets = Vec::new();
    for _ in 0..2 {
        secrets.push(gateway.create_key(&json!({})).await.1);
    }
    let client = holder();
    let stream = |secret: &str, model: &str| {
        client
            .post(gateway.url("/v1/chat/completions"))
            .bearer_auth(secret)
            .json(&ask(model, true))
            .send()
    };
    // Both keys come from the same address: each still gets its stream.
    let mut first = stream(&secrets[0], "local/stall-1").await.unwrap();
    assert_eq!(first.status(), 200, "{}", gateway.stderr());
    assert!(first.chunk().await.unwrap().is_some());
    let mut other = stream(&secrets[1], "local/stall-1").await.unwrap();
    assert_eq!(other.status(), 200, "{}", gateway.stderr());
    assert!(other.chunk().await.unwrap().is_some());
    // The first key's second stream is over its share.
    let (status, _, body) = status_and_json(stream(&secrets[0], "local/ok").await.unwrap()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
}
