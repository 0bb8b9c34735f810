//! The limiter: a key's (or team's) requests and tokens per minute, concurrent requests and
//! budget per period, held **across every process sharing one store**, without the hot path
//! waiting for the database on every request.
//!
//! Windowed limits are leases of a shared counter ([`lease`]): a process takes a slice of a
//! window's allowance in one write, admits requests against it from memory, refills in the
//! background when it runs low and gives back what it did not use when idle. Concurrent
//! requests are a hold of slots ([`hold`]) that expires unless renewed, so a dead process's
//! slots come back. Windows are calendar ones ([`window`]). A background task ([`Limiter::
//! spawn_tender`]) renews holds, gives back idle leases, pushes charges past a lease to the
//! shared counter and deletes old windows.
//!
//! What holds, across processes (docs/security.md, "Quotas and budgets"):
//! - **requests per minute**: never exceeded. A request is admitted only against a unit its
//!   process leased, and the leases of a window never sum past the limit.
//! - **tokens per minute, budget**: known only after the answer. A request is admitted while its
//!   process's lease has something left; its actual amount is charged when it finishes, past the
//!   lease and past the limit if need be (the shared counter then shows the overshoot, and every
//!   process refuses until the window ends). The overshoot is at most what the requests in flight
//!   when the limit is reached consume beyond what was left: at most `in flight × the most one
//!   request consumes` (with `max_parallel_requests` set, in flight ≤ that limit).
//! - **concurrent requests**: never exceeded while holds are renewed; a process that dies holds
//!   its slots until its hold expires (`hold_ttl`).
//!
//! What it costs: a process may hold up to one slice (`lease_percent` of the limit) of a window
//! it is not using until `idle_return` passes, so another process may be refused meanwhile
//! (under-admission, never over); a process that dies loses the unspent rest of its slices for
//! their windows (a minute for rates, the period for a budget).

mod hold;
mod lease;
mod window;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aigw_memory::{Store, StoreError};

use self::hold::{Hold, PARALLEL};
pub use self::lease::Gauge;
use self::lease::{Lease, Local, Spending};
use self::window::Span;
use crate::{Key, KeySpec, Period, TeamSpec};

/// The limiter's knobs (`[limits]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterOptions {
    /// How much of a limit one lease takes, in percent (at least one unit): larger slices mean
    /// fewer writes, smaller ones less allowance parked in an idle process.
    pub lease_percent: u64,
    /// A lease (or held slots) unused this long is given back for other processes.
    pub idle_return: Duration,
    /// How long a concurrency hold lasts unless renewed: how long a dead process's slots stay
    /// taken. Renewed every third of it.
    pub hold_ttl: Duration,
    /// After the shared counter had nothing left, how long requests are refused from memory
    /// before it is asked again.
    pub recheck: Duration,
    /// How often windows that ended are deleted.
    pub sweep_interval: Duration,
}

