"""Client calls a stopping server lets go of: blocking sends and event streams.

A stopping server gives its in-flight client calls a grace period; those still
waiting at its end are released, not failed: a blocking SendMessage answers with
the task as it stands, a stream ends (with a final notice the binding writes).
The task itself runs on, on another replica or after the restart. `CallRelease`
is the one switch for all of them: each wait runs inside `hold()`, and `release()`
cancels every wait held now or later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import trio

from actors.store_port import TaskRecord
from actors.task_store import ServerTaskStore

__all__ = ["CallRelease"]


class CallRelease:
    """The graceful stop's hold on client calls: `released` once the grace is over."""

    def __init__(self) -> None:
        self.released = False
        self._scopes: set[trio.CancelScope] = set()

    @contextlib.contextmanager
    def hold(self) -> Iterator[trio.CancelScope]:
        """A cancel scope `release()` cancels (at once when already released);
        its `cancelled_caught` says whether it did."""
        with trio.CancelScope() as scope:
            if self.released:
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    def release(self) -> int:
        """Let go of every held wait; how many there were."""
        self.released = True
        held = list(self._scopes)
        for scope in held:
            scope.cancel()
        return len(held)

    async def wait_record(self, store: ServerTaskStore, task_id: str,
                          predicate: Callable[[TaskRecord], bool]) -> TaskRecord:
        """`store.wait_record`, or the task as it stands once released."""
        with self.hold():
            return await store.wait_record(task_id, predicate)
        record = await store.get_task(task_id)
        if record is None:  # gone meanwhile (retention): as `wait_record` says it
            raise KeyError(task_id)
        return record
