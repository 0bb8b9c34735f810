"""Reading a tool upstream's answer: the JSON of a good one, the classified ``Failure`` of a bad
one, so the host fails over the same way for every tool API (the Rust SDK's ``answer.rs``).

====================================================  ===========================================
upstream says                                         failure
====================================================  ===========================================
429                                                   ``rate-limited``, waiting what
                                                      ``retry-after`` or ``x-ratelimit-reset`` says
401, 403                                              ``unauthorized`` (the key)
402                                                   ``no-credit`` (the plan's quota)
408, 5xx                                              ``unavailable``
other 4xx                                             ``invalid-request`` (the arguments)
HTML where JSON was expected (any status)             ``unavailable``
a 2xx that is not JSON                                ``bad-response``
====================================================  ===========================================
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, List, Optional, Sequence

from .failure import UpstreamError, retry_after_seconds
from .types import Failure, Header, HttpResponse, header_value


def json_body(api: str, response: HttpResponse) -> Any:
    """The body of a 2xx JSON answer from ``api``; any other answer raised as its failure."""
    if is_html(response):
        raise _html(api, response.status)
    if not 200 <= response.status < 300:
        raise failure(api, response)
    try:
        return json.loads(response.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise Failure.bad_response(
            f"{api} answered HTTP {response.status} with a body that is not JSON: {error}"
        ) from None


def is_html(response: HttpResponse) -> bool:
    """Whether the answer is an HTML page (by its media type, or a body starting with ``<``)."""
    value = response.header("content-type")
    if value is not None:
        media = value.split(";", 1)[0].strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            return True
    return response.body.lstrip()[:1] == b"<"


def _html(api: str, status: int) -> Failure:
    return Failure.unavailable(
        f"{api} answered HTTP {status} with an HTML page where JSON was expected "
        "(a proxy or a bot wall in the way?)"
    )


def failure(api: str, response: HttpResponse) -> Failure:
    """The failure a non-2xx answer from ``api`` stands for, its message from the body."""
    error = UpstreamError.parse(response.body)
    if error.message is not None:
        message = f"{api}: {error.message}"
    elif error.code is not None:
        message = f"{api} answered HTTP {response.status} ({error.code})"
    else:
        message = f"{api} answered HTTP {response.status}"
    return failure_with(response, message)


def failure_with(response: HttpResponse, message: str) -> Failure:
    """The failure a non-2xx answer stands for by its status and headers, with ``message``."""
    if is_html(response):
        return Failure.unavailable(message)
    status = response.status
    if status == 429:
        return Failure.rate_limited(message, retry_after(response.headers, time.time()))
    if status in (401, 403):
        return Failure.unauthorized(message)
    if status == 402:
        return Failure.no_credit(message)
    if status == 408 or 500 <= status <= 599:
        return Failure.unavailable(message)
    if 400 <= status <= 499:
        return Failure.invalid_request(message)
    return Failure.bad_response(f"unexpected HTTP status {status}: {message}")


def retry_after(headers: Sequence[Header], now: float) -> Optional[int]:
    """How long to wait, in whole seconds: ``retry-after``, else ``x-ratelimit-reset``, which may
    hold one value per window (Brave: ``1, 1419704``): the window whose
    ``x-ratelimit-remaining`` is 0 decides, else the first."""
    if header_value(headers, "retry-after") is not None:
        seconds = retry_after_seconds(headers, None, now)
        if seconds is not None:
            return seconds
    reset = header_value(headers, "x-ratelimit-reset")
    if reset is None:
        return None
    resets = _windows(reset)
    remaining_value = header_value(headers, "x-ratelimit-remaining")
    remaining = _windows(remaining_value) if remaining_value is not None else []
    chosen: Optional[float] = None
    for window, left in enumerate(remaining):
        if left == 0.0:
            chosen = resets[window] if window < len(resets) else None
            break
    if chosen is None:
        chosen = resets[0] if resets else None
    if chosen is None:
        return None
    return min(int(math.ceil(max(chosen, 0.0))), 2**32 - 1)


def _windows(value: str) -> List[Optional[float]]:
    out: List[Optional[float]] = []
    for part in value.split(","):
        try:
            number = float(part.strip())
        except ValueError:
            out.append(None)
            continue
        out.append(number if math.isfinite(number) else None)
    return out
