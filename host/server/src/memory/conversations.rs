//! The OpenAI Conversations API over the store: `/v1/conversations[/{id}[/items[/{item_id}]]]`
//! in the exact object and list shapes the official SDKs parse, plus `POST
//! /v1/conversations/search` (aigw's: full-text search over the caller's items). Every request
//! acts in its caller's namespace; what another namespace holds is not found. Which agent wrote
//! a conversation or an item (`x-aigw-agent`) is returned as an extra `agent` field.

use std::time::Duration;

use aigw_memory::conversations::{
    self, Conversation, ConversationError, Hit, Item, Metadata, NewItem, Order, Page,
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Caller, items, json_object, store, store_error};
use crate::auth::Principal;
use crate::body::Body;
use crate::content_type;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::redact::Redactor;
use crate::routes::Route;
use crate::service::{dispatched, json as json_response, method_not_allowed, no_route, read_body};

/// The route prefix this module answers.
pub(crate) const PREFIX: &str = "/v1/conversations";

/// The routes under [`PREFIX`], one per [`Target`]: the methods each takes are the `Allow` of
/// its `405`.
const COLLECTION: Route = Route::new(PREFIX, "POST");
const SEARCH: Route = Route::new("/v1/conversations/search", "POST");
const CONVERSATION: Route = Route::new("/v1/conversations/{conversation_id}", "GET, POST, DELETE");
const ITEMS: Route = Route::new("/v1/conversations/{conversation_id}/items", "GET, POST");
const ITEM: Route = Route::new(
    "/v1/conversations/{conversation_id}/items/{item_id}",
    "GET, DELETE",
);
/// Every route this module answers.
pub(crate) const ROUTES: &[Route] = &[COLLECTION, SEARCH, CONVERSATION, ITEMS, ITEM];

/// The most items one request may add.
const MAX_ITEMS_PER_REQUEST: usize = 1000;
/// OpenAI's metadata bounds.
const MAX_METADATA_PAIRS: usize = 16;
const MAX_METADATA_KEY_CHARS: usize = 64;
const MAX_METADATA_VALUE_CHARS: usize = 512;
/// A listing's default page, and the most one page holds.
pub(crate) const DEFAULT_LIMIT: usize = 20;
pub(crate) const MAX_LIMIT: usize = 100;

/// Which resource a path names.
enum Target<'p> {
    Collection,
    Search,
    Conversation(&'p str),
    Items(&'p str),
    Item(&'p str, &'p str),
}

impl Target<'_> {
    fn route(&self) -> &'static Route {
        match self {
            Target::Collection => &COLLECTION,
            Target::Search => &SEARCH,
            Target::Conversation(_) => &CONVERSATION,
            Target::Items(_) => &ITEMS,
            Target::Item(..) => &ITEM,
        }
    }
}

fn target(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix(PREFIX)?;
    if rest.is_empty() {
        return Some(Target::Collection);
    }
    let rest = rest.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    match segments.as_slice() {
        ["search"] => Some(Target::Search),
        [id] => Some(Target::Conversation(id)),
        [id, "items"] => Some(Target::Items(id)),
        [id, "items", item] => Some(Target::Item(id, item)),
        _ => None,
    }
}

/// Answers a request whose path starts with [`PREFIX`].
pub(crate) async fn handle<B>(
    gateway: &Gateway,
    principal: &Principal,
    body_read_timeout: Duration,
    request: Request<B>,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match answer(gateway, principal, body_read_timeout, request).await {
        Ok(response) => response,
        Err(error) => error.response(),
    }
}

