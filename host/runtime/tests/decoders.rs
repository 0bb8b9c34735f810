//! Stream decoders share instances: an open stream holds a slot on a host instance, not an
//! instance of its own, so open streams cannot take every instance the gateway may make; a
//! fault loses only the decoders of the faulting host; the gateway's own limit is a fault of
//! its own kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aigw_runtime::{
    CallError, DECODERS_PER_INSTANCE, FaultKind, Limits, Plugin, PluginTarget, ResponseHead,
    Runtime, StreamDecoder,
};
use aigw_tests::paths;

const REQUEST: &str = r#"{"model":"alias","messages":[{"role":"user","content":"hi"}]}"#;

/// A runtime that may make only `max_instances` instances, two of them warm.
async fn load(path: &str, max_instances: u32) -> Arc<Plugin> {
    load_with_deadline(path, max_instances, Duration::from_millis(500)).await
}

async fn load_with_deadline(path: &str, max_instances: u32, call_timeout: Duration) -> Arc<Plugin> {
    let runtime = Runtime::new(Limits {
        call_timeout,
        memory_bytes: 32 << 20,
        warm_instances: 2,
        max_instances,
        ..Limits::default()
    })
    .unwrap();
    Plugin::load(&runtime, &paths::built(path)).await.unwrap()
}

fn target(model: &str) -> PluginTarget {
    PluginTarget::new("http://127.0.0.1:9/v1", model)
}

fn sse_head() -> ResponseHead {
    ResponseHead {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
    }
}

fn chunk(text: &str) -> Vec<u8> {
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\
         \"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n"
    )
    .into_bytes()
}

async fn open(plugin: &Arc<Plugin>, model: &str, n: usize) -> Vec<StreamDecoder> {
    let mut decoders = Vec::new();
    for _ in 0..n {
        decoders.push(
            plugin
                .stream_decoder(&target(model), sse_head())
                .await
                .unwrap(),
        );
    }
    decoders
}

#[tokio::test]
async fn two_hundred_open_streams_fit_in_a_runtime_of_ten_instances() {
    let plugin = load("plugins/groq.wasm", 10).await;
    let mut decoders = open(&plugin, "llama", 200).await;
    let hosts = 200usize.div_ceil(DECODERS_PER_INSTANCE);
    assert_eq!(plugin.stream_decoders(), (200, hosts));
    // Every stream is fed, in turns, each decoder keeping its own state: a piece split in two
    // completes only in the decoder that got both halves.
    let piece = chunk("hi");
    let (first, second) = piece.split_at(20);
    for decoder in &mut decoders {
        assert!(decoder.feed(first).await.unwrap().is_empty());
    }
    for decoder in &mut decoders {
        let chunks = decoder.feed(second).await.unwrap();
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].json.contains("\"hi\""));
    }
    // Other calls still get instances while the streams are open.
    plugin.encode(&target("llama"), REQUEST).await.unwrap();
    for decoder in decoders {
        decoder.close().await;
    }
    assert_eq!(plugin.stream_decoders(), (0, 0));
    // The hosts' instances went back to the warm pool (capped at its size).
    assert_eq!(plugin.warm_instances(), 2);
}

#[tokio::test]
async fn streams_are_spread_over_instances_before_one_hosts_two() {
    let plugin = load("plugins/groq.wasm", 10).await;
    let spread = plugin.stream_decoder_spread();
    // At most the warm instances (2 here), at least one.
    assert!((1..=2).contains(&spread), "{spread}");
    let mut decoders = open(&plugin, "llama", spread).await;
    assert_eq!(plugin.stream_decoders(), (spread, spread));
    // The next ones go to the least loaded host: no new instance until every host is full.
    decoders.extend(open(&plugin, "llama", spread).await);
    assert_eq!(plugin.stream_decoders(), (2 * spread, spread));
    for decoder in decoders {
        decoder.close().await;
    }
    assert_eq!(plugin.stream_decoders(), (0, 0));
}

