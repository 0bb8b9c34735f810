//! The stream relay: carries a committed stream to the client until it finishes, breaks or the
//! client leaves. A failure after commitment cannot fail over invisibly (bytes already went
//! out): the router records it ([`Commitment::broke`]) and walks the route again for a target
//! that continues from the partial text ([`Commitment::resume`]), whose new tokens join the same
//! stream. When no target can continue, the stream ends with an error event and no `[DONE]`,
//! so the client never mistakes a cut answer for a complete one (invariant 6).
//!
//! A continuation's text goes through a [`Join`] first, so a continuing model that restarts
//! the answer or repeats its end does not make the client read it twice, and one that restarts
//! and says something else ends the stream with an error event. The usage the client and the
//! log get counts every attempt that produced tokens: the broken ones (their reported usage, or
//! an estimate) plus the one that finished.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_router::{Commitment, Failure, FailureClass};
use aigw_runtime::{Chunk, StreamEnd, Usage};
use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;

use super::attempt::{Answer, Call, OpenStream, call_failure, follow_stream, scrubbed};
use super::cache::{Assembler, Keep};
use super::continuation::{
    Continuation, Join, Joined, Transcript, add_usage, broken_usage, continuation_bodies, rejoin,
    with_usage,
};
use super::merge::Merge;
use super::record::{Finished, RequestRecord};
use super::session::{Reply, Turn};
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
    /// The session's turn, recorded once the stream finished cleanly and before `[DONE]`.
    pub(crate) turn: Option<Turn>,
    /// The client's stream slot, freed when the stream ends (before its record is written, for
    /// a client that went away: whoever reads the record finds the slot free).
    pub(crate) slot: Option<StreamSlot>,
    /// Keeps the answer in the response cache once the stream finished cleanly.
    pub(crate) cache: Option<Keep>,
}

/// What probes a client that stopped sending: an SSE comment, ignored by every client.
const PROBE: &[u8] = b": are you there\n\n";

/// Between probes of a client that stopped sending, while the upstream is silent. One probe
/// reaches a client that left, whose reset makes the next fail: a departure is noticed within
/// about this long.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// Resolves when the client has stopped sending; never for an in-process request.
async fn read_closed(peer: Option<&Peer>) {
    match peer {
        Some(peer) => peer.read_closed().await,
        None => std::future::pending().await,
    }
}

/// Resolves at the server's shutdown deadline; never for an in-process request.
async fn deadline(peer: Option<&Peer>) {
    match peer {
        Some(peer) => peer.deadline().await,
        None => std::future::pending().await,
    }
}

/// How relaying one upstream stream ended.
enum Relayed {
    Finished,
    ClientGone,
    Broke(Failure),
    /// The server's shutdown deadline came first (`drain.rs`).
    ShutDown,
}

/// What waiting for the upstream's next piece came to.
enum Waited<T> {
    Read(T),
    ClientGone,
    ShutDown,
}

/// The client's side of a stream: where its frames go and what it has been sent.
pub(crate) struct Relay {
    tx: mpsc::Sender<Bytes>,
    include_usage: bool,
    /// The last usage chunk the serving attempt sent (forwarded only when the client asked
    /// for it).
    usage: Option<Usage>,
    /// What each attempt that broke before it consumed, on its own target (by label), so each
    /// part is priced at its target's price; empty before any broke.
    broken: Vec<(Arc<str>, Usage)>,
    transcript: Transcript,
    peer: Option<Peer>,
    /// Set once continuing.
    continuing: Option<Continuing>,
    /// Set when the continuation could not be joined to the answer: the stream ends with an
    /// error event ([`Relay::forward`] returned false).
    diverged: Option<String>,
    /// What the client was sent of the answer, for a session's turn (`None` without one); a
    /// tool loop's step: what the upstream sent, tool calls included.
    reply: Option<Reply>,
    /// A tool loop's step: what of each chunk goes out (`None`: all of it).
    merge: Option<Merge>,
    /// What the client was sent, put back together for the response cache (`None`: not kept).
    assembler: Option<Assembler>,
    /// When the first chunk went out to the client (for the record's time to first chunk).
    first_sent: Option<Instant>,
}

/// A continuation being relayed: the original stream's id (to rewrite its chunks) and the
/// join to the answer the client already has.
struct Continuing {
    id: Option<String>,
    join: Join,
}

