//! An acknowledged write survives `kill -9` of the process that made it. The test runs itself
//! again as the writer (this file's `writer_child`, selected by an environment variable): the
//! child writes in a loop from 16 concurrent tasks and prints each id once its write is
//! acknowledged; the parent reads a few hundred of those lines, kills the child with SIGKILL in
//! the middle of its load, reopens the file and finds every printed id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use aigw_memory::{Store, StoreOptions};

const CHILD: &str = "AIGW_MEMORY_KILL_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_child() {
    // Only does anything when the parent test started this process as its writer.
    let Ok(path) = std::env::var(CHILD) else {
        return;
    };
    let store = std::sync::Arc::new(Store::open(StoreOptions::new(&path)).await.unwrap());
    store
        .write(|c| {
            Box::pin(async move {
                c.execute(
                    "CREATE TABLE IF NOT EXISTS acked (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
                    (),
                )
                .await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    let (lines, mut printed) = tokio::sync::mpsc::unbounded_channel::<i64>();
    for _ in 0..16 {
        let store = std::sync::Arc::clone(&store);
        let lines = lines.clone();
        tokio::spawn(async move {
            loop {
                let id = store
                    .write(|c| {
                        Box::pin(async move {
                            c.execute("INSERT INTO acked (body) VALUES (?1)", ["x".repeat(200)])
                                .await?;
                            Ok(c.last_insert_rowid())
                        })
                    })
                    .await
                    .unwrap();
                if lines.send(id).is_err() {
                    return;
                }
            }
        });
    }
    drop(lines);
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    while let Some(id) = printed.recv().await {
        // Printed only after the write was acknowledged.
        writeln!(out, "acked {id}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn every_acknowledged_write_survives_a_kill_dash_nine() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("aigw-memory-kill");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("aigw.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["writer_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let acked: Vec<i64> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| line.strip_prefix("acked ").and_then(|id| id.parse().ok()))
            .take(500)
            .collect()
    })
    .await
    .unwrap();
    // In the middle of the load: 16 writers still going.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acked.len(), 500, "the writer stopped early");

    let store = Store::open(StoreOptions::new(&path)).await.unwrap();
    let stored: Vec<i64> = store
        .read(|c| {
            Box::pin(async move {
                let mut rows = c.query("SELECT id FROM acked", ()).await?;
                let mut ids = Vec::new();
                while let Some(row) = rows.next().await? {
                    ids.push(row.get::<i64>(0)?);
                }
                Ok(ids)
            })
        })
        .await
        .unwrap();
    let stored: std::collections::HashSet<i64> = stored.into_iter().collect();
    let lost: Vec<&i64> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
