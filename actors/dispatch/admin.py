"""What an operator may do to the dispatcher: look at its workers, move its tasks.

A mixin of `actors.dispatcher.Dispatcher`, like the reaper, so that every change
goes through the same parts (the lease index and its store writes, the queue,
the connected workers) and the same compare-and-set writes as the workers' own:

* `worker_views`: the workers connected to this process (a worker's link ends at
  one replica, so each replica lists its own);
* `requeue`: stop the attempt running a task (its worker is told to cancel it and
  is fenced out) and queue it again, with a fresh set of attempts;
* `fail`: end a task failed with the operator's reason, running or queued;
* `drain_worker`: ask one worker to claim nothing more (it finishes what it runs).

Errors are `AdminRefused` with a short code (`not_found`, `conflict`) and a
message for people.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs
import trio

from actors.dispatch.leases import Leases, _rollback, _status
from actors.dispatch.routing import TaskQueue
from actors.dispatch.workers import ConnectedWorkers
from actors.store_port import DispatchState, Lease, TaskRecord
from actors.task_store import ServerTaskStore
from protocol.models import TaskState
from protocol.states import IllegalTransition, is_interrupted, is_terminal

__all__ = ["AdminOps", "AdminRefused", "WorkerView"]

log = logging.getLogger("actors.dispatcher")


class AdminRefused(Exception):
    """An operator's request the dispatcher cannot carry out, and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@attrs.frozen
class WorkerView:
    """One connected worker as an operator sees it."""

    worker_id: str
    name: str
    agents: tuple[str, ...]
    capabilities: tuple[str, ...]
    max_concurrent: int
    running: tuple[str, ...]
    """Task ids of the leases it holds."""
    offered: int
    in_process: bool
    last_heartbeat: float
    """Epoch seconds (the store's clock) when it last registered, heartbeated or claimed."""
    draining: str | None

    @property
    def load(self) -> float:
        return len(self.running) / self.max_concurrent if self.max_concurrent else 1.0


class AdminOps:
    """The operator's operations; the attributes below are the dispatcher's."""

    _store: ServerTaskStore
    _leases: Leases
    _queue: TaskQueue
    _workers: ConnectedWorkers

    # the dispatcher's own methods, which these parts call
    _drop_lease: Callable[[str, Lease], None]
    _enqueue: Callable[..., None]  # (task_id, route, *, retry=False)
    _wake: Callable[[], None]

    def worker_views(self) -> list[WorkerView]:
        """The workers connected to this process, in the order they connected."""
        ago = trio.current_time()
        now = self._store.now()
        views = []
        for info in self._workers.infos():
            session = self._workers.session(info.worker_id)
            views.append(WorkerView(
                worker_id=info.worker_id, name=info.name, agents=tuple(sorted(info.agents)),
                capabilities=tuple(sorted(info.capabilities)),
                max_concurrent=info.max_concurrent, running=tuple(session.active),
                offered=len(session.offered), in_process=info.in_process,
                last_heartbeat=now - (ago - session.last_seen),
                draining=self._workers.draining or self._workers.drained.get(info.worker_id)))
        return views

    def drain_worker(self, worker_id: str, reason: str) -> None:
        """Ask one worker connected here to claim nothing more (again on every
        heartbeat and reconnect); `AdminRefused` if it is not connected here."""
        if not self._workers.drain_one(worker_id, reason):
            raise AdminRefused("worker_not_found",
                               f"worker {worker_id!r} is not connected to this server process")
        log.warning("worker drained by an operator", extra={"worker_id": worker_id,
                                                            "reason": reason})

    async def _current(self, task_id: str) -> TaskRecord:
        head = await self._store.head(task_id)
        if head is None:
            raise AdminRefused("task_not_found", f"task {task_id!r} not found")
        if is_terminal(head.state):
            raise AdminRefused("conflict", f"task {task_id!r} has ended ({head.state.value}); "
                                           "an ended task does not run again")
        return head

    async def requeue(self, task_id: str, why: str) -> TaskRecord:
        """Queue the task again now, stopping the attempt that runs it (whose output is
        rolled back, as after a lost lease); its run gets a fresh set of attempts.
        A task already queued stays where it is."""
        for _ in range(3):
            head = await self._current(task_id)
            lease = head.dispatch.lease
            if lease is None:
                if is_interrupted(head.state):
                    raise AdminRefused("conflict", f"task {task_id!r} waits for its client "
                                                   f"({head.state.value}), not for a worker")
                if task_id not in self._queue:
                    self._enqueue(task_id, head.dispatch.route)
                return head
            events = (*_rollback(head), _status(head, TaskState.WORKING,
                                                f"re-queued by an operator: {why}"))
            version = head.version

            def unchanged(record: TaskRecord, version: int = version) -> None:
                if record.version != version:
                    raise _Moved

            def queued(d: DispatchState) -> DispatchState:
                return attrs.evolve(d, lease=None, run_attempts=0)

            try:
                record = await self._store.write(task_id, events, dispatch=queued,
                                                 check=unchanged)
            except _Moved:
                continue  # a heartbeat or output moved it on: judge the fresh record
            except IllegalTransition as exc:
                raise AdminRefused("conflict", f"task {task_id!r}: {exc}") from None
            self._stop_attempt(task_id, lease, why)
            # Offered to another worker: the one that ran it still knows the task until
            # its session has stopped, and takes it again from its queue count (heartbeat).
            self._queue.put_back(task_id, record.dispatch.route)
            self._workers.offer(task_id, record.dispatch.route, skip=lease.worker_id)
            self._wake()
            log.warning("task re-queued by an operator: %s", why, extra={
                "task_id": task_id, "worker_id": lease.worker_id,
                "attempt_id": lease.attempt_id})
            return record
        raise AdminRefused("conflict", f"task {task_id!r} keeps changing; try again")

    async def fail(self, task_id: str, why: str) -> TaskRecord:
        """End the task failed for `why`: a running attempt is stopped (fenced out, its
        worker told to cancel it); a queued task leaves the queue."""
        reason = f"failed by an operator: {why}"
        for _ in range(3):
            head = await self._current(task_id)
            lease = head.dispatch.lease
            if lease is not None:
                ended = await self._leases.fail(task_id, lease.attempt_id, reason)
                if ended is None:
                    continue  # released or re-leased meanwhile
                self._stop_attempt(task_id, ended, why)
                self._queue.release_place(task_id)
            else:
                if self._queue.take(task_id) is not None:
                    self._workers.withdraw(task_id)
                    self._wake()

                def unleased(record: TaskRecord) -> None:
                    if record.dispatch.lease is not None:
                        raise _Moved

                try:
                    await self._store.write(task_id, (_status(head, TaskState.FAILED, reason),),
                                            check=unleased)
                except _Moved:
                    continue  # claimed meanwhile: fail the attempt instead
                except IllegalTransition as exc:
                    raise AdminRefused("conflict", f"task {task_id!r}: {exc}") from None
            log.warning("task failed by an operator: %s", why, extra={"task_id": task_id})
            record = await self._store.head(task_id)
            assert record is not None
            return record
        raise AdminRefused("conflict", f"task {task_id!r} keeps changing; try again")

    def _stop_attempt(self, task_id: str, lease: Lease, why: str) -> None:
        self._drop_lease(task_id, lease)
        self._workers.push_cancel(lease.worker_id, task_id, lease.attempt_id,
                                  f"taken back by an operator: {why}")


class _Moved(Exception):
    """The record moved on from the one an operator's write was built on."""
