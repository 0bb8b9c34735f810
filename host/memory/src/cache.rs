//! The shared cache: answers kept for a while under a scope (what cached them, e.g.
//! `tool:weather_current`) and a key (a digest of what was asked), in migration 8's `cache`
//! table, so every process on one database answers from the same cache. A row past its expiry
//! is never served, whether or not it was swept yet; [`spawn_sweeper`] deletes expired rows in
//! the background, one bounded batch per write. Only answers are cached: the caller decides
//! what is worth keeping (never a failure).

use std::sync::Arc;
use std::time::Duration;

use crate::{Store, StoreError};

/// The most rows one sweeping write deletes.
pub const SWEEP_BATCH: i64 = 500;

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub value: Vec<u8>,
    /// Unix milliseconds, by the store's clock.
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// The answer cached under `scope` and `key`, unless there is none or it has expired (by the
/// store's clock).
pub async fn get(store: &Store, scope: &str, key: &str) -> Result<Option<Cached>, StoreError> {
    let now = store.now_ms();
    let (scope, key) = (scope.to_owned(), key.to_owned());
    store
        .read(move |c| {
            Box::pin(async move {
                let mut rows = c
                    .query(
                        "SELECT value, created_at, expires_at FROM cache
                         WHERE scope = ?1 AND key = ?2 AND expires_at > ?3",
                        (scope, key, now),
                    )
                    .await?;
                match rows.next().await? {
                    Some(row) => Ok(Some(Cached {
                        value: row.get::<Vec<u8>>(0)?,
                        created_at_ms: row.get::<i64>(1)?,
                        expires_at_ms: row.get::<i64>(2)?,
                    })),
                    None => Ok(None),
                }
            })
        })
        .await
}

/// Keeps `value` under `scope` and `key` for `ttl` from now (replacing what was there). A zero
/// TTL keeps nothing.
pub async fn put(
    store: &Store,
    scope: &str,
    key: &str,
    value: Vec<u8>,
    ttl: Duration,
) -> Result<(), StoreError> {
    if ttl.is_zero() {
        return Ok(());
    }
    let now = store.now_ms();
    let expires_at = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let (scope, key) = (scope.to_owned(), key.to_owned());
    store
        .write(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO cache (scope, key, value, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (scope, key) DO UPDATE SET
                         value = excluded.value, created_at = excluded.created_at,
                         expires_at = excluded.expires_at",
                    (scope, key, value, now, expires_at),
                )
                .await?;
                Ok(())
            })
        })
        .await
}

/// Deletes every row expired by the store's clock, one batch per write; how many.
pub async fn sweep_expired(store: &Store) -> Result<usize, StoreError> {
    let now = store.now_ms();
    let mut swept = 0;
    loop {
        let deleted = store
            .write(move |c| {
                Box::pin(async move {
                    let deleted = c
                        .execute(
                            "DELETE FROM cache WHERE (scope, key) IN (
                                 SELECT scope, key FROM cache WHERE expires_at <= ?1 LIMIT ?2)",
                            (now, SWEEP_BATCH),
                        )
                        .await?;
                    Ok(deleted as usize)
                })
            })
            .await?;
        swept += deleted;
        if deleted < SWEEP_BATCH as usize {
            return Ok(swept);
        }
    }
}

/// Starts sweeping expired rows every `interval` (the first at once), until the store is
/// dropped (it holds the store weakly).
pub fn spawn_sweeper(store: &Arc<Store>, interval: Duration) -> tokio::task::JoinHandle<()> {
    let store = Arc::downgrade(store);
    let interval = interval.max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(store) = store.upgrade() else {
                return;
            };
            match sweep_expired(&store).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(swept = n, "cache: expired rows swept"),
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "cache: sweeping expired rows failed"),
            }
        }
    })
}
