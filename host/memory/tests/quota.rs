//! Quotas per writer on a real database file: a writer's entries and conversation items count
//! together, in records and bytes, per namespace; a refused write writes nothing; replacing,
//! deleting and expiring free room; other writers' data does not count; and writes racing for
//! the last room cannot together exceed the quota, since the count and the write are one write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aigw_memory::conversations::{self, NewItem};
use aigw_memory::entries::{self, EntryPath, Index, Put};
use aigw_memory::{ManualClock, Namespace, Quota, Store, StoreOptions};
use serde_json::{Map, Value, json};

fn temp_db(name: &str) -> PathBuf {
    let dir = // Under the target directory and named by test only: each run replaces the last
    // one's files instead of leaving a new directory in /tmp.
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aigw-quota-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("aigw.db")
}

async fn open(name: &str) -> (Arc<Store>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let mut options = StoreOptions::new(temp_db(name));
    options.clock = clock.clone();
    (Arc::new(Store::open(options).await.unwrap()), clock)
}

fn ns(name: &str) -> Namespace {
    Namespace::parse(name).unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn put(key: &str, value: Value) -> Put {
    Put {
        path: EntryPath::parse(vec!["p".into()], "path").unwrap(),
        key: key.into(),
        value: object(value),
        index: Index::default(),
        ttl: None,
        if_version: None,
        agent: None,
    }
}

fn quota(records: u64, bytes: u64) -> Quota {
    Quota {
        agent: "plugin:p".into(),
        records,
        bytes,
    }
}

fn message(text: &str) -> NewItem {
    NewItem {
        item: object(
            json!({"type": "message", "role": "user", "status": "completed",
                            "content": [{"type": "input_text", "text": text}]}),
        ),
        agent: None,
    }
}

#[tokio::test]
async fn entries_and_items_count_together_and_a_refused_write_writes_nothing() {
    let (store, _) = open("together").await;
    let a = ns("team-a");
    let q = quota(3, 1 << 20);
    let (conversation, _) = conversations::create(&store, &a, Default::default(), Vec::new(), None)
        .await
        .unwrap();
    for key in ["k1", "k2"] {
        let entry = entries::put_within_quota(&store, &a, put(key, json!({"n": 1})), &q)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            entry.agent.as_deref(),
            Some("plugin:p"),
            "written as the quota's agent"
        );
    }
    let items =
        conversations::append_within_quota(&store, &a, &conversation.id, vec![message("hi")], &q)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(items[0].agent.as_deref(), Some("plugin:p"));

    let over = entries::put_within_quota(&store, &a, put("k3", json!({"n": 3})), &q)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!((over.records, over.quota.records), (4, 3));
    assert!(
        over.to_string().contains("plugin:p would hold 4 records"),
        "{over}"
    );
    let path = EntryPath::parse(vec!["p".into()], "path").unwrap();
    assert_eq!(
        entries::get(&store, &a, &path, "k3", false).await.unwrap(),
        None
    );
    let over =
        conversations::append_within_quota(&store, &a, &conversation.id, vec![message("more")], &q)
            .await
            .unwrap();
    assert!(over.is_err());
    let recent = conversations::recent(&store, &a, &conversation.id, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recent.len(), 1, "a refused append writes nothing");

    // Replacing its own entry: no new record. Deleting one frees room.
    let replaced = entries::put_within_quota(&store, &a, put("k1", json!({"n": 2})), &q)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.version, 2);
    assert!(entries::delete(&store, &a, &path, "k2").await.unwrap());
    entries::put_within_quota(&store, &a, put("k3", json!({"n": 3})), &q)
        .await
        .unwrap()
        .unwrap();

    // Another namespace, another writer: neither counts.
    let b = ns("team-b");
    entries::put_within_quota(&store, &b, put("k1", json!({"n": 1})), &q)
        .await
        .unwrap()
        .unwrap();
    let other = Quota {
        agent: "plugin:other".into(),
        ..q.clone()
    };
    entries::put_within_quota(&store, &a, put("o1", json!({"n": 1})), &other)
        .await
        .unwrap()
        .unwrap();
    // Taking over another writer's entry makes it this writer's: it needs room.
    let taken = entries::put_within_quota(&store, &a, put("o1", json!({"n": 2})), &q)
        .await
        .unwrap();
    assert!(
        taken.is_err(),
        "o1 is plugin:other's, so it counts as a new record for plugin:p"
    );
}

