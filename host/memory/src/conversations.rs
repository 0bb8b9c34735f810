//! Conversations: the OpenAI Conversations API's model on the store. A conversation belongs to
//! one [`Namespace`] and holds items (Responses items as JSON objects: messages, function calls,
//! their outputs) in the one total order their commits gave them. Every call names the
//! namespace it acts in and sees nothing outside it: a conversation id of another namespace is
//! [`ConversationError::ConversationNotFound`], exactly as an unknown one.
//!
//! Ids are always the store's: a client's item id is never kept (the Agents SDK sends
//! `__fake_id__` on every output item), so two items can never share one. The item shapes are
//! the server's to check; this layer stores a normalised item, keeps its searchable text for
//! full-text search, and holds every writer to the store's item size limit.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use libsql::{Connection, Row};
use serde_json::{Map, Value};

use crate::quota::{self, Quota, QuotaExceeded, Usage};
use crate::{Namespace, Store, StoreError};

/// A conversation's metadata: string keys to string values (the server bounds them).
pub type Metadata = BTreeMap<String, String>;

/// A conversation as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// `conv_` and 48 hex digits.
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    pub metadata: Metadata,
    /// The agent that created it (`x-aigw-agent`), if one was named.
    pub agent: Option<String>,
}

/// An item to store: a normalised Responses item without an id (any `id` in it is replaced).
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub item: Map<String, Value>,
    /// The agent that wrote it, if one was named.
    pub agent: Option<String>,
}

/// A stored item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    /// The item as stored, its `"id"` included.
    pub item: Map<String, Value>,
    pub agent: Option<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// Which way a listing runs, in the items' total order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (the OpenAI default).
    #[default]
    Desc,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Start after this item (in `order`); it must be an item of the conversation.
    pub after: Option<String>,
    /// At most this many items (at least one is asked for).
    pub limit: usize,
    pub order: Order,
}

/// The items of one page, and whether more follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Items {
    pub items: Vec<Item>,
    pub has_more: bool,
}

/// An item found by [`search`].
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The conversation holding the item.
    pub conversation: String,
    pub item: Item,
    /// Relevance, higher is better: the negated bm25 rank of FTS5.
    pub score: f64,
}

/// Why a conversation call did not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConversationError {
    /// No such conversation in the caller's namespace.
    #[error("no conversation with this id")]
    ConversationNotFound,
    /// No such item in the conversation.
    #[error("no item with this id in the conversation")]
    ItemNotFound,
    /// A page's `after` is not an item of the conversation.
    #[error("`after` is not an item of this conversation")]
    AfterNotFound,
    /// The `index`-th item given is larger than the store accepts.
    #[error("item {index} is {bytes} bytes, more than the limit of {limit}")]
    ItemTooLarge {
        index: usize,
        bytes: usize,
        limit: usize,
    },
    /// A full-text query FTS5 cannot parse; the message is SQLite's.
    #[error("the search query cannot be parsed: {0}")]
    BadQuery(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a conversation holding `items` (possibly none), in one write.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.create", otel.kind = "internal", aigw.memory.operation = "conversations.create"))]
pub async fn create(
    store: &Store,
    namespace: &Namespace,
    metadata: Metadata,
    items: Vec<NewItem>,
    agent: Option<String>,
) -> Result<(Conversation, Vec<Item>), ConversationError> {
    let prepared = prepare(store, items)?;
    let conversation = Conversation {
        id: new_id("conv_"),
        created_at: now(),
        metadata,
        agent,
    };
    let namespace = namespace.as_str().to_owned();
    let written = conversation.clone();
    let items = store
        .write(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO conversations (id, namespace, created_at, metadata, agent)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    (
                        written.id.as_str(),
                        namespace.as_str(),
                        written.created_at,
                        metadata_json(&written.metadata),
                        written.agent.clone(),
                    ),
                )
                .await?;
                let seq = c.last_insert_rowid();
                insert_items(c, seq, &namespace, prepared).await
            })
        })
        .await?;
    Ok((conversation, items))
}

