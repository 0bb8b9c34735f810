//! Conversations through the real binary: the official OpenAI Python SDK's every
//! `client.conversations.*` call, unmodified; and 64 writers appending to one conversation at
//! once, over HTTP, losing nothing and keeping one total order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aigw_tests::gateway::Gateway;
use aigw_tests::python::Check;
use serde_json::{Value, json};

#[tokio::test]
async fn the_openai_python_sdk_speaks_to_the_gateways_conversations() {
    let gateway = Gateway::start("").await;
    Check {
        script: "conversations_check.py",
        imports: "openai, agents",
        env: &[],
        expect: &[
            "ok create with items and metadata",
            "ok retrieve",
            "ok update",
            "ok items.create",
            "ok items.list with after, limit and order",
            "ok auto-pagination",
            "ok items.retrieve",
            "ok items.delete",
            "ok NotFoundError for a foreign id",
            "ok BadRequestError naming the param",
            "ok delete",
            "ok an empty conversation",
            "ok agents session",
        ],
    }
    .run(&gateway)
    .await;
}

/// Writers, requests per writer, items per request.
const WRITERS: usize = 64;
const REQUESTS: usize = 8;
const PER_REQUEST: usize = 2;

/// One acknowledged append: who sent it, when (on one logical clock shared by all writers) it
/// was sent and acknowledged, and the ids it got.
struct Append {
    writer: usize,
    request: usize,
    sent: u64,
    acked: u64,
    ids: Vec<String>,
}

#[tokio::test]
async fn sixty_four_concurrent_writers_lose_nothing_and_keep_one_order() {
    let gateway = Gateway::start("").await;
    let client = gateway.client().clone();
    let created: Value = client
        .post(gateway.url("/v1/conversations"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let items_url = gateway.url(&format!("/v1/conversations/{id}/items"));

    let clock = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (client, url, clock) = (client.clone(), items_url.clone(), Arc::clone(&clock));
        writers.push(tokio::spawn(async move {
            let mut appends = Vec::new();
            for request in 0..REQUESTS {
                let items: Vec<Value> = (0..PER_REQUEST)
                    .map(|n| json!({"role": "user", "content": format!("w{writer} r{request} n{n}")}))
                    .collect();
                let sent = clock.fetch_add(1, Ordering::SeqCst);
                let response = client
                    .post(&url)
                    .header("x-aigw-agent", format!("writer-{writer}"))
                    .json(&json!({"items": items}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "writer {writer} request {request}");
                let body: Value = response.json().await.unwrap();
                let acked = clock.fetch_add(1, Ordering::SeqCst);
                let ids = body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|item| item["id"].as_str().unwrap().to_owned())
                    .collect();
                appends.push(Append {
                    writer,
                    request,
                    sent,
                    acked,
                    ids,
                });
            }
            appends
        }));
    }
    let mut appends = Vec::new();
    for writer in writers {
        appends.extend(writer.await.unwrap());
    }

    // The whole conversation, oldest first, through the cursor.
    let mut listed: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{items_url}?order=asc&limit=100");
        if let Some(after) = &after {
            url.push_str(&format!("&after={after}"));
        }
        let page: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        listed.extend(page["data"].as_array().unwrap().iter().cloned());
        if page["has_more"] == false {
            break;
        }
        after = Some(page["last_id"].as_str().unwrap().to_owned());
    }
    let total = WRITERS * REQUESTS * PER_REQUEST;
    assert_eq!(
        listed.len(),
        total,
        "every acknowledged item, and nothing else"
    );
    let position: HashMap<&str, usize> = listed
        .iter()
        .enumerate()
        .map(|(at, item)| (item["id"].as_str().unwrap(), at))
        .collect();
    assert_eq!(position.len(), total, "each item exactly once");
    let acknowledged: HashSet<&str> = appends
        .iter()
        .flat_map(|a| a.ids.iter().map(String::as_str))
        .collect();
    assert_eq!(
        acknowledged,
        position.keys().copied().collect::<HashSet<_>>()
    );

    for append in &appends {
        // A request's items stand together, in the order sent, with what was sent.
        let at: Vec<usize> = append.ids.iter().map(|id| position[id.as_str()]).collect();
        assert!(
            at.windows(2).all(|w| w[1] == w[0] + 1),
            "writer {} request {}: its items are not contiguous: {at:?}",
            append.writer,
            append.request
        );
        for (n, &p) in at.iter().enumerate() {
            let item = &listed[p];
            assert_eq!(
                item["content"][0]["text"],
                format!("w{} r{} n{n}", append.writer, append.request)
            );
            assert_eq!(item["agent"], format!("writer-{}", append.writer));
        }
    }
    // One total order that agrees with real time: an append acknowledged before another was
    // sent comes before it (each writer's own appends among them, in its send order).
    let mut by_position: Vec<&Append> = appends.iter().collect();
    by_position.sort_by_key(|a| position[a.ids[0].as_str()]);
    let mut earliest_ack_after = u64::MAX;
    for append in by_position.iter().rev() {
        assert!(
            earliest_ack_after > append.sent,
            "writer {} request {} is listed before an append acknowledged before it was sent",
            append.writer,
            append.request
        );
        earliest_ack_after = earliest_ack_after.min(append.acked);
    }
    for writer in 0..WRITERS {
        let mine: Vec<usize> = by_position
            .iter()
            .filter(|a| a.writer == writer)
            .map(|a| a.request)
            .collect();
        assert_eq!(mine, (0..REQUESTS).collect::<Vec<_>>(), "writer {writer}");
    }
}
