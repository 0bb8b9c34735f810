//! The tool conformance suite: the same cases, through the real `aigw` binary over REST and MCP,
//! for every tool plugin in [`ROWS`], each in front of the mock of its tool API
//! (`aigw_tests::mock::tools`, what `mock-upstream --tool-api` serves).
//!
//! Rows come in families: plugins that implement the same tools in different languages (the Rust
//! `weather`, its Python twin `weather-python` and its JavaScript twin `weather-js`). One test per
//! family starts, for each row, one mock and one gateway (the shared cache off, so every call
//! reaches the plugin), runs every case of [`CASES`] and records what each case observed (status,
//! error code and message, `retry-after`, the result). A case returns `Err(reason)` instead of
//! panicking, so one run reports every failing `row/case` at once. Then the rows' observations
//! must be equal case by case: twins must give the same answers, not just pass the same checks.
//!
//! The cases: `GET /v1/tools` lists the tools with their schemas; a valid call answers with a
//! result that fits the tool's output schema; invalid arguments are refused by the host (400
//! naming the field) before the plugin runs; the upstream's rate limit is a 429 with the wait;
//! an unavailable upstream (a 5xx, an HTML page) is a 502; an unknown place is the caller's 400
//! naming it; over MCP `tools/call` gives the result REST gives. What a row cannot do is in its
//! `not_applicable`, with the reason. A rejected key is a case of the keyed families (stocks,
//! news, search) once they have twins: Open-Meteo takes no key, so no answer of it refuses one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use aigw_tests::gateway::{Gateway, GatewayBuilder, status_and_json};
use aigw_tests::mock::tools::{ToolApi, ToolMock};
use aigw_tests::paths;
use aigw_tests::setup::{plugins_section, toml_str};
use serde_json::{Value, json};

/// Tools that implement the same API in several languages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    /// `weather_current` and `weather_forecast` over Open-Meteo.
    Weather,
}

/// One tool plugin under test.
struct Row {
    /// The row's name in reports.
    name: &'static str,
    family: Family,
    /// The component, under `dist/`.
    file: &'static str,
    /// Cases that do not exist for this row, with the reason.
    not_applicable: &'static [(&'static str, &'static str)],
}

/// Every tool plugin the suite covers.
const ROWS: &[Row] = &[
    Row {
        name: "weather",
        family: Family::Weather,
        file: "plugins/weather.wasm",
        not_applicable: &[],
    },
    Row {
        name: "weather-python",
        family: Family::Weather,
        file: "examples/weather-python.wasm",
        not_applicable: &[],
    },
    Row {
        name: "weather-js",
        family: Family::Weather,
        file: "examples/weather-js.wasm",
        not_applicable: &[],
    },
];

/// What a case saw, compared across the rows of a family.
type Observations = BTreeMap<String, Value>;

struct Ctx {
    gateway: Gateway,
    mock: ToolMock,
    _dir: tempfile::TempDir,
}

