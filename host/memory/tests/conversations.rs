//! Conversations on a real database file: ids the store assigns, paging both ways with
//! cursors, appends that are all or nothing, deletes that take items and their search entries
//! along, full-text search ranked and scoped, and a namespace that never sees another's data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use aigw_memory::conversations::{self, ConversationError, Item, Metadata, NewItem, Order, Page};
use aigw_memory::{Namespace, Store, StoreOptions};
use serde_json::{Map, Value, json};

fn temp_db(name: &str) -> PathBuf {
    let dir = // Under the target directory and named by test only: each run replaces the last
    // one's files instead of leaving a new directory in /tmp.
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aigw-conv-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("aigw.db")
}

async fn open(name: &str) -> Store {
    Store::open(StoreOptions::new(temp_db(name))).await.unwrap()
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

fn message(role: &str, text: &str) -> NewItem {
    NewItem {
        item: object(json!({
            "type": "message", "role": role, "status": "completed",
            "content": [{"type": "input_text", "text": text}],
        })),
        agent: None,
    }
}

fn text_of(item: &Item) -> &str {
    item.item["content"][0]["text"].as_str().unwrap()
}

fn page(after: Option<&str>, limit: usize, order: Order) -> Page {
    Page {
        after: after.map(str::to_owned),
        limit,
        order,
    }
}

#[tokio::test]
async fn ids_are_assigned_by_the_store_and_items_kept_as_given() {
    let store = open("ids").await;
    let a = ns("a");
    let metadata = Metadata::from([("topic".to_owned(), "trips".to_owned())]);
    let mut fake = message("assistant", "hello");
    fake.item.insert("id".into(), json!("__fake_id__"));
    fake.agent = Some("planner".into());
    let call = NewItem {
        item: object(
            json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}),
        ),
        agent: None,
    };
    let output = NewItem {
        item: object(json!({"type": "function_call_output", "call_id": "c1", "output": "42"})),
        agent: None,
    };
    let (conversation, items) = conversations::create(
        &store,
        &a,
        metadata.clone(),
        vec![fake.clone(), fake, call, output],
        Some("planner".into()),
    )
    .await
    .unwrap();
    assert!(conversation.id.starts_with("conv_"));
    assert_eq!(conversation.id.len(), 5 + 48);
    assert_eq!(conversation.agent.as_deref(), Some("planner"));
    assert_eq!(items.len(), 4);
    assert!(items[0].id.starts_with("msg_") && items[1].id.starts_with("msg_"));
    assert_ne!(items[0].id, items[1].id, "a client id is never kept");
    assert!(items[2].id.starts_with("fc_"));
    assert!(items[3].id.starts_with("fco_"));
    for item in &items {
        assert_eq!(item.item["id"], json!(item.id));
    }
    assert_eq!(items[0].agent.as_deref(), Some("planner"));
    assert_eq!(items[2].agent, None);

    let got = conversations::get(&store, &a, &conversation.id)
        .await
        .unwrap();
    assert_eq!(got, conversation);
    assert_eq!(got.metadata, metadata);
    let item = conversations::get_item(&store, &a, &conversation.id, &items[0].id)
        .await
        .unwrap();
    assert_eq!(item, items[0]);
    assert_eq!(text_of(&item), "hello");

    let updated = Metadata::from([("k".to_owned(), "v".to_owned())]);
    let after = conversations::update_metadata(&store, &a, &conversation.id, updated.clone())
        .await
        .unwrap();
    assert_eq!(after.metadata, updated, "update replaces the metadata");
    assert_eq!(
        conversations::get(&store, &a, &conversation.id)
            .await
            .unwrap()
            .metadata,
        updated
    );
}