impl Relay {
    /// The relay of one committed stream on `route`; `reply` keeps what was sent (a session's
    /// turn) and holds `[DONE]` back for the caller; `merge` makes it a tool loop's step.
    pub(crate) fn new(
        tx: mpsc::Sender<Bytes>,
        route: &ServedRoute,
        include_usage: bool,
        peer: Option<Peer>,
        reply: bool,
        merge: Option<Merge>,
    ) -> Relay {
        Relay {
            tx,
            include_usage,
            usage: None,
            broken: Vec::new(),
            // A one-target route (any direct `provider/model`) has no other target to
            // continue on.
            transcript: if route.entries.len() < 2 {
                Transcript::off()
            } else {
                Transcript::default()
            },
            peer,
            continuing: None,
            diverged: None,
            reply: (reply || merge.is_some()).then(Reply::default),
            merge,
            assembler: None,
            first_sent: None,
        }
    }

    /// After a tool loop's step: the assistant message the upstream streamed (tool calls
    /// whole), the usage of its serving attempt, and the merge, for the next step (what its
    /// broken attempts consumed: [`Relay::usage`]).
    pub(crate) fn into_step(self) -> (Value, Option<Usage>, Merge) {
        let message = self.reply.map(|r| r.message()).unwrap_or(Value::Null);
        (message, self.usage, self.merge.unwrap_or_default())
    }

    /// The usage of the serving attempt and of the broken ones, so far.
    pub(crate) fn usage(&self) -> (Option<Usage>, &[(Arc<str>, Usage)]) {
        (self.usage, &self.broken)
    }

    /// Forwards chunks to the client; returns false once the stream cannot go on: the client
    /// has gone, or a continuation could not be joined to the answer (`diverged` is set; the
    /// text it held back does not go out). The chunks one upstream read produced go out as one write: a
    /// frame per chunk cost a syscall per chunk.
    async fn forward(&mut self, chunks: Vec<Chunk>, done: bool) -> bool {
        // Sized for every chunk framed as it came (what nearly every read is): one allocation
        // instead of a dozen growths and their copies for a read of a whole answer.
        let framed: usize = chunks.iter().map(|c| c.json.len() + FRAMING).sum();
        let mut out = Vec::with_capacity(framed + DONE.len());
        for chunk in chunks {
            let mut json = chunk.json;
            if let Some(u) = chunk.usage {
                self.usage = Some(u);
                if !self.include_usage {
                    continue;
                }
                // The client's usage is the request's: the broken attempts' too.
                if let Some(broken) = self.broken_total() {
                    json = with_usage(&json, add_usage(broken, u));
                }
            }
            let Some(continuing) = &mut self.continuing else {
                self.sent(&mut out, &json);
                continue;
            };
            let json = rejoin(&json, continuing.id.as_deref());
            match continuing.join.chunk(json) {
                Joined::Forward(joined) => {
                    for json in joined {
                        self.sent(&mut out, &json);
                    }
                }
                Joined::Diverged(why) => return self.diverge(out, why).await,
            }
        }
        if done {
            // The continuation's text is over: what it still holds goes out before `[DONE]`.
            if let Some(continuing) = &mut self.continuing {
                match continuing.join.end() {
                    Joined::Forward(joined) => {
                        for json in joined {
                            self.sent(&mut out, &json);
                        }
                    }
                    Joined::Diverged(why) => return self.diverge(out, why).await,
                }
            }
            // A session's `[DONE]` waits for its turn to be recorded (`pump`).
            if self.reply.is_none() {
                out.extend_from_slice(DONE);
            }
        }
        if out.is_empty() {
            return true;
        }
        let sent = self.tx.send(Bytes::from(out)).await.is_ok();
        if sent && self.first_sent.is_none() {
            self.first_sent = Some(Instant::now());
        }
        sent
    }

    /// One chunk goes out: framed, and remembered for a continuation and a session's turn.
    fn sent(&mut self, out: &mut Vec<u8>, json: &str) {
        match &mut self.merge {
            Some(merge) => {
                if let Some(merged) = merge.chunk(json) {
                    push_frame(out, merged.as_bytes());
                }
            }
            None => push_frame(out, json.as_bytes()),
        }
        self.transcript.record(json);
        if let Some(reply) = &mut self.reply {
            reply.record(json);
        }
        if let Some(assembler) = &mut self.assembler {
            assembler.record(json);
        }
    }

