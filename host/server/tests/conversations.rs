//! The Conversations API driven in-process ([`Service::handle`] over a gateway whose store is
//! a temporary file): the object and list shapes the OpenAI SDKs parse, paging both ways,
//! every limit and its error, and each path by which one namespace could reach another's
//! conversation, refused with the other namespace's data unchanged.

// `Service::handle`'s future, spans' `Instrumented` wrappers included, lays out deeper than
// the default limit of 128 (the library sets the same).
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use aigw_memory::{Store, StoreOptions};
use aigw_router::{HealthRegistry, HealthSettings};
use aigw_server::{Gateway, MAX_REMEMBERED_TARGETS, ServerOptions, Service};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// The item size limit of the tests' stores, small enough to cross cheaply.
const MAX_ITEM_BYTES: usize = 4096;

async fn service(name: &str) -> Service {
    let dir = // Under the target directory and named by test only: each run replaces the last
    // one's files instead of leaving a new directory in /tmp.
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aigw-conv-http-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut options = StoreOptions::new(dir.join("aigw.db"));
    options.max_item_bytes = MAX_ITEM_BYTES;
    let store = Arc::new(Store::open(options).await.unwrap());
    let health = Arc::new(HealthRegistry::new(
        HealthSettings::default(),
        MAX_REMEMBERED_TARGETS,
    ));
    let gateway = Gateway::new([], BTreeMap::new(), health, &ServerOptions::default())
        .unwrap()
        .with_memory(store);
    Service::new(gateway)
}

/// Who sends a request: a namespace (none: the default) and an agent.
#[derive(Clone, Copy, Default)]
struct As<'a> {
    namespace: Option<&'a str>,
    agent: Option<&'a str>,
}

const A: As = As {
    namespace: Some("team-a"),
    agent: None,
};
const B: As = As {
    namespace: Some("team-b"),
    agent: None,
};

struct Answer {
    status: StatusCode,
    allow: Option<String>,
    body: Value,
}

async fn call(
    service: &Service,
    who: As<'_>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(ns) = who.namespace {
        request = request.header("x-aigw-namespace", ns);
    }
    if let Some(agent) = who.agent {
        request = request.header("x-aigw-agent", agent);
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let response = service.handle(request.body(Full::new(body)).unwrap()).await;
    let status = response.status();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"))
    };
    Answer {
        status,
        allow,
        body,
    }
}

async fn ok(
    service: &Service,
    who: As<'_>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let answer = call(service, who, method.clone(), path, body).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{method} {path}: {}",
        answer.body
    );
    answer.body
}

/// Asserts an OpenAI-shaped error with this status, param and code.
fn refused(answer: &Answer, status: StatusCode, param: Option<&str>, code: Option<&str>) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let error = &answer.body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );
    assert!(error["type"].is_string(), "{error}");
    assert_eq!(error["param"].as_str(), param, "{error}");
    if let Some(code) = code {
        assert_eq!(error["code"].as_str(), Some(code), "{error}");
    }
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

async fn create(service: &Service, who: As<'_>, items: Vec<Value>) -> String {
    let created = ok(
        service,
        who,
        Method::POST,
        "/v1/conversations",
        Some(json!({"items": items})),
    )
    .await;
    created["id"].as_str().unwrap().to_owned()
}

