"""Classifying an upstream's error answer into a :class:`~aigw_plugin.types.Failure`, the same
rules as the Rust SDK's ``failure.rs`` (``docs/wire-formats.md``, "Error classification across
providers"): tolerant of every envelope, never raising on bad input.

=========================================  ==========================
upstream says                              failure
=========================================  ==========================
4xx with ``insufficient_quota`` and kin    ``no-credit``
429 (and Groq's 413 ``rate_limit_exceeded``) ``rate-limited`` + the wait
4xx naming a content policy                ``content-filtered``
400/413/422 naming the context length      ``context-length-exceeded``
401, 403                                   ``unauthorized``
402                                        ``no-credit``
408, 409, 424, 425, 498, 499, 529, 5xx      ``unavailable``
other 4xx                                  ``invalid-request``
=========================================  ==========================
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Optional, Sequence

from .types import Failure, Header, HttpResponse, header_value

#: The longest raw (non-JSON) body text kept in a failure message; HTML error pages are long.
MAX_RAW_MESSAGE_CHARS = 500


@dataclass
class UpstreamError:
    """What an error body said, whichever envelope it came in."""

    message: Optional[str] = None
    code: Optional[str] = None
    kind: Optional[str] = None

    @staticmethod
    def parse(body: bytes) -> "UpstreamError":
        """Reads an error body: OpenAI ``{"error":{message,type,code}}``, flat
        ``{message,type,code}``, ``{"error":"text"}``, ``[{"error":{…}}]``, problem details,
        ``{code,reason,message}``, FastAPI ``{"detail":[{"msg":…}]}``; else the trimmed text."""
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            text = body.decode("utf-8", errors="replace").strip()
            return UpstreamError(message=_shorten(text) if text else None)
        return UpstreamError.from_value(value)

    @staticmethod
    def from_value(value: Any) -> "UpstreamError":
        """Reads an already parsed error value (a body, or a mid-stream ``{"error":…}`` frame)."""
        if isinstance(value, list):
            return UpstreamError.from_value(value[0]) if value else UpstreamError()
        if isinstance(value, str):
            return UpstreamError(message=value)
        if isinstance(value, dict):
            inner = value.get("error")
            if inner is not None:
                error = UpstreamError.from_value(inner)
                # `{"error":"text"}` may carry its message only in `error`; a wrapper may carry
                # the message beside a non-object `error` (e.g. `"error": true`).
                if error.message is None:
                    error.message = _text_field(value, "message")
                return error
            kind = _text_field(value, "type")
            status = _text_field(value, "status")
            if status is not None and status.isdigit():
                status = None
            code = status or _text_field(value, "reason") or _text_field(value, "code") or kind
            message = (
                _text_field(value, "message")
                or _text_field(value, "detail")
                or _detail_list_message(value)
                or _text_field(value, "title")
                or _text_field(value, "msg")
            )
            return UpstreamError(message=message, code=code, kind=kind)
        return UpstreamError()

    def code_is(self, *codes: str) -> bool:
        wanted = {code.lower() for code in codes}
        return any(c is not None and c.lower() in wanted for c in (self.code, self.kind))

    def message_or(self, status: int) -> str:
        if self.message is not None:
            return self.message
        if self.code is not None:
            return f"upstream answered HTTP {status} ({self.code})"
        return f"upstream answered HTTP {status}"


def _text_field(value: dict, key: str) -> Optional[str]:
    """A string or number field as text (a JSON number as its decimal text)."""
    field = value.get(key)
    if isinstance(field, bool):
        return None
    if isinstance(field, str):
        return field or None
    if isinstance(field, (int, float)):
        return json.dumps(field)
    return None


def _detail_list_message(value: dict) -> Optional[str]:
    items = value.get("detail")
    if not isinstance(items, list):
        return None
    messages = [
        item["msg"] for item in items if isinstance(item, dict) and isinstance(item.get("msg"), str)
    ]
    return "; ".join(messages) if messages else None


def _shorten(text: str) -> str:
    if len(text) > MAX_RAW_MESSAGE_CHARS:
        return text[:MAX_RAW_MESSAGE_CHARS] + "…"
    return text


def classify(response: HttpResponse) -> Failure:
    """Classifies a non-2xx upstream response."""
    return classify_parts(response.status, response.headers, response.body)


def classify_parts(status: int, headers: Sequence[Header], body: bytes) -> Failure:
    return classify_error(status, headers, UpstreamError.parse(body), time.time())


def classify_error(
    status: int, headers: Sequence[Header], error: UpstreamError, now: float
) -> Failure:
    """The classification rules, with the clock (epoch seconds) passed in for tests."""
    message = error.message_or(status)

    def rate_limited() -> Failure:
        return Failure.rate_limited(message, retry_after_seconds(headers, error.message, now))

    if 400 <= status <= 499 and is_no_credit(error):
        return Failure.no_credit(message)
    if status == 429:
        return rate_limited()
    if status == 413 and error.code_is("rate_limit_exceeded"):
        return rate_limited()  # Groq: one request alone exceeds the tokens-per-minute budget
    if 400 <= status < 500 and is_content_filter(error):
        return Failure.content_filtered(message)
    if status in (400, 413, 422) and is_context_length(error):
        return Failure.context_length_exceeded(message)
    if status in (401, 403):
        return Failure.unauthorized(message)
    if status == 402:
        return Failure.no_credit(message)
    if status in (408, 409, 424, 425, 498, 499, 529) or 500 <= status <= 599:
        return Failure.unavailable(message)
    if 400 <= status <= 499:
        return Failure.invalid_request(message)
    return Failure.bad_response(f"unexpected HTTP status {status}: {message}")


def classify_error_value(value: Any) -> Failure:
    """Classifies an error object that came with a 2xx: a mid-stream ``{"error":…}`` frame or an
    error body on a 200. A numeric code that is an HTTP status is classified as that status;
    otherwise known codes decide, and anything else is ``unavailable``."""
    error = UpstreamError.from_value(value)
    inner = value.get("error") if isinstance(value, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return classify_error(code, [], error, time.time())
    message = error.message_or(200)
    if is_no_credit(error):
        return Failure.no_credit(message)
    if error.code_is("rate_limit_exceeded", "resource_exhausted"):
        return Failure.rate_limited(message, retry_after_seconds([], error.message, time.time()))
    if is_context_length(error):
        return Failure.context_length_exceeded(message)
    if is_content_filter(error):
        return Failure.content_filtered(message)
    return Failure.unavailable(message)


def is_no_credit(error: UpstreamError) -> bool:
    """OpenAI's ``insufficient_quota`` (on a 429), Novita's ``NOT_ENOUGH_BALANCE`` (on a 403)."""
    return error.code_is("insufficient_quota", "NOT_ENOUGH_BALANCE")


_CONTEXT_TEXTS = (
    "please reduce the length of the messages or completion",
    "maximum context length",
    "exceeds the maximum number of tokens allowed",
    "longer than the model's context length",
    "context length exceeded",
    "context_length_exceeded",
)


def is_context_length(error: UpstreamError) -> bool:
    if error.code_is("context_length_exceeded"):
        return True
    message = (error.message or "").lower()
    return any(text in message for text in _CONTEXT_TEXTS)


_FILTER_TEXTS = ("content policy", "content management policy", "your input was flagged")


def is_content_filter(error: UpstreamError) -> bool:
    if error.code_is(
        "content_filter", "content_policy_violation", "content_filtered", "moderation_blocked"
    ):
        return True
    message = (error.message or "").lower()
    return any(text in message for text in _FILTER_TEXTS)


def retry_after_seconds(
    headers: Sequence[Header], message: Optional[str], now: float
) -> Optional[int]:
    """How long to wait, in whole seconds rounded up, from (in order) ``retry-after`` (seconds or
    an HTTP date), a delay in the message ("Please try again in 5.289s"), or the
    ``x-ratelimit-reset-*`` headers."""
    value = header_value(headers, "retry-after")
    if value is not None:
        seconds = _parse_seconds(value)
        if seconds is not None:
            return _seconds_up(seconds)
        try:
            date = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            date = None
        if date is not None and date.tzinfo is not None:
            return _seconds_up(max(0.0, date.timestamp() - now))
    if message is not None:
        seconds = _delay_in_message(message)
        if seconds is not None:
            return _seconds_up(seconds)
    seconds = _reset_header_seconds(headers, now)
    return _seconds_up(seconds) if seconds is not None else None


def _seconds_up(seconds: float) -> int:
    seconds = math.ceil(max(seconds, 0.0))
    return min(int(seconds), 2**32 - 1)


def _parse_seconds(text: str) -> Optional[float]:
    """A plain non-negative number of seconds (``30``, ``11.38``)."""
    text = text.strip()
    if not text or not all(c.isdigit() or c == "." for c in text) or not text.isascii():
        return None
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _delay_in_message(message: str) -> Optional[float]:
    lower = message.lower()
    for marker in ("try again in ", "resets in "):
        at = lower.find(marker)
        if at < 0:
            continue
        rest = lower[at + len(marker) :].lstrip("~").split()
        if not rest:
            continue
        seconds = parse_go_duration(rest[0].rstrip(".,;)"))
        if seconds is not None:
            return seconds
    return None


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}


def parse_go_duration(text: str) -> Optional[float]:
    """A Go-style duration (``7.66s``, ``2m59.56s``, ``6ms``, ``1h0m0s``) in seconds; a bare
    number counts as seconds (Cerebras sends ``11.38``)."""
    text = text.strip()
    seconds = _parse_seconds(text)
    if seconds is not None:
        return seconds
    if not text:
        return None
    total, rest = 0.0, text
    while rest:
        number_len = 0
        while number_len < len(rest) and (rest[number_len].isdigit() or rest[number_len] == "."):
            number_len += 1
        if number_len == 0:
            return None
        try:
            number = float(rest[:number_len])
        except ValueError:
            return None
        rest = rest[number_len:]
        unit_len = 0
        while unit_len < len(rest) and not (rest[unit_len].isdigit() or rest[unit_len] == "."):
            unit_len += 1
        scale = _UNITS.get(rest[:unit_len])
        if scale is None:
            return None
        total += number * scale
        rest = rest[unit_len:]
    return total


def _reset_header_seconds(headers: Sequence[Header], now: float) -> Optional[float]:
    """The exhausted dimension's ``x-ratelimit-reset*`` (its ``remaining`` is 0) if one is, else
    the soonest reset. OpenRouter's bare ``x-ratelimit-reset`` is an epoch time in ms."""
    soonest: Optional[float] = None
    for header in headers:
        name = header.name.lower()
        if not name.startswith("x-ratelimit-reset"):
            continue
        dimension = name[len("x-ratelimit-reset") :]
        seconds = parse_go_duration(header.value)
        if seconds is None:
            continue
        if dimension == "" and seconds > 1e11:
            seconds = max(0.0, (seconds - now * 1000.0) / 1000.0)
        remaining = header_value(headers, f"x-ratelimit-remaining{dimension}")
        if remaining is not None and remaining.strip() == "0":
            return seconds
        soonest = seconds if soonest is None else min(soonest, seconds)
    return soonest
