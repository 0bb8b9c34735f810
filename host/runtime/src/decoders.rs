//! Where a provider plugin's stream decoders live: many decoders share one instance, which is
//! busy only while one of them is fed.
//!
//! A stream decoder is a guest resource, so it lives in one instance's store for the stream's
//! whole life — seconds to minutes, most of it spent waiting for the upstream's next bytes.
//! When each open stream held an instance of its own, 1,050 streams on a stalling upstream took
//! every slot of the pooling allocator, and every other call on every plugin failed. Instead an
//! instance taken from the warm pool becomes a *host* for up to [`DECODERS_PER_INSTANCE`]
//! decoders; a call on one of them (`feed`, `finish`, the drop) takes the host's lock for the
//! call only. So 10,000 open streams need ~313 instances, not 10,000, and a quiet gateway's
//! stream costs what it did: one warm instance out of the pool and back, since a host whose
//! last decoder closed goes back to the warm pool (its store then holds no live resource).
//!
//! What sharing costs, and why the cap is small: a fault (trap, deadline, memory cap) poisons
//! the instance, so every decoder it hosts is lost with it. The faulting stream gets its fault;
//! the others get [`FaultKind::Lost`], which is neither their request's nor their target's
//! failure (the server treats it as the gateway's own). A decoder's guest memory is its
//! pending partial event; the server caps that (`max_stream_event`), so 32 decoders cannot
//! reach the instance's memory cap together by honest use.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::bindings::provider::ProviderPlugin;
use crate::instance::Instance;
use crate::pool::Pool;
use crate::{Fault, FaultKind};

/// Decoders one instance hosts at most.
pub const DECODERS_PER_INSTANCE: usize = 32;

/// The hosts a plugin's decoders are spread over before any host takes a second one: as many
/// as calls can run at once in this process (its threads), but no more than the instances the
/// pool keeps warm (what the operator set aside for parallel calls), and at least one.
pub(crate) fn spread(pool: &Pool<ProviderPlugin>) -> usize {
    static PARALLEL: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let parallel =
        *PARALLEL.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
    parallel.min(pool.runtime().limits.warm_instances).max(1)
}

/// One instance hosting decoders.
pub(crate) struct Host {
    /// The event loop (`aigw_egress::lane`) whose streams it hosts; `None`: any thread's.
    lane: Option<usize>,
    /// `None` once a call on it faulted: the instance was discarded with its decoders.
    instance: Arc<tokio::sync::Mutex<Option<Instance<ProviderPlugin>>>>,
    /// Decoders placed here and not yet dropped; changed only under the hosts' list lock.
    live: AtomicUsize,
    /// Set when the instance is gone, so no decoder is placed here any more.
    lost: AtomicBool,
}

/// The hosts of one plugin's decoders.
#[derive(Default)]
pub(crate) struct Hosts {
    /// Hosts that may take decoders. A lost host leaves the list at once; an empty one leaves
    /// it when its instance returns to the warm pool.
    hosts: Mutex<Vec<Arc<Host>>>,
}

/// A host's instance, locked for one call (`None` inside: the host was lost).
pub(crate) type Lease = tokio::sync::OwnedMutexGuard<Option<Instance<ProviderPlugin>>>;

impl Hosts {
    fn list(&self) -> MutexGuard<'_, Vec<Arc<Host>>> {
        // A panic while holding this lock leaves a valid list (every change is one push,
        // remove or counter update), so a poisoned lock is still usable.
        self.hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A host with room for one more decoder, its slot reserved: the least loaded host with
    /// room, or a new one on an instance from the warm pool (a fresh one when none is warm)
    /// while there are fewer hosts than [`spread`], or when every host is full.
    ///
    /// Why spread before packing: a host runs one call at a time, so streams packed onto one
    /// instance queue behind each other's `feed` on its lock, and the waiting task is woken on
    /// another thread when the lock frees (measured: 16 streams on one host spent a fifth of
    /// the gateway's CPU in the scheduler). A host per thread that can run a call lets them
    /// decode in parallel; beyond that, least-loaded placement fills the hosts before adding
    /// one, so 10,000 idle streams need no more instances than before.
    ///
    /// On a server's event loop (a lane) the thread is known: its streams go to hosts of its
    /// own, packed, since a loop runs one call at a time anyway and a host shared with another
    /// loop would make each wait for the other's calls and wake it across cores.
    pub(crate) async fn place(&self, pool: &Pool<ProviderPlugin>) -> Result<Arc<Host>, Fault> {
        let lane = aigw_egress::lane::current();
        let spread = match lane {
            Some(_) => 1,
            None => spread(pool),
        };
        if let Some(host) = self.reserve(lane, spread) {
            return Ok(host);
        }
        let instance = match pool.take().await {
            Ok(instance) => instance,
            // No instance for another host: a host with room still takes the decoder (another
            // loop's, if need be).
            Err(fault) => return self.reserve(None, 0).ok_or(fault),
        };
        let host = Arc::new(Host {
            lane,
            instance: Arc::new(tokio::sync::Mutex::new(Some(instance))),
            live: AtomicUsize::new(1),
            lost: AtomicBool::new(false),
        });
        self.list().push(Arc::clone(&host));
        Ok(host)
    }

