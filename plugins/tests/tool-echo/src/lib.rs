//! A test-only tool plugin (world `tool-plugin`, wit-bindgen used directly, no SDK yet) whose
//! tools exercise each host import, so the runtime's tests can prove the per-call context:
//!
//! - `echo`: returns its arguments unchanged.
//! - `fetch` `{"url", "method"?, "times"?, "follow"?}`: sends the request through `outbound`
//!   `times` times (default 1) and returns `{"status", "body"}` of the last answer; a failed
//!   send is the tool's failure, as the host reported it. With `follow: true`, a 3xx answer's
//!   `location` is requested once more (the host never follows a redirect itself: a plugin that
//!   does still goes through the grant check).
//! - `upstream_get` `{"path"}`: GETs `<the target's base endpoint><path>` and classifies the
//!   answer as a real tool plugin does: 429 is `rate-limited` (with the `retry-after` header's
//!   seconds), 401/403 `unauthorized`, 5xx `unavailable`, another non-2xx `invalid-request`;
//!   a 2xx is `{"upstream", "status", "body"}`.
//!
//! Its upstreams, for the host's tool service tests: `primary` and `secondary`, each with one
//! endpoint `base` (default `http://127.0.0.1:9`, the discard port: nothing answers) and the
//! operator's credential in header `x-echo-key` (not required).
//! - `remember` `{"key", "value"}`: `memory.put` of `{"value": value}` under path `["echo"]`
//!   and `key`, then `memory.get`, returns the value read back.
//! - `recall` `{"key"}`: `memory.get` of path `["echo"]` and `key`, returns `{"value": …}`
//!   (null when absent).
//! - `stderr` `{"text"}`: writes the text to stderr and returns nothing, for the per-call
//!   stderr capture.
//! - `panic`: panics (a trap), for fault tests.
//! - `constructor-probe`: what `memory.get(["echo"], "probe")` answered in the module's static
//!   constructor, kept in a global: a guest that remembers what an import returned.
//!
//! The tools report a memory error as an `unavailable` failure with its message (the
//! `tool-memory` plugin is the one that tells the variants apart).

#[allow(unsafe_code)] // wit-bindgen's canonical-ABI glue is unsafe by nature
mod bindings {
    wit_bindgen::generate!({
        world: "tool-plugin",
        path: "../../../wit",
    });
}

use bindings::aigw::plugin::types::{
    CredentialPlacement, Failure, HeaderCredential, HttpRequest, NamedUrl, RateLimit,
};
use bindings::aigw::plugin::{log, memory, outbound};
use bindings::exports::aigw::plugin::tool::{Descriptor, Guest, Target, ToolSpec, Upstream};
use serde_json::{Value, json};

struct ToolEcho;

#[allow(unsafe_code)] // the export glue is generated canonical-ABI code too
mod export {
    use super::ToolEcho;
    crate::bindings::export!(ToolEcho with_types_in crate::bindings);
}

fn spec(name: &str, description: &str, schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        title: name.to_owned(),
        description: description.to_owned(),
        output_schema: None,
        cache_ttl_seconds: 0,
        parameters_schema: schema.to_string(),
    }
}

impl Guest for ToolEcho {
    fn describe() -> Descriptor {
        Descriptor {
            name: "tool-echo".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tools: tools(),
            upstreams: ["primary", "secondary"].map(upstream).to_vec(),
        }
    }

    fn invoke(name: String, args_json: String, target: Target) -> Result<String, Failure> {
        if name == "upstream_get" {
            return upstream_get(&args(&args_json)?, &target);
        }
        invoke(&name, &args_json)
    }
}

fn upstream(name: &str) -> Upstream {
    Upstream {
        name: name.to_owned(),
        endpoints: vec![NamedUrl {
            name: "base".to_owned(),
            url: "http://127.0.0.1:9".to_owned(),
        }],
        credential: CredentialPlacement::Header(HeaderCredential {
            name: "x-echo-key".to_owned(),
            prefix: String::new(),
        }),
        credential_required: false,
    }
}

