"""The one place the plain types of :mod:`aigw_plugin.types` meet componentize-py's generated
``wit_world`` bindings: conversions both ways. Imported only inside a component (``wit_world``
exists only there), so everything else in the package runs under plain CPython."""

from __future__ import annotations

from typing import Any, List, Optional

from componentize_py_types import Err
from wit_world.imports import types as wit

from . import types as plain


def header(value: plain.Header) -> wit.Header:
    return wit.Header(value.name, value.value)


def headers(values: List[plain.Header]) -> List[wit.Header]:
    return [wit.Header(h.name, h.value) for h in values]


def plain_headers(values: List[wit.Header]) -> List[plain.Header]:
    return [plain.Header(h.name, h.value) for h in values]


def http_request(value: plain.HttpRequest) -> wit.HttpRequest:
    return wit.HttpRequest(value.method, value.url, headers(value.headers), bytes(value.body))


def plain_http_response(value: wit.HttpResponse) -> plain.HttpResponse:
    return plain.HttpResponse(value.status, plain_headers(value.headers), bytes(value.body))


def named_url(value: plain.NamedUrl) -> wit.NamedUrl:
    return wit.NamedUrl(value.name, value.url)


def usage(value: Optional[plain.Usage]) -> Optional[wit.Usage]:
    if value is None:
        return None
    return wit.Usage(value.prompt_tokens, value.completion_tokens, value.total_tokens)


def credential(value: plain.CredentialPlacement) -> wit.CredentialPlacement:
    if value.kind == "header":
        return wit.CredentialPlacement_Header(wit.HeaderCredential(value.name, value.prefix))
    if value.kind == "query":
        return wit.CredentialPlacement_Query(value.name)
    return wit.CredentialPlacement_None_()


_FAILURES = {
    "unavailable": wit.Failure_Unavailable,
    "context-length-exceeded": wit.Failure_ContextLengthExceeded,
    "invalid-request": wit.Failure_InvalidRequest,
    "content-filtered": wit.Failure_ContentFiltered,
    "unauthorized": wit.Failure_Unauthorized,
    "no-credit": wit.Failure_NoCredit,
    "bad-response": wit.Failure_BadResponse,
}


def failure(value: plain.Failure) -> Any:
    """The WIT ``failure`` for a raised :class:`~aigw_plugin.types.Failure`."""
    if value.kind == "rate-limited":
        retry = value.retry_after_seconds
        if retry is not None:
            retry = max(0, min(int(retry), plain.U32_MAX))
        return wit.Failure_RateLimited(wit.RateLimit(retry, value.message))
    return _FAILURES[value.kind](value.message)


def err(value: plain.Failure) -> Err:
    """What componentize-py expects raised for a ``result``'s error case."""
    return Err(failure(value))


def plain_failure(value: Any) -> plain.Failure:
    """A WIT ``failure`` (from an import such as ``outbound.send``) as a plain one."""
    if isinstance(value, wit.Failure_RateLimited):
        return plain.Failure.rate_limited(value.value.message, value.value.retry_after_seconds)
    for kind, case in _FAILURES.items():
        if isinstance(value, case):
            return plain.Failure(kind, value.value)
    return plain.Failure.bad_response(f"the host answered an unknown failure: {value!r}")


def send(outbound: Any, request: plain.HttpRequest) -> plain.HttpResponse:
    """``outbound.send`` in plain types; the host's failure raised as a plain ``Failure``."""
    try:
        response = outbound.send(http_request(request))
    except Err as error:
        raise plain_failure(error.value) from None
    return plain_http_response(response)
