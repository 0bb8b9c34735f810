//! The response body type: a whole buffer, or a stream of SSE frames fed by a channel.
//!
//! A streamed body carries its producer (the relay that reads the upstream, decodes and frames
//! the chunks) and runs it when hyper asks for the next frame, inside the connection's own
//! task. As a task of its own, every chunk woke the connection's task from the relay's (a
//! second task poll per chunk, and on a multi-threaded runtime another thread); here one poll
//! reads the upstream, feeds the decoder and hands hyper the frame. hyper asks for frames
//! whenever the connection can take them, and the relay's own timers (the stall limit, probes
//! of a client that stopped sending, the shutdown deadline) wake the connection's task, which
//! polls the body again. When hyper drops the body before the relay is done (the client
//! left), the relay goes on as a task of its own to the end it would have reached: it finds
//! its channel closed, ends the upstream exchange and writes its record.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

pub enum Body {
    Full(Option<Bytes>),
    Stream(Stream),
}

/// The frames of a streamed answer and what produces them.
pub struct Stream {
    frames: mpsc::Receiver<Bytes>,
    /// `None` once it finished (what it sent may still be in `frames`).
    producer: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Body {
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body::Full(Some(bytes.into()))
    }

    /// A streamed body whose frames `producer` sends into a channel of `capacity` frames; it
    /// runs as the body is read (the module's doc says why).
    pub(crate) fn stream<F>(
        capacity: usize,
        producer: impl FnOnce(mpsc::Sender<Bytes>) -> F,
    ) -> Body
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, frames) = mpsc::channel(capacity);
        Body::Stream(Stream {
            frames,
            producer: Some(Box::pin(producer(tx))),
        })
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(stream) => {
                // The producer first: what it sends now is read below in the same poll.
                if let Some(producer) = &mut stream.producer
                    && producer.as_mut().poll(cx).is_ready()
                {
                    stream.producer = None;
                }
                stream
                    .frames
                    .poll_recv(cx)
                    .map(|piece| piece.map(|b| Ok(Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let Some(producer) = self.producer.take() else {
            return;
        };
        // Nobody reads any more: the producer's sends fail and its wait for a closed channel
        // ends, so it winds up at once.
        self.frames.close();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(producer);
            }
            // Outside a runtime nothing could run it (a body dropped by a test, say).
            Err(_) => drop(producer),
        }
    }
}
