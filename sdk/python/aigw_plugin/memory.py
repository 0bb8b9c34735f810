"""The ``memory`` import for tool plugins (``wit/memory.wit``) in plain Python: the gateway's
key-value entries (LangGraph-Store-shaped) and its conversations' items, acting in the namespace
of the call that invoked the plugin (the host sets it; a plugin never names it).

Values and items are Python objects here (JSON in the WIT); a refused operation raises
:class:`MemoryRefused` with the WIT case as ``kind`` (``not-found``, ``conflict`` with the current
``version``, ``too-large``, ``quota``, ``invalid``, ``unavailable``). Outside a component there
is no host: every operation raises ``unavailable``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

try:
    # Only inside a tool-plugin component, imported at build time (no filesystem on a request).
    from componentize_py_types import Err as _Err
    from wit_world.imports import memory as _host
except ImportError:
    _host = None
    _Err = None


class MemoryRefused(Exception):
    """Why a memory operation did nothing."""

    KINDS = ("not-found", "conflict", "too-large", "quota", "invalid", "unavailable")

    def __init__(self, kind: str, message: str = "", version: Optional[int] = None) -> None:
        if kind not in MemoryRefused.KINDS:
            raise ValueError(f"unknown memory error {kind!r}")
        super().__init__(message or kind)
        self.kind = kind
        self.message = message or kind
        #: For ``conflict``: the entry's current version (0: it does not exist).
        self.version = version


@dataclass
class Entry:
    """A key-value entry: a JSON object under a path and a key."""

    path: List[str]
    key: str
    value: Dict[str, Any]
    version: int
    created_at_ms: int
    updated_at_ms: int
    expires_at_ms: Optional[int] = None
    agent: Optional[str] = None


@dataclass
class SearchHit:
    entry: Entry
    score: Optional[float] = None


@dataclass
class Item:
    """One conversation item in the Responses shapes, its ``id`` assigned by the host."""

    id: str
    item: Dict[str, Any]
    agent: Optional[str] = None


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _call(operation: str, *args: Any) -> Any:
    if _host is None:
        raise MemoryRefused("unavailable", "no host memory outside a component")
    try:
        return getattr(_host, operation)(*args)
    except _Err as error:  # type: ignore[misc]
        raise _error(error.value) from None


def _error(value: Any) -> MemoryRefused:
    name = type(value).__name__.removeprefix("MemoryError_")
    kind = {
        "NotFound": "not-found",
        "Conflict": "conflict",
        "TooLarge": "too-large",
        "Quota": "quota",
        "Invalid": "invalid",
        "Unavailable": "unavailable",
    }.get(name, "unavailable")
    detail = getattr(value, "value", None)
    if kind == "conflict":
        return MemoryRefused(kind, f"the entry is at version {detail}", int(detail or 0))
    return MemoryRefused(kind, detail if isinstance(detail, str) else "")


def _entry(value: Any) -> Entry:
    return Entry(
        list(value.path),
        value.key,
        json.loads(value.value_json),
        value.version,
        value.created_at_ms,
        value.updated_at_ms,
        value.expires_at_ms,
        value.agent,
    )


def get(path: Sequence[str], key: str) -> Optional[Entry]:
    """The entry under ``path`` and ``key``; ``None`` when there is none (or it expired)."""
    found = _call("get", list(path), key)
    return _entry(found) if found is not None else None


def put(
    path: Sequence[str],
    key: str,
    value: Dict[str, Any],
    ttl_seconds: Optional[int] = None,
    if_version: Optional[int] = None,
) -> int:
    """Stores ``value`` (a JSON object) and returns the entry's new version. ``if_version``:
    compare-and-set (0: only if it does not exist), else ``MemoryRefused("conflict")``."""
    return _call("put", list(path), key, _compact(value), ttl_seconds, if_version)


def delete(path: Sequence[str], key: str) -> bool:
    """Removes the entry; whether there was one."""
    return _call("delete", list(path), key)


def search(
    path_prefix: Sequence[str] = (),
    query: Optional[str] = None,
    filter: Optional[Dict[str, Any]] = None,  # noqa: A002 - the WIT's name
    limit: int = 10,
) -> List[SearchHit]:
    """Entries under ``path_prefix``: best match first for ``query``, else the most recently
    updated; ``filter`` fields the value must match (``{"rank": {"$gt": 3}}``)."""
    hits = _call(
        "search",
        list(path_prefix),
        query,
        _compact(filter) if filter is not None else None,
        limit,
    )
    return [SearchHit(_entry(hit.entry), hit.score) for hit in hits]


def list_items(conversation: str, limit: int = 20) -> List[Item]:
    """The last ``limit`` items of ``conversation``, oldest first."""
    return [
        Item(item.id, json.loads(item.item_json), item.agent)
        for item in _call("list_items", conversation, limit)
    ]


def append_items(conversation: str, items: Sequence[Dict[str, Any]]) -> List[str]:
    """Appends Responses input items (all or none); their ids in order."""
    return list(_call("append_items", conversation, [_compact(item) for item in items]))
