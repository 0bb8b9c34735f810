//! `/admin/plugins` and the plugins-directory watcher through the real binary: a plugin
//! replaced, rolled back, added and removed while the gateway serves; every kind of refused
//! upload leaving the old version serving; files written so a restart serves what was uploaded;
//! the admin key required.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, status_and_json};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::swap::{
    PluginDir, admin, as_wit_version, digest, get, models, plugin_bytes, provider, put,
    test_plugin_bytes,
};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// A gateway whose provider `chat` is translated by the plugin `chat` (the openai-compatible
/// build at first), at an OpenAI-flavoured mock.
async fn gateway(dir: &PluginDir, mock: &MockUpstream, watch_ms: u64, extra: &str) -> Gateway {
    Gateway::builder()
        .start(&config(dir, mock, watch_ms, extra))
        .await
}

fn config(dir: &PluginDir, mock: &MockUpstream, watch_ms: u64, extra: &str) -> String {
    format!(
        "{}{extra}\n{}\n[models.fast]\ntargets = [\"chat/ok\"]\n",
        dir.section(watch_ms),
        provider("chat", "chat", mock),
    )
}

/// A chat completion whose message carries `name`: the groq plugin drops it, the
/// openai-compatible one sends it on, so the mock tells which version translated.
fn ask() -> Value {
    json!({"model": "fast", "messages": [{"role": "user", "name": "probe", "content": "hi"}]})
}

/// Whether the last request the mock saw carried the message's `name` (openai-compatible) or
/// not (groq).
fn last_kept_name(mock: &MockUpstream) -> bool {
    let requests = mock.chat_requests();
    let last = requests.last().expect("a request reached the mock");
    last.body["messages"][0].get("name").is_some()
}

