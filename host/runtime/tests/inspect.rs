//! What `inspect` reads from a component without compiling it, and what `load` refuses because
//! of it: every built plugin's world, WIT version and imports; and, one line each, bytes that
//! are not wasm, a core module, a component of another package, both worlds at once, an
//! unsupported version (fixtures written as WAT text here), and a plugin whose `describe` traps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_runtime::{
    Limits, LoadedPlugin, Plugin, Runtime, RuntimeOptions, SUPPORTED_WIT_VERSIONS, ToolPlugin,
    WorldKind, inspect, load,
};
use aigw_tests::paths;

fn limits() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(500),
        memory_bytes: 32 << 20,
        warm_instances: 1,
        max_instances: 50,
        ..Limits::default()
    }
}

/// The bundled tool plugins (`plugins/tools/*`); every other bundled plugin is a provider.
const TOOLS: &[&str] = &["news", "search", "stocks", "weather"];

/// A component exporting an empty instance under each of `exports`.
fn component_exporting(exports: &[&str]) -> Vec<u8> {
    let mut text = String::from("(component\n  (instance $empty)\n");
    for name in exports {
        text.push_str(&format!("  (export \"{name}\" (instance $empty))\n"));
    }
    text.push(')');
    wat::parse_str(&text).unwrap()
}

