//! The hot-swap load test: a provider's plugin is swapped back and forth by `PUT
//! /admin/plugins/{name}` (between the openai-compatible and the groq builds, both speaking
//! OpenAI to the mock) while client tasks send plain and streamed chat completions through it
//! without pause. Not one request may fail, every stream must end with `[DONE]`, and both
//! versions must have served (the groq plugin drops a message's `name`, the openai-compatible
//! one sends it on, so the mock's log tells them apart). Prints the swap latency (PUT sent →
//! answered, which is once the new version serves): median and max. Bounded: loopback only,
//! `SWAPS` swaps, `CLIENTS` clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aigw_tests::gateway::{Gateway, read_stream};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::swap::{PluginDir, digest, plugin_bytes, provider, put};
use serde_json::{Value, json};

const SWAPS: usize = 40;
const CLIENTS: usize = 8;

fn ask(stream: bool) -> Value {
    json!({
        "model": "fast",
        "stream": stream,
        "messages": [{"role": "user", "name": "probe", "content": "swap me"}],
    })
}

/// One exchange: `Ok` if it was a complete success (a 200 with a reply, or a stream ending in
/// `[DONE]` with no error event), else what went wrong.
async fn exchange(gateway: &Gateway, stream: bool) -> Result<(), String> {
    let response = gateway
        .client()
        .post(gateway.url("/v1/chat/completions"))
        .json(&ask(stream))
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status().as_u16();
    if stream {
        let (text, error) = read_stream(response).await;
        if status != 200
            || error.is_some()
            || !text.contains("data: [DONE]")
            || text.contains("\"error\"")
        {
            return Err(format!("stream {status} {error:?}: {text}"));
        }
    } else {
        let text = response.text().await.map_err(|e| format!("body: {e}"))?;
        let body: Value = serde_json::from_str(&text).map_err(|_| format!("{status}: {text}"))?;
        if status != 200 || body["choices"][0]["message"]["content"] != "mock reply to: swap me" {
            return Err(format!("{status}: {text}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_a_provider_plugin_under_load_fails_no_request() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let dir = PluginDir::with(&[("swapped", "openai-compatible")]);
    let config = format!(
        "{}\n{}\n[models.fast]\ntargets = [\"swapped/ok\"]\n",
        dir.section(0),
        provider("swapped", "swapped", &mock),
    );
    let gateway = Arc::new(Gateway::start(&config).await);
    let versions = [plugin_bytes("groq"), plugin_bytes("openai-compatible")];

    let done = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let (gateway, done, served) =
            (Arc::clone(&gateway), Arc::clone(&done), Arc::clone(&served));
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut stream = client % 2 == 0;
            while !done.load(Ordering::Relaxed) {
                if let Err(why) = exchange(&gateway, stream).await {
                    failures.push(why);
                }
                served.fetch_add(1, Ordering::Relaxed);
                stream = !stream;
            }
            failures
        }));
    }

    let mut latencies = Vec::with_capacity(SWAPS);
    for swap in 0..SWAPS {
        let bytes = versions[swap % 2].clone();
        let want = digest(&bytes);
        let sent = Instant::now();
        let (status, entry) = put(&gateway, "swapped", bytes).await;
        latencies.push(sent.elapsed());
        assert_eq!(status, 200, "swap {swap}: {entry}");
        assert_eq!(entry["digest"], want, "swap {swap}");
    }
    done.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    let total = served.load(Ordering::Relaxed);

    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    println!(
        "swap latency over {SWAPS} swaps under {CLIENTS} clients ({total} requests): median {} ms, max {} ms",
        millis(median),
        millis(max)
    );
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed; first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(total > SWAPS, "requests kept flowing: {total}");
    let requests = mock.chat_requests();
    let kept = requests
        .iter()
        .filter(|r| r.body["messages"][0].get("name").is_some())
        .count();
    assert!(kept > 0, "the openai-compatible version served");
    assert!(kept < requests.len(), "the groq version served");
    assert!(
        gateway.stderr().matches("plugin swapped").count() >= SWAPS,
        "one log line per swap"
    );
}

fn millis(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}
