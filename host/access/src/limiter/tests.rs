//! The limiter over real database files, two stores on one file standing for two processes,
//! with a manual clock: leases never sum past a limit, windows roll, given-back allowance is
//! leased again, a dead process's slots come back after the hold expires, charges past a lease
//! block the next request everywhere, and a budget resets at its period's end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aigw_memory::{ManualClock, Store, StoreOptions};

use tempfile::TempDir;

use super::*;

/// 2027-01-15T10:00:30Z, a Friday: half a minute into a minute.
const START_MS: i64 = 1_799_920_830_000;

/// Two stores on one file (two processes), on one clock, and the folder holding the file
/// (removed when the test drops it).
async fn two_processes(name: &str) -> (Arc<Store>, Arc<Store>, Arc<ManualClock>, TempDir) {
    let clock = Arc::new(ManualClock::new(START_MS));
    let dir = tempfile::Builder::new()
        .prefix(&format!("aigw-limiter-{name}-"))
        .tempdir()
        .unwrap();
    let path = dir.path().join("aigw.db");
    let open = || {
        let mut options = StoreOptions::new(&path);
        options.clock = clock.clone();
        Store::open(options)
    };
    let a = Arc::new(open().await.unwrap());
    let b = Arc::new(open().await.unwrap());
    (a, b, clock, dir)
}

fn key(spec: serde_json::Value) -> Key {
    Key {
        id: "key_00000000000000000000000a".into(),
        hint: "sk-aigw-…0000".into(),
        spec: serde_json::from_value(spec).unwrap(),
        created_at: 0,
        updated_at: 0,
        revoked_at: None,
        team: None,
    }
}

fn limit_of(refused: Refused) -> Refusal {
    match refused {
        Refused::Limit(refusal) => *refusal,
        Refused::Unavailable(e) => panic!("store unavailable: {e}"),
    }
}

/// Lets spawned refills run to their end (they are one write each).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

