//! Graceful shutdown through the real binary: on SIGTERM readiness goes false while streams in
//! flight keep flowing, the listener closes after the drain delay, the streams finish whole,
//! the process exits 0 and their usage is in the database; a stream longer than the grace ends
//! at the deadline with an error event (no `[DONE]`) and its record still reaches the store; a
//! second signal while draining exits at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use aigw_tests::gateway::status_and_json;
use aigw_tests::setup::Upstreams;
use aigw_tests::sse::Transcript;
use futures_util::StreamExt;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(20);

/// A stream read to its end on its own task: its body and when its last piece came.
fn read_in_background(response: reqwest::Response) -> JoinHandle<(String, Instant)> {
    tokio::spawn(async move {
        let mut body = Vec::new();
        let mut last = Instant::now();
        let mut pieces = response.bytes_stream();
        while let Some(Ok(piece)) = pieces.next().await {
            body.extend_from_slice(&piece);
            last = Instant::now();
        }
        (String::from_utf8_lossy(&body).into_owned(), last)
    })
}

fn streamed(model: &str) -> serde_json::Value {
    json!({
        "model": model,
        "stream": true,
        "messages": [{"role": "user", "content": "hello there"}],
    })
}

/// The requests and output tokens the usage ledger holds in the database at `db`.
async fn stored_usage(db: &Path) -> (i64, i64) {
    let store = aigw_memory::Store::open(aigw_memory::StoreOptions::new(db))
        .await
        .unwrap();
    store
        .read(|c| {
            Box::pin(async move {
                let mut rows = c
                    .query(
                        "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(output_tokens), 0) \
                         FROM usage",
                        (),
                    )
                    .await?;
                let row = rows.next().await?.expect("one row");
                Ok((row.get::<i64>(0)?, row.get::<i64>(1)?))
            })
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sigterm_drains_the_streams_in_flight_then_exits_0_with_their_usage_stored() {
    let upstreams = Upstreams::start().await;
    // An hour's flush interval: only the stop writes the usage.
    let mut gateway = upstreams
        .gateway(
            "[server]\ndrain_delay_ms = 1000\nshutdown_grace_ms = 20000\n\
             [usage]\nflush_interval_ms = 3600000\n",
        )
        .await;
    let db = gateway.config_path().with_file_name("aigw.db");
    // Ten frames 200 ms apart: two seconds of generation each.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let response = gateway.chat(&streamed("local/paced-200")).await;
        assert_eq!(response.status(), 200);
        streams.push(read_in_background(response));
    }
    let signalled = Instant::now();
    gateway.signal("TERM").await;
    gateway
        .wait_for_log(WAIT, |l| l.contains("shutdown: draining"))
        .await
        .expect("the drain is logged");

    // Not ready, still alive; the answer tells a kept-alive client to go elsewhere.
    let readyz = gateway.get("/readyz").await;
    let unready_at = Instant::now();
    let closing = readyz
        .headers()
        .get("connection")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, _, body) = status_and_json(readyz).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "draining", "{body}");
    assert_eq!(body["error"]["code"], "draining", "{body}");
    assert_eq!(closing.as_deref(), Some("close"));
    assert_eq!(gateway.get("/healthz").await.status(), 200);

    gateway
        .wait_for_log(WAIT, |l| l.contains("shutdown: the listener is closed"))
        .await
        .expect("the listener's close is logged");
    let refused = tokio::net::TcpStream::connect(gateway.addr()).await;
    assert_eq!(
        refused.map(drop).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused,
        "a new connection after the drain delay is refused"
    );

    for stream in streams {
        let (body, last_piece) = stream.await.unwrap();
        let transcript = Transcript::from_body(&body);
        assert!(transcript.ends_with_done(), "{body}");
        assert!(transcript.errors.is_empty(), "{body}");
        assert_eq!(transcript.content, "mock reply to: hello there");
        // The stream kept flowing after readiness went false.
        assert!(last_piece > unready_at, "{body}");
    }
    let status = gateway
        .wait_for_exit(WAIT)
        .await
        .expect("exits within the grace");
    assert!(status.success(), "{status:?}\n{}", gateway.stderr());
    assert!(signalled.elapsed() < Duration::from_secs(20));
    assert!(
        gateway
            .stderr()
            .contains("shutdown: every connection finished"),
        "{}",
        gateway.stderr()
    );
    let (requests, output_tokens) = stored_usage(&db).await;
    assert_eq!(requests, 2);
    // "mock reply to: hello there": five words each.
    assert_eq!(output_tokens, 10);
}

#[tokio::test]
async fn a_stream_longer_than_the_grace_ends_with_an_error_event_and_its_record_is_stored() {
    let upstreams = Upstreams::start().await;
    let mut gateway = upstreams
        .gateway(
            "[server]\ndrain_delay_ms = 100\nshutdown_grace_ms = 1500\n\
             [usage]\nflush_interval_ms = 3600000\n",
        )
        .await;
    let db = gateway.config_path().with_file_name("aigw.db");
    // Two words, then silence for a minute.
    let response = gateway.chat(&streamed("local/stall-2")).await;
    assert_eq!(response.status(), 200);
    let stream = read_in_background(response);
    let signalled = Instant::now();
    gateway.signal("TERM").await;

    let (body, _) = stream.await.unwrap();
    let ended_after = signalled.elapsed();
    let transcript = Transcript::from_body(&body);
    assert!(
        !transcript.has_done(),
        "a cut answer never ends in [DONE]: {body}"
    );
    assert_eq!(transcript.content, "mock reply", "{body}");
    assert_eq!(transcript.errors.len(), 1, "{body}");
    assert_eq!(transcript.errors[0]["code"], "shutting_down", "{body}");
    assert_eq!(transcript.errors[0]["type"], "server_error", "{body}");
    // At the deadline, not before.
    assert!(
        ended_after >= Duration::from_millis(1500),
        "{ended_after:?}"
    );

    let status = gateway
        .wait_for_exit(Duration::from_secs(5))
        .await
        .expect("exits promptly after the deadline");
    assert!(status.success(), "{status:?}\n{}", gateway.stderr());
    assert!(signalled.elapsed() < Duration::from_secs(5));
    let warned = gateway
        .wait_for_log(WAIT, |l| l.contains("the grace ran out"))
        .await
        .expect("the deadline is logged");
    assert!(warned.contains("open_connections=1"), "{warned}");
    // The ended stream's record reached the ledger before the last flush.
    let (requests, _) = stored_usage(&db).await;
    assert_eq!(requests, 1);
}

#[tokio::test]
async fn a_second_signal_while_draining_exits_at_once() {
    let upstreams = Upstreams::start().await;
    let mut gateway = upstreams
        .gateway("[server]\ndrain_delay_ms = 10000\nshutdown_grace_ms = 60000\n")
        .await;
    let response = gateway.chat(&streamed("local/stall-2")).await;
    assert_eq!(response.status(), 200);
    let _stream = read_in_background(response);
    gateway.signal("TERM").await;
    gateway
        .wait_for_log(WAIT, |l| l.contains("shutdown: draining"))
        .await
        .expect("the drain is logged");
    let again = Instant::now();
    gateway.signal("TERM").await;
    let status = gateway
        .wait_for_exit(Duration::from_secs(5))
        .await
        .expect("the second signal ends the process");
    assert_eq!(status.code(), Some(1), "{}", gateway.stderr());
    assert!(again.elapsed() < Duration::from_secs(5));
}
