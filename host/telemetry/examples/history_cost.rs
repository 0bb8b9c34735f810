//! What [`History::request`] costs per finished request: run with
//! `cargo run --release -p aigw-telemetry --example history_cost`. Measures a served request
//! (atomics only) and a failed-over one (the slot's mutex too), on one thread and on four.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_telemetry::{AttemptObservation, History, RequestObservation};

const CALLS: u32 = 2_000_000;

fn observation<'a>(status: u16, attempts: &'a [AttemptObservation<'a>]) -> RequestObservation<'a> {
    RequestObservation {
        route: "chat",
        provider: Some("openai"),
        target: attempts.last().map(|a| a.target),
        status,
        stream: false,
        key: Some("key_1"),
        duration: Duration::from_millis(42),
        time_to_first_chunk: None,
        continuations: 0,
        cache: None,
        attempts,
        input_tokens: Some(10),
        output_tokens: Some(20),
        spend_micro_usd: 3,
        error_type: None,
    }
}

fn per_call(history: &History, request: &RequestObservation<'_>) -> f64 {
    let started = Instant::now();
    for _ in 0..CALLS {
        history.request(std::hint::black_box(request));
    }
    started.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

fn main() {
    let history = Arc::new(History::default());
    let attempt = |target, outcome| AttemptObservation {
        target,
        kind: "first",
        outcome,
        failure_class: None,
        duration: Duration::from_millis(1),
    };
    let served = [attempt("openai/gpt-4o", "served")];
    let failed_over = [
        attempt("openai/gpt-4o", "failed"),
        attempt("groq/llama", "served"),
    ];
    per_call(&history, &observation(200, &served));
    println!(
        "served, one thread: {:.1} ns/request",
        per_call(&history, &observation(200, &served))
    );
    println!(
        "failed over, one thread: {:.1} ns/request",
        per_call(&history, &observation(200, &failed_over))
    );
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let history = Arc::clone(&history);
            std::thread::spawn(move || {
                let served = [AttemptObservation {
                    target: "openai/gpt-4o",
                    kind: "first",
                    outcome: "served",
                    failure_class: None,
                    duration: Duration::from_millis(1),
                }];
                per_call(&history, &observation(200, &served))
            })
        })
        .collect();
    let costs: Vec<f64> = threads
        .into_iter()
        .filter_map(|thread| thread.join().ok())
        .collect();
    println!("served, four threads: {costs:.1?} ns/request each");
    println!("snapshot of a full bucket set: {:?}", {
        let started = Instant::now();
        let snapshot = history.snapshot();
        (started.elapsed(), snapshot.buckets.len())
    });
}
