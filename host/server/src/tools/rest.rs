//! The tool service over REST: `GET /v1/tools` lists the tools the key may use as OpenAI
//! function definitions (`{"object":"list","data":[{"type":"function","function":{…},
//! "title"?, "output_schema"?}]}`), and `POST /v1/tools/{name}/invoke` with
//! `{"arguments": {…}}` calls one through [`Toolbox::call`]: `{"tool", "result", "cached",
//! "upstream"}` with `x-aigw-cache: hit|miss|off`, or the call's error in the OpenAI shape.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{ToolCaller, Via};
use crate::auth::Principal;
use crate::body::Body;
use crate::content_type;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::memory::{Caller, json_object};
use crate::routes::Route;
use crate::service::{dispatched, json as json_response, no_route, read_body};

const LIST_PATH: &str = "/v1/tools";
const PREFIX: &str = "/v1/tools/";
const INVOKE_SUFFIX: &str = "/invoke";
const LIST: Route = Route::new(LIST_PATH, "GET, HEAD");
const INVOKE: Route = Route::new("/v1/tools/{name}/invoke", "POST");
/// Every route this module answers.
pub(crate) const ROUTES: &[Route] = &[LIST, INVOKE];
/// The header an invoke's answer says whether it came from the cache in.
pub const CACHE_HEADER: &str = "x-aigw-cache";
/// A client's own request id, echoed in the tool call's log line when it is short and plain.
const REQUEST_ID_HEADER: &str = "x-request-id";

/// Whether `path` is one of this module's.
pub(crate) fn owns(path: &str) -> bool {
    path == LIST_PATH || path.starts_with(PREFIX)
}

/// Answers a `/v1/tools…` request for `principal`.
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
    let path = request.uri().path().to_owned();
    if path == LIST_PATH {
        return match dispatched(&LIST, request.method()) {
            Ok(_) => list(&gateway, principal),
            Err(refused) => *refused,
        };
    }
    let Some(name) = path
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(INVOKE_SUFFIX))
        .filter(|name| !name.is_empty() && !name.contains('/'))
    else {
        return no_route(request.method(), &path).response();
    };
    if let Err(refused) = dispatched(&INVOKE, request.method()) {
        return *refused;
    }
    debug_assert_eq!(request.method(), Method::POST);
    match invoke(&gateway, principal, body_read_timeout, name, request).await {
        Ok(response) => response,
        Err(error) => error.response(),
    }
}

/// `GET /v1/tools`.
fn list(gateway: &Gateway, principal: &Principal) -> Response<Body> {
    let data: Vec<Value> = gateway
        .tools
        .visible(principal)
        .iter()
        .map(|tool| tool.listed())
        .collect();
    let body = json!({"object": "list", "data": data});
    json_response(StatusCode::OK, Bytes::from(body.to_string()))
}

/// `POST /v1/tools/{name}/invoke`.
async fn invoke<B>(
    gateway: &Gateway,
    principal: &Principal,
    body_read_timeout: Duration,
    name: &str,
    request: Request<B>,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    content_type::require_json(request.headers())?;
    let memory = Caller::from_headers(principal, request.headers())?;
    let request_id = request_id(request.headers());
    let body = read_body(gateway, body_read_timeout, request).await?;
    let mut body = json_object(&body)?;
    let arguments = match body.remove("arguments") {
        None => Value::Object(Default::default()),
        Some(arguments @ Value::Object(_)) => arguments,
        // Some clients send OpenAI's `function.arguments` as it comes: a JSON string.
        Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(arguments @ Value::Object(_)) => arguments,
            _ => {
                return Err(ApiError::invalid_request(
                    "`arguments` must be a JSON object (or a string holding one)",
                )
                .param("arguments")
                .code("invalid_tool_arguments"));
            }
        },
        Some(_) => {
            return Err(
                ApiError::invalid_request("`arguments` must be a JSON object")
                    .param("arguments")
                    .code("invalid_tool_arguments"),
            );
        }
    };
    if let Some(field) = body.keys().next() {
        return Err(ApiError::invalid_request(format!(
            "unknown field `{field}`: the body is {{\"arguments\": {{…}}}}"
        ))
        .param(field.clone())
        .code("unknown_parameter"));
    }
    let caller = ToolCaller {
        principal,
        namespace: Some(memory.namespace.as_str()),
        via: Via::Rest,
        request_id: &request_id,
    };
    let answer = gateway
        .tools
        .call(gateway, &caller, name, &arguments)
        .await
        .map_err(|e| e.api())?;
    let body = json!({
        "tool": name,
        "result": answer.value,
        "cached": answer.cache == super::CacheStatus::Hit,
        "upstream": answer.upstream,
    });
    let mut response = json_response(StatusCode::OK, Bytes::from(body.to_string()));
    response.headers_mut().insert(
        CACHE_HEADER,
        HeaderValue::from_static(answer.cache.as_str()),
    );
    Ok(response)
}

/// The client's `x-request-id` when it is 1-64 characters of `A-Z a-z 0-9 - _ .`, else one
/// made here (`tool-` and a process-wide counter).
fn request_id(headers: &HeaderMap) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    if let Some(id) = headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok())
        && (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return id.to_owned();
    }
    format!("tool-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