impl Default for LimiterOptions {
    fn default() -> LimiterOptions {
        LimiterOptions {
            lease_percent: 10,
            idle_return: Duration::from_secs(2),
            hold_ttl: Duration::from_secs(30),
            recheck: Duration::from_millis(500),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// What a subject may do, from its spec. An absent limit is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    /// Requests per UTC day (a key's tool calls).
    pub requests_per_day: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub parallel_requests: Option<u64>,
    /// The budget in micro-USD per `budget_period`.
    pub budget_micro_usd: Option<u64>,
    /// `None` with a budget: the budget is for the subject's lifetime.
    pub budget_period: Option<Period>,
}

impl Limits {
    /// The limits a key's (or team's) spec sets.
    pub fn of(spec: &KeySpec) -> Limits {
        Limits {
            requests_per_minute: spec.rpm_limit,
            requests_per_day: None,
            tokens_per_minute: spec.tpm_limit,
            parallel_requests: spec.max_parallel_requests,
            budget_micro_usd: spec.max_budget.map(micro_usd),
            budget_period: spec.budget_duration,
        }
    }

    /// The limits on a key's tool calls (`tool_calls_per_minute`, `tool_calls_per_day`),
    /// counted apart from its chat requests.
    pub fn of_tools(spec: &KeySpec) -> Limits {
        Limits {
            requests_per_minute: spec.tool_calls_per_minute,
            requests_per_day: spec.tool_calls_per_day,
            ..Limits::default()
        }
    }

    /// The limits a team's spec sets (over all its keys together).
    pub fn of_team(spec: &TeamSpec) -> Limits {
        Limits {
            requests_per_minute: spec.rpm_limit,
            requests_per_day: None,
            tokens_per_minute: spec.tpm_limit,
            parallel_requests: spec.max_parallel_requests,
            budget_micro_usd: spec.max_budget.map(micro_usd),
            budget_period: spec.budget_duration,
        }
    }

    /// Whether no limit is set (the limiter is not consulted at all).
    pub fn is_none(&self) -> bool {
        self.requests_per_minute.is_none()
            && self.requests_per_day.is_none()
            && self.tokens_per_minute.is_none()
            && self.parallel_requests.is_none()
            && self.budget_micro_usd.is_none()
    }
}

/// USD to micro-USD, rounded, saturating (a budget is validated finite and ≥ 0).
fn micro_usd(usd: f64) -> u64 {
    let micro = (usd * 1e6).round();
    if micro.is_finite() && micro > 0.0 {
        micro.min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// Who a limit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    Key,
    Team,
    /// A key's tool calls: their own counters, apart from the key's chat requests.
    Tools,
}

/// One subject a request counts against, with its limits.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub kind: SubjectKind,
    pub id: &'a str,
    pub limits: Limits,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Requests,
    /// Requests per UTC day.
    DailyRequests,
    Tokens,
    Budget,
    Parallel,
}

/// A request refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: SubjectKind,
    /// The key's or team's id.
    pub id: String,
    pub metric: Metric,
    /// The limit reached (micro-USD for a budget).
    pub limit: u64,
    /// The budget's period, for a budget refusal.
    pub period: Option<Period>,
    /// When to try again: the window's end (none for a lifetime budget).
    pub retry_after: Option<Duration>,
    /// The first subject's gauges, for the rate-limit headers of the refusal.
    pub headroom: Headroom,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("limit reached: {0:?}")]
    Limit(Box<Refusal>),
    /// The shared counter could not be asked (the request is refused, not admitted unchecked).
    #[error("the quota store could not be reached: {0}")]
    Unavailable(StoreError),
}

/// The rate-limit headers' figures of a request's first subject (its key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Headroom {
    pub requests: Option<Gauge>,
    pub tokens: Option<Gauge>,
}

/// One subject's limits as this process holds them.
#[derive(Debug)]
struct Account {
    requests: Lease,
    /// Requests per UTC day (tool calls).
    daily: Lease,
    tokens: Lease,
    spend: Lease,
    parallel: Hold,
}

impl Account {
    fn new(subject: Arc<str>) -> Account {
        Account {
            requests: Lease::new(Arc::clone(&subject), Spending::UpFront),
            daily: Lease::new(Arc::clone(&subject), Spending::UpFront),
            tokens: Lease::new(Arc::clone(&subject), Spending::After),
            spend: Lease::new(Arc::clone(&subject), Spending::After),
            parallel: Hold::new(subject),
        }
    }

    fn leases(&self) -> [&Lease; 4] {
        [&self.requests, &self.daily, &self.tokens, &self.spend]
    }

    /// Gives back what an admission took up front (its request, this minute and today).
    fn untake(&self, limits: &Limits) {
        if limits.requests_per_minute.is_some() {
            self.requests.untake(self.requests.window_start());
        }
        if limits.requests_per_day.is_some() {
            self.daily.untake(self.daily.window_start());
        }
    }

