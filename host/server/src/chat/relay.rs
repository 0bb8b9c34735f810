//! The stream relay: carries a committed stream to the client until it finishes, breaks or the
//! client leaves. A failure after commitment cannot fail over invisibly (bytes already went
//! out): the router records it ([`Commitment::broke`]) and walks the route again for a target
//! that continues from the partial text ([`Commitment::resume`]), whose new tokens join the same
//! stream. When no target can continue, the stream ends with an error event and no `[DONE]`,
//! so the client never mistakes a cut answer for a complete one (invariant 6).

use std::sync::Arc;
use std::time::Duration;

use aigw_router::{Commitment, Failure, FailureClass};
use aigw_runtime::{Chunk, StreamEnd, Usage};
use bytes::Bytes;
use http::StatusCode;
use tokio::sync::mpsc;

use super::attempt::{Answer, Call, OpenStream, call_failure, follow_stream, scrubbed};
use super::continuation::{Transcript, continuation_bodies, rejoin};
use super::record::{Finished, RequestRecord};
use crate::error::ApiError;
use crate::gateway::{Gateway, RouteTarget, ServedRoute};
use crate::peer::Peer;
use crate::streams::StreamSlot;

/// What a committed stream needs to go on, continuation included.
pub(crate) struct StreamContext {
    /// The state the request started on: it finishes on it, whatever is swapped in meanwhile.
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) route: Arc<ServedRoute>,
    /// The client's request, for continuation requests.
    pub(crate) body: Bytes,
    pub(crate) include_usage: bool,
    pub(crate) record: RequestRecord,
    /// The client's connection: a client that stopped sending is probed while the upstream is
    /// silent, so one that left is noticed at once.
    pub(crate) peer: Option<Peer>,
    /// The client's stream slot, freed when the stream ends.
    pub(crate) _slot: Option<StreamSlot>,
}

/// What probes a client that stopped sending: an SSE comment, ignored by every client.
const PROBE: &[u8] = b": are you there\n\n";

/// Between probes of a client that stopped sending, while the upstream is silent. One probe
/// reaches a client that left, whose reset makes the next fail: a departure is noticed within
/// about this long.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// Between probes of a client while the upstream is silent: a client that left is noticed
/// within about twice this, instead of at the upstream's next chunk (up to the stall timeout).
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Resolves when the client has stopped sending; never for an in-process request.
async fn read_closed(peer: Option<&Peer>) {
    match peer {
        Some(peer) => peer.read_closed().await,
        None => std::future::pending().await,
    }
}

/// How relaying one upstream stream ended.
enum Relayed {
    Finished,
    ClientGone,
    Broke(Failure),
}

/// The client's side of a stream: where its frames go and what it has been sent.
struct Relay {
    tx: mpsc::Sender<Bytes>,
    include_usage: bool,
    /// The last usage chunk seen (forwarded only when the client asked for it).
    usage: Option<Usage>,
    transcript: Transcript,
    /// Set once continuing: the original stream's id, to rewrite the continuation's chunks.
    rejoin_id: Option<Option<String>>,
    peer: Option<Peer>,
}