#[test]
fn every_built_plugin_is_read_as_its_world_at_version_0_1_0() {
    let mut plugins: Vec<_> = std::fs::read_dir(paths::plugins_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    plugins.sort();
    assert!(plugins.len() >= 10, "{plugins:?}");
    for path in plugins {
        let bytes = std::fs::read(&path).unwrap();
        let facts = inspect(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let (world, export) = if TOOLS.contains(&stem) {
            (WorldKind::Tool, "aigw:plugin/tool@0.1.0")
        } else {
            (WorldKind::Provider, "aigw:plugin/provider@0.1.0")
        };
        assert_eq!(facts.world, world, "{stem}");
        assert_eq!(facts.wit_version, "0.1.0", "{stem}");
        assert_eq!(facts.exports, [export], "{stem}");
        assert_eq!(facts.size_bytes, bytes.len());
        assert_eq!(facts.digest, aigw_runtime::digest(&bytes));
        assert!(facts.digest.starts_with("sha256:") && facts.digest.len() == 7 + 64);
        let aigw: Vec<&str> = facts
            .imports
            .iter()
            .map(String::as_str)
            .filter(|i| i.starts_with("aigw:"))
            .collect();
        if world == WorldKind::Provider {
            // Invariant 1: a provider reaches nothing but the host's log (and WASI, empty); one that
            // never logs does not even import that.
            assert!(
                aigw.iter()
                    .all(|i| *i == "aigw:plugin/log@0.1.0" || *i == "aigw:plugin/types@0.1.0"),
                "{stem}: {aigw:?}"
            );
        } else {
            assert!(
                aigw.contains(&"aigw:plugin/outbound@0.1.0"),
                "{stem}: {aigw:?}"
            );
        }
        for import in &facts.imports {
            assert!(
                import.starts_with("aigw:plugin/") || import.starts_with("wasi:"),
                "{stem}: {import}"
            );
            if import.starts_with("wasi:") {
                assert!(import.contains("@0.2."), "{stem}: {import}");
            }
        }
    }
}

#[test]
fn the_supported_versions_are_the_one_in_wit() {
    assert_eq!(SUPPORTED_WIT_VERSIONS, ["0.1.0"]);
    let worlds = std::fs::read_to_string(paths::workspace_root().join("wit/worlds.wit")).unwrap();
    assert!(worlds.contains("package aigw:plugin@0.1.0;"), "{worlds}");
}

#[test]
fn bytes_that_are_not_a_component_are_refused_saying_what_they_are() {
    assert_eq!(
        inspect(b"").unwrap_err(),
        "not a WebAssembly component: the file is empty"
    );
    assert_eq!(
        inspect(b"{\"model\": \"gpt\"}").unwrap_err(),
        "not a WebAssembly component: no wasm header (is it a .wasm file?)"
    );
    let truncated = &component_exporting(&["aigw:plugin/provider@0.1.0"])[..12];
    let error = inspect(truncated).unwrap_err();
    assert!(
        error.starts_with("not a valid WebAssembly component:"),
        "{error}"
    );
    let core = wat::parse_str("(module (func (export \"run\")))").unwrap();
    assert_eq!(
        inspect(&core).unwrap_err(),
        "not a WebAssembly component (a core module: build for wasm32-wasip2 / componentize it)"
    );
}

#[test]
fn a_component_of_another_package_or_of_both_worlds_is_refused() {
    let other = component_exporting(&["acme:plugins/provider@0.1.0"]);
    assert_eq!(
        inspect(&other).unwrap_err(),
        "exports neither aigw:plugin/provider nor aigw:plugin/tool \
         (exports: acme:plugins/provider@0.1.0)"
    );
    let nothing = component_exporting(&[]);
    assert_eq!(
        inspect(&nothing).unwrap_err(),
        "exports neither aigw:plugin/provider nor aigw:plugin/tool (exports: nothing)"
    );
    let both = component_exporting(&["aigw:plugin/provider@0.1.0", "aigw:plugin/tool@0.1.0"]);
    assert_eq!(
        inspect(&both).unwrap_err(),
        "exports both aigw:plugin/provider and aigw:plugin/tool: a plugin implements one world"
    );
    // A well-formed provider export alone is accepted: the refusals above are about the names.
    let provider = inspect(&component_exporting(&["aigw:plugin/provider@0.1.0"])).unwrap();
    assert_eq!(provider.world, WorldKind::Provider);
    assert!(provider.imports.is_empty());
}

#[test]
fn imports_the_world_does_not_offer_are_refused_by_name() {
    let importing = |import: &str| {
        wat::parse_str(format!(
            "(component
               (import \"{import}\" (instance $i))
               (instance $empty)
               (export \"aigw:plugin/provider@0.1.0\" (instance $empty)))"
        ))
        .unwrap()
    };
    assert_eq!(
        inspect(&importing("aigw:plugin/outbound@0.1.0")).unwrap_err(),
        "a provider plugin may import only aigw:plugin/{types,log} and WASI; it imports \
         aigw:plugin/outbound@0.1.0"
    );
    assert_eq!(
        inspect(&importing("aigw:plugin/log@0.2.0")).unwrap_err(),
        "imports aigw:plugin/log@0.2.0 but exports aigw:plugin/provider@0.1.0: one package \
         version per plugin"
    );
    assert_eq!(
        inspect(&importing("wasi:http/outgoing-handler@0.3.0")).unwrap_err(),
        "imports wasi:http/outgoing-handler@0.3.0; this gateway provides WASI 0.2.x"
    );
    assert_eq!(
        inspect(&importing("acme:kv/store@1.0.0")).unwrap_err(),
        "imports acme:kv/store@1.0.0, which this gateway does not provide (only aigw:plugin \
         and WASI 0.2.x)"
    );
    // Any WASI 0.2 patch release is accepted.
    let facts = inspect(&importing("wasi:cli/stdin@0.2.9")).unwrap();
    assert_eq!(facts.imports, ["wasi:cli/stdin@0.2.9"]);
}

#[tokio::test]
async fn an_unsupported_version_is_refused_by_load_before_anything_is_compiled() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("aigw-inspect-version");
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = Runtime::configure(RuntimeOptions {
        limits: limits(),
        compile_cache: Some(dir.clone()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let newer = component_exporting(&["aigw:plugin/provider@0.2.0"]);
    assert_eq!(
        inspect(&newer).unwrap_err(),
        "built against aigw:plugin@0.2.0; this gateway supports 0.1.0"
    );
    let error = load(&runtime, "upload next", newer.clone())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "plugin upload next: built against aigw:plugin@0.2.0; this gateway supports 0.1.0"
    );
    let error = Plugin::from_bytes(&runtime, "upload next", newer)
        .await
        .err()
        .unwrap();
    assert_eq!(error.label, "upload next");

    // The wrong world is refused by its exports too: a 700 KB provider offered as a tool.
    let groq = std::fs::read(paths::built("plugins/groq.wasm")).unwrap();
    let error = ToolPlugin::from_bytes(&runtime, "upload groq", groq)
        .await
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "plugin upload groq: is a provider plugin (it exports aigw:plugin/provider@0.1.0), not \
         a tool plugin"
    );
    // Nothing reached the compiler: it would have written a cache entry.
    assert_eq!(runtime.cache_stats().misses, 0);
    assert_eq!(runtime.cache_stats().hits, 0);
}

#[tokio::test]
async fn load_picks_the_world_from_the_bytes() {
    let runtime = Runtime::new(limits()).unwrap();
    let groq = std::fs::read(paths::built("plugins/groq.wasm")).unwrap();
    let digest = aigw_runtime::digest(&groq);
    let loaded = load(&runtime, "upload groq", groq).await.unwrap();
    assert!(matches!(loaded, LoadedPlugin::Provider(_)), "{loaded:?}");
    assert_eq!(loaded.kind(), WorldKind::Provider);
    assert_eq!(loaded.name(), "groq");
    assert!(!loaded.version().is_empty());
    assert_eq!(loaded.facts().digest, digest);
    assert_eq!(loaded.calls(), 0);

    let weather = std::fs::read(paths::built("plugins/weather.wasm")).unwrap();
    let loaded = load(&runtime, "dist/plugins/weather.wasm", weather)
        .await
        .unwrap();
    let LoadedPlugin::Tool(tool) = &loaded else {
        panic!("{loaded:?}");
    };
    assert_eq!(loaded.kind().world(), "tool-plugin");
    assert_eq!(loaded.name(), tool.descriptor().name);
    // A tool plugin is named in logs by its file, as before.
    assert_eq!(tool.name(), "weather");
}

#[tokio::test]
async fn a_plugin_whose_describe_traps_is_refused_with_the_trap_and_the_runtime_goes_on() {
    let runtime = Runtime::new(limits()).unwrap();
    let path = paths::built("test-plugins/describe-trap.wasm");
    // It is a provider plugin by its exports: inspect cannot tell; only describing shows it.
    let facts = inspect(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(facts.world, WorldKind::Provider);
    let error = Plugin::load(&runtime, &path).await.err().unwrap();
    assert_eq!(error.label, path.display().to_string());
    assert!(
        error.message.starts_with("describe failed:")
            && error
                .message
                .contains("describe-trap: this plugin cannot describe itself"),
        "{}",
        error.message
    );
    // The same runtime still loads and serves other plugins.
    let groq = Plugin::load(&runtime, &paths::built("plugins/groq.wasm"))
        .await
        .unwrap();
    assert_eq!(groq.descriptor().name, "groq");
}
