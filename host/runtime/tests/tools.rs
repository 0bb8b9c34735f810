//! Tool plugins and the per-call context, proven with the real `tool-echo` component: each call's
//! imports act for that call's caller only (grants, namespace), the context and per-call state
//! are gone when the call ends (normally or by a fault), and nothing leaves the host without a
//! grant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_memory;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aigw_egress::{Egress, Grants, Origin};
use aigw_runtime::{
    CallContext, CallError, Failure, FaultKind, Limits, MemoryEntry, MemoryFuture, MemoryItem,
    MemoryPut, MemoryScope, MemorySearch, MemorySearchHit, MemoryStore, NO_EGRESS, NO_NAMESPACE,
    NO_STORE, OutboundLimits, Plugin, Runtime, Services, ToolPlugin,
};
use aigw_tests::paths;
use fake_memory::FakeMemory;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOOL_ECHO: &str = "test-plugins/tool-echo.wasm";

/// One warm instance, so consecutive calls run on the same instance and its globals.
fn limits() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(500),
        memory_bytes: 32 << 20,
        warm_instances: 1,
        max_instances: 50,
        ..Limits::default()
    }
}

fn services(memory: Option<Arc<dyn MemoryStore>>) -> Services {
    let outbound = OutboundLimits::default();
    Services {
        egress: Some(Egress::new([outbound.connect_timeout]).unwrap()),
        outbound_limits: outbound,
        memory,
        ..Services::default()
    }
}

async fn load(services: Services) -> Arc<ToolPlugin> {
    let runtime = Runtime::with_services(limits(), services).unwrap();
    ToolPlugin::load(&runtime, &paths::built(TOOL_ECHO))
        .await
        .unwrap()
}

fn caller(namespace: Option<&str>, grants: Grants) -> CallContext {
    CallContext {
        namespace: namespace.map(Arc::from),
        key: Some(Arc::from("test-key")),
        grants,
        ..CallContext::default()
    }
}

