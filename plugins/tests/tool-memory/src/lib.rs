//! A test-only tool plugin with one tool per operation of the `memory` import, written with the
//! SDK's [`aigw_plugin_sdk::memory`] helpers, each tool taking its arguments as JSON, so host
//! tests can drive every operation (and the helpers) from outside:
//!
//! - `put` `{"path", "key", "value", "ttl_seconds"?, "if_version"?}` → `{"version"}`
//! - `get` `{"path", "key", "times"?}` → `{"entry"}` (null when absent); `times` repeats the get
//!   (for the per-call operation limit) and answers the last one
//! - `delete` `{"path", "key"}` → `{"deleted"}`
//! - `search` `{"path_prefix"?, "query"?, "filter"?, "limit"?}` → `{"hits": [{"entry", "score"}]}`
//! - `append-items` `{"conversation", "items": [...]}` → `{"ids"}`
//! - `list-items` `{"conversation", "limit"?}` → `{"items": [{"id", "item", "agent"}]}`
//!
//! A memory error is not the tool's failure but its answer, `{"error": {"kind", ...}}`, so a
//! test sees exactly which variant the host returned. Arguments that are not what a tool takes
//! are the tool's `invalid-request` failure. An entry is answered as
//! `{"path", "key", "value", "version", "created_at_ms", "updated_at_ms", "expires_at_ms",
//! "agent"}` with the value as JSON.

use aigw_plugin_sdk::memory::{self, Entry, MemoryError, Put, Search};
use aigw_plugin_sdk::{Failure, Tool, ToolDescriptor, ToolSpec, ToolTarget};
use serde_json::{Value, json};

struct ToolMemory;

aigw_plugin_sdk::export_tool!(ToolMemory);

fn spec(name: &str, description: &str, properties: Value, required: &[&str]) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        title: name.to_owned(),
        description: description.to_owned(),
        output: None,
        cache_ttl_seconds: 0,
        parameters: json!({"type": "object", "properties": properties, "required": required}),
    }
}

impl Tool for ToolMemory {
    fn describe() -> ToolDescriptor {
        ToolDescriptor {
            name: "tool-memory".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tools: tools(),
            upstreams: Vec::new(),
        }
    }

    fn invoke(name: &str, args: Value, _target: &ToolTarget) -> Result<Value, Failure> {
        invoke(name, &args)
    }
}

fn tools() -> Vec<ToolSpec> {
    let path = json!({"type": "array", "items": {"type": "string"}});
    vec![
        spec(
            "put",
            "Stores a JSON object under a path and key.",
            json!({"path": path, "key": {"type": "string"}, "value": {"type": "object"},
                       "ttl_seconds": {"type": "integer"}, "if_version": {"type": "integer"}}),
            &["path", "key", "value"],
        ),
        spec(
            "get",
            "Reads the entry under a path and key.",
            json!({"path": path, "key": {"type": "string"}, "times": {"type": "integer"}}),
            &["path", "key"],
        ),
        spec(
            "delete",
            "Removes the entry under a path and key.",
            json!({"path": path, "key": {"type": "string"}}),
            &["path", "key"],
        ),
        spec(
            "search",
            "Finds entries under a path prefix, by full-text query and field filter.",
            json!({"path_prefix": path, "query": {"type": "string"},
                       "filter": {"type": "object"}, "limit": {"type": "integer"}}),
            &[],
        ),
        spec(
            "append-items",
            "Appends Responses items to a conversation.",
            json!({"conversation": {"type": "string"}, "items": {"type": "array"}}),
            &["conversation", "items"],
        ),
        spec(
            "list-items",
            "The last items of a conversation, oldest first.",
            json!({"conversation": {"type": "string"}, "limit": {"type": "integer"}}),
            &["conversation"],
        ),
    ]
}

fn invoke(name: &str, args: &Value) -> Result<Value, Failure> {
    let answer = match name {
        "put" => put(args)?,
        "get" => get(args)?,
        "delete" => memory::delete(&labels(args, "path")?, text(args, "key")?)
            .map(|d| json!({"deleted": d})),
        "search" => search(args)?,
        "append-items" => append_items(args)?,
        "list-items" => {
            let limit = number(args, "limit")?.unwrap_or(100);
            memory::list_items(text(args, "conversation")?, clamp(limit)).map(|items| {
                let items: Vec<Value> = items
                    .into_iter()
                    .map(|i| json!({"id": i.id, "item": i.item, "agent": i.agent}))
                    .collect();
                json!({ "items": items })
            })
        }
        other => return Err(Failure::InvalidRequest(format!("no tool named {other:?}"))),
    };
    Ok(answer.unwrap_or_else(error))
}

