"""Provider plugins in plain Python: the ``provider`` interface of ``wit/provider.wit``.

Subclass :class:`Provider` (or :class:`aigw_plugin.openai.Compatible` for an OpenAI-compatible
API) and export it from ``app.py`` with ``Provider = export_provider(MyProvider)``. The host
reuses warm instances for any caller: keep no per-request state on ``self`` or in globals; what
one stream needs lives in its :class:`StreamDecoder`.
"""

from __future__ import annotations

from typing import List

from .types import Chunk, Descriptor, HttpRequest, HttpResponse, ResponseHead, Step, StreamEnd, Target


class StreamDecoder:
    """Decodes one streamed answer fed in arbitrary pieces. Raise a ``Failure`` for an error
    frame or a stream cut short."""

    def feed(self, piece: bytes) -> List[Chunk]:
        raise NotImplementedError

    def finish(self) -> StreamEnd:
        raise NotImplementedError


class Provider:
    """A provider plugin: a pure translator (no I/O, never a credential)."""

    def describe(self) -> Descriptor:
        raise NotImplementedError

    def encode(self, target: Target, request_json: str) -> HttpRequest:
        """The client's OpenAI request JSON to the upstream request for ``target``."""
        raise NotImplementedError

    def decode(self, target: Target, response: HttpResponse) -> Step:
        """An upstream response (any status) to a ``Completion``, a ``FollowRequest``, or a
        raised ``Failure``."""
        raise NotImplementedError

    def stream_decoder(self, target: Target, head: ResponseHead) -> StreamDecoder:
        raise NotImplementedError
