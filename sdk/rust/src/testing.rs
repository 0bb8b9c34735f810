//! Helpers for plugins' unit tests (feature `testing`): feed a recorded body to a stream decoder
//! in pieces, build an upstream response, read a chunk's JSON. Every plugin's tests need them;
//! they live here so each plugin tests its translation, not its own copy of the scaffolding.

use serde_json::Value;

use crate::{Chunk, Failure, Header, HttpResponse, StreamDecoder};

/// Feeds `body` to `decoder` in pieces of `piece_len` bytes, so splits land anywhere (inside a
/// line, a JSON string or a UTF-8 character), then finishes it. Every chunk, or the first failure.
pub fn decode_in_pieces<D: StreamDecoder>(
    mut decoder: D,
    body: &str,
    piece_len: usize,
) -> Result<Vec<Chunk>, Failure> {
    let mut chunks = Vec::new();
    for piece in body.as_bytes().chunks(piece_len.max(1)) {
        chunks.extend(decoder.feed(piece)?);
    }
    chunks.extend(decoder.finish()?);
    Ok(chunks)
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

/// A chunk's JSON; `Value::Null` if it is not JSON, which no assertion on a field will accept.
pub fn json_of(chunk: &Chunk) -> Value {
    serde_json::from_str(&chunk.json).unwrap_or(Value::Null)
}
