"""OutputStreamer: a session's events to the server, in order, exactly once.

The session puts its events on a bounded channel; the streamer drains that
channel at once into its own buffer and sends the buffer as ``output`` frames,
one frame in flight at a time, each with the next ``seq`` of the attempt
(1, 2, 3...). While a frame waits for its ack, new events gather in the buffer:
the next frame carries all of them, up to `max_frame_events` and
`max_frame_bytes` (by `protocol.output_size.encoded_bound`, an upper bound on
the JSON): a frame stays below the link's message limit, whatever the output
(the session's OutputGuard has cut large chunks to fit). Once a backlog
of `fold_after` events waits, a text chunk appended to the same artifact as the
event before it is folded into that event (its text joined), so a slow link
means fewer, larger frames rather than a session waiting on the network, while
a link that keeps up delivers every chunk as the agent emitted it. The first
frame lingers `first_frame_linger` (2 ms) for the session to end, so that a short
attempt's whole output rides in its release.

When the link is down, the in-flight frame is held (one warning per outage) and
the buffer keeps filling; the session blocks only once `max_buffered` events,
or `max_buffered_bytes`, wait. When the link is back the same frame (same seq,
same events) is sent again: the server drops a seq it already holds, so nothing
is lost and nothing is applied twice. `wait_final` returns once the session's channel is closed
and every frame but the last is acknowledged, and hands that last frame (if any
events remained) to the StatusReporter, whose ``release`` carries it: a short
attempt ends in one round trip, and the release still follows all its output.

The StatusReporter's reports ride along (`report`): the next output frame
carries the latest one; when there is no output to send, it goes alone as a
``status`` frame, in the same one-in-flight order, but never before the first
output frame (a session's first event, its working status, comes at once and
carries it) nor after the session's last event (the release carries the final
report). Reports are states, so a newer one replaces one not yet sent.
"""

from __future__ import annotations

import logging
import random
from collections import deque

import attrs
import trio

from actors.worker.link_port import AttemptLost, Backoff, LinkSlot, deliver
from protocol.models import Part, StreamResponse
from protocol.output_size import encoded_bound
from protocol.worker_link import OutputBody, OutputReply, StatusBody

__all__ = ["OutputConfig", "OutputStatistics", "OutputStreamer", "coalesce_text"]

log = logging.getLogger(__name__)


@attrs.frozen
class OutputConfig:
    max_buffered: int = 256
    """Events held unsent before the session blocks: a bound on memory during an
    outage (each at most `max_chunk_chars` of text once chunks are folded)."""
    max_frame_events: int = 64
    """Events per output frame."""
    max_frame_bytes: int = 4 << 20
    """An output frame's size on the wire, at most (by an upper bound on its JSON;
    one event that alone is larger goes alone). Well below the WebSocket's 16 MiB
    message limit and the HTTP binding's 10 MiB request limit (the server's
    --max-body), with room left for the release that may carry the last frame and
    the agent's final message."""
    max_buffered_bytes: int = 16 << 20
    """Output held unsent (by the same bound) before the session blocks: with
    `max_buffered`, what a worker holds for a slow or lost link."""
    fold_after: int = 64
    """Text chunks are folded together once this many events (a full frame) wait
    unsent: a link that keeps up sees every chunk, even of an agent that emits a
    burst without awaiting anything else; a slow one, fewer and larger chunks."""
    first_frame_linger: float = 0.002
    """Seconds the first frame waits for the session to end before it goes: a
    short attempt then travels whole in its release (one round trip, not two),
    and a long one shows ``working`` that much later."""
    max_chunk_chars: int = 64 * 1024
    """A folded text chunk grows to at most this many characters."""
    ack_timeout: float = 30.0
    """Seconds without an ack before the frame is in doubt and sent again."""
    retry: Backoff = Backoff()
    """Backoff after a server failure (INTERNAL) or an ack that does not cover the frame."""


@attrs.frozen
class OutputStatistics:
    received: int
    """Events the session produced."""
    coalesced: int
    """Of those, text chunks folded into the event before them."""
    buffered: int
    """Events waiting for a frame."""
    frames: int
    """Frames acknowledged (the last seq)."""


