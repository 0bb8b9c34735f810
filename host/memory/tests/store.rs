//! The store's promises, on real database files: migrations and the newer-schema refusal,
//! group commit, a failing write rolled back alone, readers that do not wait for the writer,
//! and acknowledged writes that are there after a reopen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::mpsc;

use aigw_memory::{SCHEMA_VERSION, Store, StoreError, StoreOptions};

/// A fresh directory for one test's database.
fn temp_db(name: &str) -> PathBuf {
    let dir = // Under the target directory and named by test only: each run replaces the last
    // one's files instead of leaving a new directory in /tmp.
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("aigw-memory-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("aigw.db")
}

async fn open(path: &PathBuf) -> Store {
    Store::open(StoreOptions::new(path)).await.unwrap()
}

async fn create_notes(store: &Store) {
    store
        .write(|c| {
            Box::pin(async move {
                c.execute(
                    "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",
                    (),
                )
                .await?;
                Ok(())
            })
        })
        .await
        .unwrap();
}

fn insert(store: &Store, text: String) -> impl Future<Output = Result<i64, StoreError>> + use<> {
    store.write(move |c| {
        Box::pin(async move {
            c.execute("INSERT INTO notes (text) VALUES (?1)", [text])
                .await?;
            Ok(c.last_insert_rowid())
        })
    })
}

async fn texts(store: &Store) -> Vec<String> {
    store
        .read(|c| {
            Box::pin(async move {
                let mut rows = c.query("SELECT text FROM notes ORDER BY id", ()).await?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().await? {
                    out.push(row.get::<String>(0)?);
                }
                Ok(out)
            })
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_file_is_migrated_and_a_newer_schema_is_refused() {
    let path = temp_db("schema");
    let store = open(&path).await;
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
    // A later aigw moved the schema on.
    store
        .write(|c| {
            Box::pin(async move {
                c.execute("UPDATE aigw_schema SET version = version + 7", ())
                    .await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    drop(store);
    let error = Store::open(StoreOptions::new(&path)).await.err().unwrap();
    assert_eq!(
        error,
        StoreError::NewerSchema {
            found: SCHEMA_VERSION + 7,
            known: SCHEMA_VERSION
        }
    );
    assert!(
        error.to_string().contains("newer than this aigw knows"),
        "{error}"
    );
}

#[tokio::test]
async fn writes_that_arrive_together_commit_in_one_transaction_and_keep_their_order() {
    let path = temp_db("group");
    let store = open(&path).await;
    create_notes(&store).await;
    let before = store.stats();
    // Hold the writer inside a write until 63 more are queued behind it.
    let (release, held) = mpsc::channel::<()>();
    let first = store.write(move |c| {
        Box::pin(async move {
            held.recv().unwrap();
            c.execute("INSERT INTO notes (text) VALUES ('0')", ())
                .await?;
            Ok(c.last_insert_rowid())
        })
    });
    let rest: Vec<_> = (1..64).map(|i| insert(&store, i.to_string())).collect();
    release.send(()).unwrap();
    let mut ids = vec![first.await.unwrap()];
    for write in rest {
        ids.push(write.await.unwrap());
    }
    // Every write acknowledged, in the order they were made.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let after = store.stats();
    assert_eq!(after.writes - before.writes, 64);
    assert!(
        after.batches - before.batches <= 2,
        "64 writes took {} transactions",
        after.batches - before.batches
    );
    let expected: Vec<String> = (0..64).map(|i| i.to_string()).collect();
    assert_eq!(texts(&store).await, expected);
}

#[tokio::test]
async fn a_failing_write_is_rolled_back_alone() {
    let path = temp_db("savepoint");
    let store = open(&path).await;
    create_notes(&store).await;
    let (release, held) = mpsc::channel::<()>();
    let blocker = store.write(move |_| {
        Box::pin(async move {
            held.recv().unwrap();
            Ok(())
        })
    });
    let good = insert(&store, "kept".into());
    // Writes a row, then fails: the row must go with it.
    let bad = store.write(|c| {
        Box::pin(async move {
            c.execute("INSERT INTO notes (text) VALUES ('lost')", ())
                .await?;
            c.execute("INSERT INTO nowhere VALUES (1)", ()).await?;
            Ok(())
        })
    });
    let also_good = insert(&store, "kept too".into());
    release.send(()).unwrap();
    blocker.await.unwrap();
    good.await.unwrap();
    assert!(matches!(bad.await, Err(StoreError::Sql(m)) if m.contains("nowhere")));
    also_good.await.unwrap();
    assert_eq!(texts(&store).await, ["kept", "kept too"]);
}

#[tokio::test]
async fn readers_do_not_wait_for_a_writer_in_the_middle_of_a_transaction() {
    let path = temp_db("readers");
    let store = open(&path).await;
    create_notes(&store).await;
    insert(&store, "committed".into()).await.unwrap();
    // The writer inserts a row and then waits, its transaction open.
    let (release, held) = mpsc::channel::<()>();
    let (inserted_tx, inserted) = tokio::sync::oneshot::channel::<()>();
    let open_write = store.write(move |c| {
        Box::pin(async move {
            c.execute("INSERT INTO notes (text) VALUES ('pending')", ())
                .await?;
            inserted_tx.send(()).unwrap();
            held.recv().unwrap();
            Ok(())
        })
    });
    inserted.await.unwrap();
    // Answered while the writer holds its transaction, from the last committed state.
    assert_eq!(texts(&store).await, ["committed"]);
    release.send(()).unwrap();
    open_write.await.unwrap();
    assert_eq!(texts(&store).await, ["committed", "pending"]);
}

#[tokio::test]
async fn acknowledged_writes_are_there_after_a_reopen() {
    let path = temp_db("reopen");
    let store = open(&path).await;
    create_notes(&store).await;
    let writes: Vec<_> = (0..20).map(|i| insert(&store, format!("n{i}"))).collect();
    for write in writes {
        write.await.unwrap();
    }
    drop(store);
    let store = open(&path).await;
    assert_eq!(texts(&store).await.len(), 20);
}

#[tokio::test]
async fn reads_cannot_write() {
    let path = temp_db("readonly");
    let store = open(&path).await;
    create_notes(&store).await;
    let error = store
        .read(|c| {
            Box::pin(async move {
                c.execute("INSERT INTO notes (text) VALUES ('sneaky')", ())
                    .await?;
                Ok(())
            })
        })
        .await
        .err()
        .unwrap();
    assert!(matches!(error, StoreError::Sql(_)), "{error}");
    assert!(texts(&store).await.is_empty());
}
