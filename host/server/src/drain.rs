//! Graceful shutdown as the server carries it out. A signal hands [`crate::serve`] a [`Drain`]:
//! readiness turns false at once (`/readyz` answers 503 `draining`, every answer says
//! `Connection: close`) while the listener still accepts for [`Drain::delay`], so a load
//! balancer notices and stops sending before anything is refused; then the listener closes
//! (new connections are refused), idle kept-alive connections close, and requests and streams
//! in flight finish until [`Drain::grace`] after the signal. At that deadline the streams still
//! open are ended by the server ([`Deadline`]): each gets an OpenAI-style error event and no
//! `[DONE]`, so no client takes a cut answer for a whole one, and its record is written before
//! `serve` returns (the binary flushes the store after that).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::options::ServerOptions;

/// How a shutdown goes: how long readiness is false before the listener closes, and how long
/// after the signal what is in flight may take in all (the delay included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    /// From the signal to the listener's close; new connections are still served meanwhile.
    pub delay: Duration,
    /// From the signal to the deadline at which open streams are ended.
    pub grace: Duration,
}

impl From<&ServerOptions> for Drain {
    fn from(options: &ServerOptions) -> Drain {
        Drain {
            delay: options.drain_delay,
            grace: options.shutdown_grace,
        }
    }
}

impl Drain {
    /// This drain without the delay: for an interrupt at a terminal, which no load balancer
    /// routes through.
    pub fn without_delay(self) -> Drain {
        Drain {
            delay: Duration::ZERO,
            ..self
        }
    }
}

/// Whether the service is draining: read by readiness and by every answer (one atomic load).
#[derive(Debug, Default)]
pub(crate) struct Draining(AtomicBool);

impl Draining {
    pub(crate) fn begin(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_on(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The shutdown deadline, as the serve loop announces it to the connections it accepted.
pub(crate) struct Deadline(watch::Sender<bool>);

impl Deadline {
    pub(crate) fn new() -> Deadline {
        Deadline(watch::Sender::new(false))
    }

    /// What a connection's streams wait on.
    pub(crate) fn watch(&self) -> DeadlineWatch {
        DeadlineWatch(self.0.subscribe())
    }

    /// The deadline has come: every stream still open ends now.
    pub(crate) fn reached(&self) {
        self.0.send_replace(true);
    }
}

/// One connection's view of the shutdown deadline.
#[derive(Debug, Clone)]
pub(crate) struct DeadlineWatch(watch::Receiver<bool>);

impl DeadlineWatch {
    /// Resolves once the deadline is reached (never if the serve loop is gone without one).
    pub(crate) async fn reached(&self) {
        let mut watch = self.0.clone();
        if watch.wait_for(|reached| *reached).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stream_waiting_on_the_deadline_wakes_when_it_is_reached_and_not_before() {
        let deadline = Deadline::new();
        let watch = deadline.watch();
        let waiting = tokio::spawn(async move { watch.reached().await });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished());
        deadline.reached();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken by the deadline")
            .unwrap();
        // A watch taken after the deadline sees it at once.
        tokio::time::timeout(Duration::from_millis(1), deadline.watch().reached())
            .await
            .expect("already reached");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_whose_serve_loop_ended_without_a_deadline_never_fires() {
        let deadline = Deadline::new();
        let watch = deadline.watch();
        drop(deadline);
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), watch.reached())
                .await
                .is_err()
        );
    }

    #[test]
    fn an_interrupt_skips_the_delay_but_keeps_the_grace() {
        let drain = Drain {
            delay: Duration::from_secs(5),
            grace: Duration::from_secs(30),
        };
        assert_eq!(
            drain.without_delay(),
            Drain {
                delay: Duration::ZERO,
                grace: Duration::from_secs(30)
            }
        );
    }
}
