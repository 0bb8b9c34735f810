//! Routes as data: a model alias's targets with their priorities, weights, context windows and
//! timeouts, the route's policy (strategy, retries, retry budget, hedging), and the per-request
//! order in which targets are tried.
//!
//! The cost strategy orders by what the caller estimates each target would charge for this
//! request ([`crate::Request::costs`]): the engine knows no prices, tokens or currency, only
//! numbers to compare.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::health::Health;

/// The time limits of one attempt on one target. Its `Default` holds the gateway's default
/// limits (the config's provider and route defaults are read from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect (enforced by the HTTP client).
    pub connect: Duration,
    /// Until the response headers of a non-streamed call, or the first chunk of a stream.
    pub first_byte: Duration,
    /// The longest silence between two stream chunks.
    pub stall: Duration,
    /// The whole attempt: a non-streamed answer, or a whole stream.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(120),
            stall: Duration::from_secs(120),
            total: Duration::from_secs(600),
        }
    }
}

/// One target of a route and what the engine knows about it.
#[derive(Debug)]
pub struct RouteEntry<T> {
    pub target: T,
    /// Shared with every other route naming the same target.
    pub health: Arc<Health>,
    /// Lower is tried first.
    pub priority: u32,
    /// Share among targets of equal priority (weighted strategy).
    pub weight: u32,
    /// The model's context window in tokens, when the operator said.
    pub context_window: Option<u32>,
    pub timeouts: Timeouts,
}

/// How targets of equal priority are ordered for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// A random order, each target drawn with probability proportional to its weight.
    Weighted,
    /// Lowest moving-average latency first; targets never measured go first, to be measured.
    Latency,
    /// The cheapest for this request first, by the caller's per-entry estimate
    /// ([`crate::Request::costs`]); equal estimates keep the configured order. Targets with no
    /// estimate (unpriced) go after every priced one: an unknown price is not a zero price,
    /// and treating it as free would send the route's traffic to whichever target has no
    /// price configured.
    Cost,
}

/// How a route treats failures beyond the failover table. Its `Default` is the default policy
/// of a configured route (the config reads it from here).
#[derive(Debug)]
pub struct Policy {
    pub strategy: Strategy,
    /// Retries on the same target after a 5xx, reset or connect error, per target per request.
    pub retries: u32,
    pub retry_budget: RetryBudget,
    /// Start the next target when the current one has not produced a first byte by then.
    pub hedge_after: Option<Duration>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            strategy: Strategy::Weighted,
            retries: 1,
            retry_budget: RetryBudget::new(0.2),
            hedge_after: None,
        }
    }
}

/// A model alias: its targets and policy.
#[derive(Debug)]
pub struct Route<T> {
    pub entries: Vec<RouteEntry<T>>,
    pub policy: Policy,
    /// Entry indexes sorted by priority (stable), and the bounds of each equal-priority group.
    sorted: Vec<usize>,
    groups: Vec<(usize, usize)>,
}

impl<T> Route<T> {
    pub fn new(entries: Vec<RouteEntry<T>>, policy: Policy) -> Route<T> {
        let mut sorted: Vec<usize> = (0..entries.len()).collect();
        sorted.sort_by_key(|&i| entries[i].priority);
        let mut groups = Vec::new();
        let mut start = 0;
        for end in 1..=sorted.len() {
            if end == sorted.len()
                || entries[sorted[end]].priority != entries[sorted[start]].priority
            {
                groups.push((start, end));
                start = end;
            }
        }
        Route {
            entries,
            policy,
            sorted,
            groups,
        }
    }

    /// The order to try the targets in for one request. `costs` is the request's estimated
    /// cost on each entry, by index (`None` or missing: unknown), read by the cost strategy.
    pub fn order(&self, rng: &mut Rng, costs: &[Option<u128>]) -> Vec<usize> {
        let mut order = self.sorted.clone();
        for &(start, end) in &self.groups {
            if end - start < 2 {
                continue;
            }
            let group = &mut order[start..end];
            match self.policy.strategy {
                Strategy::Weighted => weighted_shuffle(group, &self.entries, rng),
                Strategy::Latency => group.sort_by(|&a, &b| {
                    let latency = |i: usize| self.entries[i].health.latency_ewma();
                    latency(a).cmp(&latency(b))
                }),
                Strategy::Cost => group.sort_by_key(|&i| {
                    let cost = costs.get(i).copied().flatten();
                    (cost.is_none(), cost)
                }),
            }
        }
        order
    }
}

/// Orders `group` by repeated weighted draws without replacement.
fn weighted_shuffle<T>(group: &mut [usize], entries: &[RouteEntry<T>], rng: &mut Rng) {
    for slot in 0..group.len() {
        let total: u64 = group[slot..]
            .iter()
            .map(|&i| u64::from(entries[i].weight.max(1)))
            .sum();
        let mut pick = rng.below(total);
        for candidate in slot..group.len() {
            let weight = u64::from(entries[group[candidate]].weight.max(1));
            if pick < weight {
                group.swap(slot, candidate);
                break;
            }
            pick -= weight;
        }
    }
}

/// Retries may be at most a fraction of a route's requests (a token bucket in thousandths of a
/// retry): during an outage, retries cannot multiply the load on the providers.
#[derive(Debug)]
pub struct RetryBudget {
    tokens_milli: AtomicI64,
    ratio_milli: i64,
}

/// The most retries a quiet route has saved up.
const RETRY_BURST: i64 = 10;

impl RetryBudget {
    /// `ratio` of retries per request, e.g. `0.2`; starts with a burst of 10 retries (none
    /// when `ratio` is 0: retries are off).
    pub fn new(ratio: f64) -> RetryBudget {
        let ratio_milli = (ratio.clamp(0.0, 1.0) * 1000.0).round() as i64;
        let burst = if ratio_milli == 0 {
            0
        } else {
            RETRY_BURST * 1000
        };
        RetryBudget {
            tokens_milli: AtomicI64::new(burst),
            ratio_milli,
        }
    }

