"""One subscriber's feed of a task's committed events, in the batches they commit in.

A stream wakes once per commit of its task, and a commit often holds several
events (an agent's chunks, group-committed together). `EventFeed` is an async
iterator of single events for any consumer, and also hands out every event it
already holds in one go (`wait` + `take`), so an SSE stream can write them all
with one send: one wake-up and one syscall per batch instead of per event.
The feed is a plain object, not an async generator: a subscriber that waits
holds its cursor and no suspended generator frame, and the caller decides how
the wait is bounded (its own cancel scope), instead of one scope per wait.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from actors.store_port import StoredEvent
from actors.task_store import ServerTaskStore
from protocol.models import StreamResponse, TaskState
from protocol.states import ends_stream, is_terminal

__all__ = ["EventFeed"]


class EventFeed:
    """Committed events of `task_id` after `after_seq` until the task ends (or,
    unless `through_pauses`, pauses for input or auth).

    As an async iterator it yields the events one by one, and None after every
    `keepalive` seconds without one (so a stream can send a keep-alive). `wait`
    and `take` are the batch interface: `wait` waits for at least one event
    without a timeout of its own (safe to cancel: it holds no state then) and
    `take` returns what has arrived.
    """

    def __init__(self, store: ServerTaskStore, task_id: str, after_seq: int, *,
                 keepalive: float, through_pauses: bool = False) -> None:
        self.task_id = task_id
        self.keepalive = keepalive
        self._store = store
        self._cursor = after_seq
        self._ends: Callable[[StreamResponse], bool] = _terminal if through_pauses else _ends
        self._pending: list[StoredEvent] = []
        self._ended = False

    async def wait(self) -> bool:
        """Wait until events are ready to `take`; False once the feed has ended."""
        if self._pending:
            return True
        if self._ended:
            return False
        events = await self._store.wait_events(self.task_id, self._cursor)
        if not events:
            self._ended = True
            return False
        for i, ev in enumerate(events):
            if self._ends(ev.event):
                events = events[:i + 1]
                self._ended = True
                break
        self._cursor = events[-1].seq
        self._pending = events
        return True

    def take(self) -> list[StoredEvent]:
        """The events `wait` made ready, in order (and no longer pending)."""
        out, self._pending = self._pending, []
        return out

    async def aclose(self) -> None:
        """End the feed (an async generator's `aclose`, for consumers that call it)."""
        self._ended = True
        self._pending = []

    def __aiter__(self) -> EventFeed:
        return self

    async def __anext__(self) -> StoredEvent | None:
        if not self._pending:
            more = None
            with trio.move_on_after(self.keepalive):
                more = await self.wait()
            if more is None:
                return None
            if not more:
                raise StopAsyncIteration
        return self._pending.pop(0)


def _state(event: StreamResponse) -> TaskState | None:
    """The task state an event reports, if it reports one."""
    if event.status_update is not None:
        return event.status_update.status.state
    if event.task is not None:
        return event.task.status.state
    return None


def _ends(event: StreamResponse) -> bool:
    state = _state(event)
    return state is not None and ends_stream(state)


def _terminal(event: StreamResponse) -> bool:
    state = _state(event)
    return state is not None and is_terminal(state)
