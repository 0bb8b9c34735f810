//! The `memory` import, driven through the real `tool-memory` component against an in-memory
//! store: every operation, each confined to the namespace of the call (tenant B never sees,
//! changes or deletes tenant A's entries and items), refused without a namespace or a store,
//! the per-call limits checked before the store is asked, the per-plugin quota handed to the
//! store with each write, compare-and-set conflicts with the current version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_memory;

use std::sync::Arc;
use std::time::Duration;

use aigw_egress::Grants;
use aigw_runtime::{
    CallContext, Limits, MemoryLimits, MemoryQuota, MemoryStore, NO_NAMESPACE, NO_STORE, Runtime,
    Services, ToolPlugin,
};
use aigw_tests::paths;
use fake_memory::FakeMemory;
use serde_json::{Value, json};

const TOOL_MEMORY: &str = "test-plugins/tool-memory.wasm";

async fn load(store: Option<Arc<FakeMemory>>, limits: MemoryLimits) -> Arc<ToolPlugin> {
    let services = Services {
        memory: store.map(|s| s as Arc<dyn MemoryStore>),
        memory_limits: limits,
        ..Services::default()
    };
    let runtime = Runtime::with_services(
        Limits {
            call_timeout: Duration::from_millis(500),
            memory_bytes: 32 << 20,
            warm_instances: 1,
            max_instances: 50,
            ..Limits::default()
        },
        services,
    )
    .unwrap();
    ToolPlugin::load(&runtime, &paths::built(TOOL_MEMORY))
        .await
        .unwrap()
}

fn tenant(namespace: &str) -> CallContext {
    CallContext {
        namespace: Some(Arc::from(namespace)),
        key: None,
        grants: Grants::none(),
        ..CallContext::default()
    }
}

/// Calls `tool` and parses its JSON answer.
async fn call(plugin: &ToolPlugin, who: &CallContext, tool: &str, args: Value) -> Value {
    let answer = plugin.invoke(who, tool, &args.to_string()).await.unwrap();
    serde_json::from_str(&answer).unwrap()
}

/// The memory error a call answered: its kind and its message or current version.
fn error(answer: &Value) -> (&str, &Value) {
    let error = &answer["error"];
    assert!(error.is_object(), "expected a memory error, got {answer}");
    let detail = if error["kind"] == "conflict" {
        &error["current"]
    } else {
        &error["message"]
    };
    (error["kind"].as_str().unwrap(), detail)
}

fn put(path: &[&str], key: &str, value: Value) -> Value {
    json!({"path": path, "key": key, "value": value})
}

fn at(path: &[&str], key: &str) -> Value {
    json!({"path": path, "key": key})
}