/// One page of a namespace's conversations, the newest first: at most `limit` (at least one),
/// after the conversation `after` (which must be of the namespace:
/// [`ConversationError::AfterNotFound`] otherwise); and whether more follow. For the operator,
/// who may read any namespace; it never reaches past `namespace`.
pub async fn list(
    store: &Store,
    namespace: &Namespace,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Conversation>, bool), ConversationError> {
    let namespace = namespace.as_str().to_owned();
    let after = after.map(str::to_owned);
    let limit = limit.max(1);
    store
        .read(move |c| {
            Box::pin(async move {
                let bound = match &after {
                    None => i64::MAX,
                    Some(after) => match find(c, &namespace, after).await? {
                        Some((seq, _)) => seq,
                        None => return Ok(Err(ConversationError::AfterNotFound)),
                    },
                };
                // One more than asked says whether more follow.
                let mut rows = c
                    .query(
                        "SELECT seq, id, created_at, metadata, agent FROM conversations
                         WHERE namespace = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
                        (
                            namespace.as_str(),
                            bound,
                            i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1,
                        ),
                    )
                    .await?;
                let mut found = Vec::with_capacity(limit + 1);
                while let Some(row) = rows.next().await? {
                    found.push(conversation_of(&row)?.1);
                }
                let has_more = found.len() > limit;
                found.truncate(limit);
                Ok(Ok((found, has_more)))
            })
        })
        .await?
}

/// The namespaces holding conversations, in name order, with how many each holds: at most
/// `limit` of them, after the name `after`.
pub async fn namespaces(
    store: &Store,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, u64)>, StoreError> {
    let after = after.unwrap_or_default().to_owned();
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    store
        .read(move |c| {
            Box::pin(async move {
                let mut rows = c
                    .query(
                        "SELECT namespace, count(*) FROM conversations WHERE namespace > ?1
                         GROUP BY namespace ORDER BY namespace LIMIT ?2",
                        (after.as_str(), limit),
                    )
                    .await?;
                let mut found = Vec::new();
                while let Some(row) = rows.next().await? {
                    let count = u64::try_from(row.get::<i64>(1)?).unwrap_or(0);
                    found.push((row.get::<String>(0)?, count));
                }
                Ok(found)
            })
        })
        .await
}

/// The conversation `id`, if it is in `namespace`.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.get", otel.kind = "internal", aigw.memory.operation = "conversations.get"))]
pub async fn get(
    store: &Store,
    namespace: &Namespace,
    id: &str,
) -> Result<Conversation, ConversationError> {
    let (namespace, id) = (namespace.as_str().to_owned(), id.to_owned());
    store
        .read(move |c| Box::pin(async move { find(c, &namespace, &id).await }))
        .await?
        .map(|(_, conversation)| conversation)
        .ok_or(ConversationError::ConversationNotFound)
}

/// Replaces the conversation's metadata; returns the conversation as it now is.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.update_metadata", otel.kind = "internal", aigw.memory.operation = "conversations.update_metadata"))]
pub async fn update_metadata(
    store: &Store,
    namespace: &Namespace,
    id: &str,
    metadata: Metadata,
) -> Result<Conversation, ConversationError> {
    let (namespace, id) = (namespace.as_str().to_owned(), id.to_owned());
    store
        .write(move |c| {
            Box::pin(async move {
                let Some((seq, mut conversation)) = find(c, &namespace, &id).await? else {
                    return Ok(None);
                };
                c.execute(
                    "UPDATE conversations SET metadata = ?1 WHERE seq = ?2",
                    (metadata_json(&metadata), seq),
                )
                .await?;
                conversation.metadata = metadata;
                Ok(Some(conversation))
            })
        })
        .await?
        .ok_or(ConversationError::ConversationNotFound)
}

