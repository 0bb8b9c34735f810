//! `/admin/keys`: the virtual keys' admin API. `POST /admin/keys` makes a key from a `KeySpec`
//! body (201; the answer carries the secret, `"key"`, this once), `GET /admin/keys` lists them in
//! pages (`after`, `limit`), `GET|PATCH|DELETE /admin/keys/{key_id}` reads, updates (the fields
//! given replace the stored ones, `null` clears one) and revokes one (the record stays), and
//! `POST /admin/keys/{key_id}/rotate` gives it a new secret (answered once, like creation), the
//! old one working `grace_seconds` more if asked. A change made here reloads this process's key
//! directory before it is answered, so it applies at once; other processes see it within their
//! `auth.key_refresh_ms`. Records show a secret's hint only, never the secret or its hash.

use std::sync::Arc;
use std::time::Duration;

use aigw_access::keys::{self as store_keys, KeyError, Page};
use aigw_access::{Directory, Key};
use aigw_memory::Store;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::Resource;
use crate::Body;
use crate::content_type;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::memory::{json_object, store_error};
use crate::routes::Route;
use crate::service::{dispatched, json as json_response, no_route, read_body};

const PREFIX: &str = "/admin/keys";
pub(crate) const COLLECTION: Route = Route::new(PREFIX, "GET, POST");
pub(crate) const KEY: Route = Route::new("/admin/keys/{key_id}", "GET, PATCH, DELETE");
pub(crate) const ROTATE: Route = Route::new("/admin/keys/{key_id}/rotate", "POST");

/// A listing's default page.
const DEFAULT_LIMIT: usize = 20;

fn target(path: &str) -> Option<Resource<'_>> {
    Resource::of(path, PREFIX, "rotate")
}

/// Whether this module answers `path`.
pub(crate) fn owns(path: &str) -> bool {
    super::under(path, PREFIX)
}

/// Answers a request under this module's prefix; a refusal is the error to answer with.
pub(crate) async fn answer<B>(
    gateway: &Gateway,
    directory: Option<&Arc<Directory>>,
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
    let method = match dispatched(target.route(&COLLECTION, &KEY, &ROTATE), request.method()) {
        Ok(method) => method,
        Err(refused) => return Ok(*refused),
    };
    // The directory's store when authentication is on; with it off, keys can still be made
    // (ahead of turning it on) in the gateway's store.
    let store: &Store = match directory {
        Some(directory) => directory.store(),
        None => crate::memory::store(gateway)?,
    };
    let query = request.uri().query().map(str::to_owned);
    let body = if method == Method::POST || method == Method::PATCH {
        // A page may POST a plain-text body to any address unasked; JSON needs a preflight.
        content_type::require_json(request.headers())?;
        let bytes = read_body(gateway, body_read_timeout, request).await?;
        match (&target, bytes.iter().all(u8::is_ascii_whitespace)) {
            // Rotation takes an optional body.
            (Resource::Action(_), true) => Map::new(),
            _ => json_object(&bytes)?,
        }
    } else {
        Map::new()
    };
    let (status, record) = match (method, target) {
        (Method::POST, Resource::Collection) => {
            let spec = store_keys::spec_from_json(&body).map_err(key_error)?;
            let made = store_keys::create(store, spec).await.map_err(key_error)?;
            refreshed(directory).await;
            tracing::info!(key = made.key.id.as_str(), "key created");
            (StatusCode::CREATED, with_secret(&made.key, &made.secret))
        }
        (Method::GET, Resource::Collection) => {
            let page = page(query.as_deref())?;
            let listed = store_keys::list(store, page).await.map_err(key_error)?;
            let data: Vec<Value> = listed.keys.iter().map(record).collect();
            let list = json!({
                "object": "list",
                "first_id": listed.keys.first().map(|k| &k.id),
                "last_id": listed.keys.last().map(|k| &k.id),
                "has_more": listed.has_more,
                "data": data,
            });
            (StatusCode::OK, list)
        }
        (Method::GET, Resource::Item(id)) => {
            let key = store_keys::get(store, id).await.map_err(key_error)?;
            (StatusCode::OK, record(&key))
        }
        (Method::PATCH, Resource::Item(id)) => {
            let key = store_keys::update(store, id, body)
                .await
                .map_err(key_error)?;
            refreshed(directory).await;
            tracing::info!(key = key.id.as_str(), "key updated");
            (StatusCode::OK, record(&key))
        }
        (Method::DELETE, Resource::Item(id)) => {
            let key = store_keys::revoke(store, id).await.map_err(key_error)?;
            refreshed(directory).await;
            tracing::info!(key = key.id.as_str(), "key revoked");
            (StatusCode::OK, record(&key))
        }
        (Method::POST, Resource::Action(id)) => {
            let grace = grace_seconds(&body)?;
            let rotated = store_keys::rotate(store, id, grace)
                .await
                .map_err(key_error)?;
            refreshed(directory).await;
            tracing::info!(
                key = rotated.key.id.as_str(),
                grace_seconds = grace,
                "key rotated"
            );
            (StatusCode::OK, with_secret(&rotated.key, &rotated.secret))
        }
        // Every other method was answered with 405 above.
        (method, _) => return Err(no_route(&method, &path)),
    };
    Ok(json_response(status, Bytes::from(record.to_string())))
}