/// What a REST invoke answered, reduced to what must be the same for every row.
struct Invoked {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Invoked {
    /// Status, error type, code and message, `retry-after`: a failure as the client sees it.
    fn failure(&self) -> Value {
        json!({
            "status": self.status,
            "type": self.body["error"]["type"],
            "code": self.body["error"]["code"],
            "message": self.body["error"]["message"],
            "retry_after": self.retry_after,
        })
    }
}

impl Ctx {
    async fn start(row: &Row) -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        let (api, tool, endpoints) = match row.family {
            Family::Weather => (ToolApi::OpenMeteo, "weather", ["geocoding", "forecast"]),
        };
        let mock = ToolMock::start(api).await;
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|endpoint| format!("{endpoint} = {}", toml_str(&mock.url())))
            .collect();
        let config = format!(
            "{}\n[memory]\npath = {}\n\n[tools.{tool}]\nplugin = {}\ncache_ttl_seconds = 0\n\n\
             [[tools.{tool}.upstream]]\nname = \"open-meteo\"\nendpoints = {{ {} }}\n",
            plugins_section(),
            toml_str(&dir.path().join("aigw.db").to_string_lossy()),
            toml_str(&component(row).to_string_lossy()),
            endpoints.join(", "),
        );
        let gateway = GatewayBuilder::default()
            .compiles_large_plugins()
            .start(&config)
            .await;
        Ctx {
            gateway,
            mock,
            _dir: dir,
        }
    }

    async fn invoke(&self, tool: &str, arguments: Value) -> Invoked {
        let response = self
            .gateway
            .client()
            .post(self.gateway.url(&format!("/v1/tools/{tool}/invoke")))
            .json(&json!({ "arguments": arguments }))
            .send()
            .await
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, _, body) = status_and_json(response).await;
        Invoked {
            status,
            retry_after,
            body,
        }
    }

    /// `tools/call` over `/mcp` (the stateless 2026-07-28 revision): the JSON-RPC result.
    async fn mcp_call(&self, tool: &str, arguments: Value) -> Result<Value, String> {
        const MODERN: &str = "2026-07-28";
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "tool-conformance", "version": "1"},
        }}});
        let response = self
            .gateway
            .client()
            .post(self.gateway.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", MODERN)
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", tool)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, _, answer) = status_and_json(response).await;
        if status != 200 {
            return Err(format!("/mcp answered {status}: {answer}"));
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| format!("/mcp answered no result: {answer}"))
    }

    /// The tool's output schema as `GET /v1/tools` lists it.
    async fn output_schema(&self, tool: &str) -> Result<Value, String> {
        let listed = list(self).await?;
        listed
            .iter()
            .find(|t| t["function"]["name"] == tool)
            .and_then(tool_output_schema)
            .ok_or_else(|| format!("{tool} is listed without an output schema: {listed:?}"))
    }
}

fn component(row: &Row) -> PathBuf {
    paths::built(row.file)
}

type CaseResult = Result<Value, String>;
type Case = for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + 'a>>;

