//! A level limit (concurrent requests) as one process holds it: a **hold** in the shared
//! `holds(subject, metric, holder, amount, expires_at)` table. The process holds a number of
//! slots, takes them locally for its requests, grows the hold in one write when it needs more
//! (granted only while the sum of every unexpired hold stays within the limit), renews it while
//! it lives and shrinks it when slots sit unused. A process that dies stops renewing: its hold
//! expires and its slots count for nobody.

use std::sync::{Arc, Mutex, MutexGuard};

use aigw_memory::{Store, StoreError};

use super::lease::Local;

/// The metric's name in `holds`.
pub(crate) const PARALLEL: &str = "parallel";

/// One subject's hold of concurrent-request slots in this process.
#[derive(Debug)]
pub(crate) struct Hold {
    pub(crate) subject: Arc<str>,
    state: Mutex<State>,
    /// Held by whoever is growing the hold, so waiting requests make one write.
    pub(crate) gate: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Default)]
struct State {
    /// Slots in the shared hold.
    held: u64,
    /// Slots taken by requests in flight.
    in_use: u64,
    /// Until when the shared hold is valid (store clock): past it, other processes may have
    /// taken the slots, so none are used until a write holds them again.
    expires_at: i64,
    /// When the limit last had no slot to grant.
    dry_at: Option<i64>,
    /// When a request last took a slot.
    last_used_ms: i64,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hold {
    pub(crate) fn new(subject: Arc<str>) -> Hold {
        Hold {
            subject,
            state: Mutex::new(State::default()),
            gate: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Takes a slot by the local state alone.
    pub(crate) fn try_take(&self, now: i64, recheck_ms: i64) -> Local {
        let mut state = lock(&self.state);
        if state.in_use < state.held && now < state.expires_at {
            state.in_use += 1;
            state.last_used_ms = now;
            return Local::Admitted;
        }
        match state.dry_at {
            Some(at) if now.saturating_sub(at) < recheck_ms => Local::Dry,
            _ => Local::Empty,
        }
    }

    /// Gives a slot back (its request ended); the hold keeps it for the next request until
    /// it has been idle long enough to shrink.
    pub(crate) fn release(&self) {
        let mut state = lock(&self.state);
        state.in_use = state.in_use.saturating_sub(1);
    }

    /// Grows the hold towards `in_use + chunk` slots, within `limit` less what the other
    /// processes' unexpired holds take; one write.
    pub(crate) async fn grow(
        &self,
        store: &Store,
        holder: &str,
        chunk: u64,
        limit: u64,
        now: i64,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let want = {
            let state = lock(&self.state);
            state.in_use.saturating_add(chunk.max(1))
        };
        let amount = self.set(store, holder, want, limit, now, ttl_ms).await?;
        let mut state = lock(&self.state);
        state.held = amount;
        state.expires_at = now + ttl_ms;
        if amount <= state.in_use {
            state.dry_at = Some(now);
        } else {
            state.dry_at = None;
        }
        Ok(())
    }

    /// Shrinks the hold to the slots in use if none was taken since `idle_since`; skipped
    /// while the hold is being grown (the two writes must not cross: the row would end up
    /// holding fewer slots than this process uses).
    pub(crate) async fn shrink(
        &self,
        store: &Store,
        holder: &str,
        idle_since: i64,
        now: i64,
        ttl_ms: i64,
    ) -> Result<(), StoreError> {
        let Ok(_gate) = self.gate.try_lock() else {
            return Ok(());
        };
        let in_use = {
            let mut state = lock(&self.state);
            if state.held <= state.in_use || state.last_used_ms > idle_since {
                return Ok(());
            }
            // Shrunk here first: the slots are not taken again while the write is on its way.
            state.held = state.in_use;
            state.in_use
        };
        self.set(store, holder, in_use, u64::MAX, now, ttl_ms)
            .await
            .map(drop)
    }

    /// Sets this holder's row to `want` slots (at most what `limit` leaves beside the
    /// others' unexpired holds), or deletes it when that is 0; answers the slots held.
    async fn set(
        &self,
        store: &Store,
        holder: &str,
        want: u64,
        limit: u64,
        now: i64,
        ttl_ms: i64,
    ) -> Result<u64, StoreError> {
        let subject = self.subject.to_string();
        let holder = holder.to_owned();
        store
            .write(move |c| {
                Box::pin(async move {
                    let mut rows = c
                        .query(
                            "SELECT COALESCE(SUM(amount), 0) FROM holds
                             WHERE subject = ?1 AND metric = ?2 AND holder <> ?3
                               AND expires_at > ?4",
                            (subject.as_str(), PARALLEL, holder.as_str(), now),
                        )
                        .await?;
                    let others = match rows.next().await? {
                        Some(row) => u64::try_from(row.get::<i64>(0)?).unwrap_or(0),
                        None => 0,
                    };
                    drop(rows);
                    let amount = want.min(limit.saturating_sub(others));
                    if amount == 0 {
                        c.execute(
                            "DELETE FROM holds WHERE subject = ?1 AND metric = ?2 AND holder = ?3",
                            (subject.as_str(), PARALLEL, holder.as_str()),
                        )
                        .await?;
                    } else {
                        c.execute(
                            "INSERT INTO holds (subject, metric, holder, amount, expires_at)
                             VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT (subject, metric, holder)
                             DO UPDATE SET amount = excluded.amount,
                                           expires_at = excluded.expires_at",
                            (
                                subject.as_str(),
                                PARALLEL,
                                holder.as_str(),
                                i64::try_from(amount).unwrap_or(i64::MAX),
                                now.saturating_add(ttl_ms),
                            ),
                        )
                        .await?;
                    }
                    Ok(amount)
                })
            })
            .await
    }

    /// Notes that every hold of this process was renewed until `expires_at`.
    pub(crate) fn renewed(&self, expires_at: i64) {
        let mut state = lock(&self.state);
        if state.held > 0 {
            state.expires_at = expires_at;
        }
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        let state = lock(&self.state);
        state.held == 0 && state.in_use == 0
    }

    pub(crate) fn last_used_ms(&self) -> i64 {
        lock(&self.state).last_used_ms
    }
}