/// Deletes the conversation and every item of it.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.delete", otel.kind = "internal", aigw.memory.operation = "conversations.delete"))]
pub async fn delete(
    store: &Store,
    namespace: &Namespace,
    id: &str,
) -> Result<(), ConversationError> {
    let (namespace, id) = (namespace.as_str().to_owned(), id.to_owned());
    let deleted = store
        .write(move |c| {
            Box::pin(async move {
                let Some((seq, _)) = find(c, &namespace, &id).await? else {
                    return Ok(false);
                };
                // Explicitly, not only by the foreign key's cascade: the FTS triggers then see
                // every row go, whatever the connection's `foreign_keys` setting.
                c.execute(
                    "DELETE FROM conversation_items WHERE conversation = ?1",
                    [seq],
                )
                .await?;
                c.execute("DELETE FROM conversations WHERE seq = ?1", [seq])
                    .await?;
                Ok(true)
            })
        })
        .await?;
    if deleted {
        Ok(())
    } else {
        Err(ConversationError::ConversationNotFound)
    }
}

/// Appends `items` to the conversation in one write (all of them or none); returns them as
/// stored, ids assigned, in their order.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.append", otel.kind = "internal", aigw.memory.operation = "conversations.append"))]
pub async fn append(
    store: &Store,
    namespace: &Namespace,
    conversation: &str,
    items: Vec<NewItem>,
) -> Result<Vec<Item>, ConversationError> {
    let prepared = prepare(store, items)?;
    let (namespace, id) = (namespace.as_str().to_owned(), conversation.to_owned());
    store
        .write(move |c| {
            Box::pin(async move {
                let Some((seq, _)) = find(c, &namespace, &id).await? else {
                    return Ok(None);
                };
                insert_items(c, seq, &namespace, prepared).await.map(Some)
            })
        })
        .await?
        .ok_or(ConversationError::ConversationNotFound)
}

/// [`append`] for a writer with a [`Quota`] (a tool plugin): the items are written only if the
/// quota's agent, holding them too, stays within it; the count and the insert are one write.
/// Every item is recorded as written by the quota's agent.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.append_within_quota", otel.kind = "internal", aigw.memory.operation = "conversations.append_within_quota"))]
pub async fn append_within_quota(
    store: &Store,
    namespace: &Namespace,
    conversation: &str,
    items: Vec<NewItem>,
    quota: &Quota,
) -> Result<Result<Vec<Item>, QuotaExceeded>, ConversationError> {
    let items = items
        .into_iter()
        .map(|item| NewItem {
            agent: Some(quota.agent.clone()),
            ..item
        })
        .collect();
    let prepared = prepare(store, items)?;
    let added = Usage {
        records: prepared.len() as u64,
        bytes: prepared.iter().map(|p| p.json.len() as u64).sum(),
    };
    let (namespace, id, quota) = (
        namespace.as_str().to_owned(),
        conversation.to_owned(),
        quota.clone(),
    );
    let now_ms = store.now_ms();
    store
        .write(move |c| {
            Box::pin(async move {
                let Some((seq, _)) = find(c, &namespace, &id).await? else {
                    return Ok(None);
                };
                let check = quota::check(c, &namespace, &quota, Usage::default(), added, now_ms);
                if let Err(exceeded) = check.await? {
                    return Ok(Some(Err(exceeded)));
                }
                insert_items(c, seq, &namespace, prepared)
                    .await
                    .map(|items| Some(Ok(items)))
            })
        })
        .await?
        .ok_or(ConversationError::ConversationNotFound)
}

