//! `aigw plugin check <file.wasm>`: what the gateway would make of a component. First its facts,
//! read without compiling (`aigw_runtime::inspect`: world, WIT version, digest, size, imports;
//! an import its world does not provide is refused with the reason), then a real load in a
//! runtime with no services (compile through the gateway's default compile cache, `describe`, a
//! warm instance), and what it describes. A component the gateway would refuse exits 1 with the
//! reason.

use std::path::Path;

use aigw_egress::Placement;
use aigw_runtime::{
    ComponentFacts, Descriptor, Limits, LoadedPlugin, Runtime, RuntimeOptions,
    SUPPORTED_WIT_VERSIONS, ToolDescriptor, WorldKind,
};
use anyhow::Context;
use serde_json::{Value, json};

use super::Kind;

/// The WASI preview 2 interfaces the gateway links for every plugin (wasmtime-wasi's p2 set),
/// by package.
const WASI: &[(&str, &[&str])] = &[
    (
        "wasi:cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("wasi:clocks", &["monotonic-clock", "wall-clock"]),
    ("wasi:filesystem", &["types", "preopens"]),
    ("wasi:io", &["error", "poll", "streams"]),
    ("wasi:random", &["random", "insecure", "insecure-seed"]),
    (
        "wasi:sockets",
        &[
            "network",
            "instance-network",
            "udp",
            "udp-create-socket",
            "tcp",
            "tcp-create-socket",
            "ip-name-lookup",
        ],
    ),
];

/// Why the gateway would not link `import`, or `None` when it does. `inspect` has already
/// refused what it can tell from names alone (an `aigw:plugin` interface outside the world,
/// another package version, a package that is neither `aigw:plugin` nor WASI 0.2); what is left
/// is a WASI interface outside the preview 2 set the gateway links (`wasi:http` above all, which
/// JS toolchains pull in for `fetch`), which would only fail later, at link time.
fn unprovided(import: &str) -> Option<String> {
    let name = import.split_once('@').map_or(import, |(name, _)| name);
    let (package, interface) = name.split_once('/')?;
    if !package.starts_with("wasi:") {
        return None;
    }
    match WASI.iter().find(|(p, _)| *p == package) {
        None => Some(format!(
            "the gateway links no {package} (only wasi:cli, clocks, filesystem, io, random, sockets)"
        )),
        Some((_, interfaces)) if !interfaces.contains(&interface) => {
            Some(format!("the gateway links no {package}/{interface}"))
        }
        Some(_) => None,
    }
}

fn kind_of(world: WorldKind) -> Kind {
    match world {
        WorldKind::Provider => Kind::Provider,
        WorldKind::Tool => Kind::Tool,
    }
}

pub async fn run(file: &Path, json: bool) -> anyhow::Result<()> {
    run_for(file, None, json).await
}

/// Checks `file`; with `expected`, a component of another kind (a project whose manifest and
/// code disagree) is refused too.
pub async fn run_for(file: &Path, expected: Option<Kind>, json: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let facts = aigw_runtime::inspect(&bytes)
        .map_err(|reason| anyhow::anyhow!("{}: rejected: {reason}", file.display()))?;
    if let Some(expected) = expected
        && expected != kind_of(facts.world)
    {
        anyhow::bail!(
            "{}: rejected: aigw-plugin.toml says kind = \"{}\" but the component exports the \
             {} world",
            file.display(),
            expected.as_str(),
            facts.world.world()
        );
    }
    let flagged: Vec<(String, String)> = facts
        .imports
        .iter()
        .filter_map(|import| unprovided(import).map(|why| (import.clone(), why)))
        .collect();
    if !json {
        print!("{}", facts_text(file, &facts, &flagged));
    }
    if let Some((import, why)) = flagged.first() {
        anyhow::bail!(
            "{}: rejected: it imports {import}, which the gateway does not provide ({why})",
            file.display()
        );
    }

    // One warm instance is enough to prove it instantiates; no services: `describe` needs none.
    let limits = Limits {
        warm_instances: 1,
        ..Limits::default()
    };
    // The gateway's default compile cache: a component checked here (as `build` does) starts
    // warm in a gateway whose config keeps the default `cache_dir`.
    let runtime = Runtime::configure(RuntimeOptions {
        limits,
        compile_cache: crate::config::default_cache_dir(&|name| std::env::var(name).ok()),
        ..RuntimeOptions::default()
    })
    .map_err(|e| anyhow::anyhow!("cannot configure the wasm engine: {e:#}"))?;
    let label = file
        .file_stem()
        .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned());
    let loaded = aigw_runtime::load(&runtime, &label, bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{}: rejected: {e}", file.display()))?;
    let describes = describes(&loaded);
    if json {
        let report = json!({
            "name": loaded.name(),
            "kind": facts.world.as_str(),
            "world": facts.world.world(),
            "wit_version": facts.wit_version,
            "supported": true,
            "version": loaded.version(),
            "digest": facts.digest,
            "size_bytes": facts.size_bytes,
            "imports": facts.imports,
            "async_abi": loaded.async_abi(),
            "describes": describes,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if loaded.async_abi() {
            // Said because it costs: each call goes through wasmtime's task machinery.
            println!("  uses the component model's async ABI: runs on the engine that supports it");
        }
        print!("{}", describes_text(&loaded));
    }
    Ok(())
}

fn facts_text(file: &Path, facts: &ComponentFacts, flagged: &[(String, String)]) -> String {
    let supported = if SUPPORTED_WIT_VERSIONS.contains(&facts.wit_version.as_str()) {
        "supported"
    } else {
        "NOT SUPPORTED"
    };
    let mut out = format!(
        "{}\n  world: {} (aigw:plugin@{}, {supported})\n  size: {} bytes\n  digest: {}\n  \
         imports:\n",
        file.display(),
        facts.world.world(),
        facts.wit_version,
        facts.size_bytes,
        facts.digest
    );
    for import in &facts.imports {
        match flagged.iter().find(|(flagged, _)| flagged == import) {
            Some((_, why)) => out.push_str(&format!("    {import}  <- NOT PROVIDED: {why}\n")),
            None => out.push_str(&format!("    {import}\n")),
        }
    }
    out
}

fn describes(loaded: &LoadedPlugin) -> Value {
    match loaded {
        LoadedPlugin::Provider(plugin) => provider_json(plugin.descriptor()),
        LoadedPlugin::Tool(plugin) => tool_json(plugin.descriptor()),
    }
}

fn credential_json(placement: &Placement, required: bool) -> Value {
    match placement {
        Placement::None => json!({"placement": "none", "required": required}),
        Placement::Header { name, prefix } => {
            json!({"placement": "header", "name": name, "prefix": prefix, "required": required})
        }
        Placement::Query(name) => {
            json!({"placement": "query", "name": name, "required": required})
        }
    }
}

fn credential_text(placement: &Placement, required: bool) -> String {
    let required = if required { "required" } else { "optional" };
    match placement {
        Placement::None => "none".to_owned(),
        Placement::Header { name, prefix } => {
            format!("header `{name}: {prefix}<key>` ({required})")
        }
        Placement::Query(name) => format!("query parameter `{name}=<key>` ({required})"),
    }
}

fn provider_json(d: &Descriptor) -> Value {
    json!({
        "name": d.name,
        "version": d.version,
        "default_base_url": d.default_base_url,
        "origins": d.origins,
        "credential": credential_json(&d.credential, d.credential_required),
        "models": d.models,
    })
}

/// A schema as JSON (what the plugin sent is checked JSON: the runtime compiled it at load).
fn schema_json(schema: &str) -> Value {
    serde_json::from_str(schema).unwrap_or_else(|_| Value::String(schema.to_owned()))
}

fn tool_json(d: &ToolDescriptor) -> Value {
    json!({
        "name": d.name,
        "version": d.version,
        "tools": d.tools.iter().map(|t| json!({
            "name": t.name,
            "title": t.title,
            "description": t.description,
            "parameters": schema_json(&t.parameters_schema),
            "output": t.output_schema.as_deref().map(schema_json),
            "cache_ttl_seconds": t.cache_ttl.as_secs(),
        })).collect::<Vec<_>>(),
        "upstreams": d.upstreams.iter().map(|u| json!({
            "name": u.name,
            "endpoints": u.endpoints.iter()
                .map(|(name, url)| json!({"name": name, "url": url}))
                .collect::<Vec<_>>(),
            "credential": credential_json(&u.credential, u.credential_required),
        })).collect::<Vec<_>>(),
    })
}

/// `latitude: number (required), units: string`: the arguments a tool takes, in one line.
fn schema_summary(schema: &str) -> String {
    let schema = schema_json(schema);
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return "no arguments".to_owned();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if properties.is_empty() {
        return "no arguments".to_owned();
    }
    properties
        .iter()
        .map(|(name, property)| {
            let kind = match property.get("type") {
                Some(Value::String(kind)) => kind.clone(),
                Some(Value::Array(kinds)) => kinds
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("|"),
                _ => "any".to_owned(),
            };
            let required = if required.contains(&name.as_str()) {
                " (required)"
            } else {
                ""
            };
            format!("{name}: {kind}{required}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describes_text(loaded: &LoadedPlugin) -> String {
    match loaded {
        LoadedPlugin::Provider(plugin) => {
            let d = plugin.descriptor();
            let mut out = format!(
                "provider {} {}\n  default base URL: {}\n  credential: {}\n",
                d.name,
                d.version,
                d.default_base_url,
                credential_text(&d.credential, d.credential_required)
            );
            if !d.origins.is_empty() {
                out.push_str(&format!("  other origins: {}\n", d.origins.join(", ")));
            }
            out.push_str(&format!(
                "  models: {}\n",
                if d.models.is_empty() {
                    "none listed (any name is passed through)".to_owned()
                } else {
                    d.models.join(", ")
                }
            ));
            out.push_str("ok: the gateway loads it as a provider plugin\n");
            out
        }
        LoadedPlugin::Tool(plugin) => {
            let d = plugin.descriptor();
            let mut out = format!("tool plugin {} {}\n", d.name, d.version);
            for tool in &d.tools {
                out.push_str(&format!(
                    "  tool {} ({}): {}; cache {} s{}\n",
                    tool.name,
                    tool.title,
                    schema_summary(&tool.parameters_schema),
                    tool.cache_ttl.as_secs(),
                    if tool.output_schema.is_some() {
                        "; output schema"
                    } else {
                        ""
                    }
                ));
            }
            for upstream in &d.upstreams {
                let endpoints: Vec<String> = upstream
                    .endpoints
                    .iter()
                    .map(|(name, url)| format!("{name} {url}"))
                    .collect();
                out.push_str(&format!(
                    "  upstream {}: credential {}; endpoints {}\n",
                    upstream.name,
                    credential_text(&upstream.credential, upstream.credential_required),
                    endpoints.join(", ")
                ));
            }
            if d.upstreams.is_empty() {
                out.push_str("  no upstreams (its tools reach no network)\n");
            }
            out.push_str("ok: the gateway loads it as a tool plugin\n");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn wasi_interfaces_outside_preview_2_are_flagged() {
        for import in [
            "aigw:plugin/log@0.1.0",
            "wasi:cli/stdin@0.2.6",
            "wasi:io/streams@0.2.12",
            "wasi:sockets/tcp@0.2.9",
        ] {
            assert_eq!(unprovided(import), None, "{import}");
        }
        let http = unprovided("wasi:http/types@0.2.10").unwrap();
        assert!(http.contains("links no wasi:http"), "{http}");
        let keyvalue = unprovided("wasi:cli/run@0.2.0").unwrap();
        assert!(keyvalue.contains("wasi:cli/run"), "{keyvalue}");
    }

    #[test]
    fn a_schema_is_summarised_by_its_arguments() {
        let schema = r#"{"type":"object","properties":{"city":{"type":"string"},"days":{"type":["integer","null"]}},"required":["city"]}"#;
        assert_eq!(
            schema_summary(schema),
            "city: string (required), days: integer|null"
        );
        assert_eq!(
            schema_summary(r#"{"type":"object","properties":{}}"#),
            "no arguments"
        );
    }
}
