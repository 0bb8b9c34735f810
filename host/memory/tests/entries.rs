//! Key-value entries on a real database file: compare-and-set, time to live with a moved clock
//! (expired entries never returned, the sweeper deleting them and their full-text rows), search
//! ranking and filters, listing namespaces, and tenants that cannot see each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aigw_memory::entries::{
    self, Entry, EntryError, EntryPath, FieldPath, Index, ListNamespaces, Put, Search,
};
use aigw_memory::{ManualClock, Namespace, Store, StoreOptions};
use serde_json::{Map, Value, json};

const START_MS: i64 = 1_800_000_000_000;
const MINUTE: Duration = Duration::from_secs(60);

fn temp_db(name: &str) -> PathBuf {
    let dir = // Under the target directory and named by test only: each run replaces the last
    // one's files instead of leaving a new directory in /tmp.
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aigw-entries-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("aigw.db")
}

async fn open(name: &str) -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START_MS));
    let mut options = StoreOptions::new(temp_db(name));
    options.clock = clock.clone();
    (Store::open(options).await.unwrap(), clock)
}

fn ns(name: &str) -> Namespace {
    Namespace::parse(name).unwrap()
}

fn path(labels: &[&str]) -> EntryPath {
    EntryPath::parse(
        labels.iter().map(|l| (*l).to_owned()).collect(),
        "namespace",
    )
    .unwrap()
}

fn prefix(labels: &[&str]) -> EntryPath {
    EntryPath::prefix(labels.iter().map(|l| (*l).to_owned()).collect(), "prefix").unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn put_of(labels: &[&str], key: &str, value: Value) -> Put {
    Put {
        path: path(labels),
        key: key.into(),
        value: object(value),
        index: Index::All,
        ttl: None,
        if_version: None,
        agent: None,
    }
}

fn search_of(labels: &[&str]) -> Search {
    Search {
        prefix: prefix(labels),
        filter: Vec::new(),
        query: None,
        limit: 10,
        offset: 0,
        refresh_ttl: false,
    }
}

fn keys(hits: &[entries::Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.entry.key.as_str()).collect()
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    store
        .read(move |c| {
            Box::pin(async move {
                let mut rows = c.query(sql, ()).await?;
                Ok(rows.next().await?.unwrap().get::<i64>(0)?)
            })
        })
        .await
        .unwrap()
}

async fn get(store: &Store, tenant: &str, labels: &[&str], key: &str) -> Option<Entry> {
    entries::get(store, &ns(tenant), &path(labels), key, false)
        .await
        .unwrap()
}

#[tokio::test]
async fn compare_and_set_by_version() {
    let (store, clock) = open("cas").await;
    let a = ns("a");
    let mut put = put_of(&["users", "1"], "prefs", json!({"theme": "dark"}));
    put.if_version = Some(0);
    put.agent = Some("planner".into());
    let first = entries::put(&store, &a, put.clone()).await.unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.agent.as_deref(), Some("planner"));

    // Must not exist: it does.
    let error = entries::put(&store, &a, put.clone()).await.unwrap_err();
    assert_eq!(
        error,
        EntryError::Conflict {
            expected: 0,
            current: 1
        }
    );

    clock.advance(Duration::from_secs(5));
    put.if_version = Some(1);
    put.value = object(json!({"theme": "light"}));
    put.agent = Some("critic".into());
    let second = entries::put(&store, &a, put.clone()).await.unwrap();
    assert_eq!(second.version, 2);
    // A stale version loses, and changes nothing.
    put.value = object(json!({"theme": "stale"}));
    let error = entries::put(&store, &a, put.clone()).await.unwrap_err();
    assert_eq!(
        error,
        EntryError::Conflict {
            expected: 1,
            current: 2
        }
    );

    let stored = get(&store, "a", &["users", "1"], "prefs").await.unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.value, object(json!({"theme": "light"})));
    assert_eq!(stored.agent.as_deref(), Some("critic"));
    assert_eq!(stored.created_at_ms, START_MS);
    assert_eq!(stored.updated_at_ms, START_MS + 5000);

    // Without if_version a put always wins and still counts up.
    put.if_version = None;
    assert_eq!(entries::put(&store, &a, put).await.unwrap().version, 3);
    // Compare-and-set against an entry that does not exist.
    let mut absent = put_of(&["users", "1"], "other", json!({}));
    absent.if_version = Some(4);
    let error = entries::put(&store, &a, absent).await.unwrap_err();
    assert_eq!(
        error,
        EntryError::Conflict {
            expected: 4,
            current: 0
        }
    );
    assert!(get(&store, "a", &["users", "1"], "other").await.is_none());
}