    /// Waits for `read` (the upstream's next piece) unless the client leaves first. A client
    /// whose data ended (half-closed or gone, see `peer`) is probed with SSE comments, which
    /// clients ignore, every [`PROBE_EVERY`] while the upstream is silent: the first probe to a
    /// client that left draws a reset, the next write fails, hyper drops the response body,
    /// and the channel closes. A client that is still connected costs nothing. The server's
    /// shutdown deadline ends the wait too.
    async fn unless_client_leaves<F: std::future::Future>(&self, read: F) -> Waited<F::Output> {
        tokio::pin!(read);
        let mut probing = false;
        loop {
            tokio::select! {
                biased;
                out = &mut read => return Waited::Read(out),
                () = self.tx.closed() => return Waited::ClientGone,
                () = deadline(self.peer.as_ref()) => return Waited::ShutDown,
                () = read_closed(self.peer.as_ref()), if !probing => probing = true,
                () = tokio::time::sleep(PROBE_EVERY), if probing => {}
            }
            // Full means the client is not reading anyway; the next probe will do.
            let _ = self.tx.try_send(Bytes::from_static(PROBE));
        }
    }

    /// A continuation that cannot be joined: what went out before it still goes out, and the
    /// stream stops (`diverged` says why).
    async fn diverge(&mut self, out: Vec<u8>, why: String) -> bool {
        if !out.is_empty() {
            let _ = self.tx.send(Bytes::from(out)).await;
        }
        self.diverged = Some(why);
        false
    }

    /// Accounts for the attempt that just broke on `target`, which was sent `body`: its
    /// reported usage, else an estimate from its prompt and the text it produced (and the
    /// record says so). Only when its text is known (the answer can be continued), the only
    /// case where another attempt follows it.
    fn broke(&mut self, body: &[u8], target: &RouteTarget, record: &mut RequestRecord) {
        let produced = match &self.continuing {
            Some(continuing) => continuing.join.produced(),
            None => self.transcript.chars(),
        };
        if self.transcript.partial().is_none() {
            return;
        }
        let (usage, estimated) = broken_usage(self.usage.take(), body, produced);
        if estimated {
            record.usage_estimated();
        }
        self.broken.push((Arc::clone(&target.label), usage));
    }

