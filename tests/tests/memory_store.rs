//! The memory store as the binary opens it: created beside the config on start, migrated, and a
//! file with a newer schema than the binary's refused with that reason before anything listens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_memory::{SCHEMA_VERSION, Store, StoreOptions};
use aigw_tests::gateway::{Gateway, aigw};
use aigw_tests::setup::Upstreams;

#[tokio::test]
async fn the_gateway_creates_and_migrates_its_store_beside_the_config() {
    let upstreams = Upstreams::start().await;
    let gateway: Gateway = upstreams.gateway("").await;
    let db = gateway.config_path().parent().unwrap().join("aigw.db");
    assert!(db.exists(), "no store at {}", db.display());
    // Another process can open the same file at the same schema while the gateway runs.
    let store = Store::open(StoreOptions::new(&db)).await.unwrap();
    let version = store
        .read(|c| {
            Box::pin(async move {
                let mut rows = c.query("SELECT max(version) FROM aigw_schema", ()).await?;
                Ok(rows.next().await?.unwrap().get::<i64>(0)?)
            })
        })
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[tokio::test]
async fn a_store_with_a_newer_schema_stops_the_start_with_its_reason() {
    let upstreams = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aigw.toml");
    std::fs::write(&config, upstreams.config("")).unwrap();
    let db = dir.path().join("aigw.db");
    let store = Store::open(StoreOptions::new(&db)).await.unwrap();
    store
        .write(|c| {
            Box::pin(async move {
                c.execute("UPDATE aigw_schema SET version = version + 1", ())
                    .await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    drop(store);
    let output = aigw([
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[memory]"), "{stderr}");
    assert!(stderr.contains("newer than this aigw knows"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening on"));
}
