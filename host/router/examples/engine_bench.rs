//! What the failover engine adds to a request: `serve` over a route whose target answers at
//! once, against calling that target directly, in the same process (`cargo xtask bench` runs
//! it; `cargo run --release -p aigw-router --example engine_bench`).
//!
//! Three routes: one target (a direct `provider/model` request), three targets of distinct
//! priorities (an alias), and three targets sharing a priority with weights (the weighted
//! shuffle runs per request). Reports the median and p99 of batches of 1000 calls, per call.

use std::sync::Arc;
use std::time::Instant;

use aigw_router::{
    Failure, Health, HealthSettings, Policy, Request, Route, RouteEntry, Timeouts, Upstream, serve,
};

/// A target that answers at once, like a warm upstream would after the network hop.
struct Instant0;

impl Upstream for Instant0 {
    type Target = u32;
    type Output = u32;

    async fn attempt(&self, target: &u32, _timeouts: &Timeouts) -> Result<u32, Failure> {
        Ok(std::hint::black_box(*target))
    }
}

fn route(priorities: &[u32]) -> Route<u32> {
    let settings = Arc::new(HealthSettings::default());
    Route::new(
        priorities
            .iter()
            .enumerate()
            .map(|(i, &priority)| RouteEntry {
                target: i as u32,
                health: Arc::new(Health::new(Arc::clone(&settings))),
                priority,
                weight: 1 + i as u32,
                context_window: None,
                timeouts: Timeouts::default(),
            })
            .collect(),
        Policy::default(),
    )
}

const BATCH: u32 = 1000;
const BATCHES: usize = 300;

/// Median and p99 of per-call time over batches of `BATCH` calls of `call`.
async fn measure<F, Fut>(mut call: F) -> (f64, f64)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut per_call = Vec::with_capacity(BATCHES);
    let mut seed = 0;
    for _ in 0..BATCHES {
        let started = Instant::now();
        for _ in 0..BATCH {
            seed += 1;
            call(seed).await;
        }
        per_call.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH));
    }
    per_call.sort_by(f64::total_cmp);
    (per_call[BATCHES / 2], per_call[BATCHES * 99 / 100])
}

fn main() {
    // The engine bounds every attempt with a tokio timer, as in the server.
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        eprintln!("engine_bench: cannot start a tokio runtime");
        std::process::exit(1);
    };
    runtime.block_on(async {
        let upstream = Instant0;
        let timeouts = Timeouts::default();
        // Warm up caches and the allocator.
        let _ = measure(|_| async {
            let _ = upstream.attempt(&0, &timeouts).await;
        })
        .await;
        let (direct, direct_p99) = measure(|_| async {
            let _ = std::hint::black_box(upstream.attempt(&0, &timeouts).await);
        })
        .await;
        println!("\n## Failover engine overhead per request (same process, no I/O)\n");
        println!("| route | median µs/call | p99 µs/call | engine adds (median) |");
        println!("|---|---:|---:|---:|");
        println!("| the target called directly (baseline) | {direct:.3} | {direct_p99:.3} | — |");
        for (name, priorities) in [
            ("1 target (direct provider/model)", vec![0]),
            ("3 targets, distinct priorities", vec![0, 1, 2]),
            ("3 targets, one priority, weighted", vec![0, 0, 0]),
        ] {
            let route = route(&priorities);
            let (median, p99) = measure(|seed| {
                let route = &route;
                let upstream = &upstream;
                async move {
                    let request = Request {
                        stream: false,
                        seed,
                        exclude: Vec::new(),
                        costs: Vec::new(),
                    };
                    let _ = std::hint::black_box(serve(upstream, route, &request).await);
                }
            })
            .await;
            println!(
                "| {name} | {median:.3} | {p99:.3} | {:.3} µs |",
                median - direct
            );
        }
    });
}