    /// What the attempts that broke consumed together; `None` before any broke.
    fn broken_total(&self) -> Option<Usage> {
        self.broken.iter().map(|(_, u)| *u).reduce(add_usage)
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
            let read = match self.unless_client_leaves(read).await {
                Waited::Read(read) => read,
                Waited::ClientGone => return Relayed::ClientGone,
                Waited::ShutDown => return Relayed::ShutDown,
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
                        let stream = (open.follows, open.deadline, &open.trace_context[..]);
                        let followed =
                            follow_stream(gateway, target, next, &open.timeouts, stream).await;
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
    open: OpenStream,
    mut commitment: Commitment,
    tx: mpsc::Sender<Bytes>,
    mut context: StreamContext,
) {
    let route = Arc::clone(&context.route);
    let mut relay = Relay::new(
        tx,
        &route,
        context.include_usage,
        context.peer.clone(),
        context.turn.is_some(),
        None,
    );
    relay.assembler = context.cache.as_ref().map(Keep::assembler);
    let carried = carry_committed(
        open,
        &mut commitment,
        &mut relay,
        Carrying {
            gateway: &context.gateway,
            route: &route,
            body: &context.body,
        },
        &mut context.record,
    )
    .await;
    let served_by = &route.entries[commitment.target].target;
    match carried {
        Carried::Finished => {
            let mut status = 200;
            let mut error = None;
            if let (Some(turn), Some(reply)) = (context.turn.take(), &relay.reply) {
                status = finish_turn(&relay.tx, turn, &context.gateway, reply).await;
                error = (status != 200).then_some("the turn could not be recorded");
            }
            if let (Some(keep), Some(assembler)) = (context.cache.take(), relay.assembler.take()) {
                // The client's usage: every attempt's, the broken ones' too.
                let usage = relay
                    .broken_total()
                    .into_iter()
                    .chain(relay.usage)
                    .reduce(add_usage);
                keep.stream(assembler, usage);
            }
            context.record.finish(Finished {
                status,
                attempts: &commitment.attempts,
                skipped: &commitment.skipped,
                served: Some(served_by),
                usage: relay.usage,
                broken: &relay.broken,
                error,
                answer: None,
            });
        }
        Carried::ClientGone => {
            drop(context.slot.take());
            context.record.finish(Finished {
                status: 499,
                attempts: &commitment.attempts,
                skipped: &commitment.skipped,
                served: Some(served_by),
                usage: relay.usage,
                broken: &relay.broken,
                error: Some("client went away"),
                answer: None,
            });
        }
        Carried::ShutDown => {
            send_event(&relay.tx, &shutdown_error()).await;
            context.record.finish(Finished {
                status: 503,
                attempts: &commitment.attempts,
                skipped: &commitment.skipped,
                served: Some(served_by),
                usage: relay.usage,
                broken: &relay.broken,
                error: Some("ended at the shutdown deadline"),
                answer: None,
            });
        }
        Carried::Failed(failure) => {
            let message = error_event(&relay.tx, served_by, &failure).await;
            context.record.finish(Finished {
                status: 502,
                attempts: &commitment.attempts,
                skipped: &commitment.skipped,
                served: Some(served_by),
                usage: relay.usage,
                broken: &relay.broken,
                error: Some(&message),
                answer: None,
            });
        }
    }
}

/// How a committed stream ended, continuations included.
pub(crate) enum Carried {
    /// The decoder finished cleanly (and was closed); `[DONE]` went out unless the relay
    /// records a reply (a session's turn, a tool loop's step: their caller ends the stream).
    Finished,
    ClientGone,
    /// It broke and no target could continue it (or a continuation could not be joined): the
    /// caller ends the stream with an error event ([`error_event`]).
    Failed(Failure),
    /// The server's shutdown deadline came before its end: the caller ends the stream with
    /// [`shutdown_error`]'s event.
    ShutDown,
}

/// The error event of a stream ended at the server's shutdown deadline: not the upstream's
/// fault, and no `[DONE]` (the answer is cut).
pub(crate) fn shutdown_error() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "the gateway shut down before the stream finished (server.shutdown_grace_ms ran out); \
         the answer is incomplete: ask again",
    )
    .code("shutting_down")
}

/// What a committed stream is carried with: the state the request started on and the body the
/// serving attempt was sent (continuation requests are built from it).
pub(crate) struct Carrying<'a> {
    pub(crate) gateway: &'a Arc<Gateway>,
    pub(crate) route: &'a Arc<ServedRoute>,
    pub(crate) body: &'a Bytes,
}

/// Carries a committed stream through `relay` until it finishes, the client leaves, or it
/// breaks and no target continues it. `commitment` ends naming the target that last served;
/// the record is not finished here (the caller knows whether the answer is over).
pub(crate) async fn carry_committed(
    mut open: OpenStream,
    commitment: &mut Commitment,
    relay: &mut Relay,
    carrying: Carrying<'_>,
    record: &mut RequestRecord,
) -> Carried {
    let Carrying {
        gateway,
        route,
        body,
    } = carrying;
    // The body the serving attempt was sent: the step's, then a continuation's.
    let mut sent = body.clone();
    loop {
        let entry = &route.entries[commitment.target];
        let served_by = &entry.target;
        let carried = relay.carry(&mut open, gateway, served_by).await;
        if let Some(at) = relay.first_sent {
            record.first_chunk_sent(at);
        }
        let failure = match carried {
            Relayed::Finished => {
                open.decoder.close().await;
                return Carried::Finished;
            }
            // Not the client: the continuation could not be joined to the answer.
            Relayed::ClientGone if relay.diverged.is_some() => {
                let why = relay.diverged.take().unwrap_or_default();
                tracing::warn!(
                    target: "aigw::request",
                    model = %record.model(),
                    target = %served_by.label,
                    reason = %why,
                    "continued stream ended: the continuation would have doubled the answer"
                );
                let failure = Failure::new(FailureClass::BadResponse, why);
                commitment.broke(route, failure.clone());
                relay.broke(&sent, served_by, record);
                return Carried::Failed(failure);
            }
            Relayed::ClientGone => return Carried::ClientGone,
            Relayed::ShutDown => return Carried::ShutDown,
            Relayed::Broke(failure) => scrubbed(gateway, failure),
        };
        commitment.broke(route, failure.clone());
        relay.broke(&sent, served_by, record);
        let continued = continue_elsewhere(
            gateway,
            route,
            body,
            &mut relay.transcript,
            commitment,
            record,
        )
        .await;
        record.walked(&commitment.attempts);
        let Some((next, id, bodies)) = continued else {
            return Carried::Failed(failure);
        };
        tracing::info!(
            target: "aigw::request",
            model = %record.model(),
            broken = %served_by.label,
            continued_on = %route.entries[commitment.target].target.label,
            reason = %failure,
            "stream continued on another target"
        );
        record.continued();
        open = next;
        let prefill = route.entries[commitment.target].target.prefill;
        sent = Bytes::copy_from_slice(bodies.body_for(prefill).as_bytes());
        // The continuation joins what the client has now (the answer so far).
        let partial = relay.transcript.partial().map_or("", |(_, text)| text);
        relay.continuing = Some(Continuing {
            id,
            join: Join::new(partial),
        });
    }
}

