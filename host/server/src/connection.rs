//! What one client connection may hold, and how many may be open. Without limits a client that
//! sends half a request head and stalls (slowloris), or keeps a socket open and idle, holds a
//! task, buffers and a file descriptor forever; enough of them take the gateway down.
//!
//! Each connection is in one of three phases, watched by its [`Watch`]:
//! - **head**: waiting for a request's head, which must be complete within the header-read
//!   timeout, counted from the accept (a connection's first request) or from the first byte
//!   after an idle spell (a later one);
//! - **busy**: a request is being answered (its body read, its response written): no limit
//!   here; the body read has its own (`server.body_read_timeout_ms`, in the service) and the
//!   upstream limits bound the answer;
//! - **idle**: kept alive with no request in progress, closed after the idle timeout.
//!
//! hyper's own `header_read_timeout` cannot tell the last two apart: in hyper 1 (1.12 checked) it starts
//! as soon as a response is written, so it would close an idle kept-alive connection at the
//! header limit. The watch instead learns of bytes from its IO ([`Watched`]) and of requests
//! from the service ([`Watch::request`]), and looks at the phase every quarter of the shorter
//! limit (or at the phase's deadline, if sooner). It is not woken when the phase changes: a
//! wake and a timer per phase change cost a keep-alive request two extra polls of its
//! connection and ~10 % of the gateway's throughput at 16 connections. The price is
//! precision: a limit closes a connection between its value and a quarter later (a 10 s head
//! limit at 10–12.5 s).
//! (On HTTP/2 any frame on an idle connection, a ping say, starts the head phase: a client that
//! only pings is closed at the header limit.)
//!
//! At the connection cap ([`Slots`]) a new connection is accepted and closed at once: the
//! client learns immediately (and a load balancer can try another instance), the accept loop
//! does one accept and one close per excess connection, as the kernel did for its handshake,
//! and nothing waits or grows. Not accepting until a slot frees would leave such clients
//! hanging in the listen backlog with no answer.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::options::ServerOptions;

/// How often, at most, a full-cap refusal is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The per-connection limits of [`crate::serve`]: how long a client may take, how many may be
/// open. From [`ServerOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl From<&ServerOptions> for ConnectionLimits {
    fn from(options: &ServerOptions) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: options.header_read_timeout,
            idle_timeout: options.idle_timeout,
            max_connections: options.max_connections,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits::from(&ServerOptions::default())
    }
}

/// The open-connection cap: one permit per open connection, held by its task.
pub(crate) struct Slots {
    permits: Arc<Semaphore>,
    max: usize,
    last_report: Option<Instant>,
    unreported: u64,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Slots {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Slots {
            permits: Arc::new(Semaphore::new(max)),
            max,
            last_report: None,
            unreported: 0,
        }
    }

    /// Connections open now (each holds a slot until its task ends).
    pub(crate) fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// A slot for a new connection, or `None` at the cap (logged at most once per
    /// [`REPORT_EVERY`], with how many were refused since the last line).
    pub(crate) fn take(&mut self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Some(permit);
        }
        let now = Instant::now();
        if self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= REPORT_EVERY)
        {
            self.last_report = Some(now);
            tracing::warn!(
                max_connections = self.max,
                refused_since_last_line = std::mem::take(&mut self.unreported),
                "connection limit reached: closing new connections until one ends"
            );
        } else {
            self.unreported += 1;
        }
        None
    }
}

/// Which limit closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// A request head did not arrive in time.
    HeaderRead(Duration),
    /// The connection stayed idle too long.
    Idle(Duration),
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Head { since: Instant },
    Busy { requests: usize },
    Idle { since: Instant },
}

struct Shared {
    phase: Mutex<Phase>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl Shared {
    /// How often the watch looks at the phase: a quarter of the shorter limit.
    fn tick(&self) -> Duration {
        (self.header_read_timeout.min(self.idle_timeout) / 4).max(Duration::from_millis(1))
    }
}

impl Shared {
    fn update<R>(&self, change: impl FnOnce(&mut Phase) -> R) -> R {
        // A panic elsewhere cannot leave the phase half-written: it is a plain copy.
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut phase)
    }
}

/// One connection's watch: its phase, and when the phase's limit runs out.
#[derive(Clone)]
pub(crate) struct Watch {
    shared: Arc<Shared>,
}

