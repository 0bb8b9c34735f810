"""The WIT types of ``aigw:plugin@0.1.0`` as plain Python, so a plugin's logic runs (and is
tested) in any CPython; ``aigw_plugin.wit`` converts them at the component boundary.

A :class:`Failure` is an exception: plugin code raises it, and the export glue turns it into the
WIT ``failure`` the host classifies (``raise Failure.rate_limited("slow down", 30)``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union


def header_value(headers: Sequence["Header"], name: str) -> Optional[str]:
    """The first header called ``name`` (case-insensitive), or ``None``."""
    lower = name.lower()
    for header in headers:
        if header.name.lower() == lower:
            return header.value
    return None


@dataclass
class Header:
    name: str
    value: str


@dataclass
class HttpRequest:
    """An upstream request for the host to send. The host adds the credential."""

    method: str
    url: str
    headers: List[Header] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        return header_value(self.headers, name)


@dataclass
class HttpResponse:
    """What the upstream answered."""

    status: int
    headers: List[Header] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        return header_value(self.headers, name)


@dataclass
class Usage:
    """Token counts in OpenAI's terms."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @staticmethod
    def from_counts(
        prompt: Optional[int], completion: Optional[int], total: Optional[int]
    ) -> Optional["Usage"]:
        """Usage from the counts an answer gave; ``None`` without prompt and completion counts.
        A missing total is the sum; counts beyond u32 saturate (the WIT type is u32)."""
        if prompt is None and completion is None:
            return None
        prompt_tokens = _u32(prompt or 0)
        completion_tokens = _u32(completion or 0)
        total_tokens = _u32(total) if total is not None else _u32(prompt_tokens + completion_tokens)
        return Usage(prompt_tokens, completion_tokens, total_tokens)


U32_MAX = 2**32 - 1


def _u32(count: int) -> int:
    return max(0, min(int(count), U32_MAX))


class Failure(Exception):
    """Why a call failed, so the host can choose: fail over, cool a target down, or answer the
    client. ``kind`` is the WIT case name; every case carries the upstream's reason."""

    KINDS = (
        "rate-limited",
        "unavailable",
        "context-length-exceeded",
        "invalid-request",
        "content-filtered",
        "unauthorized",
        "no-credit",
        "bad-response",
    )

    def __init__(self, kind: str, message: str, retry_after_seconds: Optional[int] = None):
        if kind not in Failure.KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after_seconds = retry_after_seconds if kind == "rate-limited" else None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Failure)
            and (self.kind, self.message, self.retry_after_seconds)
            == (other.kind, other.message, other.retry_after_seconds)
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.message, self.retry_after_seconds))

    def __repr__(self) -> str:
        if self.kind == "rate-limited":
            return f"Failure.rate_limited({self.message!r}, {self.retry_after_seconds!r})"
        return f"Failure({self.kind!r}, {self.message!r})"

    @staticmethod
    def rate_limited(message: str, retry_after_seconds: Optional[int] = None) -> "Failure":
        """429 or the provider's equivalent: cool this target down, try another now."""
        return Failure("rate-limited", message, retry_after_seconds)

    @staticmethod
    def unavailable(message: str) -> "Failure":
        """Down, overloaded, 5xx, a mid-stream error: another target may serve."""
        return Failure("unavailable", message)

    @staticmethod
    def context_length_exceeded(message: str) -> "Failure":
        return Failure("context-length-exceeded", message)

    @staticmethod
    def invalid_request(message: str) -> "Failure":
        """No target can serve the request as it stands: the client must change it."""
        return Failure("invalid-request", message)

    @staticmethod
    def content_filtered(message: str) -> "Failure":
        return Failure("content-filtered", message)

    @staticmethod
    def unauthorized(message: str) -> "Failure":
        """The credential was rejected or is missing: the operator must fix the key."""
        return Failure("unauthorized", message)

    @staticmethod
    def no_credit(message: str) -> "Failure":
        """The account has no credit or quota left (402, OpenAI's ``insufficient_quota``)."""
        return Failure("no-credit", message)

    @staticmethod
    def bad_response(message: str) -> "Failure":
        """The upstream said something that could not be parsed."""
        return Failure("bad-response", message)