    /// Reserves a slot on the least loaded host of `lane` (`None`: any host) with room, unless
    /// there are fewer than `spread` such hosts (a new one should be made).
    fn reserve(&self, lane: Option<usize>, spread: usize) -> Option<Arc<Host>> {
        let list = self.list();
        let of_lane = |h: &&Arc<Host>| lane.is_none() || h.lane == lane;
        if list.iter().filter(of_lane).count() < spread {
            return None;
        }
        let host = list
            .iter()
            .filter(of_lane)
            .filter(|h| h.live.load(Ordering::Relaxed) < DECODERS_PER_INSTANCE)
            .min_by_key(|h| h.live.load(Ordering::Relaxed))?;
        host.live.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(host))
    }

    /// Gives back a decoder's slot. The host's last decoder returns its instance to the warm
    /// pool (every resource in its store has been dropped by then).
    pub(crate) async fn leave(&self, host: &Arc<Host>, pool: &Pool<ProviderPlugin>) {
        let emptied = {
            let mut list = self.list();
            let left = host.live.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
            if left == 0 {
                list.retain(|h| !Arc::ptr_eq(h, host));
            }
            left == 0
        };
        if emptied && !host.lost.load(Ordering::Relaxed) {
            // Off the list and without decoders: nobody else can lock it now.
            if let Some(instance) = host.instance.lock().await.take() {
                pool.release(instance);
            }
        }
    }

    /// Marks a host whose instance faulted: off the list, so no decoder is placed there.
    fn lose(&self, host: &Arc<Host>) {
        host.lost.store(true, Ordering::Relaxed);
        self.list().retain(|h| !Arc::ptr_eq(h, host));
    }

    /// Decoders hosted and instances hosting them (for tests and readiness).
    pub(crate) fn usage(&self) -> (usize, usize) {
        let list = self.list();
        let decoders = list.iter().map(|h| h.live.load(Ordering::Relaxed)).sum();
        (decoders, list.len())
    }
}

impl Host {
    /// The host's instance, locked for one call; a lost host answers the fault that says so.
    pub(crate) async fn lease(&self) -> Result<Lease, Fault> {
        let lease = Arc::clone(&self.instance).lock_owned().await;
        if lease.is_none() {
            return Err(lost());
        }
        Ok(lease)
    }
}

/// A call in progress on a host's instance. Dropped before [`InFlight::end`] — the caller's
/// future was cancelled mid-call (a hedge that lost, a timeout, a client that left) — it takes
/// the instance out and loses the host, since wasmtime will not re-enter an instance whose call
/// was abandoned. A call yields only on an epoch tick (every 10 ms), so this is rare; the
/// neighbours' [`FaultKind::Lost`] then says it was not their fault.
pub(crate) struct InFlight<'a> {
    hosts: &'a Hosts,
    host: &'a Arc<Host>,
    lease: Option<Lease>,
}

impl<'a> InFlight<'a> {
    /// Locks the host's instance and begins one call on it (its deadline armed).
    pub(crate) async fn begin(
        hosts: &'a Hosts,
        host: &'a Arc<Host>,
        timeout: Duration,
    ) -> Result<Self, Fault> {
        let mut lease = host.lease().await?;
        if let Some(instance) = lease.as_mut() {
            instance.begin(timeout, None);
        }
        Ok(InFlight {
            hosts,
            host,
            lease: Some(lease),
        })
    }

    /// The instance the call runs on.
    pub(crate) fn instance(&mut self) -> Result<&mut Instance<ProviderPlugin>, Fault> {
        self.lease
            .as_mut()
            .and_then(|lease| lease.as_mut())
            .ok_or_else(lost)
    }

    /// The call returned: a normal return ends it and keeps the instance; a fault takes the
    /// instance out, loses the host for its other decoders and discards the instance
    /// (classified, a fresh one put in the warm pool).
    pub(crate) async fn end<T>(
        mut self,
        pool: &Pool<ProviderPlugin>,
        result: wasmtime::Result<T>,
    ) -> Result<T, Fault> {
        let Some(mut lease) = self.lease.take() else {
            return Err(lost());
        };
        match result {
            Ok(answer) => {
                if let Some(instance) = lease.as_mut() {
                    instance.end();
                }
                Ok(answer)
            }
            Err(error) => {
                self.hosts.lose(self.host);
                let instance = lease.take();
                drop(lease);
                match instance {
                    Some(instance) => Err(pool.discard(instance, error).await),
                    None => Err(lost()),
                }
            }
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(mut lease) = self.lease.take() {
            self.hosts.lose(self.host);
            drop(lease.take());
        }
    }
}

/// What a decoder's call answers once another decoder's fault took its instance.
pub(crate) fn lost() -> Fault {
    Fault {
        kind: FaultKind::Lost,
        message: "the plugin instance hosting this stream's decoder faulted on another stream"
            .into(),
    }
}
