//! Helpers for plugins' unit tests (feature `testing`): feed a recorded body to a stream decoder
//! in pieces, build an upstream response or a response head, read a chunk's JSON, answer a tool
//! plugin's requests ([`Upstream`]). Every plugin's tests need them; they live here so each
//! plugin tests its translation, not its own copy of the scaffolding.

use serde_json::Value;

use crate::{Chunk, Failure, Header, HttpResponse, ResponseHead, StreamDecoder, StreamEnd};

/// Feeds `body` to `decoder` in pieces of `piece_len` bytes, so splits land anywhere (inside a
/// line, a JSON string or a UTF-8 character), then finishes it. Every chunk, or the first
/// failure; a stream that ends asking for a follow is a `bad-response` naming its URL (use
/// [`feed_in_pieces`] to test follows).
pub fn decode_in_pieces<D: StreamDecoder>(
    mut decoder: D,
    body: &str,
    piece_len: usize,
) -> Result<Vec<Chunk>, Failure> {
    let (chunks, end) = feed_in_pieces(&mut decoder, body, piece_len)?;
    match end {
        StreamEnd::Done(_) => Ok(chunks),
        StreamEnd::Follow(follow) => Err(Failure::BadResponse(format!(
            "the stream ended with a follow to {}",
            follow.request.url
        ))),
    }
}

/// Feeds one body to `decoder` in pieces of `piece_len` bytes and finishes it: the chunks of
/// `feed` and `finish` (a `done`'s chunks included), and how the body ended. A decoder that
/// asked for a follow can be fed the follow's body with another call.
pub fn feed_in_pieces<D: StreamDecoder>(
    decoder: &mut D,
    body: &str,
    piece_len: usize,
) -> Result<(Vec<Chunk>, StreamEnd), Failure> {
    let mut chunks = Vec::new();
    for piece in body.as_bytes().chunks(piece_len.max(1)) {
        chunks.extend(decoder.feed(piece)?);
    }
    let end = decoder.finish()?;
    if let StreamEnd::Done(last) = &end {
        chunks.extend(last.iter().cloned());
    }
    Ok((chunks, end))
}

/// An upstream response with these headers and body.
pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: headers
            .iter()
            .map(|(name, value)| Header::new(*name, *value))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

/// A response head with these headers.
pub fn head(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
    ResponseHead {
        status,
        headers: headers
            .iter()
            .map(|(name, value)| Header::new(*name, *value))
            .collect(),
    }
}

/// The head of a 200 event stream, what most stream decoders are made for.
pub fn sse_head() -> ResponseHead {
    head(200, &[("content-type", "text/event-stream")])
}

/// The head of a 200 JSON answer (a server that ignored `stream: true`).
pub fn json_head() -> ResponseHead {
    head(200, &[("content-type", "application/json")])
}

/// A chunk's JSON; `Value::Null` if it is not JSON, which no assertion on a field will accept.
pub fn json_of(chunk: &Chunk) -> Value {
    serde_json::from_str(&chunk.json).unwrap_or(Value::Null)
}

/// A scripted upstream for tool plugins' unit tests: it answers `http::send` in the host's place
/// on the test's thread, by the first route whose text the request URL contains, and records
/// every request sent. An unrouted request gets a 404, so a test notices a wrong URL.
#[derive(Default)]
pub struct Upstream {
    routes: Vec<(String, Result<HttpResponse, Failure>)>,
}

impl Upstream {
    pub fn new() -> Upstream {
        Upstream::default()
    }

    /// Requests whose URL contains `needle` get `status`, a JSON content type and `body`.
    pub fn json(self, needle: &str, status: u16, body: &str) -> Upstream {
        self.answer(
            needle,
            response(status, &[("content-type", "application/json")], body),
        )
    }

    /// Requests whose URL contains `needle` get `answer`.
    pub fn answer(mut self, needle: &str, answer: HttpResponse) -> Upstream {
        self.routes.push((needle.to_owned(), Ok(answer)));
        self
    }

    /// Requests whose URL contains `needle` fail in the host with `failure` (a refused origin,
    /// a timeout).
    pub fn fail(mut self, needle: &str, failure: Failure) -> Upstream {
        self.routes.push((needle.to_owned(), Err(failure)));
        self
    }

    /// Runs `call` with this upstream answering; its result and every request it sent.
    pub fn run<R>(self, call: impl FnOnce() -> R) -> (R, Vec<crate::HttpRequest>) {
        use crate::http::native::{SENDER, SENT};
        let routes = self.routes;
        let sender: crate::http::native::Sender = Box::new(move |request| {
            routes
                .iter()
                .find(|(needle, _)| request.url.contains(needle.as_str()))
                .map(|(_, answer)| answer.clone())
                .unwrap_or_else(|| Ok(response(404, &[], "no route in the test's upstream")))
        });
        SENT.with(|sent| sent.borrow_mut().clear());
        SENDER.with(|slot| *slot.borrow_mut() = Some(sender));
        let result = call();
        SENDER.with(|slot| *slot.borrow_mut() = None);
        let sent = SENT.with(|sent| std::mem::take(&mut *sent.borrow_mut()));
        (result, sent)
    }
}
