"""OutputGuard: what a session may emit, so that its output always reaches the server.

The link carries messages of bounded size (16 MiB on the WebSocket, the
server's request limit on the HTTP binding), and a frame over it never
arrives: resent forever, it keeps the lease from ending until the task runs
again from scratch. So every event a session emits passes here first:

- an artifact chunk larger than `max_event_bytes` of JSON is cut into several
  chunks of the same artifact (`protocol.output_size.split_event`: text in
  slices, file content in whole base64 quanta), which the OutputStreamer packs
  into frames of at most `OutputConfig.max_frame_bytes`;
- an event that cannot be cut that small (a huge data part or message) and
  would not fit in a frame is refused;
- the attempt's output (`protocol.output_size.output_bytes`, as the server
  counts it) may not pass `cap`, the smaller of the worker's own limit and the
  server's (`RegisterReply.maxOutputBytes`): the session stops there, early,
  rather than stream what the server would refuse.

A refusal (`OutputRefused`) ends the session `failed` with its reason, released
once: it is not retried, as the same agent would produce the same output again.
"""

from __future__ import annotations

from protocol.models import StreamResponse
from protocol.output_size import encoded_bound, output_bytes, split_event

__all__ = ["OutputGuard", "OutputRefused"]


class OutputRefused(Exception):
    """The session's output cannot go to the server; the message says why."""


class OutputGuard:
    """Checks and cuts one attempt's events; see the module docstring."""

    def __init__(self, *, cap: int | None, cap_source: str, max_event_bytes: int,
                 max_frame_bytes: int) -> None:
        self.cap = cap
        self._cap_source = cap_source
        self._max_event = min(max_event_bytes, max_frame_bytes)
        self._max_frame = max_frame_bytes
        self.emitted = 0
        """Output bytes admitted so far."""

    def admit(self, event: StreamResponse) -> list[StreamResponse]:
        """`event` as the events to send (cut if large); `OutputRefused` if it cannot go."""
        size = output_bytes((event,))
        if self.cap is not None and self.emitted + size > self.cap:
            raise OutputRefused(f"the task's output exceeds the limit of {self.cap} bytes "
                                f"({self._cap_source})")
        if encoded_bound(event) <= self._max_event:
            pieces = [event]
        else:
            pieces = split_event(event, self._max_event)
            for piece in pieces:
                if (bound := encoded_bound(piece)) > self._max_frame:
                    raise OutputRefused(
                        f"an event of up to {bound} bytes does not fit in a worker-link "
                        f"frame ({self._max_frame} bytes) and cannot be cut: emit it in "
                        "smaller chunks")
        self.emitted += size
        return pieces
