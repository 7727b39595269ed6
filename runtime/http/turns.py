"""Turns for the writes of event streams, so that a burst of events does not
starve every other request.

trio runs every runnable task once per scheduling pass, in turn. When a thousand
tasks commit an event at the same moment, ten thousand subscribers become
runnable together, and each step of any other request (a blocking SendMessage
goes through a dozen) waits behind all of them: seconds per request. With
`Turn`, at most `TURNS` streams write at a time; the others wait parked, off the
run queue, so a pass holds a few dozen writes and the other requests' steps get
their turn between them. The total work is the same (measured: a little less,
since a stream that waits its turn finds more events to write at once).

A stream that has to wait for its client (a full socket buffer) gives its turn
up first (`yield_turn`, from `runtime.http.tcp`): a slow reader never holds one.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType

import trio

__all__ = ["TURNS", "Turn", "yield_turn"]

TURNS = 32
"""Streams writing at once, per server (per trio run)."""

_turns: trio.lowlevel.RunVar[trio.Semaphore] = trio.lowlevel.RunVar("trio_a2a_stream_turns")
_current: ContextVar[Turn | None] = ContextVar("trio_a2a_stream_turn", default=None)


class Turn:
    """One stream's turn to write: ``async with turn:`` around each write."""

    __slots__ = ("_held", "_sem", "_token")

    def __init__(self) -> None:
        self._held = False
        self._sem: trio.Semaphore | None = None
        self._token: Token[Turn | None] | None = None

    async def __aenter__(self) -> Turn:
        try:
            sem = _turns.get()
        except LookupError:
            sem = trio.Semaphore(TURNS)
            _turns.set(sem)
        await sem.acquire()
        self._sem, self._held = sem, True
        self._token = _current.set(self)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        self.give_up()

    def give_up(self) -> None:
        if self._held and self._sem is not None:
            self._held = False
            self._sem.release()


def yield_turn() -> None:
    """Give up the current task's turn, if it holds one (it is about to wait)."""
    turn = _current.get()
    if turn is not None:
        turn.give_up()