macro_rules! check {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

macro_rules! case {
    ($name:literal, $f:ident) => {
        ($name, |ctx| Box::pin($f(ctx)))
    };
}

/// Every case, in order; each returns what it observed.
const CASES: &[(&str, Case)] = &[
    case!("list", list_tools),
    case!("valid-call", valid_call),
    case!("forecast", forecast),
    case!("coordinates", coordinates),
    case!("invalid-arguments", invalid_arguments),
    case!("unavailable", unavailable),
    case!("unknown-place", unknown_place),
    case!("mcp", mcp),
    // Last: the 429 cools the only upstream down for the minute it asks for.
    case!("rate-limited", rate_limited),
];

/// `GET /v1/tools`: its `data`, sorted by name.
async fn list(ctx: &Ctx) -> Result<Vec<Value>, String> {
    let response = ctx.gateway.get("/v1/tools").await;
    let (status, _, body) = status_and_json(response).await;
    check!(status == 200, "GET /v1/tools answered {status}: {body}");
    let mut tools = body["data"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("no data array: {body}"))?;
    tools.sort_by_key(|t| t["function"]["name"].as_str().unwrap_or("").to_owned());
    Ok(tools)
}

/// Where a listed tool carries its output schema (aigw's extension of the function shape).
fn tool_output_schema(listed: &Value) -> Option<Value> {
    ["output_schema", "outputSchema"]
        .iter()
        .find_map(|key| {
            listed
                .get(*key)
                .or_else(|| listed["function"].get(*key))
                .cloned()
        })
        .filter(Value::is_object)
}

async fn list_tools(ctx: &Ctx) -> CaseResult {
    let tools = list(ctx).await?;
    let names: Vec<&str> = tools
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap_or(""))
        .collect();
    check!(
        names == ["weather_current", "weather_forecast"],
        "tools: {names:?}"
    );
    for tool in &tools {
        check!(tool["type"] == "function", "{tool}");
        let parameters = &tool["function"]["parameters"];
        check!(
            parameters["type"] == "object" && parameters["additionalProperties"] == false,
            "parameters must be a closed object: {tool}"
        );
        check!(
            !tool["function"]["description"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "no description: {tool}"
        );
    }
    check!(
        tools[1]["function"]["parameters"]["properties"]["days"]["maximum"] == 16,
        "days is 1..=16: {}",
        tools[1]
    );
    Ok(Value::Array(tools))
}

/// A successful invoke's `result`, checked against the tool's output schema.
async fn result_fitting_schema(ctx: &Ctx, tool: &str, arguments: Value) -> CaseResult {
    let invoked = ctx.invoke(tool, arguments.clone()).await;
    check!(
        invoked.status == 200,
        "{tool} {arguments} answered {}: {}\n{}",
        invoked.status,
        invoked.body,
        ctx.gateway.stderr()
    );
    check!(
        invoked.body["upstream"] == "open-meteo",
        "upstream: {}",
        invoked.body
    );
    let result = invoked.body["result"].clone();
    let schema = ctx.output_schema(tool).await?;
    fits(&result, &schema, "result")?;
    Ok(json!({"upstream": invoked.body["upstream"], "result": result}))
}

async fn valid_call(ctx: &Ctx) -> CaseResult {
    let seen = result_fitting_schema(ctx, "weather_current", json!({"city": "Berlin"})).await?;
    let result = &seen["result"];
    check!(result["location"]["name"] == "Berlin", "{result}");
    check!(result["location"]["country"] == "Germany", "{result}");
    check!(result["location"]["latitude"] == 52.52437, "{result}");
    check!(result["current"]["conditions"].is_string(), "{result}");
    check!(
        result["units"]
            == json!({"temperature": "°C", "wind_speed": "km/h", "precipitation": "mm"}),
        "{result}"
    );
    let paths: Vec<String> = ctx.mock.requests().into_iter().map(|r| r.path).collect();
    check!(
        paths.ends_with(&["/v1/search".to_owned(), "/v1/forecast".to_owned()]),
        "geocoded, then the forecast: {paths:?}"
    );
    Ok(seen)
}

async fn forecast(ctx: &Ctx) -> CaseResult {
    let seen =
        result_fitting_schema(ctx, "weather_forecast", json!({"city": "Paris", "days": 3})).await?;
    let days = seen["result"]["days"].as_array().map_or(0, Vec::len);
    check!(days == 3, "three days: {seen}");
    Ok(seen)
}

async fn coordinates(ctx: &Ctx) -> CaseResult {
    let seen = result_fitting_schema(
        ctx,
        "weather_current",
        json!({"latitude": 48, "longitude": 2.35, "units": "imperial"}),
    )
    .await?;
    let result = &seen["result"];
    check!(result["location"]["name"].is_null(), "{result}");
    let last = ctx
        .mock
        .requests()
        .pop()
        .ok_or("no request reached the mock")?;
    check!(
        last.param("latitude") == Some("48")
            && last.param("temperature_unit") == Some("fahrenheit"),
        "the forecast asked for: {:?}",
        last.path
    );
    Ok(seen)
}

async fn invalid_arguments(ctx: &Ctx) -> CaseResult {
    let before = ctx.mock.requests().len();
    let mut seen = Vec::new();
    for (tool, arguments, field) in [
        (
            "weather_forecast",
            json!({"city": "Berlin", "days": 17}),
            "days",
        ),
        (
            "weather_current",
            json!({"city": "Berlin", "units": "kelvin"}),
            "units",
        ),
        ("weather_current", json!({"city": ""}), "city"),
        ("weather_current", json!({"town": "Berlin"}), "town"),
    ] {
        let invoked = ctx.invoke(tool, arguments.clone()).await;
        check!(
            invoked.status == 400,
            "{arguments}: {} {}",
            invoked.status,
            invoked.body
        );
        let message = invoked.body["error"]["message"].as_str().unwrap_or("");
        check!(
            message.contains(field),
            "{arguments}: the message must name `{field}`: {message}"
        );
        seen.push(invoked.failure());
    }
    check!(
        ctx.mock.requests().len() == before,
        "refused arguments reached the upstream"
    );
    Ok(Value::Array(seen))
}

async fn rate_limited(ctx: &Ctx) -> CaseResult {
    let invoked = ctx.invoke("weather_current", json!({"city": "RATE"})).await;
    check!(invoked.status == 429, "{} {}", invoked.status, invoked.body);
    let message = invoked.body["error"]["message"].as_str().unwrap_or("");
    check!(
        message.contains("Minutely"),
        "the upstream's reason: {message}"
    );
    // The wait the plugin read from the reason ("one minute") cools the upstream down: the next
    // call is refused by the host without reaching it, saying how long.
    let before = ctx.mock.requests().len();
    let cooling = ctx
        .invoke("weather_current", json!({"city": "Berlin"}))
        .await;
    check!(cooling.status == 429, "{} {}", cooling.status, cooling.body);
    let message = cooling.body["error"]["message"].as_str().unwrap_or("");
    check!(
        message.contains("retry in 60 s"),
        "the minute it asked for: {message}"
    );
    check!(
        ctx.mock.requests().len() == before,
        "a cooling upstream was asked"
    );
    Ok(json!([invoked.failure(), cooling.failure()]))
}

async fn unavailable(ctx: &Ctx) -> CaseResult {
    let mut seen = Vec::new();
    for city in ["ERROR", "HTML"] {
        let invoked = ctx.invoke("weather_current", json!({ "city": city })).await;
        check!(
            (500..600).contains(&invoked.status),
            "{city}: {} {}",
            invoked.status,
            invoked.body
        );
        seen.push(invoked.failure());
    }
    let html = seen[1]["message"].as_str().unwrap_or("");
    check!(html.contains("HTML"), "the HTML page is named: {html}");
    Ok(Value::Array(seen))
}

async fn unknown_place(ctx: &Ctx) -> CaseResult {
    let before = ctx.mock.requests().len();
    let invoked = ctx
        .invoke("weather_current", json!({"city": "Nowhere"}))
        .await;
    check!(invoked.status == 400, "{} {}", invoked.status, invoked.body);
    let message = invoked.body["error"]["message"].as_str().unwrap_or("");
    check!(
        message.contains("\"Nowhere\""),
        "names the place: {message}"
    );
    check!(
        ctx.mock.requests().len() == before + 1,
        "only the geocoder was asked"
    );
    Ok(invoked.failure())
}

async fn mcp(ctx: &Ctx) -> CaseResult {
    let arguments = json!({"city": "New York", "days": 2});
    let result = ctx.mcp_call("weather_forecast", arguments.clone()).await?;
    check!(result["isError"] == false, "{result}");
    let rest = ctx.invoke("weather_forecast", arguments).await;
    check!(rest.status == 200, "{} {}", rest.status, rest.body);
    check!(
        result["structuredContent"] == rest.body["result"],
        "MCP and REST differ:\n{}\n{}",
        result["structuredContent"],
        rest.body["result"]
    );
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap_or(""))
        .map_err(|e| format!("the text content is not JSON: {e}: {result}"))?;
    check!(
        text == result["structuredContent"],
        "text and structured content differ"
    );
    let failed = ctx
        .mcp_call("weather_current", json!({"city": "Nowhere"}))
        .await?;
    check!(failed["isError"] == true, "{failed}");
    Ok(json!({"result": result["structuredContent"], "failed": failed["content"]}))
}

