//! The key directory: every usable key (not revoked) by the hash of its secret, in memory, so a
//! request's key check never waits for the database and a wrong key never reaches it (a flood
//! of guesses costs a SHA-256 and a map lookup each, and cannot load the store).
//!
//! The map sits behind an [`ArcSwap`]: a lookup is a lock-free load. It is loaded at start and
//! reloaded whole when `key_changes.serial` moved: every `refresh` interval a background task
//! reads that one row (so a key created, revoked or rotated by another process on the same
//! database takes effect within the interval), and a change made through this process reloads
//! at once ([`Directory::refresh`] after the write).
//!
//! Each key carries its team (loaded in the same read), whose model grant narrows the key's.
//!
//! Memory: an entry is the key's hash (32 bytes), the map's slot, and the [`Key`] behind an
//! `Arc` (its id and hint strings and the spec's options: about 300 bytes with no lists, plus
//! the lists' patterns); `directory_memory_is_small` measures ~0.5 KiB a key, ~5 MiB for 10,000.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use aigw_memory::{Store, StoreError};
use arc_swap::ArcSwap;

use crate::key::Key;
use crate::keys::{self, COLUMNS};
use crate::secret::SecretHash;
use crate::teams;

/// One secret the directory knows.
#[derive(Debug, Clone)]
struct Entry {
    key: Arc<Key>,
    /// For the previous secret of a key rotated with a grace period: when it stops working
    /// (Unix ms).
    until: Option<i64>,
}

/// The directory's contents at one serial.
#[derive(Debug, Default)]
struct Snapshot {
    serial: i64,
    by_hash: HashMap<SecretHash, Entry>,
}

/// The in-memory directory of keys, refreshed from the store.
pub struct Directory {
    store: Arc<Store>,
    current: ArcSwap<Snapshot>,
    /// One reload at a time (the background task and this process's own changes).
    reloading: tokio::sync::Mutex<()>,
}

impl Directory {
    /// A directory loaded from `store`.
    pub async fn load(store: Arc<Store>) -> Result<Arc<Directory>, StoreError> {
        let directory = Arc::new(Directory {
            store,
            current: ArcSwap::from_pointee(Snapshot {
                serial: -1,
                ..Snapshot::default()
            }),
            reloading: tokio::sync::Mutex::new(()),
        });
        directory.refresh().await?;
        Ok(directory)
    }

    /// The store the directory reads (and the admin API writes keys to).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The usable key whose secret is `secret`: known, not revoked, not expired at the store's
    /// now. Never touches the store.
    pub fn lookup(&self, secret: &str) -> Option<Arc<Key>> {
        self.lookup_hash(&SecretHash::of(secret))
    }

    /// [`Directory::lookup`] for a secret already hashed (a caller that compares the same
    /// secret with another hash hashes it once).
    pub fn lookup_hash(&self, hash: &SecretHash) -> Option<Arc<Key>> {
        let snapshot = self.current.load();
        let entry = snapshot.by_hash.get(hash)?;
        let now = self.store.now_ms();
        if entry.until.is_some_and(|until| until <= now) || entry.key.is_void(now) {
            return None;
        }
        Some(Arc::clone(&entry.key))
    }

    /// How many secrets the directory holds (keys, plus previous secrets in their grace).
    pub fn len(&self) -> usize {
        self.current.load().by_hash.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reloads if the store's change serial moved since the last load; answers whether it did.
    /// One small read when nothing changed.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let _one = self.reloading.lock().await;
        let known = self.current.load().serial;
        let serial = self
            .store
            .read(|c| Box::pin(async move { keys::serial(c).await }))
            .await?;
        if serial == known {
            return Ok(false);
        }
        let snapshot = self.read_all().await?;
        tracing::debug!(
            serial = snapshot.serial,
            secrets = snapshot.by_hash.len(),
            "key directory reloaded"
        );
        self.current.store(Arc::new(snapshot));
        Ok(true)
    }

