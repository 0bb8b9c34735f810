//! The key-value store's HTTP surface driven in-process (LangGraph's REST form under
//! `/v1/store/`): shapes and status codes, compare-and-set, time to live with a moved clock,
//! tenants that cannot see or change each other's entries, and every bad input answered in the
//! OpenAI error shape with the field named.

// `Service::handle`'s future, spans' `Instrumented` wrappers included, lays out deeper than
// the default limit of 128 (the library sets the same).
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aigw_memory::{ManualClock, Store, StoreOptions};
use aigw_router::{HealthRegistry, HealthSettings};
use aigw_server::{Body, Gateway, MAX_REMEMBERED_TARGETS, ServerOptions, Service};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

const START_MS: i64 = 1_796_136_484_123;

struct Fixture {
    service: Service,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START_MS));
    let mut options = StoreOptions::new(dir.path().join("aigw.db"));
    options.clock = clock.clone();
    let store = Arc::new(Store::open(options).await.unwrap());
    let gateway = bare_gateway().with_memory(store);
    Fixture {
        service: Service::new(gateway),
        clock,
        _dir: dir,
    }
}

fn bare_gateway() -> Gateway {
    let health = Arc::new(HealthRegistry::new(
        HealthSettings::default(),
        MAX_REMEMBERED_TARGETS,
    ));
    Gateway::new([], BTreeMap::new(), health, &ServerOptions::default()).unwrap()
}

/// Who sends a request: its tenant and agent headers.
#[derive(Clone, Copy)]
struct As {
    namespace: Option<&'static str>,
    agent: Option<&'static str>,
}

const A: As = As {
    namespace: Some("tenant-a"),
    agent: Some("planner"),
};
const B: As = As {
    namespace: Some("tenant-b"),
    agent: None,
};

