//! Secrets and sensitive text through the real binary: a provider credential read from a file
//! reaches its upstream and nothing else (logs, `aigw check`); redaction patterns are applied to
//! conversation items and store entries before they reach the database, and to upstream text in
//! the log, the error and `/admin/targets`; at trace level no request body or credential is
//! logged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_memory::{Store, StoreOptions};
use aigw_tests::gateway::{Gateway, aigw};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::setup::{GROQ_KEY, Upstreams, plugins_section, provider_section};
use serde_json::{Value, json};

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

/// A social-security-number-like string, and the pattern that redacts it.
const SSN: &str = "123-45-6789";
const REDACTION: &str = "[redaction]\npatterns = ['\\b\\d{3}-\\d{2}-\\d{4}\\b']\n";
const MODELS: &str = "[models.fast]\ntargets = [\"local/ok\"]\n\
                      [models.echoing]\ntargets = [\"local/echo-error\"]\n";

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// `request` sent with the namespace header, its status and JSON body.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request
        .header("x-aigw-namespace", "tenant")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Every stored item and entry value, read from the database file by another process.
async fn stored_text(gateway: &Gateway) -> String {
    let db = gateway.config_path().parent().unwrap().join("aigw.db");
    let store = Store::open(StoreOptions::new(&db)).await.unwrap();
    store
        .read(|c| {
            Box::pin(async move {
                let mut all = String::new();
                for query in [
                    "SELECT item FROM conversation_items",
                    "SELECT value FROM entries",
                ] {
                    let mut rows = c.query(query, ()).await?;
                    while let Some(row) = rows.next().await? {
                        all.push_str(&row.get::<String>(0)?);
                        all.push('\n');
                    }
                }
                Ok(all)
            })
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn conversation_items_and_store_entries_are_redacted_before_they_are_stored() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(&format!("{MODELS}{REDACTION}")).await;
    let client = gateway.client();

    // An item written through the Conversations API.
    let (status, body) = send(
        client
            .post(gateway.url("/v1/conversations"))
            .json(&json!({"items": [user(&format!("my ssn is {SSN}"))]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let conversation = body["id"].as_str().unwrap().to_owned();
    let items_url = gateway.url(&format!("/v1/conversations/{conversation}/items?order=asc"));
    let (status, listed) = send(client.get(&items_url)).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["data"][0]["content"][0]["text"], "my ssn is [REDACTED]",
        "{listed}"
    );
    assert_eq!(listed["data"][0]["role"], "user");

    // A chat turn recorded in the conversation: the client's answer is relayed as the upstream
    // gave it; what is stored of the turn (its input and its answer) is redacted.
    let (status, answer) = send(
        client
            .post(gateway.url("/v1/chat/completions"))
            .header("x-aigw-conversation", &conversation)
            .json(&json!({"model": "fast", "messages": [
                {"role": "user", "content": format!("and hers is 987-65-4321, not {SSN}")}
            ]})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("987-65-4321"),
        "{answer}"
    );
    let (_, listed) = send(client.get(&items_url)).await;
    let texts: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "my ssn is [REDACTED]",
            "and hers is [REDACTED], not [REDACTED]",
            "mock reply to: and hers is [REDACTED], not [REDACTED]",
        ]
    );

    // A store entry's value, at any depth.
    let (status, body) = send(client.put(gateway.url("/v1/store/items")).json(&json!({
        "namespace": ["people"], "key": "alice",
        "value": {"ssn": SSN, "notes": [{"said": format!("ssn {SSN}")}], "age": 41},
    })))
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, entry) =
        send(client.get(gateway.url("/v1/store/items?namespace=people&key=alice"))).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(
        entry["value"],
        json!({"ssn": "[REDACTED]", "notes": [{"said": "ssn [REDACTED]"}], "age": 41})
    );

    // The database file never held them.
    let stored = stored_text(&gateway).await;
    assert!(stored.contains("[REDACTED]"), "{stored}");
    assert!(
        !stored.contains(SSN) && !stored.contains("987-65-4321"),
        "{stored}"
    );
    // Nor do its bytes (the table, the full-text index, the write-ahead log), which do hold the
    // redacted text.
    let dir = gateway.config_path().parent().unwrap();
    let holds = |bytes: &[u8], text: &str| bytes.windows(text.len()).any(|w| w == text.as_bytes());
    let mut redacted_seen = false;
    for file in ["aigw.db", "aigw.db-wal"] {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
        assert!(!holds(&bytes, SSN), "{file} holds the number");
        assert!(!holds(&bytes, "987-65-4321"), "{file} holds the number");
        redacted_seen |= holds(&bytes, "[REDACTED]");
    }
    assert!(redacted_seen, "the scan did not see the stored text");
}

#[tokio::test]
async fn upstream_text_echoing_a_pattern_is_redacted_in_the_log_the_error_and_admin() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway(&format!("{MODELS}{REDACTION}")).await;
    let (status, body) = send(gateway.client().post(gateway.url("/v1/chat/completions")).json(
        &json!({"model": "echoing", "messages": [{"role": "user", "content": format!("ssn {SSN}")}]}),
    ))
    .await;
    assert_eq!(status, 500, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("processing: ssn [REDACTED]"), "{message}");
    let line = gateway
        .wait_for_log(Duration::from_secs(10), |l| {
            l.contains("echo-error") && l.contains("attempts")
        })
        .await
        .unwrap_or_else(|| panic!("no request line\n{}", gateway.stderr()));
    assert!(line.contains("[REDACTED]"), "{line}");
    let targets = gateway.get("/admin/targets").await.text().await.unwrap();
    assert!(targets.contains("ssn [REDACTED]"), "{targets}");
    assert!(!targets.contains(SSN), "{targets}");
    assert!(!gateway.stderr().contains(SSN), "{}", gateway.stderr());
}

/// Text that must never reach the log: a request's body, and credentials.
const BODY_MARKER: &str = "BODY-MARKER-c41d9e";
const WRONG_KEY: &str = "wrong-CREDENTIAL-MARKER-51c0e7";

#[tokio::test]
async fn at_trace_level_no_request_body_or_credential_is_logged() {
    let upstreams = Upstreams::start().await;
    // A provider with a wrong key, which its upstream echoes in its 401 as OpenAI does.
    let echoing = MockUpstream::start(Flavor::OpenAi)
        .await
        .with_api_key("the-right-key-0000");
    let extra = provider_section(
        "wrongkey",
        "openai-compatible",
        &echoing,
        "api_key_file = \"wrong.key\"\n",
    );
    let config = upstreams.config(&format!("{extra}[models.fast]\ntargets = [\"groq/ok\"]\n"));
    let gateway = upstreams
        .gateway_builder()
        .env("AIGW_LOG", "trace")
        .file("wrong.key", WRONG_KEY)
        .start(&config)
        .await;
    let ask = |model: &str, stream: bool| {
        json!({"model": model, "stream": stream,
               "messages": [{"role": "user", "content": format!("tell {BODY_MARKER}")}]})
    };
    let ok = gateway.chat(&ask("fast", false)).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains(BODY_MARKER));
    let streamed = gateway.chat(&ask("fast", true)).await;
    assert_eq!(streamed.status(), 200);
    assert!(streamed.text().await.unwrap().contains("c41d9e"));
    let rejected = gateway.chat(&ask("wrongkey/ok", false)).await;
    assert_eq!(rejected.status(), 502);
    let error = rejected.text().await.unwrap();
    assert!(error.contains("Incorrect API key"), "{error}");
    assert!(!error.contains(WRONG_KEY), "{error}");
    let targets = gateway.get("/admin/targets").await.text().await.unwrap();
    assert!(!targets.contains(WRONG_KEY), "{targets}");
    assert_eq!(echoing.chat_requests().len(), 1);
    // Memory writes carry the body's text too.
    let (status, body) = send(
        gateway
            .client()
            .post(gateway.url("/v1/conversations"))
            .json(&json!({"items": [user(BODY_MARKER)]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let lines = gateway
        .wait_for_log_lines(Duration::from_secs(10), 3, |l| l.contains("attempts"))
        .await;
    assert_eq!(lines.len(), 3, "{}", gateway.stderr());
    let log = gateway.stderr();
    assert!(log.lines().count() > 100, "trace level is on: {log}");
    for (what, marker) in [
        ("the request body", BODY_MARKER),
        ("the body's text", "c41d9e"),
        ("the provider credential", GROQ_KEY),
        ("the echoed wrong credential", WRONG_KEY),
    ] {
        let leaked: Vec<&str> = log.lines().filter(|l| l.contains(marker)).take(3).collect();
        assert!(leaked.is_empty(), "{what} was logged: {leaked:#?}");
    }
}