async fn shared_used(store: &Store, metric: &'static str) -> i64 {
    store
        .read(move |c| {
            Box::pin(async move {
                let mut rows = c
                    .query(
                        "SELECT COALESCE(SUM(used), 0) FROM allowance WHERE metric = ?1",
                        [metric],
                    )
                    .await?;
                let row = rows.next().await?.unwrap();
                Ok(row.get::<i64>(0)?)
            })
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn requests_per_minute_hold_across_processes_and_given_back_allowance_is_reused() {
    let (a_store, b_store, clock, _dir) = two_processes("rpm").await;
    let options = LimiterOptions::default();
    let a = Limiter::new(a_store.clone(), options.clone());
    let b = Limiter::new(b_store.clone(), options.clone());
    let k = key(serde_json::json!({"rpm_limit": 25}));
    let mut admitted = 0;
    let mut tickets = Vec::new();
    // Interleaved, as two busy processes would be, until both refuse.
    for round in 0..40 {
        for limiter in [&a, &b] {
            if let Ok(ticket) = limiter.admit(&k).await {
                admitted += 1;
                tickets.push(ticket);
            }
        }
        if round % 3 == 0 {
            settle().await;
        }
    }
    settle().await;
    assert!(admitted <= 25, "admitted {admitted} of 25");
    assert!(shared_used(&a_store, "requests").await <= 25);
    // What is left parked in a process's lease goes back once it is idle, and the other
    // process leases it after its recheck pause: the whole limit is usable.
    clock.advance(options.idle_return + options.recheck);
    a.tend().await.unwrap();
    b.tend().await.unwrap();
    while b.admit(&k).await.is_ok() {
        admitted += 1;
        assert!(admitted <= 25, "admitted {admitted} of 25");
    }
    while a.admit(&k).await.is_ok() {
        admitted += 1;
        assert!(admitted <= 25, "admitted {admitted} of 25");
    }
    assert_eq!(admitted, 25);
    let refusal = limit_of(b.admit(&k).await.unwrap_err());
    assert_eq!(refusal.metric, Metric::Requests);
    assert_eq!(refusal.limit, 25);
    assert_eq!(refusal.id, k.id);
    // 10:00:32.5 now: the minute ends in 27.5 s.
    assert_eq!(refusal.retry_after, Some(Duration::from_millis(27_500)));
    let gauge = refusal.headroom.requests.unwrap();
    assert_eq!((gauge.limit, gauge.remaining), (25, 0));
}

#[tokio::test]
async fn a_new_minute_brings_the_whole_limit_back() {
    let (store, _, clock, _dir) = two_processes("roll").await;
    let limiter = Limiter::new(store.clone(), LimiterOptions::default());
    let k = key(serde_json::json!({"rpm_limit": 3}));
    for _ in 0..3 {
        let ticket = limiter.admit(&k).await.unwrap();
        ticket.finish(0, 0);
    }
    assert!(limiter.admit(&k).await.is_err());
    clock.advance(Duration::from_secs(30));
    let ticket = limiter.admit(&k).await.unwrap();
    let gauge = ticket.headroom().requests.unwrap();
    assert_eq!(
        (gauge.limit, gauge.remaining, gauge.reset_ms),
        (3, 2, 60_000)
    );
}

#[tokio::test]
async fn a_dead_process_s_slots_come_back_after_the_hold_expires() {
    let (a_store, b_store, clock, _dir) = two_processes("holds").await;
    let options = LimiterOptions::default();
    let a = Limiter::new(a_store, options.clone());
    let b = Limiter::new(b_store, options.clone());
    let k = key(serde_json::json!({"max_parallel_requests": 2}));
    let first = a.admit(&k).await.unwrap();
    let second = a.admit(&k).await.unwrap();
    assert_eq!(
        limit_of(b.admit(&k).await.unwrap_err()).metric,
        Metric::Parallel
    );
    // A finished request frees its slot for this process at once.
    drop(first);
    let third = a.admit(&k).await.unwrap();
    // "Killed": never renews, never gives back.
    std::mem::forget(second);
    std::mem::forget(third);
    drop(a);
    clock.advance(options.recheck);
    assert_eq!(
        limit_of(b.admit(&k).await.unwrap_err()).metric,
        Metric::Parallel
    );
    clock.advance(options.hold_ttl);
    let one = b.admit(&k).await.unwrap();
    let two = b.admit(&k).await.unwrap();
    assert!(b.admit(&k).await.is_err());
    drop((one, two));
}

#[tokio::test]
async fn renewed_holds_stay_and_idle_slots_go_back() {
    let (a_store, b_store, clock, _dir) = two_processes("renew").await;
    let options = LimiterOptions::default();
    let a = Limiter::new(a_store, options.clone());
    let b = Limiter::new(b_store, options.clone());
    let k = key(serde_json::json!({"max_parallel_requests": 1}));
    let held = a.admit(&k).await.unwrap();
    // Renewed every tend: a live process keeps its slot past the first expiry.
    for _ in 0..4 {
        clock.advance(options.hold_ttl / 2);
        a.tend().await.unwrap();
    }
    assert_eq!(
        limit_of(b.admit(&k).await.unwrap_err()).metric,
        Metric::Parallel
    );
    drop(held);
    // Idle, the slot goes back to the store: the other process takes it.
    clock.advance(options.idle_return + options.recheck);
    a.tend().await.unwrap();
    let taken = b.admit(&k).await.unwrap();
    clock.advance(options.recheck);
    assert!(a.admit(&k).await.is_err());
    drop(taken);
}

#[tokio::test]
async fn tokens_charged_past_the_limit_block_the_next_request_everywhere() {
    let (a_store, b_store, clock, _dir) = two_processes("tpm").await;
    let options = LimiterOptions::default();
    let a = Limiter::new(a_store.clone(), options.clone());
    let b = Limiter::new(b_store, options.clone());
    let k = key(serde_json::json!({"tpm_limit": 1000}));
    // Admitted with allowance left; the answer used more than the whole limit.
    let ticket = a.admit(&k).await.unwrap();
    ticket.finish(1500, 0);
    settle().await;
    a.tend().await.unwrap();
    assert_eq!(shared_used(&a_store, "tokens").await, 1500);
    let refusal = limit_of(a.admit(&k).await.unwrap_err());
    assert_eq!((refusal.metric, refusal.limit), (Metric::Tokens, 1000));
    let gauge = refusal.headroom.tokens.unwrap();
    assert_eq!(gauge.remaining, 0);
    clock.advance(options.recheck);
    assert_eq!(
        limit_of(b.admit(&k).await.unwrap_err()).metric,
        Metric::Tokens
    );
    // The next minute starts from zero.
    clock.advance(Duration::from_secs(60));
    a.admit(&k).await.unwrap().finish(10, 0);
    b.admit(&k).await.unwrap().finish(10, 0);
}

#[tokio::test]
async fn token_overshoot_is_bounded_by_the_requests_in_flight() {
    let (a_store, b_store, _, _dir) = two_processes("overshoot").await;
    let options = LimiterOptions::default();
    let a = Limiter::new(a_store.clone(), options.clone());
    let b = Limiter::new(b_store, options);
    let k = key(serde_json::json!({"tpm_limit": 1000}));
    // Admit in both processes while the window has allowance: each answer will use 300.
    let mut in_flight = Vec::new();
    for _ in 0..20 {
        for limiter in [&a, &b] {
            if let Ok(ticket) = limiter.admit(&k).await {
                in_flight.push(ticket);
            }
        }
    }
    // Charged nothing yet: every request is admitted against leased allowance, and allowance
    // is never charged until an answer is in. All of them in flight at once is the worst case.
    let admitted = in_flight.len() as i64;
    for ticket in in_flight {
        ticket.finish(300, 0);
    }
    settle().await;
    a.tend().await.unwrap();
    b.tend().await.unwrap();
    let used = shared_used(&a_store, "tokens").await;
    assert_eq!(used, admitted * 300, "every charge is counted");
    assert!(used <= 1000 + admitted * 300);
    assert!(a.admit(&k).await.is_err());
}

#[tokio::test]
async fn a_daily_budget_refuses_until_the_next_utc_day() {
    let (store, _, clock, _dir) = two_processes("budget").await;
    let limiter = Limiter::new(store, LimiterOptions::default());
    let k = key(serde_json::json!({"max_budget": 1.0, "budget_duration": "day"}));
    let ticket = limiter.admit(&k).await.unwrap();
    ticket.finish(100, 600_000);
    let ticket = limiter.admit(&k).await.unwrap();
    ticket.finish(100, 500_000);
    settle().await;
    let refusal = limit_of(limiter.admit(&k).await.unwrap_err());
    assert_eq!(refusal.metric, Metric::Budget);
    assert_eq!(refusal.limit, 1_000_000);
    assert_eq!(refusal.period, Some(Period::Day));
    // 10:00:30 UTC: the day ends in 13 h 59 min 30 s.
    assert_eq!(
        refusal.retry_after,
        Some(Duration::from_secs(13 * 3600 + 59 * 60 + 30))
    );
    clock.advance(Duration::from_secs(13 * 3600 + 59 * 60 + 29));
    assert!(limiter.admit(&k).await.is_err());
    clock.advance(Duration::from_secs(1));
    limiter.admit(&k).await.unwrap().finish(1, 1);
}

#[tokio::test]
async fn a_zero_or_lifetime_budget_has_no_retry_time() {
    let (store, _, _, _dir) = two_processes("lifetime").await;
    let limiter = Limiter::new(store, LimiterOptions::default());
    let zero = key(serde_json::json!({"max_budget": 0.0}));
    let refusal = limit_of(limiter.admit(&zero).await.unwrap_err());
    assert_eq!(
        (refusal.metric, refusal.retry_after),
        (Metric::Budget, None)
    );
}

#[tokio::test]
async fn a_refused_request_takes_nothing_from_the_other_limits() {
    let (store, _, _, _dir) = two_processes("rollback").await;
    let limiter = Limiter::new(store, LimiterOptions::default());
    let k = key(serde_json::json!({"rpm_limit": 2, "max_parallel_requests": 1}));
    let held = limiter.admit(&k).await.unwrap();
    // Refused for concurrency: its request unit is given back.
    assert_eq!(
        limit_of(limiter.admit(&k).await.unwrap_err()).metric,
        Metric::Parallel
    );
    drop(held);
    limiter.admit(&k).await.unwrap().finish(0, 0);
    assert_eq!(
        limit_of(limiter.admit(&k).await.unwrap_err()).metric,
        Metric::Requests
    );
}

#[tokio::test]
async fn a_team_s_limit_counts_every_key_of_it() {
    let (store, _, _, _dir) = two_processes("team").await;
    let limiter = Limiter::new(store, LimiterOptions::default());
    let team = Limits {
        requests_per_minute: Some(3),
        ..Limits::default()
    };
    let subjects = |id| {
        [
            Subject {
                kind: SubjectKind::Key,
                id,
                limits: Limits {
                    requests_per_minute: Some(2),
                    ..Limits::default()
                },
            },
            Subject {
                kind: SubjectKind::Team,
                id: "team-a",
                limits: team,
            },
        ]
    };
    for _ in 0..2 {
        limiter.admit_all(&subjects("key_1")).await.unwrap();
    }
    limiter.admit_all(&subjects("key_2")).await.unwrap();
    let refusal = limit_of(limiter.admit_all(&subjects("key_2")).await.unwrap_err());
    assert_eq!(
        (refusal.kind, refusal.metric),
        (SubjectKind::Team, Metric::Requests)
    );
    // The key's unit taken before the team refused was given back: key_2 has one left.
    let key_only = [subjects("key_2")[0]];
    limiter.admit_all(&key_only).await.unwrap();
    assert!(limiter.admit_all(&key_only).await.is_err());
}

#[tokio::test]
async fn keys_without_limits_touch_nothing() {
    let (store, _, _, _dir) = two_processes("none").await;
    let limiter = Limiter::new(store.clone(), LimiterOptions::default());
    let before = store.stats();
    let ticket = limiter.admit(&key(serde_json::json!({}))).await.unwrap();
    assert_eq!(*ticket.headroom(), Headroom::default());
    ticket.finish(1_000_000, 1_000_000);
    settle().await;
    assert_eq!(store.stats(), before);
}

#[tokio::test]
async fn closing_gives_everything_back_and_old_windows_are_swept() {
    let (a_store, b_store, clock, _dir) = two_processes("close").await;
    let a = Limiter::new(a_store.clone(), LimiterOptions::default());
    let b = Limiter::new(b_store, LimiterOptions::default());
    let k = key(serde_json::json!({"rpm_limit": 10, "max_parallel_requests": 1}));
    let ticket = a.admit(&k).await.unwrap();
    ticket.finish(0, 0);
    settle().await;
    assert!(shared_used(&a_store, "requests").await > 1);
    a.close().await.unwrap();
    assert_eq!(shared_used(&a_store, "requests").await, 1);
    // Its slot is free at once, not after the hold's expiry.
    b.admit(&k).await.unwrap();
    // The admission's background refill lands in this minute, not in the one after the jump
    // (where the sweep would rightly keep it).
    settle().await;
    clock.advance(Duration::from_secs(180));
    b.tend().await.unwrap();
    assert_eq!(shared_used(&a_store, "requests").await, 0);
}

#[tokio::test]
async fn a_key_s_team_is_admitted_with_it_across_processes() {
    let (a_store, b_store, _, _dir) = two_processes("team-of-key").await;
    let a = Limiter::new(a_store, LimiterOptions::default());
    let b = Limiter::new(b_store, LimiterOptions::default());
    let team = Arc::new(crate::Team {
        id: "team_0000000000000000000000aa".into(),
        spec: serde_json::from_value(serde_json::json!({"rpm_limit": 3})).unwrap(),
        created_at: 0,
        updated_at: 0,
    });
    let member = |id: &str| {
        let mut k = key(serde_json::json!({"team": "team_0000000000000000000000aa"}));
        k.id = id.into();
        k.team = Some(Arc::clone(&team));
        k
    };
    let (one, two) = (member("key_1"), member("key_2"));
    // Ten requests of both keys through both processes: the team's 3 per minute hold over all
    // of them. (Fewer than 3 may pass: a process's background refill can hold a unit the other
    // asks for; more never.)
    let mut admitted = 0;
    for n in 0..10 {
        let (limiter, member) = match n % 4 {
            0 => (&a, &one),
            1 => (&b, &two),
            2 => (&a, &two),
            _ => (&b, &one),
        };
        match limiter.admit(member).await {
            Ok(ticket) => {
                admitted += 1;
                ticket.finish(0, 0);
            }
            Err(refused) => {
                let refusal = limit_of(refused);
                assert_eq!(
                    (refusal.kind, refusal.id.as_str(), refusal.metric),
                    (
                        SubjectKind::Team,
                        "team_0000000000000000000000aa",
                        Metric::Requests
                    )
                );
            }
        }
    }
    assert!((1..=3).contains(&admitted), "{admitted} admitted");
    // A key outside the team is not limited by it.
    a.admit(&key(serde_json::json!({"rpm_limit": 1})))
        .await
        .unwrap();
}

#[tokio::test]
async fn tool_calls_count_apart_from_requests_per_minute_and_per_day_across_processes() {
    let (a_store, b_store, clock, _dir) = two_processes("tools").await;
    let a = Limiter::new(a_store.clone(), LimiterOptions::default());
    let b = Limiter::new(b_store.clone(), LimiterOptions::default());
    let k = key(serde_json::json!({
        "rpm_limit": 1, "tool_calls_per_minute": 4, "tool_calls_per_day": 6
    }));
    // The key's one chat request of the minute does not spend its tool calls, nor they it.
    drop(a.admit(&k).await.unwrap());
    let mut admitted = 0;
    for _ in 0..6 {
        for limiter in [&a, &b] {
            if limiter.admit_tool_call(&k).await.is_ok() {
                admitted += 1;
            }
        }
    }
    assert_eq!(
        admitted, 4,
        "the per-minute tool limit holds across both processes"
    );
    let refusal = limit_of(b.admit_tool_call(&k).await.unwrap_err());
    assert_eq!(
        (refusal.kind, refusal.metric, refusal.limit),
        (SubjectKind::Tools, Metric::Requests, 4)
    );
    assert_eq!(
        limit_of(a.admit(&k).await.unwrap_err()).kind,
        SubjectKind::Key
    );
    // The next minute: two more tool calls, then the day's six are spent until midnight UTC.
    clock.advance(Duration::from_secs(60));
    for limiter in [&a, &b] {
        limiter.tend().await.unwrap();
    }
    let mut later = 0;
    for _ in 0..4 {
        for limiter in [&a, &b] {
            if limiter.admit_tool_call(&k).await.is_ok() {
                later += 1;
            }
        }
    }
    assert_eq!(later, 2, "6 a day, 4 of them spent in the first minute");
    // A process still holding some of the minute's lease is refused by the day (the other one
    // may be refused by the minute first: its share of the minute is parked in the first one).
    let mut refusals = Vec::new();
    for limiter in [&a, &b] {
        refusals.push(limit_of(limiter.admit_tool_call(&k).await.unwrap_err()));
    }
    let refusal = refusals
        .into_iter()
        .find(|r| r.metric == Metric::DailyRequests)
        .expect("a refusal by the day's limit");
    assert_eq!(refusal.limit, 6);
    // 10:01:30 on the 15th: the UTC day ends in 13 h 58 min 30 s.
    assert_eq!(
        refusal.retry_after,
        Some(Duration::from_secs(13 * 3600 + 58 * 60 + 30))
    );
    assert!(shared_used(&a_store, "requests:day").await <= 6);
}
