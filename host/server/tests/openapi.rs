//! `docs/openapi.json` against the server it describes, in-process: its operations are exactly
//! the route table the server dispatches from ([`aigw_server::routes`]); every operation is
//! answered (never `404 unknown_url` nor `405`) and every other method on its path is `405`
//! with the documented methods in `Allow`; every `$ref` resolves; every request example is
//! accepted as written (never a `400`); and on real objects, each `2xx` answer has the fields,
//! constants and types its documented schema requires. A field renamed in the code, or a route
//! added, removed or given another method, breaks this test until the description follows.

// `Service::handle`'s future, spans' `Instrumented` wrappers included, lays out deeper than
// the default limit of 128 (the library sets the same).
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aigw_memory::{Store, StoreOptions};
use aigw_router::{HealthRegistry, HealthSettings};
use aigw_server::{
    Body, Gateway, LogChange, LogControl, LogSetting, MAX_REMEMBERED_TARGETS, Pending,
    PluginControl, PluginEntry, PluginError, Put, ServerOptions, Service, routes,
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value};

/// The methods an OpenAPI path item may hold operations under.
const OPERATION_KEYS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The methods tried on every documented path (each answers its operation or 405).
const TRIED: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
];

fn description() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let text = std::fs::read_to_string(path).expect("docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

/// One documented operation.
struct Operation<'d> {
    method: Method,
    path: &'d str,
    spec: &'d Map<String, Value>,
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut found = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item");
        for key in OPERATION_KEYS {
            if let Some(spec) = item.get(key) {
                found.push(Operation {
                    method: Method::from_bytes(key.to_uppercase().as_bytes()).unwrap(),
                    path,
                    spec: spec.as_object().expect("an operation"),
                });
            }
        }
    }
    found
}

/// `$ref` (`#/components/…`) resolved in `doc`; other values as they are.
fn resolved<'d>(doc: &'d Value, value: &'d Value) -> &'d Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            resolved(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("{reference} does not resolve")),
            )
        }
        None => value,
    }
}

fn refs<'d>(value: &'d Value, found: &mut Vec<&'d str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                found.push(reference);
            }
            map.values().for_each(|v| refs(v, found));
        }
        Value::Array(list) => list.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

/// The parameters of an operation: its path item's, then its own.
fn parameters<'d>(doc: &'d Value, op: &Operation<'d>) -> Vec<&'d Value> {
    let item = &doc["paths"][op.path];
    let shared = item.get("parameters").and_then(Value::as_array);
    let own = op.spec.get("parameters").and_then(Value::as_array);
    shared
        .into_iter()
        .chain(own)
        .flatten()
        .map(|p| resolved(doc, p))
        .collect()
}

/// The operation's request URI: path parameters from `ids` (a made-up value for a name not
/// in it), required query parameters from their documented example.
fn uri(doc: &Value, op: &Operation<'_>, ids: &BTreeMap<&str, String>) -> String {
    let mut path = op.path.to_owned();
    let mut query = Vec::new();
    for parameter in parameters(doc, op) {
        let name = parameter["name"].as_str().expect("a parameter name");
        match parameter["in"].as_str() {
            Some("path") => {
                let value = ids
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| format!("made_up_{name}"));
                path = path.replace(&format!("{{{name}}}"), &value);
            }
            Some("query") if parameter["required"] == Value::Bool(true) => {
                let example = parameter["example"]
                    .as_str()
                    .unwrap_or_else(|| panic!("required query parameter {name} has no example"));
                query.push(format!("{name}={example}"));
            }
            _ => {}
        }
    }
    assert!(
        !path.contains('{'),
        "{path}: a path parameter is undeclared"
    );
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn example<'d>(doc: &'d Value, op: &Operation<'d>) -> Option<&'d Value> {
    let body = resolved(doc, op.spec.get("requestBody")?);
    // A body that is not JSON (a plugin upload's component) is sent empty: the fixture's
    // plugin registry takes any bytes.
    body["content"].get("application/json")?;
    let example = body["content"]["application/json"].get("example");
    assert!(
        example.is_some(),
        "{} {}: a request body without an example",
        op.method,
        op.path
    );
    example
}

