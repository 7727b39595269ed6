"""The reaper: what happens to a task whose worker's lease ran out.

A mixin of `actors.dispatcher.Dispatcher`, which owns the parts it uses: the lease
index and store writes (`leases`), the queue (`routing`) and the connected workers
(`workers`). On a shared store every replica's reaper runs, and the compare-and-set
write in `Leases.end` makes each lease end exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from actors.dispatch.leases import Leases
from actors.dispatch.routing import TaskQueue
from actors.dispatch.workers import ConnectedWorkers
from actors.store_port import Lease
from protocol.states import ends_stream

__all__ = ["Reaper"]

log = logging.getLogger("actors.dispatcher")  # the dispatcher's own log: one place to look


class Reaper:
    """`reap` and `_end_lease`; the attributes below are the dispatcher's."""

    _leases: Leases
    _queue: TaskQueue
    _workers: ConnectedWorkers

    # the dispatcher's own methods, which these parts call
    _drop_lease: Callable[[str, Lease], None]
    _enqueue: Callable[..., None]  # (task_id, route, *, retry=False)
    _wake: Callable[[], None]

    async def reap(self) -> int:
        """Re-queue (or fail) tasks whose lease ran out; returns how many. On a shared
        store every replica's reaper does, and each lease is ended exactly once."""
        ended = 0
        for task_id, lease in self._leases.overdue():
            ended += await self._end_lease(
                task_id, lease, f"the lease of worker {lease.worker_id!r} expired")
        return ended

    async def _end_lease(self, task_id: str, lease: Lease, why: str, *,
                         refund: bool = False) -> bool:
        """Take a lease whose worker is gone: queue the task again (rolled back to
        what it was when the lost attempt was claimed), or fail it once the attempts
        are used up, or end it canceled if that was asked for (`refund`: the attempt
        does not count). False if the store says it ended or was renewed meanwhile
        (another replica got there first)."""
        record = await self._leases.end(task_id, lease, why, refund=refund)
        if record is None:  # the index now follows the store
            current = self._leases.get(task_id)
            if current is None or current.attempt_id != lease.attempt_id:
                self._queue.release_place(task_id)  # ended elsewhere (a renewal keeps it)
                if self._workers.lease_ended(lease.worker_id, task_id, lease.attempt_id):
                    self._wake()
            return False
        self._drop_lease(task_id, lease)
        log.warning("lease ended: %s", why, extra={
            "task_id": task_id, "worker_id": lease.worker_id,
            "attempt_id": lease.attempt_id, "state": record.state.value})
        if ends_stream(record.state):
            self._queue.release_place(task_id)
        elif task_id not in self._queue:  # back in its place: ahead of what was submitted
            self._enqueue(task_id, record.dispatch.route, retry=True)  # while it ran
        return True
