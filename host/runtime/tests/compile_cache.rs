//! The on-disk compile cache: a first load compiles and writes an entry (a miss), a second
//! runtime on the same directory reads it back (a hit) and serves the same plugin, garbled
//! entries are compiled again rather than trusted, and a directory that cannot be used leaves
//! the runtime compiling without a cache instead of failing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aigw_runtime::{
    CacheStats, Limits, Plugin, PluginTarget, Runtime, RuntimeOptions, Step, ToolPlugin,
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

fn runtime(cache: &Path) -> Arc<Runtime> {
    Runtime::configure(RuntimeOptions {
        limits: limits(),
        compile_cache: Some(cache.to_owned()),
        ..RuntimeOptions::default()
    })
    .unwrap()
}

/// A fresh directory of this test binary's own.
fn fresh(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&dir);
    dir
}

/// Every file under `dir` (wasmtime's entries and its own bookkeeping).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

const REQUEST: &str = r#"{"model":"alias","messages":[{"role":"user","content":"hi"}]}"#;

/// The plugin serves: an encode and a decode on a warm instance.
async fn serves(plugin: &Plugin) {
    let target = PluginTarget::new("http://127.0.0.1:9/openai/v1", "llama");
    let request = plugin.encode(&target, REQUEST).await.unwrap();
    assert!(
        request.url.ends_with("/chat/completions"),
        "{}",
        request.url
    );
    let body = br#"{"id":"c","object":"chat.completion","created":1,"model":"llama","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
    let step = plugin
        .decode(
            &target,
            aigw_runtime::HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_vec(),
            },
        )
        .await
        .unwrap();
    assert!(matches!(step, Step::Done(_)), "{step:?}");
    assert_eq!(plugin.calls(), 2);
}

#[tokio::test]
async fn a_second_runtime_on_the_same_directory_hits_and_serves_the_same_plugin() {
    let dir = fresh("aigw-cache-hit");
    let groq = paths::built("plugins/groq.wasm");

    let first = runtime(&dir);
    let cold = Plugin::load(&first, &groq).await.unwrap();
    assert_eq!(first.cache_stats(), CacheStats { hits: 0, misses: 1 });
    assert_eq!(first.compile_cache_dir(), Some(dir.as_path()));
    assert!(
        !files(&dir).is_empty(),
        "no entry written under {}",
        dir.display()
    );
    serves(&cold).await;

    let second = runtime(&dir);
    let warm = Plugin::load(&second, &groq).await.unwrap();
    assert_eq!(second.cache_stats(), CacheStats { hits: 1, misses: 0 });
    assert_eq!(warm.descriptor(), cold.descriptor());
    assert_eq!(warm.facts(), cold.facts());
    serves(&warm).await;

    // Another component is another entry: the key is the bytes, not the file name.
    let weather = ToolPlugin::load(&second, &paths::built("plugins/weather.wasm"))
        .await
        .unwrap();
    assert_eq!(weather.descriptor().name, "weather");
    assert_eq!(second.cache_stats(), CacheStats { hits: 1, misses: 1 });
}

#[tokio::test]
async fn garbled_entries_are_compiled_again_and_the_plugin_serves() {
    let dir = fresh("aigw-cache-garbled");
    let groq = paths::built("plugins/groq.wasm");
    Plugin::load(&runtime(&dir), &groq).await.unwrap();
    let written = files(&dir);
    assert!(!written.is_empty());
    for (i, file) in written.iter().enumerate() {
        // Half the files random-looking, half cut short: both kinds of damage a disk does.
        let len = std::fs::metadata(file).unwrap().len() as usize;
        let garbage: Vec<u8> = if i % 2 == 0 {
            (0..len.max(64))
                .map(|n| (n as u8).wrapping_mul(31) ^ 0x5a)
                .collect()
        } else {
            b"(\xb5/\xfd".to_vec()
        };
        std::fs::write(file, garbage).unwrap();
    }

    let again = runtime(&dir);
    let plugin = Plugin::load(&again, &groq).await.unwrap();
    assert_eq!(again.cache_stats(), CacheStats { hits: 0, misses: 1 });
    serves(&plugin).await;

    // The rewritten entry is good again.
    let third = runtime(&dir);
    Plugin::load(&third, &groq).await.unwrap();
    assert_eq!(third.cache_stats(), CacheStats { hits: 1, misses: 0 });
}

#[tokio::test]
async fn a_cache_directory_that_is_a_file_leaves_the_runtime_compiling_without_one() {
    let file = fresh("aigw-cache-is-a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let runtime = runtime(&file);
    assert_eq!(runtime.compile_cache_dir(), None);
    let plugin = Plugin::load(&runtime, &paths::built("plugins/groq.wasm"))
        .await
        .unwrap();
    serves(&plugin).await;
    assert_eq!(runtime.cache_stats(), CacheStats::default());
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[tokio::test]
async fn without_a_cache_directory_nothing_is_counted() {
    let runtime = Runtime::new(limits()).unwrap();
    Plugin::load(&runtime, &paths::built("plugins/groq.wasm"))
        .await
        .unwrap();
    assert_eq!(runtime.compile_cache_dir(), None);
    assert_eq!(runtime.cache_stats(), CacheStats::default());
}
