//! The gateway's edge, through the real binary: time limits on slow and idle clients, the
//! connection cap, the checks against cross-site requests (content type, CORS, `Host`), what a
//! transport failure tells the client, and debug logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, status_and_json};
use aigw_tests::setup::{Upstreams, error_message, header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const MODELS: &str = "[models.fast]\ntargets = [\"local/ok\"]\n";

/// Longer than any limit a test configures by far: a connection still open then was held.
const BOUND: Duration = Duration::from_secs(10);

fn hi() -> serde_json::Value {
    json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
}

/// Reads until the gateway closes the connection (end of file or reset); what arrived first.
///
/// # Panics
/// When the connection is still open after [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection was still open after {BOUND:?}; received {:?}",
        String::from_utf8_lossy(&received)
    );
    received
}

/// Sends `GET /healthz` on a kept-alive connection and reads the answer; `None` when the
/// connection was closed instead.
async fn health_on(stream: &mut TcpStream) -> Option<String> {
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    stream.write_all(request).await.ok()?;
    let mut received = Vec::new();
    let mut buf = [0; 1024];
    let answer = tokio::time::timeout(BOUND, async {
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|l| l.trim().parse::<usize>().ok());
                if length.is_some_and(|length| body.len() >= length) {
                    return Some(text);
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    answer.expect("no answer to GET /healthz within the bound")
}

fn config(upstreams: &Upstreams, server: &str) -> String {
    upstreams.config(&format!("[server]\n{server}\n{MODELS}"))
}

#[tokio::test]
async fn a_client_that_stalls_in_its_head_is_disconnected_after_the_header_timeout() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .start(&config(&upstreams, "header_read_timeout_ms = 300"))
        .await;

    // Slowloris: half a head, then nothing.
    let mut stalling = TcpStream::connect(gateway.addr()).await.unwrap();
    let started = Instant::now();
    stalling
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        .await
        .unwrap();
    // Connected, and silent from the start.
    let mut silent = TcpStream::connect(gateway.addr()).await.unwrap();

    let received = read_until_closed(&mut stalling).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    read_until_closed(&mut silent).await;
    assert!(upstreams.local.requests().is_empty());

    // A client that sends its head in time is served as before.
    let (status, _, body) = status_and_json(gateway.chat(&hi()).await).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_a_408() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .start(&config(&upstreams, "body_read_timeout_ms = 300"))
        .await;

    let mut uploading = TcpStream::connect(gateway.addr()).await.unwrap();
    uploading
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\": ",
        )
        .await
        .unwrap();
    let received = String::from_utf8(read_until_closed(&mut uploading).await).unwrap();

    let (head, body) = received.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 408 "), "{received}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(error_message(&body).contains("300 ms"), "{body}");
    assert_eq!(body["error"]["code"], "request_timeout");
    assert!(upstreams.local.requests().is_empty());
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let upstreams = Upstreams::start().await;
    // The head limit is far longer than the bound: only the idle limit can close it in time.
    let gateway = upstreams
        .gateway_builder()
        .start(&config(
            &upstreams,
            "idle_timeout_ms = 300\nheader_read_timeout_ms = 60000",
        ))
        .await;

    let mut kept = TcpStream::connect(gateway.addr()).await.unwrap();
    // Taken before the request: the server's idle spell starts after its answer, so the close
    // comes at least 300 ms after this however late a loaded machine lets the client read.
    let asked = Instant::now();
    let answer = health_on(&mut kept).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let received = read_until_closed(&mut kept).await;
    assert!(received.is_empty());
    assert!(asked.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn past_max_connections_a_new_connection_is_closed_and_the_open_ones_are_served() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .start(&config(
            &upstreams,
            "max_connections = 2\nheader_read_timeout_ms = 60000\nidle_timeout_ms = 60000",
        ))
        .await;

    let mut first = TcpStream::connect(gateway.addr()).await.unwrap();
    let mut second = TcpStream::connect(gateway.addr()).await.unwrap();
    assert!(health_on(&mut first).await.is_some());
    assert!(health_on(&mut second).await.is_some());

    // Both slots are held (each connection was served): the third is closed at once.
    let mut third = TcpStream::connect(gateway.addr()).await.unwrap();
    let received = read_until_closed(&mut third).await;
    assert!(received.is_empty());
    let line = gateway
        .wait_for_log(BOUND, |l| l.contains("connection limit reached"))
        .await;
    assert!(line.is_some(), "{}", gateway.stderr());

    // The open ones are still served.
    assert!(health_on(&mut first).await.is_some());
    assert!(health_on(&mut second).await.is_some());

    // Once one leaves, a new connection is served (as soon as the gateway has seen it leave).
    drop(first);
    let deadline = Instant::now() + BOUND;
    loop {
        let mut next = TcpStream::connect(gateway.addr()).await.unwrap();
        if let Some(answer) = health_on(&mut next).await {
            assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed after {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_post_that_is_not_json_is_a_415_and_reaches_no_upstream() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;
    let body = hi().to_string();

    // What a web page can send without a preflight: text/plain, a form, no type at all.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = gateway
            .client()
            .post(gateway.url("/v1/chat/completions"))
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, _, answer) = status_and_json(request.send().await.unwrap()).await;
        assert_eq!(status, 415, "{content_type:?}: {answer}");
        assert!(error_message(&answer).contains("Content-Type"), "{answer}");
        assert_eq!(answer["error"]["code"], "unsupported_media_type");
    }
    assert!(upstreams.local.requests().is_empty());

    let with_charset = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(with_charset.status(), 200);
}

fn preflight(gateway: &Gateway, origin: &str) -> reqwest::RequestBuilder {
    gateway
        .client()
        .request(
            reqwest::Method::OPTIONS,
            gateway.url("/v1/chat/completions"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
}

fn cors_headers(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn without_cors_origins_a_preflight_is_refused_and_no_cors_header_is_sent() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;

    let (status, headers, body) = status_and_json(
        preflight(&gateway, "https://app.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "cors_not_allowed");
    assert!(cors_headers(&headers).is_empty(), "{headers:?}");

    let answer = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .header("origin", "https://app.example")
        .json(&hi())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        cors_headers(answer.headers()).is_empty(),
        "{:?}",
        answer.headers()
    );
}

#[tokio::test]
async fn a_configured_origin_gets_the_cors_headers_and_no_other_does() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .start(&config(
            &upstreams,
            "cors_origins = [\"https://app.example\"]",
        ))
        .await;

    let allowed = preflight(&gateway, "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 204);
    let headers = allowed.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        "https://app.example"
    );
    assert!(header(headers, "access-control-allow-methods").contains("POST"));
    let allowed_headers = header(headers, "access-control-allow-headers");
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("content-type"),
        "{allowed_headers}"
    );
    assert!(header(headers, "vary").contains("Origin"));

    let (status, headers, body) = status_and_json(
        preflight(&gateway, "https://evil.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(cors_headers(&headers).is_empty(), "{headers:?}");

    let answer = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .header("origin", "https://app.example")
        .json(&hi())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        header(answer.headers(), "access-control-allow-origin"),
        "https://app.example"
    );
    assert!(header(answer.headers(), "vary").contains("Origin"));
}

async fn chat_with_host(gateway: &Gateway, host: &str) -> (u16, serde_json::Value) {
    let response = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .header("host", host)
        .json(&hi())
        .send()
        .await
        .unwrap();
    let (status, _, body) = status_and_json(response).await;
    (status, body)
}

#[tokio::test]
async fn a_loopback_gateway_refuses_a_foreign_host_and_answers_its_own_names() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(MODELS).await;
    let port = gateway.addr().port();

    // DNS rebinding: the page's own name, pointed at 127.0.0.1.
    for host in ["evil.example", &format!("evil.example:{port}")] {
        let (status, body) = chat_with_host(&gateway, host).await;
        assert_eq!(status, 421, "{host}: {body}");
        assert_eq!(body["error"]["code"], "host_not_allowed");
    }
    assert!(upstreams.local.requests().is_empty());

    for host in [
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, body) = chat_with_host(&gateway, &host).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[tokio::test]
async fn a_configured_host_list_replaces_the_listen_addresses_names() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .start(&config(&upstreams, "allowed_hosts = [\"gw.example\"]"))
        .await;

    let (status, body) = chat_with_host(&gateway, "gw.example").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = chat_with_host(&gateway, "localhost").await;
    assert_eq!(status, 421, "{body}");
}

#[tokio::test]
async fn a_transport_failure_names_the_target_to_the_client_and_the_url_only_in_the_log() {
    let upstreams = Upstreams::start().await;
    // A loopback port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gateway = upstreams
        .gateway(&format!(
            "[providers.dead]\nplugin = \"openai-compatible\"\nbase_url = \"http://{closed}/v1\"\n\n\
             [models.broken]\ntargets = [\"dead/m\"]\n"
        ))
        .await;

    let ask = json!({"model": "broken", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, body) = status_and_json(gateway.chat(&ask).await).await;
    assert_eq!(status, 502, "{body}");
    let message = error_message(&body);
    assert!(message.contains("dead/m"), "the target is named: {message}");
    assert!(message.contains("cannot connect"), "{message}");
    assert!(
        !message.contains(&closed.to_string()) && !message.contains("http://"),
        "the client must not see the upstream's address: {message}"
    );

    let logged = gateway
        .wait_for_log(BOUND, |l| l.contains("upstream transport failure"))
        .await
        .expect("a log line with the detail");
    assert!(
        logged.contains(&format!("http://{closed}/v1/chat/completions")),
        "{logged}"
    );
    assert!(logged.contains("dead/m"), "{logged}");
}

#[tokio::test]
async fn aigw_log_debug_prints_the_gateways_debug_lines_and_the_default_does_not() {
    let upstreams = Upstreams::start().await;
    let debug = upstreams
        .gateway_builder()
        .env("AIGW_LOG", "debug")
        .start(&upstreams.config(MODELS))
        .await;
    assert_eq!(debug.chat(&hi()).await.status(), 200);
    let line = debug
        .wait_for_log(BOUND, |l| l.contains("DEBUG") && l.contains("aigw_server"))
        .await;
    assert!(
        line.is_some(),
        "no debug line from aigw:\n{}",
        debug.stderr()
    );
    // The wasm compiler's per-function lines would bury them: they stay quiet.
    assert!(
        !debug.stderr().contains("cranelift"),
        "cranelift's debug lines are printed"
    );

    let default = upstreams
        .gateway_builder()
        .env_remove("AIGW_LOG")
        .start(&upstreams.config(MODELS))
        .await;
    assert_eq!(default.chat(&hi()).await.status(), 200);
    // The request's own line is logged after its debug line would have been.
    let request = default
        .wait_for_log(BOUND, |l| l.contains("aigw::request"))
        .await;
    assert!(request.is_some(), "{}", default.stderr());
    assert!(!default.stderr().contains("DEBUG"), "{}", default.stderr());
}
