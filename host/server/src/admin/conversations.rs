//! Conversations browsed by namespace, for the operator (the dashboard): `GET
//! /admin/conversations?namespace=<ns>&limit&after` lists a namespace's conversations, newest
//! first; `GET /admin/conversations/{conversation_id}/items?namespace=<ns>&limit&after&order`
//! lists one's items; `GET /admin/namespaces?limit&after` names the namespaces holding any.
//! The admin key may read every namespace, but each call still names the one it reads and
//! sees nothing outside it (a conversation of another namespace is not found): the store's
//! scoping holds for the operator too. The shapes are the Conversations API's.

use aigw_memory::Namespace;
use aigw_memory::conversations;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::Resource;
use crate::Body;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::memory::conversations::{
    DEFAULT_LIMIT, MAX_LIMIT, conversation_json, error, list_json, page, percent_decoded,
};
use crate::memory::{store, store_error};
use crate::routes::Route;
use crate::service::{dispatched, json as json_response, no_route};

const PREFIX: &str = "/admin/conversations";
pub(crate) const COLLECTION: Route = Route::new(PREFIX, "GET, HEAD");
pub(crate) const ITEMS: Route =
    Route::new("/admin/conversations/{conversation_id}/items", "GET, HEAD");
/// The namespaces holding conversations.
pub(crate) const NAMESPACES_PATH: &str = "/admin/namespaces";
pub(crate) const NAMESPACES: Route = Route::new(NAMESPACES_PATH, "GET, HEAD");
/// The most namespaces one page names.
const MAX_NAMESPACES: usize = 1000;

/// Whether this module answers `path`.
pub(crate) fn owns(path: &str) -> bool {
    super::under(path, PREFIX) || path == NAMESPACES_PATH
}

/// Answers a request under `/admin/conversations` or `/admin/namespaces`.
pub(crate) async fn answer(
    gateway: &Gateway,
    method: &http::Method,
    path: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    if path == NAMESPACES_PATH {
        if let Err(refused) = dispatched(&NAMESPACES, method) {
            return Ok(*refused);
        }
        return namespaces(gateway, query).await;
    }
    let Some(resource) = Resource::of(path, PREFIX, "items") else {
        return Err(no_route(method, path));
    };
    let route = match resource {
        Resource::Collection => &COLLECTION,
        Resource::Action(_) => &ITEMS,
        // A conversation alone is not browsed here: its items are.
        Resource::Item(_) => return Err(no_route(method, path)),
    };
    if let Err(refused) = dispatched(route, method) {
        return Ok(*refused);
    }
    let store = store(gateway)?;
    let namespace = namespace(query)?;
    let body = match resource {
        Resource::Collection => {
            let (after, limit) = cursor(query, DEFAULT_LIMIT, MAX_LIMIT)?;
            let (found, has_more) = conversations::list(store, &namespace, after.as_deref(), limit)
                .await
                .map_err(|e| match e {
                    conversations::ConversationError::AfterNotFound => ApiError::invalid_request(
                        "after must be the id of a conversation of this namespace",
                    )
                    .param("after")
                    .code("invalid_cursor"),
                    other => error(other),
                })?;
            json!({
                "object": "list",
                "namespace": namespace.as_str(),
                "data": found.iter().map(conversation_json).collect::<Vec<_>>(),
                "first_id": found.first().map(|c| c.id.as_str()),
                "last_id": found.last().map(|c| c.id.as_str()),
                "has_more": has_more,
            })
        }
        Resource::Action(id) | Resource::Item(id) => {
            let page = page(query)?;
            let items = conversations::list_items(store, &namespace, id, page)
                .await
                .map_err(error)?;
            list_json(&items.items, items.has_more)
        }
    };
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

async fn namespaces(gateway: &Gateway, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let store = store(gateway)?;
    let (after, limit) = cursor(query, MAX_NAMESPACES, MAX_NAMESPACES)?;
    // One more than asked says whether more follow.
    let mut found = conversations::namespaces(store, after.as_deref(), limit + 1)
        .await
        .map_err(store_error)?;
    let has_more = found.len() > limit;
    found.truncate(limit);
    let data: Vec<Value> = found
        .iter()
        .map(|(name, count)| json!({ "namespace": name, "conversations": count }))
        .collect();
    let body = json!({ "object": "list", "data": data, "has_more": has_more });
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

/// The query's values of `name` (percent-decoded), all of them: a repeated one is refused by
/// the caller.
fn values<'q>(query: Option<&'q str>, name: &'q str) -> impl Iterator<Item = String> + 'q {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| percent_decoded(value))
        })
}

/// The one value of `name`, if given; a repeated one is a 400 naming it.
fn single(query: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    let mut found = values(query, name);
    let first = found.next();
    if found.next().is_some() {
        return Err(ApiError::invalid_request(format!("{name} is given twice"))
            .param(name.to_owned())
            .code("invalid_query"));
    }
    Ok(first)
}

/// The namespace the call reads: required, since the operator may read any.
fn namespace(query: Option<&str>) -> Result<Namespace, ApiError> {
    let Some(name) = single(query, "namespace")? else {
        return Err(ApiError::invalid_request(
            "namespace is required: name the namespace to read (GET /admin/namespaces lists them)",
        )
        .param("namespace")
        .code("missing_namespace"));
    };
    Namespace::parse(&name).map_err(|e| {
        ApiError::invalid_request(format!("namespace: {e}"))
            .param("namespace")
            .code("invalid_namespace")
    })
}

/// `after` and `limit` (1 to `max`, default `default`).
fn cursor(
    query: Option<&str>,
    default: usize,
    max: usize,
) -> Result<(Option<String>, usize), ApiError> {
    let after = single(query, "after")?.filter(|a| !a.is_empty());
    let limit = match single(query, "limit")? {
        None => default,
        Some(value) => value
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_request(format!("limit must be an integer from 1 to {max}"))
                    .param("limit")
            })?,
    };
    Ok((after, limit))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_namespace_is_required_once_and_valid() {
        assert_eq!(
            namespace(Some("namespace=team%2Da&limit=3"))
                .unwrap()
                .as_str(),
            "team-a"
        );
        assert_eq!(namespace(None).unwrap_err().code, Some("missing_namespace"));
        assert_eq!(
            namespace(Some("namespace=a&namespace=b")).unwrap_err().code,
            Some("invalid_query")
        );
        assert_eq!(
            namespace(Some("namespace=")).unwrap_err().code,
            Some("invalid_namespace")
        );
    }

    #[test]
    fn the_cursor_takes_after_and_a_bounded_limit() {
        assert_eq!(cursor(None, 20, 100).unwrap(), (None, 20));
        assert_eq!(
            cursor(Some("after=conv_1&limit=5"), 20, 100).unwrap(),
            (Some("conv_1".to_owned()), 5)
        );
        for bad in ["limit=0", "limit=101", "limit=x"] {
            assert_eq!(
                cursor(Some(bad), 20, 100).unwrap_err().param.as_deref(),
                Some("limit"),
                "{bad}"
            );
        }
    }

    #[test]
    fn paths_name_the_listing_and_a_conversations_items() {
        assert!(owns("/admin/conversations"));
        assert!(owns("/admin/conversations/conv_1/items"));
        assert!(owns("/admin/namespaces"));
        assert!(!owns("/admin/conversationsx"));
        assert!(!owns("/admin/namespaces/x"));
    }
}
