"""The host's log (the ``log`` import), so plugins never need stdio. Outside a component the
lines go to stderr, so a plugin's tests show them."""

from __future__ import annotations

import sys

_LEVELS = ("trace", "debug", "info", "warn", "error")

try:
    from wit_world.imports import log as _host_log  # only inside a component
except ImportError:
    _host_log = None


def emit(level: str, message: str) -> None:
    """Logs ``message`` at ``level`` (``trace``, ``debug``, ``info``, ``warn``, ``error``)."""
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    if _host_log is None:
        print(f"[{level}] {message}", file=sys.stderr)
        return
    _host_log.emit(_host_log.Level[level.upper()], message)


def trace(message: str) -> None:
    emit("trace", message)


def debug(message: str) -> None:
    emit("debug", message)


def info(message: str) -> None:
    emit("info", message)


def warn(message: str) -> None:
    emit("warn", message)


def error(message: str) -> None:
    emit("error", message)
