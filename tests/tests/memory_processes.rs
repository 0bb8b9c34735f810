//! The memory store under real processes: three gateways writing to one database file at once,
//! `kill -9` of a gateway in the middle of a write load (every acknowledged item is there after
//! the restart), a disk that fills up (`prlimit --fsize`: writes answer 503, the gateway keeps
//! serving, nothing acknowledged is lost, the file stays intact) and a file another process holds
//! locked (503 while it is held, writable after). All through the Conversations HTTP API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aigw_tests::gateway::Gateway;
use aigw_tests::setup::{Upstreams, toml_str};
use serde_json::{Value, json};

/// The config of a gateway whose store is `db` (shared by several gateways).
fn config(upstreams: &Upstreams, db: &Path, extra: &str) -> String {
    upstreams.config(&format!(
        "[memory]\npath = {}\nbusy_timeout_ms = 5000\n{extra}",
        toml_str(&db.to_string_lossy())
    ))
}

async fn create_conversation(gateway: &Gateway) -> String {
    let response = gateway
        .client()
        .post(gateway.url("/v1/conversations"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", gateway.stderr());
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// Appends one user message; the HTTP status and the stored item's id if it was acknowledged.
async fn append(
    client: &reqwest::Client,
    base: &str,
    conversation: &str,
    text: &str,
) -> Result<(u16, Option<String>), reqwest::Error> {
    let response = client
        .post(format!("{base}/v1/conversations/{conversation}/items"))
        .json(&json!({"items": [{"type": "message", "role": "user", "content": text}]}))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    let id = (status == 200).then(|| body["data"][0]["id"].as_str().unwrap().to_owned());
    Ok((status, id))
}

/// Every item of the conversation, oldest first: (id, text).
async fn items(gateway: &Gateway, conversation: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("/v1/conversations/{conversation}/items?order=asc&limit=100");
        if let Some(after) = &after {
            url.push_str(&format!("&after={after}"));
        }
        let response = gateway.get(&url).await;
        assert_eq!(response.status(), 200, "{}", gateway.stderr());
        let page: Value = response.json().await.unwrap();
        for item in page["data"].as_array().unwrap() {
            out.push((
                item["id"].as_str().unwrap().to_owned(),
                item["content"][0]["text"].as_str().unwrap().to_owned(),
            ));
        }
        if page["has_more"] != true {
            return out;
        }
        after = page["last_id"].as_str().map(str::to_owned);
    }
}

#[tokio::test]
async fn three_gateways_on_one_file_write_together_and_lose_nothing() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let config = config(&upstreams, &db, "");
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(upstreams.gateway_builder().start(&config).await);
    }
    let conversation = create_conversation(&gateways[0]).await;

    // 3 processes × 8 writers × 15 appends, all at once, to one conversation.
    let mut writers = Vec::new();
    for (g, gateway) in gateways.iter().enumerate() {
        for w in 0..8 {
            let client = gateway.client().clone();
            let base = gateway.url("");
            let conversation = conversation.clone();
            writers.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..15 {
                    let (status, id) =
                        append(&client, &base, &conversation, &format!("g{g} w{w} n{n}"))
                            .await
                            .unwrap();
                    assert_eq!(status, 200, "gateway {g} writer {w} append {n}");
                    ids.push(id.unwrap());
                }
                ids
            }));
        }
    }
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 3 * 8 * 15);

    // Every gateway sees every item, once, in the same order; each writer's own in its order.
    let mut seen = Vec::new();
    for gateway in &gateways {
        seen.push(items(gateway, &conversation).await);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    let ids: HashSet<&String> = seen[0].iter().map(|(id, _)| id).collect();
    assert_eq!(
        ids.len(),
        acknowledged.len(),
        "an item is missing or doubled"
    );
    for id in &acknowledged {
        assert!(ids.contains(id), "acknowledged item {id} is not there");
    }
    let mut last: HashMap<String, u32> = HashMap::new();
    for (_, text) in &seen[0] {
        let (writer, n) = text.rsplit_once(" n").unwrap();
        let n: u32 = n.parse().unwrap();
        if let Some(previous) = last.insert(writer.to_owned(), n) {
            assert!(previous < n, "{writer}: n{n} stored before n{previous}");
        }
    }
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_write_load_keeps_every_acknowledged_item() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let config = config(&upstreams, &db, "");
    let mut gateway = upstreams.gateway_builder().start(&config).await;
    let conversation = create_conversation(&gateway).await;

    // 16 writers append until the gateway dies under them.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (enough_tx, enough) = tokio::sync::watch::channel(0usize);
    let enough_tx = Arc::new(enough_tx);
    let mut writers = Vec::new();
    for w in 0..16 {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let base = gateway.url("");
        let conversation = conversation.clone();
        let acknowledged = Arc::clone(&acknowledged);
        let enough_tx = Arc::clone(&enough_tx);
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                match append(&client, &base, &conversation, &format!("w{w} n{n}")).await {
                    Ok((200, Some(id))) => {
                        let count = {
                            let mut acked = acknowledged.lock().unwrap();
                            acked.push(id);
                            acked.len()
                        };
                        enough_tx.send_replace(count);
                    }
                    // The gateway is gone: this write may or may not have been made.
                    _ => return,
                }
            }
        }));
    }
    // Kill once the load is well under way (at least 300 acknowledged), mid-stream of writes.
    let mut enough = enough;
    enough.wait_for(|count| *count >= 300).await.unwrap();
    gateway.kill().await;
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let restarted = upstreams.gateway_builder().start(&config).await;
    let stored: HashSet<String> = items(&restarted, &conversation)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged items lost after kill -9: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    // The restarted gateway writes on.
    let (status, _) = append(
        restarted.client(),
        &restarted.url(""),
        &conversation,
        "after",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_full_disk_answers_503_keeps_serving_and_loses_nothing() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("full.db");
    let config = config(&upstreams, &db, "");
    // Files may not grow past 3 MiB: the database and its WAL fill up after a few appends.
    let gateway = upstreams
        .gateway_builder()
        .max_file_size(3 << 20)
        .start(&config)
        .await;
    let conversation = create_conversation(&gateway).await;
    let big = "x".repeat(200 << 10);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 0..60 {
        let (status, id) = append(
            gateway.client(),
            &gateway.url(""),
            &conversation,
            &format!("{n} {big}"),
        )
        .await
        .unwrap();
        match status {
            200 => acknowledged.push(id.unwrap()),
            503 => {
                refused = Some(n);
                break;
            }
            other => panic!("append {n}: {other}\n{}", gateway.stderr()),
        }
    }
    assert!(
        refused.is_some(),
        "the disk never filled: {} appends",
        acknowledged.len()
    );
    assert!(!acknowledged.is_empty());
    // Still serving: reads work, and so does the error shape.
    let stored: Vec<String> = items(&gateway, &conversation)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(stored, acknowledged);
    let response = gateway
        .client()
        .post(gateway.url(&format!("/v1/conversations/{conversation}/items")))
        .json(&json!({"items": [{"type": "message", "role": "user", "content": big}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "memory_unavailable");
    drop(gateway);

    // With room again, the same file opens, holds every acknowledged item, and takes writes.
    let gateway = upstreams.gateway_builder().start(&config).await;
    let stored: Vec<String> = items(&gateway, &conversation)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(stored, acknowledged);
    let (status, _) = append(
        gateway.client(),
        &gateway.url(""),
        &conversation,
        "room again",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    drop(gateway);
    let check = std::process::Command::new(aigw_tests::paths::python())
        .args([
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
}

#[tokio::test]
async fn a_file_locked_by_another_process_answers_503_then_takes_writes() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let config = upstreams.config(&format!(
        "[memory]\npath = {}\nbusy_timeout_ms = 200\n",
        toml_str(&db.to_string_lossy())
    ));
    let gateway = upstreams.gateway_builder().start(&config).await;
    let conversation = create_conversation(&gateway).await;
    let (status, first) = append(gateway.client(), &gateway.url(""), &conversation, "first")
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Another process takes the write lock and holds it until told to let go.
    let mut holder = tokio::process::Command::new(aigw_tests::paths::python())
        .args([
            "-c",
            "import sqlite3,sys\n\
             c=sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('locked', flush=True)\n\
             sys.stdin.readline()\n\
             c.execute('ROLLBACK')\n",
        ])
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
        .await
        .unwrap();
    assert_eq!(line.trim(), "locked");

    let (status, _) = append(
        gateway.client(),
        &gateway.url(""),
        &conversation,
        "while locked",
    )
    .await
    .unwrap();
    assert_eq!(status, 503, "{}", gateway.stderr());
    // Reads do not wait for the lock.
    let stored = items(&gateway, &conversation).await;
    assert_eq!(stored.len(), 1);

    let mut stdin = holder.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"go\n")
        .await
        .unwrap();
    drop(stdin);
    holder.wait().await.unwrap();
    let (status, second) = append(gateway.client(), &gateway.url(""), &conversation, "after")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let stored: Vec<Option<String>> = items(&gateway, &conversation)
        .await
        .into_iter()
        .map(|(id, _)| Some(id))
        .collect();
    assert_eq!(stored, vec![first, second]);
}
