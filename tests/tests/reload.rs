//! Config reload through the real binary: on SIGHUP and when the file changes, a valid config's
//! new routes serve without a restart; a bad one is refused with its file:line error and the
//! running one keeps serving; a section that needs a restart is named and keeps its value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, status_and_json};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::swap::{PluginDir, provider};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn config(dir: &PluginDir, mock: &MockUpstream, watch_ms: u64, rest: &str) -> String {
    format!(
        "{}\n{}\n[models.fast]\ntargets = [\"chat/ok\"]\n{rest}",
        dir.section(watch_ms),
        provider("chat", "chat", mock),
    )
}

async fn status_of(gateway: &Gateway, model: &str) -> u16 {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    status_and_json(gateway.chat(&body).await).await.0
}

fn rewrite(gateway: &Gateway, text: &str) {
    std::fs::write(gateway.config_path(), text).unwrap();
}

#[tokio::test]
async fn sighup_reloads_the_config_and_a_new_route_serves() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let dir = PluginDir::with(&[("chat", "openai-compatible")]);
    // Not watched: only the signal reloads.
    let gateway = Gateway::start(&config(&dir, &mock, 0, "")).await;
    assert_eq!(status_of(&gateway, "second").await, 404);

    rewrite(
        &gateway,
        &config(&dir, &mock, 0, "[models.second]\ntargets = [\"chat/ok\"]\n"),
    );
    gateway.signal("HUP").await;
    let reloaded = gateway
        .wait_for_log(WAIT, |l| l.contains("config reloaded"))
        .await;
    assert!(reloaded.is_some(), "{}", gateway.stderr());
    assert_eq!(status_of(&gateway, "second").await, 200);
    assert_eq!(status_of(&gateway, "fast").await, 200);
    // The plugin was not loaded again: it was in the registry.
    assert_eq!(
        gateway.stderr().matches("plugin loaded").count(),
        1,
        "{}",
        gateway.stderr()
    );
}

#[tokio::test]
async fn a_bad_config_is_refused_with_its_place_and_the_running_one_serves() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let dir = PluginDir::with(&[("chat", "openai-compatible")]);
    let gateway = Gateway::start(&config(&dir, &mock, 100, "")).await;

    // Line 11 of the file: the unknown key.
    let bad = config(
        &dir,
        &mock,
        100,
        "[models.second]\ntargets = [\"chat/ok\"]\ntargts = 1\n",
    );
    let line = bad.lines().position(|l| l.starts_with("targts")).unwrap() + 1;
    rewrite(&gateway, &bad);
    let refused = gateway
        .wait_for_log(WAIT, |l| l.contains("config reload refused"))
        .await
        .unwrap_or_else(|| panic!("no refusal logged:\n{}", gateway.stderr()));
    let place = format!("aigw.toml:{line}:");
    assert!(refused.contains(&place), "{place} in {refused}");
    assert!(refused.contains("targts"), "{refused}");
    assert_eq!(status_of(&gateway, "fast").await, 200);
    assert_eq!(status_of(&gateway, "second").await, 404);

    // A provider whose plugin cannot be loaded is refused the same way.
    rewrite(
        &gateway,
        &format!(
            "{}\n[providers.other]\nplugin = \"missing-plugin\"\n",
            config(&dir, &mock, 100, "")
        ),
    );
    let refused = gateway
        .wait_for_log(WAIT, |l| {
            l.contains("config reload refused") && l.contains("missing-plugin")
        })
        .await;
    assert!(refused.is_some(), "{}", gateway.stderr());
    assert_eq!(status_of(&gateway, "fast").await, 200);
}

#[tokio::test]
async fn a_section_that_needs_a_restart_is_named_and_keeps_its_running_value() {
    let mock = MockUpstream::start(Flavor::OpenAi).await;
    let dir = PluginDir::with(&[("chat", "openai-compatible")]);
    let gateway = Gateway::start(&config(&dir, &mock, 100, "")).await;

    let changed = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\n\n{}",
        config(
            &dir,
            &mock,
            100,
            "[models.second]\ntargets = [\"chat/ok\"]\n"
        )
    );
    rewrite(&gateway, &changed);
    let warned = gateway
        .wait_for_log(WAIT, |l| l.contains("need a restart"))
        .await
        .unwrap_or_else(|| panic!("no warning:\n{}", gateway.stderr()));
    assert!(warned.contains("[server]"), "{warned}");
    assert!(!warned.contains("[plugins]"), "{warned}");
    let reloaded = gateway
        .wait_for_log(WAIT, |l| l.contains("config reloaded"))
        .await;
    assert!(reloaded.is_some(), "{}", gateway.stderr());
    // The rest applied; the gateway still answers where it listened.
    assert_eq!(status_of(&gateway, "second").await, 200);
}
