"""Handing work over: what a worker or a replica that stops, or a worker that
moved, leaves behind, queued again at once rather than after its lease runs out.

A mixin of `actors.dispatcher.Dispatcher`, over the reaper's `_end_lease` (the
same compare-and-set end of a lease, so each ends exactly once across replicas):

* **a worker gives a task back** (`give_back`, the worker link's ``requeue``
  release): it is stopping and the task did not finish within its grace;
* **a replica stops gracefully** (`requeue_in_process`): its embedded workers'
  tasks stop with it, and are queued for the other replicas at once (a replica
  that crashed ends them when it starts again, `Dispatcher.run`);
* **a grant was lost** (`end_orphans`, on each heartbeat): the store holds a
  lease for the worker that it does not run, granted on another connection (a
  replica committed the claim, then died or lost the connection before the
  worker had the answer). Leases granted on the heartbeat's own connection are
  left alone: their grants may be on the way.

Each of these gives the attempt back (`refund`): the task is not to blame, and
a rolling restart must not use up its attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from actors.dispatch.reaper import Reaper
from actors.dispatch.types import NotClaimable, StaleAttempt
from actors.task_store import ServerTaskStore

__all__ = ["Handover"]

log = logging.getLogger("actors.dispatcher")  # the dispatcher's own log: one place to look


class Handover(Reaper):
    """`give_back`, `requeue_in_process` and `end_orphans`; the attributes below
    (and the reaper's) are the dispatcher's."""

    _store: ServerTaskStore
    _claiming: set[str]

    async def give_back(self, worker_id: str, task_id: str, attempt_id: str) -> bool:
        """The worker stops and gives the attempt's task back unfinished: end the lease
        and queue the task again now (rolled back, the attempt not counted). True if
        the attempt had already ended (a resent release); `StaleAttempt` if another
        attempt holds the task."""
        head = await self._store.head(task_id)
        if head is None:
            raise NotClaimable(f"task {task_id!r} does not exist")
        lease = head.dispatch.lease
        if lease is None or lease.attempt_id != attempt_id:
            if head.dispatch.last_attempt_id == attempt_id:
                return True
            raise StaleAttempt(f"attempt {attempt_id!r} of task {task_id!r} is no longer current")
        await self._end_lease(task_id, lease, f"worker {worker_id!r} gave the task back "
                              "(it is stopping)", refund=True)
        return False

    async def requeue_in_process(self) -> int:
        """This replica stops: end its embedded workers' leases now (their sessions
        have stopped), queueing the tasks for the other replicas; how many."""
        ended = 0
        for task_id, lease in self._leases.all_mine():
            ended += await self._end_lease(
                task_id, lease, f"worker {lease.worker_id!r} stopped with the server",
                refund=True)
        return ended

    async def end_orphans(self, worker_id: str, running: Collection[str],
                          granted_here: Collection[str]) -> list[str]:
        """End the leases the worker holds by the store but does not run (`running`:
        the task ids its heartbeat lists), except those granted on this connection
        (`granted_here`: attempt ids) or being claimed now; the tasks ended."""
        ended = []
        for task_id, attempt_id in self._leases.held_by(worker_id).items():
            lease = self._leases.get(task_id)
            if (lease is None or task_id in running or attempt_id in granted_here
                    or task_id in self._claiming):
                continue
            log.warning("worker does not run a task it holds the lease of; queueing it again",
                        extra={"worker_id": worker_id, "task_id": task_id,
                               "attempt_id": attempt_id})
            if await self._end_lease(task_id, lease, f"worker {worker_id!r} never received "
                                     f"attempt {attempt_id!r} (its grant was lost)",
                                     refund=True):
                ended.append(task_id)
        return ended