async fn answer<B>(
    gateway: &Gateway,
    principal: &Principal,
    body_read_timeout: Duration,
    request: Request<B>,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = request.uri().path().to_owned();
    let Some(target) = target(&path) else {
        return Err(no_route(request.method(), &path));
    };
    let route = target.route();
    let method = match dispatched(route, request.method()) {
        Ok(method) => method,
        Err(refused) => return Ok(*refused),
    };
    let caller = Caller::from_headers(principal, request.headers())?;
    let store = store(gateway)?;
    let query = request.uri().query().map(str::to_owned);
    let body = if method == Method::POST {
        content_type::require_json(request.headers())?;
        let bytes = read_body(gateway, body_read_timeout, request).await?;
        json_object(&bytes)?
    } else {
        Map::new()
    };
    let ns = &caller.namespace;
    let answer = match (method, target) {
        (Method::POST, Target::Collection) => {
            allow_fields(&body, &["items", "metadata"])?;
            let metadata = metadata(body.get("metadata"))?;
            let items = new_items(body.get("items"), false, &caller, &gateway.redactor)?;
            let (conversation, _) =
                conversations::create(store, ns, metadata, items, caller.agent.clone())
                    .await
                    .map_err(error)?;
            conversation_json(&conversation)
        }
        (Method::POST, Target::Search) => {
            allow_fields(&body, &["query", "conversation_id", "limit"])?;
            let query = match body.get("query") {
                Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
                Some(Value::String(_)) => {
                    return Err(ApiError::invalid_request("query must not be empty").param("query"));
                }
                None | Some(Value::Null) => {
                    return Err(ApiError::invalid_request("query is missing").param("query"));
                }
                Some(_) => {
                    return Err(ApiError::invalid_request("query must be a string").param("query"));
                }
            };
            let within = match body.get("conversation_id") {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) => Some(id.clone()),
                Some(_) => {
                    return Err(
                        ApiError::invalid_request("conversation_id must be a string")
                            .param("conversation_id"),
                    );
                }
            };
            let limit = match body.get("limit") {
                None | Some(Value::Null) => DEFAULT_LIMIT,
                Some(value) => value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(bad_limit)?,
            };
            let hits = conversations::search(store, ns, &query, within.as_deref(), limit)
                .await
                .map_err(error)?;
            hits_json(&hits)
        }
        (Method::GET, Target::Conversation(id)) => {
            conversation_json(&conversations::get(store, ns, id).await.map_err(error)?)
        }
        (Method::POST, Target::Conversation(id)) => {
            allow_fields(&body, &["metadata"])?;
            if !body.contains_key("metadata") {
                return Err(ApiError::invalid_request("metadata is missing").param("metadata"));
            }
            let metadata = metadata(body.get("metadata"))?;
            let conversation = conversations::update_metadata(store, ns, id, metadata)
                .await
                .map_err(error)?;
            conversation_json(&conversation)
        }
        (Method::DELETE, Target::Conversation(id)) => {
            conversations::delete(store, ns, id).await.map_err(error)?;
            json!({"id": id, "object": "conversation.deleted", "deleted": true})
        }
        (Method::POST, Target::Items(id)) => {
            allow_fields(&body, &["items"])?;
            let items = new_items(body.get("items"), true, &caller, &gateway.redactor)?;
            let stored = conversations::append(store, ns, id, items)
                .await
                .map_err(error)?;
            list_json(&stored, false)
        }
        (Method::GET, Target::Items(id)) => {
            let page = page(query.as_deref())?;
            let listed = conversations::list_items(store, ns, id, page)
                .await
                .map_err(error)?;
            list_json(&listed.items, listed.has_more)
        }
        (Method::GET, Target::Item(id, item)) => item_json(
            &conversations::get_item(store, ns, id, item)
                .await
                .map_err(error)?,
        ),
        (Method::DELETE, Target::Item(id, item)) => {
            let conversation = conversations::delete_item(store, ns, id, item)
                .await
                .map_err(error)?;
            conversation_json(&conversation)
        }
        // Every other pair was answered 405 above.
        _ => return Ok(method_not_allowed(route.allow)),
    };
    Ok(json_response(
        StatusCode::OK,
        Bytes::from(answer.to_string()),
    ))
}

/// A store answer as the client hears it.
pub(crate) fn error(error: ConversationError) -> ApiError {
    match error {
        ConversationError::ConversationNotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "no conversation with this id",
        )
        .code("conversation_not_found"),
        ConversationError::ItemNotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "no item with this id in the conversation",
        )
        .code("item_not_found"),
        ConversationError::AfterNotFound => {
            ApiError::invalid_request("after must be the id of an item of this conversation")
                .param("after")
                .code("invalid_cursor")
        }
        ConversationError::ItemTooLarge {
            index,
            bytes,
            limit,
        } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!(
                "items[{index}] is {bytes} bytes, more than the limit of {limit} \
                 ([memory] max_item_bytes)"
            ),
        )
        .param(format!("items[{index}]"))
        .code("item_too_large"),
        ConversationError::BadQuery(detail) => ApiError::invalid_request(format!(
            "query is not a valid full-text query ({detail}); quote terms with \"…\" to search \
             for them literally"
        ))
        .param("query")
        .code("invalid_query"),
        ConversationError::Store(e) => store_error(e),
    }
}

/// Unknown fields are refused, as OpenAI does: a misspelt field would otherwise be lost.
fn allow_fields(body: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(ApiError::invalid_request(format!(
            "unknown parameter: {unknown} (this endpoint takes {})",
            known.join(", ")
        ))
        .param(unknown.clone())
        .code("unknown_parameter")),
    }
}

/// `metadata`: at most 16 string pairs, keys up to 64 characters, values up to 512; null or
/// absent is none.
fn metadata(value: Option<&Value>) -> Result<Metadata, ApiError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Metadata::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(
                ApiError::invalid_request("metadata must be an object of strings")
                    .param("metadata"),
            );
        }
    };
    if map.len() > MAX_METADATA_PAIRS {
        return Err(ApiError::invalid_request(format!(
            "metadata holds {} pairs, more than {MAX_METADATA_PAIRS}",
            map.len()
        ))
        .param("metadata"));
    }
    let mut metadata = Metadata::new();
    for (key, value) in map {
        if key.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(ApiError::invalid_request(format!(
                "metadata keys are at most {MAX_METADATA_KEY_CHARS} characters"
            ))
            .param(format!("metadata.{}", truncated(key))));
        }
        let Value::String(value) = value else {
            return Err(ApiError::invalid_request("metadata values must be strings")
                .param(format!("metadata.{key}")));
        };
        if value.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(ApiError::invalid_request(format!(
                "metadata values are at most {MAX_METADATA_VALUE_CHARS} characters"
            ))
            .param(format!("metadata.{key}")));
        }
        metadata.insert(key.clone(), value.clone());
    }
    Ok(metadata)
}