    fn idle_since(&self) -> i64 {
        self.leases()
            .iter()
            .map(|l| l.last_used_ms())
            .chain([self.parallel.last_used_ms()])
            .max()
            .unwrap_or(0)
    }
}

/// Which windowed metric of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Windowed {
    Requests,
    Daily,
    Tokens,
    Spend,
}

impl Windowed {
    fn lease(self, account: &Account) -> &Lease {
        match self {
            Windowed::Requests => &account.requests,
            Windowed::Daily => &account.daily,
            Windowed::Tokens => &account.tokens,
            Windowed::Spend => &account.spend,
        }
    }

    fn metric(self, limits: &Limits) -> (&'static str, Span) {
        match self {
            Windowed::Requests => ("requests", Span::Minute),
            Windowed::Daily => ("requests:day", Span::Period(Period::Day)),
            Windowed::Tokens => ("tokens", Span::Minute),
            Windowed::Spend => {
                let span = Span::budget(limits.budget_period);
                (span.spend_metric(), span)
            }
        }
    }

    fn limit(self, limits: &Limits) -> Option<u64> {
        match self {
            Windowed::Requests => limits.requests_per_minute,
            Windowed::Daily => limits.requests_per_day,
            Windowed::Tokens => limits.tokens_per_minute,
            Windowed::Spend => limits.budget_micro_usd,
        }
    }

    fn refused(self) -> Metric {
        match self {
            Windowed::Requests => Metric::Requests,
            Windowed::Daily => Metric::DailyRequests,
            Windowed::Tokens => Metric::Tokens,
            Windowed::Spend => Metric::Budget,
        }
    }
}

/// The most writes one admission makes to one lease before it gives up (other requests kept
/// taking what it leased): bounds the wait of a request on a contended limit.
const MAX_ASKS: usize = 3;

/// The limiter of one process. Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    options: LimiterOptions,
    /// This process's name in `holds`: unique per limiter, so two processes never share a row.
    holder: String,
    keys: RwLock<HashMap<Box<str>, Arc<Account>>>,
    teams: RwLock<HashMap<Box<str>, Arc<Account>>>,
    /// Keys' tool calls.
    tools: RwLock<HashMap<Box<str>, Arc<Account>>>,
    /// When old windows were last swept (store clock).
    swept_at: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("holder", &self.holder)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// An admitted request. Finish it with what it consumed; dropped unfinished, it frees its
/// concurrency slots and charges nothing more.
#[derive(Debug)]
pub struct Ticket {
    inner: Option<Arc<Inner>>,
    parts: Vec<Part>,
    headroom: Headroom,
}

#[derive(Debug)]
struct Part {
    account: Arc<Account>,
    limits: Limits,
    /// Whether a concurrency slot is held (freed on drop).
    slot: bool,
}