/// Opens `n` decoders on a thread that is lane `lane` (a server event loop's own thread).
fn open_on_lane(plugin: &Arc<Plugin>, lane: usize, n: usize) -> Vec<StreamDecoder> {
    let plugin = Arc::clone(plugin);
    std::thread::spawn(move || {
        aigw_egress::lane::enter(lane);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(open(&plugin, "llama", n))
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn an_event_loops_streams_share_hosts_of_its_own() {
    let plugin = load("plugins/groq.wasm", 10).await;
    // One loop's streams pack onto one host (its calls run one at a time anyway)...
    let mut decoders = open_on_lane(&plugin, 0, 3);
    assert_eq!(plugin.stream_decoders(), (3, 1));
    // ...and another loop's stream goes to a host of its own, though the first has room.
    decoders.extend(open_on_lane(&plugin, 1, 1));
    assert_eq!(plugin.stream_decoders(), (4, 2));
    decoders.extend(open_on_lane(&plugin, 1, 2));
    assert_eq!(plugin.stream_decoders(), (6, 2));
    for decoder in decoders {
        decoder.close().await;
    }
    assert_eq!(plugin.stream_decoders(), (0, 0));
}

#[tokio::test]
async fn a_quiet_gateways_stream_borrows_a_warm_instance_and_gives_it_back() {
    let plugin = load("plugins/groq.wasm", 10).await;
    let decoder = open(&plugin, "llama", 1).await.remove(0);
    assert_eq!(plugin.warm_instances(), 1);
    assert_eq!(plugin.stream_decoders(), (1, 1));
    // Dropped without close (a client that went away): freed in the background.
    drop(decoder);
    for _ in 0..100 {
        if plugin.stream_decoders() == (0, 0) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(plugin.stream_decoders(), (0, 0));
    assert_eq!(plugin.warm_instances(), 2);
}

#[tokio::test]
async fn a_fault_loses_the_decoders_of_its_host_and_no_others() {
    let plugin = load("test-plugins/hostile.wasm", 10).await;
    // Full hosts of ordinary decoders (as many as decoders are spread over), then a host
    // shared by a trapping decoder and others.
    let spread = plugin.stream_decoder_spread();
    let mut others = open(&plugin, "fine", spread * DECODERS_PER_INSTANCE).await;
    let mut trapping = open(&plugin, "trap-stream", 1).await.remove(0);
    let mut neighbours = open(&plugin, "fine", 3).await;
    assert_eq!(
        plugin.stream_decoders(),
        (spread * DECODERS_PER_INSTANCE + 4, spread + 1)
    );

    let fault = match trapping.feed(&chunk("x")).await {
        Err(CallError::Fault(f)) => f,
        other => panic!("expected a trap, got {other:?}"),
    };
    assert_eq!(fault.kind, FaultKind::Trap);
    for neighbour in &mut neighbours {
        match neighbour.feed(&chunk("x")).await {
            Err(CallError::Fault(f)) => assert_eq!(f.kind, FaultKind::Lost, "{}", f.message),
            other => panic!("expected the host to be lost, got {other:?}"),
        }
    }
    for decoder in &mut others {
        assert_eq!(decoder.feed(&chunk("x")).await.unwrap().len(), 1);
    }
    // A new stream goes to a healthy host, never to the lost one.
    let mut fresh = open(&plugin, "fine", 1).await.remove(0);
    assert_eq!(fresh.feed(&chunk("y")).await.unwrap().len(), 1);
    for decoder in others
        .into_iter()
        .chain(neighbours)
        .chain([trapping, fresh])
    {
        decoder.close().await;
    }
    assert_eq!(plugin.stream_decoders(), (0, 0));
}

#[tokio::test]
async fn the_gateways_instance_limit_is_a_capacity_fault() {
    // Two instances at most: two full hosts, then no instance for a third.
    let plugin = load("plugins/groq.wasm", 2).await;
    let decoders = open(&plugin, "llama", 2 * DECODERS_PER_INSTANCE).await;
    let error = plugin
        .stream_decoder(&target("llama"), sse_head())
        .await
        .err()
        .unwrap();
    match error {
        CallError::Fault(f) => {
            assert_eq!(f.kind, FaultKind::Capacity, "{}", f.message);
            assert!(f.kind.is_gateways());
            assert!(f.message.contains("plugins.max_instances"), "{}", f.message);
        }
        other => panic!("expected a capacity fault, got {other:?}"),
    }
    for decoder in decoders {
        decoder.close().await;
    }
    // Room again once streams end.
    open(&plugin, "llama", 1).await.remove(0).close().await;
}

#[tokio::test]
async fn a_line_without_end_fails_its_own_stream_before_the_shared_instance_fills() {
    let plugin = load("plugins/groq.wasm", 10).await;
    // One decoder per host of the spread, then one more: it shares the first one's host.
    let spread = plugin.stream_decoder_spread();
    let mut decoders = open(&plugin, "llama", spread + 1).await;
    let piece = vec![b'x'; 64 << 10];
    let mut failure = None;
    for _ in 0..=(aigw_runtime::MAX_STREAM_LINE / piece.len()) {
        if let Err(e) = decoders[0].feed(&piece).await {
            failure = Some(e);
            break;
        }
    }
    match failure {
        Some(CallError::Failure(aigw_runtime::Failure::BadResponse(message))) => {
            assert!(message.contains("stream line longer than"), "{message}")
        }
        other => panic!("expected a bad response, got {other:?}"),
    }
    // Its neighbour on the same instance is unharmed.
    assert_eq!(decoders[spread].feed(&chunk("ok")).await.unwrap().len(), 1);
    for decoder in decoders {
        decoder.close().await;
    }
}

#[tokio::test]
async fn a_call_abandoned_mid_way_loses_its_host_as_the_gateways_fault() {
    // A deadline far beyond the caller's patience: only the caller ends the spinning call.
    let plugin = load_with_deadline("test-plugins/hostile.wasm", 10, Duration::from_secs(30)).await;
    let mut spinning = open(&plugin, "loop-stream", 1).await.remove(0);
    // One decoder on each other host of the spread, then the next one shares the spinning
    // decoder's host (the least loaded, first made).
    let spread = plugin.stream_decoder_spread();
    let mut elsewhere = open(&plugin, "fine", spread - 1).await;
    let mut neighbours = open(&plugin, "fine", 1).await;
    assert_eq!(plugin.stream_decoders(), (spread + 1, spread));
    // The spinning feed yields at each epoch tick; the caller gives up on it (a hedge that
    // lost, a client that left), dropping the call mid-way.
    let abandoned =
        tokio::time::timeout(Duration::from_millis(100), spinning.feed(&chunk("x"))).await;
    assert!(
        abandoned.is_err(),
        "the spinning feed returned: {abandoned:?}"
    );
    // wasmtime would refuse to re-enter the instance; the neighbours hear that their host is
    // gone, a fault of the gateway's, not a trap of theirs.
    for neighbour in &mut neighbours {
        match neighbour.feed(&chunk("x")).await {
            Err(CallError::Fault(f)) => assert_eq!(f.kind, FaultKind::Lost, "{}", f.message),
            other => panic!("expected the host to be lost, got {other:?}"),
        }
    }
    // Decoders on the other hosts are unharmed.
    for decoder in &mut elsewhere {
        assert_eq!(decoder.feed(&chunk("x")).await.unwrap().len(), 1);
    }
    let mut fresh = open(&plugin, "fine", 1).await.remove(0);
    assert_eq!(fresh.feed(&chunk("y")).await.unwrap().len(), 1);
    for decoder in neighbours
        .into_iter()
        .chain(elsewhere)
        .chain([spinning, fresh])
    {
        decoder.close().await;
    }
    assert_eq!(plugin.stream_decoders(), (0, 0));
}