@dataclass
class CredentialPlacement:
    """Where the host puts the operator's credential: ``none``, a ``header`` (name + prefix) or a
    ``query`` parameter (name)."""

    kind: str = "none"
    name: str = ""
    prefix: str = ""

    @staticmethod
    def none() -> "CredentialPlacement":
        return CredentialPlacement("none")

    @staticmethod
    def bearer() -> "CredentialPlacement":
        """``authorization: Bearer <key>``."""
        return CredentialPlacement("header", "authorization", "Bearer ")

    @staticmethod
    def header(name: str, prefix: str = "") -> "CredentialPlacement":
        return CredentialPlacement("header", name, prefix)

    @staticmethod
    def query(name: str) -> "CredentialPlacement":
        return CredentialPlacement("query", name)


# ------------------------------------------------------------------------------------ providers


@dataclass
class Target:
    """The upstream a provider call goes to: the base URL (configured or default) and model."""

    base_url: str
    model: str


@dataclass
class Descriptor:
    """What a provider plugin says about itself."""

    name: str
    version: str
    default_base_url: str
    credential: CredentialPlacement = field(default_factory=CredentialPlacement.bearer)
    credential_required: bool = True
    origins: List[str] = field(default_factory=list)
    models: List[str] = field(default_factory=list)


@dataclass
class Completion:
    """A complete, non-streamed answer in OpenAI ``chat.completion`` JSON."""

    json: str
    usage: Optional[Usage] = None


@dataclass
class Chunk:
    """One OpenAI ``chat.completion.chunk`` JSON; ``usage`` set on the usage chunk."""

    json: str
    usage: Optional[Usage] = None


@dataclass
class FollowRequest:
    """Send ``request`` after ``after_ms`` milliseconds and hand its response back."""

    request: HttpRequest
    after_ms: int = 0


#: What ``decode`` returns: the answer, or a request to send next.
Step = Union[Completion, FollowRequest]
#: What a stream decoder's ``finish`` returns: the last chunks, or a request to continue from.
StreamEnd = Union[List[Chunk], FollowRequest]


@dataclass
class ResponseHead:
    """The status and headers of the 2xx response a stream decoder is made for."""

    status: int
    headers: List[Header] = field(default_factory=list)

    def header(self, name: str) -> Optional[str]:
        return header_value(self.headers, name)

    def is_json(self) -> bool:
        """Whether the body is JSON (``application/json`` or ``*+json``), not an event stream."""
        value = self.header("content-type")
        if value is None:
            return False
        media = value.split(";", 1)[0].strip().lower()
        return media == "application/json" or media.endswith("+json")


# ---------------------------------------------------------------------------------------- tools


@dataclass
class NamedUrl:
    """A URL with a name: an upstream's endpoint (``forecast`` → ``https://api.open-meteo.com``)."""

    name: str
    url: str


@dataclass
class Upstream:
    """An upstream API a tool plugin's tools call; the host walks them in the plugin's order."""

    name: str
    endpoints: List[NamedUrl]
    credential: CredentialPlacement = field(default_factory=CredentialPlacement.none)
    credential_required: bool = False


@dataclass
class ToolTarget:
    """The upstream a tool call is for, with its endpoints' URLs as the operator configured them."""

    upstream: str
    endpoints: List[NamedUrl]

    def endpoint(self, name: str) -> str:
        """The configured URL of endpoint ``name`` without a trailing ``/``. A target without it
        is the host's mistake: ``unavailable``, so the host tries the next upstream."""
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint.url.rstrip("/")
        raise Failure.unavailable(
            f"upstream {_quote(self.upstream)} was called without its {_quote(name)} endpoint"
        )


def _quote(text: str) -> str:
    """``text`` in double quotes, as Rust's ``{:?}`` shows a string (messages match the Rust SDK)."""
    return json.dumps(text, ensure_ascii=False)