fn request(who: As, method: Method, uri: &str, body: Option<Value>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(namespace) = who.namespace {
        builder = builder.header("x-aigw-namespace", namespace);
    }
    if let Some(agent) = who.agent {
        builder = builder.header("x-aigw-agent", agent);
    }
    let bytes = match body {
        Some(body) => {
            builder = builder.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    builder.body(Full::new(bytes)).unwrap()
}

async fn call(
    f: &Fixture,
    who: As,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value, http::HeaderMap) {
    let response: Response<Body> = f.service.handle(request(who, method, uri, body)).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, value, headers)
}

async fn put(f: &Fixture, who: As, body: Value) -> (StatusCode, Value, http::HeaderMap) {
    call(f, who, Method::PUT, "/v1/store/items", Some(body)).await
}

async fn get(f: &Fixture, who: As, query: &str) -> (StatusCode, Value) {
    let (status, value, _) = call(
        f,
        who,
        Method::GET,
        &format!("/v1/store/items?{query}"),
        None,
    )
    .await;
    (status, value)
}

async fn search(f: &Fixture, who: As, body: Value) -> Vec<Value> {
    let (status, value, _) = call(f, who, Method::POST, "/v1/store/items/search", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    value["items"].as_array().unwrap().clone()
}

async fn namespaces(f: &Fixture, who: As, body: Value) -> Value {
    let (status, value, _) = call(f, who, Method::POST, "/v1/store/namespaces", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    value["namespaces"].clone()
}

fn keys(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["key"].as_str().unwrap()).collect()
}

/// The error's status, `param` and `code`.
async fn refused(
    f: &Fixture,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Option<String>) {
    let (status, value, _) = call(f, A, method, uri, body).await;
    assert!(value["error"]["message"].is_string(), "{value}");
    assert!(value["error"]["type"].is_string(), "{value}");
    let text = |v: &Value| v.as_str().map(str::to_owned);
    (
        status,
        text(&value["error"]["param"]),
        text(&value["error"]["code"]),
    )
}

#[tokio::test]
async fn items_are_put_got_searched_listed_and_deleted_in_langgraphs_shapes() {
    let f = fixture().await;
    let (status, body, headers) = put(
        &f,
        A,
        json!({"namespace": ["docs", "tea"], "key": "green", "value": {"text": "green tea is grassy", "rank": 2}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    assert_eq!(headers["x-aigw-entry-version"], "1");
    f.clock.advance(Duration::from_secs(1));
    put(
        &f,
        A,
        json!({"namespace": ["docs", "tea"], "key": "black", "value": {"text": "black tea, strong tea, tea", "rank": 5}}),
    )
    .await;
    put(
        &f,
        A,
        json!({"namespace": ["docs", "coffee"], "key": "espresso", "value": {"text": "no leaves"}}),
    )
    .await;

    let (status, item) = get(&f, A, "namespace=docs.tea&key=green").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        item,
        json!({
            "namespace": ["docs", "tea"],
            "key": "green",
            "value": {"text": "green tea is grassy", "rank": 2},
            "created_at": "2026-12-01T14:48:04.123000+00:00",
            "updated_at": "2026-12-01T14:48:04.123000+00:00",
            "version": 1,
            "agent": "planner",
        })
    );

    // Ranked by bm25 with a score; filtered; paged.
    let items = search(&f, A, json!({"namespace_prefix": ["docs"], "query": "tea"})).await;
    assert_eq!(keys(&items), ["black", "green"]);
    assert!(items[0]["score"].as_f64().unwrap() > items[1]["score"].as_f64().unwrap());
    let items = search(
        &f,
        A,
        json!({"namespace_prefix": ["docs"], "filter": {"rank": {"$gte": 3}}, "limit": 5, "offset": 0}),
    )
    .await;
    assert_eq!(keys(&items), ["black"]);
    assert_eq!(items[0]["score"], Value::Null);
    let items = search(
        &f,
        A,
        json!({"namespace_prefix": ["docs"], "limit": 1, "offset": 1}),
    )
    .await;
    assert_eq!(items.len(), 1);

    assert_eq!(
        namespaces(&f, A, json!({})).await,
        json!([["docs", "coffee"], ["docs", "tea"]])
    );
    assert_eq!(
        namespaces(&f, A, json!({"max_depth": 1})).await,
        json!([["docs"]])
    );
    assert_eq!(
        namespaces(
            &f,
            A,
            json!({"prefix": ["docs"], "suffix": ["tea"], "limit": 10, "offset": 0})
        )
        .await,
        json!([["docs", "tea"]])
    );

    let (status, body, _) = call(
        &f,
        A,
        Method::DELETE,
        "/v1/store/items",
        Some(json!({"namespace": ["docs", "tea"], "key": "green"})),
    )
    .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    // A miss is `null`, as LangGraph's server answers (the SDK returns None).
    assert_eq!(
        get(&f, A, "namespace=docs.tea&key=green").await,
        (StatusCode::OK, Value::Null)
    );
}

#[tokio::test]
async fn a_stale_if_version_is_a_409_naming_the_current_version() {
    let f = fixture().await;
    let entry = |v: Value| json!({"namespace": ["cas"], "key": "k", "value": v, "if_version": 0});
    let (status, _, headers) = put(&f, A, entry(json!({"n": 1}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["x-aigw-entry-version"], "1");
    let (status, body, _) = put(&f, A, entry(json!({"n": 2}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "version_conflict");
    assert_eq!(body["error"]["param"], "if_version");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("current version is 1"),
        "{body}"
    );
    let (status, _, headers) = put(
        &f,
        A,
        json!({"namespace": ["cas"], "key": "k", "value": {"n": 3}, "if_version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["x-aigw-entry-version"], "2");
    let (_, item) = get(&f, A, "namespace=cas&key=k").await;
    assert_eq!(item["version"], 2);
    assert_eq!(item["value"], json!({"n": 3}));
}

#[tokio::test]
async fn an_entry_past_its_ttl_is_gone_from_every_read() {
    let f = fixture().await;
    // ttl is in minutes, fractions allowed.
    put(
        &f,
        A,
        json!({"namespace": ["t"], "key": "k", "value": {"text": "walrus"}, "ttl": 0.5}),
    )
    .await;
    f.clock.advance(Duration::from_secs(20));
    // A read refreshes by default...
    assert_eq!(get(&f, A, "namespace=t&key=k").await.0, StatusCode::OK);
    f.clock.advance(Duration::from_secs(20));
    // ...so 40 s after the put it is still there; this read does not refresh.
    assert!(
        get(&f, A, "namespace=t&key=k&refresh_ttl=false")
            .await
            .1
            .is_object()
    );
    f.clock.advance(Duration::from_secs(11));
    assert_eq!(get(&f, A, "namespace=t&key=k").await.1, Value::Null);
    assert!(
        search(&f, A, json!({"namespace_prefix": ["t"], "query": "walrus"}))
            .await
            .is_empty()
    );
    assert_eq!(namespaces(&f, A, json!({})).await, json!([]));
}

#[tokio::test]
async fn one_tenant_never_reads_or_changes_anothers_entries() {
    let f = fixture().await;
    put(
        &f,
        A,
        json!({"namespace": ["shared"], "key": "plan", "value": {"text": "secret walrus"}}),
    )
    .await;
    // Get, search, list: nothing there for B.
    assert_eq!(
        get(&f, B, "namespace=shared&key=plan").await,
        (StatusCode::OK, Value::Null)
    );
    assert!(
        search(&f, B, json!({"namespace_prefix": [], "query": "walrus"}))
            .await
            .is_empty()
    );
    assert!(
        search(&f, B, json!({"namespace_prefix": ["shared"]}))
            .await
            .is_empty()
    );
    assert_eq!(namespaces(&f, B, json!({})).await, json!([]));
    // B's delete answers as LangGraph does and leaves A's entry.
    let (status, _, _) = call(
        &f,
        B,
        Method::DELETE,
        "/v1/store/items",
        Some(json!({"namespace": ["shared"], "key": "plan"})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&f, A, "namespace=shared&key=plan").await.1["value"]["text"],
        "secret walrus"
    );
    // B's put of the same path and key makes B's own entry; A's is untouched. B's compare-and-set
    // sees only its own: version 0 (absent) holds.
    let (status, _, headers) = put(
        &f,
        B,
        json!({"namespace": ["shared"], "key": "plan", "value": {"text": "b's walrus"}, "if_version": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["x-aigw-entry-version"], "1");
    let (_, theirs) = get(&f, A, "namespace=shared&key=plan").await;
    assert_eq!(theirs["value"]["text"], "secret walrus");
    assert_eq!(theirs["agent"], "planner");
    let (_, own) = get(&f, B, "namespace=shared&key=plan").await;
    assert_eq!(own["value"]["text"], "b's walrus");
    assert_eq!(own["agent"], Value::Null);
    // The default namespace is a tenant of its own too.
    let nobody = As {
        namespace: None,
        agent: None,
    };
    assert_eq!(
        get(&f, nobody, "namespace=shared&key=plan").await.1,
        Value::Null
    );
}

#[tokio::test]
async fn bad_input_is_an_openai_error_naming_the_field() {
    let f = fixture().await;
    let put_body = |extra: Value| {
        let mut body = json!({"namespace": ["a"], "key": "k", "value": {}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        Some(body)
    };
    let items = "/v1/store/items";
    for (body, param) in [
        (
            put_body(json!({"namespace": ["ok", "a.b"]})),
            "namespace[1]",
        ),
        (put_body(json!({"namespace": ["ok", ""]})), "namespace[1]"),
        (put_body(json!({"namespace": ["ok", 3]})), "namespace[1]"),
        (put_body(json!({"namespace": []})), "namespace"),
        (put_body(json!({"namespace": "a"})), "namespace"),
        (put_body(json!({"key": null})), "key"),
        (put_body(json!({"key": ""})), "key"),
        (put_body(json!({"value": [1]})), "value"),
        (put_body(json!({"value": "text"})), "value"),
        (put_body(json!({"ttl": -1})), "ttl"),
        (put_body(json!({"ttl": "soon"})), "ttl"),
        (put_body(json!({"index": true})), "index"),
        (put_body(json!({"index": ["a[x]"]})), "index[0]"),
        (put_body(json!({"if_version": -1})), "if_version"),
    ] {
        let (status, got, _) = refused(&f, Method::PUT, items, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(got.as_deref(), Some(param), "{body:?}");
    }
    let big = "x".repeat(aigw_memory::entries::MAX_VALUE_BYTES);
    let (status, param, code) = refused(
        &f,
        Method::PUT,
        items,
        put_body(json!({"value": {"big": big}})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(param.as_deref(), Some("value"));
    assert_eq!(code.as_deref(), Some("value_too_large"));

    let search = "/v1/store/items/search";
    for (body, param) in [
        (
            json!({"namespace_prefix": ["a"], "filter": {"x": {"$like": 1}}}),
            "filter.x",
        ),
        (json!({"namespace_prefix": ["a"], "filter": [1]}), "filter"),
        (json!({"namespace_prefix": ["a"], "limit": 0}), "limit"),
        (json!({"namespace_prefix": ["a"], "limit": 1001}), "limit"),
        (json!({"namespace_prefix": ["a"], "offset": -1}), "offset"),
        (json!({"namespace_prefix": ["a"], "query": 1}), "query"),
        (json!({"namespace_prefix": ["a.b"]}), "namespace_prefix[0]"),
        (
            json!({"namespace_prefix": ["a"], "refresh_ttl": "yes"}),
            "refresh_ttl",
        ),
    ] {
        let (status, got, _) = refused(&f, Method::POST, search, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(got.as_deref(), Some(param), "{body}");
    }
    for (body, param) in [
        (json!({"max_depth": 0}), "max_depth"),
        (json!({"prefix": ["a", ""]}), "prefix[1]"),
        (json!({"suffix": "a"}), "suffix"),
    ] {
        let (status, got, _) =
            refused(&f, Method::POST, "/v1/store/namespaces", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(got.as_deref(), Some(param), "{body}");
    }
    for (query, param) in [
        ("key=k", "namespace"),
        ("namespace=&key=k", "namespace"),
        ("namespace=a..b&key=k", "namespace[1]"),
        ("namespace=a", "key"),
        ("namespace=a&key=k&refresh_ttl=maybe", "refresh_ttl"),
    ] {
        let (status, got, _) = refused(&f, Method::GET, &format!("{items}?{query}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(got.as_deref(), Some(param), "{query}");
    }
    // The body itself, the media type, the method, the path.
    let not_json = Request::builder()
        .method(Method::PUT)
        .uri(items)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{nope")))
        .unwrap();
    let response = f.service.handle(not_json).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text_body = Request::builder()
        .method(Method::PUT)
        .uri(items)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(
        f.service.handle(text_body).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let (status, _, _) = refused(&f, Method::PATCH, items, Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, code) = refused(&f, Method::POST, "/v1/store/other", Some(json!({}))).await;
    assert_eq!(
        (status, code.as_deref()),
        (StatusCode::NOT_FOUND, Some("unknown_url"))
    );
    let bad_tenant = As {
        namespace: Some("a/b"),
        agent: None,
    };
    let (status, value, _) = call(
        &f,
        bad_tenant,
        Method::GET,
        "/v1/store/items?namespace=a&key=k",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(value["error"]["param"], "x-aigw-namespace");
    // Nothing refused was written.
    assert_eq!(namespaces(&f, A, json!({})).await, json!([]));
}

#[tokio::test]
async fn a_gateway_without_a_store_answers_503() {
    let service = Service::new(bare_gateway());
    let response = service
        .handle(request(
            A,
            Method::GET,
            "/v1/store/items?namespace=a&key=k",
            None,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
