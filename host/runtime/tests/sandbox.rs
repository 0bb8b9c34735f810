//! The sandbox's promises, proven with real components built from `plugins/`: a plugin that
//! traps, loops or exhausts memory fails that one call with a classified fault, its instance is
//! discarded, and the next call is served by a fresh one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_runtime::{
    CallError, FaultKind, HttpResponse, Limits, Plugin, PluginTarget, Runtime, Step,
};
use aigw_tests::paths;

async fn load(path: &str, limits: Limits) -> Arc<Plugin> {
    let runtime = Runtime::new(limits).unwrap();
    Plugin::load(&runtime, &paths::built(path)).await.unwrap()
}

fn limits() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(200),
        memory_bytes: 32 << 20,
        warm_instances: 2,
        max_instances: 50,
        ..Limits::default()
    }
}

const REQUEST: &str = r#"{"model":"alias","messages":[{"role":"user","content":"hi"}]}"#;

fn target(model: &str) -> PluginTarget {
    PluginTarget::new("http://127.0.0.1:9/v1", model)
}

fn fault_kind(result: Result<impl std::fmt::Debug, CallError>) -> (FaultKind, String) {
    match result {
        Err(CallError::Fault(f)) => (f.kind, f.message),
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[tokio::test]
async fn a_trapping_plugin_fails_one_call_and_a_fresh_instance_serves_the_next() {
    let plugin = load("test-plugins/hostile.wasm", limits()).await;
    assert_eq!(plugin.warm_instances(), 2);

    let (kind, message) = fault_kind(plugin.encode(&target("trap"), REQUEST).await);
    assert_eq!(kind, FaultKind::Trap);
    assert!(
        message.contains("trap requested"),
        "guest panic message kept: {message}"
    );
    // The trapped instance was replaced by a fresh one: the pool is whole.
    assert_eq!(plugin.warm_instances(), 2);

    // Cycle through every pooled instance: had the trapped one been returned, wasmtime would
    // refuse to enter it and one of these calls would fault.
    for _ in 0..4 {
        let request = plugin.encode(&target("ok"), REQUEST).await.unwrap();
        assert_eq!(request.url, "http://127.0.0.1:9/v1/chat/completions");
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["model"], "ok");
    }
    assert_eq!(plugin.warm_instances(), 2);
}

#[tokio::test]
async fn an_endless_loop_is_interrupted_at_the_call_deadline() {
    let plugin = load("test-plugins/hostile.wasm", limits()).await;
    let started = Instant::now();
    let (kind, message) = fault_kind(plugin.encode(&target("loop"), REQUEST).await);
    assert_eq!(kind, FaultKind::Deadline);
    assert!(message.contains("200 ms"), "{message}");
    // The deadline never fires early.
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(plugin.encode(&target("ok"), REQUEST).await.is_ok());
}

#[tokio::test]
async fn a_memory_bomb_stops_at_the_cap() {
    let plugin = load("test-plugins/hostile.wasm", limits()).await;
    let (kind, message) = fault_kind(plugin.encode(&target("memory"), REQUEST).await);
    assert_eq!(kind, FaultKind::MemoryLimit);
    assert!(message.contains(&(32u64 << 20).to_string()), "{message}");
    assert!(plugin.encode(&target("ok"), REQUEST).await.is_ok());
}

#[tokio::test]
async fn a_loop_does_not_block_other_calls_on_the_same_plugin() {
    // The epoch callback yields to tokio on every tick, so a spinning guest cannot starve a
    // worker thread: a concurrent call on a current-thread runtime still completes.
    let plugin = load("test-plugins/hostile.wasm", limits()).await;
    let spinning = {
        let plugin = Arc::clone(&plugin);
        tokio::spawn(async move { plugin.encode(&target("loop"), REQUEST).await })
    };
    let ok = plugin.encode(&target("ok"), REQUEST).await;
    assert!(ok.is_ok());
    let (kind, _) = fault_kind(spinning.await.unwrap());
    assert_eq!(kind, FaultKind::Deadline);
}

#[tokio::test]
async fn faults_in_decode_and_in_stream_decoders_are_classified_too() {
    let plugin = load("test-plugins/hostile.wasm", limits()).await;
    let response = HttpResponse {
        status: 200,
        headers: vec![],
        body: b"{}".to_vec(),
    };
    let (kind, _) = fault_kind(plugin.decode(&target("trap-decode"), response).await);
    assert_eq!(kind, FaultKind::Trap);

    let mut decoder = plugin
        .stream_decoder(&target("trap-stream"), sse_head())
        .await
        .unwrap();
    let (kind, _) = fault_kind(decoder.feed(b"data: {}\n\n").await);
    assert_eq!(kind, FaultKind::Trap);
    // The decoder's instance is gone; using it again is a fault, never a panic.
    let (kind, _) = fault_kind(decoder.finish().await);
    assert_eq!(kind, FaultKind::Lost);
}

#[tokio::test]
async fn groq_describes_itself_and_translates_a_round_trip() {
    let plugin = load("plugins/groq.wasm", Limits::default()).await;
    let d = plugin.descriptor();
    assert_eq!(d.name, "groq");
    assert_eq!(d.default_base_url, "https://api.groq.com/openai/v1");
    assert_eq!(
        d.credential,
        aigw_egress::Placement::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into()
        }
    );
    assert!(d.credential_required);

    let t = PluginTarget::new("https://api.groq.com/openai/v1", "llama-3.1-8b-instant");
    let request = plugin.encode(&t, REQUEST).await.unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "https://api.groq.com/openai/v1/chat/completions"
    );
    assert!(
        request
            .headers
            .iter()
            .all(|(name, _)| !name.eq_ignore_ascii_case("authorization")),
        "plugins never see or set the credential"
    );

    let body = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"llama-3.1-8b-instant","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
    let step = plugin
        .decode(
            &t,
            HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.as_bytes().to_vec(),
            },
        )
        .await
        .unwrap();
    let Step::Done(completion) = step else {
        panic!("expected a complete answer")
    };
    assert_eq!(completion.usage.unwrap().total_tokens, 6);
    let json: serde_json::Value = serde_json::from_str(&completion.json).unwrap();
    assert_eq!(json["choices"][0]["message"]["content"], "hello");

    let limited = plugin
        .decode(
            &t,
            HttpResponse {
                status: 429,
                headers: vec![("retry-after".into(), "7".into())],
                body: br#"{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}"#.to_vec(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        limited,
        CallError::Failure(aigw_runtime::Failure::RateLimited {
            retry_after_seconds: Some(7),
            message: "Rate limit reached".into()
        })
    );
}