/// One page of the conversation's items.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.list_items", otel.kind = "internal", aigw.memory.operation = "conversations.list_items"))]
pub async fn list_items(
    store: &Store,
    namespace: &Namespace,
    conversation: &str,
    page: Page,
) -> Result<Items, ConversationError> {
    let (namespace, id) = (namespace.as_str().to_owned(), conversation.to_owned());
    store
        .read(move |c| {
            Box::pin(async move {
                let Some((seq, _)) = find(c, &namespace, &id).await? else {
                    return Ok(Err(ConversationError::ConversationNotFound));
                };
                let after = match &page.after {
                    None => None,
                    Some(after) => {
                        let mut rows = c
                            .query(
                                "SELECT seq FROM conversation_items
                                 WHERE id = ?1 AND conversation = ?2",
                                (after.as_str(), seq),
                            )
                            .await?;
                        match rows.next().await? {
                            Some(row) => Some(row.get::<i64>(0)?),
                            None => return Ok(Err(ConversationError::AfterNotFound)),
                        }
                    }
                };
                let limit = page.limit.max(1);
                let sql = match page.order {
                    Order::Asc => {
                        "SELECT id, item, agent, created_at FROM conversation_items
                         WHERE conversation = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3"
                    }
                    Order::Desc => {
                        "SELECT id, item, agent, created_at FROM conversation_items
                         WHERE conversation = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                    }
                };
                let bound = after.unwrap_or(match page.order {
                    Order::Asc => 0,
                    Order::Desc => i64::MAX,
                });
                // One more than asked says whether more follow.
                let mut rows = c.query(sql, (seq, bound, limit as i64 + 1)).await?;
                let mut items = Vec::with_capacity(limit + 1);
                while let Some(row) = rows.next().await? {
                    items.push(item_of(&row, 0)?);
                }
                let has_more = items.len() > limit;
                items.truncate(limit);
                Ok(Ok(Items { items, has_more }))
            })
        })
        .await?
}

/// The last `limit` items of the conversation, oldest first; `None` when the conversation is
/// not in `namespace`.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.recent", otel.kind = "internal", aigw.memory.operation = "conversations.recent"))]
pub async fn recent(
    store: &Store,
    namespace: &Namespace,
    conversation: &str,
    limit: usize,
) -> Result<Option<Vec<Item>>, StoreError> {
    let (namespace, id) = (namespace.as_str().to_owned(), conversation.to_owned());
    store
        .read(move |c| {
            Box::pin(async move {
                let Some((seq, _)) = find(c, &namespace, &id).await? else {
                    return Ok(None);
                };
                let mut rows = c
                    .query(
                        "SELECT id, item, agent, created_at FROM conversation_items
                         WHERE conversation = ?1 ORDER BY seq DESC LIMIT ?2",
                        (seq, i64::try_from(limit).unwrap_or(i64::MAX)),
                    )
                    .await?;
                let mut items = Vec::new();
                while let Some(row) = rows.next().await? {
                    items.push(item_of(&row, 0)?);
                }
                items.reverse();
                Ok(Some(items))
            })
        })
        .await
}

/// The item `item` of the conversation.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.get_item", otel.kind = "internal", aigw.memory.operation = "conversations.get_item"))]
pub async fn get_item(
    store: &Store,
    namespace: &Namespace,
    conversation: &str,
    item: &str,
) -> Result<Item, ConversationError> {
    let (namespace, id, item) = (
        namespace.as_str().to_owned(),
        conversation.to_owned(),
        item.to_owned(),
    );
    store
        .read(move |c| {
            Box::pin(async move {
                let Some((seq, _)) = find(c, &namespace, &id).await? else {
                    return Ok(Err(ConversationError::ConversationNotFound));
                };
                let mut rows = c
                    .query(
                        "SELECT id, item, agent, created_at FROM conversation_items
                         WHERE id = ?1 AND conversation = ?2",
                        (item.as_str(), seq),
                    )
                    .await?;
                Ok(match rows.next().await? {
                    Some(row) => Ok(item_of(&row, 0)?),
                    None => Err(ConversationError::ItemNotFound),
                })
            })
        })
        .await?
}

/// Deletes one item; returns the conversation it was in.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.delete_item", otel.kind = "internal", aigw.memory.operation = "conversations.delete_item"))]
pub async fn delete_item(
    store: &Store,
    namespace: &Namespace,
    conversation: &str,
    item: &str,
) -> Result<Conversation, ConversationError> {
    let (namespace, id, item) = (
        namespace.as_str().to_owned(),
        conversation.to_owned(),
        item.to_owned(),
    );
    store
        .write(move |c| {
            Box::pin(async move {
                let Some((seq, conversation)) = find(c, &namespace, &id).await? else {
                    return Ok(Err(ConversationError::ConversationNotFound));
                };
                let deleted = c
                    .execute(
                        "DELETE FROM conversation_items WHERE id = ?1 AND conversation = ?2",
                        (item.as_str(), seq),
                    )
                    .await?;
                Ok(if deleted == 0 {
                    Err(ConversationError::ItemNotFound)
                } else {
                    Ok(conversation)
                })
            })
        })
        .await?
}