impl Drop for Part {
    fn drop(&mut self) {
        if self.slot {
            self.account.parallel.release();
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Limiter {
    /// A limiter over `store` (the process's store: every process sharing the file shares the
    /// limits). Start its background work with [`Limiter::spawn_tender`].
    pub fn new(store: Arc<Store>, options: LimiterOptions) -> Limiter {
        let random = RandomState::new().hash_one(std::process::id());
        Limiter {
            inner: Arc::new(Inner {
                holder: format!("{}-{random:016x}", std::process::id()),
                store,
                options,
                keys: RwLock::new(HashMap::new()),
                teams: RwLock::new(HashMap::new()),
                tools: RwLock::new(HashMap::new()),
                swept_at: std::sync::atomic::AtomicI64::new(i64::MIN),
            }),
        }
    }

    /// This process's holder name (its rows in `holds`).
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// Admits a request for `key` against the key's limits, then its team's (if it has one).
    pub async fn admit(&self, key: &Key) -> Result<Ticket, Refused> {
        let own = Subject {
            kind: SubjectKind::Key,
            id: &key.id,
            limits: Limits::of(&key.spec),
        };
        match &key.team {
            None => self.admit_all(&[own]).await,
            Some(team) => {
                let team = Subject {
                    kind: SubjectKind::Team,
                    id: &team.id,
                    limits: Limits::of_team(&team.spec),
                };
                self.admit_all(&[own, team]).await
            }
        }
    }

    /// Admits a tool call for `key` against its tool quota (`tool_calls_per_minute`,
    /// `tool_calls_per_day`), counted apart from its chat requests; a key without one is
    /// admitted without a store access.
    pub async fn admit_tool_call(&self, key: &Key) -> Result<Ticket, Refused> {
        self.admit_all(&[Subject {
            kind: SubjectKind::Tools,
            id: &key.id,
            limits: Limits::of_tools(&key.spec),
        }])
        .await
    }

    /// Admits a request counting against every subject (a key, then its team): refused by the
    /// first limit reached, and then nothing of it is taken from the others.
    pub async fn admit_all(&self, subjects: &[Subject<'_>]) -> Result<Ticket, Refused> {
        let mut parts = Vec::new();
        for subject in subjects {
            if subject.limits.is_none() {
                continue;
            }
            let account = self.inner.account(subject.kind, subject.id);
            match self.inner.admit_one(&account, &subject.limits).await {
                Ok(slot) => parts.push(Part {
                    account,
                    limits: subject.limits,
                    slot,
                }),
                Err(refused) => {
                    for part in &parts {
                        part.account.untake(&part.limits);
                    }
                    let refused = match refused {
                        Failure::Store(e) => Refused::Unavailable(e),
                        Failure::Limit(metric, limit, retry_after) => {
                            let headroom = match subjects.first() {
                                Some(first) => self.headroom(first),
                                None => Headroom::default(),
                            };
                            Refused::Limit(Box::new(Refusal {
                                kind: subject.kind,
                                id: subject.id.to_owned(),
                                metric,
                                limit,
                                period: (metric == Metric::Budget)
                                    .then_some(subject.limits.budget_period)
                                    .flatten(),
                                retry_after,
                                headroom,
                            }))
                        }
                    };
                    return Err(refused);
                }
            }
        }
        let headroom = match (subjects.first(), parts.is_empty()) {
            (Some(first), false) => self.headroom(first),
            _ => Headroom::default(),
        };
        Ok(Ticket {
            inner: (!parts.is_empty()).then(|| Arc::clone(&self.inner)),
            parts,
            headroom,
        })
    }

    /// The rate-limit figures of `subject` as this process knows them (no store access).
    pub fn headroom(&self, subject: &Subject<'_>) -> Headroom {
        let limits = &subject.limits;
        if limits.requests_per_minute.is_none() && limits.tokens_per_minute.is_none() {
            return Headroom::default();
        }
        let account = self.inner.account(subject.kind, subject.id);
        let now = self.inner.store.now_ms();
        let gauge = |which: Windowed, limit: Option<u64>| {
            limit.map(|limit| {
                let (metric, span) = which.metric(limits);
                which
                    .lease(&account)
                    .gauge(metric, span.window(now), now, limit)
            })
        };
        Headroom {
            requests: gauge(Windowed::Requests, limits.requests_per_minute),
            tokens: gauge(Windowed::Tokens, limits.tokens_per_minute),
        }
    }

    /// One round of the background work, by the store's clock: pushes charges past a lease,
    /// gives back leases and slots idle for `idle_return`, renews this process's holds, deletes
    /// ended windows and expired holds (every `sweep_interval`), and forgets idle accounts.
    pub async fn tend(&self) -> Result<(), StoreError> {
        self.inner.tend().await
    }

    /// Gives back every unspent lease and deletes this process's holds (at shutdown: other
    /// processes may use them at once instead of after `hold_ttl`).
    pub async fn close(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        for account in inner.accounts() {
            for lease in account.leases() {
                lease.give_back(&inner.store, i64::MAX).await?;
            }
        }
        let holder = inner.holder.clone();
        inner
            .store
            .write(move |c| {
                Box::pin(async move {
                    c.execute("DELETE FROM holds WHERE holder = ?1", [holder.as_str()])
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Starts the background work on the current tokio runtime: [`Limiter::tend`] every half
    /// `idle_return` (at most a third of `hold_ttl`), until the store closes.
    pub fn spawn_tender(&self) -> tokio::task::JoinHandle<()> {
        let inner = Arc::downgrade(&self.inner);
        let options = &self.inner.options;
        let every = (options.idle_return / 2)
            .min(options.hold_ttl / 3)
            .max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                match inner.tend().await {
                    Ok(()) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => tracing::warn!(error = %e, "limits: background accounting failed"),
                }
            }
        })
    }
}

/// Why one subject refused.
enum Failure {
    Store(StoreError),
    /// The metric, its limit, when to retry.
    Limit(Metric, u64, Option<Duration>),
}

impl Inner {
    fn account(&self, kind: SubjectKind, id: &str) -> Arc<Account> {
        let map = match kind {
            SubjectKind::Key => &self.keys,
            SubjectKind::Team => &self.teams,
            SubjectKind::Tools => &self.tools,
        };
        if let Some(account) = read(map).get(id) {
            return Arc::clone(account);
        }
        let prefix = match kind {
            SubjectKind::Key => "key",
            SubjectKind::Team => "team",
            SubjectKind::Tools => "tools",
        };
        let subject: Arc<str> = format!("{prefix}:{id}").into();
        Arc::clone(
            write(map)
                .entry(id.into())
                .or_insert_with(|| Arc::new(Account::new(subject))),
        )
    }

    fn accounts(&self) -> Vec<Arc<Account>> {
        read(&self.keys)
            .values()
            .chain(read(&self.teams).values())
            .chain(read(&self.tools).values())
            .cloned()
            .collect()
    }

    /// The slice one lease of `limit` takes.
    fn slice(&self, limit: u64) -> u64 {
        (limit.saturating_mul(self.options.lease_percent.clamp(1, 100)) / 100).max(1)
    }

    fn recheck_ms(&self) -> i64 {
        millis(self.options.recheck).max(1)
    }

    /// Checks one subject's limits in order — budget, tokens, requests, concurrency — and
    /// takes what is taken up front; answers whether a concurrency slot is held.
    async fn admit_one(&self, account: &Arc<Account>, limits: &Limits) -> Result<bool, Failure> {
        for which in [Windowed::Spend, Windowed::Tokens] {
            if let Some(limit) = which.limit(limits) {
                self.admit_windowed(account, which, limits, limit).await?;
            }
        }
        if let Some(limit) = limits.requests_per_minute {
            self.admit_windowed(account, Windowed::Requests, limits, limit)
                .await?;
        }
        if let Some(limit) = limits.requests_per_day
            && let Err(failure) = self
                .admit_windowed(account, Windowed::Daily, limits, limit)
                .await
        {
            account.untake(&Limits {
                requests_per_day: None,
                ..*limits
            });
            return Err(failure);
        }
        let Some(limit) = limits.parallel_requests else {
            return Ok(false);
        };
        match self.take_slot(account, limit).await {
            Ok(()) => Ok(true),
            Err(failure) => {
                account.untake(limits);
                Err(failure)
            }
        }
    }

    async fn admit_windowed(
        &self,
        account: &Arc<Account>,
        which: Windowed,
        limits: &Limits,
        limit: u64,
    ) -> Result<(), Failure> {
        let lease = which.lease(account);
        let (metric, span) = which.metric(limits);
        let recheck = self.recheck_ms();
        let refused = |now: i64| {
            let end = span.window(now).1;
            let retry = (end != i64::MAX)
                .then(|| Duration::from_millis(u64::try_from(end - now).unwrap_or(0)));
            Failure::Limit(which.refused(), limit, retry)
        };
        for _ in 0..MAX_ASKS {
            let now = self.store.now_ms();
            match lease.try_admit(metric, span.window(now), now, recheck) {
                Local::Admitted => {
                    self.refill_if_low(account, which, limit, now);
                    return Ok(());
                }
                Local::Dry => return Err(refused(now)),
                Local::Empty => {}
            }
            // The lease is empty: wait for the one write that refills it.
            let _gate = lease.gate.lock().await;
            let now = self.store.now_ms();
            match lease.try_admit(metric, span.window(now), now, recheck) {
                Local::Admitted => {
                    drop(_gate);
                    self.refill_if_low(account, which, limit, now);
                    return Ok(());
                }
                Local::Dry => return Err(refused(now)),
                Local::Empty => {}
            }
            let ask = lease.ask(self.slice(limit), limit);
            lease
                .exchange(&self.store, ask, now)
                .await
                .map_err(Failure::Store)?;
        }
        Err(refused(self.store.now_ms()))
    }

    /// Refills `which` in the background when it runs below half a slice (or owes the shared
    /// counter), unless a refill is on its way already.
    fn refill_if_low(&self, account: &Arc<Account>, which: Windowed, limit: u64, now: i64) {
        let slice = self.slice(limit);
        let lease = which.lease(account);
        if !lease.runs_low(slice.div_ceil(2), now, self.recheck_ms()) {
            return;
        }
        self.spawn_exchange(account, which, limit, slice);
    }

    /// Pushes `which`'s debt and asks for `want` more in the background, unless a write for
    /// it is on its way already.
    fn spawn_exchange(&self, account: &Arc<Account>, which: Windowed, limit: u64, want: u64) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime (a ticket finished outside one): the tender pushes the debt.
            return;
        };
        let Ok(gate) = which.lease(account).gate.clone().try_lock_owned() else {
            return;
        };
        let account = Arc::clone(account);
        let store = Arc::clone(&self.store);
        handle.spawn(async move {
            let _gate = gate;
            let lease = which.lease(&account);
            let ask = lease.ask(want, limit);
            if let Err(e) = lease.exchange(&store, ask, store.now_ms()).await {
                tracing::warn!(subject = %lease.subject, error = %e, "limits: refill failed");
            }
        });
    }

    async fn take_slot(&self, account: &Arc<Account>, limit: u64) -> Result<(), Failure> {
        let hold = &account.parallel;
        let recheck = self.recheck_ms();
        let refused = Failure::Limit(Metric::Parallel, limit, Some(Duration::from_secs(1)));
        let ttl = millis(self.options.hold_ttl).max(1);
        for _ in 0..MAX_ASKS {
            let now = self.store.now_ms();
            match hold.try_take(now, recheck) {
                Local::Admitted => return Ok(()),
                Local::Dry => return Err(refused),
                Local::Empty => {}
            }
            let _gate = hold.gate.lock().await;
            let now = self.store.now_ms();
            match hold.try_take(now, recheck) {
                Local::Admitted => return Ok(()),
                Local::Dry => return Err(refused),
                Local::Empty => {}
            }
            hold.grow(
                &self.store,
                &self.holder,
                self.slice(limit),
                limit,
                now,
                ttl,
            )
            .await
            .map_err(Failure::Store)?;
        }
        Err(refused)
    }

    async fn tend(&self) -> Result<(), StoreError> {
        let now = self.store.now_ms();
        let idle_since = now.saturating_sub(millis(self.options.idle_return));
        let ttl = millis(self.options.hold_ttl).max(1);
        let accounts = self.accounts();
        let mut holding = false;
        for account in &accounts {
            for lease in account.leases() {
                // Debts first: other processes must see what was charged past the leases.
                let ask = lease.ask(0, u64::MAX);
                if ask.owes() {
                    let _gate = lease.gate.lock().await;
                    lease
                        .exchange(&self.store, lease.ask(0, u64::MAX), now)
                        .await?;
                }
                lease.give_back(&self.store, idle_since).await?;
            }
            account
                .parallel
                .shrink(&self.store, &self.holder, idle_since, now, ttl)
                .await?;
            holding |= !account.parallel.is_empty();
        }
        if holding {
            let holder = self.holder.clone();
            let expires_at = now.saturating_add(ttl);
            self.store
                .write(move |c| {
                    Box::pin(async move {
                        c.execute(
                            "UPDATE holds SET expires_at = ?2 WHERE holder = ?1",
                            (holder.as_str(), expires_at),
                        )
                        .await?;
                        Ok(())
                    })
                })
                .await?;
            for account in &accounts {
                account.parallel.renewed(expires_at);
            }
        }
        // Accounts idle for long and holding nothing are forgotten (their state is in the
        // store); one still referenced by a ticket lives on in it.
        let forget_before = now.saturating_sub(millis(self.options.idle_return) * 30);
        for map in [&self.keys, &self.teams, &self.tools] {
            write(map).retain(|_, account| {
                Arc::strong_count(account) > 1
                    || account.idle_since() > forget_before
                    || !account.leases().iter().all(|l| l.is_empty())
                    || !account.parallel.is_empty()
            });
        }
        let swept_at = self.swept_at.load(std::sync::atomic::Ordering::Relaxed);
        if swept_at == i64::MIN
            || now.saturating_sub(swept_at) >= millis(self.options.sweep_interval)
        {
            self.swept_at
                .store(now, std::sync::atomic::Ordering::Relaxed);
            sweep(&self.store, now).await?;
        }
        Ok(())
    }
}

/// Deletes the windows that ended before `now` (a minute's once the next one ended too, so a
/// late charge still finds its row) and expired holds.
async fn sweep(store: &Store, now: i64) -> Result<(), StoreError> {
    let minute = Span::Minute.window(now).0 - 60_000;
    let day = Span::Period(Period::Day).window(now).0;
    let week = Span::Period(Period::Week).window(now).0;
    let month = Span::Period(Period::Month).window(now).0;
    store
        .write(move |c| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM allowance WHERE
                        (metric IN ('requests', 'tokens') AND window_start < ?1)
                     OR (metric = 'spend:day' AND window_start < ?2)
                     OR (metric = 'spend:week' AND window_start < ?3)
                     OR (metric = 'spend:month' AND window_start < ?4)",
                    (minute, day, week, month),
                )
                .await?;
                c.execute(
                    "DELETE FROM holds WHERE metric = ?1 AND expires_at <= ?2",
                    (PARALLEL, now),
                )
                .await?;
                Ok(())
            })
        })
        .await
}

