//! MCP sessions on a real database file: a begun session is found until it expires (by the
//! store's clock), renewing moves its expiry, ending it needs its own key, a second store on the
//! same file (another process's view) finds what the first wrote, and beginning a session
//! deletes the expired ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aigw_memory::mcp_sessions::{self, McpSession};
use aigw_memory::{ManualClock, Store, StoreOptions};

const T0: i64 = 1_800_000_000_000;

fn temp_db(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aigw-mcp-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("aigw.db")
}

async fn open(path: &PathBuf, clock: &Arc<ManualClock>) -> Store {
    let mut options = StoreOptions::new(path);
    options.clock = clock.clone();
    Store::open(options).await.unwrap()
}

fn session(id: &str, key: &str, expires_at: i64) -> McpSession {
    McpSession {
        id: id.to_owned(),
        key_id: key.to_owned(),
        protocol_version: "2025-11-25".to_owned(),
        client: r#"{"clientInfo":{"name":"t","version":"1"}}"#.to_owned(),
        created_at: T0,
        expires_at,
    }
}

#[tokio::test]
async fn a_session_lives_until_it_expires_and_renewing_moves_that() {
    let path = temp_db("expiry");
    let clock = Arc::new(ManualClock::new(T0));
    let store = open(&path, &clock).await;
    mcp_sessions::begin(&store, session("s1", "key_a", T0 + 60_000))
        .await
        .unwrap();
    let found = mcp_sessions::find(&store, "s1").await.unwrap().unwrap();
    assert_eq!(found, session("s1", "key_a", T0 + 60_000));
    assert_eq!(mcp_sessions::find(&store, "s2").await.unwrap(), None);

    clock.advance(Duration::from_secs(50));
    assert!(
        mcp_sessions::renew(&store, "s1", T0 + 110_000)
            .await
            .unwrap()
    );
    clock.advance(Duration::from_secs(30));
    // 80 s in: past the first expiry, within the renewed one.
    let found = mcp_sessions::find(&store, "s1").await.unwrap().unwrap();
    assert_eq!(found.expires_at, T0 + 110_000);
    clock.advance(Duration::from_secs(30));
    assert_eq!(mcp_sessions::find(&store, "s1").await.unwrap(), None);
    // An expired session cannot be renewed back to life.
    assert!(
        !mcp_sessions::renew(&store, "s1", T0 + 500_000)
            .await
            .unwrap()
    );
    assert_eq!(mcp_sessions::find(&store, "s1").await.unwrap(), None);
}

#[tokio::test]
async fn only_its_key_ends_a_session_and_another_store_on_the_file_sees_it() {
    let path = temp_db("end");
    let clock = Arc::new(ManualClock::new(T0));
    let first = open(&path, &clock).await;
    let second = open(&path, &clock).await;
    mcp_sessions::begin(&first, session("s1", "key_a", T0 + 60_000))
        .await
        .unwrap();
    assert_eq!(
        mcp_sessions::find(&second, "s1")
            .await
            .unwrap()
            .unwrap()
            .key_id,
        "key_a"
    );
    assert!(!mcp_sessions::end(&second, "s1", "key_b").await.unwrap());
    assert!(mcp_sessions::find(&first, "s1").await.unwrap().is_some());
    assert!(mcp_sessions::end(&second, "s1", "key_a").await.unwrap());
    assert_eq!(mcp_sessions::find(&first, "s1").await.unwrap(), None);
    assert!(!mcp_sessions::end(&first, "s1", "key_a").await.unwrap());
}

#[tokio::test]
async fn beginning_a_session_deletes_expired_ones() {
    let path = temp_db("sweep");
    let clock = Arc::new(ManualClock::new(T0));
    let store = open(&path, &clock).await;
    for n in 0..3 {
        mcp_sessions::begin(&store, session(&format!("old{n}"), "k", T0 + 1_000))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(2));
    mcp_sessions::begin(&store, session("new", "k", T0 + 600_000))
        .await
        .unwrap();
    let rows = store
        .read(|c| {
            Box::pin(async move {
                let mut rows = c.query("SELECT id FROM mcp_sessions", ()).await?;
                let mut ids = Vec::new();
                while let Some(row) = rows.next().await? {
                    ids.push(row.get::<String>(0)?);
                }
                Ok(ids)
            })
        })
        .await
        .unwrap();
    assert_eq!(rows, ["new"]);
}
