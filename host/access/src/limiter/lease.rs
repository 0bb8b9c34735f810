//! A windowed limit as one process holds it: a **lease** of the shared counter
//! `allowance(subject, metric, window_start, used)`. The process takes a slice of the window's
//! allowance in one write (`used` grows by the slice, never past the limit), spends it locally,
//! refills in the background when it runs low, and gives back what it did not use when idle.
//! The shared `used` is therefore what every process has leased (plus what was charged past the
//! limit), and the sum of what processes admit against their leases never exceeds the limit.
//!
//! Two ways to spend: **up front** (requests: one unit taken at admission, refused when the
//! lease is empty and the window has nothing left), and **after** (tokens and spend, known only
//! once the answer is in: a request is admitted while the lease has something left, and its
//! actual amount is charged when it finishes; what exceeds the lease is *debt*, pushed to the
//! shared counter unconditionally, past the limit if need be, so every process sees it).

use std::sync::{Arc, Mutex, MutexGuard};

use aigw_memory::{Store, StoreError};

/// How a metric is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spending {
    /// One unit per admitted request, taken at admission (requests).
    UpFront,
    /// The actual amount, charged when the request finishes (tokens, spend).
    After,
}

/// Whether a request may go, by this lease's local state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Local {
    /// Admitted (for [`Spending::UpFront`], its unit is taken).
    Admitted,
    /// The lease is empty: ask the shared counter for more.
    Empty,
    /// The lease is empty and the shared counter had nothing left a moment ago.
    Dry,
}

/// One subject's lease of one windowed metric in this process.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) subject: Arc<str>,
    spending: Spending,
    state: Mutex<State>,
    /// Held by whoever is asking the shared counter for more, so concurrent requests on an
    /// empty lease make one write, not one each.
    pub(crate) gate: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Default)]
struct State {
    /// The metric's name in `allowance` (a budget's names its period: `spend:day`).
    metric: &'static str,
    window_start: i64,
    window_end: i64,
    /// What this process holds of the window's shared counter (taken, less given back).
    leased: u64,
    /// What this process spent of the window.
    spent: u64,
    /// The shared counter as the last write of this process left it.
    shared_used: u64,
    /// When the shared counter last had nothing left to lease (store clock, ms).
    dry_at: Option<i64>,
    /// When a request last used the lease.
    last_used_ms: i64,
}

/// What a write to the shared counter asks for: the debt to push and the slice to take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    metric: &'static str,
    window_start: i64,
    debt: u64,
    want: u64,
    limit: u64,
}

impl Ask {
    /// Whether there is debt to push.
    pub(crate) fn owes(&self) -> bool {
        self.debt > 0
    }
}