#[tokio::test]
async fn pages_run_both_ways_from_a_cursor() {
    let store = open("paging").await;
    let a = ns("a");
    let (conversation, _) = conversations::create(&store, &a, Metadata::new(), vec![], None)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for batch in 0..3 {
        let items = (0..3)
            .map(|n| message("user", &format!("m{}", batch * 3 + n)))
            .collect();
        let stored = conversations::append(&store, &a, &conversation.id, items)
            .await
            .unwrap();
        ids.extend(stored.into_iter().map(|i| i.id));
    }
    let id = &conversation.id;

    let all = conversations::list_items(&store, &a, id, page(None, 100, Order::Asc))
        .await
        .unwrap();
    assert!(!all.has_more);
    let texts: Vec<&str> = all.items.iter().map(text_of).collect();
    assert_eq!(
        texts,
        ["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"]
    );

    let first = conversations::list_items(&store, &a, id, page(None, 4, Order::Desc))
        .await
        .unwrap();
    let texts: Vec<&str> = first.items.iter().map(text_of).collect();
    assert_eq!(texts, ["m8", "m7", "m6", "m5"]);
    assert!(first.has_more);
    let next = conversations::list_items(&store, &a, id, page(Some(&ids[5]), 4, Order::Desc))
        .await
        .unwrap();
    let texts: Vec<&str> = next.items.iter().map(text_of).collect();
    assert_eq!(texts, ["m4", "m3", "m2", "m1"]);
    assert!(next.has_more);
    let last = conversations::list_items(&store, &a, id, page(Some(&ids[1]), 4, Order::Desc))
        .await
        .unwrap();
    assert_eq!(last.items.len(), 1);
    assert!(!last.has_more);

    let asc = conversations::list_items(&store, &a, id, page(Some(&ids[5]), 3, Order::Asc))
        .await
        .unwrap();
    let texts: Vec<&str> = asc.items.iter().map(text_of).collect();
    assert_eq!(texts, ["m6", "m7", "m8"]);
    assert!(!asc.has_more, "exactly the rest: no more");

    let recent = conversations::recent(&store, &a, id, 2)
        .await
        .unwrap()
        .unwrap();
    let texts: Vec<&str> = recent.iter().map(text_of).collect();
    assert_eq!(texts, ["m7", "m8"], "the last items, oldest first");

    // A cursor from another conversation is no cursor here.
    let (other, stranger) = conversations::create(
        &store,
        &a,
        Metadata::new(),
        vec![message("user", "x")],
        None,
    )
    .await
    .unwrap();
    let refused =
        conversations::list_items(&store, &a, id, page(Some(&stranger[0].id), 4, Order::Asc)).await;
    assert_eq!(refused, Err(ConversationError::AfterNotFound));
    let refused = conversations::get_item(&store, &a, &other.id, &ids[0]).await;
    assert_eq!(refused, Err(ConversationError::ItemNotFound));
}

#[tokio::test]
async fn an_append_is_all_or_nothing() {
    let path = temp_db("all-or-nothing");
    let mut options = StoreOptions::new(&path);
    options.max_item_bytes = 200;
    let store = Store::open(options).await.unwrap();
    let a = ns("a");
    let (conversation, _) = conversations::create(
        &store,
        &a,
        Metadata::new(),
        vec![message("user", "kept")],
        None,
    )
    .await
    .unwrap();
    let items = vec![message("user", "small"), message("user", &"x".repeat(300))];
    let refused = conversations::append(&store, &a, &conversation.id, items).await;
    match refused {
        Err(ConversationError::ItemTooLarge {
            index: 1,
            limit: 200,
            ..
        }) => {}
        other => panic!("expected item 1 too large, got {other:?}"),
    }
    let refused = conversations::create(
        &store,
        &a,
        Metadata::new(),
        vec![message("user", &"y".repeat(300))],
        None,
    )
    .await;
    assert!(matches!(
        refused,
        Err(ConversationError::ItemTooLarge { index: 0, .. })
    ));
    let listed =
        conversations::list_items(&store, &a, &conversation.id, page(None, 100, Order::Asc))
            .await
            .unwrap();
    let texts: Vec<&str> = listed.items.iter().map(text_of).collect();
    assert_eq!(texts, ["kept"], "nothing of the refused append was stored");
}