def _plain_text(part: Part) -> bool:
    return (part.text is not None and part.raw is None and part.url is None
            and part.data is None and part.metadata is None and part.filename is None)


def coalesce_text(first: StreamResponse, then: StreamResponse, *,
                  max_chars: int) -> StreamResponse | None:
    """One event equivalent to `first` followed by `then`, if `then` appends plain text
    to the artifact `first` updates (its text joined to `first`'s last text part);
    otherwise None."""
    a, b = first.artifact_update, then.artifact_update
    if a is None or b is None or not b.append or a.last_chunk:
        return None
    art, more = a.artifact, b.artifact
    if (a.task_id != b.task_id or art.artifact_id != more.artifact_id or b.metadata
            or more.metadata or more.extensions
            or more.name not in (None, art.name)
            or more.description not in (None, art.description)):
        return None
    if not art.parts or not more.parts:
        return None
    last = art.parts[-1]
    if not _plain_text(last) or not all(_plain_text(p) and p.media_type == last.media_type
                                        for p in more.parts):
        return None
    text = (last.text or "") + "".join(p.text or "" for p in more.parts)
    if len(text) > max_chars:
        return None
    part = last.model_copy(update={"text": text})
    artifact = art.model_copy(update={"parts": [*art.parts[:-1], part]})
    update = a.model_copy(update={"artifact": artifact, "last_chunk": b.last_chunk})
    return StreamResponse(artifact_update=update)