#[tokio::test]
async fn every_operation_reaches_the_store_for_the_calls_namespace_and_plugin() {
    let store = Arc::new(FakeMemory::default());
    store.create_conversation("tenant-a", "conv_1");
    let plugin = load(Some(Arc::clone(&store)), MemoryLimits::default()).await;
    let a = tenant("tenant-a");

    let stored = call(
        &plugin,
        &a,
        "put",
        put(
            &["users", "42"],
            "prefs",
            json!({"lang": "de", "note": "likes tea"}),
        ),
    )
    .await;
    assert_eq!(stored, json!({"version": 1}));
    let args = json!({"path": ["users", "42"], "key": "prefs", "value": {"lang": "fr", "note": "tea, tea"}, "ttl_seconds": 60});
    assert_eq!(call(&plugin, &a, "put", args).await, json!({"version": 2}));

    let read = call(&plugin, &a, "get", at(&["users", "42"], "prefs")).await;
    let entry = &read["entry"];
    assert_eq!(entry["path"], json!(["users", "42"]));
    assert_eq!(entry["key"], "prefs");
    assert_eq!(entry["value"], json!({"lang": "fr", "note": "tea, tea"}));
    assert_eq!(entry["version"], 2);
    assert_eq!(entry["agent"], "plugin:tool-memory");
    let ttl = entry["expires_at_ms"].as_u64().unwrap() - entry["updated_at_ms"].as_u64().unwrap();
    assert_eq!(ttl, 60_000);

    call(
        &plugin,
        &a,
        "put",
        put(
            &["users", "7"],
            "prefs",
            json!({"lang": "de", "note": "tea"}),
        ),
    )
    .await;
    call(
        &plugin,
        &a,
        "put",
        put(&["teams"], "prefs", json!({"lang": "de"})),
    )
    .await;
    let found = call(
        &plugin,
        &a,
        "search",
        json!({"path_prefix": ["users"], "query": "tea"}),
    )
    .await;
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{found}");
    assert_eq!(
        hits[0]["entry"]["path"],
        json!(["users", "42"]),
        "more hits of the term first"
    );
    assert_eq!(hits[0]["score"], 2.0);
    let found = call(&plugin, &a, "search", json!({"filter": {"lang": "de"}})).await;
    let paths: Vec<&Value> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["entry"]["path"])
        .collect();
    assert_eq!(paths, [&json!(["teams"]), &json!(["users", "7"])]);
    assert_eq!(found["hits"][0]["score"], Value::Null);

    assert_eq!(
        call(&plugin, &a, "delete", at(&["users", "7"], "prefs")).await,
        json!({"deleted": true})
    );
    assert_eq!(
        call(&plugin, &a, "delete", at(&["users", "7"], "prefs")).await,
        json!({"deleted": false})
    );
    assert_eq!(
        call(&plugin, &a, "get", at(&["users", "7"], "prefs")).await,
        json!({"entry": null})
    );

    let items = json!([
        {"type": "message", "role": "user", "content": "hi"},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"}
    ]);
    let appended = call(
        &plugin,
        &a,
        "append-items",
        json!({"conversation": "conv_1", "items": items}),
    )
    .await;
    let ids = appended["ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 3, "{appended}");
    let listed = call(
        &plugin,
        &a,
        "list-items",
        json!({"conversation": "conv_1", "limit": 2}),
    )
    .await;
    let listed = listed["items"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "the last two, oldest first");
    assert_eq!(listed[0]["id"], ids[1]);
    assert_eq!(listed[1]["id"], ids[2]);
    assert_eq!(listed[1]["item"]["output"], "sunny");
    assert_eq!(listed[1]["item"]["id"], ids[2]);
    assert_eq!(listed[0]["agent"], "plugin:tool-memory");

    // Every operation reached the store with the call's namespace, the plugin and its quota.
    let scopes = store.scopes();
    assert_eq!(scopes.len(), 12);
    for scope in scopes {
        assert_eq!(&*scope.namespace, "tenant-a");
        assert_eq!(&*scope.plugin, "tool-memory");
        assert_eq!(
            scope.quota,
            MemoryQuota {
                entries: 10_000,
                bytes: 64 << 20
            }
        );
    }
}

