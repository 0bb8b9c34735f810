//! The store under a full disk and a locked file: the writes that cannot be made fail with
//! [`StoreError::Unavailable`] (the server's 503), nothing acknowledged is lost, the file stays
//! intact, and the store works again once the cause is gone. A full disk is made with SQLite's
//! `max_page_count` (the same SQLITE_FULL a full file system gives); a lock by a second
//! connection holding the write lock past the busy timeout, as another process would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use aigw_memory::{Store, StoreError, StoreOptions};

fn temp_db(name: &str) -> PathBuf {
    let dir = // Under the target directory and named by test only: each run replaces the last
    // one's files instead of leaving a new directory in /tmp.
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aigw-faults-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("aigw.db")
}

async fn exec(store: &Store, sql: &'static str) -> Result<(), StoreError> {
    store
        .write(move |c| {
            Box::pin(async move {
                c.execute_batch(sql).await?;
                Ok(())
            })
        })
        .await
}

fn insert(store: &Store, size: usize) -> impl Future<Output = Result<i64, StoreError>> + use<> {
    store.write(move |c| {
        Box::pin(async move {
            c.execute(
                "INSERT INTO blobs (data) VALUES (?1)",
                [libsql::Value::Blob(vec![7u8; size])],
            )
            .await?;
            Ok(c.last_insert_rowid())
        })
    })
}

async fn ids(store: &Store) -> Vec<i64> {
    store
        .read(|c| {
            Box::pin(async move {
                let mut rows = c.query("SELECT id FROM blobs ORDER BY id", ()).await?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().await? {
                    out.push(row.get::<i64>(0)?);
                }
                Ok(out)
            })
        })
        .await
        .unwrap()
}

async fn integrity(store: &Store) -> String {
    store
        .read(|c| {
            Box::pin(async move {
                let mut rows = c.query("PRAGMA integrity_check", ()).await?;
                let row = rows.next().await?.expect("a row");
                Ok(row.get::<String>(0)?)
            })
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_full_disk_refuses_writes_loses_no_acknowledged_one_and_recovers() {
    let path = temp_db("full");
    let store = Store::open(StoreOptions::new(&path)).await.unwrap();
    exec(
        &store,
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    )
    .await
    .unwrap();
    // The writer's connection may grow the file by a few pages only (relative to the schema's
    // size, which grows with every migration).
    store
        .write(|c| {
            Box::pin(async move {
                let mut rows = c.query("PRAGMA page_count", ()).await?;
                let pages = rows.next().await?.expect("a row").get::<i64>(0)?;
                c.execute_batch(&format!("PRAGMA max_page_count = {}", pages + 12))
                    .await?;
                Ok(())
            })
        })
        .await
        .unwrap();

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    // Concurrent writes, so full ones share batches with ones that fit.
    for round in 0..20 {
        let writes: Vec<_> = (0..8)
            .map(|n| insert(&store, if n % 2 == 0 { 64 } else { 4096 * (round + 1) }))
            .collect();
        for write in writes {
            match write.await {
                Ok(id) => acknowledged.push(id),
                Err(StoreError::Unavailable(_)) => refused += 1,
                Err(other) => panic!("a full disk is Unavailable, not {other:?}"),
            }
        }
    }
    assert!(refused > 0, "the disk never filled");
    assert!(!acknowledged.is_empty(), "nothing fitted");
    let stored = ids(&store).await;
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged write {id} is gone");
    }
    assert_eq!(stored.len(), acknowledged.len(), "a refused write is there");
    assert_eq!(integrity(&store).await, "ok");

    // Room again: writes succeed.
    exec(&store, "PRAGMA max_page_count = 1073741823")
        .await
        .unwrap();
    insert(&store, 100_000).await.unwrap();
    drop(store);
    let store = Store::open(StoreOptions::new(&path)).await.unwrap();
    assert_eq!(ids(&store).await.len(), acknowledged.len() + 1);
    assert_eq!(integrity(&store).await, "ok");
}

#[tokio::test]
async fn a_file_locked_by_another_writer_is_unavailable_then_writable() {
    let path = temp_db("locked");
    let mut options = StoreOptions::new(&path);
    options.busy_timeout = Duration::from_millis(100);
    let store = Store::open(options).await.unwrap();
    exec(
        &store,
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    )
    .await
    .unwrap();
    let first = insert(&store, 10).await.unwrap();

    // Another connection (as another process would) takes the write lock and keeps it.
    let other = libsql::Builder::new_local(&path).build().await.unwrap();
    let other = other.connect().unwrap();
    other.execute("BEGIN IMMEDIATE", ()).await.unwrap();
    other
        .execute("INSERT INTO blobs (data) VALUES (x'00')", ())
        .await
        .unwrap();

    match insert(&store, 10).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a locked file is Unavailable, got {other:?}"),
    }
    // Readers do not wait for the lock (WAL).
    assert_eq!(ids(&store).await, vec![first]);

    other.execute("ROLLBACK", ()).await.unwrap();
    let second = insert(&store, 10).await.unwrap();
    assert_eq!(ids(&store).await, vec![first, second]);
    assert_eq!(integrity(&store).await, "ok");
}