/// Asks the route's other targets to continue the answer the transcript holds. `None` when the
/// answer cannot be continued or no target could: the stream then ends with an error event.
async fn continue_elsewhere(
    gateway: &Gateway,
    route: &ServedRoute,
    body: &[u8],
    transcript: &mut Transcript,
    commitment: &mut Commitment,
    record: &RequestRecord,
) -> Option<(OpenStream, Option<String>, Continuation)> {
    let (id, partial) = transcript.partial()?;
    let bodies = continuation_bodies(body, partial)?;
    let call = Call {
        gateway,
        body: "",
        continuation: Some(&bodies),
        stream: true,
        trace: record.trace(),
    };
    let answer = commitment.resume(&call, route).await?;
    match answer {
        Answer::Stream(next) => Some((*next, id, bodies)),
        Answer::Complete { .. } => None,
    }
}

/// Ends a broken stream that no target could continue: one OpenAI-style error event naming
/// the target that broke (no `[DONE]`). Returns the event's message, for the record.
pub(crate) async fn error_event(
    tx: &mpsc::Sender<Bytes>,
    broken: &RouteTarget,
    failure: &Failure,
) -> String {
    let message = format!("{}: {}", broken.label, failure.message);
    let event = ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", message.clone())
        .code(failure.class.as_str());
    send_event(tx, &event).await;
    message
}

/// Sends one error event (the stream ends after it, without `[DONE]`).
pub(crate) async fn send_event(tx: &mpsc::Sender<Bytes>, error: &ApiError) {
    let mut out = Vec::new();
    push_frame(&mut out, &error.json());
    let _ = tx.send(Bytes::from(out)).await;
}

/// Sends chunks of the answer the gateway itself wrote (a tool loop's closing chunks), and
/// `[DONE]` after them when `done`. False when the client has gone.
pub(crate) async fn send_chunks(tx: &mpsc::Sender<Bytes>, chunks: &[String], done: bool) -> bool {
    let mut out = Vec::new();
    for json in chunks {
        push_frame(&mut out, json.as_bytes());
    }
    if done {
        out.extend_from_slice(DONE);
    }
    out.is_empty() || tx.send(Bytes::from(out)).await.is_ok()
}

/// The frame that tells the client the answer is complete.
const DONE: &[u8] = b"data: [DONE]\n\n";

/// Records a session's turn after its stream finished cleanly, then writes `[DONE]`: a client
/// that reads `[DONE]` and asks again sees the turn. A turn that cannot be recorded ends the
/// stream with the store's error event instead (no `[DONE]`: the client must not believe the
/// turn is in the conversation). Returns the status the request is reported with.
async fn finish_turn(
    tx: &mpsc::Sender<Bytes>,
    turn: Turn,
    gateway: &Gateway,
    reply: &Reply,
) -> u16 {
    match turn.record_stream(gateway, reply).await {
        Ok(()) => {
            let _ = tx.send(Bytes::from_static(DONE)).await;
            200
        }
        Err(error) => {
            let mut out = Vec::new();
            push_frame(&mut out, &error.json());
            let _ = tx.send(Bytes::from(out)).await;
            error.status.as_u16()
        }
    }
}

/// The bytes an SSE event adds around its JSON: `data: ` and `\n\n`.
const FRAMING: usize = 8;

/// Appends one SSE event, `data: <json>\n\n`.
fn push_frame(out: &mut Vec<u8>, json: &[u8]) {
    out.reserve(json.len() + FRAMING);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}