#[tokio::test]
async fn tenant_b_never_sees_or_changes_tenant_as_entries_and_items() {
    let store = Arc::new(FakeMemory::default());
    store.create_conversation("tenant-a", "conv_a");
    let plugin = load(Some(Arc::clone(&store)), MemoryLimits::default()).await;
    let (a, b) = (tenant("tenant-a"), tenant("tenant-b"));
    call(
        &plugin,
        &a,
        "put",
        put(&["notes"], "k", json!({"text": "secret plan"})),
    )
    .await;
    let items =
        json!({"conversation": "conv_a", "items": [{"role": "user", "content": "a's turn"}]});
    call(&plugin, &a, "append-items", items.clone()).await;

    // B, on the same warm instance right after A's calls, asks for exactly what A wrote.
    assert_eq!(
        call(&plugin, &b, "get", at(&["notes"], "k")).await,
        json!({"entry": null})
    );
    let found = call(&plugin, &b, "search", json!({"query": "secret"})).await;
    assert_eq!(found, json!({"hits": []}));
    assert_eq!(
        call(&plugin, &b, "delete", at(&["notes"], "k")).await,
        json!({"deleted": false})
    );
    let listed = call(&plugin, &b, "list-items", json!({"conversation": "conv_a"})).await;
    assert_eq!(error(&listed).0, "not-found");
    let appended = call(&plugin, &b, "append-items", items).await;
    assert_eq!(error(&appended).0, "not-found");
    // B's put of the same path and key makes B's own entry; A's is untouched.
    let b_put = call(
        &plugin,
        &b,
        "put",
        put(&["notes"], "k", json!({"text": "b"})),
    )
    .await;
    assert_eq!(b_put, json!({"version": 1}));

    let read = call(&plugin, &a, "get", at(&["notes"], "k")).await;
    assert_eq!(read["entry"]["value"], json!({"text": "secret plan"}));
    assert_eq!(read["entry"]["version"], 1);
    let listed = call(&plugin, &a, "list-items", json!({"conversation": "conv_a"})).await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "B appended nothing to A's"
    );
    assert_eq!(
        store.keys("tenant-b"),
        [(vec!["notes".to_owned()], "k".to_owned())]
    );
}

/// One call of each tool, with valid arguments.
fn every_operation() -> Vec<(&'static str, Value)> {
    vec![
        ("put", put(&["p"], "k", json!({}))),
        ("get", at(&["p"], "k")),
        ("delete", at(&["p"], "k")),
        ("search", json!({})),
        (
            "append-items",
            json!({"conversation": "c", "items": [{"role": "user", "content": "x"}]}),
        ),
        ("list-items", json!({"conversation": "c"})),
    ]
}

#[tokio::test]
async fn without_a_namespace_or_a_store_every_operation_is_unavailable() {
    let store = Arc::new(FakeMemory::default());
    let with_store = load(Some(Arc::clone(&store)), MemoryLimits::default()).await;
    let without_store = load(None, MemoryLimits::default()).await;
    for (tool, args) in every_operation() {
        let answer = call(&with_store, &CallContext::default(), tool, args.clone()).await;
        assert_eq!(
            error(&answer),
            ("unavailable", &json!(NO_NAMESPACE)),
            "{tool}"
        );
        let answer = call(&without_store, &tenant("tenant-a"), tool, args).await;
        assert_eq!(error(&answer), ("unavailable", &json!(NO_STORE)), "{tool}");
    }
    // A call that names no namespace acts for nobody: nothing reached the store.
    assert!(store.scopes().is_empty());
}