impl Watch {
    /// A watch over a connection just accepted (waiting for its first head), and its IO.
    pub(crate) fn new<T>(io: T, limits: &ConnectionLimits) -> (Watched<T>, Watch) {
        let shared = Arc::new(Shared {
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
            }),
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
        });
        let watched = Watched {
            io,
            shared: Arc::clone(&shared),
        };
        (watched, Watch { shared })
    }

    /// A request's head has arrived: the connection is busy until the returned guard (held by
    /// the response body) is dropped.
    pub(crate) fn request(&self) -> Busy {
        self.shared.update(|phase| {
            *phase = match *phase {
                Phase::Busy { requests } => Phase::Busy {
                    requests: requests + 1,
                },
                Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
            }
        });
        Busy {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Completes when the current phase's limit runs out, saying which; never while busy. The
    /// phase is looked at every [`Shared::tick`], so a limit ends a connection up to a tick late.
    pub(crate) async fn expired(&self) -> Expired {
        let tick = self.shared.tick();
        loop {
            let now = Instant::now();
            let due = match self.shared.update(|phase| *phase) {
                Phase::Busy { .. } => None,
                Phase::Head { since } => Some((
                    since + self.shared.header_read_timeout,
                    Expired::HeaderRead(self.shared.header_read_timeout),
                )),
                Phase::Idle { since } => Some((
                    since + self.shared.idle_timeout,
                    Expired::Idle(self.shared.idle_timeout),
                )),
            };
            let next = match due {
                Some((deadline, expiry)) if now >= deadline => return expiry,
                Some((deadline, _)) => deadline.min(now + tick),
                None => now + tick,
            };
            tokio::time::sleep_until(next).await;
        }
    }
}

/// Held while a request is answered; dropping it (the response is written, or the request was
/// abandoned) makes the connection idle once no other request is in progress.
pub(crate) struct Busy {
    shared: Arc<Shared>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.shared.update(|phase| match *phase {
            Phase::Busy { requests } if requests > 1 => {
                *phase = Phase::Busy {
                    requests: requests - 1,
                };
            }
            _ => {
                *phase = Phase::Idle {
                    since: Instant::now(),
                };
            }
        });
    }
}

/// A connection's IO, telling its [`Watch`] when bytes arrive on an idle connection (the next
/// request's head has begun).
pub(crate) struct Watched<T> {
    io: T,
    shared: Arc<Shared>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.shared.update(|phase| {
                if let Phase::Idle { .. } = phase {
                    *phase = Phase::Head {
                        since: Instant::now(),
                    };
                }
            });
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A response body that keeps its connection busy until it is written (and dropped): `G` is
/// what is held meanwhile (the connection's [`Busy`], and whatever else lasts as long).
pub(crate) struct Guarded<B, G = Busy> {
    body: B,
    _busy: G,
}

impl<B, G> Guarded<B, G> {
    pub(crate) fn new(body: B, busy: G) -> Guarded<B, G> {
        Guarded { body, _busy: busy }
    }
}

impl<B: http_body::Body<Data = Bytes> + Unpin, G: Unpin> http_body::Body for Guarded<B, G> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: 2,
    };

    /// A limit ends a connection at its deadline or up to one tick (a quarter of the shorter
    /// limit: 2.5 s here) later, never sooner.
    fn within_a_tick(waited: Duration, deadline: Duration) {
        let tick = LIMITS.header_read_timeout / 4;
        assert!(
            waited >= deadline && waited <= deadline + tick,
            "{waited:?} is not within a tick after {deadline:?}"
        );
    }

    /// How long (paused time) until the watch says the connection is over, and why.
    async fn expiry(watch: &Watch) -> (Duration, Expired) {
        let started = Instant::now();
        let expired = watch.expired().await;
        (started.elapsed(), expired)
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_head_has_the_header_timeout_from_the_accept() {
        let (client, server) = tokio::io::duplex(64);
        let (_io, watch) = Watch::new(server, &LIMITS);
        drop(client);
        assert_eq!(
            expiry(&watch).await,
            (
                Duration::from_secs(10),
                Expired::HeaderRead(LIMITS.header_read_timeout)
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_has_no_limit_and_an_idle_one_the_idle_timeout() {
        let (_client, server) = tokio::io::duplex(64);
        let (_io, watch) = Watch::new(server, &LIMITS);
        let busy = watch.request();
        let waiting = tokio::spawn({
            let watch = watch.clone();
            async move { expiry(&watch).await }
        });
        // Far past both limits while the request is answered.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!waiting.is_finished());
        drop(busy);
        let (waited, expired) = waiting.await.unwrap();
        assert_eq!(expired, Expired::Idle(LIMITS.idle_timeout));
        within_a_tick(waited, Duration::from_secs(3600 + 60));
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_head_has_the_header_timeout_from_its_first_byte() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut io, watch) = Watch::new(server, &LIMITS);
        drop(watch.request());
        let waiting = tokio::spawn({
            let watch = watch.clone();
            async move { expiry(&watch).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        client.write_all(b"GET / HT").await.unwrap();
        let mut buf = [0; 8];
        io.read_exact(&mut buf).await.unwrap();
        // Idle for 30 s, then 10 s for the head: closed 40 s in, not at the idle limit (60 s).
        let (waited, expired) = waiting.await.unwrap();
        assert_eq!(expired, Expired::HeaderRead(LIMITS.header_read_timeout));
        within_a_tick(waited, Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_keep_the_connection_busy_until_the_last_ends() {
        let (_client, server) = tokio::io::duplex(64);
        let (_io, watch) = Watch::new(server, &LIMITS);
        let first = watch.request();
        let second = watch.request();
        drop(first);
        let waiting = tokio::spawn({
            let watch = watch.clone();
            async move { expiry(&watch).await }
        });
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(!waiting.is_finished());
        drop(second);
        assert_eq!(waiting.await.unwrap().1, Expired::Idle(LIMITS.idle_timeout));
    }

    #[tokio::test(start_paused = true)]
    async fn slots_refuse_past_the_cap_until_one_is_given_back() {
        let mut slots = Slots::new(LIMITS.max_connections);
        let first = slots.take().unwrap();
        let _second = slots.take().unwrap();
        assert!(slots.take().is_none());
        assert!(slots.take().is_none());
        assert_eq!(slots.unreported, 1, "one line per period");
        drop(first);
        assert!(slots.take().is_some());
    }
}
