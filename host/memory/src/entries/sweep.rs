//! The sweeper: deletes expired entries (and their full-text rows) in the background. Reads
//! never return an expired entry whether or not it was swept; sweeping only gives the space
//! back. Each batch is one write of at most [`SWEEP_BATCH`] entries, so a large expiry never
//! holds the writer long, and other writes queue between batches.

use std::sync::Arc;
use std::time::Duration;

use crate::{Store, StoreError};

/// The most entries one sweeping write deletes.
pub const SWEEP_BATCH: usize = 500;

/// Deletes every entry expired by the store's clock, one batch per write; how many.
pub async fn sweep_expired(store: &Store) -> Result<usize, StoreError> {
    let now = store.now_ms();
    let mut swept = 0;
    loop {
        let deleted = store
            .write(move |c| {
                Box::pin(async move {
                    let mut rows = c
                        .query(
                            "SELECT id FROM entries
                             WHERE expires_at IS NOT NULL AND expires_at <= ?1
                             ORDER BY expires_at LIMIT ?2",
                            (now, SWEEP_BATCH as i64),
                        )
                        .await?;
                    let mut ids = Vec::new();
                    while let Some(row) = rows.next().await? {
                        ids.push(row.get::<i64>(0)?);
                    }
                    drop(rows);
                    for id in &ids {
                        c.execute("DELETE FROM entries_fts WHERE rowid = ?1", [*id])
                            .await?;
                        c.execute("DELETE FROM entries WHERE id = ?1", [*id])
                            .await?;
                    }
                    Ok(ids.len())
                })
            })
            .await?;
        swept += deleted;
        if deleted < SWEEP_BATCH {
            return Ok(swept);
        }
    }
}

/// The running sweeper.
#[derive(Debug)]
pub struct Sweeper {
    /// Ends once the store is dropped.
    pub task: tokio::task::JoinHandle<()>,
    /// How many entries it has deleted so far (for tests and metrics).
    pub swept: tokio::sync::watch::Receiver<u64>,
}

/// Starts the sweeper on the current tokio runtime: a sweep every `interval` (the first at
/// once), until the store is dropped. It holds the store weakly, so it never keeps it open.
pub fn spawn_sweeper(store: &Arc<Store>, interval: Duration) -> Sweeper {
    let store = Arc::downgrade(store);
    let interval = interval.max(Duration::from_millis(1));
    let (report, swept) = tokio::sync::watch::channel(0u64);
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(store) = store.upgrade() else {
                return;
            };
            match sweep_expired(&store).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(swept = n, "memory: expired entries swept");
                    report.send_modify(|total| *total += n as u64);
                }
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "memory: sweeping expired entries failed"),
            }
        }
    });
    Sweeper { task, swept }
}