fn truncated(key: &str) -> String {
    key.chars().take(MAX_METADATA_KEY_CHARS).collect()
}

/// `items`, each checked, normalised and redacted, recorded as written by the caller's agent.
fn new_items(
    value: Option<&Value>,
    required: bool,
    caller: &Caller,
    redactor: &Redactor,
) -> Result<Vec<NewItem>, ApiError> {
    let list = match value {
        None | Some(Value::Null) if !required => return Ok(Vec::new()),
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_request("items is missing").param("items"));
        }
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ApiError::invalid_request("items must be a list").param("items")),
    };
    if list.len() > MAX_ITEMS_PER_REQUEST {
        return Err(ApiError::invalid_request(format!(
            "items holds {} items, more than {MAX_ITEMS_PER_REQUEST} in one request",
            list.len()
        ))
        .param("items"));
    }
    list.iter()
        .cloned()
        .enumerate()
        .map(|(index, item)| {
            let mut item = items::normalise(item, index)?;
            redactor.item(&mut item);
            Ok(NewItem {
                item,
                agent: caller.agent.clone(),
            })
        })
        .collect()
}

/// `after`, `limit` and `order` from the query string (others, like `include`, are ignored).
pub(crate) fn page(query: Option<&str>) -> Result<Page, ApiError> {
    let mut page = Page {
        after: None,
        limit: DEFAULT_LIMIT,
        order: Order::Desc,
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decoded(value);
        match name {
            "after" => page.after = Some(value),
            "limit" => {
                page.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(bad_limit)?;
            }
            "order" => {
                page.order = match value.as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => {
                        return Err(ApiError::invalid_request(format!(
                            "order must be \"asc\" or \"desc\", not {value:?}"
                        ))
                        .param("order"));
                    }
                };
            }
            _ => {}
        }
    }
    Ok(page)
}

fn bad_limit() -> ApiError {
    ApiError::invalid_request(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
        .param("limit")
}

/// A query value with `%XX` and `+` decoded; invalid escapes are kept as written.
pub(crate) fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn conversation_json(conversation: &Conversation) -> Value {
    let mut object = json!({
        "id": conversation.id,
        "object": "conversation",
        "created_at": conversation.created_at,
        "metadata": conversation.metadata,
    });
    if let (Some(agent), Value::Object(map)) = (&conversation.agent, &mut object) {
        map.insert("agent".into(), json!(agent));
    }
    object
}

fn item_json(item: &Item) -> Value {
    let mut object = item.item.clone();
    object.insert("id".into(), json!(item.id));
    if let Some(agent) = &item.agent {
        object.insert("agent".into(), json!(agent));
    }
    Value::Object(object)
}

/// The list shape of items (`first_id`/`last_id` are null for an empty list).
pub(crate) fn list_json(items: &[Item], has_more: bool) -> Value {
    json!({
        "object": "list",
        "data": items.iter().map(item_json).collect::<Vec<_>>(),
        "first_id": items.first().map(|i| i.id.as_str()),
        "last_id": items.last().map(|i| i.id.as_str()),
        "has_more": has_more,
    })
}

fn hits_json(hits: &[Hit]) -> Value {
    let data: Vec<Value> = hits
        .iter()
        .map(|hit| {
            let mut object = item_json(&hit.item);
            if let Value::Object(map) = &mut object {
                map.insert("conversation_id".into(), json!(hit.conversation));
                map.insert("score".into(), json!(hit.score));
            }
            object
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "first_id": hits.first().map(|h| h.item.id.as_str()),
        "last_id": hits.last().map(|h| h.item.id.as_str()),
        "has_more": false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn paths_name_their_resource() {
        assert!(matches!(
            target("/v1/conversations"),
            Some(Target::Collection)
        ));
        assert!(matches!(
            target("/v1/conversations/search"),
            Some(Target::Search)
        ));
        assert!(matches!(
            target("/v1/conversations/conv_1"),
            Some(Target::Conversation("conv_1"))
        ));
        assert!(matches!(
            target("/v1/conversations/conv_1/items"),
            Some(Target::Items("conv_1"))
        ));
        assert!(matches!(
            target("/v1/conversations/conv_1/items/msg_2"),
            Some(Target::Item("conv_1", "msg_2"))
        ));
        for bad in [
            "/v1/conversationsx",
            "/v1/conversations/",
            "/v1/conversations//items",
            "/v1/conversations/c/items/",
            "/v1/conversations/c/things",
            "/v1/conversations/c/items/i/more",
        ] {
            assert!(target(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decoded("msg_1%5Fa+b"), "msg_1_a b");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
        let page = page(Some("after=msg%5Fx&limit=5&order=asc&include%5B%5D=x")).unwrap();
        assert_eq!(page.after.as_deref(), Some("msg_x"));
        assert_eq!((page.limit, page.order), (5, Order::Asc));
    }
}
