//! The memory's HTTP surface: the OpenAI Conversations API and a LangGraph-style key-value
//! store, over the process's [`Store`]; and the same memory for tool plugins
//! ([`plugins::PluginMemory`], the runtime's `memory` import). What every memory request shares lives here: who is
//! asking ([`Caller`]: the namespace it acts in, the agent it speaks for), reaching the store,
//! and how a store failure is answered (a locked file or a full disk is a 503 the client may
//! retry, never a 500, and never a lost acknowledged write).

pub(crate) mod conversations;
pub(crate) mod entries;
pub(crate) mod items;
pub mod plugins;

use aigw_memory::{Namespace, Store, StoreError};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::gateway::Gateway;

/// The header naming the namespace a request acts in (absent: [`Namespace::DEFAULT`]).
pub(crate) const NAMESPACE_HEADER: &str = "x-aigw-namespace";
/// The header naming the agent a request speaks for, recorded on what it writes.
pub(crate) const AGENT_HEADER: &str = "x-aigw-agent";
/// The agent prefix of plugins' writes (`plugin:<name>`), which no client may claim.
const PLUGIN_AGENT_PREFIX: &str = "plugin:";
/// The longest agent name, in bytes.
const MAX_AGENT_BYTES: usize = 128;

/// Who a memory request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub namespace: Namespace,
    pub agent: Option<String>,
}

impl Caller {
    /// The caller named by the request's headers, for `principal`. A bad name is a 400 naming
    /// the header. With a key, the namespace is the one it names if the key's grant holds it
    /// (else 403 `namespace_not_allowed`), or the key's default; with authentication off, the
    /// one it names or [`Namespace::DEFAULT`].
    pub(crate) fn from_headers(
        principal: &Principal,
        headers: &HeaderMap,
    ) -> Result<Caller, ApiError> {
        let named = match headers.get(NAMESPACE_HEADER) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| {
                        "a namespace may hold only ASCII letters, digits and `-_.:`".into()
                    })
                    .and_then(|name| Namespace::parse(name).map_err(|e| e.to_string()))
                    .map_err(|message| {
                        ApiError::invalid_request(format!("{NAMESPACE_HEADER}: {message}"))
                            .param(NAMESPACE_HEADER)
                            .code("invalid_namespace")
                    })?,
            ),
        };
        let namespace = match (principal.key(), named) {
            (None, named) => named.unwrap_or_else(Namespace::default_namespace),
            (Some(key), named) => {
                let granted = key
                    .namespace(named.as_ref().map(Namespace::as_str))
                    .map_err(|refused| {
                        ApiError::new(
                            StatusCode::FORBIDDEN,
                            "invalid_request_error",
                            format!("aigw key limit: {refused}"),
                        )
                        .param(NAMESPACE_HEADER)
                        .code("namespace_not_allowed")
                    })?;
                Namespace::parse(&granted).map_err(|e| {
                    // A grant's exact name that is not a valid namespace: the operator's to fix.
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        "invalid_request_error",
                        format!(
                            "aigw key limit: this key's namespace `{granted}` is not usable: {e}"
                        ),
                    )
                    .param(NAMESPACE_HEADER)
                    .code("namespace_not_allowed")
                })?
            }
        };
        let agent = match headers.get(AGENT_HEADER) {
            None => None,
            // What plugins write is recorded as `plugin:<name>`, and their quotas count it: a
            // client naming itself so would spend a plugin's quota (and pass for the plugin).
            Some(value) if value.as_bytes().starts_with(PLUGIN_AGENT_PREFIX.as_bytes()) => {
                return Err(ApiError::invalid_request(format!(
                    "{AGENT_HEADER}: names starting with `{PLUGIN_AGENT_PREFIX}` are reserved \
                     for what plugins write"
                ))
                .param(AGENT_HEADER)
                .code("invalid_agent"));
            }
            Some(value) => Some(agent_name(value.as_bytes()).ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "{AGENT_HEADER}: an agent name must be 1 to {MAX_AGENT_BYTES} bytes of \
                     visible ASCII or spaces"
                ))
                .param(AGENT_HEADER)
                .code("invalid_agent")
            })?),
        };
        Ok(Caller { namespace, agent })
    }
}