impl Ticket {
    /// A ticket of a request nothing limits.
    pub fn unlimited() -> Ticket {
        Ticket {
            inner: None,
            parts: Vec::new(),
            headroom: Headroom::default(),
        }
    }

    /// The rate-limit figures at admission (of the first subject: the key).
    pub fn headroom(&self) -> &Headroom {
        &self.headroom
    }

    /// Charges what the request consumed: `tokens` (prompt + completion) and its spend in
    /// micro-USD, past the lease and the limit if need be. Frees its concurrency slots.
    pub fn finish(self, tokens: u64, spend_micro_usd: u64) {
        let Some(inner) = &self.inner else {
            return;
        };
        let now = inner.store.now_ms();
        for part in &self.parts {
            for (which, amount) in [
                (Windowed::Tokens, tokens),
                (Windowed::Spend, spend_micro_usd),
            ] {
                let Some(limit) = which.limit(&part.limits) else {
                    continue;
                };
                if amount == 0 {
                    continue;
                }
                let (metric, span) = which.metric(&part.limits);
                let owes = which
                    .lease(&part.account)
                    .charge(metric, span.window(now), now, amount);
                if owes {
                    inner.spawn_exchange(&part.account, which, limit, inner.slice(limit));
                } else {
                    inner.refill_if_low(&part.account, which, limit, now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
