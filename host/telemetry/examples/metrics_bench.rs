//! What metrics cost: nanoseconds per reported request (metrics on vs off, one thread and two),
//! and the memory 10,000 keys × 3 routes add. `cargo run --release -p aigw-telemetry --example
//! metrics_bench`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_telemetry::{
    AttemptObservation, Format, Metrics, MetricsOptions, RequestObservation, Scrape,
};

const ROUNDS: u32 = 2_000_000;

fn observation<'a>(
    key: &'a str,
    route: &'a str,
    attempts: &'a [AttemptObservation<'a>],
) -> RequestObservation<'a> {
    RequestObservation {
        route,
        provider: Some("groq"),
        target: Some("groq/llama-3.1-8b-instant"),
        status: 200,
        stream: false,
        key: Some(key),
        duration: Duration::from_millis(30),
        time_to_first_chunk: None,
        continuations: 0,
        cache: None,
        attempts,
        input_tokens: Some(12),
        output_tokens: Some(5),
        spend_micro_usd: 250,
        error_type: None,
    }
}

fn per_request(metrics: &Arc<Metrics>, threads: usize) -> f64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let metrics = Arc::clone(metrics);
            std::thread::spawn(move || {
                let key = format!("key_{t}");
                let attempts = [AttemptObservation {
                    target: "groq/llama-3.1-8b-instant",
                    kind: "first",
                    outcome: "served",
                    failure_class: None,
                    duration: Duration::from_millis(29),
                }];
                for _ in 0..ROUNDS {
                    metrics.request(black_box(&observation(&key, "fast", &attempts)));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    started.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    for enabled in [false, true] {
        let metrics = Arc::new(Metrics::new(MetricsOptions {
            enabled,
            ..MetricsOptions::default()
        }));
        for threads in [1, 2] {
            let ns = per_request(&metrics, threads);
            println!(
                "metrics enabled={enabled} threads={threads}: {ns:.0} ns per request (wall, per thread's request)"
            );
        }
    }

    let metrics = Metrics::new(MetricsOptions {
        enabled: true,
        max_series_per_metric: 100_000,
    });
    let before = rss_kib();
    let attempts = [AttemptObservation {
        target: "groq/llama-3.1-8b-instant",
        kind: "first",
        outcome: "served",
        failure_class: None,
        duration: Duration::from_millis(29),
    }];
    let keys: Vec<String> = (0..10_000).map(|n| format!("key_{n:016x}")).collect();
    for route in ["fast", "smart", "cheap"] {
        for key in &keys {
            metrics.request(&observation(key, route, &attempts));
        }
    }
    let after = rss_kib();
    let started = Instant::now();
    let text = metrics.encode(Scrape::default(), Format::Prometheus);
    let scrape = started.elapsed();
    println!(
        "10,000 keys x 3 routes: RSS {before} KiB -> {after} KiB (+{} KiB, {:.0} bytes per key x route); \
         one scrape: {} bytes in {:.1} ms",
        after - before,
        (after - before) as f64 * 1024.0 / 30_000.0,
        text.len(),
        scrape.as_secs_f64() * 1000.0
    );
}
