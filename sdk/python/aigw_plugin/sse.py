"""An incremental Server-Sent Events parser (the WHATWG ``text/event-stream`` format).

The host hands a stream decoder the body in whatever pieces the network produced, so a piece may
end in the middle of a line, of a ``\\r\\n``, or of a UTF-8 character. The parser keeps the
unfinished line as bytes and decodes only complete lines: a line break byte never occurs inside a
multi-byte UTF-8 sequence, so a complete line is always complete UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

_BOM = b"\xef\xbb\xbf"


@dataclass
class Event:
    """One dispatched event: its ``data:`` lines joined with ``\\n``, its name and id if any."""

    data: str
    name: Optional[str] = None
    id: Optional[str] = None


class SseParser:
    """Bytes in (any split), events out."""

    def __init__(self) -> None:
        self._line = bytearray()  # the line not yet terminated
        self._data: List[str] = []
        self._has_data = False
        self._name: Optional[str] = None
        self._id: Optional[str] = None
        self._started = False  # past the very start, where a BOM is skipped

    def feed(self, piece: bytes) -> List[Event]:
        """Feeds the next piece of the body; returns the events it completed."""
        events: List[Event] = []
        if not self._started:
            # The BOM may itself arrive split: wait for 3 bytes to decide.
            self._line += piece
            if len(self._line) < 3 and _BOM.startswith(bytes(self._line)):
                return events
            self._started = True
            pending = bytes(self._line)
            self._line.clear()
            if pending.startswith(_BOM):
                pending = pending[3:]
            piece = pending
        start = 0
        while True:
            newline = piece.find(b"\n", start)
            if newline < 0:
                break
            if self._line:
                self._line += piece[start:newline]
                line = bytes(self._line)
                self._line.clear()
            else:
                line = piece[start:newline]
            self._process_line(line, events)
            start = newline + 1
        self._line += piece[start:]
        return events

    def finish(self) -> List[Event]:
        """The body ended. A last event without its blank line (or line break) is still
        delivered: lenient, and it keeps the last chunk of sloppy servers."""
        events: List[Event] = []
        self._started = True
        if self._line:
            line = bytes(self._line)
            self._line.clear()
            self._process_line(line, events)
        self._dispatch(events)
        return events

    def _process_line(self, line: bytes, events: List[Event]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            self._dispatch(events)
            return
        if line[0:1] == b":":
            return  # a comment, e.g. OpenRouter's `: OPENROUTER PROCESSING` keep-alive
        colon = line.find(b":")
        if colon >= 0:
            name, value = line[:colon], line[colon + 1 :]
            if value.startswith(b" "):
                value = value[1:]
        else:
            name, value = line, b""
        text = value.decode("utf-8", errors="replace")
        if name == b"data":
            self._data.append(text)
            self._has_data = True
        elif name == b"event":
            self._name = text
        elif name == b"id" and "\0" not in text:
            self._id = text
        # `retry:` and unknown fields are ignored, as the spec says.

    def _dispatch(self, events: List[Event]) -> None:
        name, self._name = self._name, None
        if not self._has_data:
            return  # an event with no data is not dispatched, but its fields reset
        self._has_data = False
        data = "\n".join(self._data)
        self._data = []
        events.append(Event(data=data, name=name, id=self._id))
