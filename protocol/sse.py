"""Server-Sent Events framing (WHATWG HTML, "Server-sent events"), sans-IO.

`encode_event` / `encode_comment` produce frames for the server; `SSEDecoder`
is the incremental client-side parser: feed it whatever byte chunks the
transport delivers (a frame, a UTF-8 sequence or a CRLF may be split anywhere)
and it hands back the events that became complete.
"""

from __future__ import annotations

import attrs

__all__ = ["SSEDecoder", "SSEEvent", "encode_comment", "encode_event"]

_BOM = b"\xef\xbb\xbf"


@attrs.frozen
class SSEEvent:
    """A dispatched event.

    `id` and `retry` are the values in effect when the event was dispatched
    (they persist across events, as the last-event-ID buffer and reconnection
    time do in a browser); None if the stream never set them.
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


def _split_lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def encode_event(
    data: str, *, event: str | None = None, id: str | None = None, retry: int | None = None
) -> bytes:
    """One event frame; each line of `data` becomes its own `data:` line."""
    head = ""
    if event is not None:
        if "\n" in event or "\r" in event:
            raise ValueError("an SSE event type cannot contain a line break")
        head += f"event: {event}\n"
    if id is not None:
        if "\n" in id or "\r" in id or "\0" in id:
            raise ValueError("an SSE id cannot contain a line break or NUL")
        head += f"id: {id}\n"
    if retry is not None:
        if retry < 0:
            raise ValueError("an SSE retry must be a non-negative integer")
        head += f"retry: {int(retry)}\n"
    if "\n" in data or "\r" in data:
        body = "".join(f"data: {line}\n" for line in _split_lines(data))
    else:  # the common case: JSON never has a raw line break
        body = f"data: {data}\n"
    return (head + body + "\n").encode("utf-8")


def encode_comment(text: str = "") -> bytes:
    """A comment frame (`: text`), ignored by clients; used as a keep-alive."""
    if not text:
        return b":\n\n"
    return ("".join(f": {line}\n" for line in _split_lines(text)) + "\n").encode("utf-8")


class SSEDecoder:
    """Incremental SSE parser, following the spec's "interpreting an event stream".

    Lines are split on bytes (CR, LF and CRLF are ASCII, so a split never falls
    inside a UTF-8 sequence) and only whole lines are decoded, with U+FFFD for
    invalid UTF-8 as the spec says. `comments` counts comment lines seen.
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # start of a line not yet terminated
        self._skip_lf = False  # the last chunk ended in CR; drop a leading LF
        self._bom_checked = False
        self._data: list[str] = []
        self._event = ""
        self._id_buffer: str | None = None
        self._retry: int | None = None
        self._in_event = False  # fields seen since the last blank line
        self.last_event_id: str | None = None
        self.comments = 0

    @property
    def retry(self) -> int | None:
        """The reconnection time (ms) the stream last asked for, if any."""
        return self._retry

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume a chunk; return the events it completed, in order."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
                if not chunk:
                    return []
        if not self._bom_checked:
            head = b"".join(self._pending) + chunk
            if len(head) < 3 and _BOM.startswith(head):
                self._pending = [head]
                return []
            self._bom_checked = True
            self._pending = []
            chunk = head[3:] if head.startswith(_BOM) else head
        if b"\n" not in chunk and b"\r" not in chunk:
            if chunk:
                self._pending.append(chunk)
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending = []
        lines = chunk.splitlines(keepends=True)
        last = lines[-1]
        if last[-1] == 0x0D:
            self._skip_lf = True
        elif last[-1] != 0x0A:
            self._pending.append(lines.pop())
        events: list[SSEEvent] = []
        for raw in lines:
            self._line(raw.rstrip(b"\r\n").decode("utf-8", "replace"), events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line[0] == ":":
            self.comments += 1
            return
        field, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        self._in_event = True
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif field == "retry":
            if value.isascii() and value.isdigit() and len(value) < 20:
                self._retry = int(value)
        # any other field is ignored, as the spec says

    def _dispatch(self, events: list[SSEEvent]) -> None:
        self._in_event = False
        self.last_event_id = self._id_buffer
        if self._data:
            events.append(
                SSEEvent("\n".join(self._data), self._event or "message",
                         self._id_buffer, self._retry)
            )
            self._data = []
        self._event = ""

    def close(self) -> bool:
        """End of stream: drop any unterminated event, as the spec requires.

        Returns True if something was dropped, i.e. the stream was cut mid-event,
        so a client can tell a truncated stream from a clean end.
        """
        truncated = self._in_event or (self._bom_checked and bool(self._pending))
        self._pending = []
        self._data = []
        self._event = ""
        self._in_event = False
        self._skip_lf = False
        return truncated
