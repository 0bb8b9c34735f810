"""Building request URLs from an endpoint, a path and query parameters, percent-encoding every
value (``São Paulo``, ``a&b=c``) so arguments can never add parameters or change the path."""

from __future__ import annotations

from typing import Optional

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def encode(text: str) -> str:
    """Everything but RFC 3986's unreserved characters becomes ``%XX`` of its UTF-8 bytes."""
    return "".join(
        chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in text.encode("utf-8")
    )


class Url:
    """``Url(endpoint, "/v1/search").param("name", city).build()``."""

    def __init__(self, endpoint: str, path: str) -> None:
        self._url = endpoint.rstrip("/") + path
        self._has_query = "?" in self._url

    def param(self, name: str, value: str) -> "Url":
        """Adds ``name=value``, the value percent-encoded."""
        self._url += "&" if self._has_query else "?"
        self._has_query = True
        self._url += f"{encode(name)}={encode(str(value))}"
        return self

    def param_opt(self, name: str, value: Optional[str]) -> "Url":
        """Adds ``name=value`` when there is a value."""
        return self.param(name, value) if value is not None else self

    def build(self) -> str:
        return self._url


def number(value: float) -> str:
    """A float as Rust's ``f64`` Display writes it (``48`` for 48.0, ``2.35``), so a Python and a
    Rust plugin ask an upstream the same URL."""
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))