#[tokio::test]
async fn many_concurrent_calls_beyond_the_warm_pool_all_succeed() {
    let plugin = load("plugins/groq.wasm", limits()).await;
    let t = target("llama");
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let plugin = Arc::clone(&plugin);
            let t = t.clone();
            tokio::spawn(async move { plugin.encode(&t, REQUEST).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_ok());
    }
    // Extra instances made for the burst were dropped; the pool is capped at its size.
    assert_eq!(plugin.warm_instances(), 2);
}

#[tokio::test]
async fn a_file_that_is_not_a_component_is_refused_with_its_path() {
    let runtime = Runtime::new(limits()).unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("aigw-notwasm");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.wasm");
    std::fs::write(&file, b"not wasm").unwrap();
    let error = Plugin::load(&runtime, &file).await.err().unwrap();
    assert_eq!(error.label, file.display().to_string());
    assert!(
        error.message.contains("not a WebAssembly component"),
        "{}",
        error.message
    );
    let missing = Plugin::load(&runtime, &dir.join("missing.wasm"))
        .await
        .err()
        .unwrap();
    assert!(
        missing.message.contains("cannot read"),
        "{}",
        missing.message
    );
}

/// The head of a 200 server-sent event stream.
fn sse_head() -> aigw_runtime::ResponseHead {
    aigw_runtime::ResponseHead {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
    }
}
