//! The usage ledger: requests, tokens and spend per key, target and UTC day, in migration 7's
//! `usage` table, so every process on one database adds to the same rows and
//! `GET /admin/usage` reads them all.
//!
//! The hot path never waits for the database: [`Ledger::record`] adds to an in-memory map
//! (one short lock), and [`Ledger::flush`] writes everything gathered since the last flush in
//! one store write (one upsert per row, adding to what is stored). A flush runs every
//! `usage.flush_interval_ms` ([`spawn_flusher`]), before every query (so a process reads its
//! own usage at once; other processes' arrives within their interval), and when the binary
//! stops serving. A flush that fails puts its counts back, to go with the next one: a store that
//! is briefly unavailable loses nothing; a crash loses at most one interval.
//!
//! Requests without a key (`Principal::Open`: authentication off, or the admin key) are
//! recorded under the key id [`OPEN_KEY_ID`], `-`, so spend per target is still seen. The day is
//! the store clock's UTC day when the request finished.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aigw_memory::{Store, StoreError, Value};

use crate::prices::Tokens;

/// The key id of requests presenting no key.
pub const OPEN_KEY_ID: &str = "-";

/// `[usage]`: how the ledger reaches the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageOptions {
    /// How often gathered usage is written to the store.
    pub flush_interval: Duration,
}

impl Default for UsageOptions {
    fn default() -> UsageOptions {
        UsageOptions {
            flush_interval: Duration::from_millis(1000),
        }
    }
}

/// A UTC calendar day, `YYYY-MM-DD` (which sorts as text in date order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(String);

impl Day {
    /// The day `days` days after 1970-01-01.
    fn of_days(days: i64) -> Day {
        let (y, m, d) = civil_from_days(days);
        Day(format!("{y:04}-{m:02}-{d:02}"))
    }

