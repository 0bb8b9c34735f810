//! `/admin/plugins`: the loaded plugins of a running gateway, and swapping them. `GET
//! /admin/plugins` lists them, `GET /admin/plugins/{name}` shows one, `PUT /admin/plugins/{name}`
//! (the body: the component's bytes, within its own cap, not `max_body_bytes`) adds or replaces
//! one, `DELETE` unloads an unused one, and `POST /admin/plugins/{name}/rollback` brings the
//! previous version back. The server knows no config: the registry of plugins, how a served
//! state is rebuilt around a new one and where files go are the binary's, behind
//! [`PluginControl`]; this module is the HTTP over it (routes, the upload's size cap, errors in
//! the OpenAI shape).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::Resource;
use crate::Body;
use crate::error::ApiError;
use crate::routes::Route;
use crate::service::{dispatched, json as json_response, no_route, read_limited};

const PREFIX: &str = "/admin/plugins";
pub(crate) const COLLECTION: Route = Route::new(PREFIX, "GET");
pub(crate) const PLUGIN: Route = Route::new("/admin/plugins/{name}", "GET, PUT, DELETE");
pub(crate) const ROLLBACK: Route = Route::new("/admin/plugins/{name}/rollback", "POST");

/// One loaded plugin as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginEntry {
    /// The registry's name: the file stem a config's `plugin = "<name>"` names.
    pub name: String,
    /// `provider` or `tool`.
    pub kind: String,
    /// `provider-plugin` or `tool-plugin`.
    pub world: String,
    /// The `aigw:plugin` version the component was built against.
    pub wit_version: String,
    /// The version the plugin describes itself with.
    pub version: String,
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
    pub size_bytes: usize,
    /// When this version was loaded, in Unix seconds.
    pub loaded_at: u64,
    /// Calls this version has served.
    pub calls: u64,
    /// Who uses it in the running config: `providers.<name>`, `tools.<name>`.
    pub used_by: Vec<String>,
    /// The version a rollback brings back.
    pub previous: Option<PreviousVersion>,
    /// Where this version came from: `file <path>`, `upload` or `rollback`.
    pub source: String,
}

/// The version kept for a rollback.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PreviousVersion {
    pub version: String,
    pub digest: String,
}

/// Why a change of the plugins was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// No plugin of this name (or no previous version of it, for a rollback of nothing).
    NotFound(String),
    /// The component is not one this gateway can serve (not a component, wrong world,
    /// unsupported WIT version, describe failed), or the state built around it was refused
    /// (its upstreams no longer match the config, say): the reason, for the operator.
    Invalid(String),
    /// The plugin is used by these providers or tools (`providers.groq`): it cannot be
    /// removed, nor replaced by one of the other kind.
    InUse {
        message: String,
        used_by: Vec<String>,
    },
    /// A rollback with no previous version.
    NoPrevious(String),
    /// The plugin name is not one a file can carry (`a-z`, `0-9`, `-`, `_`, `.` inside).
    BadName(String),
    /// Writing the plugin's file failed: nothing was changed.
    Storage(String),
}

impl PluginError {
    fn api(&self) -> ApiError {
        match self {
            PluginError::NotFound(name) => ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("no plugin named `{name}` is loaded"),
            )
            .code("plugin_not_found"),
            PluginError::Invalid(reason) => {
                ApiError::invalid_request(reason.clone()).code("invalid_plugin")
            }
            PluginError::InUse { message, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                message.clone(),
            )
            .code("plugin_in_use"),
            PluginError::NoPrevious(name) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                format!("the plugin `{name}` has no previous version to roll back to"),
            )
            .code("no_previous_version"),
            PluginError::BadName(name) => ApiError::invalid_request(format!(
                "`{name}` is not a plugin name: use letters, digits, `-` and `_` (it names the \
                 file `<name>.wasm`)"
            ))
            .code("invalid_plugin_name"),
            PluginError::Storage(reason) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                format!("could not store the plugin; nothing changed: {reason}"),
            )
            .code("plugin_storage_failed"),
        }
    }
}

/// What a successful `PUT` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// A plugin of a new name (201).
    Added,
    /// A new version of a loaded one (200).
    Replaced,
    /// The same bytes as the loaded version: nothing changed (200).
    Unchanged,
}

/// A boxed future, so the trait stays object-safe.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The plugin registry of a running gateway, as the binary keeps it. Each change is answered
/// only once the new state serves (or was refused, and the old one still serves).
pub trait PluginControl: Send + Sync {
    /// Every loaded plugin, by name.
    fn list(&self) -> Vec<PluginEntry>;
    /// The plugin `name`.
    fn get(&self, name: &str) -> Option<PluginEntry>;
    /// The largest component `PUT` takes, in bytes (`[plugins] max_upload_mib`).
    fn max_upload_bytes(&self) -> usize;
    /// Loads `bytes` as the plugin `name`, rebuilds the served state with it, stores its file
    /// and swaps the state in.
    fn put(
        &self,
        name: String,
        bytes: Vec<u8>,
    ) -> Pending<'_, Result<(Put, PluginEntry), PluginError>>;
    /// Unloads the unused plugin `name` (its file is kept as the previous version).
    fn delete(&self, name: String) -> Pending<'_, Result<(), PluginError>>;
    /// Brings back the previous version of `name`.
    fn rollback(&self, name: String) -> Pending<'_, Result<PluginEntry, PluginError>>;
}

