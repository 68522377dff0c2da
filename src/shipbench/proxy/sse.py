"""Incremental Server-Sent Events decoder (the proxy relays bytes untouched and decodes a copy).

Invariants: events are yielded exactly once, in order, whatever the chunk boundaries (a line or a
CRLF split across chunks is handled); a single pending event larger than `max_event_bytes` is dropped
instead of growing memory without bound.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SseEvent:
    event: str | None
    data: str


class SseDecoder:
    def __init__(self, max_event_bytes: int = 32 * 1024 * 1024) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._size = 0
        self._max = max_event_bytes
        self._overflow = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buf = self._buf + chunk if self._buf else chunk
        out: list[SseEvent] = []
        start = 0
        while (nl := buf.find(b"\n", start)) >= 0:
            ev = self._line(buf[start:nl].rstrip(b"\r"))
            start = nl + 1
            if ev is not None:
                out.append(ev)
        self._buf = buf[start:]
        if len(self._buf) > self._max:
            self._buf = b""
            self._overflow = True
        return out

    def close(self) -> list[SseEvent]:
        """Flush a final event that was not followed by a blank line."""
        out: list[SseEvent] = []
        if self._buf:
            ev = self._line(self._buf.rstrip(b"\r"))
            self._buf = b""
            if ev is not None:
                out.append(ev)
        ev = self._line(b"")
        if ev is not None:
            out.append(ev)
        return out

    def _line(self, line: bytes) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._size += len(value)
            if self._size > self._max:
                self._overflow = True
            elif not self._overflow:
                self._data.append(value.decode("utf-8", errors="replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
        return None

    def _dispatch(self) -> SseEvent | None:
        ev = None
        if self._data and not self._overflow:
            ev = SseEvent(self._event, "\n".join(self._data))
        self._event, self._data, self._size, self._overflow = None, [], 0, False
        return ev