#[tokio::test]
async fn arguments_over_the_per_call_limits_are_refused_before_the_store() {
    let store = Arc::new(FakeMemory::default());
    store.create_conversation("tenant-a", "c");
    let limits = MemoryLimits {
        key_bytes: 8,
        label_bytes: 4,
        path_labels: 2,
        value_bytes: 32,
        query_bytes: 16,
        items_per_append: 2,
        ..MemoryLimits::default()
    };
    let plugin = load(Some(Arc::clone(&store)), limits).await;
    let a = tenant("tenant-a");
    let refused = [
        (
            "put",
            put(&["p"], "k", json!({"text": "x".repeat(40)})),
            "too-large",
            "memory: a value of 51 bytes is over the limit of 32",
        ),
        (
            "put",
            put(&["p"], "key-too-long", json!({})),
            "invalid",
            "memory: a key must be 1 to 8 bytes long",
        ),
        (
            "get",
            at(&["p"], ""),
            "invalid",
            "memory: a key must be 1 to 8 bytes long",
        ),
        (
            "put",
            put(&[], "k", json!({})),
            "invalid",
            "memory: an entry's path needs at least one label",
        ),
        (
            "get",
            at(&["p", "label"], "k"),
            "invalid",
            "memory: path label 1 must be 1 to 4 bytes long",
        ),
        (
            "delete",
            at(&["a", "b", "c"], "k"),
            "invalid",
            "memory: a path has at most 2 labels, not 3",
        ),
        (
            "search",
            json!({"query": "q".repeat(17)}),
            "too-large",
            "memory: a query of 17 bytes is over the limit of 16",
        ),
        (
            "search",
            json!({"filter": {"field": "value!"}}),
            "too-large",
            "memory: a filter of 18 bytes is over the limit of 16",
        ),
        (
            "search",
            json!({"path_prefix": [""]}),
            "invalid",
            "memory: path label 0 must be 1 to 4 bytes long",
        ),
        (
            "append-items",
            json!({"conversation": "c", "items": [{}, {}, {}]}),
            "invalid",
            "memory: append 1 to 2 items at a time, not 3",
        ),
        (
            "append-items",
            json!({"conversation": "c", "items": []}),
            "invalid",
            "memory: append 1 to 2 items at a time, not 0",
        ),
        (
            "append-items",
            json!({"conversation": "c", "items": [{}, {"content": "y".repeat(30)}]}),
            "too-large",
            "memory: item 1 of 44 bytes is over the limit of 32",
        ),
        (
            "list-items",
            json!({"conversation": "conversation"}),
            "invalid",
            "memory: a conversation id must be 1 to 8 bytes long",
        ),
    ];
    for (tool, args, kind, message) in refused {
        let answer = call(&plugin, &a, tool, args).await;
        assert_eq!(error(&answer), (kind, &json!(message)), "{tool}");
    }
    assert!(
        store.scopes().is_empty(),
        "no refused operation reached the store"
    );

    // Just at the limits is fine.
    let value = json!({"text": "x".repeat(21)});
    assert_eq!(value.to_string().len(), 32);
    assert_eq!(
        call(&plugin, &a, "put", put(&["abcd", "e"], "12345678", value)).await,
        json!({"version": 1})
    );
}

#[tokio::test]
async fn reads_return_at_most_the_hosts_cap_and_a_zero_limit_asks_nothing() {
    let store = Arc::new(FakeMemory::default());
    store.create_conversation("tenant-a", "c");
    let limits = MemoryLimits {
        items_per_read: 2,
        hits_per_search: 3,
        ..MemoryLimits::default()
    };
    let plugin = load(Some(Arc::clone(&store)), limits).await;
    let a = tenant("tenant-a");
    for key in ["k1", "k2", "k3", "k4"] {
        call(&plugin, &a, "put", put(&["p"], key, json!({"n": 1}))).await;
    }
    let items = json!({"conversation": "c", "items": [{"role": "user", "content": "1"}, {"role": "user", "content": "2"}, {"role": "user", "content": "3"}]});
    call(&plugin, &a, "append-items", items).await;
    let found = call(&plugin, &a, "search", json!({"limit": 100})).await;
    assert_eq!(found["hits"].as_array().unwrap().len(), 3);
    let listed = call(
        &plugin,
        &a,
        "list-items",
        json!({"conversation": "c", "limit": 100}),
    )
    .await;
    let contents: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["item"]["content"])
        .collect();
    assert_eq!(contents, ["2", "3"]);
    let asked = store.scopes().len();
    assert_eq!(
        call(&plugin, &a, "search", json!({"limit": 0})).await,
        json!({"hits": []})
    );
    assert_eq!(store.scopes().len(), asked);
}