class OutputStreamer:
    """Streams one attempt's output; see the module docstring."""

    def __init__(
        self,
        link: LinkSlot,
        *,
        task_id: str,
        attempt_id: str,
        events: trio.MemoryReceiveChannel[StreamResponse],
        config: OutputConfig = OutputConfig(),
        rng: random.Random | None = None,
    ) -> None:
        self._link = link
        self.task_id = task_id
        self.attempt_id = attempt_id
        self._events = events
        self._config = config
        self._rng = rng if rng is not None else random.Random()
        self._pending: deque[tuple[StreamResponse, int]] = deque()
        """Events not yet in a frame, each with its `encoded_bound`."""
        self._pending_bytes = 0
        self._carry: StreamResponse | None = None
        """An event taken by `_take_ready` that did not fit the buffer yet."""
        self._input_closed = False
        self._changed = trio.Event()
        self._flushed = trio.Event()
        self._closed_event = trio.Event()
        self.final: OutputBody | None = None
        """The last frame, left for the release to carry."""
        self._received = 0
        self._coalesced = 0
        self.seq = 0
        """The seq of the last frame made (sent, or being sent)."""
        self.acked_through = 0
        self._status: StatusBody | None = None
        """The latest status report not yet taken into a frame."""
        self.reported: list[str] = []
        """The report states the server acknowledged, in order."""

    def statistics(self) -> OutputStatistics:
        return OutputStatistics(received=self._received, coalesced=self._coalesced,
                                buffered=len(self._pending), frames=self.acked_through)

    async def wait_final(self) -> OutputBody | None:
        """Until the session's channel is closed and every output frame before the
        last acknowledged; the last one, unsent, for the release (None: no events
        were left)."""
        if not self._flushed.is_set():
            await self._flushed.wait()
        return self.final

    @property
    def _what(self) -> dict[str, object]:
        return {"task_id": self.task_id, "attempt_id": self.attempt_id}

    def report(self, status: StatusBody) -> None:
        """Send `status` with the next frame (a newer report replaces it until then)."""
        self._status = status
        if self.seq > 0:  # before the first frame a report alone never goes out
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # What the session emitted already is taken without a schedule point: a short
        # session has ended before its streamer starts, and then its whole output is
        # here, the channel closed, and no reader task, linger or wake-up is needed.
        self._take_ready()
        task_status.started()
        if self._input_closed:
            await self._send_all()
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read)
                await self._send_all()
        self._flushed.set()

    def _take_ready(self) -> None:
        """Take the events waiting in the channel, as `_read` would, while they fit
        the buffer (one that does not is `_carry`, for `_read` to take first)."""
        cfg = self._config
        while True:
            try:
                event = self._events.receive_nowait()
            except trio.WouldBlock:
                return
            except trio.EndOfChannel:
                self._events.close()
                self._end_of_input()
                return
            weight = encoded_bound(event)
            if not self._fold(event, weight):
                if self._pending and (len(self._pending) >= cfg.max_buffered or
                                      self._pending_bytes + weight > cfg.max_buffered_bytes):
                    self._carry = event
                    return
                self._pending.append((event, weight))
                self._pending_bytes += weight
            self._received += 1

    async def _read(self) -> None:
        events = self._events
        with events:
            if self._carry is not None:
                event, self._carry = self._carry, None
                await self._take(event)
            async for event in events:
                await self._take(event)
                while True:  # what else is there already, in the same step
                    try:
                        event = events.receive_nowait()
                    except trio.WouldBlock:
                        break
                    except trio.EndOfChannel:
                        self._end_of_input()
                        return
                    await self._take(event)
                self._wake()
            self._end_of_input()

    def _end_of_input(self) -> None:
        self._input_closed = True
        self._closed_event.set()
        self._wake()

    async def _take(self, event: StreamResponse) -> None:
        self._received += 1
        weight = encoded_bound(event)
        if not self._fold(event, weight):
            cfg = self._config
            while self._pending and (len(self._pending) >= cfg.max_buffered or
                                     self._pending_bytes + weight > cfg.max_buffered_bytes):
                self._wake()
                await self._changed.wait()
            self._pending.append((event, weight))
            self._pending_bytes += weight

    def _fold(self, event: StreamResponse, weight: int) -> bool:
        if not self._pending or len(self._pending) < self._config.fold_after:
            return False
        last, last_weight = self._pending[-1]
        merged = coalesce_text(last, event, max_chars=self._config.max_chunk_chars)
        if merged is None:
            return False
        self._pending[-1] = (merged, last_weight + weight)  # still an upper bound
        self._pending_bytes += weight
        self._coalesced += 1
        return True

    def _next_events(self) -> list[StreamResponse]:
        """Take the next frame's events: as many as fit in a frame (at least one)."""
        cfg = self._config
        events: list[StreamResponse] = []
        size = 0
        while self._pending and len(events) < cfg.max_frame_events:
            event, weight = self._pending[0]
            if events and size + weight > cfg.max_frame_bytes:
                break
            self._pending.popleft()
            self._pending_bytes -= weight
            events.append(event)
            size += weight
        return events

    async def _send_all(self) -> None:
        if self._config.first_frame_linger > 0 and not self._input_closed:
            with trio.move_on_after(self._config.first_frame_linger):
                await self._closed_event.wait()
        while True:
            while not self._pending and not self._input_closed and (
                    self._status is None or self.seq == 0):
                await self._changed.wait()
            if not self._pending:
                if self._input_closed:
                    return  # the release carries the final report, which supersedes this
                status, self._status = self._status, None
                assert status is not None
                await deliver(self._link, "status", status, what=self._what,
                              ack_timeout=self._config.ack_timeout,
                              retry=self._config.retry, rng=self._rng)
                self.reported.append(status.state)
                continue
            status, self._status = self._status, None
            events = self._next_events()
            self._wake()  # room in the buffer
            self.seq += 1
            body = OutputBody(task_id=self.task_id, attempt_id=self.attempt_id,
                              seq=self.seq, events=events, status=status)
            if self._input_closed and not self._pending:
                self.final = body  # the release carries it
                return
            await self._send(body)
            if status is not None:
                self.reported.append(status.state)

    async def _send(self, body: OutputBody) -> None:
        failures = 0
        while True:
            reply = await deliver(self._link, "output", body, what={**self._what, "seq": body.seq},
                                  ack_timeout=self._config.ack_timeout,
                                  retry=self._config.retry, rng=self._rng)
            assert isinstance(reply, OutputReply)
            if reply.acked_through >= body.seq:
                self.acked_through = body.seq
                return
            if reply.acked_through < body.seq - 1:
                raise AttemptLost(f"the server holds output through seq {reply.acked_through} "
                                  f"only, but acknowledged seq {body.seq - 1} before")
            failures += 1
            delay = self._config.retry.delay(failures, self._rng)
            log.warning("output frame not applied; sending it again in %.3f s", delay,
                        extra={**self._what, "seq": body.seq})
            await trio.sleep(delay)