fn target(path: &str) -> Option<Resource<'_>> {
    Resource::of(path, PREFIX, "rollback")
}

/// Whether this module answers `path`.
pub(crate) fn owns(path: &str) -> bool {
    super::under(path, PREFIX)
}

/// Whether `name` can name a plugin file: no path separators, no hidden or temporary names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.')
        && !name.ends_with(".wasm")
}

/// Answers a request under `/admin/plugins`; `control` is the binary's registry (`None` for a
/// service built without one, which has no plugins to swap).
pub(crate) async fn answer<B>(
    control: Option<&dyn PluginControl>,
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
    let method = match dispatched(
        target.route(&COLLECTION, &PLUGIN, &ROLLBACK),
        request.method(),
    ) {
        Ok(method) => method,
        Err(refused) => return Ok(*refused),
    };
    let Some(control) = control else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "this gateway has no plugin registry",
        )
        .code("unknown_url"));
    };
    if let Resource::Item(name) | Resource::Action(name) = &target
        && !valid_name(name)
    {
        return Err(PluginError::BadName((*name).to_owned()).api());
    }
    let (status, body) = match (method, target) {
        (Method::GET, Resource::Collection) => {
            let data = control.list();
            (StatusCode::OK, json!({"object": "list", "data": data}))
        }
        (Method::GET, Resource::Item(name)) => match control.get(name) {
            Some(entry) => (StatusCode::OK, entry_json(&entry)),
            None => return Err(PluginError::NotFound(name.to_owned()).api()),
        },
        (Method::PUT, Resource::Item(name)) => {
            let name = name.to_owned();
            let limit = control.max_upload_bytes();
            let too_large = || {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request_error",
                    format!(
                        "the plugin is larger than the limit of {limit} bytes \
                         ([plugins] max_upload_mib)"
                    ),
                )
                .code("plugin_too_large")
            };
            let bytes = read_limited(limit, body_read_timeout, request, too_large).await?;
            let (put, entry) = control
                .put(name, bytes.to_vec())
                .await
                .map_err(|e| e.api())?;
            let status = match put {
                Put::Added => StatusCode::CREATED,
                Put::Replaced | Put::Unchanged => StatusCode::OK,
            };
            (status, entry_json(&entry))
        }
        (Method::DELETE, Resource::Item(name)) => {
            control.delete(name.to_owned()).await.map_err(|e| e.api())?;
            (
                StatusCode::OK,
                json!({"object": "aigw.plugin.deleted", "name": name, "deleted": true}),
            )
        }
        (Method::POST, Resource::Action(name)) => {
            let entry = control
                .rollback(name.to_owned())
                .await
                .map_err(|e| e.api())?;
            (StatusCode::OK, entry_json(&entry))
        }
        // Every other method was answered with 405 above.
        (method, _) => return Err(no_route(&method, &path)),
    };
    Ok(json_response(status, Bytes::from(body.to_string())))
}

fn entry_json(entry: &PluginEntry) -> serde_json::Value {
    serde_json::to_value(entry).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_collection_a_plugin_and_its_rollback() {
        assert!(matches!(
            target("/admin/plugins"),
            Some(Resource::Collection)
        ));
        assert!(matches!(
            target("/admin/plugins/groq"),
            Some(Resource::Item("groq"))
        ));
        assert!(matches!(
            target("/admin/plugins/groq/rollback"),
            Some(Resource::Action("groq"))
        ));
        assert!(target("/admin/plugins/groq/other").is_none());
        assert!(target("/admin/plugins/").is_none());
        assert!(!owns("/admin/pluginsx"));
    }

    #[test]
    fn names_cannot_leave_the_directory_or_hide() {
        assert!(valid_name("openai-compatible"));
        assert!(valid_name("tool_echo"));
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "x.wasm", "spa ce"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn errors_have_their_codes_and_statuses() {
        let in_use = PluginError::InUse {
            message: "used".into(),
            used_by: vec!["providers.groq".into()],
        }
        .api();
        assert_eq!(in_use.status, StatusCode::CONFLICT);
        assert_eq!(in_use.code, Some("plugin_in_use"));
        let invalid = PluginError::Invalid("no".into()).api();
        assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
        assert_eq!(invalid.code, Some("invalid_plugin"));
        let missing = PluginError::NotFound("x".into()).api();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.code, Some("plugin_not_found"));
    }
}
