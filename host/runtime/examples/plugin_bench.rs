//! Plugin call overhead, measured (not asserted): `cargo xtask bench` runs it, or
//! `cargo run --release -p aigw-runtime --example plugin_bench [ITERATIONS]`.
//!
//! For the groq plugin it reports the median and p99 of a warm `encode` + `decode` of a typical
//! request, of one streamed chunk through a stream decoder, and of creating a fresh instance,
//! next to a native baseline run in the same process: the same JSON work (parse the request, set
//! the model, serialise; parse the answer) done by serde_json in the host. The ratio is what the
//! wasm boundary and sandbox cost over doing the translation natively.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aigw_runtime::{HttpResponse, Limits, Plugin, PluginTarget, Runtime};

const REQUEST: &str = r#"{"model":"fast","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"What is the capital of France? Answer in one word."}],"max_tokens":64,"temperature":0.2}"#;
const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1730000000,"model":"llama-3.1-8b-instant","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":32,"completion_tokens":2,"total_tokens":34,"queue_time":0.01,"prompt_time":0.002,"completion_time":0.001,"total_time":0.003},"x_groq":{"id":"req_1"}}"#;
const CHUNK: &str = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1730000000,\"model\":\"llama-3.1-8b-instant\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" Paris\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";

struct Stats {
    median: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
    }
}

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

fn native_round_trip() {
    let mut request: serde_json::Value = serde_json::from_str(REQUEST).unwrap();
    request["model"] = serde_json::Value::String("llama-3.1-8b-instant".into());
    let body = serde_json::to_vec(&request).unwrap();
    std::hint::black_box(body);
    let answer: serde_json::Value = serde_json::from_str(ANSWER).unwrap();
    std::hint::black_box(answer["usage"]["total_tokens"].as_u64());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins/groq.wasm");
    let runtime = Runtime::new(Limits::default()).unwrap();
    let started = Instant::now();
    let plugin = Plugin::load(&runtime, &path)
        .await
        .unwrap_or_else(|e| panic!("{e} (run `cargo xtask plugins` first)"));
    let load = started.elapsed();
    let target = PluginTarget::new("https://api.groq.com/openai/v1", "llama-3.1-8b-instant");
    let response = || HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: ANSWER.as_bytes().to_vec(),
    };

    // Warm up every path once.
    for _ in 0..200 {
        plugin.encode(&target, REQUEST).await.unwrap();
        plugin.decode(&target, response()).await.unwrap();
        native_round_trip();
    }

    let mut wasm = Vec::with_capacity(iterations);
    let mut native = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        native_round_trip();
        native.push(t.elapsed());
        let t = Instant::now();
        plugin.encode(&target, REQUEST).await.unwrap();
        plugin.decode(&target, response()).await.unwrap();
        wasm.push(t.elapsed());
    }

    let mut enc = Vec::with_capacity(iterations);
    let mut dec = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        plugin.encode(&target, REQUEST).await.unwrap();
        enc.push(t.elapsed());
        let r = response();
        let t = Instant::now();
        plugin.decode(&target, r).await.unwrap();
        dec.push(t.elapsed());
    }
    let (enc, dec) = (stats(enc), stats(dec));
    println!(
        "encode alone: median {} µs, p99 {} µs; decode alone: median {} µs, p99 {} µs",
        us(enc.median),
        us(enc.p99),
        us(dec.median),
        us(dec.p99)
    );

    let mut decoder = plugin.stream_decoder(&target, sse_head()).await.unwrap();
    let mut chunk = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let out = decoder.feed(CHUNK.as_bytes()).await.unwrap();
        chunk.push(t.elapsed());
        assert_eq!(out.len(), 1);
    }
    decoder.close().await;

    let mut cold = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        plugin.instantiate_cold().await.unwrap();
        cold.push(t.elapsed());
    }

    let (wasm, native, chunk, cold) = (stats(wasm), stats(native), stats(chunk), stats(cold));
    println!("plugin call overhead: groq plugin, {iterations} iterations, one thread");
    println!();
    println!("| measurement | median µs | p99 µs |");
    println!("|---|---|---|");
    println!(
        "| encode + decode, warm instance (wasm) | {} | {} |",
        us(wasm.median),
        us(wasm.p99)
    );
    println!(
        "| same JSON work natively (baseline, serde_json) | {} | {} |",
        us(native.median),
        us(native.p99)
    );
    println!(
        "| one stream chunk through feed (wasm) | {} | {} |",
        us(chunk.median),
        us(chunk.p99)
    );
    println!(
        "| fresh instance (instantiate + drop) | {} | {} |",
        us(cold.median),
        us(cold.p99)
    );
    println!();
    println!(
        "wasm / native ratio (median): {:.1}x; fresh instance / warm call: {:.1}x; load + compile + warm: {:.1} ms",
        wasm.median.as_secs_f64() / native.median.as_secs_f64(),
        cold.median.as_secs_f64() / wasm.median.as_secs_f64(),
        load.as_secs_f64() * 1e3
    );

    per_provider(&runtime, iterations / 4).await;
}

