//! An upstream answer in the egress's own types: a status, headers, and a body read in pieces
//! or whole. The HTTP client under it stays private.

use std::borrow::Cow;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::error::{EgressError, ErrorKind, source_chain};

/// What the upstream answered. Its status and headers have arrived; its body may not have.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Body,
}

impl Response {
    /// `deadline` is the exchange's timer, still running: it bounds the body too.
    pub(crate) fn new(
        response: http::Response<Incoming>,
        deadline: Pin<Box<Sleep>>,
        timeout: Duration,
    ) -> Response {
        let (parts, incoming) = response.into_parts();
        Response {
            status: parts.status.as_u16(),
            headers: Headers(parts.headers),
            body: Body {
                incoming,
                deadline,
                timeout,
            },
        }
    }
}

/// An answer's headers. Names are lowercase; values that are not UTF-8 read lossily.
#[derive(Debug, Clone, Default)]
pub struct Headers(HeaderMap);

impl Headers {
    /// The first value of header `name` (any case).
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0
            .get(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()))
    }

    /// Every header in order, a repeated header once per value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value.as_bytes())))
    }

    /// Every header as owned pairs (what a plugin is handed to decode).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(name, value)| (name.to_owned(), value.into_owned()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Capacity reserved up front from an answer's `Content-Length`, at most: the header is the
/// upstream's word, not a reason to allocate gigabytes before a byte has arrived.
const RESERVE_AT_MOST: u64 = 1 << 20;

/// An answer's body, still arriving. Reading it is bound by the send's `timeout` (the whole
/// exchange), so a stream meant to run long is sent with a long one and paced by the caller.
#[derive(Debug)]
pub struct Body {
    incoming: Incoming,
    /// The exchange's deadline: one timer for the whole answer, not one per piece.
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl Body {
    /// The next piece of the body as it arrives; `None` once it is complete.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, EgressError> {
        loop {
            let frame = poll_fn(|cx| {
                if let Poll::Ready(frame) = Pin::new(&mut self.incoming).poll_frame(cx) {
                    return Poll::Ready(Some(frame));
                }
                self.deadline.as_mut().poll(cx).map(|()| None)
            })
            .await;
            match frame {
                None => {
                    return Err(EgressError::new(
                        ErrorKind::Timeout,
                        format!("no complete answer within {} ms", self.timeout.as_millis()),
                    ));
                }
                Some(None) => return Ok(None),
                Some(Some(Err(error))) => return Err(body_error(&error)),
                // Trailers carry no body: read on.
                Some(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The whole body, if it is at most `limit` bytes: a larger one fails as
    /// [`ErrorKind::TooLarge`] as soon as it passes the limit (declared or read), so a runaway
    /// answer costs at most `limit` bytes of memory.
    pub async fn collect(mut self, limit: usize) -> Result<Vec<u8>, EgressError> {
        let too_large = || {
            EgressError::new(
                ErrorKind::TooLarge,
                format!("answer larger than {limit} bytes"),
            )
        };
        let declared = self.incoming.size_hint().exact();
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        let reserve = declared.map_or(0, |length| length.min(RESERVE_AT_MOST));
        let mut whole = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
        while let Some(piece) = self.chunk().await? {
            if whole.len() + piece.len() > limit {
                return Err(too_large());
            }
            whole.extend_from_slice(&piece);
        }
        Ok(whole)
    }
}

fn body_error(error: &hyper::Error) -> EgressError {
    // The connection broke mid-answer: a transport failure, whatever the status said.
    EgressError::new(
        ErrorKind::BodyBroken,
        format!("upstream body broke off: {}", source_chain(error)),
    )
}