fn tools() -> Vec<ToolSpec> {
        let object = |properties: Value, required: &[&str]| json!({"type": "object", "properties": properties, "required": required});
        vec![
            spec("echo", "Returns its arguments.", json!({"type": "object"})),
            spec(
                "fetch",
                "Sends an HTTP request through the host and returns its status and body.",
                object(
                    json!({
                        "url": {"type": "string"},
                        "method": {"type": "string"},
                        "times": {"type": "integer"},
                        "follow": {"type": "boolean"}
                    }),
                    &["url"],
                ),
            ),
            spec(
                "remember",
                "Stores a value under a key in memory and reads it back.",
                object(
                    json!({"key": {"type": "string"}, "value": {"type": "string"}}),
                    &["key", "value"],
                ),
            ),
            spec(
                "recall",
                "Reads the value stored under a key.",
                object(json!({"key": {"type": "string"}}), &["key"]),
            ),
            spec(
                "stderr",
                "Writes a text to stderr.",
                object(json!({"text": {"type": "string"}}), &["text"]),
            ),
            spec("panic", "Traps.", json!({"type": "object"})),
            spec(
                "constructor-probe",
                "What memory.get([\"echo\"], \"probe\") answered in the static constructor.",
                json!({"type": "object"}),
            ),
            spec(
                "upstream_get",
                "GETs a path of the call's upstream and classifies the answer.",
                object(json!({"path": {"type": "string"}}), &["path"]),
            ),
        ]
    }

fn invoke(name: &str, args_json: &str) -> Result<String, Failure> {
        match name {
            "echo" => Ok(args_json.to_owned()),
            "fetch" => fetch(&args(args_json)?),
            "remember" => remember(&args(args_json)?),
            "recall" => recall(&args(args_json)?),
            "stderr" => {
                eprintln!("{}", text(&args(args_json)?, "text")?);
                Ok(String::new())
            }
            "panic" => panic_now(),
            "constructor-probe" => Ok(AT_CONSTRUCTION
                .lock()
                .ok()
                .and_then(|slot| slot.clone())
                .unwrap_or_else(|| "the constructor did not run".to_owned())),
            other => Err(Failure::InvalidRequest(format!("no tool named {other:?}"))),
        }
    }

/// What `memory.get(["echo"], "probe")` answered in the module's static constructor, kept in a global
/// for the `constructor-probe` tool. Rust runs constructors (`__wasm_call_ctors`) at the
/// instance's first export call, not while it is instantiated: so in whatever call comes
/// first, `describe` at load or a caller's call on a fresh instance.
static AT_CONSTRUCTION: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

extern "C" fn probe_at_construction() {
    let answer = match read("probe") {
        Ok(value) => format!("ok: {value:?}"),
        Err(Failure::Unavailable(e)) => format!("error: {e}"),
        Err(e) => format!("error: {e:?}"),
    };
    if let Ok(mut slot) = AT_CONSTRUCTION.lock() {
        *slot = Some(answer);
    }
}

// Runs `probe_at_instantiation` from the module's constructors (`__wasm_call_ctors`, which the
// component calls while it is instantiated).
#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array")]
static PROBE_AT_CONSTRUCTION: extern "C" fn() = probe_at_construction;

#[allow(clippy::panic)]
fn panic_now() -> ! {
    panic!("tool-echo: panic requested")
}

fn args(json: &str) -> Result<Value, Failure> {
    serde_json::from_str(json)
        .map_err(|e| Failure::InvalidRequest(format!("arguments are not JSON: {e}")))
}

fn text<'a>(args: &'a Value, field: &str) -> Result<&'a str, Failure> {
    args[field]
        .as_str()
        .ok_or_else(|| Failure::InvalidRequest(format!("argument {field:?} must be a string")))
}

