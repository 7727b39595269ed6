"""Following the other replicas: one queue and one set of leases across processes.

With several server processes on one database (a `shared` store), a task may be
accepted by one replica and run by a worker connected to another. Each replica's
dispatcher keeps its own queue index and offers to its own workers, so each has
to learn what the others do to the tasks:

* a task another replica created or put back in the queue (no lease, not ended)
  joins this replica's queue with its route and is offered to this replica's
  workers. The workers of every replica may then race to claim it; the claim is
  a compare-and-set write that waits for its commit (`Dispatcher.claim`), so
  exactly one wins and the others are refused before any grant goes out;
* a task claimed or ended elsewhere leaves the queue, its offer withdrawn;
* every replica indexes every lease, whoever granted it, with the latest
  expiry the store shows (renewals go through the replica the worker is
  connected to), so any replica's reaper can end an expired one
  (`actors.dispatch.leases`: exactly once); a lease ended or replaced elsewhere
  frees the slot of the worker here that held it;
* a cancellation asked for on another replica (`DispatchState.cancel_requested`)
  is pushed to the worker running the task if it is connected here, and repeated
  in its heartbeat replies.

`ServerTaskStore.remote_changes()` says which tasks another process wrote. The
`ReplicaFollower` reads each one's current record and acts on what the record
says, never on the notification alone, so a late, repeated or coalesced
notification cannot mislead it. Notifications can be lost (the feed's
connection drops): on `missed`, and every `rescan_interval` as the fallback,
the queue is reconciled with the store's unfinished tasks, as at start, which
bounds how long a lost notification can keep a task from this replica's
workers. The same reconciliation rebuilds the queue and lease index when the
dispatcher starts, on any store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import trio

from actors.dispatch.leases import Leases
from actors.dispatch.routing import TaskQueue
from actors.dispatch.workers import ConnectedWorkers
from actors.store_port import TaskRecord
from actors.task_commit import backend_down
from actors.task_store import ServerTaskStore
from actors.task_sync import RemoteChangeBatch, RemoteChanges
from protocol.states import ends_stream

__all__ = ["ReplicaFollower"]

log = logging.getLogger("actors.dispatcher")  # the dispatcher's log: one place to look


def waiting(record: TaskRecord) -> bool:
    """Whether the task waits for a claim: not held by a lease, not ended or paused."""
    return record.dispatch.lease is None and not ends_stream(record.state)


class ReplicaFollower:
    """Keeps this replica's queue and lease index in step with the store; see the
    module docstring.

    Reads and changes the dispatcher's parts (`queue`, `workers`, `leases`);
    `claiming` holds the tasks whose claim by this replica is in flight (their
    outcome decides, not a record read meanwhile); `enqueue` queues a task and
    offers it; `wake` tells claimers waiting for a slot that one may have freed.
    `rescan_interval` (seconds) bounds the time between rescans.
    """

    def __init__(self, store: ServerTaskStore, queue: TaskQueue, workers: ConnectedWorkers,
                 leases: Leases, *, claiming: set[str], enqueue: Callable[..., None],
                 wake: Callable[[], None], rescan_interval: float) -> None:
        if rescan_interval <= 0:
            raise ValueError(f"rescan_interval must be > 0, got {rescan_interval}")
        self._store = store
        self._queue = queue
        self._workers = workers
        self._leases = leases
        self._claiming = claiming
        self._enqueue = enqueue
        self._wake = wake
        self._rescan_interval = rescan_interval
        self.rescans = 0
        self.queued_remotely = 0
        """Tasks queued here because another replica's write made them wait."""

    async def run(self, changes: RemoteChanges) -> None:
        """Follow `changes` until cancelled, rescanning on `missed` and every interval."""
        next_rescan = trio.current_time() + self._rescan_interval
        while True:
            batch: RemoteChangeBatch | None = None
            with trio.move_on_at(next_rescan):
                batch = await changes.wait()
            try:
                if batch is None or batch.missed:
                    next_rescan = trio.current_time() + self._rescan_interval
                    await self.rescan()
                if batch is not None and batch.changes:
                    await self.refresh([change.task_id for change in batch.changes])
            except Exception as exc:
                if not backend_down(exc):
                    raise
                # what this batch said is found again by the next rescan
                log.warning("cannot read the tasks other replicas changed; next rescan in "
                            "%.1f s", next_rescan - trio.current_time(),
                            extra={"error": repr(exc)})

    async def refresh(self, task_ids: Sequence[str]) -> None:
        """Read these tasks' records and follow what they say now."""
        for record in await self._store.heads(task_ids):
            self.apply(record)

    async def recheck(self, task_id: str, *, why: str) -> None:
        """`refresh` one task after a claim of it lost (to another replica's, say): if
        the store cannot be read now, the next rescan catches up."""
        log.debug("claim lost; following the task's record", extra={
            "task_id": task_id, "error": why})
        try:
            await self.refresh([task_id])
        except Exception as exc:
            if not backend_down(exc):
                raise
            log.warning("cannot read a task after a lost claim", extra={
                "task_id": task_id, "error": repr(exc)})

    def apply(self, record: TaskRecord) -> None:
        """Index the task's lease; queue the task if it waits for a claim, else take it
        out of the queue; pass a cancellation asked of its lease to the worker. A task
        whose lease ended elsewhere goes back in the place it had (if this replica
        holds one for it: it claimed the task, or found it leased at start)."""
        task_id = record.task_id
        if task_id in self._claiming:
            return  # this replica's claim of it is in flight: its outcome decides
        lease = record.dispatch.lease
        gone = self._leases.follow(task_id, lease)
        if gone is not None and self._workers.lease_ended(gone.worker_id, task_id,
                                                          gone.attempt_id):
            log.info("lease of a worker here ended elsewhere", extra={
                "task_id": task_id, "worker_id": gone.worker_id, "attempt_id": gone.attempt_id})
            self._wake()
        if (lease is not None and record.dispatch.cancel_requested
                and not self._leases.cancel_requested(task_id)):
            self._leases.request_cancel(task_id)
            self._workers.push_cancel(lease.worker_id, task_id, lease.attempt_id,
                                      "canceled by request")
            log.info("cancel requested on another replica", extra={
                "task_id": task_id, "worker_id": lease.worker_id,
                "attempt_id": lease.attempt_id,
                "connected_here": self._workers.get(lease.worker_id) is not None})
        if waiting(record):
            if task_id not in self._queue:
                self.queued_remotely += 1
                log.debug("task queued by another replica", extra={
                    "task_id": task_id, "version": record.version})
                self._enqueue(task_id, record.dispatch.route, retry=gone is not None)
            return
        if ends_stream(record.state):
            self._queue.release_place(task_id)  # no retry will need it
        if self._queue.take(task_id) is not None:
            self._workers.withdraw(task_id)
            log.debug("task claimed or ended by another replica", extra={
                "task_id": task_id, "version": record.version, "state": record.state.value})

    async def rescan(self, *, at_start: bool = False) -> list[TaskRecord]:
        """Reconcile the queue and lease index with the store's unfinished tasks (at
        start, and the fallback for lost notifications); the records it went by. A
        task queued while the list was read is kept: the list may predate it. At
        start a leased task is given a place in the queue (in the order listed), for
        its retry if the lease is lost (`TaskQueue.hold_place`)."""
        mark = self._queue.mark()
        listed = await self._store.list_unfinished()
        self.rescans += 1
        seen: set[str] = set()
        records = []
        for record in listed:
            seen.add(record.task_id)
            cached = self._store.cached_head(record.task_id)
            if cached is not None and cached.version >= record.version:
                record = cached
            records.append(record)
            if at_start and record.dispatch.lease is not None:
                self._queue.hold_place(record.task_id)  # a retry keeps this order
            self.apply(record)
        for task_id in self._queue.queued_before(mark):
            if task_id not in seen and task_id not in self._claiming:
                self._queue.take(task_id)  # finished or paused by the time of the list
                self._workers.withdraw(task_id)
        log.debug("queue rescanned", extra={"unfinished": len(listed),
                                            "queued": len(self._queue)})
        return records
