//! The event loops client connections are served on: one thread per core (by default), each
//! running a single-threaded tokio runtime of its own, and each an egress lane
//! (`aigw_egress::lane`) with upstream pools of its own. A connection lives on one loop from
//! accept to close, and everything its requests do (the request, the upstream exchange on a
//! pooled connection that loop drives, the stream's relay, their timers) is woken and run on
//! that thread. On tokio's work-stealing runtime the same request woke another worker at
//! almost every step (to steal the task just made runnable, or because the upstream
//! connection's task lived there): futexes, interrupts between cores and cold caches were the
//! largest single cost of a small request, more than the gateway's own code.
//!
//! The accept loop stays on the process's main runtime with the background work (key
//! refreshes, flushes, watchers) and hands each accepted socket to the loop with the fewest
//! open connections; a loop that has stopped (its thread panicked) is passed over, and with
//! none left the connection is served on the main runtime. The trade: a connection cannot
//! move when its loop is busier than another, which work stealing would do; with many
//! connections per loop and the fewest-open placement the load evens out.

use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// What a loop is asked to do: start one task, holding the count it is given (called on the
/// loop's thread, inside its runtime, so sockets made there register with its reactor).
type Job = Box<dyn FnOnce(Option<Open>) + Send>;

/// The connection-serving event loops (`[server] workers`).
pub struct Workers {
    loops: Vec<Loop>,
}

struct Loop {
    jobs: mpsc::UnboundedSender<(Job, Open)>,
    /// Connections open on this loop (placement reads it; each connection's task holds one).
    open: Arc<AtomicUsize>,
}

/// One open connection counted on its loop, until dropped.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn on(count: &Arc<AtomicUsize>) -> Open {
        count.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(count))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    /// `count` loops (`None`: one per core), each on a thread named `aigw-worker-<n>`, each
    /// calling `before_waiting` on its thread whenever it has nothing left to run and is about
    /// to wait for events (the binary writes the log lines the loop gathered). They run until
    /// the `Workers` is dropped; the connections still open on a loop then end with it.
    pub fn start(
        count: Option<NonZeroUsize>,
        before_waiting: Arc<dyn Fn() + Send + Sync>,
    ) -> io::Result<Workers> {
        let count = count
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get);
        let loops = (0..count)
            .map(|index| start_loop(index, Arc::clone(&before_waiting)))
            .collect::<io::Result<_>>()?;
        Ok(Workers { loops })
    }

    /// How many loops serve connections.
    pub fn count(&self) -> usize {
        self.loops.len()
    }

    /// Runs the future `make` returns as a task on the loop with the fewest open connections
    /// (`make` is called on that loop's thread), counted there while it runs.
    pub(crate) fn spawn<F, Fut>(&self, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut job: Job = Box::new(move |open| {
            tokio::spawn(async move {
                let _open = open;
                make().await;
            });
        });
        // The loop with the fewest open; if it has stopped, any other still running (a loop
        // stops only when its thread panicked: no need to rank the rest).
        let fewest = self
            .loops
            .iter()
            .min_by_key(|l| l.open.load(Ordering::Relaxed));
        for chosen in fewest.into_iter().chain(&self.loops) {
            match chosen.jobs.send((job, Open::on(&chosen.open))) {
                Ok(()) => return,
                // That loop has stopped (its count goes back as the guard drops): the next.
                Err(mpsc::error::SendError((returned, _))) => job = returned,
            }
        }
        // Every loop has stopped: the caller's runtime serves it.
        job(None);
    }
}

fn start_loop(index: usize, before_waiting: Arc<dyn Fn() + Send + Sync>) -> io::Result<Loop> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(move || before_waiting())
        .build()?;
    let (jobs, mut received) = mpsc::unbounded_channel::<(Job, Open)>();
    std::thread::Builder::new()
        .name(format!("aigw-worker-{index}"))
        .spawn(move || {
            aigw_egress::lane::enter(index);
            runtime.block_on(async move {
                while let Some((job, open)) = received.recv().await {
                    job(Some(open));
                }
            });
        })?;
    Ok(Loop {
        jobs,
        open: Arc::new(AtomicUsize::new(0)),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::num::NonZeroUsize;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::{mpsc, oneshot};

    use super::Workers;

    /// Starts a held task on `workers`; answers the thread it runs on and its release.
    async fn held(workers: &Workers) -> (String, oneshot::Sender<()>) {
        let (release, released) = oneshot::channel::<()>();
        let (started, mut on) = mpsc::unbounded_channel();
        workers.spawn(move || async move {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            // The loop's thread is a lane (upstream pools of its own), numbered as the thread.
            let lane = aigw_egress::lane::current().unwrap();
            assert!(name.ends_with(&format!("-{lane}")), "{name} is lane {lane}");
            let _ = started.send(name);
            let _ = released.await;
        });
        (on.recv().await.unwrap(), release)
    }

    fn loads(workers: &Workers) -> Vec<usize> {
        let load = |l: &super::Loop| l.open.load(Ordering::Relaxed);
        workers.loops.iter().map(load).collect()
    }

    #[tokio::test]
    async fn connections_run_on_the_loops_each_placed_on_the_one_with_fewest_open() {
        let waits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&waits);
        let before_waiting = Arc::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        let workers = Workers::start(NonZeroUsize::new(2), before_waiting).unwrap();
        assert_eq!(workers.count(), 2);
        // Four at once: two on each loop.
        let mut tasks = Vec::new();
        for _ in 0..4 {
            tasks.push(held(&workers).await);
        }
        let mut threads: Vec<&str> = tasks.iter().map(|(t, _)| t.as_str()).collect();
        threads.sort_unstable();
        assert_eq!(
            threads,
            [
                "aigw-worker-0",
                "aigw-worker-0",
                "aigw-worker-1",
                "aigw-worker-1"
            ]
        );
        assert_eq!(loads(&workers), [2, 2]);
        // Both of the second loop's end: it holds none...
        let (second, first): (Vec<_>, Vec<_>) = tasks
            .into_iter()
            .partition(|(thread, _)| thread == "aigw-worker-1");
        for (_, release) in second {
            release.send(()).unwrap();
        }
        for _ in 0..100_000 {
            if loads(&workers) == [2, 0] {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(loads(&workers), [2, 0]);
        // ...so the next two both go there.
        let (a, _a) = held(&workers).await;
        let (b, _b) = held(&workers).await;
        assert_eq!([a.as_str(), b.as_str()], ["aigw-worker-1", "aigw-worker-1"]);
        drop(first);
        // The loops waited for work between the tasks, calling the hook each time.
        assert!(waits.load(Ordering::Relaxed) > 0);
    }
}