#[tokio::test]
async fn expired_entries_are_never_returned_and_are_swept_with_their_text() {
    let (store, clock) = open("ttl").await;
    let a = ns("a");
    let mut put = put_of(&["notes"], "soon", json!({"text": "ephemeral walrus"}));
    put.ttl = Some(MINUTE);
    entries::put(&store, &a, put.clone()).await.unwrap();
    entries::put(
        &store,
        &a,
        put_of(&["notes"], "kept", json!({"text": "lasting walrus"})),
    )
    .await
    .unwrap();

    // A refreshing read 50 s in starts the minute over.
    clock.advance(Duration::from_secs(50));
    let read = entries::get(&store, &a, &path(&["notes"]), "soon", true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.expires_at_ms, Some(START_MS + 50_000 + 60_000));
    clock.advance(Duration::from_secs(50));
    // 100 s after the put, alive thanks to the refresh; this read does not refresh.
    assert!(get(&store, "a", &["notes"], "soon").await.is_some());
    clock.advance(Duration::from_secs(11));

    // Expired: not got, not searched, not listed, and absent for compare-and-set.
    assert!(get(&store, "a", &["notes"], "soon").await.is_none());
    let mut query = search_of(&["notes"]);
    query.query = Some("walrus".into());
    let hits = entries::search(&store, &a, query.clone()).await.unwrap();
    assert_eq!(keys(&hits), ["kept"]);
    let hits = entries::search(&store, &a, search_of(&[])).await.unwrap();
    assert_eq!(keys(&hits), ["kept"]);

    let mut only = put_of(&["gone"], "x", json!({"text": "walrus"}));
    only.ttl = Some(MINUTE);
    entries::put(&store, &a, only).await.unwrap();
    clock.advance(MINUTE);
    let listed = entries::list_namespaces(&store, &a, listing(&[], &[], None, 10, 0))
        .await
        .unwrap();
    assert_eq!(listed, [vec!["notes".to_owned()]]);

    // The expired rows and their text are still stored until the sweep.
    assert_eq!(count(&store, "SELECT count(*) FROM entries").await, 3);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM entries_fts WHERE entries_fts MATCH 'walrus'"
        )
        .await,
        3
    );
    assert_eq!(entries::sweep_expired(&store).await.unwrap(), 2);
    assert_eq!(count(&store, "SELECT count(*) FROM entries").await, 1);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM entries_fts WHERE entries_fts MATCH 'walrus'"
        )
        .await,
        1
    );
    assert_eq!(entries::sweep_expired(&store).await.unwrap(), 0);

    // An expired key starts over at version 1, with a new creation time.
    put.if_version = Some(0);
    let again = entries::put(&store, &a, put).await.unwrap();
    assert_eq!(again.version, 1);
    assert_eq!(again.created_at_ms, clock_now(&store));
}

fn clock_now(store: &Store) -> i64 {
    store.now_ms()
}

// Real time: the sweeps wait on the store's threads, which paused time would skip past. The
// test waits on the sweeper's own report; the timeout only bounds a failure.
#[tokio::test]
async fn the_sweeper_runs_on_its_interval_until_the_store_is_dropped() {
    let (store, clock) = open("sweeper").await;
    let store = Arc::new(store);
    let a = ns("a");
    for n in 0..(entries::SWEEP_BATCH + 20) {
        let mut put = put_of(&["bulk"], &format!("k{n}"), json!({"text": "bulk walrus"}));
        put.ttl = Some(MINUTE);
        entries::put(&store, &a, put).await.unwrap();
    }
    let total = entries::SWEEP_BATCH as u64 + 20;
    let mut sweeper = entries::spawn_sweeper(&store, Duration::from_millis(20));
    clock.advance(2 * MINUTE);
    tokio::time::timeout(
        Duration::from_secs(60),
        sweeper.swept.wait_for(|n| *n == total),
    )
    .await
    .expect("the sweeper did not delete the expired entries")
    .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM entries").await, 0);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM entries_fts WHERE entries_fts MATCH 'walrus'"
        )
        .await,
        0
    );
    drop(store);
    tokio::time::timeout(Duration::from_secs(60), sweeper.task)
        .await
        .expect("the sweeper outlived its store")
        .unwrap();
}

