//! What one plugin's calls did, for the admin API's `calls` and the metrics scrape: calls made,
//! faults by kind, and call durations in fixed buckets. Plain relaxed atomics (no ordering with
//! anything else is needed; a reader wants recent totals, not a consistent snapshot), so
//! counting costs a few adds next to entering the guest; the runtime knows nothing of the
//! exposition format, which reads [`CallStats`] at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{CallError, FaultKind};

/// Upper bounds of the call-duration buckets, in microseconds: a warm call is tens of
/// microseconds, one that waits for an instance or runs a slow guest up to the call timeout.
pub const CALL_DURATION_BOUNDS_US: [u64; 14] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Every fault kind, in the order their counters are kept.
const FAULT_KINDS: [FaultKind; 5] = [
    FaultKind::Trap,
    FaultKind::Deadline,
    FaultKind::MemoryLimit,
    FaultKind::Capacity,
    FaultKind::Lost,
];

#[derive(Debug, Default)]
pub(crate) struct Calls {
    calls: AtomicU64,
    faults: [AtomicU64; FAULT_KINDS.len()],
    /// Per bucket (not cumulative); the last one counts calls past every bound.
    buckets: [AtomicU64; CALL_DURATION_BOUNDS_US.len() + 1],
    total_ns: AtomicU64,
}

/// What a plugin's calls did since it was loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Encodes, decodes, stream decoders started, tool invokes.
    pub calls: u64,
    /// Faulted calls (stream decoders' feeds included) by kind; kinds that never happened
    /// left out.
    pub faults: Vec<(&'static str, u64)>,
    /// Timed calls per bucket of [`CALL_DURATION_BOUNDS_US`] (not cumulative), then the ones
    /// past the last bound.
    pub duration_buckets: Vec<u64>,
    pub duration_total: Duration,
}

impl Calls {
    /// A call begins: counted, and timed from now.
    pub(crate) fn count(&self) -> Instant {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Instant::now()
    }

    /// A call begun at `started` ended with `result`.
    pub(crate) fn ended<T>(&self, started: Instant, result: &Result<T, CallError>) {
        let took = started.elapsed();
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = CALL_DURATION_BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(CALL_DURATION_BOUNDS_US.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.faulted(result);
    }

    /// Counts the fault `result` carries, if any (for calls not timed: a stream's feeds).
    pub(crate) fn faulted<T>(&self, result: &Result<T, CallError>) {
        if let Err(CallError::Fault(fault)) = result
            && let Some(i) = FAULT_KINDS.iter().position(|k| *k == fault.kind)
        {
            self.faults[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> CallStats {
        CallStats {
            calls: self.get(),
            faults: FAULT_KINDS
                .iter()
                .zip(&self.faults)
                .map(|(kind, n)| (kind.as_str(), n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            duration_buckets: self
                .buckets
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .collect(),
            duration_total: Duration::from_nanos(self.total_ns.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::Fault;

    #[test]
    fn calls_faults_and_durations_are_counted() {
        let calls = Calls::default();
        let started = calls.count();
        calls.ended::<()>(started, &Ok(()));
        let started = calls.count();
        let trap = Fault {
            kind: FaultKind::Trap,
            message: "boom".into(),
        };
        calls.ended::<()>(started, &Err(CallError::Fault(trap.clone())));
        calls.faulted::<()>(&Err(CallError::Fault(trap)));
        let stats = calls.stats();
        assert_eq!(stats.calls, 2);
        assert_eq!(stats.faults, vec![("trap", 2)]);
        assert_eq!(
            stats.duration_buckets.len(),
            CALL_DURATION_BOUNDS_US.len() + 1
        );
        assert_eq!(stats.duration_buckets.iter().sum::<u64>(), 2);
    }
}