fn failure(result: Result<String, CallError>) -> Failure {
    match result {
        Err(CallError::Failure(f)) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A loopback HTTP server answering every request with `body` after `delay`, one request per
/// connection, counting the requests it served.
struct Upstream {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start(body: &'static str, delay: Duration) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&served);
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = socket.read(&mut buf).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                    }
                    tokio::time::sleep(delay).await;
                    count.fetch_add(1, Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        Upstream { addr, served }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn grants(&self) -> Grants {
        Grants::new([Origin::of(&self.origin()).unwrap()])
    }

    fn fetch_args(&self, times: u32) -> String {
        format!(r#"{{"url":"{}/weather","times":{times}}}"#, self.origin())
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// A store that never answers.
struct SilentStore;

impl MemoryStore for SilentStore {
    fn get(
        &self,
        _: MemoryScope,
        _: Vec<String>,
        _: String,
    ) -> MemoryFuture<'_, Option<MemoryEntry>> {
        Box::pin(std::future::pending())
    }

    fn put(&self, _: MemoryScope, _: MemoryPut) -> MemoryFuture<'_, u64> {
        Box::pin(std::future::pending())
    }

    fn delete(&self, _: MemoryScope, _: Vec<String>, _: String) -> MemoryFuture<'_, bool> {
        Box::pin(std::future::pending())
    }

    fn search(&self, _: MemoryScope, _: MemorySearch) -> MemoryFuture<'_, Vec<MemorySearchHit>> {
        Box::pin(std::future::pending())
    }

    fn list_items(&self, _: MemoryScope, _: String, _: u32) -> MemoryFuture<'_, Vec<MemoryItem>> {
        Box::pin(std::future::pending())
    }

    fn append_items(
        &self,
        _: MemoryScope,
        _: String,
        _: Vec<String>,
    ) -> MemoryFuture<'_, Vec<String>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_tool_plugin_describes_its_tools_and_echoes() {
    let plugin = load(Services::default()).await;
    let names: Vec<&str> = plugin.describe().iter().map(|t| t.name.as_str()).collect();
    let tools = [
        "echo",
        "fetch",
        "remember",
        "recall",
        "stderr",
        "panic",
        "constructor-probe",
        "upstream_get",
    ];
    assert_eq!(names, tools);
    let fetch = &plugin.describe()[1];
    let schema: serde_json::Value = serde_json::from_str(&fetch.parameters_schema).unwrap();
    assert_eq!(schema["required"][0], "url");
    assert_eq!(plugin.name(), "tool-echo");
    assert_eq!(plugin.warm_instances(), 1);

    let args = r#"{"city":"Zürich"}"#;
    let answer = plugin
        .invoke(&CallContext::default(), "echo", args)
        .await
        .unwrap();
    assert_eq!(answer, args);

    // A name the plugin did not describe never reaches the guest.
    let unknown = failure(plugin.invoke(&CallContext::default(), "rm", "{}").await);
    assert_eq!(
        unknown,
        Failure::InvalidRequest("tool plugin tool-echo has no tool named \"rm\"".into())
    );
}

#[tokio::test]
async fn outbound_reaches_a_granted_origin_and_nothing_else() {
    let upstream = Upstream::start("sunny", Duration::ZERO).await;
    let plugin = load(services(None)).await;

    let answer = plugin
        .invoke(
            &caller(None, upstream.grants()),
            "fetch",
            &upstream.fetch_args(1),
        )
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["body"], "sunny");
    assert_eq!(upstream.served(), 1);

    // A listener that never accepts: a connection attempt would complete in its backlog.
    let silent = StdListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let origin = format!("http://{}", silent.local_addr().unwrap());
    let args = format!(r#"{{"url":"{origin}/steal"}}"#);
    // Granted another origin, not this one.
    let denied = failure(
        plugin
            .invoke(&caller(None, upstream.grants()), "fetch", &args)
            .await,
    );
    assert_eq!(
        denied,
        Failure::Unauthorized(format!("origin {origin} is not granted to this caller"))
    );
    let backlog = silent.accept();
    assert_eq!(
        backlog.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "nothing may leave the host for an ungranted origin"
    );
}

#[tokio::test]
async fn a_call_after_a_granted_call_has_no_grants() {
    let upstream = Upstream::start("sunny", Duration::ZERO).await;
    let plugin = load(services(None)).await;
    plugin
        .invoke(
            &caller(None, upstream.grants()),
            "fetch",
            &upstream.fetch_args(1),
        )
        .await
        .unwrap();
    // The same warm instance, the same URL, a caller without grants.
    let denied = failure(
        plugin
            .invoke(&CallContext::default(), "fetch", &upstream.fetch_args(1))
            .await,
    );
    assert_eq!(
        denied,
        Failure::Unauthorized(format!(
            "origin {} is not granted to this caller",
            upstream.origin()
        ))
    );
    assert_eq!(upstream.served(), 1);
}

#[tokio::test]
async fn sends_are_capped_per_call_and_the_count_starts_again_with_each_call() {
    let upstream = Upstream::start("ok", Duration::ZERO).await;
    let plugin = load(services(None)).await;
    let limit = OutboundLimits::default().sends_per_call;
    let over = failure(
        plugin
            .invoke(
                &caller(None, upstream.grants()),
                "fetch",
                &upstream.fetch_args(limit + 1),
            )
            .await,
    );
    assert_eq!(
        over,
        Failure::InvalidRequest(format!("outbound: more than {limit} sends in one call"))
    );
    assert_eq!(upstream.served(), limit as usize);
    plugin
        .invoke(
            &caller(None, upstream.grants()),
            "fetch",
            &upstream.fetch_args(limit),
        )
        .await
        .unwrap();
    assert_eq!(upstream.served(), 2 * limit as usize);
}

#[tokio::test]
async fn a_response_body_over_the_cap_is_a_bad_response() {
    let upstream = Upstream::start("far too long", Duration::ZERO).await;
    let mut services = services(None);
    services.outbound_limits.response_body_bytes = 4;
    let plugin = load(services).await;
    let answer = failure(
        plugin
            .invoke(
                &caller(None, upstream.grants()),
                "fetch",
                &upstream.fetch_args(1),
            )
            .await,
    );
    assert_eq!(
        answer,
        Failure::BadResponse(
            "outbound: response body is over the limit: answer larger than 4 bytes".into()
        )
    );
}

#[tokio::test]
async fn waiting_on_an_upstream_does_not_count_against_the_call_deadline() {
    // The upstream takes longer than the whole call deadline (500 ms): the guest's own work is
    // what the deadline bounds, the send has its own timeout.
    let upstream = Upstream::start("late", Duration::from_millis(700)).await;
    let plugin = load(services(None)).await;
    let answer = plugin
        .invoke(
            &caller(None, upstream.grants()),
            "fetch",
            &upstream.fetch_args(1),
        )
        .await
        .unwrap();
    assert!(answer.contains("late"), "{answer}");
}

#[tokio::test]
async fn without_an_egress_outbound_fails_and_says_why() {
    let plugin = load(Services::default()).await;
    let answer = failure(
        plugin
            .invoke(
                &caller(None, Grants::none()),
                "fetch",
                r#"{"url":"http://127.0.0.1:9/"}"#,
            )
            .await,
    );
    assert_eq!(answer, Failure::Unavailable(NO_EGRESS.into()));
}

#[tokio::test]
async fn memory_without_a_store_or_a_namespace_is_refused() {
    let args = r#"{"key":"city","value":"Zürich"}"#;
    let no_store = load(Services::default()).await;
    for namespace in [Some("tenant-a"), None] {
        let answer = failure(
            no_store
                .invoke(&caller(namespace, Grants::none()), "remember", args)
                .await,
        );
        assert_eq!(answer, Failure::Unavailable(NO_STORE.into()));
    }

    let with_store = load(services(Some(Arc::new(FakeMemory::default())))).await;
    let answer = failure(
        with_store
            .invoke(&caller(None, Grants::none()), "remember", args)
            .await,
    );
    assert_eq!(answer, Failure::Unavailable(NO_NAMESPACE.into()));
}

#[tokio::test]
async fn memory_is_scoped_to_the_callers_namespace_and_gone_with_the_call() {
    let plugin = load(services(Some(Arc::new(FakeMemory::default())))).await;
    let tenant_a = caller(Some("tenant-a"), Grants::none());
    let remembered = plugin
        .invoke(&tenant_a, "remember", r#"{"key":"city","value":"Zürich"}"#)
        .await
        .unwrap();
    assert_eq!(remembered, "Zürich");

    let recall = r#"{"key":"city"}"#;
    let tenant_b = caller(Some("tenant-b"), Grants::none());
    assert_eq!(
        plugin.invoke(&tenant_b, "recall", recall).await.unwrap(),
        r#"{"value":null}"#
    );
    assert_eq!(
        plugin.invoke(&tenant_a, "recall", recall).await.unwrap(),
        r#"{"value":"Zürich"}"#
    );
    // The same warm instance right after tenant A's call: no namespace, no memory.
    let answer = failure(
        plugin
            .invoke(&CallContext::default(), "recall", recall)
            .await,
    );
    assert_eq!(answer, Failure::Unavailable(NO_NAMESPACE.into()));
}

#[tokio::test]
async fn a_panic_is_a_fault_and_the_next_call_starts_clean() {
    let plugin = load(services(Some(Arc::new(FakeMemory::default())))).await;
    let tenant_a = caller(Some("tenant-a"), Grants::none());
    let fault = match plugin.invoke(&tenant_a, "panic", "{}").await {
        Err(CallError::Fault(fault)) => fault,
        other => panic!("expected a fault, got {other:?}"),
    };
    assert_eq!(fault.kind, FaultKind::Trap);
    assert!(
        fault.message.contains("tool-echo: panic requested"),
        "{}",
        fault.message
    );
    // The faulted instance was replaced at once.
    assert_eq!(plugin.warm_instances(), 1);

    assert_eq!(
        plugin
            .invoke(&CallContext::default(), "echo", "{}")
            .await
            .unwrap(),
        "{}"
    );
    let answer = failure(
        plugin
            .invoke(&CallContext::default(), "recall", r#"{"key":"city"}"#)
            .await,
    );
    assert_eq!(answer, Failure::Unavailable(NO_NAMESPACE.into()));
}

#[tokio::test]
async fn stderr_is_captured_per_call() {
    let plugin = load(Services::default()).await;
    // More than the 4 KiB capture over two calls: a capture kept per instance would trap.
    let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(3000));
    for _ in 0..2 {
        plugin
            .invoke(&CallContext::default(), "stderr", &long)
            .await
            .unwrap();
    }
    plugin
        .invoke(
            &CallContext::default(),
            "stderr",
            r#"{"text":"tenant-a-secret"}"#,
        )
        .await
        .unwrap();
    // The next call on the same instance faults: its message carries only its own stderr.
    let fault = match plugin.invoke(&CallContext::default(), "panic", "{}").await {
        Err(CallError::Fault(fault)) => fault,
        other => panic!("expected a fault, got {other:?}"),
    };
    assert!(
        fault.message.contains("panic requested"),
        "{}",
        fault.message
    );
    assert!(
        !fault.message.contains("tenant-a-secret") && !fault.message.contains("xxx"),
        "{}",
        fault.message
    );
}

#[tokio::test]
async fn each_world_refuses_the_other_worlds_plugins() {
    let runtime = Runtime::new(limits()).unwrap();
    // A tool plugin imports `outbound` and `memory`: not in the provider world (invariant 1).
    // Refused from its exports, before compiling.
    let error = Plugin::load(&runtime, &paths::built(TOOL_ECHO))
        .await
        .err()
        .unwrap();
    assert!(
        error.message.contains(
            "is a tool plugin (it exports aigw:plugin/tool@0.1.0), not a provider plugin"
        ),
        "{}",
        error.message
    );
    let error = ToolPlugin::load(&runtime, &paths::built("plugins/groq.wasm"))
        .await
        .err()
        .unwrap();
    assert!(
        error.message.contains(
            "is a provider plugin (it exports aigw:plugin/provider@0.1.0), not a tool plugin"
        ),
        "{}",
        error.message
    );
}

#[test]
fn a_runtime_refuses_an_egress_without_the_outbound_connect_timeout() {
    let services = Services {
        egress: Some(Egress::new([Duration::from_secs(1)]).unwrap()),
        ..Services::default()
    };
    let error = Runtime::with_services(limits(), services).err().unwrap();
    assert!(
        error
            .to_string()
            .contains("outbound connect timeout of 5000 ms"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_that_does_not_answer_fails_the_operation_at_its_timeout() {
    let mut services = services(Some(Arc::new(SilentStore)));
    services.memory_limits.operation_timeout = Duration::from_secs(30);
    let plugin = load(services).await;
    let answer = failure(
        plugin
            .invoke(
                &caller(Some("tenant-a"), Grants::none()),
                "recall",
                r#"{"key":"city"}"#,
            )
            .await,
    );
    assert_eq!(
        answer,
        Failure::Unavailable("memory: the store did not answer within 30000 ms".into())
    );
}

#[tokio::test]
async fn imports_act_for_the_running_call_only_and_a_guest_global_is_the_plugins_own() {
    // tool-echo reads memory key "probe" in a static constructor, which Rust runs at the
    // instance's first export call, and keeps the answer in a global.
    let plugin = load(services(Some(Arc::new(FakeMemory::default())))).await;
    let tenant_a = caller(Some("tenant-a"), Grants::none());
    let tenant_b = caller(Some("tenant-b"), Grants::none());
    let probe =
        async |who: &CallContext| plugin.invoke(who, "constructor-probe", "{}").await.unwrap();
    plugin
        .invoke(
            &tenant_a,
            "remember",
            r#"{"key":"probe","value":"a-secret"}"#,
        )
        .await
        .unwrap();
    // The one warm instance ran its constructor in `describe` at load, which runs for nobody.
    assert_eq!(probe(&tenant_a).await, format!("error: {NO_NAMESPACE}"));

    // A fault replaces it with a fresh instance whose first call is tenant A's: the
    // constructor's import acts for tenant A, the caller of the running call.
    assert!(matches!(
        plugin.invoke(&tenant_a, "panic", "{}").await,
        Err(CallError::Fault(_))
    ));
    assert_eq!(probe(&tenant_a).await, r#"ok: Some("a-secret")"#);
    // What the guest kept in its global it hands to whoever asks: tenant B's call reads it
    // although B's own namespace holds no such key. This is the limit of host-side isolation
    // documented in `pool.rs` (rule 3): the host scopes what imports do, not what a plugin
    // remembers.
    assert_eq!(probe(&tenant_b).await, r#"ok: Some("a-secret")"#);
    let own = plugin
        .invoke(&tenant_b, "recall", r#"{"key":"probe"}"#)
        .await
        .unwrap();
    assert_eq!(own, r#"{"value":null}"#);
}