#[tokio::test]
async fn bytes_count_and_an_expired_entry_frees_its_room() {
    let (store, clock) = open("bytes").await;
    let a = ns("team-a");
    let value = json!({"t": "x".repeat(40)}); // 48 bytes as JSON
    let q = quota(100, 100);
    let mut short = put("short", value.clone());
    short.ttl = Some(Duration::from_secs(60));
    entries::put_within_quota(&store, &a, short, &q)
        .await
        .unwrap()
        .unwrap();
    entries::put_within_quota(&store, &a, put("long", value.clone()), &q)
        .await
        .unwrap()
        .unwrap();
    let over = entries::put_within_quota(&store, &a, put("third", value.clone()), &q)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(over.bytes, 144);
    clock.advance(Duration::from_secs(61));
    entries::put_within_quota(&store, &a, put("third", value), &q)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn writes_racing_for_the_last_room_do_not_together_exceed_the_quota() {
    let (store, _) = open("race").await;
    let q = quota(5, 1 << 20);
    let writers: Vec<_> = (0..32)
        .map(|i| {
            let (store, q) = (Arc::clone(&store), q.clone());
            tokio::spawn(async move {
                entries::put_within_quota(
                    &store,
                    &ns("team-a"),
                    put(&format!("k{i}"), json!({"i": i})),
                    &q,
                )
                .await
                .unwrap()
                .is_ok()
            })
        })
        .collect();
    let mut admitted = 0;
    for writer in writers {
        admitted += usize::from(writer.await.unwrap());
    }
    assert_eq!(admitted, 5);
    let prefix = EntryPath::prefix(vec!["p".into()], "prefix").unwrap();
    let search = entries::Search {
        prefix,
        filter: Vec::new(),
        query: None,
        limit: 100,
        offset: 0,
        refresh_ttl: false,
    };
    let held = entries::search(&store, &ns("team-a"), search)
        .await
        .unwrap();
    assert_eq!(held.len(), 5);
}

#[tokio::test]
async fn an_unknown_conversation_is_not_found_before_any_quota() {
    let (store, _) = open("unknown").await;
    let refused = conversations::append_within_quota(
        &store,
        &ns("team-a"),
        "conv_nope",
        vec![message("x")],
        &quota(0, 0),
    )
    .await;
    assert_eq!(
        refused,
        Err(conversations::ConversationError::ConversationNotFound)
    );
}

#[tokio::test]
async fn what_anyone_deletes_or_takes_over_frees_the_writers_room() {
    let (store, clock) = open("freed").await;
    let a = ns("team-a");
    let q = quota(2, 1 << 20);
    let full = |store: Arc<Store>, key: &'static str| async move {
        entries::put_within_quota(
            &store,
            &ns("team-a"),
            put(key, json!({"n": 1})),
            &quota(2, 1 << 20),
        )
        .await
        .unwrap()
    };

    // Items freed by deleting their conversation (its items go with it).
    let (conversation, _) = conversations::create(&store, &a, Default::default(), Vec::new(), None)
        .await
        .unwrap();
    conversations::append_within_quota(
        &store,
        &a,
        &conversation.id,
        vec![message("1"), message("2")],
        &q,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(full(Arc::clone(&store), "k1").await.is_err());
    conversations::delete(&store, &a, &conversation.id)
        .await
        .unwrap();
    assert!(full(Arc::clone(&store), "k1").await.is_ok());

    // An entry another writer overwrites is no longer the plugin's.
    assert!(full(Arc::clone(&store), "k2").await.is_ok());
    assert!(full(Arc::clone(&store), "k3").await.is_err());
    entries::put(
        &store,
        &a,
        Put {
            agent: Some("planner".into()),
            ..put("k1", json!({"n": 2}))
        },
    )
    .await
    .unwrap();
    assert!(full(Arc::clone(&store), "k3").await.is_ok());

    // An expired entry frees its room at once, and stays freed once the sweeper deletes it.
    let mut short = put("k4", json!({"n": 4}));
    short.ttl = Some(Duration::from_secs(1));
    entries::put(
        &store,
        &a,
        Put {
            agent: Some("planner".into()),
            ..short.clone()
        },
    )
    .await
    .unwrap();
    entries::delete(
        &store,
        &a,
        &EntryPath::parse(vec!["p".into()], "path").unwrap(),
        "k2",
    )
    .await
    .unwrap();
    entries::put_within_quota(&store, &a, short, &q)
        .await
        .unwrap()
        .unwrap();
    assert!(full(Arc::clone(&store), "k5").await.is_err());
    clock.advance(Duration::from_secs(2));
    assert!(full(Arc::clone(&store), "k5").await.is_ok());
    assert!(full(Arc::clone(&store), "k6").await.is_err());
    assert_eq!(entries::sweep_expired(&store).await.unwrap(), 1);
    assert!(
        full(Arc::clone(&store), "k6").await.is_err(),
        "k3 and k5 are held"
    );
    entries::delete(
        &store,
        &a,
        &EntryPath::parse(vec!["p".into()], "path").unwrap(),
        "k5",
    )
    .await
    .unwrap();
    assert!(full(Arc::clone(&store), "k6").await.is_ok());
}
