//! The key-value store over HTTP, in the REST form of LangGraph's server, so the official
//! `langgraph_sdk` client works against `<aigw>/v1` unmodified:
//!
//! - `PUT /v1/store/items` `{namespace, key, value, index?, ttl?}` → 204
//! - `GET /v1/store/items?namespace=a.b&key=k&refresh_ttl=` → the item, or `null` for none
//!   (what LangGraph's server answers, and what the SDK's `get_item` hands back as `None`)
//! - `DELETE /v1/store/items` `{namespace, key}` → 204
//! - `POST /v1/store/items/search` `{namespace_prefix, filter?, limit?, offset?, query?,
//!   refresh_ttl?}` → `{items: [item + score]}`
//! - `POST /v1/store/namespaces` `{prefix?, suffix?, max_depth?, limit?, offset?}` →
//!   `{namespaces: [[label, …], …]}`
//!
//! `ttl` is in minutes, as LangGraph has it. aigw's extensions: `if_version` on put
//! (compare-and-set, 409 `version_conflict` naming the current version), and `version` and
//! `agent` on every item; a put answers its new version in `x-aigw-entry-version`. Every call
//! acts in the caller's namespace (`x-aigw-namespace`): another tenant's entries are not there.
//! Errors are OpenAI-shaped with `param` naming the field (`namespace[1]`, `value`, `filter.x`).

use std::sync::Arc;
use std::time::Duration;

use aigw_memory::entries::{
    self, Entry, EntryError, EntryPath, FieldPath, Hit, Index, ListNamespaces, Put, Search,
};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Caller, json_object, store, store_error};
use crate::auth::Principal;
use crate::body::Body;
use crate::content_type;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::routes::Route;
use crate::service::{json as json_response, method_not_allowed, no_route, read_body};

/// The header a put answers the entry's new version in.
pub(crate) const VERSION_HEADER: &str = "x-aigw-entry-version";
/// Reads restart an entry's time to live unless told not to (LangGraph's `refresh_on_read`).
const REFRESH_ON_READ: bool = true;
/// LangGraph's default page sizes.
const SEARCH_LIMIT: usize = 10;
const LIST_LIMIT: usize = 100;

const ITEMS_PATH: &str = "/v1/store/items";
const SEARCH_PATH: &str = "/v1/store/items/search";
const NAMESPACES_PATH: &str = "/v1/store/namespaces";
const ITEMS: Route = Route::new(ITEMS_PATH, "GET, PUT, DELETE");
const SEARCH: Route = Route::new(SEARCH_PATH, "POST");
const NAMESPACES: Route = Route::new(NAMESPACES_PATH, "POST");
/// Every route this module answers; the methods each takes are the `Allow` of its `405`.
pub(crate) const ROUTES: &[Route] = &[ITEMS, SEARCH, NAMESPACES];

/// Whether `path` is one of this module's.
pub(crate) fn owns(path: &str) -> bool {
    path.starts_with("/v1/store/")
}

/// Answers a `/v1/store/…` request.
pub(crate) async fn handle<B>(
    gateway: Arc<Gateway>,
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
    gateway: Arc<Gateway>,
    principal: &Principal,
    body_read_timeout: Duration,
    request: Request<B>,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let operation = match (&method, path.as_str()) {
        (&Method::PUT, ITEMS_PATH) => Operation::Put,
        (&Method::GET | &Method::HEAD, ITEMS_PATH) => Operation::Get,
        (&Method::DELETE, ITEMS_PATH) => Operation::Delete,
        (&Method::POST, SEARCH_PATH) => Operation::Search,
        (&Method::POST, NAMESPACES_PATH) => Operation::ListNamespaces,
        (_, ITEMS_PATH) => return Ok(method_not_allowed(ITEMS.allow)),
        (_, SEARCH_PATH) => return Ok(method_not_allowed(SEARCH.allow)),
        (_, NAMESPACES_PATH) => return Ok(method_not_allowed(NAMESPACES.allow)),
        _ => {
            return Err(no_route(&method, &path));
        }
    };
    let caller = Caller::from_headers(principal, request.headers())?;
    let store = store(&gateway)?;
    if operation == Operation::Get {
        let query = request.uri().query().unwrap_or_default().to_owned();
        return get(store, &caller, &query).await;
    }
    content_type::require_json(request.headers())?;
    let body = read_body(&gateway, body_read_timeout, request).await?;
    let body = json_object(&body)?;
    match operation {
        Operation::Put => put(store, &caller, body).await,
        Operation::Delete => delete(store, &caller, body).await,
        Operation::Search => search(store, &caller, body).await,
        Operation::ListNamespaces => list_namespaces(store, &caller, body).await,
        Operation::Get => Err(ApiError::invalid_request("unreachable")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Put,
    Get,
    Delete,
    Search,
    ListNamespaces,
}

/// An entry error as the client hears it.
fn entry_error(error: EntryError) -> ApiError {
    match error {
        EntryError::Invalid { param, message } => {
            ApiError::invalid_request(format!("{param}: {message}"))
                .param(param)
                .code("invalid_value")
        }
        EntryError::TooLarge { param, message } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("{param}: {message}"),
        )
        .param(param)
        .code("value_too_large"),
        EntryError::Conflict { expected, current } => {
            let now = if current == 0 {
                "the entry does not exist (version 0)".to_owned()
            } else {
                format!("the entry's current version is {current}")
            };
            ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                format!(
                    "version conflict: if_version is {expected} but {now}; read the entry \
                     again and retry"
                ),
            )
            .param("if_version")
            .code("version_conflict")
        }
        EntryError::Store(error) => store_error(error),
    }
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    let param = param.into();
    ApiError::invalid_request(format!("{param}: {}", message.into()))
        .param(param)
        .code("invalid_value")
}