fn fetch(args: &Value) -> Result<String, Failure> {
    let url = text(args, "url")?;
    let method = args["method"].as_str().unwrap_or("GET");
    let times = args["times"].as_u64().unwrap_or(1);
    let mut last = None;
    for _ in 0..times {
        let response = get(method, url)?;
        last = Some(response);
    }
    let mut response =
        last.ok_or_else(|| Failure::InvalidRequest("times must be at least 1".into()))?;
    if args["follow"].as_bool() == Some(true)
        && (300..400).contains(&response.status)
        && let Some(location) = header(&response.headers, "location")
    {
        response = get(method, &location)?;
    }
    log::emit(
        log::Level::Debug,
        &format!("fetched {url}: {}", response.status),
    );
    Ok(json!({
        "status": response.status,
        "body": String::from_utf8_lossy(&response.body),
    })
    .to_string())
}

fn get(method: &str, url: &str) -> Result<bindings::aigw::plugin::types::HttpResponse, Failure> {
    outbound::send(&HttpRequest {
        method: method.to_owned(),
        url: url.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    })
}

fn header(headers: &[bindings::aigw::plugin::types::Header], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.clone())
}

fn upstream_get(args: &Value, target: &Target) -> Result<String, Failure> {
    let path = text(args, "path")?;
    let base = target
        .endpoints
        .iter()
        .find(|e| e.name == "base")
        .ok_or_else(|| Failure::InvalidRequest("the target has no `base` endpoint".into()))?;
    let response = get("GET", &format!("{}{path}", base.url))?;
    let body = String::from_utf8_lossy(&response.body).into_owned();
    let status = response.status;
    match status {
        200..=299 => Ok(json!({
            "upstream": target.upstream,
            "status": status,
            "body": body,
        })
        .to_string()),
        429 => Err(Failure::RateLimited(RateLimit {
            retry_after_seconds: header(&response.headers, "retry-after")
                .and_then(|v| v.trim().parse().ok()),
            message: format!("{}: rate limited: {body}", target.upstream),
        })),
        401 | 403 => Err(Failure::Unauthorized(format!(
            "{}: {status}: {body}",
            target.upstream
        ))),
        500..=599 => Err(Failure::Unavailable(format!(
            "{}: {status}: {body}",
            target.upstream
        ))),
        _ => Err(Failure::InvalidRequest(format!(
            "{}: {status}: {body}",
            target.upstream
        ))),
    }
}

/// Where `remember` and `recall` keep their entries.
const PATH: &str = "echo";

/// A memory error as this plugin's failure: its message, whatever the variant.
fn unavailable(e: memory::MemoryError) -> Failure {
    use memory::MemoryError as E;
    Failure::Unavailable(match e {
        E::NotFound => "not found".to_owned(),
        E::Conflict(current) => format!("conflict: the current version is {current}"),
        E::TooLarge(m) | E::Quota(m) | E::Invalid(m) | E::Unavailable(m) => m,
    })
}

/// The string stored as `{"value": …}` under `key`.
fn read(key: &str) -> Result<Option<String>, Failure> {
    let entry = memory::get(&[PATH.to_owned()], key).map_err(unavailable)?;
    Ok(entry.and_then(|e| {
        let value: Value = serde_json::from_str(&e.value_json).ok()?;
        value["value"].as_str().map(str::to_owned)
    }))
}

fn remember(args: &Value) -> Result<String, Failure> {
    let key = text(args, "key")?;
    let value = json!({ "value": text(args, "value")? }).to_string();
    memory::put(&[PATH.to_owned()], key, &value, None, None).map_err(unavailable)?;
    read(key)?.ok_or_else(|| Failure::Unavailable(format!("memory lost {key:?} just after put")))
}

fn recall(args: &Value) -> Result<String, Failure> {
    let value = read(text(args, "key")?)?;
    Ok(json!({ "value": value }).to_string())
}
