//! Tool plugins' memory end to end inside the process: the real `tool-memory` component, the
//! runtime's `memory` import, [`PluginMemory`] and the real libsql store in a temporary file.
//! What a plugin call in namespace A writes is what A's store reads see, and B's do not; the
//! plugin is recorded as the agent `plugin:tool-memory`; its quota holds across calls and is
//! per namespace; compare-and-set, TTL, filters, full-text search and item normalisation are
//! the store's own; with redaction, what a plugin writes is redacted before it is stored.

// `Service::handle`'s future, spans' `Instrumented` wrappers included, lays out deeper than
// the default limit of 128 (the library sets the same).
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aigw_egress::Grants;
use aigw_memory::conversations::{self, NewItem};
use aigw_memory::entries::{self, EntryPath};
use aigw_memory::{Namespace, Store, StoreOptions};
use aigw_router::{HealthRegistry, HealthSettings};
use aigw_runtime::{
    CallContext, Limits, MemoryLimits, MemoryQuota, MemoryStore, Runtime, Services, ToolPlugin,
};
use aigw_server::{Gateway, MAX_REMEMBERED_TARGETS, PluginMemory, ServerOptions, Service};
use aigw_tests::paths;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

fn temp_db(name: &str) -> PathBuf {
    let dir =
        // Under the target directory and named by test only: each run replaces the last
    // one's files instead of leaving a new directory in /tmp.
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aigw-plugin-memory-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("aigw.db")
}

struct Fixture {
    store: Arc<Store>,
    plugin: Arc<ToolPlugin>,
}

impl Fixture {
    async fn start(name: &str, limits: MemoryLimits) -> Fixture {
        let store = Arc::new(Store::open(StoreOptions::new(temp_db(name))).await.unwrap());
        let memory: Arc<dyn MemoryStore> = Arc::new(PluginMemory::new(Arc::clone(&store)));
        let services = Services {
            memory: Some(memory),
            memory_limits: limits,
            ..Services::default()
        };
        let runtime = Runtime::with_services(
            Limits {
                warm_instances: 1,
                ..Limits::default()
            },
            services,
        )
        .unwrap();
        let plugin = ToolPlugin::load(&runtime, &paths::built("test-plugins/tool-memory.wasm"))
            .await
            .unwrap();
        Fixture { store, plugin }
    }

    async fn call(&self, namespace: &str, tool: &str, args: Value) -> Value {
        let who = CallContext {
            namespace: Some(Arc::from(namespace)),
            key: None,
            grants: Grants::none(),
            ..CallContext::default()
        };
        let answer = self
            .plugin
            .invoke(&who, tool, &args.to_string())
            .await
            .unwrap();
        serde_json::from_str(&answer).unwrap()
    }

    /// The HTTP side of the same store, as agents reach it.
    fn service(&self) -> Service {
        let health = Arc::new(HealthRegistry::new(
            HealthSettings::default(),
            MAX_REMEMBERED_TARGETS,
        ));
        let gateway = Gateway::new([], BTreeMap::new(), health, &ServerOptions::default())
            .unwrap()
            .with_memory(Arc::clone(&self.store));
        Service::new(gateway)
    }

    /// A conversation made the way an agent makes one over HTTP.
    async fn conversation(&self, namespace: &str, first: &str) -> String {
        let item = json!({"type": "message", "role": "user", "status": "completed",
                          "content": [{"type": "input_text", "text": first}]});
        let Value::Object(item) = item else {
            unreachable!()
        };
        let (conversation, _) = conversations::create(
            &self.store,
            &ns(namespace),
            Default::default(),
            vec![NewItem {
                item,
                agent: Some("planner".into()),
            }],
            Some("planner".into()),
        )
        .await
        .unwrap();
        conversation.id
    }
}

fn ns(name: &str) -> Namespace {
    Namespace::parse(name).unwrap()
}

fn path(labels: &[&str]) -> EntryPath {
    EntryPath::parse(labels.iter().map(|l| (*l).to_owned()).collect(), "path").unwrap()
}

fn put(labels: &[&str], key: &str, value: Value) -> Value {
    json!({"path": labels, "key": key, "value": value})
}

fn kind(answer: &Value) -> &str {
    answer["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {answer}"))
}

