//! Secrets through the real binary: a provider credential read from a file reaches its upstream
//! and nothing else (logs, `aigw check`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, aigw};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::setup::{plugins_section, provider_section};
use serde_json::json;

/// The credential in the file; the mock accepts only it.
const FILED_KEY: &str = "gsk_from_FILE_8d2c61e0b4a9";

#[tokio::test]
async fn a_credential_from_a_file_reaches_the_upstream_and_is_not_logged() {
    let groq = MockUpstream::start(Flavor::Groq)
        .await
        .with_api_key(FILED_KEY);
    let config = format!(
        "{}\n{}[models.fast]\ntargets = [\"groq/ok\"]\n",
        plugins_section(),
        provider_section("groq", "groq", &groq, "api_key_file = \"secrets/groq\"\n"),
    );
    let gateway = Gateway::builder()
        .env("AIGW_LOG", "debug")
        .file("secrets/groq", format!("{FILED_KEY}\n"))
        .start(&config)
        .await;
    let response = gateway
        .chat(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let seen = groq.chat_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {FILED_KEY}").as_str()),
        "the file's contents without the newline"
    );
    gateway
        .wait_for_log(Duration::from_secs(10), |l| l.contains("attempts"))
        .await
        .expect("the request's log line");
    assert!(
        !gateway.stderr().contains(FILED_KEY),
        "{}",
        gateway.stderr()
    );

    // `aigw check` says the credential is set, and does not print it.
    let output = aigw(["check", "--config", gateway.config_path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("credential set"), "{stdout}");
    assert!(
        !stdout.contains(FILED_KEY) && !String::from_utf8_lossy(&output.stderr).contains(FILED_KEY)
    );
}