    /// Every usable key, with the serial read in the same read (a change committed after it is
    /// seen by the next refresh).
    async fn read_all(&self) -> Result<Snapshot, StoreError> {
        let now = self.store.now_ms();
        self.store
            .read(move |c| {
                Box::pin(async move {
                    c.execute("BEGIN", ()).await?;
                    let loaded = async {
                        let serial = keys::serial(c).await?;
                        let teams = teams::all(c).await?;
                        let mut rows = c
                            .query(
                                &format!(
                                    "SELECT {COLUMNS}, hash, previous_hash, previous_until
                                     FROM keys WHERE revoked_at IS NULL"
                                ),
                                (),
                            )
                            .await?;
                        let mut by_hash = HashMap::new();
                        while let Some(row) = rows.next().await? {
                            let mut key = keys::key_of(&row)?;
                            if let Some(team) = &key.spec.team {
                                match teams.get(team) {
                                    Some(team) => key.team = Some(Arc::clone(team)),
                                    // Deny by default: without its team the key's grant
                                    // would be wider than the operator set.
                                    None => {
                                        tracing::warn!(
                                            key = key.id.as_str(),
                                            team = team.as_str(),
                                            "a key names a team that does not exist; it is not served"
                                        );
                                        continue;
                                    }
                                }
                            }
                            let key = Arc::new(key);
                            let hash: Vec<u8> = row.get(6)?;
                            let Some(hash) = SecretHash::from_slice(&hash) else {
                                tracing::warn!(
                                    key = key.id.as_str(),
                                    "a stored key's hash is not 32 bytes; skipped"
                                );
                                continue;
                            };
                            let previous: Option<Vec<u8>> = row.get(7)?;
                            let until: Option<i64> = row.get(8)?;
                            if let (Some(previous), Some(until)) = (previous, until)
                                && until > now
                                && let Some(previous) = SecretHash::from_slice(&previous)
                            {
                                by_hash.insert(
                                    previous,
                                    Entry {
                                        key: Arc::clone(&key),
                                        until: Some(until),
                                    },
                                );
                            }
                            by_hash.insert(hash, Entry { key, until: None });
                        }
                        Ok::<_, StoreError>(Snapshot { serial, by_hash })
                    }
                    .await;
                    // A read transaction: nothing to keep, only the one view to release.
                    c.execute("COMMIT", ()).await?;
                    loaded
                })
            })
            .await
    }

    /// Refreshes every `every` until the directory is dropped. A failed refresh keeps the last
    /// loaded keys (a busy database must not lock every client out) and is logged.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Directory> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(directory) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = directory.refresh().await {
                    tracing::warn!(error = %e, "key directory refresh failed; serving the keys last loaded");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::key::KeySpec;
    use aigw_memory::{ManualClock, StoreOptions};