/// One provider's answer and stream chunk in its own wire format.
struct Fixture {
    plugin: &'static str,
    model: &'static str,
    answer: &'static str,
    chunk: &'static str,
}

const OPENAI_CHUNK: &str = CHUNK;
const FIXTURES: [Fixture; 8] = [
    Fixture {
        plugin: "groq",
        model: "llama-3.1-8b-instant",
        answer: ANSWER,
        chunk: OPENAI_CHUNK,
    },
    Fixture {
        plugin: "openai-compatible",
        model: "llama3.2",
        answer: ANSWER,
        chunk: OPENAI_CHUNK,
    },
    Fixture {
        plugin: "openrouter",
        model: "meta-llama/llama-3.1-8b-instruct",
        answer: ANSWER,
        chunk: OPENAI_CHUNK,
    },
    Fixture {
        plugin: "cerebras",
        model: "llama3.1-8b",
        answer: ANSWER,
        chunk: OPENAI_CHUNK,
    },
    Fixture {
        plugin: "novita",
        model: "meta-llama/llama-3.1-8b-instruct",
        answer: ANSWER,
        chunk: OPENAI_CHUNK,
    },
    Fixture {
        plugin: "huggingface",
        model: "meta-llama/Llama-3.1-8B-Instruct",
        answer: ANSWER,
        chunk: OPENAI_CHUNK,
    },
    Fixture {
        plugin: "gemini",
        model: "gemini-2.5-flash",
        answer: r#"{"candidates":[{"content":{"parts":[{"text":"Paris."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":32,"candidatesTokenCount":2,"totalTokenCount":34},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
        chunk: "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" Paris\"}],\"role\":\"model\"},\"index\":0}],\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
    },
    Fixture {
        plugin: "replicate",
        model: "meta/meta-llama-3-8b-instruct",
        answer: r#"{"id":"p1","model":"meta/meta-llama-3-8b-instruct","status":"succeeded","output":["Paris","."],"error":null,"metrics":{"input_token_count":32,"output_token_count":2},"created_at":"2026-11-24T10:00:00.000Z","urls":{"get":"https://api.replicate.com/v1/predictions/p1"}}"#,
        chunk: "event: output\nid: 1\ndata:  Paris\n\n",
    },
];

/// Translation cost of every provider plugin: encode + decode of the same request and a
/// one-word answer in the provider's own format, and one stream chunk.
async fn per_provider(runtime: &std::sync::Arc<Runtime>, iterations: usize) {
    println!();
    println!("translation cost per provider plugin ({iterations} iterations each)");
    println!();
    println!("| plugin | encode + decode median µs | p99 µs | stream chunk median µs | p99 µs |");
    println!("|---|---|---|---|---|");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist/plugins");
    for f in &FIXTURES {
        let plugin = Plugin::load(runtime, &dir.join(format!("{}.wasm", f.plugin)))
            .await
            .unwrap_or_else(|e| panic!("{e} (run `cargo xtask plugins` first)"));
        let base = plugin.descriptor().default_base_url.clone();
        let target = PluginTarget::new(&base, f.model);
        let response = || HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: f.answer.as_bytes().to_vec(),
        };
        let mut calls = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            plugin.encode(&target, REQUEST).await.unwrap();
            plugin.decode(&target, response()).await.unwrap();
            calls.push(t.elapsed());
        }
        let mut decoder = plugin.stream_decoder(&target, sse_head()).await.unwrap();
        let mut chunks = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            let out = decoder.feed(f.chunk.as_bytes()).await.unwrap();
            chunks.push(t.elapsed());
            assert!(!out.is_empty(), "{}: the chunk produced nothing", f.plugin);
        }
        decoder.close().await;
        let (calls, chunks) = (stats(calls), stats(chunks));
        println!(
            "| {} | {} | {} | {} | {} |",
            f.plugin,
            us(calls.median),
            us(calls.p99),
            us(chunks.median),
            us(chunks.p99)
        );
    }
}

/// The head of a 200 server-sent event stream.
fn sse_head() -> aigw_runtime::ResponseHead {
    aigw_runtime::ResponseHead {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
    }
}