async fn chat_ok(gateway: &Gateway) {
    let (status, _, body) = status_and_json(gateway.chat(&ask()).await).await;
    assert_eq!(status, 200, "{body}\n{}", gateway.stderr());
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_key() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let dir = PluginDir::with(&[("chat", "openai-compatible")]);
    let gateway = Gateway::builder()
        .admin_key("sk-admin-swap-test")
        .start(&config(&dir, &mock, 0, ""))
        .await;
    let anonymous = gateway
        .client()
        .get(gateway.url("/admin/plugins"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let put_anonymous = gateway
        .client()
        .put(gateway.url("/admin/plugins/chat"))
        .body(plugin_bytes("groq"))
        .send()
        .await
        .unwrap();
    assert_eq!(put_anonymous.status(), 401);

    let (status, key) = admin(
        &gateway,
        Method::POST,
        "/admin/keys",
        Some(br#"{"name":"client"}"#.to_vec()),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap();
    let with_virtual_key = gateway
        .client()
        .get(gateway.url("/admin/plugins"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(with_virtual_key.status(), 403);

    let (status, list) = admin(&gateway, Method::GET, "/admin/plugins", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["object"], "list");
    let entry = &list["data"][0];
    assert_eq!(entry["name"], "chat");
    assert_eq!(entry["kind"], "provider");
    assert_eq!(entry["world"], "provider-plugin");
    assert_eq!(entry["wit_version"], "0.1.0");
    assert_eq!(entry["digest"], digest(&plugin_bytes("openai-compatible")));
    assert_eq!(
        entry["size_bytes"],
        plugin_bytes("openai-compatible").len() as u64
    );
    assert!(entry["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(
        entry["loaded_at"]
            .as_u64()
            .is_some_and(|t| t > 1_700_000_000)
    );
    assert_eq!(entry["used_by"], json!(["providers.chat"]));
    assert_eq!(entry["previous"], Value::Null);
}

#[tokio::test]
async fn refused_uploads_change_nothing_and_the_old_version_keeps_serving() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let dir = PluginDir::with(&[("chat", "openai-compatible")]);
    let gateway = gateway(&dir, &mock, 0, "max_upload_mib = 1\n").await;
    let original = digest(&plugin_bytes("openai-compatible"));

    // The 8-byte header of an empty core module.
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let rows: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "random bytes",
            b"this is not wasm at all".to_vec(),
            400,
            "invalid_plugin",
            "",
        ),
        (
            "a core module",
            core_module,
            400,
            "invalid_plugin",
            "core module",
        ),
        (
            "an unsupported WIT version",
            as_wit_version(&plugin_bytes("openai-compatible"), "0.2.0"),
            400,
            "invalid_plugin",
            "0.2.0",
        ),
        (
            "a plugin whose describe traps",
            test_plugin_bytes("describe-trap"),
            400,
            "invalid_plugin",
            "cannot describe itself",
        ),
        (
            "a tool plugin for a provider's plugin",
            plugin_bytes("weather"),
            409,
            "plugin_in_use",
            "providers.chat",
        ),
        (
            "a component past max_upload_mib",
            vec![0; 2 << 20],
            413,
            "plugin_too_large",
            "max_upload_mib",
        ),
        ("an empty body", Vec::new(), 400, "invalid_plugin", "empty"),
    ];
    for (what, bytes, want_status, want_code, mentions) in rows {
        let (status, body) = put(&gateway, "chat", bytes).await;
        assert_eq!(status, want_status, "{what}: {body}");
        assert_eq!(body["error"]["code"], want_code, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(mentions), "{what}: {message}");
        // Nothing changed: the loaded version, its file, and what serves.
        let (_, entry) = get(&gateway, "chat").await;
        assert_eq!(entry["digest"], original, "{what}");
        assert_eq!(entry["previous"], Value::Null, "{what}");
        assert_eq!(
            digest(&std::fs::read(dir.file("chat")).unwrap()),
            original,
            "{what}"
        );
        chat_ok(&gateway).await;
        assert!(last_kept_name(&mock), "{what}: the old version served");
    }

    let (status, body) = get(&gateway, "nothing-here").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "plugin_not_found");
    let (status, body) = admin(
        &gateway,
        Method::DELETE,
        "/admin/plugins/nothing-here",
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = admin(&gateway, Method::POST, "/admin/plugins/chat/rollback", None).await;
    assert_eq!(status, 409, "no previous version yet: {body}");
    let (status, _) = admin(&gateway, Method::POST, "/admin/plugins", None).await;
    assert_eq!(status, 405);
    let (status, body) = put(&gateway, "..", plugin_bytes("groq")).await;
    assert!(status == 400 || status == 404, "{status} {body}");
}

#[tokio::test]
async fn a_put_swaps_the_plugin_a_rollback_restores_it_and_a_restart_keeps_the_file() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let dir = PluginDir::with(&[("chat", "openai-compatible")]);
    let mut gateway = gateway(&dir, &mock, 0, "").await;
    let openai = plugin_bytes("openai-compatible");
    let groq = plugin_bytes("groq");
    chat_ok(&gateway).await;
    assert!(last_kept_name(&mock));
    assert!(
        !models(&gateway)
            .await
            .contains(&"chat/llama-3.1-8b-instant".to_owned())
    );

    // Replace: answered once the new version serves.
    let (status, entry) = put(&gateway, "chat", groq.clone()).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["digest"], digest(&groq));
    assert_eq!(entry["previous"]["digest"], digest(&openai));
    assert_eq!(entry["calls"], 0, "a new version has served nothing yet");
    chat_ok(&gateway).await;
    assert!(!last_kept_name(&mock), "the groq plugin translated");
    assert!(
        models(&gateway)
            .await
            .contains(&"chat/llama-3.1-8b-instant".to_owned()),
        "the new plugin's models are listed"
    );
    let (_, entry) = get(&gateway, "chat").await;
    assert!(
        entry["calls"].as_u64().unwrap() >= 2,
        "encode and decode: {entry}"
    );
    // Its file and the previous version's are on disk.
    assert_eq!(std::fs::read(dir.file("chat")).unwrap(), groq);
    assert_eq!(
        std::fs::read(dir.path().join(".previous/chat.wasm")).unwrap(),
        openai
    );
    // The same bytes again change nothing.
    let (status, entry) = put(&gateway, "chat", groq.clone()).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["previous"]["digest"], digest(&openai));

    // Roll back, and back again.
    let (status, entry) = admin(&gateway, Method::POST, "/admin/plugins/chat/rollback", None).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["digest"], digest(&openai));
    assert_eq!(entry["previous"]["digest"], digest(&groq));
    chat_ok(&gateway).await;
    assert!(
        last_kept_name(&mock),
        "the openai-compatible plugin serves again"
    );
    assert_eq!(std::fs::read(dir.file("chat")).unwrap(), openai);
    let (status, entry) = admin(&gateway, Method::POST, "/admin/plugins/chat/rollback", None).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["digest"], digest(&groq));
    let log = gateway
        .wait_for_log(WAIT, |l| {
            l.contains("plugin swapped") && l.contains("rollback")
        })
        .await;
    assert!(log.is_some(), "{}", gateway.stderr());

    // A plugin nothing uses yet: loaded, listed, removable; one in use is not.
    let (status, entry) = put(&gateway, "spare", plugin_bytes("weather")).await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["kind"], "tool");
    assert_eq!(entry["used_by"], json!([]));
    let (status, list) = admin(&gateway, Method::GET, "/admin/plugins", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["chat", "spare"]);
    let (status, body) = admin(&gateway, Method::DELETE, "/admin/plugins/chat", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "plugin_in_use");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("providers.chat")
    );
    let (status, body) = admin(&gateway, Method::DELETE, "/admin/plugins/spare", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&gateway, "spare").await.0, 404);
    assert!(!dir.file("spare").exists());
    assert!(dir.path().join(".previous/spare.wasm").exists());

    // A restart loads what was uploaded: the file was written.
    gateway.terminate().await;
    let restarted = self::gateway(&dir, &mock, 0, "").await;
    let (_, entry) = get(&restarted, "chat").await;
    assert_eq!(entry["digest"], digest(&groq));
    chat_ok(&restarted).await;
    assert!(!last_kept_name(&mock));
}