fn agent_name(raw: &[u8]) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_AGENT_BYTES
        && raw.iter().all(|b| (0x20..0x7f).contains(b));
    let name = std::str::from_utf8(raw).ok()?.trim();
    (ok && !name.is_empty()).then(|| name.to_owned())
}

/// A memory request's body: a JSON object (a 400 `invalid_json` otherwise).
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(
            ApiError::invalid_request("the request body must be a JSON object")
                .code("invalid_json"),
        ),
        Err(e) => Err(ApiError::invalid_request(format!(
            "the request body is not valid JSON: {e}"
        ))
        .code("invalid_json")),
    }
}

/// The store requests are answered from; a gateway built without one (an in-process test)
/// answers 503.
pub(crate) fn store(gateway: &Gateway) -> Result<&Store, ApiError> {
    gateway.memory.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "memory is not available: this gateway has no store",
        )
        .code("memory_unavailable")
    })
}

/// A store failure as the client hears it. A busy or full database is the moment, not the
/// request: 503 with `Retry-After`. Anything else is the gateway's own fault (500), its detail
/// logged, not shown.
pub(crate) fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Unavailable(detail) => {
            tracing::warn!(error = detail.as_str(), "memory store unavailable");
            let mut answer = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the memory store is busy or its disk is full; nothing was written, retry later",
            )
            .code("memory_unavailable");
            answer.retry_after = Some(1);
            answer
        }
        StoreError::Closed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the memory store is shutting down",
        )
        .code("memory_unavailable"),
        other => {
            tracing::error!(error = %other, "memory store failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the memory store failed; the error is in the gateway's log",
            )
            .code("memory_error")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                *name,
                HeaderValue::from_bytes(value).expect("a header value"),
            );
        }
        map
    }

    #[test]
    fn caller_defaults_and_checks() {
        let caller = Caller::from_headers(&Principal::Open, &HeaderMap::new()).expect("default");
        assert_eq!(caller.namespace.as_str(), Namespace::DEFAULT);
        assert_eq!(caller.agent, None);

        let caller = Caller::from_headers(
            &Principal::Open,
            &headers(&[(NAMESPACE_HEADER, b"team-a"), (AGENT_HEADER, b"planner 1")]),
        )
        .expect("named");
        assert_eq!(caller.namespace.as_str(), "team-a");
        assert_eq!(caller.agent.as_deref(), Some("planner 1"));

        let bad = Caller::from_headers(&Principal::Open, &headers(&[(NAMESPACE_HEADER, b"a/b")]))
            .expect_err("bad");
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.param.as_deref(), Some(NAMESPACE_HEADER));
        let bad = Caller::from_headers(&Principal::Open, &headers(&[(NAMESPACE_HEADER, b"\xff")]))
            .expect_err("bad");
        assert_eq!(bad.param.as_deref(), Some(NAMESPACE_HEADER));
        let bad = Caller::from_headers(&Principal::Open, &headers(&[(AGENT_HEADER, b"  ")]))
            .expect_err("blank");
        assert_eq!(bad.param.as_deref(), Some(AGENT_HEADER));
        let bad = Caller::from_headers(
            &Principal::Open,
            &headers(&[(AGENT_HEADER, b"plugin:tool-memory")]),
        )
        .expect_err("a plugin's name");
        assert_eq!(bad.param.as_deref(), Some(AGENT_HEADER));
        let long = vec![b'a'; MAX_AGENT_BYTES + 1];
        let bad = Caller::from_headers(&Principal::Open, &headers(&[(AGENT_HEADER, &long)]))
            .expect_err("long");
        assert_eq!(bad.param.as_deref(), Some(AGENT_HEADER));
    }

    #[test]
    fn busy_store_is_503_with_retry_after() {
        let answer = store_error(StoreError::Unavailable("database is locked".into()));
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.retry_after, Some(1));
        let answer = store_error(StoreError::Sql("no such table".into()));
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!answer.message.contains("no such table"));
    }
}