/// The request example of the operation `id`.
fn example_of<'d>(doc: &'d Value, id: &str) -> &'d Value {
    let op = operations(doc)
        .into_iter()
        .find(|op| op.spec["operationId"] == id)
        .unwrap_or_else(|| panic!("{id}"));
    example(doc, &op).unwrap_or_else(|| panic!("{id}: no example"))
}

/// Begins an MCP session with `initialize` and ends it with `DELETE /mcp`: the end's status.
async fn end_mcp_session(f: &Fixture, initialize: &Value) -> StatusCode {
    let begun: Response<Body> = f
        .service
        .handle(
            Request::post("/mcp")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(initialize.to_string())))
                .unwrap(),
        )
        .await;
    assert_eq!(begun.status(), StatusCode::OK);
    let session = begun.headers()["mcp-session-id"].clone();
    let ended: Response<Body> = f
        .service
        .handle(
            Request::delete("/mcp")
                .header("mcp-session-id", session)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    ended.status()
}

struct Fixture {
    service: Service,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("aigw.db")))
        .await
        .unwrap();
    let health = Arc::new(HealthRegistry::new(
        HealthSettings::default(),
        MAX_REMEMBERED_TARGETS,
    ));
    let store = Arc::new(store);
    let gateway = Gateway::new([], BTreeMap::new(), health, &ServerOptions::default())
        .unwrap()
        .with_usage(Arc::new(aigw_access::Ledger::new(Arc::clone(&store))))
        .with_memory(store);
    Fixture {
        service: Service::new(gateway)
            .with_plugins(Arc::new(Plugins::default()))
            .with_logging(Arc::new(Logging::default())),
        _dir: dir,
    }
}

/// A log setting that takes any level and any filter but an empty one: the server's side of
/// `/admin/logging` is checked here, the binary's reload in the end-to-end tests.
#[derive(Default)]
struct Logging {
    setting: std::sync::Mutex<Option<LogSetting>>,
}

impl LogControl for Logging {
    fn current(&self) -> LogSetting {
        self.setting.lock().unwrap().clone().unwrap_or(LogSetting {
            level: "info".to_owned(),
            filter: "info".to_owned(),
        })
    }

    fn set(&self, change: LogChange) -> Result<LogSetting, String> {
        let filter = match change {
            LogChange::Level(level) => level,
            LogChange::Filter(filter) if filter.is_empty() => return Err("empty".to_owned()),
            LogChange::Filter(filter) => filter,
        };
        let now = LogSetting {
            level: "debug".to_owned(),
            filter,
        };
        *self.setting.lock().unwrap() = Some(now.clone());
        Ok(now)
    }
}

/// A plugin registry that takes any bytes: the server's side of `/admin/plugins` is checked
/// here, loading plugins is the binary's (and `tests/tests/plugins_admin.rs`').
#[derive(Default)]
struct Plugins {
    loaded: std::sync::Mutex<BTreeMap<String, PluginEntry>>,
}

impl Plugins {
    fn entry(name: &str, bytes: &[u8]) -> PluginEntry {
        PluginEntry {
            name: name.to_owned(),
            kind: "provider".into(),
            world: "provider-plugin".into(),
            wit_version: "0.1.0".into(),
            version: "0.1.0".into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size_bytes: bytes.len(),
            loaded_at: 1_764_633_600,
            calls: 0,
            used_by: Vec::new(),
            previous: None,
            source: "upload".into(),
        }
    }
}

impl PluginControl for Plugins {
    fn list(&self) -> Vec<PluginEntry> {
        self.loaded.lock().unwrap().values().cloned().collect()
    }

