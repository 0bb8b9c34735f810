"""The OpenAI chat-completions dialect that OpenAI-compatible providers reuse (the Rust SDK's
``openai.rs``).

A provider subclasses :class:`Compatible` and gives ``describe``; every other hook defaults to
OpenAI's behaviour: ``encode`` points the client's body at ``<base URL>/chat/completions`` with
the target's model (the host adds the credential), ``decode`` passes a completion through or
classifies the error, and :class:`ChunkStream` decodes the SSE body, ending cleanly only after
``[DONE]`` or a ``finish_reason``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from .failure import classify, classify_error_value
from .provider import Provider, StreamDecoder
from .sse import Event, SseParser
from .types import (
    Chunk,
    Completion,
    Descriptor,
    Failure,
    Header,
    HttpRequest,
    HttpResponse,
    ResponseHead,
    StreamEnd,
    Target,
    Usage,
)

#: The most JSON buffered when a server answers a streamed request with a whole completion.
MAX_JSON_BYTES = 16 * 1024 * 1024


def compact(value: Any) -> str:
    """JSON without spaces, non-ASCII kept (what the Rust SDK writes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_request(request_json: str) -> Dict[str, Any]:
    """The client's request JSON, which must be an object."""
    try:
        body = json.loads(request_json)
    except ValueError as error:
        raise Failure.invalid_request(f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise Failure.invalid_request("the request body must be a JSON object")
    return body


def is_stream(body: Dict[str, Any]) -> bool:
    return body.get("stream") is True


def prepare_request(target: Target, body: Dict[str, Any]) -> None:
    """Sets the target's model and, for a stream, asks for the usage chunk (the host accounts
    usage whether or not the client asked; it strips the chunk for clients that did not)."""
    body["model"] = target.model
    if is_stream(body):
        options = body.get("stream_options")
        if not isinstance(options, dict):
            options = {}
            body["stream_options"] = options
        options["include_usage"] = True


def join_url(base: str, path: str) -> str:
    """``base`` and ``path`` with exactly one ``/`` between them."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def chat_completions_request(base_url: str, body: Dict[str, Any]) -> HttpRequest:
    """``POST {base_url}/chat/completions`` with the body as JSON."""
    headers = [Header("content-type", "application/json")]
    if is_stream(body):
        headers.append(Header("accept", "text/event-stream"))
    return HttpRequest(
        "POST", join_url(base_url, "chat/completions"), headers, compact(body).encode()
    )


def parse_usage(value: Any) -> Optional[Usage]:
    """An OpenAI ``usage`` object; ``None`` when absent, null or without token counts."""
    if not isinstance(value, dict):
        return None

    def count(key: str) -> Optional[int]:
        number = value.get(key)
        if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
            return number
        return None

    return Usage.from_counts(count("prompt_tokens"), count("completion_tokens"), count("total_tokens"))


def decode_completion(body: bytes) -> Completion:
    """A 2xx non-streamed body, passed through verbatim with its usage read. An ``{"error":…}``
    body on a 2xx is classified like a mid-stream error."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Failure.bad_response("the completion is not UTF-8") from None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise Failure.bad_response(f"the completion is not a valid JSON object: {error}") from None
    if not isinstance(value, dict):
        raise Failure.bad_response("the completion is not a valid JSON object")
    if value.get("error") is not None:
        raise classify_error_value(value)
    if not isinstance(value.get("choices"), list):
        raise Failure.bad_response("the completion has no `choices` array")
    return Completion(text, parse_usage(value.get("usage")))


class ChunkStream(StreamDecoder):
    """Decodes an OpenAI chat-completions SSE body into chunks.

    Chunks pass through verbatim. ``[DONE]`` ends the stream; a frame with an ``error`` is a
    failure; the ``choices: []`` chunk with ``usage`` is returned with ``usage`` set. A stream that
    ends without ``[DONE]`` is still complete if a ``finish_reason`` was seen (Ollama and some
    servers omit it). A server that ignores ``stream: true`` and answers a whole JSON completion
    is buffered and replayed as chunks at the end.
    """

    def __init__(self, dialect: "Compatible", head: Optional[ResponseHead] = None) -> None:
        self._dialect = dialect
        self._sse = SseParser()
        self._json: Optional[bytearray] = bytearray() if head is not None and head.is_json() else None
        self._done = False
        self._finish_seen = False
        self._usage_chunk_seen = False
        self._pending_usage: Optional[Chunk] = None

    def feed(self, piece: bytes) -> List[Chunk]:
        if self._json is not None:
            if len(self._json) + len(piece) > MAX_JSON_BYTES:
                raise Failure.bad_response(f"the completion is larger than {MAX_JSON_BYTES} bytes")
            self._json += piece
            return []
        return self._handle_events(self._sse.feed(piece))

    def finish(self) -> StreamEnd:
        if self._json is not None:
            body, self._json = bytes(self._json), None
            return completion_chunks(body)
        chunks = self._handle_events(self._sse.finish())
        if not self._done and not self._finish_seen:
            raise Failure.unavailable("stream ended before completion")
        chunks.extend(self._take_pending_usage())
        return chunks

    def _take_pending_usage(self) -> List[Chunk]:
        pending, self._pending_usage = self._pending_usage, None
        return [pending] if pending is not None else []

    def _handle_events(self, events: List[Event]) -> List[Chunk]:
        chunks: List[Chunk] = []
        for event in events:
            if self._done:
                break  # nothing after `[DONE]` belongs to the answer
            self._handle_event(event, chunks)
        return chunks

    def _handle_event(self, event: Event, chunks: List[Chunk]) -> None:
        data = event.data.strip()
        if not data:
            return
        if data == "[DONE]":
            self._done = True
            chunks.extend(self._take_pending_usage())
            return
        try:
            frame = json.loads(data)
        except ValueError as error:
            raise Failure.bad_response(f"a stream frame is not valid JSON: {error}") from None
        if not isinstance(frame, dict):
            raise Failure.bad_response("a stream frame is not a JSON object")
        failure = self._dialect.stream_error(frame)
        if failure is not None:
            raise failure
        if frame.get("error") is not None:
            raise classify_error_value(frame)
        choices = frame.get("choices")
        choices = choices if isinstance(choices, list) else None
        usage = frame.get("usage")
        if not choices:
            parsed = parse_usage(usage)
            if parsed is not None:
                self._usage_chunk_seen = True
                self._pending_usage = None
                chunks.append(Chunk(event.data, parsed))
                return
        if choices and any(
            isinstance(choice, dict) and choice.get("finish_reason") is not None
            for choice in choices
        ):
            self._finish_seen = True
        # Usage riding on a content chunk (Groq's `x_groq.usage`, servers that put `usage` beside
        # `choices`) must not mark that chunk as the usage chunk: the host drops the usage chunk
        # for clients that did not ask for usage, and would drop content with it.
        if not self._usage_chunk_seen:
            raw_usage = usage if usage is not None else self._dialect.stream_usage(frame)
            parsed = parse_usage(raw_usage)
            if parsed is not None:
                self._pending_usage = _usage_chunk(frame, raw_usage, parsed)
        if usage is not None:
            # Only the final `choices: []` chunk carries usage in OpenAI's form; a client summing
            # every `usage` it sees would count this one twice.
            without = dict(frame)
            without["usage"] = None
            chunks.append(Chunk(compact(without)))
        else:
            chunks.append(Chunk(event.data))


_HEAD_KEYS = ("id", "created", "model", "system_fingerprint")


def _usage_chunk(frame: Dict[str, Any], raw_usage: Any, usage: Usage) -> Chunk:
    out = {key: frame[key] for key in _HEAD_KEYS if key in frame}
    out["object"] = "chat.completion.chunk"
    out["choices"] = []
    out["usage"] = raw_usage
    return Chunk(compact(out), usage)


def completion_chunks(body: bytes) -> List[Chunk]:
    """A whole ``chat.completion`` body as the chunks a stream of it would have carried: per
    choice one chunk whose delta is the whole message, then the usage chunk."""
    completion = decode_completion(body)
    value = json.loads(completion.json)
    head = {key: value[key] for key in _HEAD_KEYS if key in value}
    head["object"] = "chat.completion.chunk"
    chunks: List[Chunk] = []
    for position, choice in enumerate(value.get("choices") or []):
        choice = choice if isinstance(choice, dict) else {}
        message = choice.get("message")
        delta = dict(message) if isinstance(message, dict) else {}
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for index, call in enumerate(calls):
                if isinstance(call, dict):
                    call.setdefault("index", index)
        finish = choice.get("finish_reason")
        chunk = dict(head)
        chunk["choices"] = [
            {
                "index": choice.get("index", position),
                "delta": delta,
                "logprobs": choice.get("logprobs"),
                # The answer is whole, so it did finish; say how, or `stop`.
                "finish_reason": finish if finish is not None else "stop",
            }
        ]
        chunks.append(Chunk(compact(chunk)))
    if completion.usage is not None and "usage" in value:
        chunk = dict(head)
        chunk["choices"] = []
        chunk["usage"] = value["usage"]
        chunks.append(Chunk(compact(chunk), completion.usage))
    return chunks


class Compatible(Provider):
    """A provider for an OpenAI-compatible API. Subclass it, give ``describe``, override the
    hooks that differ from OpenAI."""

    def adjust_request(self, body: Dict[str, Any]) -> None:
        """Checks and rewrites the body after ``model`` and ``stream_options`` are set; raise
        ``Failure.invalid_request`` for what the provider would 400 on."""

    def classify(self, response: HttpResponse) -> Failure:
        """Classifies a non-2xx response."""
        return classify(response)

    def stream_usage(self, frame: Dict[str, Any]) -> Any:
        """Usage a streamed chunk carries somewhere other than a usage chunk (Groq's
        ``x_groq.usage``): the decoder emits it as an OpenAI usage chunk at the end."""
        return None

    def stream_error(self, frame: Dict[str, Any]) -> Optional[Failure]:
        """A mid-stream error frame in the provider's own shape, or ``None``."""
        return None

    def encode(self, target: Target, request_json: str) -> HttpRequest:
        body = parse_request(request_json)
        prepare_request(target, body)
        self.adjust_request(body)
        return chat_completions_request(target.base_url, body)

    def decode(self, target: Target, response: HttpResponse) -> Completion:
        if not 200 <= response.status < 300:
            raise self.classify(response)
        return decode_completion(response.body)

    def stream_decoder(self, target: Target, head: ResponseHead) -> ChunkStream:
        return ChunkStream(self, head)

    def describe(self) -> Descriptor:  # pragma: no cover - each provider gives its own
        raise NotImplementedError("a provider must describe itself")