#[tokio::test]
async fn search_ranks_by_bm25_and_scores_each_hit() {
    let (store, _) = open("rank").await;
    let a = ns("a");
    let docs = [
        (
            "once",
            "a long note about gardening where tea appears once among many other words",
        ),
        ("thrice", "tea tea and more tea"),
        ("none", "nothing relevant here"),
        ("twice", "tea and also tea with some padding words here"),
    ];
    for (key, text) in docs {
        entries::put(
            &store,
            &a,
            put_of(&["docs"], key, json!({"text": text, "n": 1})),
        )
        .await
        .unwrap();
    }
    let mut query = search_of(&["docs"]);
    query.query = Some("tea".into());
    let hits = entries::search(&store, &a, query.clone()).await.unwrap();
    assert_eq!(keys(&hits), ["thrice", "twice", "once"]);
    let scores: Vec<f64> = hits.iter().map(|h| h.score.unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] > w[1]), "{scores:?}");
    assert!(scores[2] > 0.0, "{scores:?}");
    // Paging follows the ranking.
    query.offset = 1;
    query.limit = 1;
    assert_eq!(
        keys(&entries::search(&store, &a, query).await.unwrap()),
        ["twice"]
    );
    // Query syntax is never interpreted: quotes, stars and operators are just separators.
    let mut odd = search_of(&[]);
    odd.query = Some("\"tea\" NEAR(* -gardening".into());
    let hits = entries::search(&store, &a, odd).await.unwrap();
    let mut found = keys(&hits);
    found.sort_unstable();
    assert_eq!(found, ["once", "thrice", "twice"]);
    // Unranked: newest first, no score.
    let hits = entries::search(&store, &a, search_of(&["docs"]))
        .await
        .unwrap();
    assert_eq!(keys(&hits), ["twice", "none", "thrice", "once"]);
    assert!(hits.iter().all(|h| h.score.is_none()));
}