#[tokio::test]
async fn the_quota_refuses_writes_past_it_across_calls_per_namespace() {
    let store = Arc::new(FakeMemory::default());
    store.create_conversation("tenant-a", "c");
    let limits = MemoryLimits {
        quota: MemoryQuota {
            entries: 3,
            bytes: 100,
        },
        ..MemoryLimits::default()
    };
    let plugin = load(Some(Arc::clone(&store)), limits).await;
    let (a, b) = (tenant("tenant-a"), tenant("tenant-b"));
    // Three records in three calls: two entries and an item.
    call(&plugin, &a, "put", put(&["p"], "k1", json!({"n": 1}))).await;
    call(&plugin, &a, "put", put(&["p"], "k2", json!({"n": 2}))).await;
    let items = json!({"conversation": "c", "items": [{"role": "user", "content": "hi"}]});
    assert!(call(&plugin, &a, "append-items", items.clone()).await["ids"].is_array());

    let over = call(&plugin, &a, "put", put(&["p"], "k3", json!({"n": 3}))).await;
    let (kind, message) = error(&over);
    assert_eq!(kind, "quota");
    assert!(
        message.as_str().unwrap().contains("quota: 3 and 100"),
        "{message}"
    );
    assert_eq!(
        error(&call(&plugin, &a, "append-items", items).await).0,
        "quota"
    );
    assert_eq!(
        call(&plugin, &a, "get", at(&["p"], "k3")).await,
        json!({"entry": null})
    );
    // Replacing an entry it holds adds no entry; growing it past the bytes does not fit.
    assert_eq!(
        call(&plugin, &a, "put", put(&["p"], "k1", json!({"n": 10}))).await,
        json!({"version": 2})
    );
    let big = call(
        &plugin,
        &a,
        "put",
        put(&["p"], "k1", json!({"text": "x".repeat(80)})),
    )
    .await;
    assert_eq!(error(&big).0, "quota");
    // Deleting frees room.
    call(&plugin, &a, "delete", at(&["p"], "k2")).await;
    assert_eq!(
        call(&plugin, &a, "put", put(&["p"], "k3", json!({"n": 3}))).await,
        json!({"version": 1})
    );
    // The quota is per namespace: tenant B has its own.
    for key in ["k1", "k2", "k3"] {
        assert_eq!(
            call(&plugin, &b, "put", put(&["p"], key, json!({}))).await,
            json!({"version": 1})
        );
    }
}

#[tokio::test]
async fn a_stale_version_is_a_conflict_that_names_the_current_one() {
    let plugin = load(
        Some(Arc::new(FakeMemory::default())),
        MemoryLimits::default(),
    )
    .await;
    let a = tenant("tenant-a");
    let cas = |if_version: u64, n: u64| json!({"path": ["p"], "key": "k", "value": {"n": n}, "if_version": if_version});
    assert_eq!(
        call(&plugin, &a, "put", cas(0, 1)).await,
        json!({"version": 1}),
        "0: create only"
    );
    assert_eq!(
        call(&plugin, &a, "put", cas(1, 2)).await,
        json!({"version": 2})
    );
    let stale = call(&plugin, &a, "put", cas(1, 3)).await;
    assert_eq!(error(&stale), ("conflict", &json!(2)));
    let exists = call(&plugin, &a, "put", cas(0, 3)).await;
    assert_eq!(error(&exists), ("conflict", &json!(2)));
    let read = call(&plugin, &a, "get", at(&["p"], "k")).await;
    assert_eq!(
        read["entry"]["value"],
        json!({"n": 2}),
        "a conflict writes nothing"
    );
}

#[tokio::test]
async fn operations_are_capped_per_call_and_the_count_starts_again_with_each_call() {
    let store = Arc::new(FakeMemory::default());
    let limits = MemoryLimits {
        operations_per_call: 5,
        ..MemoryLimits::default()
    };
    let plugin = load(Some(Arc::clone(&store)), limits).await;
    let a = tenant("tenant-a");
    let over = call(
        &plugin,
        &a,
        "get",
        json!({"path": ["p"], "key": "k", "times": 6}),
    )
    .await;
    assert_eq!(
        error(&over),
        (
            "quota",
            &json!("memory: more than 5 operations in one call")
        )
    );
    assert_eq!(store.scopes().len(), 5);
    let within = call(
        &plugin,
        &a,
        "get",
        json!({"path": ["p"], "key": "k", "times": 5}),
    )
    .await;
    assert_eq!(within, json!({"entry": null}));
}
