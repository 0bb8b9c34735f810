//! The gateway under pressure from the operating system's limits, through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::status_and_json;
use aigw_tests::setup::Upstreams;
use serde_json::json;
use tokio::net::TcpStream;

fn accept_failures(log: &str) -> usize {
    log.lines().filter(|l| l.contains("accept failed")).count()
}

#[tokio::test]
async fn out_of_file_descriptors_the_accept_loop_backs_off_and_recovers() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .max_open_files(64)
        .start(&upstreams.config("[models.fast]\ntargets = [\"local/ok\"]\n"))
        .await;
    // Far more idle connections than descriptors: the rest wait in the listen backlog, and
    // every accept fails with "too many open files" while they are held.
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(TcpStream::connect(gateway.addr()).await.unwrap());
    }
    let first = gateway
        .wait_for_log(Duration::from_secs(10), |l| l.contains("accept failed"))
        .await;
    assert!(first.is_some(), "accept never failed: {}", gateway.stderr());
    // While the condition lasts, the loop retries with a pause of up to 1 s and logs at most
    // once per 5 s: over the next 2 s at most one more line (a spinning loop wrote thousands).
    let before = accept_failures(&gateway.stderr());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = accept_failures(&gateway.stderr()) - before;
    assert!(during <= 1, "{during} more accept-failure lines in 2 s");

    // Once the idle clients leave, the gateway serves again.
    drop(held);
    let ask = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, body) = status_and_json(gateway.chat(&ask).await).await;
    assert_eq!(status, 200, "{body}");
}
