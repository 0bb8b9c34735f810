//! The client's side of a connection as handlers see it: its address, and whether it has
//! stopped sending ("read closed").
//!
//! hyper serves each connection with `half_close` on, so a client that shuts down its write
//! side after sending its request (`shutdown(SHUT_WR)`, `nc -N`) still gets its answer. The price
//! is that a client that *left* looks the same on the wire until a write to it fails: both
//! end with a FIN. So [`PeerIo`] notes the end of the client's data, and a stream waiting on a
//! silent upstream answers it by probing (an SSE comment, which clients ignore): a client that
//! is gone answers the probe with a reset, the next write fails, and the stream is cancelled at
//! once instead of at the upstream's next chunk (up to the stall timeout). Before the first byte
//! of an answer there is nothing to probe with, so such a request goes on — bounded by its
//! attempt timeouts — as a half-closed client expects.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// What a request knows of the client connection it came on (a request extension).
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    read: Arc<ReadSide>,
}

#[derive(Debug, Default)]
struct ReadSide {
    closed: AtomicBool,
    notify: Notify,
}

impl Peer {
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
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let ended = match &polled {
            // A read that filled nothing into a buffer with room is the end of the stream.
            Poll::Ready(Ok(())) => buf.filled().len() == before && buf.remaining() > 0,
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        };
        if ended && !self.read.closed.swap(true, Ordering::AcqRel) {
            self.read.notify.notify_waiters();
        }
        polled
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
        client_write.shutdown().await.unwrap();
        let waiting = tokio::spawn({
            let peer = peer.clone();
            async move { peer.read_closed().await }
        });
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
        waiting.await.unwrap();
        // Half-closed: the answer still reaches the client.
        io.write_all(b"answer").await.unwrap();
        let mut answer = [0u8; 6];
        client_read.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"answer");
    }
}