/// Reloads this process's directory after a change, so the change applies at once. A failed
/// reload is logged, not the admin's error: the change is committed, and the next periodic
/// refresh picks it up.
pub(super) async fn refreshed(directory: Option<&Arc<Directory>>) {
    if let Some(directory) = directory
        && let Err(e) = directory.refresh().await
    {
        tracing::warn!(error = %e, "key directory reload after a change failed");
    }
}

/// A key's record: its id, hint, times (Unix seconds, as OpenAI's objects have them) and spec.
fn record(key: &Key) -> Value {
    let mut fields = match serde_json::to_value(&key.spec) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    let seconds = |ms: i64| ms.div_euclid(1000);
    let mut out = Map::new();
    out.insert("id".into(), json!(key.id));
    out.insert("object".into(), json!("aigw.key"));
    out.insert("hint".into(), json!(key.hint));
    out.insert("created_at".into(), json!(seconds(key.created_at)));
    out.insert("updated_at".into(), json!(seconds(key.updated_at)));
    out.insert("revoked_at".into(), json!(key.revoked_at.map(seconds)));
    out.append(&mut fields);
    Value::Object(out)
}

/// The record with the secret: only creation and rotation answer it.
fn with_secret(key: &Key, secret: &str) -> Value {
    let mut value = record(key);
    if let Value::Object(fields) = &mut value {
        fields.insert("key".into(), json!(secret));
    }
    value
}

/// `after` and `limit` from the query string (others are ignored).
pub(super) fn page(query: Option<&str>) -> Result<Page, ApiError> {
    let mut page = Page {
        after: None,
        limit: DEFAULT_LIMIT,
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            // Key ids are `key_` and hex: nothing to percent-decode.
            "after" => page.after = Some(value.to_owned()),
            "limit" => {
                page.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=store_keys::MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid_request(format!(
                            "limit must be an integer from 1 to {}",
                            store_keys::MAX_PAGE
                        ))
                        .param("limit")
                    })?;
            }
            _ => {}
        }
    }
    Ok(page)
}

/// The rotation body's optional `grace_seconds` (at most a day: a grace is for moving over).
fn grace_seconds(body: &Map<String, Value>) -> Result<Option<u64>, ApiError> {
    const MAX_GRACE: u64 = 86_400;
    if let Some(field) = body.keys().find(|k| *k != "grace_seconds") {
        return Err(ApiError::invalid_request(format!(
            "unknown field `{field}`; a rotation takes only `grace_seconds`"
        ))
        .param(field.clone()));
    }
    match body.get("grace_seconds") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .filter(|s| *s <= MAX_GRACE)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "`grace_seconds` must be an integer from 0 to {MAX_GRACE}"
                ))
                .param("grace_seconds")
            }),
    }
}

pub(super) fn key_error(error: KeyError) -> ApiError {
    match error {
        KeyError::NotFound(id) => ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no key with the id `{id}`"),
        )
        .code("key_not_found"),
        KeyError::Invalid { param, message } => {
            let error = ApiError::invalid_request(message).code("invalid_key_spec");
            if param.is_empty() {
                error
            } else {
                error.param(param)
            }
        }
        KeyError::Revoked(id) => ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!("the key `{id}` is revoked; create a new key instead"),
        )
        .code("key_revoked"),
        KeyError::TeamNotFound(id) => ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no team with the id `{id}`"),
        )
        .code("team_not_found"),
        KeyError::TeamInUse(id) => ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!(
                "the team `{id}` still has keys; revoke them or move them to another team first"
            ),
        )
        .code("team_in_use"),
        KeyError::Store(e) => store_error(e),
    }
}