impl Relay {
    /// Forwards chunks to the client; returns false once the client has gone. The chunks one
    /// upstream read produced go out as one write: a frame per chunk cost a syscall per chunk.
    async fn forward(&mut self, chunks: Vec<Chunk>, done: bool) -> bool {
        let mut out = Vec::new();
        for chunk in chunks {
            if let Some(u) = chunk.usage {
                self.usage = Some(u);
                if !self.include_usage {
                    continue;
                }
            }
            let json = match &self.rejoin_id {
                Some(id) => rejoin(&chunk.json, id.as_deref()),
                None => chunk.json,
            };
            push_frame(&mut out, json.as_bytes());
            self.transcript.record(&json);
        }
        if done {
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
        out.is_empty() || self.tx.send(Bytes::from(out)).await.is_ok()
    }

    /// Waits for `read` (the upstream's next piece) unless the client leaves first. A client
    /// that left is only noticed when a write to it fails (hyper does not read a connection
    /// while it writes a response body), so while the upstream is silent the client is probed
    /// with SSE comments, which clients ignore: every [`HEARTBEAT`], or every [`PROBE_EVERY`]
    /// once it stopped sending (half-closed or gone, see `peer`). The first probe to a client
    /// that left draws a reset, the next write fails, hyper drops the response body, and the
    /// channel closes.
    async fn unless_client_leaves<F: std::future::Future>(&self, read: F) -> Option<F::Output> {
        tokio::pin!(read);
        let mut probing = false;
        loop {
            tokio::select! {
                biased;
                out = &mut read => return Some(out),
                () = self.tx.closed() => return None,
                () = read_closed(self.peer.as_ref()), if !probing => probing = true,
                () = tokio::time::sleep(if probing { PROBE_EVERY } else { HEARTBEAT }) => {}
            }
            // Full means the client is not reading anyway; the next probe will do.
            let _ = self.tx.try_send(Bytes::from_static(PROBE));
        }
    }

    /// Carries one upstream stream to the client until it finishes, breaks or the client
    /// leaves.
    async fn carry(
        &mut self,
        open: &mut OpenStream,
        gateway: &Gateway,
        target: &RouteTarget,
    ) -> Relayed {
        let provider = target.provider.name.as_str();
        let mut pending = std::mem::take(&mut open.first);
        loop {
            // `finished` means the decoder's `finish` succeeded: only then does `[DONE]` go out.
            if !self
                .forward(std::mem::take(&mut pending), open.finished)
                .await
            {
                return Relayed::ClientGone;
            }
            if open.finished {
                return Relayed::Finished;
            }
            let stall = open.timeouts.stall;
            let silence_ends = tokio::time::Instant::now() + stall;
            let read = tokio::time::timeout_at(silence_ends.min(open.deadline), open.body.chunk());
            let Some(read) = self.unless_client_leaves(read).await else {
                return Relayed::ClientGone;
            };
            let piece = match read {
                Err(_) if silence_ends < open.deadline => {
                    return Relayed::Broke(Failure::new(
                        FailureClass::Timeout,
                        format!("stream stalled: no data for {} ms", stall.as_millis()),
                    ));
                }
                Err(_) => {
                    return Relayed::Broke(Failure::new(
                        FailureClass::Timeout,
                        format!(
                            "stream still running after its total limit of {} ms",
                            open.timeouts.total.as_millis()
                        ),
                    ));
                }
                // The egress says what broke ("upstream body broke off: …").
                Ok(Err(e)) => {
                    return Relayed::Broke(Failure::new(FailureClass::Unavailable, e.message()));
                }
                Ok(Ok(piece)) => piece,
            };
            let decoded = match &piece {
                Some(bytes) => open.decoder.feed(bytes).await,
                None => match open.decoder.finish().await {
                    Ok(StreamEnd::Done(last)) => {
                        open.finished = true;
                        Ok(last)
                    }
                    // The stream goes on in another request's body.
                    Ok(StreamEnd::Follow(next)) => {
                        open.follows += 1;
                        let followed = follow_stream(
                            gateway,
                            target,
                            next,
                            open.follows,
                            &open.timeouts,
                            open.deadline,
                        )
                        .await;
                        match followed {
                            Ok(body) => {
                                open.body = body;
                                continue;
                            }
                            Err(failure) => return Relayed::Broke(failure),
                        }
                    }
                    Err(e) => Err(e),
                },
            };
            match decoded {
                Ok(chunks) => pending = chunks,
                Err(e) => return Relayed::Broke(call_failure(e, provider, None)),
            }
        }
    }
}

/// Carries a committed stream to the client, continuing it on another target when it breaks.
pub(crate) async fn pump(
    mut open: OpenStream,
    mut commitment: Commitment,
    tx: mpsc::Sender<Bytes>,
    context: StreamContext,
) {
    let route = Arc::clone(&context.route);
    let mut relay = Relay {
        tx,
        include_usage: context.include_usage,
        usage: None,
        // A one-target route (any direct `provider/model`) has no other target to continue on.
        transcript: if route.entries.len() < 2 {
            Transcript::off()
        } else {
            Transcript::default()
        },
        rejoin_id: None,
        peer: context.peer.clone(),
    };
    loop {
        let entry = &route.entries[commitment.target];
        let served_by = &entry.target;
        let failure = match relay.carry(&mut open, &context.gateway, served_by).await {
            Relayed::Finished => {
                open.decoder.close().await;
                context.record.finish(Finished {
                    status: 200,
                    attempts: &commitment.attempts,
                    skipped: &commitment.skipped,
                    served: Some(served_by),
                    usage: relay.usage,
                    error: None,
                });
                return;
            }
            Relayed::ClientGone => {
                context.record.finish(Finished {
                    status: 499,
                    attempts: &commitment.attempts,
                    skipped: &commitment.skipped,
                    served: Some(served_by),
                    usage: relay.usage,
                    error: Some("client went away"),
                });
                return;
            }
            Relayed::Broke(failure) => scrubbed(&context.gateway, failure),
        };
        commitment.broke(&route, failure.clone());
        let continued = continue_elsewhere(&context, &relay.transcript, &mut commitment).await;
        context.record.walked(&commitment.attempts);
        let Some((next, id)) = continued else {
            end_with_error(
                &relay.tx,
                served_by,
                &failure,
                context,
                &commitment,
                relay.usage,
            )
            .await;
            return;
        };
        tracing::info!(
            target: "aigw::request",
            model = %context.record.model(),
            broken = %served_by.label,
            continued_on = %route.entries[commitment.target].target.label,
            reason = %failure,
            "stream continued on another target"
        );
        open = next;
        relay.rejoin_id = Some(id);
    }
}

/// Asks the route's other targets to continue the answer the transcript holds. `None` when the
/// answer cannot be continued or no target could: the stream then ends with an error event.
async fn continue_elsewhere(
    context: &StreamContext,
    transcript: &Transcript,
    commitment: &mut Commitment,
) -> Option<(OpenStream, Option<String>)> {
    let (id, partial) = transcript.partial()?;
    let bodies = continuation_bodies(&context.body, partial)?;
    let call = Call {
        gateway: &context.gateway,
        body: "",
        continuation: Some(&bodies),
        stream: true,
    };
    match commitment.resume(&call, &context.route).await? {
        Answer::Stream(next) => Some((*next, id)),
        Answer::Complete { .. } => None,
    }
}

/// Ends a broken stream that no target could continue: one OpenAI-style error event, no
/// `[DONE]`.
async fn end_with_error(
    tx: &mpsc::Sender<Bytes>,
    broken: &RouteTarget,
    failure: &Failure,
    context: StreamContext,
    commitment: &Commitment,
    usage: Option<Usage>,
) {
    let message = format!("{}: {}", broken.label, failure.message);
    let event = ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", message.clone())
        .code(failure.class.as_str());
    let mut out = Vec::new();
    push_frame(&mut out, &event.json());
    let _ = tx.send(Bytes::from(out)).await;
    context.record.finish(Finished {
        status: 502,
        attempts: &commitment.attempts,
        skipped: &commitment.skipped,
        served: Some(broken),
        usage,
        error: Some(&message),
    });
}

/// Appends one SSE event, `data: <json>\n\n`.
fn push_frame(out: &mut Vec<u8>, json: &[u8]) {
    out.reserve(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}