#[tokio::test]
async fn a_plugins_writes_are_its_namespaces_and_recorded_as_the_plugin() {
    let fixture = Fixture::start("scope", MemoryLimits::default()).await;
    let written = fixture
        .call(
            "team-a",
            "put",
            put(&["users", "42"], "prefs", json!({"lang": "de"})),
        )
        .await;
    assert_eq!(written, json!({"version": 1}));

    // A's store reads see it, written by the plugin; B's do not.
    let entry = entries::get(
        &fixture.store,
        &ns("team-a"),
        &path(&["users", "42"]),
        "prefs",
        false,
    )
    .await
    .unwrap()
    .expect("the plugin's entry in team-a");
    assert_eq!(Value::Object(entry.value), json!({"lang": "de"}));
    assert_eq!(entry.agent.as_deref(), Some("plugin:tool-memory"));
    let other = entries::get(
        &fixture.store,
        &ns("team-b"),
        &path(&["users", "42"]),
        "prefs",
        false,
    )
    .await
    .unwrap();
    assert_eq!(other, None);
    // Over HTTP too: A's agents read the plugin's entry, B's read nothing (LangGraph's `null`).
    let service = fixture.service();
    let query = "/v1/store/items?namespace=users.42&key=prefs";
    let (status, item) = http(&service, "team-a", Method::GET, query, None).await;
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(item["value"], json!({"lang": "de"}));
    assert_eq!(item["agent"], "plugin:tool-memory");
    let (status, item) = http(&service, "team-b", Method::GET, query, None).await;
    assert_eq!((status, item), (StatusCode::OK, Value::Null));
    // And the plugin in B does not see A's entry either.
    let read = fixture
        .call(
            "team-b",
            "get",
            json!({"path": ["users", "42"], "key": "prefs"}),
        )
        .await;
    assert_eq!(read, json!({"entry": null}));

    // An agent's write over the store is what the plugin reads.
    let read = fixture
        .call(
            "team-a",
            "get",
            json!({"path": ["users", "42"], "key": "prefs"}),
        )
        .await;
    assert_eq!(read["entry"]["value"], json!({"lang": "de"}));
    assert_eq!(read["entry"]["agent"], "plugin:tool-memory");
    assert_eq!(read["entry"]["version"], 1);

    // Items: appended to A's conversation by the plugin, normalised like a client's.
    let conversation = fixture.conversation("team-a", "plan the trip").await;
    let appended = fixture
        .call(
            "team-a",
            "append-items",
            json!({"conversation": conversation, "items": [
                {"role": "assistant", "content": "Zürich, then Bern", "id": "__fake_id__"},
                {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"}
            ]}),
        )
        .await;
    let ids = appended["ids"].as_array().expect("ids").clone();
    assert_eq!(ids.len(), 2);
    assert!(ids[0].as_str().unwrap().starts_with("msg_"), "{ids:?}");
    let recent = conversations::recent(&fixture.store, &ns("team-a"), &conversation, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0].agent.as_deref(), Some("planner"));
    assert_eq!(recent[1].agent.as_deref(), Some("plugin:tool-memory"));
    assert_eq!(recent[1].item["type"], "message");
    assert_eq!(recent[1].item["content"][0]["type"], "output_text");
    assert_eq!(recent[1].item["content"][0]["text"], "Zürich, then Bern");
    assert_eq!(json!(recent[1].id), ids[0]);
    let listed = fixture
        .call(
            "team-a",
            "list-items",
            json!({"conversation": conversation, "limit": 2}),
        )
        .await;
    let listed = listed["items"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], ids[0]);
    assert_eq!(listed[1]["item"]["name"], "weather");

    // B can neither read nor append to A's conversation.
    let listed = fixture
        .call(
            "team-b",
            "list-items",
            json!({"conversation": conversation}),
        )
        .await;
    assert_eq!(kind(&listed), "not-found");
    let appended = fixture
        .call(
            "team-b",
            "append-items",
            json!({"conversation": conversation, "items": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(kind(&appended), "not-found");
    let recent = conversations::recent(&fixture.store, &ns("team-a"), &conversation, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recent.len(), 3, "B's append wrote nothing");
}

#[tokio::test]
async fn the_quota_holds_across_calls_and_is_per_namespace() {
    let limits = MemoryLimits {
        quota: MemoryQuota {
            entries: 3,
            bytes: 1 << 20,
        },
        ..MemoryLimits::default()
    };
    let fixture = Fixture::start("quota", limits).await;
    let conversation = fixture.conversation("team-a", "hello").await;
    for key in ["k1", "k2"] {
        let written = fixture
            .call("team-a", "put", put(&["p"], key, json!({"n": 1})))
            .await;
        assert_eq!(written, json!({"version": 1}));
    }
    let items =
        json!({"conversation": conversation, "items": [{"role": "user", "content": "3rd"}]});
    assert!(fixture.call("team-a", "append-items", items.clone()).await["ids"].is_array());

    let over = fixture
        .call("team-a", "put", put(&["p"], "k3", json!({"n": 3})))
        .await;
    assert_eq!(kind(&over), "quota", "{over}");
    assert_eq!(
        kind(&fixture.call("team-a", "append-items", items).await),
        "quota"
    );
    let missing = entries::get(&fixture.store, &ns("team-a"), &path(&["p"]), "k3", false)
        .await
        .unwrap();
    assert_eq!(missing, None, "a refused put writes nothing");
    // Replacing an entry the plugin holds needs no room; deleting one frees it.
    let replaced = fixture
        .call("team-a", "put", put(&["p"], "k1", json!({"n": 2})))
        .await;
    assert_eq!(replaced, json!({"version": 2}));
    fixture
        .call("team-a", "delete", json!({"path": ["p"], "key": "k2"}))
        .await;
    let fits = fixture
        .call("team-a", "put", put(&["p"], "k3", json!({"n": 3})))
        .await;
    assert_eq!(fits, json!({"version": 1}));
    // Another namespace has its own room.
    let elsewhere = fixture
        .call("team-b", "put", put(&["p"], "k9", json!({"n": 9})))
        .await;
    assert_eq!(elsewhere, json!({"version": 1}));

    // Bytes count too.
    let limits = MemoryLimits {
        quota: MemoryQuota {
            entries: 100,
            bytes: 64,
        },
        ..MemoryLimits::default()
    };
    let fixture = Fixture::start("quota-bytes", limits).await;
    let small = fixture
        .call(
            "team-a",
            "put",
            put(&["p"], "a", json!({"t": "x".repeat(30)})),
        )
        .await;
    assert_eq!(small, json!({"version": 1}));
    let big = fixture
        .call(
            "team-a",
            "put",
            put(&["p"], "b", json!({"t": "x".repeat(30)})),
        )
        .await;
    assert_eq!(kind(&big), "quota", "{big}");
}

#[tokio::test]
async fn the_stores_rules_reach_the_plugin_as_its_errors() {
    let fixture = Fixture::start("rules", MemoryLimits::default()).await;
    let cas = |if_version: u64| json!({"path": ["p"], "key": "k", "value": {"n": if_version}, "if_version": if_version});
    assert_eq!(
        fixture.call("team-a", "put", cas(0)).await,
        json!({"version": 1})
    );
    let stale = fixture.call("team-a", "put", cas(0)).await;
    assert_eq!(stale["error"], json!({"kind": "conflict", "current": 1}));
    assert_eq!(
        fixture.call("team-a", "put", cas(1)).await,
        json!({"version": 2})
    );

    let not_object = fixture
        .call(
            "team-a",
            "put",
            json!({"path": ["p"], "key": "k", "value": [1]}),
        )
        .await;
    assert_eq!(kind(&not_object), "invalid");
    let dotted = fixture
        .call("team-a", "put", put(&["a.b"], "k", json!({})))
        .await;
    assert_eq!(kind(&dotted), "invalid");
    let bad_item = fixture
        .call(
            "team-a",
            "append-items",
            json!({"conversation": "conv_x", "items": [{"type": "nonsense"}]}),
        )
        .await;
    assert_eq!(kind(&bad_item), "invalid", "{bad_item}");
    let unknown = fixture
        .call(
            "team-a",
            "list-items",
            json!({"conversation": "conv_unknown"}),
        )
        .await;
    assert_eq!(kind(&unknown), "not-found");

    // Search: a filter and a ranked full-text query, confined to the namespace.
    for (key, note) in [("a", "tea and more tea"), ("b", "coffee"), ("c", "tea")] {
        fixture
            .call(
                "team-a",
                "put",
                put(&["notes"], key, json!({"note": note, "kind": key})),
            )
            .await;
    }
    fixture
        .call(
            "team-b",
            "put",
            put(&["notes"], "z", json!({"note": "tea"})),
        )
        .await;
    let found = fixture
        .call(
            "team-a",
            "search",
            json!({"path_prefix": ["notes"], "query": "tea"}),
        )
        .await;
    // The store ranks (bm25); here only which entries match, best first, is the plugin's view.
    let hits = found["hits"].as_array().unwrap();
    let mut keys: Vec<&str> = hits
        .iter()
        .map(|h| h["entry"]["key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a", "c"], "{found}");
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores[0] >= scores[1] && scores[1] > 0.0, "{scores:?}");
    let filtered = fixture
        .call(
            "team-a",
            "search",
            json!({"path_prefix": ["notes"], "filter": {"kind": "b"}}),
        )
        .await;
    assert_eq!(filtered["hits"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["hits"][0]["entry"]["value"]["note"], "coffee");

    // A TTL is the store's: the entry carries its expiry.
    let ttl = fixture
        .call(
            "team-a",
            "put",
            json!({"path": ["p"], "key": "t", "value": {}, "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(ttl, json!({"version": 1}));
    let read = fixture
        .call("team-a", "get", json!({"path": ["p"], "key": "t"}))
        .await;
    let entry = &read["entry"];
    let lasts = entry["expires_at_ms"].as_u64().unwrap() - entry["updated_at_ms"].as_u64().unwrap();
    assert_eq!(Duration::from_millis(lasts), Duration::from_secs(60));
}

/// One request of an agent in `namespace`: its status and JSON body.
async fn http(
    service: &Service,
    namespace: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("x-aigw-namespace", namespace)
        .header("x-aigw-agent", "planner");
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let response = service.handle(request.body(Full::new(body)).unwrap()).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn agents_over_http_and_a_plugin_share_a_conversation_within_their_namespace() {
    let fixture = Fixture::start("http", MemoryLimits::default()).await;
    let service = fixture.service();
    let (status, created) = http(
        &service,
        "team-a",
        Method::POST,
        "/v1/conversations",
        Some(json!({"items": [{"role": "user", "content": "what is the weather?"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // The plugin reads the agent's turn and answers in the same conversation.
    let listed = fixture
        .call("team-a", "list-items", json!({"conversation": id}))
        .await;
    assert_eq!(
        listed["items"][0]["item"]["content"][0]["text"],
        "what is the weather?"
    );
    assert_eq!(listed["items"][0]["agent"], "planner");
    let appended = fixture
        .call(
            "team-a",
            "append-items",
            json!({"conversation": id, "items": [{"type": "function_call_output", "call_id": "c1", "output": "sunny"}]}),
        )
        .await;
    let plugin_item = appended["ids"][0].clone();

    // The agent sees the plugin's item, marked as the plugin's.
    let items_path = format!("/v1/conversations/{id}/items?order=asc");
    let (status, page) = http(&service, "team-a", Method::GET, &items_path, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["id"], plugin_item);
    assert_eq!(data[1]["type"], "function_call_output");
    assert_eq!(data[1]["output"], "sunny");
    assert_eq!(data[1]["agent"], "plugin:tool-memory");

    // Team B reaches it neither over HTTP nor through the plugin.
    let (status, _) = http(&service, "team-b", Method::GET, &items_path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let listed = fixture
        .call("team-b", "list-items", json!({"conversation": id}))
        .await;
    assert_eq!(kind(&listed), "not-found");
}

#[tokio::test]
async fn with_redaction_a_plugins_entries_and_items_are_redacted_before_they_are_stored() {
    let store = Arc::new(
        Store::open(StoreOptions::new(temp_db("redaction")))
            .await
            .unwrap(),
    );
    let redactor = aigw_server::Redactor::new(&aigw_server::RedactionOptions {
        patterns: vec![r"\b\d{3}-\d{2}-\d{4}\b".to_owned()],
        ..Default::default()
    })
    .unwrap();
    let memory = PluginMemory::new(Arc::clone(&store)).with_redaction(redactor);
    let scope = aigw_runtime::MemoryScope {
        namespace: Arc::from("tenant"),
        plugin: Arc::from("crm"),
        quota: MemoryQuota::default(),
    };
    memory
        .put(
            scope.clone(),
            aigw_runtime::MemoryPut {
                path: vec!["people".into()],
                key: "bob".into(),
                value_json: json!({"ssn": "123-45-6789", "n": 1}).to_string(),
                ttl: None,
                if_version: None,
            },
        )
        .await
        .unwrap();
    let entry = entries::get(&store, &ns("tenant"), &path(&["people"]), "bob", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::Object(entry.value),
        json!({"ssn": "[REDACTED]", "n": 1})
    );

    let (conversation, _) =
        conversations::create(&store, &ns("tenant"), Default::default(), vec![], None)
            .await
            .unwrap();
    let item = json!({"type": "message", "role": "user",
                      "content": [{"type": "input_text", "text": "ssn 123-45-6789"}]});
    memory
        .append_items(scope, conversation.id.clone(), vec![item.to_string()])
        .await
        .unwrap();
    let stored = conversations::recent(&store, &ns("tenant"), &conversation.id, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored[0].item["content"][0]["text"], "ssn [REDACTED]");
    assert_eq!(stored[0].item["role"], "user");
}