fn put(args: &Value) -> Result<Result<Value, MemoryError>, Failure> {
    let value = args
        .get("value")
        .ok_or_else(|| Failure::InvalidRequest("argument \"value\" is required".into()))?;
    let options = Put {
        ttl_seconds: number(args, "ttl_seconds")?.map(clamp),
        if_version: number(args, "if_version")?,
    };
    let version = memory::put_with(&labels(args, "path")?, text(args, "key")?, value, options);
    Ok(version.map(|v| json!({ "version": v })))
}

fn get(args: &Value) -> Result<Result<Value, MemoryError>, Failure> {
    let path = labels(args, "path")?;
    let key = text(args, "key")?;
    let times = number(args, "times")?.unwrap_or(1);
    let mut last = Ok(None);
    for _ in 0..times {
        last = memory::get(&path, key);
        if last.is_err() {
            break;
        }
    }
    Ok(last.map(|e| json!({ "entry": e.map(entry) })))
}

fn search(args: &Value) -> Result<Result<Value, MemoryError>, Failure> {
    let prefix = match args.get("path_prefix") {
        None => Vec::new(),
        Some(_) => labels(args, "path_prefix")?,
    };
    let query = args.get("query").and_then(Value::as_str);
    let limit = number(args, "limit")?.unwrap_or(10);
    let hits = memory::search(
        &prefix,
        Search {
            query,
            filter: args.get("filter"),
            limit: clamp(limit),
        },
    );
    Ok(hits.map(|hits| {
        let hits: Vec<Value> = hits
            .into_iter()
            .map(|h| json!({"entry": entry(h.entry), "score": h.score}))
            .collect();
        json!({ "hits": hits })
    }))
}

fn append_items(args: &Value) -> Result<Result<Value, MemoryError>, Failure> {
    let items = args["items"]
        .as_array()
        .ok_or_else(|| Failure::InvalidRequest("argument \"items\" must be an array".into()))?;
    let ids = memory::append_items(text(args, "conversation")?, items);
    Ok(ids.map(|ids| json!({ "ids": ids })))
}

fn entry(e: Entry) -> Value {
    json!({
        "path": e.path,
        "key": e.key,
        "value": e.value,
        "version": e.version,
        "created_at_ms": e.created_at_ms,
        "updated_at_ms": e.updated_at_ms,
        "expires_at_ms": e.expires_at_ms,
        "agent": e.agent,
    })
}

fn error(e: MemoryError) -> Value {
    let error = match e {
        MemoryError::NotFound => json!({"kind": "not-found"}),
        MemoryError::Conflict { current } => json!({"kind": "conflict", "current": current}),
        MemoryError::TooLarge(m) => json!({"kind": "too-large", "message": m}),
        MemoryError::Quota(m) => json!({"kind": "quota", "message": m}),
        MemoryError::Invalid(m) => json!({"kind": "invalid", "message": m}),
        MemoryError::Unavailable(m) => json!({"kind": "unavailable", "message": m}),
    };
    json!({ "error": error })
}

fn text<'a>(args: &'a Value, field: &str) -> Result<&'a str, Failure> {
    args[field]
        .as_str()
        .ok_or_else(|| Failure::InvalidRequest(format!("argument {field:?} must be a string")))
}

fn labels(args: &Value, field: &str) -> Result<Vec<String>, Failure> {
    let bad = || Failure::InvalidRequest(format!("argument {field:?} must be an array of strings"));
    args[field]
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|l| l.as_str().map(str::to_owned).ok_or_else(bad))
        .collect()
}

fn number(args: &Value, field: &str) -> Result<Option<u64>, Failure> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            Failure::InvalidRequest(format!("argument {field:?} must be a non-negative integer"))
        }),
    }
}

/// A count the WIT takes as `u32`; a larger one asks for "as many as allowed".
fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
