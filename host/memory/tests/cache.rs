//! The shared cache on a real database file: an answer is served until its TTL passes by the
//! store's clock (never after, swept or not), a put replaces, a zero TTL keeps nothing, and
//! scopes and keys are apart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aigw_memory::cache::{get, put, sweep_expired};
use aigw_memory::{ManualClock, Store, StoreOptions};

fn temp_db(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aigw-cache-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("aigw.db")
}

async fn store(name: &str, clock: Arc<ManualClock>) -> Store {
    let mut options = StoreOptions::new(temp_db(name));
    options.clock = clock;
    Store::open(options).await.unwrap()
}

#[tokio::test]
async fn an_answer_is_served_until_it_expires_and_then_swept() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = store("served", Arc::clone(&clock)).await;
    put(
        &store,
        "tool:a",
        "k1",
        b"{\"x\":1}".to_vec(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let got = get(&store, "tool:a", "k1").await.unwrap().unwrap();
    assert_eq!(got.value, b"{\"x\":1}");
    assert_eq!(got.expires_at_ms - got.created_at_ms, 10_000);
    // Another scope or key is another answer.
    assert!(get(&store, "tool:b", "k1").await.unwrap().is_none());
    assert!(get(&store, "tool:a", "k2").await.unwrap().is_none());
    clock.advance(Duration::from_millis(9_999));
    assert!(get(&store, "tool:a", "k1").await.unwrap().is_some());
    clock.advance(Duration::from_millis(1));
    assert!(
        get(&store, "tool:a", "k1").await.unwrap().is_none(),
        "expired, unswept"
    );
    assert_eq!(sweep_expired(&store).await.unwrap(), 1);
    assert_eq!(sweep_expired(&store).await.unwrap(), 0);
}

#[tokio::test]
async fn a_put_replaces_and_a_zero_ttl_keeps_nothing() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = store("replaced", Arc::clone(&clock)).await;
    put(&store, "s", "k", b"1".to_vec(), Duration::from_secs(1))
        .await
        .unwrap();
    clock.advance(Duration::from_millis(500));
    put(&store, "s", "k", b"2".to_vec(), Duration::from_secs(1))
        .await
        .unwrap();
    clock.advance(Duration::from_millis(900));
    assert_eq!(get(&store, "s", "k").await.unwrap().unwrap().value, b"2");
    put(&store, "s", "zero", b"3".to_vec(), Duration::ZERO)
        .await
        .unwrap();
    assert!(get(&store, "s", "zero").await.unwrap().is_none());
}