    async fn store(clock: Option<Arc<ManualClock>>) -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let mut options = StoreOptions::new(dir.path().join("keys.db"));
        if let Some(clock) = clock {
            options.clock = clock;
        }
        (dir, Arc::new(Store::open(options).await.unwrap()))
    }

    #[tokio::test]
    async fn finds_keys_by_secret_and_follows_changes() {
        let (_dir, store) = store(None).await;
        let directory = Directory::load(Arc::clone(&store)).await.unwrap();
        assert!(directory.is_empty());
        let made = keys::create(&store, KeySpec::default()).await.unwrap();
        // Not yet: the directory has not looked.
        assert!(directory.lookup(&made.secret).is_none());
        assert!(directory.refresh().await.unwrap());
        assert_eq!(directory.lookup(&made.secret).unwrap().id, made.key.id);
        assert!(directory.lookup("sk-aigw-wrong").is_none());
        // Nothing moved: no reload.
        assert!(!directory.refresh().await.unwrap());

        let rotated = keys::rotate(&store, &made.key.id, None).await.unwrap();
        directory.refresh().await.unwrap();
        assert!(
            directory.lookup(&made.secret).is_none(),
            "the old secret stops at once"
        );
        assert_eq!(directory.lookup(&rotated.secret).unwrap().id, made.key.id);

        keys::revoke(&store, &made.key.id).await.unwrap();
        directory.refresh().await.unwrap();
        assert!(directory.lookup(&rotated.secret).is_none());
        assert!(directory.is_empty(), "revoked keys are not held");
    }

    #[tokio::test]
    async fn a_change_by_another_store_on_the_same_file_is_seen() {
        let (dir, store) = store(None).await;
        let directory = Directory::load(Arc::clone(&store)).await.unwrap();
        // Another process: its own store on the same file.
        let other = Store::open(StoreOptions::new(dir.path().join("keys.db")))
            .await
            .unwrap();
        let made = keys::create(&other, KeySpec::default()).await.unwrap();
        assert!(directory.refresh().await.unwrap());
        assert!(directory.lookup(&made.secret).is_some());
    }

    #[tokio::test]
    async fn expiry_and_rotation_grace_follow_the_clock() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (_dir, store) = store(Some(Arc::clone(&clock))).await;
        let spec = KeySpec {
            expires_at: Some(2_000),
            ..KeySpec::default()
        };
        let made = keys::create(&store, spec).await.unwrap();
        let directory = Directory::load(Arc::clone(&store)).await.unwrap();
        assert!(directory.lookup(&made.secret).is_some());

        let rotated = keys::rotate(&store, &made.key.id, Some(60)).await.unwrap();
        directory.refresh().await.unwrap();
        assert!(directory.lookup(&made.secret).is_some(), "in its grace");
        assert!(directory.lookup(&rotated.secret).is_some());
        clock.advance(Duration::from_secs(60));
        assert!(directory.lookup(&made.secret).is_none(), "grace over");
        assert!(directory.lookup(&rotated.secret).is_some());
        clock.advance(Duration::from_secs(1000));
        assert!(directory.lookup(&rotated.secret).is_none(), "expired");
    }

    #[tokio::test]
    async fn the_refresher_picks_up_changes_and_stops_with_the_directory() {
        let (_dir, store) = store(None).await;
        let directory = Directory::load(Arc::clone(&store)).await.unwrap();
        let task = directory.spawn_refresher(Duration::from_millis(10));
        let made = keys::create(&store, KeySpec::default()).await.unwrap();
        // Bounded poll: the refresher runs every 10 ms.
        let mut seen = false;
        for _ in 0..500 {
            if directory.lookup(&made.secret).is_some() {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(seen);
        drop(directory);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn directory_memory_is_small() {
        let (_dir, store) = store(None).await;
        // Written in one transaction: 10,000 keys.
        let count = 10_000;
        store
            .write(move |c| {
                Box::pin(async move {
                    for i in 0..count {
                        let secret = format!("sk-aigw-test-{i}");
                        c.execute(
                            "INSERT INTO keys (id, hash, hint, spec, created_at, updated_at)
                             VALUES (?1, ?2, ?3, ?4, 0, 0)",
                            (
                                format!("key_{i:024x}"),
                                SecretHash::of(&secret).as_bytes().to_vec(),
                                "sk-aigw-…0000",
                                r#"{"models":["fast","groq/*"],"rpm_limit":60}"#,
                            ),
                        )
                        .await?;
                    }
                    keys::bump(c).await
                })
            })
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let directory = Directory::load(Arc::clone(&store)).await.unwrap();
        let loaded_in = started.elapsed();
        assert_eq!(directory.len(), count);
        assert!(directory.lookup("sk-aigw-test-9999").is_some());
        // An estimate from the types' sizes and the heap parts of one such key.
        let snapshot = directory.current.load();
        let key = &snapshot.by_hash.values().next().unwrap().key;
        let heap = key.id.capacity()
            + key.hint.capacity()
            + key
                .spec
                .models
                .as_ref()
                .map_or(0, |m| m.capacity() * std::mem::size_of_val(&m[0]) + 16);
        let per_key = std::mem::size_of::<Key>()
            + 16 // the Arc's counts
            + std::mem::size_of::<(SecretHash, Entry)>()
            + 1 // the map's control byte
            + heap;
        // What a request's key check costs (a SHA-256 and a map lookup), hit and miss alike.
        let lookups: u32 = 20_000;
        let started = std::time::Instant::now();
        for i in 0..lookups {
            let hit = directory.lookup(&format!("sk-aigw-test-{}", i as usize % count));
            let miss = directory.lookup(&format!("sk-aigw-miss-{i}"));
            assert!(hit.is_some() && miss.is_none());
        }
        let per_check = started.elapsed() / (2 * lookups);
        eprintln!(
            "~{per_key} bytes a key; 10,000 keys loaded in {loaded_in:?}; one check {per_check:?} \
             (this build's profile)"
        );
        assert!(per_key < 1024, "{per_key} bytes a key");
    }
}
