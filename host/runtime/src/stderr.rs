//! The guest's stderr, captured per call so a Rust plugin's panic message can be reported with its
//! fault.
//!
//! wasmtime-wasi's `MemoryOutputPipe` keeps everything an instance ever wrote and traps the guest
//! once its capacity is used up. On a warm instance both are wrong: a plugin that writes a little
//! to stderr on every call would fault after a few hundred calls, and a fault message would carry
//! what earlier calls (possibly other tenants' calls) wrote. This capture keeps only the current
//! call's last [`STDERR_CAPTURE`] bytes, never refuses a write, and is emptied when a call ends.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of a guest's stderr kept per call: the tail, where a panic message is.
pub(crate) const STDERR_CAPTURE: usize = 4096;

/// A cheap handle to one instance's capture; the store's WASI context holds another.
#[derive(Clone, Default)]
pub(crate) struct StderrCapture {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Set on the first write after a clear, so ending a call that wrote nothing (every call of
    /// a well-behaved plugin) costs one atomic load instead of a lock.
    written: AtomicBool,
    bytes: Mutex<Vec<u8>>,
}

impl StderrCapture {
    /// What the current call wrote, trimmed, lossily decoded.
    pub(crate) fn text(&self) -> String {
        let bytes = self
            .inner
            .bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }

    /// Forgets what was written: called when a call ends normally.
    pub(crate) fn clear(&self) {
        // A plain load first: the swap (a read-modify-write) only when something was written.
        if self.inner.written.load(Ordering::Relaxed)
            && self.inner.written.swap(false, Ordering::Relaxed)
        {
            self.inner
                .bytes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    pub(crate) fn append(&self, new: &[u8]) {
        let mut bytes = self
            .inner
            .bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new = &new[new.len().saturating_sub(STDERR_CAPTURE)..];
        let overflow = (bytes.len() + new.len()).saturating_sub(STDERR_CAPTURE);
        bytes.drain(..overflow);
        bytes.extend_from_slice(new);
        self.inner.written.store(true, Ordering::Relaxed);
    }
}

impl IsTerminal for StderrCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for StderrCapture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always writable: the capture drops old bytes instead of refusing new ones.
        Ok(STDERR_CAPTURE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrCapture {
    async fn ready(&mut self) {}
}

impl AsyncWrite for StderrCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_of_one_call_and_forgets_it_when_the_call_ends() {
        let capture = StderrCapture::default();
        capture.append(&vec![b'a'; STDERR_CAPTURE]);
        capture.append(b"panicked at the end");
        let text = capture.text();
        assert_eq!(text.len(), STDERR_CAPTURE);
        assert!(text.ends_with("panicked at the end"), "{text}");
        capture.clear();
        assert_eq!(capture.text(), "");
        // Writing never fails however much a plugin writes over many calls.
        for _ in 0..10 {
            capture.append(&vec![b'b'; STDERR_CAPTURE * 2]);
        }
        assert_eq!(capture.text().len(), STDERR_CAPTURE);
    }
}