/// Full-text search (an FTS5 query, ranked by bm25) over the items of `namespace`, or of one
/// of its conversations; at most `limit` hits, best first.
#[tracing::instrument(target = "aigw::trace", name = "memory", level = "info", skip_all, fields(otel.name = "memory conversations.search", otel.kind = "internal", aigw.memory.operation = "conversations.search"))]
pub async fn search(
    store: &Store,
    namespace: &Namespace,
    query: &str,
    conversation: Option<&str>,
    limit: usize,
) -> Result<Vec<Hit>, ConversationError> {
    let namespace = namespace.as_str().to_owned();
    let query = query.to_owned();
    let conversation = conversation.map(str::to_owned);
    store
        .read(move |c| {
            Box::pin(async move {
                let within = match &conversation {
                    None => None,
                    Some(id) => match find(c, &namespace, id).await? {
                        Some((seq, _)) => Some(seq),
                        None => return Ok(Err(ConversationError::ConversationNotFound)),
                    },
                };
                let found = c
                    .query(
                        "SELECT c.id, i.id, i.item, i.agent, i.created_at,
                                bm25(conversation_items_fts) AS rank
                         FROM conversation_items_fts
                         JOIN conversation_items i ON i.seq = conversation_items_fts.rowid
                         JOIN conversations c ON c.seq = i.conversation
                         WHERE conversation_items_fts MATCH ?1 AND i.namespace = ?2
                           AND (?3 IS NULL OR i.conversation = ?3)
                         ORDER BY rank LIMIT ?4",
                        (
                            query.as_str(),
                            namespace.as_str(),
                            within,
                            i64::try_from(limit).unwrap_or(i64::MAX),
                        ),
                    )
                    .await;
                let mut rows = match found {
                    Ok(rows) => rows,
                    Err(e) if is_query_error(&e) => {
                        return Ok(Err(ConversationError::BadQuery(e.to_string())));
                    }
                    Err(e) => return Err(e.into()),
                };
                let mut hits = Vec::new();
                loop {
                    // FTS5 reports a malformed query when the first row is stepped to.
                    let row = match rows.next().await {
                        Ok(Some(row)) => row,
                        Ok(None) => break,
                        Err(e) if is_query_error(&e) => {
                            return Ok(Err(ConversationError::BadQuery(e.to_string())));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    hits.push(Hit {
                        conversation: row.get::<String>(0)?,
                        item: item_of(&row, 1)?,
                        score: -row.get::<f64>(5)?,
                    });
                }
                Ok(Ok(hits))
            })
        })
        .await?
}

/// Whether SQLite refused the FTS5 query itself (its syntax, a column it names), which is the
/// client's doing. The statement around the query is fixed (and tested), so a plain
/// `SQLITE_ERROR` from it can only come from the query; busy, full, I/O errors have codes of
/// their own and stay the store's.
fn is_query_error(error: &libsql::Error) -> bool {
    matches!(error, libsql::Error::SqliteFailure(1, _))
}

/// An item ready to insert: its id assigned, its JSON and searchable text rendered.
struct Prepared {
    id: String,
    json: String,
    item: Map<String, Value>,
    text: String,
    agent: Option<String>,
}

/// Assigns ids and checks each item against the store's size limit, before any write.
fn prepare(store: &Store, items: Vec<NewItem>) -> Result<Vec<Prepared>, ConversationError> {
    let limit = store.max_item_bytes();
    items
        .into_iter()
        .enumerate()
        .map(|(index, NewItem { mut item, agent })| {
            let id = new_id(id_prefix(&item));
            item.insert("id".into(), Value::String(id.clone()));
            let json = serde_json::to_string(&item)
                .map_err(|e| StoreError::Sql(format!("an item cannot be rendered: {e}")))?;
            if json.len() > limit {
                return Err(ConversationError::ItemTooLarge {
                    index,
                    bytes: json.len(),
                    limit,
                });
            }
            let text = searchable_text(&item);
            Ok(Prepared {
                id,
                json,
                item,
                text,
                agent,
            })
        })
        .collect()
}

async fn insert_items(
    c: &Connection,
    conversation: i64,
    namespace: &str,
    items: Vec<Prepared>,
) -> Result<Vec<Item>, StoreError> {
    let created_at = now();
    let mut stored = Vec::with_capacity(items.len());
    for prepared in items {
        c.execute(
            "INSERT INTO conversation_items
                 (id, conversation, namespace, item, text, agent, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            (
                prepared.id.as_str(),
                conversation,
                namespace,
                prepared.json,
                prepared.text,
                prepared.agent.clone(),
                created_at,
            ),
        )
        .await?;
        stored.push(Item {
            id: prepared.id,
            item: prepared.item,
            agent: prepared.agent,
            created_at,
        });
    }
    Ok(stored)
}

/// The conversation `id` of `namespace`, with its row number.
async fn find(
    c: &Connection,
    namespace: &str,
    id: &str,
) -> Result<Option<(i64, Conversation)>, StoreError> {
    let mut rows = c
        .query(
            "SELECT seq, id, created_at, metadata, agent FROM conversations
             WHERE id = ?1 AND namespace = ?2",
            (id, namespace),
        )
        .await?;
    match rows.next().await? {
        Some(row) => conversation_of(&row).map(Some),
        None => Ok(None),
    }
}

/// The conversation in a row of `seq, id, created_at, metadata, agent`, with its row number.
fn conversation_of(row: &Row) -> Result<(i64, Conversation), StoreError> {
    let id = row.get::<String>(1)?;
    let metadata = row.get::<String>(3)?;
    let metadata = serde_json::from_str(&metadata)
        .map_err(|e| StoreError::Sql(format!("conversation {id}: stored metadata: {e}")))?;
    Ok((
        row.get::<i64>(0)?,
        Conversation {
            id,
            created_at: row.get::<i64>(2)?,
            metadata,
            agent: row.get::<Option<String>>(4)?,
        },
    ))
}

/// The item in columns `first..first + 4` (id, item, agent, created_at).
fn item_of(row: &Row, first: i32) -> Result<Item, StoreError> {
    let id = row.get::<String>(first)?;
    let json = row.get::<String>(first + 1)?;
    let item = match serde_json::from_str::<Value>(&json) {
        Ok(Value::Object(item)) => item,
        Ok(_) => return Err(StoreError::Sql(format!("item {id}: not a JSON object"))),
        Err(e) => return Err(StoreError::Sql(format!("item {id}: {e}"))),
    };
    Ok(Item {
        id,
        item,
        agent: row.get::<Option<String>>(first + 2)?,
        created_at: row.get::<i64>(first + 3)?,
    })
}

fn metadata_json(metadata: &Metadata) -> String {
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".into())
}

/// What full-text search sees of an item: its texts, a call's name and arguments, an output.
pub fn searchable_text(item: &Map<String, Value>) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for key in ["name", "arguments"] {
        if let Some(Value::String(s)) = item.get(key) {
            parts.push(s);
        }
    }
    for key in ["content", "output"] {
        match item.get(key) {
            Some(Value::String(s)) => parts.push(s),
            Some(Value::Array(list)) => {
                for part in list {
                    if let Some(Value::String(s)) = part.get("text").or_else(|| part.get("refusal"))
                    {
                        parts.push(s);
                    }
                }
            }
            _ => {}
        }
    }
    parts.join("\n")
}

/// The id prefix OpenAI uses for an item of this type.
fn id_prefix(item: &Map<String, Value>) -> &'static str {
    match item.get("type").and_then(Value::as_str) {
        Some("message") => "msg_",
        Some("function_call") => "fc_",
        Some("function_call_output") => "fco_",
        _ => "item_",
    }
}

/// `prefix` and 48 random hex digits (192 bits: never guessed, never repeated).
fn new_id(prefix: &str) -> String {
    let bytes: [u8; 24] = rand::random();
    let mut id = String::with_capacity(prefix.len() + 48);
    id.push_str(prefix);
    for b in bytes {
        let _ = write!(id, "{b:02x}");
    }
    id
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
