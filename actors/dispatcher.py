"""Dispatcher: the server's queue of tasks and the leases of the workers running them.

Work is leased, not given. A worker claims a queued task and gets an attempt id
and a lease; heartbeats renew the leases it holds; every write a worker makes
names its attempt and is refused once the task has moved on to another attempt
(fencing); a release is idempotent; a lease that runs out puts the task back in
the queue (up to `max_attempts` claims per run, then the task fails with the reason),
with the artifacts rolled back to what they were when the lost attempt was
claimed, so that the retry's output is the only copy. It goes back in the place
it had there (priority, then age), ahead of what was submitted while it ran.

Everything durable lives in the task store (each task's `DispatchState`); the
dispatcher keeps only what it can rebuild from there: the queue, the connected
workers and an index of leases for the reaper. Workers in this process and
remote ones use the same worker link, hence the same operations. Several server
processes may share one store (PostgreSQL): each follows the others' writes
(`actors.dispatch.follow`), so they dispatch as one server.

The parts are in `actors.dispatch` (its docstring says which holds what);
`Dispatcher` ties them together, and this module re-exports their public names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence

import attrs
import trio

from actors.dispatch.admin import AdminOps
from actors.dispatch.follow import ReplicaFollower
from actors.dispatch.handover import Handover
from actors.dispatch.leases import Leases
from actors.dispatch.routing import TaskQueue, route_from_metadata
from actors.dispatch.types import (
    CancelPush,
    Claim,
    DispatcherStatistics,
    DrainPush,
    HeartbeatReply,
    IllegalOutput,
    NotClaimable,
    Offer,
    OutputLimitExceeded,
    OutputOutOfOrder,
    RunRequest,
    StaleAttempt,
    UnknownWorker,
    WorkerInfo,
)
from actors.dispatch.types import Push as Push  # for runtime.link.connection; see below
from actors.dispatch.workers import ConnectedWorkers, WorkerSession
from actors.store_port import Lease, Route, TaskRecord
from actors.task_store import ServerTaskStore
from protocol.ids import new_uuid
from protocol.models import AgentSkill, StreamResponse

__all__ = [
    "CancelPush",
    "DrainPush",
    "RunRequest",
    "Claim",
    "Dispatcher",
    "DispatcherStatistics",
    "HeartbeatReply",
    "IllegalOutput",
    "NotClaimable",
    "Offer",
    "OutputLimitExceeded",
    "OutputOutOfOrder",
    "StaleAttempt",
    "UnknownWorker",
    "WorkerInfo",
    "WorkerSession",
    "route_from_metadata",
]
# `Push` is importable from here but kept out of `__all__` (and so out of `actors`):
# the worker side has a `Push` of its own (actors.worker).

log = logging.getLogger(__name__)


class Dispatcher(Handover, AdminOps):
    """Queue, claims, leases and fencing; see the module docstring.

    `lease_ttl` is how long a claim holds without a heartbeat; `reap_interval`
    how often expired leases are looked for; `max_attempts` how many claims each
    run of a task (the first, and each a continuation starts) gets before a lost
    lease fails it; `push_queue` bounds each worker's
    channel of offers and cancellations; `offer_timeout` (default: a heartbeat
    interval, `lease_ttl / 3`) how long an unclaimed offer holds its task before
    the task is offered to another worker. `rescan_interval` (on a store other
    processes share) bounds how long a lost change notification can keep a task
    another replica queued from this one's workers. `replica_id` names this
    server process among the replicas on one store (stable across its restarts):
    the leases of its embedded workers carry it, so that it ends its own previous
    incarnation's at start and no other replica's. `max_output_bytes` is the
    output one attempt may write (None: no cap; past it the task fails, once).
    """

    def __init__(
        self,
        store: ServerTaskStore,
        *,
        lease_ttl: float = 90.0,
        reap_interval: float = 5.0,
        max_attempts: int = 3,
        push_queue: int = 64,
        offer_timeout: float | None = None,
        rescan_interval: float = 10.0,
        replica_id: str | None = None,
        new_id: Callable[[], str] = new_uuid,
        max_output_bytes: int | None = None,
    ) -> None:
        self._store = store
        self.lease_ttl = lease_ttl
        self.max_output_bytes = max_output_bytes
        self._reap_interval = reap_interval
        self._queue = TaskQueue()
        self._workers = ConnectedWorkers(
            self._queue, lease_ttl=lease_ttl, push_queue=push_queue,
            offer_timeout=lease_ttl / 3 if offer_timeout is None else offer_timeout)
        self._leases = Leases(store, lease_ttl=lease_ttl, max_attempts=max_attempts,
                              new_id=new_id, max_output_bytes=max_output_bytes,
                              replica_id=replica_id)
        self._changed = trio.Event()
        self._claiming: set[str] = set()
        """Tasks whose claim by this process is being stored (shared store)."""
        self._follower = ReplicaFollower(
            store, self._queue, self._workers, self._leases, claiming=self._claiming,
            enqueue=self._enqueue, wake=self._wake, rescan_interval=rescan_interval)

    def statistics(self) -> DispatcherStatistics:
        leases = self._leases
        return DispatcherStatistics(
            queued=len(self._queue), leased=len(leases), workers=len(self._workers),
            claims=leases.claims, expired=leases.expired, stale_writes=leases.stale_writes,
            rescans=self._follower.rescans, retries=leases.retries,
            queued_by_agent=self._queue.depth_by_agent(),
            worker_load=self._workers.load(),
        )

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # --- life ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Rebuild the queue and lease index from the store, then reap expired leases
        (and, on a shared store, follow the other replicas' writes).

        A lease of an embedded worker of the previous server process ends at once:
        that worker stopped with the process. Remote workers keep theirs until they
        expire (they may reconnect and renew them)."""
        # Subscribed before the store is read: a change made meanwhile is not lost.
        with self._store.remote_changes() as changes:
            await self._rebuild()
            task_status.started()
            async with trio.open_nursery() as nursery:
                if self._store.shared:
                    nursery.start_soon(self._follower.run, changes)
                while True:
                    await trio.sleep(self._reap_interval)
                    await self.reap()

    async def _rebuild(self) -> None:
        """Queue the unfinished tasks no lease holds, index the leases (and the
        cancellations asked of them), and end the leases of this process's previous
        incarnation's embedded workers. On a shared store only this replica's
        (`replica_id`): the other replicas' embedded workers may be running."""
        shared = self._store.shared
        for record in await self._follower.rescan(at_start=True):
            lease = record.dispatch.lease
            if lease is not None and lease.in_process and (not shared or self._leases.mine(lease)):
                await self._end_lease(record.task_id, lease,
                                      f"worker {lease.worker_id!r} stopped with the server")

    def _enqueue(self, task_id: str, route: Route, *, retry: bool = False) -> None:
        """Queue the task and offer it: a retry in the place it had when claimed,
        anything else behind the tasks of its priority."""
        if retry:
            self._queue.put_back(task_id, route)
        else:
            self._queue.put(task_id, route)
        self._workers.offer(task_id, route)
        self._wake()

    # --- the service's port ---------------------------------------------------------

    async def submit(self, req: RunRequest) -> None:
        """Queue a stored task (new, continued, or recovered after a restart)."""
        record = await self._store.head(req.task_id)
        if record is None:
            return
        dispatch = record.dispatch
        if req.metadata or req.accepted_output_modes or req.trace_parent:
            wanted = attrs.evolve(dispatch, request_metadata=dict(req.metadata) or None,
                                  accepted_output_modes=tuple(req.accepted_output_modes),
                                  trace_parent=req.trace_parent or dispatch.trace_parent)
            if wanted != dispatch or wanted.trace_parent != dispatch.trace_parent:
                dispatch = wanted  # a continuation brought new request metadata
                await self._store.write(req.task_id, (), dispatch=dispatch, wait=False)
        self._enqueue(req.task_id, dispatch.route)

    async def cancel(self, task_id: str) -> bool:
        """Ask the worker holding the task, on whichever replica, to cancel it.

        True if a worker holds it: the request is stored with the task
        (`DispatchState.cancel_requested`), so the replica the worker is connected
        to learns of it and pushes it (at once, if that is this one), heartbeat
        replies repeat it, and the task ends canceled when the worker releases it
        or its lease runs out. False if no worker holds it: it is taken out of the
        queue (the other replicas' too, once it ends) and the caller ends it. On a
        shared store that answer may come from a cache a moment behind another
        replica's claim: the caller's write that ends the task checks that no lease
        appeared (see `A2AService.cancel_task`).
        """
        if self._queue.take(task_id) is not None:
            self._workers.withdraw(task_id)
            self._wake()
            if not self._store.shared:
                return False  # one process: queued here means held by no worker
        if self._leases.get(task_id) is None and not self._store.shared:
            return False
        lease = await self._leases.store_cancel(task_id)
        if lease is None:
            return False
        self._workers.push_cancel(lease.worker_id, task_id, lease.attempt_id,
                                  "canceled by request")
        log.info("cancel requested", extra={"task_id": task_id, "worker_id": lease.worker_id,
                                            "attempt_id": lease.attempt_id})
        return True

    # --- workers ----------------------------------------------------------------------

    def register(self, info: WorkerInfo) -> WorkerSession:
        """Connect a worker (again). Leases it held stay valid until they expire."""
        old = self._workers.get(info.worker_id)
        active = old.active if old is not None else self._leases.held_by(info.worker_id)
        session = self._workers.connect(info, active)
        self._wake()
        log.info("worker registered", extra={"worker_id": info.worker_id, "worker_name": info.name,
                                             "capabilities": sorted(info.capabilities)})
        return session

    def worker_skills(self) -> tuple[int, list[AgentSkill]]:
        """The skills of the connected workers' agents, each id once (first wins), and
        a version that moves whenever a worker connects or leaves."""
        return self._workers.version, self._workers.skills()

    def connected_workers(self) -> list[tuple[WorkerInfo, int]]:
        """The workers connected to this process, in the order they connected, each
        with how many tasks it runs now (for listings: the MCP surface)."""
        return [(info, len(self._workers.session(info.worker_id).active))
                for info in self._workers.infos()]

    @property
    def draining(self) -> str | None:
        """Why workers are told to claim nothing more (None: they are not)."""
        return self._workers.draining

    def drain(self, reason: str) -> None:
        """Ask every worker, now and on each later heartbeat or registration, to claim
        nothing more (finishing what it runs); no more offers go out and claims are
        refused (`NotClaimable`): the tasks stay queued in the store, for the other
        replicas or this server's next start."""
        if self._workers.draining is not None:
            return
        log.info("draining workers", extra={"reason": reason, "workers": len(self._workers)})
        self._workers.drain(reason)

    def queued_for(self, worker_id: str) -> int:
        """How many queued tasks this worker may run."""
        session = self._workers.get(worker_id)
        if session is None:
            return 0
        return self._queue.count(session.accepts)

    async def claim_next(self, worker_id: str) -> Claim:
        """Claim the best queued task this worker may run (a poll, for a worker that
        gets no offers); `NotClaimable` if none waits or it has no free slot."""
        session = self._workers.session(worker_id)
        while True:
            task_id = (self._queue.best(session.accepts)
                       if session.free > 0 and self.draining is None else None)
            if task_id is None:
                raise NotClaimable(f"no task waits for worker {worker_id!r}")
            try:
                return await self.claim(worker_id, task_id)
            except NotClaimable:
                continue  # taken meanwhile: the next one

    def unregister(self, worker_id: str, session: WorkerSession | None = None) -> None:
        """The worker's connection ended; its leases run until they expire."""
        if self._workers.disconnect(worker_id, session):
            self._wake()

    async def next_claim(self, worker_id: str) -> Claim:
        """Wait until a queued task suits this worker and it has a free slot; claim it."""
        while True:
            session = self._workers.session(worker_id)
            task_id = (self._queue.best(session.accepts)
                       if session.free > 0 and self.draining is None else None)
            if task_id is not None:
                try:
                    return await self.claim(worker_id, task_id)
                except NotClaimable:
                    continue
            await self._changed.wait()

    # --- claims and leases ------------------------------------------------------------

    async def claim(self, worker_id: str, task_id: str) -> Claim:
        """Claim a task atomically: exactly one worker wins it.

        On a store other processes share, the claim waits for its compare-and-set
        commit: another replica's worker may be claiming the task too, and the grant
        must not go out before this claim is known to have won. The loser gets
        `NotClaimable` and the task leaves its queue."""
        session = self._workers.session(worker_id)
        session.last_seen = trio.current_time()
        if self.draining is not None:
            raise NotClaimable(f"this server is draining ({self.draining}): claim elsewhere")
        route = self._queue.route(task_id)
        if route is None:
            raise NotClaimable(f"task {task_id!r} is not waiting to be claimed")
        if not session.accepts(route):
            raise NotClaimable(f"task {task_id!r} is not routed to worker {worker_id!r}")
        if session.free <= 0:
            raise NotClaimable(f"worker {worker_id!r} already runs "
                               f"{session.info.max_concurrent} tasks")
        entry = self._queue.take(task_id)  # before any await: no other claim can see it now
        assert entry is not None
        self._queue.hold_place(task_id, entry[1])  # for a retry, if the lease is lost
        self._workers.withdraw(task_id)
        lease = self._leases.grant(task_id, worker_id, in_process=session.info.in_process)
        session.active[task_id] = lease.attempt_id
        self._claiming.add(task_id)
        try:
            head = await self._store.head(task_id)
            record = await self._leases.record_claim(task_id, lease, head,
                                                     wait=self._store.shared)
        except BaseException as exc:
            self._leases.forget(task_id)
            session.active.pop(task_id, None)
            self._claiming.discard(task_id)
            if not isinstance(exc, NotClaimable):
                self._queue.restore(task_id, entry)  # the store failed: the task is still queued
            else:
                self._queue.release_place(task_id)
                if self._store.shared:  # another replica's claim won: follow what it did
                    await self._follower.recheck(task_id, why=f"claim by {worker_id!r}: {exc}")
            raise
        self._claiming.discard(task_id)
        return Claim(task_id=task_id, attempt_id=lease.attempt_id,
                     lease_expires_at=lease.expires_at, record=record)

    async def heartbeat(self, worker_id: str, leases: Sequence[tuple[str, str]], *,
                        granted_here: Collection[str] | None = None) -> HeartbeatReply:
        """Renew the leases a worker reports; tell it which it lost and what to cancel.
        With `granted_here` (the attempts granted on the worker's connection), end
        the leases it holds but does not report (`end_orphans`)."""
        session = self._workers.get(worker_id)
        if session is None:
            return HeartbeatReply(renewed=(), lost=(), cancel=(), unknown_worker=True)
        session.last_seen = trio.current_time()
        renewed, lost, cancel = [], [], []
        expires = self._leases.expiry()
        for task_id, attempt_id in leases:
            if not await self._leases.renew(task_id, attempt_id, expires):
                lost.append((task_id, attempt_id, "the task's lease moved on"))
                session.active.pop(task_id, None)
                continue
            renewed.append((task_id, attempt_id, expires))
            if self._leases.cancel_requested(task_id):
                cancel.append((task_id, attempt_id))
        if granted_here is not None:
            await self.end_orphans(worker_id, {t for t, _ in leases}, granted_here)
        self._workers.offer_queued_to(session)
        return HeartbeatReply(renewed=tuple(renewed), lost=tuple(lost), cancel=tuple(cancel),
                              queued=self.queued_for(worker_id),
                              drain=self._workers.draining or self._workers.drained.get(worker_id))

    async def write(self, task_id: str, attempt_id: str, events: Sequence[StreamResponse], *,
                    wait: bool = False, output_seq: int | None = None,
                    output_bytes: int = 0) -> TaskRecord:
        """A worker's events for its attempt; StaleAttempt if the attempt moved on.

        With `output_seq` (the worker link's frame number) the events are applied
        only if they are the attempt's next frame, else `OutputOutOfOrder`; the
        number is stored in the same write, so exactly-once survives a restart.
        `output_bytes` is the output they add: if it takes the attempt past the
        cap, nothing is applied, the task fails with the reason and the lease ends
        (`OutputLimitExceeded`); so it does if they break the task lifecycle
        (`IllegalOutput`, naming the transition).
        """
        try:
            return await self._leases.write(task_id, attempt_id, events, wait=wait,
                                            output_seq=output_seq, output_bytes=output_bytes)
        except (OutputLimitExceeded, IllegalOutput) as exc:
            await self._fail_on_breach(task_id, attempt_id, exc)
            raise

    async def release(self, task_id: str, attempt_id: str,
                      events: Sequence[StreamResponse] = (), *, wait: bool = True,
                      output_seq: int | None = None, output_bytes: int = 0) -> bool:
        """End an attempt with its final events; idempotent.

        Returns True if this attempt had already been released (nothing written).
        With `output_seq`, `events` begin with the attempt's last output frame, which
        must be its next one (else `OutputOutOfOrder`, nothing written): frame and
        release then land in one write. `output_bytes` is counted against the output
        cap as in `write`. Events that break the lifecycle end the attempt failed
        (`IllegalOutput`), unless the task had already ended: then only the lease is
        dropped.
        """
        try:
            lease = await self._leases.release(task_id, attempt_id, events, wait=wait,
                                               output_seq=output_seq, output_bytes=output_bytes)
        except (OutputLimitExceeded, IllegalOutput) as exc:
            await self._fail_on_breach(task_id, attempt_id, exc)
            raise
        if lease is None:
            return True
        self._queue.release_place(task_id)
        self._drop_lease(task_id, lease)
        return False

    async def _fail_on_breach(self, task_id: str, attempt_id: str,
                              exc: OutputLimitExceeded | IllegalOutput) -> None:
        """A write that breaks the output cap or the lifecycle fails the task with the
        reason and ends its lease at once (no retry: the same agent would do the same
        again; no wait for the lease to expire, whose reason would hide this one).
        (A plain try/except at the two callers, not a context manager: they are on
        every task's path.)"""
        lease = await self._leases.fail(task_id, attempt_id, str(exc))
        if lease is not None:
            log.warning("task failed: %s", exc, extra={
                "task_id": task_id, "attempt_id": attempt_id, "worker_id": lease.worker_id})
            self._queue.release_place(task_id)
            self._drop_lease(task_id, lease)

    def _drop_lease(self, task_id: str, lease: Lease) -> None:
        self._leases.ended(task_id)
        self._workers.lease_ended(lease.worker_id, task_id, lease.attempt_id)
        self._wake()