fn texts(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["content"][0]["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_endpoint_answers_in_the_sdk_shapes() {
    let service = service("shapes").await;
    let planner = As {
        namespace: Some("team-a"),
        agent: Some("planner"),
    };
    let created = ok(
        &service,
        planner,
        Method::POST,
        "/v1/conversations",
        Some(json!({
            "metadata": {"topic": "trip"},
            "items": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "plan a trip"}]},
                {"id": "__fake_id__", "role": "assistant", "content": "where to?"},
            ],
        })),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("conv_") && id.len() == 53, "{id}");
    assert_eq!(created["object"], "conversation");
    assert!(created["created_at"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(created["metadata"], json!({"topic": "trip"}));
    assert_eq!(created["agent"], "planner");

    let got = ok(
        &service,
        A,
        Method::GET,
        &format!("/v1/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(got, created);

    let updated = ok(
        &service,
        A,
        Method::POST,
        &format!("/v1/conversations/{id}"),
        Some(json!({"metadata": {"topic": "holiday", "n": "2"}})),
    )
    .await;
    assert_eq!(updated["metadata"], json!({"topic": "holiday", "n": "2"}));
    assert_eq!(updated["id"], json!(id));

    let added = ok(
        &service,
        As {
            namespace: Some("team-a"),
            agent: Some("booker"),
        },
        Method::POST,
        &format!("/v1/conversations/{id}/items"),
        Some(json!({"items": [
            {"type": "function_call", "call_id": "call_1", "name": "book", "arguments": "{\"city\":\"Oslo\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "booked"},
        ]})),
    )
    .await;
    assert_eq!(added["object"], "list");
    assert_eq!(added["has_more"], false);
    let data = added["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(
        data[0],
        json!({"id": data[0]["id"], "type": "function_call", "call_id": "call_1", "name": "book",
               "arguments": "{\"city\":\"Oslo\"}", "status": "completed", "agent": "booker"})
    );
    assert!(data[0]["id"].as_str().unwrap().starts_with("fc_"));
    assert!(data[1]["id"].as_str().unwrap().starts_with("fco_"));
    assert_eq!(added["first_id"], data[0]["id"]);
    assert_eq!(added["last_id"], data[1]["id"]);

    let listed = ok(
        &service,
        A,
        Method::GET,
        &format!("/v1/conversations/{id}/items?order=asc"),
        None,
    )
    .await;
    let items = listed["data"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(
        items[1],
        json!({"id": items[1]["id"], "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "where to?", "annotations": []}],
               "agent": "planner"})
    );
    assert_ne!(items[1]["id"], "__fake_id__");
    assert!(items[0]["id"].as_str().unwrap().starts_with("msg_"));

    let item_id = items[0]["id"].as_str().unwrap();
    let item = ok(
        &service,
        A,
        Method::GET,
        &format!("/v1/conversations/{id}/items/{item_id}"),
        None,
    )
    .await;
    assert_eq!(item, items[0]);

    let after_delete = ok(
        &service,
        A,
        Method::DELETE,
        &format!("/v1/conversations/{id}/items/{item_id}"),
        None,
    )
    .await;
    assert_eq!(after_delete["object"], "conversation");
    assert_eq!(after_delete["id"], json!(id));
    let gone = call(
        &service,
        A,
        Method::GET,
        &format!("/v1/conversations/{id}/items/{item_id}"),
        None,
    )
    .await;
    refused(&gone, StatusCode::NOT_FOUND, None, Some("item_not_found"));

    let deleted = ok(
        &service,
        A,
        Method::DELETE,
        &format!("/v1/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(
        deleted,
        json!({"id": id, "object": "conversation.deleted", "deleted": true})
    );
    let gone = call(
        &service,
        A,
        Method::GET,
        &format!("/v1/conversations/{id}"),
        None,
    )
    .await;
    refused(
        &gone,
        StatusCode::NOT_FOUND,
        None,
        Some("conversation_not_found"),
    );
    let gone = call(
        &service,
        A,
        Method::GET,
        &format!("/v1/conversations/{id}/items"),
        None,
    )
    .await;
    refused(
        &gone,
        StatusCode::NOT_FOUND,
        None,
        Some("conversation_not_found"),
    );

    // An empty conversation lists an empty page.
    let empty = create(&service, A, vec![]).await;
    let listed = ok(
        &service,
        A,
        Method::GET,
        &format!("/v1/conversations/{empty}/items"),
        None,
    )
    .await;
    assert_eq!(
        listed,
        json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false})
    );
}

#[tokio::test]
async fn listings_page_both_ways_from_a_cursor() {
    let service = service("paging").await;
    let id = create(
        &service,
        A,
        (0..25).map(|n| user(&format!("m{n:02}"))).collect(),
    )
    .await;
    let items = |query: &str| format!("/v1/conversations/{id}/items{query}");

    // The defaults: 20, newest first.
    let first = ok(&service, A, Method::GET, &items(""), None).await;
    let expected: Vec<String> = (5..25).rev().map(|n| format!("m{n:02}")).collect();
    assert_eq!(texts(&first), expected);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["first_id"], first["data"][0]["id"]);
    assert_eq!(first["last_id"], first["data"][19]["id"]);
    let cursor = first["last_id"].as_str().unwrap();
    let rest = ok(
        &service,
        A,
        Method::GET,
        &items(&format!("?after={cursor}")),
        None,
    )
    .await;
    assert_eq!(texts(&rest), ["m04", "m03", "m02", "m01", "m00"]);
    assert_eq!(rest["has_more"], false);

    let asc = ok(
        &service,
        A,
        Method::GET,
        &items("?order=asc&limit=10"),
        None,
    )
    .await;
    assert_eq!(
        texts(&asc),
        (0..10).map(|n| format!("m{n:02}")).collect::<Vec<_>>()
    );
    assert_eq!(asc["has_more"], true);
    let cursor = asc["last_id"].as_str().unwrap();
    let next = ok(
        &service,
        A,
        Method::GET,
        &items(&format!(
            "?order=asc&limit=10&after={cursor}&include=message.output_text.logprobs"
        )),
        None,
    )
    .await;
    assert_eq!(
        texts(&next),
        (10..20).map(|n| format!("m{n:02}")).collect::<Vec<_>>()
    );
    let cursor = next["last_id"].as_str().unwrap();
    let last = ok(
        &service,
        A,
        Method::GET,
        &items(&format!("?order=asc&limit=10&after={cursor}")),
        None,
    )
    .await;
    assert_eq!(
        texts(&last),
        (20..25).map(|n| format!("m{n:02}")).collect::<Vec<_>>()
    );
    assert_eq!(last["has_more"], false);

    let one = ok(
        &service,
        A,
        Method::GET,
        &items("?limit=1&order=desc"),
        None,
    )
    .await;
    assert_eq!(texts(&one), ["m24"]);
}

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_field() {
    let service = service("limits").await;
    let id = create(&service, A, vec![user("hello")]).await;
    let conv = format!("/v1/conversations/{id}");
    let items = format!("{conv}/items");
    let bad_request = StatusCode::BAD_REQUEST;

    let many: serde_json::Map<String, Value> =
        (0..17).map(|n| (format!("k{n}"), json!("v"))).collect();
    let answer = call(
        &service,
        A,
        Method::POST,
        "/v1/conversations",
        Some(json!({"metadata": many})),
    )
    .await;
    refused(&answer, bad_request, Some("metadata"), None);
    let long_key = "k".repeat(65);
    let answer = call(
        &service,
        A,
        Method::POST,
        &conv,
        Some(json!({"metadata": {long_key: "v"}})),
    )
    .await;
    refused(
        &answer,
        bad_request,
        Some(&format!("metadata.{}", "k".repeat(64))),
        None,
    );
    let answer = call(
        &service,
        A,
        Method::POST,
        &conv,
        Some(json!({"metadata": {"k": "v".repeat(513)}})),
    )
    .await;
    refused(&answer, bad_request, Some("metadata.k"), None);
    let answer = call(
        &service,
        A,
        Method::POST,
        &conv,
        Some(json!({"metadata": {"k": 1}})),
    )
    .await;
    refused(&answer, bad_request, Some("metadata.k"), None);
    let answer = call(&service, A, Method::POST, &conv, Some(json!({}))).await;
    refused(&answer, bad_request, Some("metadata"), None);
    let at_the_limit: serde_json::Map<String, Value> = (0..16)
        .map(|n| (format!("{n:0>64}"), json!("v".repeat(512))))
        .collect();
    ok(
        &service,
        A,
        Method::POST,
        &conv,
        Some(json!({"metadata": at_the_limit})),
    )
    .await;

    let big = user(&"x".repeat(MAX_ITEM_BYTES));
    let answer = call(
        &service,
        A,
        Method::POST,
        &items,
        Some(json!({"items": [user("fine"), big.clone()]})),
    )
    .await;
    refused(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("items[1]"),
        Some("item_too_large"),
    );
    let answer = call(
        &service,
        A,
        Method::POST,
        "/v1/conversations",
        Some(json!({"items": [big]})),
    )
    .await;
    refused(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("items[0]"),
        Some("item_too_large"),
    );
    let too_many: Vec<Value> = (0..1001).map(|_| user("x")).collect();
    let answer = call(
        &service,
        A,
        Method::POST,
        &items,
        Some(json!({"items": too_many})),
    )
    .await;
    refused(&answer, bad_request, Some("items"), None);
    let answer = call(&service, A, Method::POST, &items, Some(json!({}))).await;
    refused(&answer, bad_request, Some("items"), None);
    let answer = call(
        &service,
        A,
        Method::POST,
        &items,
        Some(json!({"items": [user("ok"), {"type": "reasoning"}]})),
    )
    .await;
    refused(&answer, bad_request, Some("items[1].type"), None);
    let answer = call(
        &service,
        A,
        Method::POST,
        &items,
        Some(json!({"items": [{"role": "user"}]})),
    )
    .await;
    refused(&answer, bad_request, Some("items[0].content"), None);
    let answer = call(
        &service,
        A,
        Method::POST,
        &items,
        Some(json!({"items": [], "itemz": []})),
    )
    .await;
    refused(
        &answer,
        bad_request,
        Some("itemz"),
        Some("unknown_parameter"),
    );

    for (query, param) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?order=up", "order"),
        ("?after=msg_nosuchitem", "after"),
    ] {
        let answer = call(&service, A, Method::GET, &format!("{items}{query}"), None).await;
        refused(&answer, bad_request, Some(param), None);
    }
    let other = create(&service, A, vec![user("elsewhere")]).await;
    let listed = ok(
        &service,
        A,
        Method::GET,
        &format!("/v1/conversations/{other}/items"),
        None,
    )
    .await;
    let foreign_item = listed["first_id"].as_str().unwrap();
    let answer = call(
        &service,
        A,
        Method::GET,
        &format!("{items}?after={foreign_item}"),
        None,
    )
    .await;
    refused(&answer, bad_request, Some("after"), Some("invalid_cursor"));
    let answer = call(
        &service,
        A,
        Method::GET,
        &format!("{items}/{foreign_item}"),
        None,
    )
    .await;
    refused(&answer, StatusCode::NOT_FOUND, None, Some("item_not_found"));

    let answer = call(
        &service,
        A,
        Method::GET,
        "/v1/conversations/conv_nosuch",
        None,
    )
    .await;
    refused(
        &answer,
        StatusCode::NOT_FOUND,
        None,
        Some("conversation_not_found"),
    );
    let answer = call(
        &service,
        A,
        Method::POST,
        "/v1/conversations/search",
        Some(json!({"query": "\"unclosed"})),
    )
    .await;
    refused(&answer, bad_request, Some("query"), Some("invalid_query"));
    let answer = call(
        &service,
        A,
        Method::POST,
        "/v1/conversations/search",
        Some(json!({"query": " "})),
    )
    .await;
    refused(&answer, bad_request, Some("query"), None);
    let answer = call(
        &service,
        A,
        Method::POST,
        "/v1/conversations/search",
        Some(json!({"query": "x", "limit": 0})),
    )
    .await;
    refused(&answer, bad_request, Some("limit"), None);

    let answer = call(
        &service,
        A,
        Method::POST,
        "/v1/conversations",
        Some(json!([1])),
    )
    .await;
    refused(&answer, bad_request, None, None);
    let answer = call(
        &service,
        As {
            namespace: Some("a/b"),
            agent: None,
        },
        Method::GET,
        &conv,
        None,
    )
    .await;
    refused(&answer, bad_request, Some("x-aigw-namespace"), None);

    for (method, path, allow) in [
        (Method::GET, "/v1/conversations".to_owned(), "POST"),
        (Method::GET, "/v1/conversations/search".to_owned(), "POST"),
        (Method::PUT, conv.clone(), "GET, POST, DELETE"),
        (Method::DELETE, items.clone(), "GET, POST"),
        (Method::POST, format!("{items}/msg_x"), "GET, DELETE"),
    ] {
        let answer = call(&service, A, method.clone(), &path, None).await;
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(answer.allow.as_deref(), Some(allow), "{method} {path}");
    }
    let answer = call(&service, A, Method::GET, &format!("{items}/x/y"), None).await;
    refused(&answer, StatusCode::NOT_FOUND, None, Some("unknown_url"));

    // Nothing refused was stored.
    let listed = ok(
        &service,
        A,
        Method::GET,
        &format!("{items}?order=asc"),
        None,
    )
    .await;
    assert_eq!(texts(&listed), ["hello"]);
}

#[tokio::test]
async fn another_namespace_reaches_nothing() {
    let service = service("namespaces").await;
    let id = ok(
        &service,
        A,
        Method::POST,
        "/v1/conversations",
        Some(json!({"metadata": {"owner": "a"}, "items": [user("secret plans")]})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let conv = format!("/v1/conversations/{id}");
    let items = format!("{conv}/items");
    let before = ok(&service, A, Method::GET, &items, None).await;
    let item = before["first_id"].as_str().unwrap().to_owned();
    let not_found = Some("conversation_not_found");

    let denied = [
        (Method::GET, conv.clone(), None),
        (
            Method::POST,
            conv.clone(),
            Some(json!({"metadata": {"owner": "b"}})),
        ),
        (Method::DELETE, conv.clone(), None),
        (Method::GET, items.clone(), None),
        (
            Method::POST,
            items.clone(),
            Some(json!({"items": [user("injected")]})),
        ),
        (Method::GET, format!("{items}/{item}"), None),
        (Method::DELETE, format!("{items}/{item}"), None),
        (
            Method::POST,
            "/v1/conversations/search".to_owned(),
            Some(json!({"query": "secret", "conversation_id": id})),
        ),
    ];
    for (method, path, body) in denied {
        for who in [B, As::default()] {
            let answer = call(&service, who, method.clone(), &path, body.clone()).await;
            refused(&answer, StatusCode::NOT_FOUND, None, not_found);
        }
    }
    let found = ok(
        &service,
        B,
        Method::POST,
        "/v1/conversations/search",
        Some(json!({"query": "secret"})),
    )
    .await;
    assert_eq!(found["data"], json!([]));

    // Namespace a's conversation is as it was.
    let still = ok(&service, A, Method::GET, &conv, None).await;
    assert_eq!(still["metadata"], json!({"owner": "a"}));
    assert_eq!(ok(&service, A, Method::GET, &items, None).await, before);
    let found = ok(
        &service,
        A,
        Method::POST,
        "/v1/conversations/search",
        Some(json!({"query": "secret"})),
    )
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn search_finds_items_with_their_conversation_and_score() {
    let service = service("search").await;
    let trip = create(
        &service,
        A,
        vec![
            user("a trip to Lisbon"),
            user("Lisbon trams and Lisbon food"),
        ],
    )
    .await;
    let other = create(
        &service,
        A,
        vec![user("nothing here"), user("Lisbon again")],
    )
    .await;
    let found = ok(
        &service,
        A,
        Method::POST,
        "/v1/conversations/search",
        Some(json!({"query": "lisbon"})),
    )
    .await;
    assert_eq!(found["object"], "list");
    let data = found["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(
        data[0]["content"][0]["text"],
        "Lisbon trams and Lisbon food"
    );
    assert_eq!(data[0]["conversation_id"], json!(trip));
    let scores: Vec<f64> = data.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let found = ok(
        &service,
        A,
        Method::POST,
        "/v1/conversations/search",
        Some(json!({"query": "lisbon", "conversation_id": other, "limit": 5})),
    )
    .await;
    assert_eq!(texts(&found), ["Lisbon again"]);
}
