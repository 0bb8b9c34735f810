"""Outbound HTTP for tool plugins: the host's ``outbound.send`` in plain types, and ``get`` /
``post_json`` that build the request. The host sends only to the call's upstream origins, adds
the credential itself and follows no redirect; a refused or failed send comes back as the host's
classified ``Failure`` (raised).

Outside a component (a plugin's unit tests under plain CPython) there is no host: set a sender
with :func:`answer_with` (``aigw_plugin.testing.Upstream`` does); without one a send is
``unavailable``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .types import Failure, Header, HttpRequest, HttpResponse

Sender = Callable[[HttpRequest], HttpResponse]

try:
    # Only inside a tool-plugin component. Imported with the module, so the import happens
    # while componentize-py snapshots the app at build time: the component has no filesystem
    # to import from on a request.
    from wit_world.imports import outbound as _outbound

    from . import wit as _wit
except ImportError:
    _outbound = None
    _wit = None

_sender: Optional[Sender] = None
#: Every request sent outside a component, for tests to inspect.
sent: List[HttpRequest] = []


def answer_with(sender: Optional[Sender]) -> None:
    """Outside a component: who answers in the host's place (``None``: nobody)."""
    global _sender
    _sender = sender
    sent.clear()


def send(request: HttpRequest) -> HttpResponse:
    """Sends ``request`` through the host."""
    if _outbound is None or _wit is None:
        return _send_natively(request)
    return _wit.send(_outbound, request)


def _send_natively(request: HttpRequest) -> HttpResponse:
    sent.append(request)
    if _sender is None:
        raise Failure.unavailable("no host to send through outside a component")
    return _sender(request)


def request(
    method: str, url: str, headers: Sequence[Tuple[str, str]] = (), body: bytes = b""
) -> HttpRequest:
    """A request with ``accept: application/json`` unless ``headers`` name another."""
    all_headers = [Header(name, value) for name, value in headers]
    if not any(header.name.lower() == "accept" for header in all_headers):
        all_headers.append(Header("accept", "application/json"))
    return HttpRequest(method, url, all_headers, body)


def get(url: str, headers: Sequence[Tuple[str, str]] = ()) -> HttpResponse:
    """``GET url`` with these headers (besides the credential, which the host adds)."""
    return send(request("GET", url, headers))


def post_json(url: str, body: Any, headers: Sequence[Tuple[str, str]] = ()) -> HttpResponse:
    """``POST url`` with ``body`` as JSON."""
    out = request("POST", url, headers, json.dumps(body, separators=(",", ":")).encode())
    out.headers.append(Header("content-type", "application/json"))
    return send(out)