    /// A day written `YYYY-MM-DD`; `None` for anything else (a month 13, February 30th).
    pub fn parse(text: &str) -> Option<Day> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let digits = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = text.get(range)?;
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let days = days_from_civil(i64::from(y), m, d);
        (civil_from_days(days) == (i64::from(y), m, d)).then(|| Day(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC day count since 1970-01-01 of `ms` milliseconds since the Unix epoch.
fn days_of_ms(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// What one row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub spend_micro_usd: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.spend_micro_usd = self.spend_micro_usd.saturating_add(other.spend_micro_usd);
    }
}

/// A row's identity: day (a count since the epoch), key id, target label.
type RowKey = (i64, String, String);

/// Counts gathered since the last flush, by day (a count since the epoch), key id and target
/// label: nested, so a request's record finds its row by the strings it has (no day text,
/// key id and label built per request to look a row up; only a new row allocates).
#[derive(Default)]
struct Pending(HashMap<i64, HashMap<String, HashMap<String, Counts>>>);

impl Pending {
    fn add(&mut self, days: i64, key_id: &str, model: &str, counts: Counts) {
        let keys = self.0.entry(days).or_default();
        match keys.get_mut(key_id) {
            Some(models) => match models.get_mut(model) {
                Some(row) => row.add(counts),
                None => {
                    models.insert(model.to_owned(), counts);
                }
            },
            None => {
                keys.insert(
                    key_id.to_owned(),
                    HashMap::from([(model.to_owned(), counts)]),
                );
            }
        }
    }

    /// How many rows there are.
    fn rows(&self) -> usize {
        self.0
            .values()
            .flat_map(|keys| keys.values())
            .map(HashMap::len)
            .sum()
    }

    /// Every row, as written.
    fn into_rows(self) -> Vec<(RowKey, Counts)> {
        let mut rows = Vec::new();
        for (days, keys) in self.0 {
            for (key_id, models) in keys {
                for (model, counts) in models {
                    rows.push(((days, key_id.clone(), model), counts));
                }
            }
        }
        rows
    }
}

/// The process's usage ledger over the shared store.
pub struct Ledger {
    store: Arc<Store>,
    /// Gathered since the last flush.
    pending: Mutex<Pending>,
    /// Held across a flush's take-and-write, so a query's flush waits for one in flight and
    /// then reads everything recorded before it.
    flushing: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

impl Ledger {
    pub fn new(store: Arc<Store>) -> Ledger {
        Ledger {
            store,
            pending: Mutex::new(Pending::default()),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// Adds one part of a finished request: `tokens` consumed on the target `model` (its
    /// label), costing `spend_micro_usd`, for `key_id` ([`OPEN_KEY_ID`] without a key).
    /// `request` is whether this part is the request itself (the target that served, or last
    /// served): a request counts once however many targets it cost tokens on.
    pub fn record(
        &self,
        key_id: &str,
        model: &str,
        tokens: Tokens,
        spend_micro_usd: u64,
        request: bool,
    ) {
        let days = days_of_ms(self.store.now_ms());
        let counts = Counts {
            requests: u64::from(request),
            input_tokens: tokens.input,
            output_tokens: tokens.output,
            spend_micro_usd,
        };
        lock(&self.pending).add(days, key_id, model, counts);
    }

    /// Writes everything gathered so far to the store, in one write; on failure the counts
    /// are kept for the next flush. Returns how many rows it wrote.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let _flushing = self.flushing.lock().await;
        let rows = std::mem::take(&mut *lock(&self.pending)).into_rows();
        if rows.is_empty() {
            return Ok(0);
        }
        let count = rows.len();
        let written = rows.clone();
        let result = self
            .store
            .write(move |c| {
                Box::pin(async move {
                    for ((days, key_id, model), counts) in written {
                        c.execute(
                            "INSERT INTO usage (day, key_id, model, requests, input_tokens,
                                                output_tokens, spend_micro_usd)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                             ON CONFLICT (day, key_id, model) DO UPDATE SET
                                 requests = requests + excluded.requests,
                                 input_tokens = input_tokens + excluded.input_tokens,
                                 output_tokens = output_tokens + excluded.output_tokens,
                                 spend_micro_usd = spend_micro_usd + excluded.spend_micro_usd",
                            vec![
                                Value::Text(Day::of_days(days).0),
                                Value::Text(key_id),
                                Value::Text(model),
                                Value::Integer(sql_int(counts.requests)),
                                Value::Integer(sql_int(counts.input_tokens)),
                                Value::Integer(sql_int(counts.output_tokens)),
                                Value::Integer(sql_int(counts.spend_micro_usd)),
                            ],
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await;
        match result {
            Ok(()) => Ok(count),
            Err(error) => {
                let mut pending = lock(&self.pending);
                for ((days, key_id, model), counts) in rows {
                    pending.add(days, &key_id, &model, counts);
                }
                Err(error)
            }
        }
    }

    /// The stored usage `query` selects (after flushing this process's), and its total.
    pub async fn query(&self, query: UsageQuery) -> Result<(Vec<UsageRow>, Counts), StoreError> {
        self.flush().await?;
        self.store
            .read(move |c| {
                Box::pin(async move {
                    let mut conditions = Vec::new();
                    let mut params = Vec::new();
                    let mut bind = |sql: &str, value: String| {
                        params.push(Value::Text(value));
                        conditions.push(format!("{sql} ?{}", params.len()));
                    };
                    if let Some(key_id) = query.key_id {
                        bind("key_id =", key_id);
                    }
                    if let Some(model) = query.model {
                        bind("model =", model);
                    }
                    if let Some(from) = query.from {
                        bind("day >=", from.0);
                    }
                    if let Some(to) = query.to {
                        bind("day <=", to.0);
                    }
                    let filter = if conditions.is_empty() {
                        String::new()
                    } else {
                        format!("WHERE {}", conditions.join(" AND "))
                    };
                    let g = query.group_by;
                    // Only these three fixed column names are ever put into the SQL.
                    let column = |on: bool, name: &str| {
                        if on {
                            name.to_owned()
                        } else {
                            "NULL".to_owned()
                        }
                    };
                    let grouped: Vec<&str> =
                        [(g.date, "day"), (g.key_id, "key_id"), (g.model, "model")]
                            .into_iter()
                            .filter(|(on, _)| *on)
                            .map(|(_, name)| name)
                            .collect();
                    let group = if grouped.is_empty() {
                        String::new()
                    } else {
                        format!("GROUP BY {0} ORDER BY {0}", grouped.join(", "))
                    };
                    let sql = format!(
                        "SELECT {}, {}, {}, SUM(requests), SUM(input_tokens), SUM(output_tokens),
                                SUM(spend_micro_usd)
                         FROM usage {filter} {group}",
                        column(g.date, "day"),
                        column(g.key_id, "key_id"),
                        column(g.model, "model"),
                    );
                    let mut rows = c.query(&sql, params).await?;
                    let mut out = Vec::new();
                    let mut total = Counts::default();
                    while let Some(row) = rows.next().await? {
                        let counts = Counts {
                            requests: count(row.get::<Option<i64>>(3)?),
                            input_tokens: count(row.get::<Option<i64>>(4)?),
                            output_tokens: count(row.get::<Option<i64>>(5)?),
                            spend_micro_usd: count(row.get::<Option<i64>>(6)?),
                        };
                        // An ungrouped query over no rows still answers one row of NULL sums.
                        if grouped.is_empty() && row.get::<Option<i64>>(3)?.is_none() {
                            continue;
                        }
                        total.add(counts);
                        out.push(UsageRow {
                            date: row.get::<Option<String>>(0)?,
                            key_id: row.get::<Option<String>>(1)?,
                            model: row.get::<Option<String>>(2)?,
                            counts,
                        });
                    }
                    Ok((out, total))
                })
            })
            .await
    }

    /// How many rows wait for the next flush (for tests and metrics).
    pub fn pending_rows(&self) -> usize {
        lock(&self.pending).rows()
    }
}

/// Which columns a usage query keeps apart; the others are summed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    pub date: bool,
    pub key_id: bool,
    pub model: bool,
}

impl Default for Grouping {
    /// Every row apart: per day, key and target.
    fn default() -> Grouping {
        Grouping {
            date: true,
            key_id: true,
            model: true,
        }
    }
}

/// What `GET /admin/usage` asks for: filters (all optional, the days inclusive) and grouping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageQuery {
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub from: Option<Day>,
    pub to: Option<Day>,
    pub group_by: Grouping,
}

/// One answered row; a column summed over (not grouped by) is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub date: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub counts: Counts,
}

/// Starts flushing `ledger` every `interval` on the current tokio runtime, until the ledger is
/// dropped (it is held weakly). The binary flushes once more when it stops serving.
pub fn spawn_flusher(ledger: &Arc<Ledger>, interval: Duration) -> tokio::task::JoinHandle<()> {
    let ledger: Weak<Ledger> = Arc::downgrade(ledger);
    let interval = interval.max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: nothing is gathered yet.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(ledger) = ledger.upgrade() else {
                return;
            };
            match ledger.flush().await {
                Ok(_) => {}
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(
                    error = %e,
                    "usage: writing to the store failed; kept for the next flush"
                ),
            }
        }
    })
}

/// A count as SQLite's signed integer (no count reaches 2⁶³).
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored sum as a count.
fn count(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

/// Locks the pending map; a panic while it was held left at worst one row's counts unadded.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use aigw_memory::{ManualClock, StoreOptions};

    use super::*;

    /// 2026-03-04T23:59:59.000Z.
    const LATE: i64 = 1_772_668_799_000;

    async fn ledger(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> (Arc<Store>, Ledger) {
        let mut options = StoreOptions::new(dir.path().join("aigw.db"));
        options.clock = clock;
        let store = Arc::new(Store::open(options).await.unwrap());
        (Arc::clone(&store), Ledger::new(store))
    }

    async fn stored(store: &Store) -> Vec<(String, String, String, i64, i64, i64, i64)> {
        store
            .read(|c| {
                Box::pin(async move {
                    let mut rows = c
                        .query(
                            "SELECT day, key_id, model, requests, input_tokens, output_tokens,
                                    spend_micro_usd FROM usage ORDER BY day, key_id, model",
                            (),
                        )
                        .await?;
                    let mut out = Vec::new();
                    while let Some(r) = rows.next().await? {
                        out.push((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ));
                    }
                    Ok(out)
                })
            })
            .await
            .unwrap()
    }

    /// The day a record at `ms` is written under: its day count, then the count's text.
    fn day_of_ms(ms: i64) -> Day {
        Day::of_days(days_of_ms(ms))
    }

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of_ms(0).as_str(), "1970-01-01");
        assert_eq!(day_of_ms(LATE).as_str(), "2026-03-04");
        assert_eq!(day_of_ms(LATE + 1_000).as_str(), "2026-03-05");
        assert_eq!(day_of_ms(-1).as_str(), "1969-12-31");
        // 2024 is a leap year; 2100 is not.
        assert_eq!(day_of_ms(1_709_164_800_000).as_str(), "2024-02-29");
        assert!(Day::parse("2024-02-29").is_some());
        assert!(Day::parse("2100-02-29").is_none());
        assert!(Day::parse("2026-13-01").is_none());
        assert!(Day::parse("2026-1-01").is_none());
        assert!(Day::parse("2026-01-01T").is_none());
        assert!(Day::parse("+026-01-01").is_none());
        assert_eq!(Day::parse("2026-12-31").unwrap().as_str(), "2026-12-31");
    }

    #[tokio::test]
    async fn recorded_usage_waits_in_memory_and_one_flush_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(LATE - 60_000));
        let (store, ledger) = ledger(&dir, Arc::clone(&clock)).await;
        ledger.record("key_a", "groq/m", Tokens::new(10, 20), 30, true);
        ledger.record("key_a", "groq/m", Tokens::new(1, 2), 3, true);
        // A broken attempt's tokens on another target: tokens and spend, not a request.
        ledger.record("key_a", "cerebras/m", Tokens::new(5, 5), 7, false);
        ledger.record(OPEN_KEY_ID, "groq/m", Tokens::new(100, 0), 5, true);
        assert_eq!(ledger.pending_rows(), 3);
        assert!(
            stored(&store).await.is_empty(),
            "nothing is written before a flush"
        );
        let writes = store.stats().writes;
        assert_eq!(ledger.flush().await.unwrap(), 3);
        assert_eq!(
            store.stats().writes,
            writes + 1,
            "one store write per flush"
        );
        assert_eq!(ledger.pending_rows(), 0);
        let day = "2026-03-04".to_owned();
        assert_eq!(
            stored(&store).await,
            vec![
                (day.clone(), "-".into(), "groq/m".into(), 1, 100, 0, 5),
                (day.clone(), "key_a".into(), "cerebras/m".into(), 0, 5, 5, 7),
                (day.clone(), "key_a".into(), "groq/m".into(), 2, 11, 22, 33),
            ]
        );
        // A second flush adds to the stored rows.
        ledger.record("key_a", "groq/m", Tokens::new(1, 1), 1, true);
        assert_eq!(ledger.flush().await.unwrap(), 1);
        assert_eq!(ledger.flush().await.unwrap(), 0, "nothing left");
        assert_eq!(
            stored(&store).await[2],
            (day, "key_a".into(), "groq/m".into(), 3, 12, 23, 34)
        );
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_its_counts_for_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(LATE - 60_000));
        let (store, ledger) = ledger(&dir, Arc::clone(&clock)).await;
        ledger.record("key_a", "groq/m", Tokens::new(10, 20), 30, true);
        ledger.record("key_b", "groq/m", Tokens::new(1, 1), 1, true);
        // The table away: the flush's write fails.
        let rename = |sql: &'static str| {
            let store = Arc::clone(&store);
            async move {
                store
                    .write(move |c| {
                        Box::pin(async move {
                            c.execute(sql, ()).await?;
                            Ok(())
                        })
                    })
                    .await
                    .unwrap();
            }
        };
        rename("ALTER TABLE usage RENAME TO usage_away").await;
        assert!(ledger.flush().await.is_err());
        assert_eq!(ledger.pending_rows(), 2, "the counts are kept");
        // Recorded meanwhile: added to the kept row, not put beside it.
        ledger.record("key_a", "groq/m", Tokens::new(1, 2), 3, true);
        assert_eq!(ledger.pending_rows(), 2);
        rename("ALTER TABLE usage_away RENAME TO usage").await;
        assert_eq!(ledger.flush().await.unwrap(), 2);
        let day = "2026-03-04".to_owned();
        assert_eq!(
            stored(&store).await,
            vec![
                (day.clone(), "key_a".into(), "groq/m".into(), 2, 11, 22, 33),
                (day, "key_b".into(), "groq/m".into(), 1, 1, 1, 1),
            ]
        );
    }

    #[tokio::test]
    async fn usage_after_midnight_utc_goes_to_the_next_days_row() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(LATE));
        let (store, ledger) = ledger(&dir, Arc::clone(&clock)).await;
        ledger.record("key_a", "groq/m", Tokens::new(1, 1), 1, true);
        clock.advance(Duration::from_millis(999));
        ledger.record("key_a", "groq/m", Tokens::new(1, 1), 1, true);
        clock.advance(Duration::from_millis(1));
        ledger.record("key_a", "groq/m", Tokens::new(4, 4), 4, true);
        ledger.flush().await.unwrap();
        let rows = stored(&store).await;
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].0.as_str(), rows[0].3, rows[0].4),
            ("2026-03-04", 2, 2)
        );
        assert_eq!(
            (rows[1].0.as_str(), rows[1].3, rows[1].4),
            ("2026-03-05", 1, 4)
        );
    }

    #[tokio::test]
    async fn two_ledgers_on_one_store_add_to_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(LATE - 1_000));
        let (store, first) = ledger(&dir, clock).await;
        let second = Ledger::new(Arc::clone(&store));
        first.record("k", "p/m", Tokens::new(1, 2), 3, true);
        second.record("k", "p/m", Tokens::new(10, 20), 30, true);
        first.flush().await.unwrap();
        // A query flushes its own ledger first.
        let (rows, total) = second.query(UsageQuery::default()).await.unwrap();
        assert_eq!(rows.len(), 1);
        let expected = Counts {
            requests: 2,
            input_tokens: 11,
            output_tokens: 22,
            spend_micro_usd: 33,
        };
        assert_eq!(rows[0].counts, expected);
        assert_eq!(total, expected);
    }

    #[tokio::test]
    async fn queries_filter_by_key_model_and_inclusive_days_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(LATE - 2 * 86_400_000));
        let (_store, ledger) = ledger(&dir, Arc::clone(&clock)).await;
        // 03-02, 03-03, 03-04: each day key a on two models and key b on one.
        for _ in 0..3 {
            ledger.record("a", "p/x", Tokens::new(1, 0), 1, true);
            ledger.record("a", "p/y", Tokens::new(0, 1), 2, true);
            ledger.record("b", "p/x", Tokens::new(1, 1), 4, true);
            clock.advance(Duration::from_secs(86_400));
        }
        let query = |q: UsageQuery| {
            let ledger = &ledger;
            async move { ledger.query(q).await.unwrap() }
        };
        let (rows, total) = query(UsageQuery::default()).await;
        assert_eq!(rows.len(), 9);
        assert_eq!(total.requests, 9);
        assert_eq!(total.spend_micro_usd, 21);
        let (rows, total) = query(UsageQuery {
            key_id: Some("a".into()),
            from: Day::parse("2026-03-03"),
            to: Day::parse("2026-03-04"),
            ..UsageQuery::default()
        })
        .await;
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert!(rows.iter().all(|r| r.key_id.as_deref() == Some("a")));
        assert_eq!(rows[0].date.as_deref(), Some("2026-03-03"));
        assert_eq!(total.spend_micro_usd, 6);
        let (rows, _) = query(UsageQuery {
            model: Some("p/x".into()),
            group_by: Grouping {
                date: false,
                key_id: true,
                model: false,
            },
            ..UsageQuery::default()
        })
        .await;
        assert_eq!(
            rows,
            vec![
                UsageRow {
                    date: None,
                    key_id: Some("a".into()),
                    model: None,
                    counts: Counts {
                        requests: 3,
                        input_tokens: 3,
                        output_tokens: 0,
                        spend_micro_usd: 3
                    },
                },
                UsageRow {
                    date: None,
                    key_id: Some("b".into()),
                    model: None,
                    counts: Counts {
                        requests: 3,
                        input_tokens: 3,
                        output_tokens: 3,
                        spend_micro_usd: 12
                    },
                },
            ]
        );
        // Grouped by nothing: one total row; over nothing: no rows.
        let none = Grouping {
            date: false,
            key_id: false,
            model: false,
        };
        let (rows, _) = query(UsageQuery {
            group_by: none,
            ..UsageQuery::default()
        })
        .await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].counts.requests, 9);
        let (rows, total) = query(UsageQuery {
            key_id: Some("nobody".into()),
            group_by: none,
            ..UsageQuery::default()
        })
        .await;
        assert!(rows.is_empty());
        assert_eq!(total, Counts::default());
    }

    #[tokio::test(start_paused = true)]
    async fn the_flusher_writes_every_interval_and_stops_with_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(LATE - 60_000));
        let (store, ledger) = ledger(&dir, clock).await;
        let ledger = Arc::new(ledger);
        let task = spawn_flusher(&ledger, Duration::from_millis(1000));
        ledger.record("k", "p/m", Tokens::new(1, 1), 1, true);
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert_eq!(ledger.pending_rows(), 1, "not before the interval");
        // The flush is a store write on the store's own thread: wait for it to land.
        let mut waited = 0;
        tokio::time::sleep(Duration::from_millis(2)).await;
        while stored(&store).await.is_empty() && waited < 1000 {
            tokio::task::yield_now().await;
            waited += 1;
        }
        assert_eq!(stored(&store).await.len(), 1);
        drop(ledger);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert!(
            task.is_finished(),
            "the flusher ends once the ledger is gone"
        );
    }
}
