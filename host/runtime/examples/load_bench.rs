//! Plugin load cost, measured (not asserted): how long loading each bundled plugin takes
//! (inspect, compile, describe, warm pool) without a compile cache, with a cold one (compile and
//! write the entry) and with a warm one (read the entry back), and, per guest language, what a
//! fresh instance and a warm call cost.
//!
//! `cargo run --release -p aigw-runtime --example load_bench [EXTRA.wasm …]`: the extra
//! components (Python or JS builds of the example plugins, say) are measured beside the bundled
//! ones. The cache directory is a fresh one under the system temp dir, removed at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_runtime::{
    CallContext, HttpResponse, Limits, LoadedPlugin, PluginTarget, Runtime, RuntimeOptions, load,
};

const REQUEST: &str = r#"{"model":"fast","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"What is the capital of France? Answer in one word."}],"max_tokens":64,"temperature":0.2}"#;
const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1730000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":32,"completion_tokens":2,"total_tokens":34}}"#;

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn runtime(cache: Option<&Path>) -> Arc<Runtime> {
    Runtime::configure(RuntimeOptions {
        // One runtime per plugin stays alive below; the default 1000 pool slots each would
        // reserve more address space than a process has.
        limits: Limits {
            max_instances: 100,
            ..Limits::default()
        },
        compile_cache: cache.map(Path::to_owned),
        ..RuntimeOptions::default()
    })
    .unwrap()
}

async fn timed_load(runtime: &Arc<Runtime>, path: &Path) -> (Duration, LoadedPlugin) {
    let bytes = std::fs::read(path).unwrap();
    let label = path.display().to_string();
    let t = Instant::now();
    let plugin = load(runtime, &label, bytes)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (t.elapsed(), plugin)
}

/// The language a component was written in, from its file name (`-python`, `-js`) or Rust.
fn language(path: &Path) -> &'static str {
    let stem = path.file_stem().unwrap().to_string_lossy();
    if stem.ends_with("-python") {
        "python"
    } else if stem.ends_with("-js") {
        "js"
    } else {
        "rust"
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    for extra in std::env::args().skip(1).map(PathBuf::from) {
        if extra.is_file() {
            files.push(extra);
        } else {
            eprintln!("skipping {}: no such file", extra.display());
        }
    }
    let cache = std::env::temp_dir().join(format!("aigw-load-bench-{}", std::process::id()));

    println!("| plugin | size KiB | no cache ms | cold cache ms | warm cache ms |");
    println!("|---|---|---|---|---|");
    let (mut none, mut cold, mut warm) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut loaded = Vec::new();
    for path in &files {
        let (no_cache, _) = timed_load(&runtime(None), path).await;
        let (miss, _) = timed_load(&runtime(Some(&cache)), path).await;
        let hitting = runtime(Some(&cache));
        let (hit, plugin) = timed_load(&hitting, path).await;
        assert_eq!(
            hitting.cache_stats().hits,
            1,
            "{}: no cache hit",
            path.display()
        );
        none += no_cache;
        cold += miss;
        warm += hit;
        println!(
            "| {} | {} | {} | {} | {} |",
            path.file_name().unwrap().to_string_lossy(),
            plugin.facts().size_bytes / 1024,
            ms(no_cache),
            ms(miss),
            ms(hit)
        );
        loaded.push((path.clone(), plugin));
    }
    println!(
        "| **all {}** | | **{}** | **{}** | **{}** |",
        files.len(),
        ms(none),
        ms(cold),
        ms(warm)
    );
    let _ = std::fs::remove_dir_all(&cache);

    println!();
    println!("| plugin | language | fresh instance median µs | warm call median µs | call |");
    println!("|---|---|---|---|---|");
    for (path, plugin) in &loaded {
        let name = path.file_name().unwrap().to_string_lossy();
        let lang = language(path);
        let rounds = if lang == "rust" { 500 } else { 50 };
        let mut fresh = Vec::with_capacity(rounds);
        let mut calls = Vec::with_capacity(rounds * 4);
        let what = match plugin {
            LoadedPlugin::Provider(p) => {
                // A model every bundled provider accepts (Replicate wants `owner/name`).
                let target = PluginTarget::new(&p.descriptor().default_base_url, "acme/m");
                for _ in 0..rounds {
                    let t = Instant::now();
                    p.instantiate_cold().await.unwrap();
                    fresh.push(t.elapsed());
                }
                for _ in 0..rounds * 4 {
                    let t = Instant::now();
                    let _ = p.encode(&target, REQUEST).await;
                    let response = HttpResponse {
                        status: 200,
                        headers: vec![("content-type".into(), "application/json".into())],
                        body: ANSWER.as_bytes().to_vec(),
                    };
                    let _ = p.decode(&target, response).await;
                    calls.push(t.elapsed());
                }
                "encode + decode"
            }
            LoadedPlugin::Tool(t) => {
                let tool = t.descriptor().tools[0].name.clone();
                let context = CallContext::default();
                for _ in 0..rounds {
                    let start = Instant::now();
                    t.instantiate_cold().await.unwrap();
                    fresh.push(start.elapsed());
                }
                for _ in 0..rounds * 4 {
                    let start = Instant::now();
                    // No egress here: the call runs the guest up to its first send, which the
                    // host refuses; the cost of entering and leaving the guest, not of a fetch.
                    let _ = t.invoke(&context, &tool, r#"{"city":"Paris"}"#).await;
                    calls.push(start.elapsed());
                }
                "invoke to its first send (refused)"
            }
        };
        println!(
            "| {name} | {lang} | {} | {} | {what} |",
            us(median(fresh)),
            us(median(calls))
        );
    }

    // What the calls counter adds to each call: one relaxed add on a shared atomic, here
    // uncontended (contended across cores it is a cache-line transfer, tens of ns).
    let counter = std::sync::atomic::AtomicU64::new(0);
    let rounds = 10_000_000u32;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(&counter).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    println!();
    println!(
        "calls counter: {:.2} ns per count ({} counts)",
        t.elapsed().as_secs_f64() * 1e9 / f64::from(rounds),
        counter.load(std::sync::atomic::Ordering::Relaxed)
    );
}