#[tokio::test]
async fn the_watched_directory_loads_new_files_swaps_changed_ones_and_refuses_broken_ones() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let dir = PluginDir::with(&[("chat", "openai-compatible")]);
    let gateway = gateway(&dir, &mock, 100, "").await;
    let groq = plugin_bytes("groq");

    // A new file: loaded and listed, though nothing uses it.
    dir.write("extra", &plugin_bytes("weather"));
    let loaded = gateway
        .wait_for_log(WAIT, |l| {
            l.contains("plugin swapped") && l.contains("extra")
        })
        .await;
    assert!(loaded.is_some(), "{}", gateway.stderr());
    let (status, entry) = get(&gateway, "extra").await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["kind"], "tool");

    // A changed file: the new version serves.
    dir.write("chat", &groq);
    let swapped = gateway
        .wait_for_log(WAIT, |l| {
            l.contains("plugin swapped") && l.contains("chat") && l.contains("file")
        })
        .await;
    assert!(swapped.is_some(), "{}", gateway.stderr());
    let (_, entry) = get(&gateway, "chat").await;
    assert_eq!(entry["digest"], digest(&groq));
    chat_ok(&gateway).await;
    assert!(!last_kept_name(&mock));

    // A broken file: refused with the reason, the loaded version keeps serving.
    dir.write("chat", b"\0asm\x01\0\0\0");
    let refused = gateway
        .wait_for_log(WAIT, |l| {
            l.contains("plugin file refused") && l.contains("chat")
        })
        .await
        .unwrap_or_else(|| panic!("no refusal logged:\n{}", gateway.stderr()));
    assert!(refused.contains("core module"), "{refused}");
    let (_, entry) = get(&gateway, "chat").await;
    assert_eq!(entry["digest"], digest(&groq));
    chat_ok(&gateway).await;

    // Removed: an unused plugin is unloaded, one in use keeps serving.
    std::fs::remove_file(dir.file("extra")).unwrap();
    let unloaded = gateway
        .wait_for_log(WAIT, |l| l.contains("unloaded") && l.contains("extra"))
        .await;
    assert!(unloaded.is_some(), "{}", gateway.stderr());
    assert_eq!(get(&gateway, "extra").await.0, 404);
    std::fs::remove_file(dir.file("chat")).unwrap();
    let warned = gateway
        .wait_for_log(WAIT, |l| {
            l.contains("plugin file removed") && l.contains("chat")
        })
        .await;
    assert!(warned.is_some(), "{}", gateway.stderr());
    chat_ok(&gateway).await;
    assert_eq!(get(&gateway, "chat").await.0, 200);
}
