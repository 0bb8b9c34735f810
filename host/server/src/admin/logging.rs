//! `/admin/logging`: the log's level and filter, read and changed while the gateway serves,
//! over the binary's [`LogControl`] (its subscriber's reloadable filter). `GET` answers
//! `{"level": "info", "filter": "info"}`; `PUT` takes `{"level": "debug"}` or
//! `{"filter": "aigw=debug,hyper=warn"}` (an `EnvFilter` directive list) and answers the new
//! setting. The change lasts until the process ends (or the next change); `AIGW_LOG` is what a
//! restart starts from.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::Body;
use crate::error::ApiError;
use crate::routes::Route;
use crate::service::{dispatched, json, read_limited};

/// The path this module answers.
pub(crate) const PATH: &str = "/admin/logging";
pub(crate) const ROUTE: Route = Route::new(PATH, "GET, PUT");

/// The most a `PUT`'s body may hold: a filter is a short list of directives.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The log setting in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSetting {
    /// The most verbose level any target logs at (`off`, `error`, … `trace`).
    pub level: String,
    /// The directives in force, as set (`AIGW_LOG`, or the last change).
    pub filter: String,
}

/// A change of the log setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogChange {
    /// One level for every target (`debug`).
    Level(String),
    /// An `EnvFilter` directive list (`aigw=debug,hyper=warn`).
    Filter(String),
}

/// The binary's log subscriber, as the admin API changes it.
pub trait LogControl: Send + Sync {
    /// The setting in force.
    fn current(&self) -> LogSetting;
    /// Applies `change` (the new setting), or says why it is not a valid one.
    fn set(&self, change: LogChange) -> Result<LogSetting, String>;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Put {
    level: Option<String>,
    filter: Option<String>,
}

/// The levels `{"level": …}` takes.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Answers `GET` and `PUT /admin/logging`.
pub(crate) async fn answer<B>(
    control: Option<&dyn LogControl>,
    body_read_timeout: Duration,
    request: Request<B>,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = match dispatched(&ROUTE, request.method()) {
        Ok(method) => method,
        Err(refused) => return Ok(*refused),
    };
    let Some(control) = control else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "this gateway's log cannot be changed at run time",
        )
        .code("unknown_url"));
    };
    if method == Method::GET {
        return Ok(setting(&control.current()));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("a log setting is at most {MAX_BODY_BYTES} bytes"),
        )
        .code("request_too_large")
    };
    let body = read_limited(MAX_BODY_BYTES, body_read_timeout, request, too_large).await?;
    let put: Put = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!(
                "the body must be {{\"level\": \"debug\"}} or {{\"filter\": \"aigw=debug\"}}: {e}"
            ),
        )
    })?;
    let change = match (put.level, put.filter) {
        (Some(level), None) => {
            let level = level.trim().to_ascii_lowercase();
            if !LEVELS.contains(&level.as_str()) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    format!("`level` must be one of {}", LEVELS.join(", ")),
                )
                .param("level"));
            }
            LogChange::Level(level)
        }
        (None, Some(filter)) => LogChange::Filter(filter),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "give exactly one of `level` and `filter`",
            ));
        }
    };
    let is_filter = matches!(change, LogChange::Filter(_));
    match control.set(change) {
        Ok(now) => {
            tracing::info!(level = %now.level, filter = %now.filter, "log setting changed");
            Ok(setting(&now))
        }
        Err(why) => {
            let error = ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("not a valid log filter: {why}"),
            );
            Err(error.param(if is_filter { "filter" } else { "level" }))
        }
    }
}

fn setting(setting: &LogSetting) -> Response<Body> {
    let body = serde_json::json!({ "level": setting.level, "filter": setting.filter });
    json(StatusCode::OK, Bytes::from(body.to_string()))
}
