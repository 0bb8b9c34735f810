"""Reading a tool's arguments. The host validates them against the tool's schema first, so these
checks are a second line: a wrong type or a value out of range is still an ``invalid-request``
naming the field, never an uncaught exception (which would trap the instance)."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Optional, Sequence

from .types import Failure


def _invalid(field: str, what: str) -> Failure:
    return Failure.invalid_request(f"argument {json.dumps(field)} must be {what}")


def _bound(value: float) -> str:
    """A bound as Rust prints it (``16``, ``-90``, ``2.5``), so messages match the Rust SDK."""
    return str(int(value)) if float(value).is_integer() else repr(value)


class Args:
    """The arguments object of one call."""

    def __init__(self, values: Any) -> None:
        self.values: Dict[str, Any] = values if isinstance(values, dict) else {}

    def string(self, field: str) -> Optional[str]:
        """A string argument, if given (null counts as absent), trimmed; blank is refused."""
        value = self.values.get(field)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _invalid(field, "a string")
        if not value.strip():
            raise _invalid(field, "a non-empty string")
        return value.strip()

    def required_string(self, field: str) -> str:
        value = self.string(field)
        if value is None:
            raise Failure.invalid_request(f"argument {json.dumps(field)} is required")
        return value

    def integer(self, field: str, minimum: int, maximum: int) -> Optional[int]:
        """An integer argument in ``minimum..=maximum``, if given (``7.0`` is not an integer: the
        Rust SDK refuses it too)."""
        value = self.values.get(field)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise _invalid(field, f"an integer from {minimum} to {maximum}")
        return value

    def number(self, field: str, minimum: float, maximum: float) -> Optional[float]:
        """A number argument in ``minimum..=maximum``, if given, as a float."""
        value = self.values.get(field)
        if value is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not minimum <= value <= maximum:
            raise _invalid(field, f"a number from {_bound(minimum)} to {_bound(maximum)}")
        return float(value)

    def one_of(self, field: str, allowed: Sequence[str]) -> Optional[str]:
        """A string argument that must be one of ``allowed``, if given."""
        value = self.string(field)
        if value is not None and value not in allowed:
            raise _invalid(field, "one of " + ", ".join(allowed))
        return value