/// Whether `value` fits `schema` in the subset the tool specs use (`type`, possibly a list with
/// `null`; `properties`, `required`, `additionalProperties: false`; `items`; `enum`; `minimum` and
/// `maximum`), naming the path of the first misfit.
fn fits(value: &Value, schema: &Value, path: &str) -> Result<(), String> {
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => {
                return Err(format!(
                    "{path}: a schema type that is neither string nor list"
                ));
            }
        };
        let matches = |kind: &str| match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        check!(
            types.iter().any(|kind| matches(kind)),
            "{path}: {value} is not of type {types:?}"
        );
    }
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(n) = value.as_f64() {
        if bound("minimum").is_some_and(|min| n < min) {
            return Err(format!(
                "{path}: {n} is below the minimum {:?}",
                bound("minimum")
            ));
        }
        if bound("maximum").is_some_and(|max| n > max) {
            return Err(format!(
                "{path}: {n} is above the maximum {:?}",
                bound("maximum")
            ));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        check!(
            allowed.contains(value),
            "{path}: {value} not in {allowed:?}"
        );
    }
    if let Value::Object(object) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            check!(
                object.contains_key(required),
                "{path}: `{required}` is missing"
            );
        }
        for (key, field) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => fits(field, sub, &format!("{path}.{key}"))?,
                None => check!(
                    schema.get("additionalProperties") != Some(&Value::Bool(false)),
                    "{path}: `{key}` is not in the schema"
                ),
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, element) in items.iter().enumerate() {
            fits(element, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

/// Runs every case on every row of `family`, then compares the rows' observations.
async fn conform(family: Family) {
    let mut failures = Vec::new();
    let mut seen: Vec<(&str, Observations)> = Vec::new();
    for row in ROWS.iter().filter(|row| row.family == family) {
        let ctx = Ctx::start(row).await;
        let mut observations = Observations::new();
        for (case, run) in CASES {
            if let Some((_, why)) = row.not_applicable.iter().find(|(c, _)| c == case) {
                println!("{}/{case}: not applicable: {why}", row.name);
                continue;
            }
            match run(&ctx).await {
                Ok(observed) => {
                    println!("{}/{case}: ok", row.name);
                    observations.insert((*case).to_owned(), observed);
                }
                Err(reason) => failures.push(format!("{}/{case}: {reason}", row.name)),
            }
        }
        if !failures.is_empty() {
            failures.push(format!(
                "--- {} gateway stderr ---\n{}",
                row.name,
                ctx.gateway.stderr()
            ));
        }
        seen.push((row.name, observations));
    }
    if let Some(((first, reference), others)) = seen.split_first() {
        for (row, observations) in others {
            for (case, expected) in reference {
                match observations.get(case) {
                    Some(got) if numbers_as_f64(got) != numbers_as_f64(expected) => failures.push(format!(
                        "{row}/{case}: answers differently from {first}:\n  {first}: {expected}\n  {row}: {got}"
                    )),
                    _ => {}
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `value` with every number as an f64, so twins compare as JSON values: JSON does not tell `0`
/// from `0.0`, and JavaScript writes the upstream's `0.0` (which Rust and Python keep) as `0`.
fn numbers_as_f64(value: &Value) -> Value {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| value.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_f64).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), numbers_as_f64(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[tokio::test]
async fn weather_plugins_conform_and_answer_alike() {
    conform(Family::Weather).await;
}

#[test]
fn not_applicable_names_real_cases() {
    for row in ROWS {
        for (case, _) in row.not_applicable {
            assert!(
                CASES.iter().any(|(name, _)| name == case),
                "{}: `{case}` is not a case",
                row.name
            );
        }
    }
}

#[test]
fn the_schema_check_finds_misfits() {
    let schema = json!({"type": "object", "properties": {
        "n": {"type": ["number", "null"], "minimum": 0.0},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
    }, "required": ["n"], "additionalProperties": false});
    assert!(fits(&json!({"n": 1.5, "tags": ["a"]}), &schema, "r").is_ok());
    assert!(fits(&json!({"n": null}), &schema, "r").is_ok());
    let misfits = [
        (json!({}), "`n` is missing"),
        (json!({"n": -1}), "below the minimum"),
        (json!({"n": "1"}), "not of type"),
        (
            json!({"n": 1, "extra": true}),
            "`extra` is not in the schema",
        ),
        (json!({"n": 1, "tags": ["c"]}), "r.tags[0]"),
    ];
    for (value, why) in misfits {
        let err = fits(&value, &schema, "r").unwrap_err();
        assert!(err.contains(why), "{value}: {err}");
    }
}
