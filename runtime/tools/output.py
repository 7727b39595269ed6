"""Output caps: a tool's output is bounded, and says plainly how much it left out.

A model that sees "[truncated N bytes]" knows the output is incomplete and by
how much, and can narrow its next call; a silently cut output looks complete.
Memory stays bounded too: the buffers count what they drop instead of keeping it.
"""

from __future__ import annotations

__all__ = ["HeadBuffer", "HeadTailBuffer", "truncated_marker"]


def truncated_marker(dropped: int) -> str:
    return f"[truncated {dropped} bytes]"


def _char_start(data: bytes | bytearray, i: int, *, back: bool) -> int:
    """Move `i` to the start of a UTF-8 character so a cut never splits one."""
    while 0 < i < len(data) and (data[i] & 0xC0) == 0x80:
        i += -1 if back else 1
    return i


class HeadBuffer:
    """Keeps the first `max_bytes` of what is written and counts the rest."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self.dropped = 0

    @property
    def full(self) -> bool:
        return len(self._buf) >= self.max_bytes

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        room = self.max_bytes - len(self._buf)
        if len(data) <= room:
            self._buf += data
            return
        cut = _char_start(data, max(room, 0), back=True)
        self._buf += data[:cut]
        self.max_bytes = len(self._buf)  # nothing more goes in, even a short character
        self.dropped += len(data) - cut

    def text(self) -> str:
        body = self._buf.decode(errors="replace")
        if not self.dropped:
            return body
        sep = "" if not body or body.endswith("\n") else "\n"
        return f"{body}{sep}{truncated_marker(self.dropped)}"


class HeadTailBuffer:
    """Keeps the first and the last `max_bytes // 2` bytes, with the marker between them."""

    def __init__(self, max_bytes: int) -> None:
        self._head = HeadBuffer(max_bytes - max_bytes // 2)
        self._tail_max = max_bytes // 2
        self._tail = bytearray()
        self._tail_dropped = 0

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        if not self._head.full:
            before = self._head.dropped
            self._head.write(data)
            overflow = self._head.dropped - before
            self._head.dropped = before
            data = data[len(data) - overflow:] if overflow else b""
        self._tail += data
        if len(self._tail) > 2 * self._tail_max + 4096:  # trim now and then, not per write
            self._trim()

    def _trim(self) -> None:
        excess = len(self._tail) - self._tail_max
        if excess > 0:
            excess = _char_start(self._tail, excess, back=False)
            self._tail_dropped += excess
            del self._tail[:excess]

    @property
    def dropped(self) -> int:
        self._trim()
        return self._tail_dropped

    def text(self) -> str:
        dropped = self.dropped
        head = self._head.text()
        tail = self._tail.decode(errors="replace")
        if not dropped:
            return head + tail
        sep = "" if not head or head.endswith("\n") else "\n"
        return f"{head}{sep}{truncated_marker(dropped)}\n{tail}"
