//! What admission and accounting cost a request on the fast path: `admit` + `finish` for a key
//! with requests, tokens and concurrency limits (large enough that the store is asked only when
//! a lease runs low, in the background), against a key with no limit. Run with
//! `cargo run -p aigw-access --example limiter_bench [requests]` (add `--release` for figures
//! comparable with `cargo xtask bench`).

use std::sync::Arc;
use std::time::Instant;

use aigw_access::{Key, KeySpec, Limiter, LimiterOptions};
use aigw_memory::{Store, StoreOptions};

fn key(id: &str, spec: KeySpec) -> Key {
    Key {
        id: id.into(),
        hint: "sk-aigw-…bench".into(),
        spec,
        created_at: 0,
        updated_at: 0,
        revoked_at: None,
        team: None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requests: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    // Removed when the bench ends.
    let dir = tempfile::Builder::new()
        .prefix("aigw-limiter-bench-")
        .tempdir()?;
    let store = Arc::new(Store::open(StoreOptions::new(dir.path().join("bench.db"))).await?);
    let limiter = Limiter::new(Arc::clone(&store), LimiterOptions::default());
    let limited = key(
        "key_limited",
        KeySpec {
            rpm_limit: Some(requests * 100),
            tpm_limit: Some(requests * 100_000),
            max_parallel_requests: Some(64),
            max_budget: Some(1e9),
            ..KeySpec::default()
        },
    );
    // Leases of 1% of the limit: a background refill every ~0.5% of the run.
    let small_slices = Limiter::new(
        Arc::clone(&store),
        LimiterOptions {
            lease_percent: 1,
            ..LimiterOptions::default()
        },
    );
    let tight = key(
        "key_tight",
        KeySpec {
            rpm_limit: Some(requests * 2),
            tpm_limit: Some(requests * 200),
            ..KeySpec::default()
        },
    );
    let open = key("key_open", KeySpec::default());
    for (name, limiter, key) in [
        ("no limits", &limiter, &open),
        ("rpm+tpm+parallel+budget", &limiter, &limited),
        ("rpm+tpm, 1% leases", &small_slices, &tight),
    ] {
        // Warm: the first lease of each window is a store write the client waits for.
        limiter.admit(key).await?.finish(100, 10);
        let started = Instant::now();
        for _ in 0..requests {
            let ticket = limiter.admit(key).await?;
            ticket.finish(100, 10);
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / requests as f64;
        println!("{name}: {per:.3} µs per admit + finish ({requests} requests)");
    }
    println!("store writes: {:?}", store.stats());
    drop((limiter, small_slices));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
