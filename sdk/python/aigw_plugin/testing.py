"""Helpers for plugins' unit tests under plain CPython (the Rust SDK's ``testing``): feed a body
to a stream decoder in pieces, build responses and heads, and :class:`Upstream`, which answers a
tool plugin's ``http`` sends in the host's place."""

from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple, Union

from . import http
from .types import Chunk, Failure, FollowRequest, Header, HttpRequest, HttpResponse, ResponseHead


def response(status: int, headers: Sequence[Tuple[str, str]] = (), body: Union[str, bytes] = b"") -> HttpResponse:
    data = body.encode() if isinstance(body, str) else body
    return HttpResponse(status, [Header(n, v) for n, v in headers], data)


def sse_head() -> ResponseHead:
    """The head of a 200 event stream, what most stream decoders are made for."""
    return ResponseHead(200, [Header("content-type", "text/event-stream")])


def json_head() -> ResponseHead:
    """The head of a 200 JSON answer (a server that ignored ``stream: true``)."""
    return ResponseHead(200, [Header("content-type", "application/json")])


def decode_in_pieces(decoder: Any, body: Union[str, bytes], piece_len: int) -> List[Chunk]:
    """Feeds ``body`` in pieces of ``piece_len`` bytes (splits land anywhere: inside a line, a
    JSON string, a UTF-8 character), then finishes: every chunk. A ``Failure`` propagates; a
    stream that ends asking for a follow is a ``bad-response`` naming its URL."""
    data = body.encode() if isinstance(body, str) else body
    step = max(1, piece_len)
    chunks: List[Chunk] = []
    for at in range(0, len(data), step):
        chunks.extend(decoder.feed(data[at : at + step]))
    end = decoder.finish()
    if isinstance(end, FollowRequest):
        raise Failure.bad_response(f"the stream ended with a follow to {end.request.url}")
    chunks.extend(end)
    return chunks


class Upstream:
    """Answers ``http.send`` by the first route whose text the request URL contains, and records
    every request; an unrouted request gets a 404, so a test notices a wrong URL."""

    def __init__(self) -> None:
        self._routes: List[Tuple[str, Union[HttpResponse, Failure]]] = []

    def json(self, needle: str, status: int, body: str) -> "Upstream":
        return self.answer(needle, response(status, [("content-type", "application/json")], body))

    def answer(self, needle: str, answer: HttpResponse) -> "Upstream":
        self._routes.append((needle, answer))
        return self

    def fail(self, needle: str, failure: Failure) -> "Upstream":
        """Requests whose URL contains ``needle`` fail in the host with ``failure``."""
        self._routes.append((needle, failure))
        return self

    def _send(self, request: HttpRequest) -> HttpResponse:
        for needle, answer in self._routes:
            if needle in request.url:
                if isinstance(answer, Failure):
                    raise answer
                return answer
        return response(404, (), "no route in the test's upstream")

    def run(self, call: Callable[[], Any]) -> Tuple[Union[Any, Failure], List[HttpRequest]]:
        """Runs ``call`` with this upstream answering: its result (or the ``Failure`` it raised)
        and every request it sent."""
        http.answer_with(self._send)
        try:
            result: Union[Any, Failure] = call()
        except Failure as failure:
            result = failure
        finally:
            sent = list(http.sent)
            http.answer_with(None)
        return result, sent


__all__ = ["Upstream", "decode_in_pieces", "json_head", "response", "sse_head"]
