//! The client's side of a connection as handlers see it: its address, whether it has
//! stopped sending ("read closed"), and the serve loop's shutdown deadline, at which the
//! server ends the connection's streams (`drain.rs`).
//!
//! A client that shuts down its write side after sending its request (`shutdown(SHUT_WR)`,
//! `nc -N`) and a client that *left* look the same on the wire until a write to it fails: both
//! end with a FIN. hyper, told of the end of the client's data while a request is answered,
//! either drops the request (`half_close` off: the half-closed client gets nothing) or stops
//! reading until the answer is written (`half_close` on: a client that left a silent stream is
//! noticed only at the upstream's next chunk, up to the stall timeout). Neither will do, so
//! [`PeerIo`] decides: hyper reads the connection while it answers (`half_close` off), and an
//! end of data that arrives while a request is in flight ([`Peer::answering`]) is noted and
//! kept from hyper until the last answer is written. A stream waiting on a silent upstream then
//! probes the client (an SSE comment, which clients ignore): a client that is gone answers with
//! a reset, the next write fails, and the stream is cancelled at once. Before the first byte of
//! an answer there is nothing to probe with, so such a request goes on — bounded by its attempt
//! timeouts — as a half-closed client expects. Between requests, the end of data reaches hyper
//! at once and the connection closes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::drain::DeadlineWatch;

/// What a request knows of the client connection it came on (a request extension).
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    read: Arc<ReadSide>,
    /// The serve loop's shutdown deadline, at which the server ends the connection's streams;
    /// `None`: never (a connection no serve loop accepted).
    deadline: Option<DeadlineWatch>,
}

#[derive(Debug, Default)]
struct ReadSide {
    /// The client's data ended.
    closed: AtomicBool,
    notify: Notify,
    /// Requests being answered on the connection.
    answering: AtomicUsize,
    /// hyper's read, waiting for an end of data kept from it while requests were answered.
    held: Mutex<Option<Waker>>,
}

impl ReadSide {
    fn held(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        // Holds one waker: still consistent after a panic elsewhere.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A request in flight on the connection, from its head to its answer's last byte.
#[derive(Debug)]
pub(crate) struct Answering(Arc<ReadSide>);

impl Drop for Answering {
    fn drop(&mut self) {
        if self.0.answering.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last answer is written: an end of data kept from hyper may go to it now.
            if let Some(waker) = self.0.held().take() {
                waker.wake();
            }
        }
    }
}

impl Peer {
    /// Marks a request in flight until the guard is dropped (with its answer's body).
    pub(crate) fn answering(&self) -> Answering {
        self.read.answering.fetch_add(1, Ordering::AcqRel);
        Answering(Arc::clone(&self.read))
    }

    /// This peer on a connection whose streams end at `deadline`.
    pub(crate) fn ending_at(mut self, deadline: DeadlineWatch) -> Peer {
        self.deadline = Some(deadline);
        self
    }

    /// Resolves once the server's shutdown deadline is reached (never without one).
    pub(crate) async fn deadline(&self) {
        match &self.deadline {
            Some(deadline) => deadline.reached().await,
            None => std::future::pending().await,
        }
    }

    /// Resolves once the client has stopped sending (at once if it already has).
    pub(crate) async fn read_closed(&self) {
        loop {
            let notified = self.read.notify.notified();
            if self.read.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// A connection's byte stream, noting when the client's data ends.
pub(crate) struct PeerIo<T> {
    inner: T,
    read: Arc<ReadSide>,
}

impl<T> PeerIo<T> {
    /// Wraps a client connection; the [`Peer`] goes into each of its requests.
    pub(crate) fn new(inner: T, addr: SocketAddr) -> (PeerIo<T>, Peer) {
        let read = Arc::new(ReadSide::default());
        let peer = Peer {
            addr,
            read: Arc::clone(&read),
            deadline: None,
        };
        (PeerIo { inner, read }, peer)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PeerIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.closed.load(Ordering::Acquire) {
            return self.end_of_data(cx);
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let ended = match &polled {
            // A read that filled nothing into a buffer with room is the end of the stream.
            Poll::Ready(Ok(())) => buf.filled().len() == before && buf.remaining() > 0,
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        };
        if !ended {
            return polled;
        }
        if !self.read.closed.swap(true, Ordering::AcqRel) {
            self.read.notify.notify_waiters();
        }
        match polled {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => self.end_of_data(cx),
        }
    }
}

impl<T> PeerIo<T> {
    /// The client's data has ended: hyper hears of it only once no request is in flight.
    fn end_of_data(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = self.read.held();
        if self.read.answering.load(Ordering::Acquire) == 0 {
            return Poll::Ready(Ok(()));
        }
        *held = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PeerIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_end_of_the_clients_data_is_noticed_and_writes_still_go_through() {
        let (client, server) = tokio::io::duplex(64);
        let (mut io, peer) = PeerIo::new(server, SocketAddr::from(([127, 0, 0, 1], 1)));
        let (mut client_read, mut client_write) = tokio::io::split(client);
        client_write.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(io.read(&mut buf).await.unwrap(), 5);
        assert!(!peer.read.closed.load(Ordering::Acquire));
        let answering = peer.answering();
        client_write.shutdown().await.unwrap();
        let waiting = tokio::spawn({
            let peer = peer.clone();
            async move { peer.read_closed().await }
        });
        // While a request is answered, the end of data is noted but kept from the reader.
        let mut reading = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let n = io.read(&mut buf).await.unwrap();
            (n, io)
        });
        waiting.await.unwrap();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut reading)
                .await
                .is_err(),
            "the reader heard of the end while a request was in flight"
        );
        // Half-closed: the answer still reaches the client, and then the reader hears the end.
        drop(answering);
        let (n, mut io) = reading.await.unwrap();
        assert_eq!(n, 0);
        io.write_all(b"answer").await.unwrap();
        let mut answer = [0u8; 6];
        client_read.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"answer");
    }
}