/// A field that is absent or `null`.
fn absent(body: &Map<String, Value>, field: &str) -> bool {
    body.get(field).is_none_or(Value::is_null)
}

fn labels(body: &Map<String, Value>, field: &str) -> Result<Vec<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(label) => Ok(label.clone()),
                _ => Err(invalid(
                    format!("{field}[{i}]"),
                    "a namespace label is a string",
                )),
            })
            .collect(),
        Some(_) => Err(invalid(field, "a namespace is an array of strings")),
    }
}

fn entry_path(body: &Map<String, Value>, field: &str) -> Result<EntryPath, ApiError> {
    if absent(body, field) {
        return Err(invalid(field, "required"));
    }
    EntryPath::parse(labels(body, field)?, field).map_err(entry_error)
}

fn prefix_path(body: &Map<String, Value>, field: &str) -> Result<EntryPath, ApiError> {
    EntryPath::prefix(labels(body, field)?, field).map_err(entry_error)
}

fn key(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("key") {
        Some(Value::String(key)) => Ok(key.clone()),
        None | Some(Value::Null) => Err(invalid("key", "required")),
        Some(_) => Err(invalid("key", "a key is a string")),
    }
}

fn count(body: &Map<String, Value>, field: &str, default: usize) -> Result<usize, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| invalid(field, "must be a non-negative integer")),
        Some(_) => Err(invalid(field, "must be a non-negative integer")),
    }
}

fn flag(body: &Map<String, Value>, field: &str, default: bool) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(field, "must be true or false")),
    }
}

/// `ttl` in minutes (a positive number), LangGraph's unit.
fn ttl(body: &Map<String, Value>) -> Result<Option<Duration>, ApiError> {
    match body.get("ttl") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let minutes = n.as_f64().unwrap_or(f64::NAN);
            if !minutes.is_finite() || minutes <= 0.0 {
                return Err(invalid(
                    "ttl",
                    "a time to live is a positive number of minutes",
                ));
            }
            Duration::try_from_secs_f64(minutes * 60.0)
                .map(Some)
                .map_err(|_| invalid("ttl", "the time to live is too long"))
        }
        Some(_) => Err(invalid("ttl", "a time to live is a number of minutes")),
    }
}