    fn get(&self, name: &str) -> Option<PluginEntry> {
        self.loaded.lock().unwrap().get(name).cloned()
    }

    fn max_upload_bytes(&self) -> usize {
        1 << 20
    }

    fn put(
        &self,
        name: String,
        bytes: Vec<u8>,
    ) -> Pending<'_, Result<(Put, PluginEntry), PluginError>> {
        let entry = Plugins::entry(&name, &bytes);
        let added = self
            .loaded
            .lock()
            .unwrap()
            .insert(name, entry.clone())
            .is_none();
        Box::pin(async move { Ok((if added { Put::Added } else { Put::Replaced }, entry)) })
    }

    fn delete(&self, name: String) -> Pending<'_, Result<(), PluginError>> {
        let removed = self.loaded.lock().unwrap().remove(&name);
        Box::pin(async move { removed.map(drop).ok_or(PluginError::NotFound(name)) })
    }

    fn rollback(&self, name: String) -> Pending<'_, Result<PluginEntry, PluginError>> {
        let entry = self.get(&name);
        Box::pin(async move { entry.ok_or(PluginError::NotFound(name)) })
    }
}

struct Answer {
    status: StatusCode,
    allow: Option<String>,
    /// The body, parsed when it is JSON; any other (the dashboard's page) as a string.
    body: Value,
    content_type: Option<String>,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

async fn call(f: &Fixture, method: Method, uri: &str, body: Option<&Value>) -> Answer {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-aigw-agent", "openapi-check");
    let bytes = match body {
        Some(body) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let response: Response<Body> = f
        .service
        .handle(builder.body(Full::new(bytes)).unwrap())
        .await;
    let status = response.status();
    let allow = response
        .headers()
        .get(header::ALLOW)
        .map(|v| v.to_str().unwrap().to_owned());
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = content_type
        .as_deref()
        .is_none_or(|t| t.starts_with("application/json"));
    let body = if bytes.is_empty() {
        Value::Null
    } else if !json {
        Value::String(String::from_utf8(bytes.to_vec()).unwrap())
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{uri}: {e}: {}", String::from_utf8_lossy(&bytes));
        })
    };
    Answer {
        status,
        allow,
        body,
        content_type,
    }
}

