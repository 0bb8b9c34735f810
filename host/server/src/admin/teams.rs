//! `/admin/teams`: teams, groups of keys sharing a model grant, limits and a budget, in the same
//! shape as `/admin/keys`: `POST /admin/teams` (201), `GET /admin/teams` (pages: `after`,
//! `limit`), `GET|PATCH|DELETE /admin/teams/{team_id}` (DELETE is refused with 409 while a key
//! that is not revoked names the team). A key joins a team by naming it in its spec (`team`).
//! A change reloads this process's key directory at once, so the team's keys follow it.

use std::sync::Arc;
use std::time::Duration;

use aigw_access::teams;
use aigw_access::{Directory, Team};
use aigw_memory::Store;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::keys::{key_error, page, refreshed};
use crate::Body;
use crate::content_type;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::memory::json_object;
use crate::routes::Route;
use crate::service::{dispatched, json as json_response, no_route, read_body};

const PREFIX: &str = "/admin/teams";
pub(crate) const COLLECTION: Route = Route::new(PREFIX, "GET, POST");
pub(crate) const TEAM: Route = Route::new("/admin/teams/{team_id}", "GET, PATCH, DELETE");

/// Whether this module answers `path`.
pub(crate) fn owns(path: &str) -> bool {
    super::under(path, PREFIX)
}

/// The team a path names (`None`: the collection), or `Err` for a path under the prefix that
/// names nothing.
fn target(path: &str) -> Result<Option<&str>, ()> {
    match path.strip_prefix(PREFIX) {
        Some("") => Ok(None),
        Some(rest) => match rest.strip_prefix('/') {
            Some(id) if !id.is_empty() && !id.contains('/') => Ok(Some(id)),
            _ => Err(()),
        },
        None => Err(()),
    }
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
    let Ok(target) = target(&path) else {
        return Err(no_route(request.method(), &path));
    };
    let method = match dispatched(
        if target.is_some() { &TEAM } else { &COLLECTION },
        request.method(),
    ) {
        Ok(method) => method,
        Err(refused) => return Ok(*refused),
    };
    let store: &Store = match directory {
        Some(directory) => directory.store(),
        None => crate::memory::store(gateway)?,
    };
    let query = request.uri().query().map(str::to_owned);
    let body = if method == Method::POST || method == Method::PATCH {
        content_type::require_json(request.headers())?;
        json_object(&read_body(gateway, body_read_timeout, request).await?)?
    } else {
        Map::new()
    };
    let (status, record) = match (method, target) {
        (Method::POST, None) => {
            let spec = teams::spec_from_json(&body).map_err(key_error)?;
            let team = teams::create(store, spec).await.map_err(key_error)?;
            refreshed(directory).await;
            tracing::info!(team = team.id.as_str(), "team created");
            (StatusCode::CREATED, record(&team))
        }
        (Method::GET, None) => {
            let listed = teams::list(store, page(query.as_deref())?)
                .await
                .map_err(key_error)?;
            let data: Vec<Value> = listed.teams.iter().map(record).collect();
            let list = json!({
                "object": "list",
                "first_id": listed.teams.first().map(|t| &t.id),
                "last_id": listed.teams.last().map(|t| &t.id),
                "has_more": listed.has_more,
                "data": data,
            });
            (StatusCode::OK, list)
        }
        (Method::GET, Some(id)) => (
            StatusCode::OK,
            record(&teams::get(store, id).await.map_err(key_error)?),
        ),
        (Method::PATCH, Some(id)) => {
            let team = teams::update(store, id, body).await.map_err(key_error)?;
            refreshed(directory).await;
            tracing::info!(team = team.id.as_str(), "team updated");
            (StatusCode::OK, record(&team))
        }
        (Method::DELETE, Some(id)) => {
            let team = teams::delete(store, id).await.map_err(key_error)?;
            refreshed(directory).await;
            tracing::info!(team = team.id.as_str(), "team deleted");
            let mut answer = record(&team);
            if let Value::Object(fields) = &mut answer {
                fields.insert("deleted".into(), json!(true));
            }
            (StatusCode::OK, answer)
        }
        (method, _) => return Err(no_route(&method, &path)),
    };
    Ok(json_response(status, Bytes::from(record.to_string())))
}

/// A team's record: id, times (Unix seconds) and spec.
fn record(team: &Team) -> Value {
    let mut fields = match serde_json::to_value(&team.spec) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    let mut out = Map::new();
    out.insert("id".into(), json!(team.id));
    out.insert("object".into(), json!("aigw.team"));
    out.insert("created_at".into(), json!(team.created_at.div_euclid(1000)));
    out.insert("updated_at".into(), json!(team.updated_at.div_euclid(1000)));
    out.append(&mut fields);
    Value::Object(out)
}