#[tokio::test]
async fn deletes_take_items_and_their_search_entries() {
    let store = open("deletes").await;
    let a = ns("a");
    let (conversation, items) = conversations::create(
        &store,
        &a,
        Metadata::new(),
        vec![
            message("user", "zebra crossing"),
            message("user", "zebra stripes"),
        ],
        None,
    )
    .await
    .unwrap();
    let id = &conversation.id;
    let hits = conversations::search(&store, &a, "zebra", None, 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 2);

    let left = conversations::delete_item(&store, &a, id, &items[0].id)
        .await
        .unwrap();
    assert_eq!(&left.id, id);
    assert_eq!(
        conversations::get_item(&store, &a, id, &items[0].id).await,
        Err(ConversationError::ItemNotFound)
    );
    assert_eq!(
        conversations::delete_item(&store, &a, id, &items[0].id).await,
        Err(ConversationError::ItemNotFound)
    );
    let hits = conversations::search(&store, &a, "zebra", None, 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].item.id, items[1].id);

    conversations::delete(&store, &a, id).await.unwrap();
    assert_eq!(
        conversations::get(&store, &a, id).await,
        Err(ConversationError::ConversationNotFound)
    );
    assert_eq!(
        conversations::delete(&store, &a, id).await,
        Err(ConversationError::ConversationNotFound)
    );
    assert!(
        conversations::recent(&store, &a, id, 10)
            .await
            .unwrap()
            .is_none()
    );
    let hits = conversations::search(&store, &a, "zebra", None, 10)
        .await
        .unwrap();
    assert!(
        hits.is_empty(),
        "a deleted conversation's items are not found"
    );
    let rows = store
        .read(|c| {
            Box::pin(async move {
                let mut rows = c
                    .query("SELECT count(*) FROM conversation_items", ())
                    .await?;
                Ok(rows.next().await?.unwrap().get::<i64>(0)?)
            })
        })
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn search_is_ranked_scoped_and_refuses_bad_queries_as_the_clients() {
    let store = open("search").await;
    let a = ns("a");
    let b = ns("b");
    let (one, _) = conversations::create(
        &store,
        &a,
        Metadata::new(),
        vec![
            message("user", "the weather in Paris"),
            message("assistant", "Paris Paris Paris, rainy"),
        ],
        None,
    )
    .await
    .unwrap();
    let (two, _) = conversations::create(
        &store,
        &a,
        Metadata::new(),
        vec![NewItem {
            item: object(json!({"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})),
            agent: Some("tool-user".into()),
        }],
        None,
    )
    .await
    .unwrap();
    conversations::create(
        &store,
        &b,
        Metadata::new(),
        vec![message("user", "Paris in b")],
        None,
    )
    .await
    .unwrap();

    let hits = conversations::search(&store, &a, "paris", None, 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 3, "only namespace a's items: {hits:?}");
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "best first"
    );
    assert_eq!(text_of(&hits[0].item), "Paris Paris Paris, rainy");
    assert_eq!(hits[0].conversation, one.id);
    assert!(
        hits.iter()
            .any(|h| h.conversation == two.id && h.item.agent.as_deref() == Some("tool-user"))
    );

    let hits = conversations::search(&store, &a, "paris", Some(&two.id), 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    let hits = conversations::search(&store, &a, "paris", None, 1)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "the limit holds");
    let hits = conversations::search(&store, &a, "get_weather", None, 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "a call is found by its name");

    for bad in ["\"unclosed", "AND", "paris NEAR(", "nosuchcolumn: x"] {
        let refused = conversations::search(&store, &a, bad, None, 10).await;
        assert!(
            matches!(refused, Err(ConversationError::BadQuery(_))),
            "{bad}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn another_namespace_sees_and_changes_nothing() {
    let store = open("namespaces").await;
    let a = ns("a");
    let b = ns("b");
    let metadata = Metadata::from([("owner".to_owned(), "a".to_owned())]);
    let (conversation, items) = conversations::create(
        &store,
        &a,
        metadata.clone(),
        vec![message("user", "secret plans")],
        None,
    )
    .await
    .unwrap();
    let id = &conversation.id;
    let item = &items[0].id;
    let not_found: Result<(), _> = Err(ConversationError::ConversationNotFound);

    assert_eq!(
        conversations::get(&store, &b, id).await.map(drop),
        not_found
    );
    assert_eq!(
        conversations::update_metadata(&store, &b, id, Metadata::new())
            .await
            .map(drop),
        not_found
    );
    assert_eq!(
        conversations::append(&store, &b, id, vec![message("user", "injected")])
            .await
            .map(drop),
        not_found
    );
    assert_eq!(
        conversations::list_items(&store, &b, id, page(None, 10, Order::Asc))
            .await
            .map(drop),
        not_found
    );
    assert_eq!(conversations::recent(&store, &b, id, 10).await, Ok(None));
    assert_eq!(
        conversations::get_item(&store, &b, id, item)
            .await
            .map(drop),
        not_found
    );
    assert_eq!(
        conversations::delete_item(&store, &b, id, item)
            .await
            .map(drop),
        not_found
    );
    assert_eq!(conversations::delete(&store, &b, id).await, not_found);
    assert_eq!(
        conversations::search(&store, &b, "secret", Some(id), 10)
            .await
            .map(drop),
        not_found
    );
    assert!(
        conversations::search(&store, &b, "secret", None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Namespace a's data is as it was.
    let still = conversations::get(&store, &a, id).await.unwrap();
    assert_eq!(still.metadata, metadata);
    let listed = conversations::list_items(&store, &a, id, page(None, 10, Order::Asc))
        .await
        .unwrap();
    assert_eq!(listed.items, items);
}

#[tokio::test]
async fn a_namespaces_conversations_are_listed_newest_first_in_pages_and_only_its_own() {
    let store = open("list-by-namespace").await;
    let (team, other) = (ns("team-a"), ns("team-b"));
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut metadata = Metadata::new();
        metadata.insert("n".into(), i.to_string());
        let (conversation, _) =
            conversations::create(&store, &team, metadata, vec![message("user", "hi")], None)
                .await
                .unwrap();
        ids.push(conversation.id);
    }
    let (foreign, _) = conversations::create(&store, &other, Metadata::new(), vec![], None)
        .await
        .unwrap();

    let (first, more) = conversations::list(&store, &team, None, 2).await.unwrap();
    assert!(more);
    assert_eq!(
        first.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [ids[4].as_str(), ids[3].as_str()]
    );
    assert_eq!(first[0].metadata["n"], "4");
    let (rest, more) = conversations::list(&store, &team, Some(&ids[3]), 10)
        .await
        .unwrap();
    assert!(!more);
    assert_eq!(
        rest.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]
    );
    // Another namespace's conversation is not a cursor here, nor listed.
    assert_eq!(
        conversations::list(&store, &team, Some(&foreign.id), 10).await,
        Err(ConversationError::AfterNotFound)
    );
    let (theirs, _) = conversations::list(&store, &other, None, 10).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].id, foreign.id);
    let (none, more) = conversations::list(&store, &ns("empty"), None, 10)
        .await
        .unwrap();
    assert!(none.is_empty() && !more);

    assert_eq!(
        conversations::namespaces(&store, None, 100).await.unwrap(),
        [("team-a".to_owned(), 5), ("team-b".to_owned(), 1)]
    );
    assert_eq!(
        conversations::namespaces(&store, Some("team-a"), 100)
            .await
            .unwrap(),
        [("team-b".to_owned(), 1)]
    );
    assert_eq!(
        conversations::namespaces(&store, None, 1).await.unwrap(),
        [("team-a".to_owned(), 5)]
    );
}