#[tokio::test]
async fn index_chooses_what_full_text_search_sees() {
    let (store, _) = open("index").await;
    let a = ns("a");
    let mut off = put_of(&["i"], "off", json!({"text": "walrus"}));
    off.index = Index::Off;
    entries::put(&store, &a, off).await.unwrap();
    let mut title = put_of(
        &["i"],
        "title",
        json!({"title": "walrus", "body": "penguin"}),
    );
    title.index = Index::Fields(vec![FieldPath::parse("title", "index[0]").unwrap()]);
    entries::put(&store, &a, title).await.unwrap();
    let find = |word: &str| {
        let mut search = search_of(&["i"]);
        search.query = Some(word.into());
        search
    };
    let hits = entries::search(&store, &a, find("walrus")).await.unwrap();
    assert_eq!(keys(&hits), ["title"]);
    assert!(
        entries::search(&store, &a, find("penguin"))
            .await
            .unwrap()
            .is_empty()
    );
    // A put replaces the indexed text.
    entries::put(
        &store,
        &a,
        put_of(&["i"], "title", json!({"body": "penguin"})),
    )
    .await
    .unwrap();
    assert!(
        entries::search(&store, &a, find("walrus"))
            .await
            .unwrap()
            .is_empty()
    );
    let hits = entries::search(&store, &a, find("penguin")).await.unwrap();
    assert_eq!(keys(&hits), ["title"]);
    // Replacing and deleting entries that never had a full-text row leaves the index sound.
    let mut off = put_of(&["i"], "off", json!({"text": "walrus"}));
    off.index = Index::Off;
    entries::put(&store, &a, off).await.unwrap();
    assert!(
        entries::delete(&store, &a, &path(&["i"]), "off")
            .await
            .unwrap()
    );
    assert!(
        entries::delete(&store, &a, &path(&["i"]), "title")
            .await
            .unwrap()
    );
    store
        .write(|c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO entries_fts (entries_fts) VALUES ('integrity-check')",
                    (),
                )
                .await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    assert!(
        entries::search(&store, &a, find("penguin"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn filters_compare_types_and_values() {
    let (store, _) = open("filter").await;
    let a = ns("a");
    let rows = [
        (
            "one",
            json!({"n": 1, "s": "b", "flag": true, "tags": ["x"], "meta": {"k": 1}}),
        ),
        (
            "two",
            json!({"n": 2.5, "s": "c", "flag": false, "meta": {"k": 2}}),
        ),
        ("three", json!({"n": "1", "s": "a", "nothing": null})),
    ];
    for (key, value) in rows {
        entries::put(&store, &a, put_of(&["f"], key, value))
            .await
            .unwrap();
    }
    let filtered = |filter: Value| {
        let store = &store;
        let a = a.clone();
        async move {
            let mut search = search_of(&["f"]);
            search.filter = entries::parse_filter(&object(filter), "filter").unwrap();
            let mut found: Vec<String> = entries::search(store, &a, search)
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.entry.key)
                .collect();
            found.sort();
            found
        }
    };
    assert_eq!(filtered(json!({"n": 1})).await, ["one"]);
    assert_eq!(filtered(json!({"n": "1"})).await, ["three"]);
    assert_eq!(filtered(json!({"n": {"$eq": 2.5}})).await, ["two"]);
    assert_eq!(filtered(json!({"n": {"$gt": 1}})).await, ["two"]);
    assert_eq!(
        filtered(json!({"n": {"$gte": 1, "$lt": 3}})).await,
        ["one", "two"]
    );
    assert_eq!(
        filtered(json!({"s": {"$lte": "b"}})).await,
        ["one", "three"]
    );
    assert_eq!(filtered(json!({"flag": true})).await, ["one"]);
    assert_eq!(filtered(json!({"flag": false})).await, ["two"]);
    // `$ne` keeps entries without the field, as LangGraph's in-memory store does.
    assert_eq!(
        filtered(json!({"flag": {"$ne": true}})).await,
        ["three", "two"]
    );
    // A missing field equals null.
    assert_eq!(
        filtered(json!({"nothing": null})).await,
        ["one", "three", "two"]
    );
    assert_eq!(filtered(json!({"flag": null})).await, ["three"]);
    assert_eq!(filtered(json!({"meta": {"k": 2}})).await, ["two"]);
    assert_eq!(filtered(json!({"tags": ["x"]})).await, ["one"]);
    assert_eq!(
        filtered(json!({"n": 1, "s": "c"})).await,
        Vec::<String>::new()
    );
}

fn listing(
    prefix_labels: &[&str],
    suffix: &[&str],
    max_depth: Option<usize>,
    limit: usize,
    offset: usize,
) -> ListNamespaces {
    ListNamespaces {
        prefix: prefix(prefix_labels),
        suffix: prefix(suffix),
        max_depth,
        limit,
        offset,
    }
}

#[tokio::test]
async fn list_namespaces_by_prefix_suffix_depth_and_page() {
    let (store, _) = open("list").await;
    let a = ns("a");
    for labels in [
        &["users", "1", "prefs"][..],
        &["users", "1", "notes"],
        &["users", "2", "prefs"],
        &["users"],
        &["teams", "x", "prefs"],
        &["usersx", "1"],
    ] {
        entries::put(&store, &a, put_of(labels, "k", json!({})))
            .await
            .unwrap();
        entries::put(&store, &a, put_of(labels, "k2", json!({})))
            .await
            .unwrap();
    }
    let list = |l: ListNamespaces| {
        let store = &store;
        let a = a.clone();
        async move {
            entries::list_namespaces(store, &a, l)
                .await
                .unwrap()
                .into_iter()
                .map(|labels| labels.join("/"))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(listing(&[], &[], None, 100, 0)).await,
        [
            "teams/x/prefs",
            "users",
            "users/1/notes",
            "users/1/prefs",
            "users/2/prefs",
            "usersx/1"
        ]
    );
    assert_eq!(
        list(listing(&["users"], &[], None, 100, 0)).await,
        ["users", "users/1/notes", "users/1/prefs", "users/2/prefs"]
    );
    assert_eq!(
        list(listing(&["users"], &[], Some(2), 100, 0)).await,
        ["users", "users/1", "users/2"]
    );
    assert_eq!(
        list(listing(&[], &["prefs"], None, 100, 0)).await,
        ["teams/x/prefs", "users/1/prefs", "users/2/prefs"]
    );
    assert_eq!(
        list(listing(&["*", "1"], &[], None, 100, 0)).await,
        ["users/1/notes", "users/1/prefs", "usersx/1"]
    );
    assert_eq!(
        list(listing(&["users", "*"], &["*", "prefs"], None, 100, 0)).await,
        ["users/1/prefs", "users/2/prefs"]
    );
    assert_eq!(
        list(listing(&[], &[], Some(1), 2, 1)).await,
        ["users", "usersx"]
    );
    assert_eq!(list(listing(&[], &[], None, 2, 5)).await, ["usersx/1"]);
    let error = entries::list_namespaces(&store, &a, listing(&[], &[], Some(0), 10, 0))
        .await
        .unwrap_err();
    assert!(matches!(error, EntryError::Invalid { param, .. } if param == "max_depth"));
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let (store, _) = open("tenants").await;
    let (a, b) = (ns("a"), ns("b"));
    entries::put(
        &store,
        &a,
        put_of(&["shared"], "k", json!({"text": "secret walrus"})),
    )
    .await
    .unwrap();
    assert!(get(&store, "b", &["shared"], "k").await.is_none());
    let mut query = search_of(&[]);
    query.query = Some("walrus".into());
    assert!(
        entries::search(&store, &b, query.clone())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        entries::search(&store, &b, search_of(&[]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        entries::list_namespaces(&store, &b, listing(&[], &[], None, 10, 0))
            .await
            .unwrap()
            .is_empty()
    );
    // B's delete finds nothing and leaves A's entry.
    assert!(
        !entries::delete(&store, &b, &path(&["shared"]), "k")
            .await
            .unwrap()
    );
    assert!(get(&store, "a", &["shared"], "k").await.is_some());
    // B's put of the same path and key is B's own entry, with its own versions.
    let mut own = put_of(&["shared"], "k", json!({"text": "b's walrus"}));
    own.if_version = Some(0);
    assert_eq!(entries::put(&store, &b, own).await.unwrap().version, 1);
    let theirs = get(&store, "a", &["shared"], "k").await.unwrap();
    assert_eq!(theirs.value, object(json!({"text": "secret walrus"})));
    let hits = entries::search(&store, &b, query).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].entry.value, object(json!({"text": "b's walrus"})));
    // A's delete deletes A's only.
    assert!(
        entries::delete(&store, &a, &path(&["shared"]), "k")
            .await
            .unwrap()
    );
    assert!(get(&store, "a", &["shared"], "k").await.is_none());
    assert!(get(&store, "b", &["shared"], "k").await.is_some());
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let (store, _) = open("bad").await;
    let a = ns("a");
    let invalid = |error: EntryError| match error {
        EntryError::Invalid { param, .. } | EntryError::TooLarge { param, .. } => param,
        other => panic!("not a field error: {other:?}"),
    };
    let labels = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        invalid(EntryPath::parse(labels(&["ok", "a.b"]), "namespace").unwrap_err()),
        "namespace[1]"
    );
    assert_eq!(
        invalid(EntryPath::parse(labels(&["ok", ""]), "namespace").unwrap_err()),
        "namespace[1]"
    );
    assert_eq!(
        invalid(EntryPath::parse(vec![], "namespace").unwrap_err()),
        "namespace"
    );
    assert_eq!(
        invalid(EntryPath::parse(vec!["x".into(); 17], "namespace").unwrap_err()),
        "namespace"
    );
    assert_eq!(
        invalid(EntryPath::parse(vec!["x".repeat(257)], "namespace").unwrap_err()),
        "namespace[0]"
    );
    assert!(EntryPath::prefix(vec![], "namespace_prefix").is_ok());

    let big = "x".repeat(entries::MAX_VALUE_BYTES);
    let error = entries::put(&store, &a, put_of(&["p"], "k", json!({"big": big})))
        .await
        .unwrap_err();
    assert!(matches!(&error, EntryError::TooLarge { param, .. } if param == "value"));
    let mut long_key = put_of(&["p"], "k", json!({}));
    long_key.key = "k".repeat(entries::MAX_KEY_BYTES + 1);
    assert_eq!(
        invalid(entries::put(&store, &a, long_key).await.unwrap_err()),
        "key"
    );
    let mut ttl = put_of(&["p"], "k", json!({}));
    ttl.ttl = Some(Duration::ZERO);
    assert_eq!(
        invalid(entries::put(&store, &a, ttl).await.unwrap_err()),
        "ttl"
    );
    let mut limit = search_of(&[]);
    limit.limit = entries::MAX_SEARCH_LIMIT + 1;
    assert_eq!(
        invalid(entries::search(&store, &a, limit).await.unwrap_err()),
        "limit"
    );
    // Nothing was written by the refused puts.
    assert_eq!(count(&store, "SELECT count(*) FROM entries").await, 0);
}

/// 100,000 entries (90,000 in one tenant, 10,000 in another), written in one transaction
/// straight into the tables the way `put` writes them; then ranked searches for a rare and a
/// common word. The plan must drive the search from the full-text index and look each hit's
/// entry up by id, the namespace checked on it; the timings are printed (a debug build's).
#[tokio::test]
async fn ranked_search_over_100k_entries_uses_the_full_text_index() {
    let (store, _) = open("fts100k").await;
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    ];
    let started = std::time::Instant::now();
    store
        .write(move |c| {
            Box::pin(async move {
                let mut seed: u64 = 42;
                for id in 1..=100_000i64 {
                    let mut text = String::new();
                    for _ in 0..12 {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        text.push_str(words[(seed >> 33) as usize % words.len()]);
                        text.push(' ');
                    }
                    // 100 in each tenant.
                    if id % 1000 == 0 || id % 1000 == 7 {
                        text.push_str("walrus");
                    }
                    let tenant = if id % 10 == 0 { "other" } else { "big" };
                    let value = json!({"text": text, "n": id}).to_string();
                    c.execute(
                        "INSERT INTO entries (id, namespace, path, key, value, version,
                             created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
                        libsql::params![
                            id,
                            tenant,
                            format!("docs.{}", id % 100),
                            format!("k{id}"),
                            value,
                            START_MS + id
                        ],
                    )
                    .await?;
                    c.execute(
                        "INSERT INTO entries_fts (rowid, text) VALUES (?1, ?2)",
                        libsql::params![id, text],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
        .unwrap();
    eprintln!("100k entries written in {:?}", started.elapsed());

    let big = ns("big");
    for (word, expected) in [("walrus", 10), ("alpha", 10)] {
        let mut search = search_of(&["docs"]);
        search.query = Some(word.into());
        let plan = entries::search_plan(&store, &big, &search).await.unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("VIRTUAL TABLE INDEX"), "{plan}");
        assert!(
            plan.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid=?)"),
            "{plan}"
        );
        let started = std::time::Instant::now();
        let hits = entries::search(&store, &big, search).await.unwrap();
        let took = started.elapsed();
        eprintln!("query {word:?}: {} hits in {took:?}\n{plan}", hits.len());
        assert_eq!(hits.len(), expected);
        assert!(hits.iter().all(|h| h.entry.path.labels()[0] == "docs"));
    }
    // The rare word: 200 entries hold it, half of them each tenant's.
    let mut all = search_of(&[]);
    all.query = Some("walrus".into());
    all.limit = 1000;
    assert_eq!(
        entries::search(&store, &big, all.clone())
            .await
            .unwrap()
            .len(),
        100
    );
    assert_eq!(
        entries::search(&store, &ns("other"), all)
            .await
            .unwrap()
            .len(),
        100
    );
}