/// What a lease looks like for rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge {
    pub limit: u64,
    /// What is left in the window, as far as this process knows (its own spending exactly, the
    /// others' as of its last write to the shared counter).
    pub remaining: u64,
    /// Until the window ends, in ms (`u64::MAX` for a lifetime budget).
    pub reset_ms: u64,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the counters half-changed (plain stores).
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Lease {
    pub(crate) fn new(subject: Arc<str>, spending: Spending) -> Lease {
        Lease {
            subject,
            spending,
            state: Mutex::new(State::default()),
            gate: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Moves the state to the window holding `now` (a new window starts with nothing leased).
    fn roll(state: &mut State, metric: &'static str, window: (i64, i64)) {
        if state.window_start != window.0 || state.metric != metric {
            *state = State {
                metric,
                window_start: window.0,
                window_end: window.1,
                last_used_ms: state.last_used_ms,
                ..State::default()
            };
        }
    }

    /// Admits one request by the local state alone: no await, no store.
    pub(crate) fn try_admit(
        &self,
        metric: &'static str,
        window: (i64, i64),
        now: i64,
        recheck_ms: i64,
    ) -> Local {
        let mut state = lock(&self.state);
        Self::roll(&mut state, metric, window);
        // Up front: a unit must be left to take. After: something must be left to spend.
        if state.spent < state.leased {
            if self.spending == Spending::UpFront {
                state.spent += 1;
            }
            state.last_used_ms = now;
            return Local::Admitted;
        }
        match state.dry_at {
            Some(at) if now.saturating_sub(at) < recheck_ms => Local::Dry,
            _ => Local::Empty,
        }
    }

    /// Takes back a unit taken by [`Lease::try_admit`] for a request another limit refused.
    pub(crate) fn untake(&self, window_start: i64) {
        let mut state = lock(&self.state);
        if self.spending == Spending::UpFront && state.window_start == window_start {
            state.spent = state.spent.saturating_sub(1);
        }
    }

    /// Charges `amount` spent by a finished request to the window holding `now`; true when
    /// the lease now owes the shared counter (debt to push).
    pub(crate) fn charge(
        &self,
        metric: &'static str,
        window: (i64, i64),
        now: i64,
        amount: u64,
    ) -> bool {
        let mut state = lock(&self.state);
        Self::roll(&mut state, metric, window);
        state.spent = state.spent.saturating_add(amount);
        state.last_used_ms = now;
        state.spent > state.leased
    }

    /// Whether the lease runs low (below `low_water` left) and the shared counter may have more.
    pub(crate) fn runs_low(&self, low_water: u64, now: i64, recheck_ms: i64) -> bool {
        let state = lock(&self.state);
        let left = state.leased.saturating_sub(state.spent);
        let dry = state
            .dry_at
            .is_some_and(|at| now.saturating_sub(at) < recheck_ms);
        left < low_water && !dry
    }

    /// What to ask the shared counter for: the debt and a slice of `want` (0: debt only).
    pub(crate) fn ask(&self, want: u64, limit: u64) -> Ask {
        let state = lock(&self.state);
        Ask {
            metric: state.metric,
            window_start: state.window_start,
            debt: state.spent.saturating_sub(state.leased),
            want,
            limit,
        }
    }

    /// Pushes the debt and takes a slice in one write on the store's writer (inside its
    /// transaction, which holds the database's write lock: no other process writes between
    /// the read and the update).
    pub(crate) async fn exchange(
        &self,
        store: &Store,
        ask: Ask,
        now: i64,
    ) -> Result<(), StoreError> {
        if ask.metric.is_empty() {
            return Ok(());
        }
        let subject = self.subject.to_string();
        let (granted, used) = store
            .write(move |c| {
                Box::pin(async move {
                    let mut rows = c
                        .query(
                            "SELECT used FROM allowance
                             WHERE subject = ?1 AND metric = ?2 AND window_start = ?3",
                            (subject.as_str(), ask.metric, ask.window_start),
                        )
                        .await?;
                    let before = match rows.next().await? {
                        Some(row) => u64::try_from(row.get::<i64>(0)?).unwrap_or(0),
                        None => 0,
                    };
                    drop(rows);
                    let owed = before.saturating_add(ask.debt);
                    let granted = ask.want.min(ask.limit.saturating_sub(owed));
                    let used = owed.saturating_add(granted);
                    if used != before {
                        c.execute(
                            "INSERT INTO allowance (subject, metric, window_start, used)
                             VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (subject, metric, window_start)
                             DO UPDATE SET used = excluded.used",
                            (
                                subject.as_str(),
                                ask.metric,
                                ask.window_start,
                                i64::try_from(used).unwrap_or(i64::MAX),
                            ),
                        )
                        .await?;
                    }
                    Ok((granted, used))
                })
            })
            .await?;
        let mut state = lock(&self.state);
        if state.window_start == ask.window_start && state.metric == ask.metric {
            state.leased = state.leased.saturating_add(ask.debt + granted);
            state.shared_used = used;
            if granted < ask.want {
                state.dry_at = Some(now);
            } else if granted > 0 {
                state.dry_at = None;
            }
        }
        Ok(())
    }

    /// Gives back what this process leased and did not spend, if no request used the lease
    /// since `idle_since` (or always, with `i64::MAX`): other processes may then lease it.
    pub(crate) async fn give_back(&self, store: &Store, idle_since: i64) -> Result<(), StoreError> {
        let (metric, window_start, unused) = {
            let mut state = lock(&self.state);
            let unused = state.leased.saturating_sub(state.spent);
            if unused == 0 || state.last_used_ms > idle_since || state.metric.is_empty() {
                return Ok(());
            }
            // Dropped here first, so nothing of it is spent while the write is on its way; a
            // failed write leaves it counted as used (the safe side).
            state.leased -= unused;
            state.shared_used = state.shared_used.saturating_sub(unused);
            (state.metric, state.window_start, unused)
        };
        let subject = self.subject.to_string();
        store
            .write(move |c| {
                Box::pin(async move {
                    c.execute(
                        "UPDATE allowance SET used = MAX(used - ?4, 0)
                         WHERE subject = ?1 AND metric = ?2 AND window_start = ?3",
                        (
                            subject.as_str(),
                            metric,
                            window_start,
                            i64::try_from(unused).unwrap_or(i64::MAX),
                        ),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Whether the lease holds nothing and owes nothing (an idle account may be forgotten).
    pub(crate) fn is_empty(&self) -> bool {
        let state = lock(&self.state);
        state.leased == state.spent || state.metric.is_empty()
    }

    /// When the lease was last used (store clock).
    pub(crate) fn last_used_ms(&self) -> i64 {
        lock(&self.state).last_used_ms
    }

    /// The lease as rate-limit headers show it.
    pub(crate) fn gauge(
        &self,
        metric: &'static str,
        window: (i64, i64),
        now: i64,
        limit: u64,
    ) -> Gauge {
        let mut state = lock(&self.state);
        Self::roll(&mut state, metric, window);
        let others = state.shared_used.saturating_sub(state.leased);
        let remaining = limit.saturating_sub(others.saturating_add(state.spent));
        let reset_ms = if state.window_end == i64::MAX {
            u64::MAX
        } else {
            u64::try_from(state.window_end.saturating_sub(now)).unwrap_or(0)
        };
        Gauge {
            limit,
            remaining,
            reset_ms,
        }
    }

    /// The current window's start (for [`Lease::untake`]).
    pub(crate) fn window_start(&self) -> i64 {
        lock(&self.state).window_start
    }
}