fn index(body: &Map<String, Value>) -> Result<Index, ApiError> {
    match body.get("index") {
        None | Some(Value::Null) => Ok(Index::All),
        Some(Value::Bool(false)) => Ok(Index::Off),
        Some(Value::Array(fields)) => {
            if fields.len() > entries::MAX_INDEX_FIELDS {
                return Err(invalid(
                    "index",
                    format!("at most {} fields", entries::MAX_INDEX_FIELDS),
                ));
            }
            let fields = fields
                .iter()
                .enumerate()
                .map(|(i, field)| {
                    let param = format!("index[{i}]");
                    match field {
                        Value::String(path) => FieldPath::parse(path, &param).map_err(entry_error),
                        _ => Err(invalid(param, "a field path is a string")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Index::Fields(fields))
        }
        Some(_) => Err(invalid(
            "index",
            "index is false (not indexed), null (every string) or a list of field paths",
        )),
    }
}

async fn put(
    store: &aigw_memory::Store,
    caller: &Caller,
    body: Map<String, Value>,
) -> Result<Response<Body>, ApiError> {
    let path = entry_path(&body, "namespace")?;
    let key = key(&body)?;
    let value = match body.get("value") {
        Some(Value::Object(map)) => map.clone(),
        None | Some(Value::Null) => return Err(invalid("value", "required")),
        Some(_) => return Err(invalid("value", "a value is a JSON object")),
    };
    let if_version = match body.get("if_version") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_u64() => n.as_u64(),
        Some(_) => {
            return Err(invalid(
                "if_version",
                "a version is a non-negative integer (0: the entry must not exist)",
            ));
        }
    };
    let put = Put {
        path,
        key,
        value,
        index: index(&body)?,
        ttl: ttl(&body)?,
        if_version,
        agent: caller.agent.clone(),
    };
    let entry = entries::put(store, &caller.namespace, put)
        .await
        .map_err(entry_error)?;
    let mut response = Response::new(Body::full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(VERSION_HEADER, HeaderValue::from(entry.version));
    Ok(response)
}

async fn get(
    store: &aigw_memory::Store,
    caller: &Caller,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let mut namespace = None;
    let mut key = None;
    let mut refresh = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name).ok_or_else(|| invalid("query", "bad percent-encoding"))?;
        let decoded =
            || percent_decode(value).ok_or_else(|| invalid(name.clone(), "bad percent-encoding"));
        match name.as_str() {
            "namespace" => namespace = Some(decoded()?),
            "key" => key = Some(decoded()?),
            "refresh_ttl" => refresh = Some(decoded()?),
            _ => {}
        }
    }
    let namespace = namespace.ok_or_else(|| invalid("namespace", "required"))?;
    // The labels joined by `.`, as the SDK sends them (labels hold no `.`).
    let labels = if namespace.is_empty() {
        Vec::new()
    } else {
        namespace.split('.').map(str::to_owned).collect()
    };
    let path = EntryPath::parse(labels, "namespace").map_err(entry_error)?;
    let key = key.ok_or_else(|| invalid("key", "required"))?;
    let refresh_ttl = match refresh.as_deref() {
        None | Some("") => REFRESH_ON_READ,
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
        Some(_) => return Err(invalid("refresh_ttl", "must be true or false")),
    };
    let found = entries::get(store, &caller.namespace, &path, &key, refresh_ttl)
        .await
        .map_err(entry_error)?;
    let body = match found {
        Some(entry) => item(&entry, None),
        None => Value::Null,
    };
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

async fn delete(
    store: &aigw_memory::Store,
    caller: &Caller,
    body: Map<String, Value>,
) -> Result<Response<Body>, ApiError> {
    let path = entry_path(&body, "namespace")?;
    let key = key(&body)?;
    entries::delete(store, &caller.namespace, &path, &key)
        .await
        .map_err(entry_error)?;
    let mut response = Response::new(Body::full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn search(
    store: &aigw_memory::Store,
    caller: &Caller,
    body: Map<String, Value>,
) -> Result<Response<Body>, ApiError> {
    let filter = match body.get("filter") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => entries::parse_filter(map, "filter").map_err(entry_error)?,
        Some(_) => return Err(invalid("filter", "a filter is a JSON object")),
    };
    let query = match body.get("query") {
        None | Some(Value::Null) => None,
        Some(Value::String(q)) => Some(q.clone()),
        Some(_) => return Err(invalid("query", "a query is a string")),
    };
    let search = Search {
        prefix: prefix_path(&body, "namespace_prefix")?,
        filter,
        query,
        limit: count(&body, "limit", SEARCH_LIMIT)?,
        offset: count(&body, "offset", 0)?,
        refresh_ttl: flag(&body, "refresh_ttl", REFRESH_ON_READ)?,
    };
    let hits = entries::search(store, &caller.namespace, search)
        .await
        .map_err(entry_error)?;
    let items: Vec<Value> = hits
        .iter()
        .map(|Hit { entry, score }| item(entry, Some(*score)))
        .collect();
    let body = json!({ "items": items });
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

async fn list_namespaces(
    store: &aigw_memory::Store,
    caller: &Caller,
    body: Map<String, Value>,
) -> Result<Response<Body>, ApiError> {
    let max_depth = match body.get("max_depth") {
        None | Some(Value::Null) => None,
        Some(_) => Some(count(&body, "max_depth", 0)?),
    };
    let list = ListNamespaces {
        prefix: prefix_path(&body, "prefix")?,
        suffix: prefix_path(&body, "suffix")?,
        max_depth,
        limit: count(&body, "limit", LIST_LIMIT)?,
        offset: count(&body, "offset", 0)?,
    };
    let namespaces = entries::list_namespaces(store, &caller.namespace, list)
        .await
        .map_err(entry_error)?;
    let body = json!({ "namespaces": namespaces });
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

/// An entry as LangGraph's `Item` (`SearchItem` with `score` when `score` is given), plus
/// aigw's `version` and `agent`.
fn item(entry: &Entry, score: Option<Option<f64>>) -> Value {
    let mut item = json!({
        "namespace": entry.path.labels(),
        "key": entry.key,
        "value": entry.value,
        "created_at": timestamp(entry.created_at_ms),
        "updated_at": timestamp(entry.updated_at_ms),
        "version": entry.version,
        "agent": entry.agent,
    });
    if let (Some(score), Value::Object(map)) = (score, &mut item) {
        map.insert("score".into(), json!(score));
    }
    item
}

/// Milliseconds since the epoch as ISO 8601 in UTC, the way Python's `isoformat` writes them
/// (`2026-12-01T14:48:04.123000+00:00`), which LangGraph's server returns.
fn timestamp(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hours, rest) = (in_day / 3_600_000, in_day % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);
    format!(
        "{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}000+00:00"
    )
}

/// Decodes `%XX` and `+` (a space) of a query-string part; `None` if it is not valid UTF-8 or
/// has a broken escape.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            timestamp(1_796_136_484_123),
            "2026-12-01T14:48:04.123000+00:00"
        );
        assert_eq!(
            timestamp(951_782_400_000),
            "2000-02-29T00:00:00.000000+00:00"
        );
    }

    #[test]
    fn query_parts_are_percent_decoded() {
        assert_eq!(percent_decode("a.b%2Fc+d").as_deref(), Some("a.b/c d"));
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