/// Whether `value` has what `schema` requires: its `type`, `const`, `enum`, `required`
/// properties, and recursively its properties' and items' schemas, through `oneOf`, `anyOf`
/// and `allOf`. A failure names where, in `at`.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolved(doc, schema);
    if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
        for branch in branches {
            conforms(doc, branch, value, at)?;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let failures: Vec<String> = branches
                .iter()
                .filter_map(|b| conforms(doc, b, value, at).err())
                .collect();
            if failures.len() == branches.len() {
                return Err(format!("{at}: matches no branch of {key}: {failures:?}"));
            }
        }
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(format!("{at}: {value} is not the constant {constant}"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(k) => vec![k.as_str()],
            Value::Array(ks) => ks.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let is = |k: &str| match k {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        };
        if !kinds.iter().any(|k| is(k)) {
            return Err(format!("{at}: {value} is not of type {kind}"));
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        let Some(object) = value.as_object() else {
            return Err(format!("{at}: {value} is not an object"));
        };
        for field in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(field) {
                return Err(format!("{at}: the required field {field} is missing"));
            }
        }
    }
    if let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (name, property) in properties {
            if let Some(field) = object.get(name) {
                conforms(doc, property, field, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            conforms(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[test]
fn the_description_lists_exactly_the_routes_the_server_dispatches() {
    let doc = description();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .iter()
        .map(|op| (op.method.to_string(), op.path.to_owned()))
        .collect();
    let served: BTreeSet<(String, String)> = routes()
        .iter()
        .flat_map(|route| {
            route
                .methods()
                .filter(|m| *m != "HEAD")
                .map(|m| (m.to_owned(), route.path.to_owned()))
        })
        .collect();
    // Each path item says what its 405 answers, word for word.
    for route in routes() {
        let said = doc["paths"][route.path]["description"].as_str();
        let allow = format!("`Allow: {}`", route.allow);
        assert!(
            said.is_some_and(|d| d.contains(&allow)),
            "{}: the description does not say {allow}",
            route.path
        );
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in docs/openapi.json: {undocumented:?}; documented but not served: \
         {unserved:?}"
    );
}

#[test]
fn every_ref_resolves_and_every_operation_is_complete() {
    let doc = description();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 50, "{} refs", found.len());
    for reference in found {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference} is not local"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
    let mut ids = BTreeSet::new();
    for op in operations(&doc) {
        let name = format!("{} {}", op.method, op.path);
        let id = op.spec["operationId"].as_str().expect(&name);
        assert!(ids.insert(id.to_owned()), "{name}: operationId {id} twice");
        let responses = op.spec["responses"].as_object().expect(&name);
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{name}: no success answer"
        );
        for (status, response) in responses {
            let response = resolved(&doc, response);
            assert!(response["description"].is_string(), "{name} {status}");
            if !status.starts_with('2') {
                // Every error is the OpenAI envelope; MCP's past authentication are JSON-RPC's.
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                let mcp = op.path == "/mcp" && schema == "#/components/schemas/JsonRpcError";
                assert!(
                    mcp || schema == "#/components/schemas/ErrorResponse",
                    "{name} {status}"
                );
            }
        }
        // Every path template's names are declared parameters.
        let declared: BTreeSet<String> = parameters(&doc, &op)
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        let templated: BTreeSet<String> = op
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, templated, "{name}");
    }
}

#[tokio::test]
async fn every_operation_is_answered_and_other_methods_are_405() {
    let doc = description();
    let f = fixture().await;
    let ids = BTreeMap::new();
    let mut by_path: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for op in operations(&doc) {
        by_path
            .entry(op.path)
            .or_default()
            .insert(op.method.to_string());
        let uri = uri(&doc, &op, &ids);
        let name = format!("{} {uri}", op.method);
        let answer = call(&f, op.method.clone(), &uri, example(&doc, &op)).await;
        assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{name}");
        assert_ne!(answer.code(), Some("unknown_url"), "{name}");
        // The example as written is accepted: a success, or the made-up id (or, on a gateway
        // without providers, the example's model) is not found.
        if op.spec.contains_key("requestBody") {
            let missing = answer.status == StatusCode::NOT_FOUND
                && answer.code().is_some_and(|c| c.ends_with("_not_found"));
            assert!(
                answer.status.is_success() || missing,
                "{name}: the documented example was refused: {} {}",
                answer.status,
                answer.body
            );
        }
        if op.method == Method::GET {
            let head = call(&f, Method::HEAD, &uri, None).await;
            assert_ne!(head.status, StatusCode::METHOD_NOT_ALLOWED, "HEAD {uri}");
        }
    }
    for (path, documented) in by_path {
        let op_path = path
            .replace("{conversation_id}", "conv_x")
            .replace("{item_id}", "msg_x")
            .replace("{key_id}", "key_x")
            .replace("{team_id}", "team_x");
        for method in TRIED {
            if documented.contains(method.as_str()) {
                continue;
            }
            let answer = call(&f, method.clone(), &op_path, None).await;
            assert_eq!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {op_path}: {}",
                answer.body
            );
            let allow: BTreeSet<String> = answer
                .allow
                .as_deref()
                .unwrap_or_else(|| panic!("{method} {op_path}: 405 without Allow"))
                .split(", ")
                .filter(|m| *m != "HEAD")
                .map(str::to_owned)
                .collect();
            assert_eq!(allow, documented, "{method} {op_path}: Allow");
        }
    }
}

/// Real objects this time: a conversation made from the documented create example, its first
/// item, the entry of the documented put example. Writes run first and deletes last (an item
/// before its conversation), so every memory operation answers a success, checked against its
/// documented schema.
#[tokio::test]
async fn answers_have_the_documented_shapes() {
    let doc = description();
    let f = fixture().await;
    let create = operations(&doc)
        .into_iter()
        .find(|op| op.spec["operationId"] == "createConversation")
        .expect("createConversation");
    let created = call(&f, Method::POST, create.path, example(&doc, &create)).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let conversation = created.body["id"].as_str().unwrap().to_owned();
    let listed = call(
        &f,
        Method::GET,
        &format!("/v1/conversations/{conversation}/items"),
        None,
    )
    .await;
    let item = listed.body["data"][0]["id"]
        .as_str()
        .expect("the created conversation's item")
        .to_owned();
    let key = call(
        &f,
        Method::POST,
        "/admin/keys",
        Some(&serde_json::json!({})),
    )
    .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let key = key.body["id"].as_str().unwrap().to_owned();
    let team = call(
        &f,
        Method::POST,
        "/admin/teams",
        Some(&serde_json::json!({})),
    )
    .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", team.body);
    let team = team.body["id"].as_str().unwrap().to_owned();
    let ids = BTreeMap::from([
        ("conversation_id", conversation),
        ("item_id", item),
        ("key_id", key),
        ("team_id", team),
    ]);

    let mut ops = operations(&doc);
    let rank = |op: &Operation<'_>| match op.method.as_str() {
        "PUT" => 0,
        "POST" => 1,
        "GET" | "PATCH" => 2,
        _ => 3,
    };
    ops.sort_by_key(|op| (rank(op), std::cmp::Reverse(op.path.len())));
    for op in &ops {
        let uri = uri(&doc, op, &ids);
        let name = format!("{} {uri}", op.method);
        if op.path == "/mcp" && op.method == Method::DELETE {
            // It ends a session: the one the documented `initialize` begins.
            let status = end_mcp_session(&f, example_of(&doc, "mcpMessage")).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{name}");
            continue;
        }
        let answer = call(&f, op.method.clone(), &uri, example(&doc, op)).await;
        if op.path == "/v1/chat/completions" || op.path == "/v1/tools/{name}/invoke" {
            // No providers nor tools here: the example's model (tool) is not found, after its
            // body was read and its shape checked.
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{name}: {}",
                answer.body
            );
            let expected = if op.path.starts_with("/v1/tools/") {
                "tool_not_found"
            } else {
                "model_not_found"
            };
            assert_eq!(answer.code(), Some(expected), "{name}");
            let schema = &resolved(&doc, &op.spec["responses"]["404"])["content"]["application/json"]
                ["schema"];
            conforms(&doc, schema, &answer.body, "body").unwrap_or_else(|e| panic!("{name}: {e}"));
            continue;
        }
        assert!(
            answer.status.is_success(),
            "{name}: {} {}",
            answer.status,
            answer.body
        );
        let documented = resolved(&doc, &op.spec["responses"][answer.status.as_str()]);
        assert!(
            documented.is_object(),
            "{name}: {} is not a documented answer",
            answer.status
        );
        // A page or a file of it (documented without JSON): one of its documented media types
        // (the metrics have two, picked by `Accept`), as text.
        let media = documented["content"]
            .as_object()
            .filter(|content| !content.contains_key("application/json"));
        if let Some(media) = media {
            let served = answer.content_type.as_deref().unwrap_or_default();
            assert!(
                media.keys().any(|m| served.starts_with(m.as_str())),
                "{name}: {served} is none of {:?}",
                media.keys().collect::<Vec<_>>()
            );
            assert!(answer.body.is_string(), "{name}: no body");
            continue;
        }
        match documented["content"]["application/json"].get("schema") {
            Some(schema) => conforms(&doc, schema, &answer.body, "body")
                .unwrap_or_else(|e| panic!("{name}: {e}")),
            None => assert_eq!(answer.body, Value::Null, "{name}: an undocumented body"),
        }
    }
}