    /// Each request earns the route `ratio` of a retry.
    pub fn deposit(&self) {
        if self.ratio_milli == 0 {
            return;
        }
        // Read first: a full bucket (the common case) costs no write.
        if self.tokens_milli.load(Ordering::Relaxed) < RETRY_BURST * 1000 {
            let _ = self
                .tokens_milli
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    Some((t + self.ratio_milli).min(RETRY_BURST * 1000))
                });
        }
    }

    /// The fraction of requests that may be retries, as configured (to a thousandth).
    pub fn ratio(&self) -> f64 {
        self.ratio_milli as f64 / 1000.0
    }

    /// Spends one retry, if the budget has one.
    pub fn withdraw(&self) -> bool {
        self.tokens_milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t >= 1000).then_some(t - 1000)
            })
            .is_ok()
    }
}

/// A small, fast, seedable generator (SplitMix64) for weighted orders and jitter: the engine
/// needs spread, not cryptographic randomness, and tests need to pin it.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound)` (`0` when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for weights far below 2^32.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::health::HealthSettings;

    fn entry(name: &'static str, priority: u32, weight: u32) -> RouteEntry<&'static str> {
        RouteEntry {
            target: name,
            health: Arc::new(Health::new(Arc::new(HealthSettings::default()))),
            priority,
            weight,
            context_window: None,
            timeouts: Timeouts::default(),
        }
    }

    fn names(route: &Route<&'static str>, order: &[usize]) -> Vec<&'static str> {
        order.iter().map(|&i| route.entries[i].target).collect()
    }

    #[test]
    fn priorities_order_the_groups_and_a_plain_list_keeps_its_order() {
        let route = Route::new(
            vec![entry("c", 2, 1), entry("a", 0, 1), entry("b", 1, 1)],
            Policy::default(),
        );
        let mut rng = Rng::new(1);
        assert_eq!(names(&route, &route.order(&mut rng, &[])), ["a", "b", "c"]);
    }

    #[test]
    fn weights_share_the_first_place_among_equal_priorities() {
        let route = Route::new(
            vec![
                entry("heavy", 0, 3),
                entry("light", 0, 1),
                entry("last", 1, 9),
            ],
            Policy::default(),
        );
        let mut rng = Rng::new(42);
        let mut heavy_first = 0;
        for _ in 0..4000 {
            let order = names(&route, &route.order(&mut rng, &[]));
            assert_eq!(order[2], "last");
            if order[0] == "heavy" {
                heavy_first += 1;
            }
        }
        // 3:1 → 75 % ± a few percent.
        assert!((2800..3200).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn the_latency_strategy_puts_the_fastest_first_and_unmeasured_before_all() {
        let policy = Policy {
            strategy: Strategy::Latency,
            ..Policy::default()
        };
        let route = Route::new(
            vec![entry("slow", 0, 1), entry("fast", 0, 1), entry("new", 0, 1)],
            policy,
        );
        route.entries[0]
            .health
            .record_success(Duration::from_millis(300));
        route.entries[1]
            .health
            .record_success(Duration::from_millis(30));
        let order = names(&route, &route.order(&mut Rng::new(7), &[]));
        assert_eq!(order, ["new", "fast", "slow"]);
    }

    #[test]
    fn the_cost_strategy_puts_the_cheapest_for_the_request_first_and_unpriced_last() {
        let policy = Policy {
            strategy: Strategy::Cost,
            ..Policy::default()
        };
        let route = Route::new(
            vec![
                entry("unpriced", 0, 1),
                entry("dear", 0, 1),
                entry("cheap", 0, 1),
                entry("cheap-too", 0, 1),
                entry("backup", 1, 1),
            ],
            policy,
        );
        let order = |costs: &[Option<u128>]| names(&route, &route.order(&mut Rng::new(3), costs));
        // Priority still comes first; within it the cheapest, ties in configured order.
        assert_eq!(
            order(&[None, Some(900), Some(10), Some(10), Some(0)]),
            ["cheap", "cheap-too", "dear", "unpriced", "backup"]
        );
        // Another request, another estimate, another order.
        assert_eq!(
            order(&[None, Some(5), Some(10), Some(10), Some(0)]),
            ["dear", "cheap", "cheap-too", "unpriced", "backup"]
        );
        // Free is a price: before unpriced.
        assert_eq!(
            order(&[Some(0), None, None, None, None]),
            ["unpriced", "dear", "cheap", "cheap-too", "backup"]
        );
        // No estimates at all: the configured order.
        assert_eq!(
            order(&[]),
            ["unpriced", "dear", "cheap", "cheap-too", "backup"]
        );
    }

    #[test]
    fn the_retry_budget_is_a_fraction_of_requests_after_the_burst() {
        let budget = RetryBudget::new(0.2);
        for _ in 0..RETRY_BURST {
            assert!(budget.withdraw());
        }
        assert!(!budget.withdraw());
        for _ in 0..4 {
            budget.deposit();
        }
        assert!(!budget.withdraw(), "4 requests earn 0.8 of a retry");
        budget.deposit();
        assert!(budget.withdraw(), "5 requests earn one");
        let off = RetryBudget::new(0.0);
        off.deposit();
        assert!(!off.withdraw(), "a zero budget never retries");
    }

    #[test]
    fn rng_is_uniform_enough_and_deterministic() {
        let mut a = Rng::new(9);
        let mut b = Rng::new(9);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[a.below(4) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
        let u = a.unit();
        assert!((0.0..1.0).contains(&u));
    }
}
